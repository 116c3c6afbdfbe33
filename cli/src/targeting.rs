//! What the target flags and words of a command mean (every node, names
//! and globs, or one expression with its delimiter), and `clusterctl
//! target`, which tries an expression offline against grains and facts
//! from a file.

use crate::Failure;
use crate::args::{HowKind, Output, TargetArgs, TargetFlags};
use crate::client::Targeting;
use crate::commands::{print_json, write_out};
use cluster_model::TargetSpec;
use cluster_model::targets::{Candidate, Delimiter, Kind, Target};
use std::io::Write;

/// What the target flags and words mean: every node (no words, no flag),
/// names and globs (no flag), or one expression (a flag; words joined).
pub fn targeting(how: &TargetFlags, words: &[String]) -> Result<Targeting, Failure> {
    let delimiter = delimiter_of(how)?;
    match how.kind() {
        HowKind::Names if words.is_empty() => Ok(Targeting::All),
        HowKind::Names => Ok(Targeting::Spec(TargetSpec::Names(words.to_vec()))),
        HowKind::Kind(_) if words.iter().all(|w| w.trim().is_empty()) => Err(Failure::bad_input(
            "a target flag needs an expression after it",
        )),
        HowKind::Kind(k) => Ok(Targeting::Spec(TargetSpec::Expr(
            k,
            words.join(" "),
            delimiter,
        ))),
    }
}

/// `--delimiter`, which only -G, -P, -I and -F take (`:` without it).
fn delimiter_of(how: &TargetFlags) -> Result<Delimiter, Failure> {
    let Some(d) = how.delimiter else {
        return Ok(Delimiter::DEFAULT);
    };
    match how.kind() {
        HowKind::Kind(k) if k.takes_delimiter() => Ok(d),
        HowKind::Kind(Kind::Compound) => Err(Failure::bad_input(format!(
            "--delimiter goes with -G, -P, -I or -F; in -C, write it after the prefix: `G{d}@key{d}value`"
        ))),
        HowKind::Kind(k) => Err(Failure::bad_input(format!(
            "--delimiter goes with -G, -P, -I or -F, not with {}",
            k.flag()
        ))),
        HowKind::Names => Err(Failure::bad_input(
            "--delimiter goes with -G, -P, -I or -F, not with names",
        )),
    }
}

/// `clusterctl target`: evaluates an expression against grains from a
/// file, without a master.
pub fn offline_target(a: &TargetArgs, output: Output, out: &mut dyn Write) -> Result<(), Failure> {
    let read =
        |p: &std::path::Path| -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", p.display())))?;
            match serde_json::from_str(&text) {
                Ok(serde_json::Value::Object(m)) => Ok(m),
                Ok(_) => Err(Failure::bad_input(format!(
                    "{}: expected a JSON object",
                    p.display()
                ))),
                Err(e) => Err(Failure::bad_input(format!("{}: {e}", p.display()))),
            }
        };
    let nodes = read(&a.nodes)?;
    let groups: std::collections::BTreeMap<String, String> = match &a.groups {
        Some(p) => read(p)?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
            .collect(),
        None => Default::default(),
    };
    let kind = match a.how.kind() {
        HowKind::Names => Kind::Glob,
        HowKind::Kind(k) => k,
    };
    let delimiter = delimiter_of(&a.how)?;
    let target = Target::parse_with(kind, &a.expr, &groups, delimiter)
        .map_err(|e| Failure::bad_input(e.to_string()))?;
    let empty_labels = Default::default();
    let mut matched = Vec::new();
    for (name, grains) in &nodes {
        let empty = serde_json::Map::new();
        let grains = grains.as_object().unwrap_or(&empty);
        let strings = |key: &str| -> Vec<String> {
            grains
                .get(key)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let roles = strings("roles");
        let mut addresses = strings("ipv4");
        addresses.extend(strings("ipv6"));
        // A node's Facter-shaped facts (for `F@`) are its `facts` key.
        let facts = grains
            .get("facts")
            .and_then(|f| f.as_object())
            .unwrap_or(&empty);
        let c = Candidate {
            name,
            grains,
            facts,
            labels: &empty_labels,
            roles: &roles,
            addresses: &addresses,
        };
        if target.matches(&c) {
            matched.push(name.clone());
        }
    }
    matched.sort();
    match output {
        Output::Json => print_json(out, &matched)?,
        Output::Table => write_out(
            out,
            &matched.iter().map(|m| format!("{m}\n")).collect::<String>(),
        )?,
    }
    if matched.is_empty() {
        return Err(Failure::bad_input(format!("no nodes matched {}", a.expr)));
    }
    Ok(())
}
