//! The leaf matchers a target expression is built from, one per kind that
//! looks at a node: name globs, regexes and lists, grains (nested keys, lists,
//! values that contain `:`), labels, subnets and roles. Each is compiled once
//! from its value text by the function named after its kind, which reports a
//! [`Fault`] at a byte offset into that text; [`Matcher::matches`] then
//! answers for a node without allocating.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::glob::{Case, Glob};
use super::{Candidate, Fault};

#[derive(Debug, Clone)]
pub(super) enum Matcher {
    Name(Glob),
    NameRegex(Regex),
    /// Sorted, without duplicates.
    Names(Vec<String>),
    Grain(Vec<GrainReading>),
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
            Matcher::Grain(readings) => readings.iter().any(|r| r.matches(node.grains)),
            Matcher::Label(readings) => readings.iter().any(|r| {
                node.labels
                    .get(&r.key)
                    .is_some_and(|value| r.value.is_match(value))
            }),
            Matcher::Subnet(network) => in_subnet(network, node),
            Matcher::Role(glob) => node.roles.iter().any(|role| glob.is_match(role)),
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
pub(super) fn grain(value: &str) -> Result<Matcher, Fault> {
    grain_readings(value, |v| {
        Glob::new(v, Case::Insensitive).map(Pattern::Glob)
    })
}

/// `key:value` with a regex for the value, anchored at the start and
/// case-insensitive like Salt's (which lowercases both sides).
pub(super) fn grain_regex(value: &str) -> Result<Matcher, Fault> {
    grain_readings(value, |v| {
        anchored_regex(v, Case::Insensitive).map(Pattern::Regex)
    })
}

/// `key:value` on the flat label map: exact key, case-sensitive glob value.
pub(super) fn label(value: &str) -> Result<Matcher, Fault> {
    let mut readings = Vec::new();
    for (first, colon) in colons(value)?.into_iter().enumerate() {
        match Glob::new(&value[colon + 1..], Case::Sensitive) {
            Ok(glob) => readings.push(LabelReading {
                key: value[..colon].to_owned(),
                value: glob,
            }),
            Err(fault) if first == 0 => return Err(fault.shifted(colon + 1)),
            Err(_) => {}
        }
    }
    Ok(Matcher::Label(readings))
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

/// One way of reading `key:value` text whose value may itself contain `:`:
/// for `url:http://host:8080` the readings are `url` → `http://host:8080`,
/// `url:http` → `//host:8080` and `url:http://host` → `8080`. A node
/// matches when any reading does, as in Salt's `subdict_match`.
#[derive(Debug, Clone)]
pub(super) struct GrainReading {
    path: Vec<String>,
    /// As written: a key name when the path leads to an object.
    value_text: String,
    value: Pattern,
}

#[derive(Debug, Clone)]
pub(super) struct LabelReading {
    key: String,
    value: Glob,
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

/// Byte offsets of the `:`s in `key:value` text, or why it is not that.
fn colons(text: &str) -> Result<Vec<usize>, Fault> {
    let colons: Vec<usize> = text.match_indices(':').map(|(at, _)| at).collect();
    match colons.first() {
        None => Err(Fault::new(0, format!("expected KEY:VALUE, found `{text}`"))),
        Some(0) => Err(Fault::new(0, "expected KEY:VALUE, the key is empty")),
        Some(_) => Ok(colons),
    }
}

/// Every reading of `text`. The first (the whole text after the first `:`)
/// is what the writer most likely meant, so its value must compile; a later
/// one that does not is skipped, as Salt does.
fn grain_readings(
    text: &str,
    compile: impl Fn(&str) -> Result<Pattern, Fault>,
) -> Result<Matcher, Fault> {
    let mut readings = Vec::new();
    for (first, colon) in colons(text)?.into_iter().enumerate() {
        let value_text = &text[colon + 1..];
        match compile(value_text) {
            Ok(value) => readings.push(GrainReading {
                path: text[..colon].split(':').map(str::to_owned).collect(),
                value_text: value_text.to_owned(),
                value,
            }),
            Err(fault) if first == 0 => return Err(fault.shifted(colon + 1)),
            Err(_) => {}
        }
    }
    Ok(Matcher::Grain(readings))
}

impl GrainReading {
    fn matches(&self, grains: &serde_json::Map<String, Value>) -> bool {
        let Some((top, rest)) = self.path.split_first() else {
            return false;
        };
        grains
            .get(top)
            .is_some_and(|grain| walk(grain, rest, &|found| self.matches_found(found)))
    }

    /// Whether the value found at the end of the key path matches.
    fn matches_found(&self, found: &Value) -> bool {
        match found {
            // As in Salt: `datacenter:*` or `datacenter:rack` asks whether
            // the key exists.
            Value::Object(object) => {
                self.value_text == "*" || object.contains_key(&self.value_text)
            }
            Value::Array(items) => items.iter().any(|item| self.matches_found(item)),
            Value::String(text) => self.value.is_match(text),
            Value::Bool(true) => self.value.is_match("true"),
            Value::Bool(false) => self.value.is_match("false"),
            Value::Null => self.value.is_match("null"),
            Value::Number(number) => {
                let mut text = NumberText::default();
                match write!(text, "{number}") {
                    Ok(()) => self.value.is_match(text.as_str()),
                    Err(_) => self.value.is_match(&number.to_string()),
                }
            }
        }
    }
}

/// Follows `path` from `value`: through objects by key, through lists by
/// index (`ipv4:0`) or else into every object in the list that holds the
/// key; `at_end` judges what is found there.
fn walk(value: &Value, path: &[String], at_end: &dyn Fn(&Value) -> bool) -> bool {
    let Some((key, rest)) = path.split_first() else {
        return at_end(value);
    };
    match value {
        Value::Object(object) => object.get(key).is_some_and(|v| walk(v, rest, at_end)),
        Value::Array(items) => match key.parse::<usize>() {
            Ok(index) => items.get(index).is_some_and(|v| walk(v, rest, at_end)),
            Err(_) => items
                .iter()
                .filter_map(|item| item.as_object()?.get(key))
                .any(|v| walk(v, rest, at_end)),
        },
        _ => false,
    }
}

/// A number's JSON text without a heap allocation; long enough for any `u64`,
/// `i64` or shortest-form `f64`.
#[derive(Default)]
struct NumberText {
    bytes: [u8; 32],
    len: usize,
}

impl NumberText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for NumberText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
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
