//! ELB's JSON formats, for `clusterctl route import`.
//!
//! Domains: `{"example.com": {"init": "r1", "rules": {"r1": {"type": "ua",
//! "args": {…}}}}}` — exactly [`Domain`]'s serialisation.
//! Upstreams: `{"up1": {"127.0.0.1:8088": "", "10.0.0.2:80": "max_fails=2
//! weight=10"}}` (the PUT shape) or the GET dump's lists of
//! `{"addr", "weight", "max_fails", "fail_timeout"}` (seconds).
//!
//! Both parse in two stages, the document into JSON values and then each
//! domain, rule or server on its own, so that every problem is reported
//! with the place it is in.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::routes::{Domain, Problems, RouteError, Rule};
use crate::upstream::{self, Server, ServerError};

/// Parses ELB's domain JSON. Errors name the domain and rule. Only the
/// shape is checked here; names, regexes, links between rules and
/// upstreams are [`RouteTable::compile`](crate::RouteTable::compile)'s.
pub fn parse_domains(json: &str) -> Result<BTreeMap<String, Domain>, Vec<RouteError>> {
    let document: BTreeMap<String, Value> = serde_json::from_str(json).map_err(|err| {
        vec![RouteError {
            domain: String::new(),
            rule: None,
            field: None,
            message: document_problem("an object of domains", &err),
        }]
    })?;
    let mut errors = Vec::new();
    let mut domains = BTreeMap::new();
    for (name, value) in document {
        let mut problems = Problems {
            domain: &name,
            errors: &mut errors,
            found: false,
        };
        if let Some(domain) = domain(value, &mut problems) {
            domains.insert(name, domain);
        }
    }
    if errors.is_empty() {
        Ok(domains)
    } else {
        Err(errors)
    }
}

/// One domain; `None` when it has a problem.
fn domain(value: Value, problems: &mut Problems<'_>) -> Option<Domain> {
    let Value::Object(mut fields) = value else {
        let message = format!(
            r#"expected {{"init": …, "rules": {{…}}}}, found {}"#,
            kind(&value)
        );
        problems.push(None, None, message);
        return None;
    };
    let init = match fields.remove("init") {
        Some(Value::String(init)) => Some(init),
        Some(other) => {
            let message = format!("expected a rule name, found {}", kind(&other));
            problems.push(None, Some("init"), message);
            None
        }
        None => {
            problems.push(None, Some("init"), "missing".to_owned());
            None
        }
    };
    let rules = match fields.remove("rules") {
        Some(Value::Object(rules)) => rules_of(rules, problems),
        Some(other) => {
            let message = format!("expected an object of rules, found {}", kind(&other));
            problems.push(None, Some("rules"), message);
            None
        }
        None => {
            problems.push(None, Some("rules"), "missing".to_owned());
            None
        }
    };
    Some(Domain {
        init: init?,
        rules: rules?,
    })
}

const RULE_TYPES: [&str; 4] = ["ua", "path", "header", "backend"];

/// One domain's rules; `None` when any has a problem.
fn rules_of(
    rules: Map<String, Value>,
    problems: &mut Problems<'_>,
) -> Option<BTreeMap<String, Rule>> {
    let before = problems.errors.len();
    let mut parsed = BTreeMap::new();
    for (name, value) in rules {
        let mut fail =
            |field: Option<&str>, message: String| problems.push(Some(&name), field, message);
        let problem = match value.get("type") {
            Some(Value::String(known)) if RULE_TYPES.contains(&known.as_str()) => None,
            Some(Value::String(other)) => Some(format!(
                "unknown rule type {other:?} (expected ua, path, header or backend)"
            )),
            Some(other) => Some(format!("expected a string, found {}", kind(other))),
            None if value.is_object() => Some("missing".to_owned()),
            None => {
                let message = format!(
                    r#"expected {{"type": …, "args": {{…}}}}, found {}"#,
                    kind(&value)
                );
                fail(None, message);
                continue;
            }
        };
        if let Some(message) = problem {
            fail(Some("type"), message);
            continue;
        }
        match serde_json::from_value::<Rule>(regex_meant(value)) {
            Ok(rule) => {
                parsed.insert(name, rule);
            }
            Err(err) => fail(Some("args"), err.to_string()),
        }
    }
    (problems.errors.len() == before).then_some(parsed)
}

/// A path rule sent without `regex` whose pattern cannot be a prefix (it
/// does not start with `/`) is read as the regex it was meant to be:
/// `elb.py`'s `PathRule(name, pattern, regex, rewrite, …)` takes the flag
/// but its `dump()` never sends it, so ELB's own README example arrives as
/// `{"pattern": "^\/blog\/(\S+)$"}`. An explicit `"regex": false` is kept
/// (and refused as a prefix).
fn regex_meant(mut value: Value) -> Value {
    let is_path = value.get("type").and_then(Value::as_str) == Some("path");
    if let Some(Value::Object(args)) = value.get_mut("args")
        && is_path
        && !args.contains_key("regex")
        && args
            .get("pattern")
            .and_then(Value::as_str)
            .is_some_and(|p| !p.starts_with('/'))
    {
        args.insert("regex".to_owned(), Value::Bool(true));
    }
    value
}

