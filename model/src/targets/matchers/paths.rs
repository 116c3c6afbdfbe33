//! Key paths through structured data, what `G@`, `P@` and `F@` follow into
//! a node's grains or facts, and the keys `I@` looks up among its labels.
//! A key is exact, or a glob on the keys at its level (`G@a:*:c:v`); a list
//! on the way is looked through, its objects descended into, and a numeric
//! key (or a glob) also picks elements by index. At the end of the path the
//! value is compared as text; an object there is matched by its keys (by
//! name, or by the value's glob).
//!
//! Grain text is read every way it can be, as Salt's `subdict_match` does:
//! for `url:http://host:8080` the readings are `url` → `http://host:8080`,
//! `url:http` → `//host:8080` and `url:http://host` → `8080`, and a node
//! matches when any does. A fact path is dotted, so its text has one
//! reading: `os.release.major:12`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::Pattern;
use crate::targets::Fault;
use crate::targets::glob::{Case, Glob, KeyGlob};

/// How many keys a path follows (see the limit's reason).
const MAX_DEPTH: usize = crate::limits::TARGET_MAX_KEY_DEPTH;

/// One key of a path.
#[derive(Debug, Clone)]
pub(in crate::targets) enum Key {
    Exact(String),
    /// Text with `*`, `?` or `[`: matches a key equal to the text or matched
    /// by the glob (case-sensitive, as keys are), and in a list the elements
    /// whose index it matches. No regex: a path may have many.
    Glob {
        text: String,
        glob: KeyGlob,
    },
}

impl Key {
    fn new(text: &str) -> Result<Key, Fault> {
        if !text.contains(['*', '?', '[']) {
            return Ok(Key::Exact(text.to_owned()));
        }
        let glob = KeyGlob::new(text)?;
        Ok(Key::Glob {
            text: text.to_owned(),
            glob,
        })
    }

    fn matches(&self, key: &str) -> bool {
        match self {
            Key::Exact(exact) => exact == key,
            Key::Glob { text, glob } => text == key || glob.is_match(key),
        }
    }
}

/// `key<d>key<d>value` text compiled for every reading of it.
#[derive(Debug, Clone)]
pub(in crate::targets) struct Paths {
    /// The text after the prefix, which the readings' values are cut from.
    text: String,
    /// The keys, split at every delimiter; a reading follows the first
    /// `depth` of them.
    keys: Vec<Key>,
    readings: Vec<Reading>,
}

#[derive(Debug, Clone)]
struct Reading {
    depth: usize,
    /// Where the value starts in `text`.
    value_at: usize,
    value: Pattern,
}

/// Byte offsets of `delimiter` in `text`, or why `text` is not
/// `KEY<delimiter>VALUE`.
fn delimiters(text: &str, delimiter: char) -> Result<Vec<usize>, Fault> {
    let at: Vec<usize> = text.match_indices(delimiter).map(|(at, _)| at).collect();
    match at.first() {
        None => Err(Fault::new(
            0,
            format!("expected KEY{delimiter}VALUE, found `{text}`"),
        )),
        Some(0) => Err(Fault::new(
            0,
            format!("expected KEY{delimiter}VALUE, the key is empty"),
        )),
        Some(_) => Ok(at),
    }
}

/// Grain text: nested keys and the value split by `delimiter`, every
/// reading of it (up to [`MAX_DEPTH`] keys deep). The first (one key, the
/// rest the value) is what the writer most likely meant, so its key and
/// value must compile; a later reading that does not is skipped, as Salt
/// does.
pub(super) fn grain(
    text: &str,
    delimiter: char,
    compile: impl Fn(&str) -> Result<Pattern, Fault>,
) -> Result<Paths, Fault> {
    let at = delimiters(text, delimiter)?;
    let step = delimiter.len_utf8();
    let mut keys = Vec::new();
    let mut start = 0;
    for &end in at.iter().take(MAX_DEPTH) {
        match Key::new(&text[start..end]) {
            Ok(key) => keys.push(key),
            Err(fault) if start == 0 => return Err(fault),
            // This key and every deeper reading are invalid.
            Err(_) => break,
        }
        start = end + step;
    }
    let mut readings = Vec::new();
    for (i, &end) in at.iter().enumerate().take(keys.len()) {
        let value_at = end + step;
        match compile(&text[value_at..]) {
            Ok(value) => readings.push(Reading {
                depth: i + 1,
                value_at,
                value,
            }),
            Err(fault) if i == 0 => return Err(fault.shifted(value_at)),
            Err(_) => {}
        }
    }
    Ok(Paths {
        text: text.to_owned(),
        keys,
        readings,
    })
}

