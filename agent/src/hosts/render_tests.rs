//! Table tests of [`render`] and [`unmanaged`] through one helper, [`check`].
//! In the tables `<B>` and `<E>` stand for the BEGIN and END markers.

use super::{BEGIN, END, HostEntry, RenderError, render, unmanaged};

fn e(address: &str, names: &[&str]) -> HostEntry {
    HostEntry::new(address, names.iter().copied())
}

fn expand(s: &str) -> String {
    s.replace("<B>", BEGIN).replace("<E>", END)
}

/// Renders `existing` with `legacy` and `entries` and compares with
/// `expected`; when rendering succeeds, also checks that the text outside the
/// block is what it was and that rendering again changes nothing.
fn check(
    existing: &str,
    legacy: Option<&str>,
    entries: &[HostEntry],
    expected: Result<&str, RenderError>,
) {
    let existing = expand(existing);
    let legacy = legacy.map(expand);
    let got = render(&existing, legacy.as_deref(), entries);
    let expected = expected.map(expand);
    assert_eq!(got, expected, "existing {existing:?} legacy {legacy:?}");
    if let Ok(out) = got {
        assert_eq!(
            unmanaged(&out),
            unmanaged(&existing),
            "unmanaged of {out:?}"
        );
        assert_eq!(
            render(&out, legacy.as_deref(), entries).as_ref(),
            Ok(&out),
            "idempotence"
        );
    }
}

#[test]
fn new_and_empty_files() {
    let web = [e("10.0.0.1", &["web-1.example.com", "web-1"])];
    check(
        "",
        None,
        &web,
        Ok("<B>\n10.0.0.1\tweb-1.example.com web-1\n<E>\n"),
    );
    check("", None, &[], Ok("<B>\n<E>\n"));
    check("\n", None, &[], Ok("\n<B>\n<E>\n"));
    check(
        "",
        None,
        &[e("10.0.0.1", &["a"]), e("fd00::2", &["b", "b-alias"])],
        Ok("<B>\n10.0.0.1\ta\nfd00::2\tb b-alias\n<E>\n"),
    );
}

#[test]
fn content_outside_the_block_is_kept() {
    let web = [e("10.0.0.1", &["web-1.example.com", "web-1"])];
    // Same names outside the block stay where they are, untouched.
    check(
        "# static\n127.0.0.1\tlocalhost\n10.9.9.9   web-1  # old\n",
        None,
        &web,
        Ok("# static\n127.0.0.1\tlocalhost\n10.9.9.9   web-1  # old\n\
            <B>\n10.0.0.1\tweb-1.example.com web-1\n<E>\n"),
    );
    // A block in the middle stays there; what follows it is kept.
    check(
        "a\n<B>\n1.1.1.1\told\n<E>\nb\n# c\n",
        None,
        &web,
        Ok("a\n<B>\n10.0.0.1\tweb-1.example.com web-1\n<E>\nb\n# c\n"),
    );
    check(
        "<B>\n<E>\nafter",
        None,
        &[e("10.0.0.2", &["x"])],
        Ok("<B>\n10.0.0.2\tx\n<E>\nafter"),
    );
    check(
        "a\n<B>\n1.1.1.1\told\n<E>\n",
        None,
        &[],
        Ok("a\n<B>\n<E>\n"),
    );
    // Trailing text on a marker line is dropped with the old block.
    check("<B> v1\n<E> (v1)\n", None, &[], Ok("<B>\n<E>\n"));
}

