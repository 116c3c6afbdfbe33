//! The property test of [`render`]: over random files — comments, blank
//! lines, host lines, random text, lines mentioning the markers mid-line, with
//! or without a valid block, LF, CRLF or mixed, with or without a final
//! newline — and random legacy text and entries, the text outside the block
//! is unchanged, rendering settles at once, and there is exactly one block.

use super::block::{Marker, marker};
use super::{BEGIN, END, HostEntry, render, unmanaged};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Cases per run; each renders a few small files, so a run takes well under
/// a second.
const CASES: u32 = 400;

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "# [a-z ]{0,12}",
        Just(String::new()),
        "[a-z][a-z0-9]{0,7}".prop_map(|n| format!("1.2.3.4 {n}")),
        "\\PC{0,16}",
        (
            "[a-z0-9 .]{1,5}",
            prop_oneof![Just(BEGIN), Just(END)],
            "[ -~]{0,5}"
        )
            .prop_map(|(a, m, b)| format!("{a}{m}{b}")),
        Just("# END clusterctl-old".to_owned()),
    ]
}

fn join(lines: &[String], eols: &[bool], mode: u8, missing_final: bool) -> String {
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        text.push_str(l);
        let crlf = match mode {
            0 => false,
            1 => true,
            _ => eols[i % eols.len()],
        };
        text.push_str(if crlf { "\r\n" } else { "\n" });
    }
    if missing_final {
        let cut = if text.ends_with("\r\n") { 2 } else { 1 };
        text.truncate(text.len().saturating_sub(cut));
    }
    text
}

/// A file, and whether it holds a block.
fn file() -> impl Strategy<Value = (String, bool)> {
    let block = (
        0usize..10,
        vec(
            line().prop_filter("no markers", |l| marker(l).is_none()),
            0..3,
        ),
        prop_oneof![Just(""), Just(" (v1)")],
    );
    (
        vec(line(), 0..10),
        proptest::option::of(block),
        0u8..3,
        vec(any::<bool>(), 1..8),
        any::<bool>(),
    )
        .prop_map(|(mut lines, block, mode, eols, missing_final)| {
            let has_block = block.is_some();
            if let Some((at, inner, suffix)) = block {
                let at = at.min(lines.len());
                let mut b = vec![format!("{BEGIN}{suffix}")];
                b.extend(inner);
                b.push(format!("{END}{suffix}"));
                lines.splice(at..at, b);
            }
            (join(&lines, &eols, mode, missing_final), has_block)
        })
}

fn legacy() -> impl Strategy<Value = Option<String>> {
    let legacy_line = prop_oneof![
        "# [a-z ]{0,8}",
        Just(String::new()),
        "[a-z]{1,6}".prop_map(|n| format!("10.1.1.1 {n}")),
        Just(format!("# not a marker: {BEGIN}")),
    ];
    proptest::option::of(
        (vec(legacy_line, 0..4), 0u8..2, any::<bool>())
            .prop_map(|(lines, mode, missing)| join(&lines, &[false], mode, missing)),
    )
}

fn entry() -> impl Strategy<Value = HostEntry> {
    let address = prop_oneof![
        any::<[u8; 4]>().prop_map(|a| Ipv4Addr::from(a).to_string()),
        any::<u128>().prop_map(|a| Ipv6Addr::from(a).to_string()),
    ];
    (address, vec("[a-z][a-z0-9-]{0,6}[a-z0-9]", 1..4))
        .prop_map(|(address, names)| HostEntry { address, names })
}

fn markers(content: &str) -> Vec<Marker> {
    content.split_inclusive('\n').filter_map(marker).collect()
}

/// The lines between the markers, without their line breaks.
fn block_lines(content: &str) -> Vec<&str> {
    content
        .split_inclusive('\n')
        .skip_while(|l| marker(l) != Some(Marker::Begin))
        .skip(1)
        .take_while(|l| marker(l) != Some(Marker::End))
        .map(|l| l.trim_end_matches(['\r', '\n']))
        .collect()
}

proptest! {
    #![proptest_config(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn render_keeps_the_outside_and_settles(
        (f, has_block) in file(),
        legacy in legacy(),
        entries in vec(entry(), 0..5),
        others in vec(entry(), 0..5),
    ) {
        let legacy = legacy.as_deref();
        let once = render(&f, legacy, &entries).expect("a valid file renders");
        let outside = unmanaged(&f).expect("a valid file has an outside");
        if !has_block {
            prop_assert_eq!(&outside, &f);
        }
        prop_assert_eq!(unmanaged(&once), Ok(outside.clone()));
        prop_assert_eq!(render(&once, legacy, &entries), Ok(once.clone()));
        prop_assert_eq!(markers(&once), vec![Marker::Begin, Marker::End]);
        // Switching to other entries and back comes back to the same file.
        let switched = render(&once, legacy, &others).expect("renders");
        prop_assert_eq!(unmanaged(&switched), Ok(outside.clone()));
        prop_assert_eq!(render(&switched, legacy, &entries), Ok(once.clone()));
        // The block holds the legacy lines, then the entries, in order.
        let inside = block_lines(&once);
        let legacy_lines = legacy.map_or(0, |l| l.split_inclusive('\n').count());
        prop_assert_eq!(inside.len(), legacy_lines + entries.len());
        for (line, entry) in inside[legacy_lines..].iter().zip(&entries) {
            prop_assert_eq!(*line, format!("{}\t{}", entry.address, entry.names.join(" ")));
        }
    }
}