/// Parses ELB's upstream JSON (either shape). Every server is validated;
/// errors name the upstream and the server.
pub fn parse_upstreams(json: &str) -> Result<BTreeMap<String, Vec<Server>>, Vec<ServerError>> {
    let document: BTreeMap<String, Value> = serde_json::from_str(json).map_err(|err| {
        vec![ServerError {
            message: document_problem("an object of upstreams", &err),
        }]
    })?;
    let mut errors = Vec::new();
    let mut upstreams = BTreeMap::new();
    for (name, value) in document {
        let before = errors.len();
        if let Err(err) = upstream::validate_name(&name) {
            errors.push(err);
        }
        let mut problem = |server: &str, message: String| {
            errors.push(ServerError {
                message: format!("upstream {name:?}, {server}: {message}"),
            });
        };
        let mut servers = Vec::new();
        match value {
            // The PUT shape: address → nginx-style parameters.
            Value::Object(entries) => {
                for (addr, params) in entries {
                    let place = format!("server {addr:?}");
                    let Value::String(params) = params else {
                        let message =
                            format!("expected a string of parameters, found {}", kind(&params));
                        problem(&place, message);
                        continue;
                    };
                    let mut server = Server::new(addr);
                    let mut problems = parameters(&params, &mut server);
                    problems.extend(server.problems());
                    problems.into_iter().for_each(|p| problem(&place, p));
                    servers.push(server);
                }
            }
            // The GET dump's shape.
            Value::Array(entries) => {
                for (i, entry) in entries.into_iter().enumerate() {
                    match serde_json::from_value::<DumpedServer>(entry) {
                        Ok(dumped) => {
                            let server = dumped.into_server();
                            let place = format!("server {:?}", server.addr);
                            server
                                .problems()
                                .into_iter()
                                .for_each(|p| problem(&place, p));
                            servers.push(server);
                        }
                        Err(err) => problem(&format!("server #{}", i + 1), err.to_string()),
                    }
                }
            }
            other => problem(
                "servers",
                format!(
                    r#"expected {{"host:port": "parameters", …}} or a list of servers, found {}"#,
                    kind(&other)
                ),
            ),
        }
        if errors.len() == before {
            upstreams.insert(name, servers);
        }
    }
    if errors.is_empty() {
        Ok(upstreams)
    } else {
        Err(errors)
    }
}

/// A server as ELB's GET dumps it; `name` and the counters are ignored.
#[derive(Deserialize)]
struct DumpedServer {
    addr: String,
    weight: Option<u32>,
    max_fails: Option<u32>,
    /// Seconds.
    fail_timeout: Option<u64>,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    down: bool,
}

impl DumpedServer {
    fn into_server(self) -> Server {
        let mut server = Server::new(self.addr);
        server.weight = self.weight.unwrap_or(server.weight);
        server.max_fails = self.max_fails.unwrap_or(server.max_fails);
        if let Some(seconds) = self.fail_timeout {
            server.fail_timeout_ms = seconds.saturating_mul(1000);
        }
        server.backup = self.backup;
        server.down = self.down;
        server
    }
}

/// Applies nginx's `server` parameters (`weight=N max_fails=N
/// fail_timeout=TIME backup down`) to `server`; the problems, one message
/// each. A `#` starts a comment, as in nginx's files (the admin API's GET
/// says there which role a server comes from).
pub fn parameters(text: &str, server: &mut Server) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let text = text.split_once('#').map_or(text, |(before, _)| before);
    for word in text.split_ascii_whitespace() {
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (word, None),
        };
        let known = ["weight", "max_fails", "fail_timeout", "backup", "down"].contains(&key);
        if known && seen.contains(&key) {
            problems.push(format!("{key} is given twice"));
            continue;
        }
        seen.push(key);
        let problem = match (key, value) {
            ("backup", None) => {
                server.backup = true;
                None
            }
            ("backup", Some(_)) => Some("backup takes no value".to_owned()),
            ("down", None) => {
                server.down = true;
                None
            }
            ("down", Some(_)) => Some("down takes no value".to_owned()),
            ("weight" | "max_fails" | "fail_timeout", None) => {
                Some(format!("{key} needs a value ({key}=…)"))
            }
            ("weight", Some(value)) => count(key, value).map(|n| server.weight = n).err(),
            ("max_fails", Some(value)) => count(key, value).map(|n| server.max_fails = n).err(),
            ("fail_timeout", Some(value)) => time_ms(key, value)
                .map(|ms| server.fail_timeout_ms = ms)
                .err(),
            _ => Some(format!(
                "unknown parameter {word:?} (expected weight=N, max_fails=N, fail_timeout=TIME, backup or down)"
            )),
        };
        problems.extend(problem);
    }
    problems
}

fn count(key: &str, value: &str) -> Result<u32, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key} {value:?} is not a number"));
    }
    value
        .parse()
        .map_err(|_| format!("{key} {value:?} is too large"))
}

/// nginx's times: seconds when bare, else with `ms`, `s`, `m` or `h`.
fn time_ms(key: &str, value: &str) -> Result<u64, String> {
    let (digits, unit_ms) = if let Some(digits) = value.strip_suffix("ms") {
        (digits, 1)
    } else if let Some(digits) = value.strip_suffix('s') {
        (digits, 1000)
    } else if let Some(digits) = value.strip_suffix('m') {
        (digits, 60_000)
    } else if let Some(digits) = value.strip_suffix('h') {
        (digits, 3_600_000)
    } else {
        (value, 1000)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{key} {value:?} is not a time (e.g. 10, 10s, 500ms, 1m or 1h)"
        ));
    }
    // Too large to count in milliseconds is too long; validation says so.
    Ok(digits.parse().unwrap_or(u64::MAX).saturating_mul(unit_ms))
}

/// The message for a document that is not JSON, or not the expected shape.
fn document_problem(expected: &str, err: &serde_json::Error) -> String {
    match err.classify() {
        serde_json::error::Category::Data => format!("expected {expected}: {err}"),
        _ => format!("invalid JSON: {err}"),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
