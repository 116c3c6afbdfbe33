//! A source's bytes to facts, pure: JSON objects, YAML mappings, TOML
//! tables and `key=value` lines, and the rule for fact names.
//!
//! Each top-level key is a fact. A key whose name is refused is a problem
//! of its source and the rest of the source still counts; a source that
//! does not parse at all is one problem and gives no facts. A source that
//! is empty, or only white space, gives no facts and no problem.

use serde_json::{Map, Value};

/// At most this many bytes in a fact's name.
pub const NAME_MAX: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Toml,
    /// `key=value` lines, as Facter's `.txt` facts and executables print.
    KeyValue,
}

/// What one source gave: its facts, and what was refused in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub facts: Map<String, Value>,
    /// One line each: a refused name, a `key=value` line without `=`.
    pub problems: Vec<String>,
}

/// The facts in `bytes`, read as `format`; `Err` when none can be had.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 text: a bad byte at offset {}", e.valid_up_to()))?;
    if text.trim().is_empty() {
        return Ok(Parsed::default());
    }
    let table = match format {
        Format::Json => json(text)?,
        Format::Yaml => yaml(text)?,
        Format::Toml => toml(text)?,
        Format::KeyValue => return Ok(key_value(text)),
    };
    let mut parsed = Parsed::default();
    for (name, value) in table {
        match check_name(&name) {
            Ok(()) => {
                parsed.facts.insert(name, value);
            }
            Err(problem) => parsed.problems.push(problem),
        }
    }
    Ok(parsed)
}

/// What an executable printed: a JSON object when it opens with `{`, else
/// `key=value` lines.
pub fn output(bytes: &[u8]) -> Result<Parsed, String> {
    let json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    parse(if json { Format::Json } else { Format::KeyValue }, bytes)
}

/// A fact's name: not empty, at most [`NAME_MAX`] bytes, no control
/// characters (it is shown in logs, tables and target expressions).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a fact name is empty".into());
    }
    if name.len() > NAME_MAX {
        let shown: String = name.chars().take(32).collect();
        return Err(format!(
            "fact name {shown:?}… is longer than {NAME_MAX} bytes"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("fact name {name:?} has a control character"));
    }
    Ok(())
}

/// What a value is, for "not a JSON object: a list".
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn json(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!("not a JSON object: {}", kind(&other))),
        Err(e) => Err(format!("not a JSON object: {e}")),
    }
}

/// A mapping's keys are taken as strings whatever YAML made of them
/// (`1: a` is the fact "1"); `.inf` and `.nan` become null, as JSON has
/// no such numbers.
fn yaml(text: &str) -> Result<Map<String, Value>, String> {
    match serde_yaml_ng::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        // A document of comments or `---` alone.
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(format!("not a YAML mapping: {}", kind(&other))),
        Err(e) => Err(format!("not a YAML mapping: {e}")),
    }
}

fn toml(text: &str) -> Result<Map<String, Value>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let place = e
            .span()
            .map(|span| format!(" at {}", line_column(text, span.start)))
            .unwrap_or_default();
        format!("not a TOML table: {}{place}", e.message().trim_end())
    })?;
    Ok(table.into_iter().map(|(k, v)| (k, from_toml(v))).collect())
}

/// TOML's datetimes as the strings they were written as; infinite and
/// NaN floats as null.
fn from_toml(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(from_toml).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, from_toml(v))).collect())
        }
    }
}

/// "line 3 column 7" for a byte offset into `text`.
fn line_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    format!("line {line} column {column}")
}

