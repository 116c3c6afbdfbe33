//! Table tests for route chains. A walk is checked through [`check`],
//! which compares a request's [`Decision`] as `route test` prints it (or
//! `404`); a refusal through [`check_errors`], which compares every
//! [`RouteError`] as printed. Rule chains are in `tests/chains.rs`, host
//! matching in `tests/hosts.rs`, validation in `tests/validation.rs`.

mod chains;
mod hosts;
mod validation;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::{Decision, Domain, Outcome, Request, RouteError, RouteTable, Step};

/// The upstreams that exist; every other name is unknown.
const UPSTREAMS: &[&str] = &["upstream1", "upstream2", "exact", "wild", "deep", "any"];

fn upstream_exists(name: &str) -> bool {
    UPSTREAMS.contains(&name)
}

/// `{"domain": {…}}` in ELB's JSON, read by serde alone.
fn domains(json: Value) -> BTreeMap<String, Domain> {
    serde_json::from_value(json).unwrap_or_else(|err| panic!("fixture: {err}"))
}

/// A table of the domains in `json`, which compile.
#[track_caller]
fn table(json: Value) -> RouteTable {
    RouteTable::compile(&domains(json), &upstream_exists).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("fixture does not compile:\n{}", errors.join("\n"))
    })
}

/// A table with the one domain `example.com`, whose chain is `chain`.
#[track_caller]
fn chain(chain: Value) -> RouteTable {
    table(json!({ "example.com": chain }))
}

/// What the proxy knows of a request.
struct Req {
    path: &'static str,
    user_agent: &'static str,
    headers: HeaderMap,
}

fn get(path: &'static str) -> Req {
    Req {
        path,
        user_agent: "",
        headers: HeaderMap::new(),
    }
}

impl Req {
    fn ua(self, user_agent: &'static str) -> Req {
        Req { user_agent, ..self }
    }

    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }
}

/// The decision, after checking that the proxy's `pick` ends the same way.
fn route(table: &RouteTable, host: &str, req: &Req) -> Option<Decision> {
    let request = Request {
        path: req.path,
        user_agent: req.user_agent,
        headers: &req.headers,
    };
    let decision = table.route(host, &request);
    let picked = table.pick(host, &request).map(|p| match p {
        super::Pick::Backend { upstream, path } => Outcome::Backend {
            upstream: upstream.to_owned(),
            path,
        },
        super::Pick::Forbidden { rule } => Outcome::Forbidden {
            rule: rule.to_owned(),
        },
    });
    assert_eq!(
        picked,
        decision.as_ref().map(|d| d.outcome.clone()),
        "pick and route disagree"
    );
    decision
}

/// The request to `host` is decided as `expected` reads (`404`: no domain).
#[track_caller]
fn check(table: &RouteTable, host: &str, req: &Req, expected: &str) {
    let decision = route(table, host, req);
    let got = decision.map_or_else(|| "404".to_owned(), |d| d.to_string());
    assert_eq!(
        got, expected,
        "host {host:?}, path {:?}, user agent {:?}",
        req.path, req.user_agent
    );
}

/// `json` is refused with exactly the `expected` errors, in order.
#[track_caller]
fn check_errors(json: Value, expected: &[&str]) {
    let errors = match RouteTable::compile(&domains(json), &upstream_exists) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(errors, expected);
}

/// A rule that sends everything to `upstream`.
fn backend(upstream: &str) -> Value {
    json!({"type": "backend", "args": {"servername": upstream}})
}

/// A domain whose only rule sends everything to `upstream`.
fn only(upstream: &str) -> Value {
    json!({"init": "b", "rules": {"b": backend(upstream)}})
}

/// ELB's README example.
fn readme() -> Value {
    json!({
        "init": "r1",
        "rules": {
            "r1": {"type": "ua", "args": {"pattern": "httpie(\\S+)$", "succ": "r4", "fail": "r3"}},
            "r2": {"type": "backend", "args": {"servername": "upstream1"}},
            "r3": {"type": "backend", "args": {"servername": "upstream2"}},
            "r4": {"type": "path", "args": {"regex": true, "pattern": "^\\/blog\\/(\\S+)$", "succ": "r2", "fail": "r3", "rewrite": false}}
        }
    })
}