#[test]
fn a_missing_final_newline_moves_to_end() {
    let x = [e("10.0.0.2", &["x"])];
    check("a", None, &x, Ok("a\n<B>\n10.0.0.2\tx\n<E>"));
    check("a\nb", None, &[], Ok("a\nb\n<B>\n<E>"));
    // An old block ending the file without a newline keeps that shape.
    check(
        "a\n<B>\n1.1.1.1\told\n<E>",
        None,
        &x,
        Ok("a\n<B>\n10.0.0.2\tx\n<E>"),
    );
    // There, the line break before BEGIN is the block's: the outside is
    // "a\n", which ends in a line break, so the new block ends in one too.
    check("a\n\n<B>\n<E>", None, &x, Ok("a\n<B>\n10.0.0.2\tx\n<E>\n"));
    // A block that is the whole file owns no separator.
    check("<B>\n<E>", None, &x, Ok("<B>\n10.0.0.2\tx\n<E>\n"));
    // A lone \r is text, not a line break.
    check("a\r", None, &[], Ok("a\r\n<B>\n<E>"));
}

#[test]
fn line_endings_follow_the_file() {
    let x = [e("10.0.0.2", &["x"])];
    check(
        "127.0.0.1 localhost\r\n::1 localhost\r\n",
        None,
        &x,
        Ok("127.0.0.1 localhost\r\n::1 localhost\r\n<B>\r\n10.0.0.2\tx\r\n<E>\r\n"),
    );
    check(
        "a\r\nb",
        None,
        &x,
        Ok("a\r\nb\r\n<B>\r\n10.0.0.2\tx\r\n<E>"),
    );
    check(
        "a\r\n<B>\r\n<E>\r\nb\r\n",
        None,
        &x,
        Ok("a\r\n<B>\r\n10.0.0.2\tx\r\n<E>\r\nb\r\n"),
    );
    // The old block's ending does not count against the file's.
    check(
        "a\n<B>\r\n<E>\r\nb\n",
        None,
        &x,
        Ok("a\n<B>\n10.0.0.2\tx\n<E>\nb\n"),
    );
    // Nothing outside to go by: the old block's own ending is kept.
    check("<B>\r\n<E>\r\n", None, &[], Ok("<B>\r\n<E>\r\n"));
    // Mostly CRLF wins; a tie is LF.
    check(
        "a\r\nb\r\nc\n",
        None,
        &[],
        Ok("a\r\nb\r\nc\n<B>\r\n<E>\r\n"),
    );
    check("a\r\nb\n", None, &[], Ok("a\r\nb\n<B>\n<E>\n"));
}

#[test]
fn legacy_lines_go_on_top_inside_the_block() {
    let x = [e("10.0.0.2", &["x"])];
    check(
        "127.0.0.1 localhost\n",
        Some("10.1.1.1 old-name # legacy\n\n10.1.1.2\tother\n"),
        &x,
        Ok("127.0.0.1 localhost\n\
            <B>\n10.1.1.1 old-name # legacy\n\n10.1.1.2\tother\n10.0.0.2\tx\n<E>\n"),
    );
    // CRLF legacy in an LF file: the lines verbatim, the block's line breaks.
    check(
        "",
        Some("10.1.1.1 a\r\n10.1.1.2 b\r\n"),
        &x,
        Ok("<B>\n10.1.1.1 a\n10.1.1.2 b\n10.0.0.2\tx\n<E>\n"),
    );
    check(
        "h\r\n",
        Some("10.1.1.1 a\n10.1.1.2 b"),
        &[],
        Ok("h\r\n<B>\r\n10.1.1.1 a\r\n10.1.1.2 b\r\n<E>\r\n"),
    );
    check("", Some(""), &x, Ok("<B>\n10.0.0.2\tx\n<E>\n"));
    // A legacy line mentioning a marker mid-line is fine.
    check("", Some("# see <B>\n"), &[], Ok("<B>\n# see <B>\n<E>\n"));
    check(
        "",
        Some("a\n<E>\n"),
        &x,
        Err(RenderError::LegacyMarker { line: 2 }),
    );
    check(
        "",
        Some("<B>"),
        &x,
        Err(RenderError::LegacyMarker { line: 1 }),
    );
}