/// Facter's `key=value` lines: split at the first `=`, both sides
/// trimmed, blank lines skipped; values are strings. A key given twice
/// keeps its last value.
fn key_value(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            parsed.problems.push(format!("line {} has no \"=\"", i + 1));
            continue;
        };
        let name = name.trim();
        match check_name(name) {
            Ok(()) => {
                parsed
                    .facts
                    .insert(name.to_owned(), Value::String(value.trim().to_owned()));
            }
            Err(problem) => parsed.problems.push(format!("line {}: {problem}", i + 1)),
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `text` read as `format` gives `facts` and `problems`, or fails with
    /// `Err(problem)`.
    fn check(format: Format, text: &str, want: Result<(Value, &[&str]), &str>) {
        let got = parse(format, text.as_bytes());
        let want = want
            .map(|(facts, problems)| Parsed {
                facts: facts.as_object().expect("facts are an object").clone(),
                problems: problems.iter().map(|p| p.to_string()).collect(),
            })
            .map_err(str::to_owned);
        assert_eq!(got, want, "{format:?}: {text:?}");
    }

    #[test]
    fn each_format_gives_its_top_level_keys_with_their_types() {
        use Format::*;
        let none: &[&str] = &[];
        for (format, text, want) in [
            (
                Json,
                r#"{"rack": 4, "dc": {"name": "ams1"}}"#,
                json!({"rack": 4, "dc": {"name": "ams1"}}),
            ),
            (
                Yaml,
                "rack: 4\nssd: true\ndisks: [sda, sdb]\n",
                json!({"rack": 4, "ssd": true, "disks": ["sda", "sdb"]}),
            ),
            (Yaml, "1: one\n", json!({"1": "one"})),
            (Yaml, "# nothing yet\n---\n", json!({})),
            (
                Toml,
                "rack = 4\n[dc]\nname = \"ams1\"\n",
                json!({"rack": 4, "dc": {"name": "ams1"}}),
            ),
            (
                Toml,
                "since = 2024-05-01T10:00:00Z\n",
                json!({"since": "2024-05-01T10:00:00Z"}),
            ),
            (
                KeyValue,
                "role = web\n\n  owner=ops=team  \n",
                json!({"role": "web", "owner": "ops=team"}),
            ),
            (
                KeyValue,
                "a=1\na=2\nempty=\n",
                json!({"a": "2", "empty": ""}),
            ),
            (Json, " \n\t", json!({})),
            (KeyValue, "", json!({})),
        ] {
            check(format, text, Ok((want, none)));
        }
    }

    #[test]
    fn malformed_sources_say_where() {
        use Format::*;
        for (format, text, want) in [
            (
                Json,
                r#"{"a": }"#,
                "not a JSON object: expected value at line 1 column 7",
            ),
            (Json, "[1, 2]", "not a JSON object: a list"),
            (Yaml, "- a\n- b\n", "not a YAML mapping: a list"),
            (
                Toml,
                "a = \n",
                "not a TOML table: string values must be quoted, expected literal string at line 1 column 5",
            ),
        ] {
            check(format, text, Err(want));
        }
        assert_eq!(
            parse(Format::KeyValue, b"a=\xff\n"),
            Err("not UTF-8 text: a bad byte at offset 2".into())
        );
        let yaml = parse(Format::Yaml, b"a: [1\n").unwrap_err();
        assert!(
            yaml.starts_with("not a YAML mapping: ") && yaml.contains("line"),
            "{yaml}"
        );
    }

    #[test]
    fn refused_names_and_lines_leave_the_rest_of_the_source() {
        let long = "n".repeat(NAME_MAX + 1);
        check(
            Format::Json,
            &format!(r#"{{"": 1, "{long}": 2, "a\u0007b": 3, "ok": 4}}"#),
            Ok((
                json!({"ok": 4}),
                &[
                    "a fact name is empty",
                    "fact name \"a\\u{7}b\" has a control character",
                    &format!("fact name {:?}… is longer than 128 bytes", "n".repeat(32)),
                ],
            )),
        );
        check(
            Format::KeyValue,
            "ok=1\njust words\n=nameless\n",
            Ok((
                json!({"ok": "1"}),
                &["line 2 has no \"=\"", "line 3: a fact name is empty"],
            )),
        );
        assert_eq!(check_name(&"n".repeat(NAME_MAX)), Ok(()));
    }

    #[test]
    fn executables_print_json_or_key_value_lines() {
        assert_eq!(
            output(b"\n  {\"a\": [1]}\n").unwrap().facts["a"],
            json!([1])
        );
        assert_eq!(output(b"a=1\n").unwrap().facts["a"], "1");
        assert_eq!(
            output(b"{oops").unwrap_err(),
            "not a JSON object: key must be a string at line 1 column 2"
        );
    }
}