/// Fact text: a dotted path (`os.release.major`), `delimiter`, a glob.
pub(super) fn fact(text: &str, delimiter: char) -> Result<Paths, Fault> {
    let Some(split) = text.find(delimiter) else {
        return Err(Fault::new(
            0,
            format!(
                "expected PATH{delimiter}VALUE with a dotted path (os.family{delimiter}Debian), found `{text}`"
            ),
        ));
    };
    if split == 0 {
        return Err(Fault::new(
            0,
            format!("expected PATH{delimiter}VALUE, the path is empty"),
        ));
    }
    let mut keys = Vec::new();
    let mut start = 0;
    for piece in text[..split].split('.') {
        if keys.len() == MAX_DEPTH {
            return Err(Fault::new(
                start,
                format!("a fact path of more than {MAX_DEPTH} keys"),
            ));
        }
        if piece.is_empty() {
            return Err(Fault::new(
                start,
                "empty key in the fact path (two dots, or a dot at an end)",
            ));
        }
        keys.push(Key::new(piece).map_err(|fault| fault.shifted(start))?);
        start += piece.len() + 1;
    }
    let value_at = split + delimiter.len_utf8();
    let value =
        Glob::new(&text[value_at..], Case::Insensitive).map_err(|fault| fault.shifted(value_at))?;
    Ok(Paths {
        text: text.to_owned(),
        readings: vec![Reading {
            depth: keys.len(),
            value_at,
            value: Pattern::Glob(value),
        }],
        keys,
    })
}

impl Paths {
    pub(super) fn readings(&self) -> usize {
        self.readings.len()
    }

    pub(super) fn matches(&self, root: &Map<String, Value>) -> bool {
        self.readings.iter().any(|reading| {
            let end = End {
                value: &reading.value,
                text: &self.text[reading.value_at..],
            };
            in_object(root, &self.keys[..reading.depth], &end)
        })
    }
}

/// What is looked for at the end of a path.
struct End<'r> {
    value: &'r Pattern,
    /// The value as written: a key name when the path leads to an object.
    text: &'r str,
}

impl End<'_> {
    fn matches(&self, found: &Value) -> bool {
        match found {
            // As in Salt: `datacenter:*` asks whether the key exists, and
            // `datacenter:rack` whether the object holds `rack`; here a
            // glob may match any of its keys (`datacenter:r*`). A regex
            // does not, as in Salt: with `P|@a|b|c` its first reading
            // (`b|c` under `a`) would match the key `b` of any `a`.
            Value::Object(object) => {
                self.text == "*"
                    || object.contains_key(self.text)
                    || match self.value {
                        Pattern::Glob(glob) => object.keys().any(|key| glob.is_match(key)),
                        Pattern::Regex(_) => false,
                    }
            }
            Value::Array(items) => items.iter().any(|item| self.matches(item)),
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

/// Whether `path` (not empty) leads from `object` to what `end` wants.
fn in_object(object: &Map<String, Value>, path: &[Key], end: &End<'_>) -> bool {
    let Some((key, rest)) = path.split_first() else {
        return false;
    };
    match key {
        Key::Exact(exact) => object.get(exact).is_some_and(|v| walk(v, rest, end)),
        Key::Glob { .. } => object
            .iter()
            .any(|(name, v)| key.matches(name) && walk(v, rest, end)),
    }
}

/// Follows `path` from `value`: through objects by key; through a list by
/// index (`ipv4:0`, `disks:*`) and into every object in it, so that
/// `disks:name:sdb` looks at each disk; `end` judges what is found.
fn walk(value: &Value, path: &[Key], end: &End<'_>) -> bool {
    let Some((key, rest)) = path.split_first() else {
        return end.matches(value);
    };
    match value {
        Value::Object(object) => in_object(object, path, end),
        Value::Array(items) => {
            let by_index = match key {
                Key::Exact(exact) => exact
                    .parse::<usize>()
                    .ok()
                    .and_then(|index| items.get(index))
                    .is_some_and(|v| walk(v, rest, end)),
                Key::Glob { glob, .. } => items.iter().enumerate().any(|(index, v)| {
                    let mut text = NumberText::default();
                    write!(text, "{index}").is_ok()
                        && glob.is_match(text.as_str())
                        && walk(v, rest, end)
                }),
            };
            by_index
                || items
                    .iter()
                    .filter_map(Value::as_object)
                    .any(|object| in_object(object, path, end))
        }
        _ => false,
    }
}

/// One reading of `I@` text: a label key (flat, so it may hold the
/// delimiter: `app:tier`), and a case-sensitive glob for the value.
#[derive(Debug, Clone)]
pub(in crate::targets) struct LabelReading {
    key: Key,
    value: Glob,
}

/// Label text read at every delimiter (the first [`MAX_DEPTH`]: a label
/// key is far shorter), the first reading required to compile as for
/// grains.
pub(super) fn label(text: &str, delimiter: char) -> Result<Vec<LabelReading>, Fault> {
    let mut readings = Vec::new();
    let step = delimiter.len_utf8();
    let at = delimiters(text, delimiter)?;
    for (first, at) in at.into_iter().take(MAX_DEPTH).enumerate() {
        let reading = Key::new(&text[..at]).and_then(|key| {
            Glob::new(&text[at + step..], Case::Sensitive)
                .map(|value| LabelReading { key, value })
                .map_err(|fault| fault.shifted(at + step))
        });
        match reading {
            Ok(reading) => readings.push(reading),
            Err(fault) if first == 0 => return Err(fault),
            Err(_) => {}
        }
    }
    Ok(readings)
}

impl LabelReading {
    pub(super) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.key {
            Key::Exact(key) => labels.get(key).is_some_and(|v| self.value.is_match(v)),
            Key::Glob { .. } => labels
                .iter()
                .any(|(key, v)| self.key.matches(key) && self.value.is_match(v)),
        }
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