#[test]
fn only_lines_starting_with_a_marker_are_markers() {
    let x = [e("10.0.0.2", &["x"])];
    check(
        "1.2.3.4 a # <B>\n  <E>\n# END clusterctl-old\n#<B>\n",
        None,
        &x,
        Ok("1.2.3.4 a # <B>\n  <E>\n# END clusterctl-old\n#<B>\n<B>\n10.0.0.2\tx\n<E>\n"),
    );
}

#[test]
fn broken_blocks_are_errors_naming_the_line() {
    let x = [e("10.0.0.2", &["x"])];
    use RenderError::*;
    check("a\n<B>\nb\n", None, &x, Err(Unclosed { line: 2 }));
    check("<B>", None, &x, Err(Unclosed { line: 1 }));
    check("a\nb\n<E>\n", None, &x, Err(Unopened { line: 3 }));
    check("<E>\n<B>\n", None, &x, Err(Unopened { line: 1 }));
    check("<B>\n<E>\n<E>\n", None, &x, Err(Unopened { line: 3 }));
    check(
        "<B>\na\n<B>\n<E>\n",
        None,
        &x,
        Err(Nested { line: 3, open: 1 }),
    );
    check(
        "<B>\n<E>\nmid\n<B>\n<E>\n",
        None,
        &x,
        Err(SecondBlock { line: 4, first: 1 }),
    );
    check("<B>\r\nx\r\n", None, &x, Err(Unclosed { line: 1 }));
    // The file is checked before the entries.
    check(
        "<B>\n",
        None,
        &[e("bad", &["x"])],
        Err(Unclosed { line: 1 }),
    );
    assert_eq!(
        unmanaged(&expand("<E>\n")),
        Err(Unopened { line: 1 }),
        "unmanaged refuses a broken block too"
    );
}

#[test]
fn entries_are_validated() {
    use RenderError::*;
    let bad_address = |a: &str| {
        check(
            "",
            None,
            &[e(a, &["x"])],
            Err(Address {
                address: a.to_owned(),
            }),
        )
    };
    for a in [
        "",
        "web-1",
        "10.0.0.256",
        "10.0.0",
        "010.0.0.1",
        " 10.0.0.1",
        "fe80::1%eth0",
        "::g",
    ] {
        bad_address(a);
    }
    check(
        "",
        None,
        &[e("10.0.0.1", &[])],
        Err(NoNames {
            address: "10.0.0.1".into(),
        }),
    );
    let long_label = "a".repeat(64);
    let long_name = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(62),
    ]
    .join(".");
    assert_eq!(long_name.len(), 254);
    for (name, reason) in [
        ("", "it is empty"),
        ("-web", "a label starts or ends with '-'"),
        ("web-", "a label starts or ends with '-'"),
        ("web_1", "it may hold only letters, digits, '-' and '.'"),
        ("web 1", "it may hold only letters, digits, '-' and '.'"),
        ("wéb", "it may hold only letters, digits, '-' and '.'"),
        ("a..b", "it has an empty label"),
        ("web-1.", "it has an empty label"),
        (".web", "it has an empty label"),
        (&long_label, "it has a label longer than 63 characters"),
        (&long_name, "it is longer than 253 characters"),
        (
            "10.0.0.1",
            "its last label is all digits, so it reads as an address",
        ),
        (
            "web.123",
            "its last label is all digits, so it reads as an address",
        ),
    ] {
        check(
            "",
            None,
            &[e("10.0.0.1", &["ok-1"]), e("10.0.0.2", &["fine", name])],
            Err(Name {
                address: "10.0.0.2".into(),
                name: name.to_owned(),
                reason,
            }),
        );
    }
    // Good names of every shape.
    let long_ok = &long_name[1..];
    check(
        "",
        None,
        &[e(
            "::1",
            &[
                "a",
                "1web",
                "web-1.example.com",
                "xn--bcher-kva.example",
                long_ok,
            ],
        )],
        Ok(&format!(
            "<B>\n::1\ta 1web web-1.example.com xn--bcher-kva.example {long_ok}\n<E>\n"
        )),
    );
}
