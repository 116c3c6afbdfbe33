//! The leaf matchers a target expression is built from, one per kind that
//! looks at a node: name globs, regexes and lists, grains and facts, labels,
//! subnets and roles. Each is compiled once from its value text by the
//! function named after its kind, which reports a [`Fault`] at a byte offset
//! into that text; [`Matcher::matches`] then answers for a node without
//! allocating.
//!
//! - `paths` — key paths through grains and facts (nested keys, globs on
//!   keys, lists, values that contain the delimiter), and label keys.

mod paths;

use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::glob::{Case, Glob};
use super::{Candidate, Delimiter, Fault};
use paths::{LabelReading, Paths};

#[derive(Debug, Clone)]
pub(super) enum Matcher {
    Name(Glob),
    NameRegex(Regex),
    /// Sorted, without duplicates.
    Names(Vec<String>),
    Grain(Paths),
    Fact(Paths),
    Label(Vec<LabelReading>),
    Subnet(IpNet),
    Role(Glob),
}

impl Matcher {
    pub(super) fn matches(&self, node: &Candidate<'_>) -> bool {
        match self {
            Matcher::Name(glob) => glob.is_match(node.name),
            Matcher::NameRegex(regex) => regex.is_match(node.name),
            Matcher::Names(names) => names
                .binary_search_by(|name| name.as_str().cmp(node.name))
                .is_ok(),
            Matcher::Grain(paths) => paths.matches(node.grains),
            Matcher::Fact(paths) => paths.matches(node.facts),
            Matcher::Label(readings) => readings.iter().any(|r| r.matches(node.labels)),
            Matcher::Subnet(network) => in_subnet(network, node),
            Matcher::Role(glob) => node.roles.iter().any(|role| glob.is_match(role)),
        }
    }

    /// How many patterns beyond one this matcher compiled for the other
    /// readings of its `key:value` text.
    pub(super) fn extra_readings(&self) -> usize {
        match self {
            Matcher::Grain(paths) => paths.readings().saturating_sub(1),
            Matcher::Label(readings) => readings.len().saturating_sub(1),
            _ => 0,
        }
    }
}

pub(super) fn name_glob(value: &str) -> Result<Matcher, Fault> {
    Glob::new(value, Case::Sensitive).map(Matcher::Name)
}

/// Anchored at the start like Salt's `re.match`, not at the end.
pub(super) fn name_regex(value: &str) -> Result<Matcher, Fault> {
    anchored_regex(value, Case::Sensitive).map(Matcher::NameRegex)
}

/// Comma-separated names; whitespace around a name is ignored, an empty
/// name is a mistake (`web-1,,web-2`).
pub(super) fn name_list(value: &str) -> Result<Matcher, Fault> {
    let mut names = Vec::new();
    let mut start = 0;
    for item in value.split(',') {
        let name = item.trim();
        if name.is_empty() {
            let at = start + (item.len() - item.trim_start().len());
            return Err(Fault::new(at, "empty name in the list"));
        }
        names.push(name.to_owned());
        start += item.len() + 1;
    }
    names.sort();
    names.dedup();
    Ok(Matcher::Names(names))
}

pub(super) fn role(value: &str) -> Result<Matcher, Fault> {
    Glob::new(value, Case::Sensitive).map(Matcher::Role)
}

/// `key:value` with a case-insensitive glob for the value.
pub(super) fn grain(value: &str, delimiter: Delimiter) -> Result<Matcher, Fault> {
    paths::grain(value, delimiter.as_char(), |v| {
        Glob::new(v, Case::Insensitive).map(Pattern::Glob)
    })
    .map(Matcher::Grain)
}

/// `key:value` with a regex for the value, anchored at the start and
/// case-insensitive like Salt's (which lowercases both sides).
pub(super) fn grain_regex(value: &str, delimiter: Delimiter) -> Result<Matcher, Fault> {
    paths::grain(value, delimiter.as_char(), |v| {
        anchored_regex(v, Case::Insensitive).map(Pattern::Regex)
    })
    .map(Matcher::Grain)
}

/// `os.release.major:12`: a dotted Facter path, a case-insensitive glob.
pub(super) fn fact(value: &str, delimiter: Delimiter) -> Result<Matcher, Fault> {
    paths::fact(value, delimiter.as_char()).map(Matcher::Fact)
}

/// `key:value` on the flat label map: the key exact or a glob, the value a
/// case-sensitive glob.
pub(super) fn label(value: &str, delimiter: Delimiter) -> Result<Matcher, Fault> {
    paths::label(value, delimiter.as_char()).map(Matcher::Label)
}

/// An IP address, or a network in CIDR notation.
pub(super) fn subnet(value: &str) -> Result<Matcher, Fault> {
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (value, None),
    };
    let ip: IpAddr = address.parse().map_err(|_| {
        Fault::new(
            0,
            format!(
                "expected an IP address or a CIDR network (10.0.0.0/8, fd00::/8), found `{value}`"
            ),
        )
    })?;
    let Some(prefix) = prefix else {
        return Ok(Matcher::Subnet(IpNet::from(ip)));
    };
    let longest = if ip.is_ipv4() { 32 } else { 128 };
    if prefix.is_empty() {
        let message = format!("expected a prefix length (0 to {longest}) after `/`");
        return Err(Fault::new(value.len(), message));
    }
    let network = prefix
        .parse::<u8>()
        .ok()
        .and_then(|length| IpNet::new(ip, length).ok())
        .ok_or_else(|| {
            Fault::new(
                address.len() + 1,
                format!("invalid prefix length `{prefix}`: expected 0 to {longest}"),
            )
        })?;
    Ok(Matcher::Subnet(network.trunc()))
}

#[derive(Debug, Clone)]
enum Pattern {
    Glob(Glob),
    Regex(Regex),
}

impl Pattern {
    fn is_match(&self, text: &str) -> bool {
        match self {
            Pattern::Glob(glob) => glob.is_match(text),
            Pattern::Regex(regex) => regex.is_match(text),
        }
    }
}

/// Whether any of the node's addresses, or the strings in its `ipv4` and
/// `ipv6` grains, is in `network`.
fn in_subnet(network: &IpNet, node: &Candidate<'_>) -> bool {
    let contains = |text: &str| {
        // "10.0.0.5/24" and "fe80::1%eth0" are addresses too.
        let address = text.split(['/', '%']).next().unwrap_or(text);
        address
            .parse::<IpAddr>()
            .is_ok_and(|ip| network.contains(&ip.to_canonical()))
    };
    node.addresses.iter().any(|a| contains(a))
        || ["ipv4", "ipv6"]
            .iter()
            .any(|key| match node.grains.get(*key) {
                Some(Value::String(address)) => contains(address),
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(contains),
                _ => false,
            })
}

/// `pattern` anchored at the start only, like Python's `re.match`.
fn anchored_regex(pattern: &str, case: Case) -> Result<Regex, Fault> {
    // Checked alone first: inside `^(?:…)` an unbalanced `)` would close the
    // wrapper and leave the rest unanchored (`a)|(b`).
    let limit = crate::limits::TARGET_REGEX_BYTES;
    RegexBuilder::new(pattern)
        .size_limit(limit)
        .dfa_size_limit(limit)
        .build()
        .map_err(|err| regex_fault(pattern, &err))?;
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .case_insensitive(case == Case::Insensitive)
        .size_limit(limit)
        .dfa_size_limit(limit)
        .build()
        .map_err(|err| regex_fault(pattern, &err))
}

/// The regex crate's reason, at the column its caret points to.
fn regex_fault(pattern: &str, err: &regex::Error) -> Fault {
    let text = match err {
        regex::Error::Syntax(text) => text,
        regex::Error::CompiledTooBig(limit) => {
            return Fault::new(
                0,
                format!("regex too large: it compiles to more than {limit} bytes"),
            );
        }
        _ => return Fault::new(0, format!("invalid regex: {err}")),
    };
    // The crate renders "regex parse error:\n    PATTERN\n    ^^^\nerror: REASON"
    // (with line numbers instead of the indent for patterns of several lines).
    let reason = text
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let column = match lines.as_slice() {
        [_, echoed, carets, ..] if echoed.strip_prefix("    ") == Some(pattern) => {
            carets.find('^').and_then(|caret| caret.checked_sub(4))
        }
        _ => None,
    };
    let at = match column {
        Some(column) => pattern
            .char_indices()
            .nth(column)
            .map_or(pattern.len(), |(at, _)| at),
        None => 0,
    };
    Fault::new(at, format!("invalid regex: {reason}"))
}
