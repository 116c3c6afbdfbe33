//! Route chains (ELB's model). A domain names its first rule (`init`);
//! each filter rule (`ua`, `path`, `header`) continues at `succ` when it
//! matches and at `fail` when it does not; a `backend` rule ends the chain
//! at an upstream. A missing next rule means 403.
//!
//! The types here are the stored shape. [`RouteTable::compile`] turns every
//! domain into a chain the proxy can walk without locks and with regexes
//! compiled once:
//!
//! - `compile` — validation (every problem, with its place) and
//!   compilation: rules in a `Vec`, `succ`/`fail` resolved to positions.
//! - `host` — from a `Host` header to a domain: the exact name, then the
//!   longest `*.` wildcard, then `*`.
//! - `eval` — one request's walk down a chain, and how a [`Decision`] reads.

mod compile;
mod eval;
mod host;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use compile::Chain;
pub(crate) use compile::Problems;
use host::Hosts;

pub use eval::Pick;

/// One domain's rule chain, in ELB's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub init: String,
    pub rules: BTreeMap<String, Rule>,
}

impl Domain {
    /// Checks this chain as [`RouteTable::compile`] does, under the domain
    /// name `name`. Every problem is reported, sorted by rule.
    pub fn validate(
        &self,
        name: &str,
        upstream_exists: &dyn Fn(&str) -> bool,
    ) -> Result<(), Vec<RouteError>> {
        let mut errors = Vec::new();
        compile::domain(name, self, upstream_exists, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            compile::sort(&mut errors);
            Err(errors)
        }
    }

    /// The upstreams the `backend` rules send to, in rule order; an
    /// upstream used twice is listed twice.
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.rules.values().filter_map(|rule| match rule {
            Rule::Backend { servername } => Some(servername.as_str()),
            _ => None,
        })
    }
}

/// One rule, serialised as ELB does: `{"type": "ua", "args": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "lowercase")]
pub enum Rule {
    /// Regex against the lower-cased User-Agent.
    Ua {
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        succ: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail: Option<String>,
    },
    /// A prefix of the path, or a regex (`regex: true`). With `rewrite`,
    /// the path sent upstream becomes the regex's first capture (or what
    /// follows the prefix), always starting with `/`.
    Path {
        pattern: String,
        #[serde(default)]
        regex: bool,
        #[serde(default)]
        rewrite: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        succ: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail: Option<String>,
    },
    /// Regex against a request header's value (absent header: no match).
    Header {
        name: String,
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        succ: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail: Option<String>,
    },
    /// Send the request to the upstream `servername`.
    Backend { servername: String },
}

/// A problem with a route, and exactly where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.place_and_message())]
pub struct RouteError {
    /// Empty for a problem with a whole document (ELB JSON that does not
    /// parse).
    pub domain: String,
    /// The rule, when the problem is inside one.
    pub rule: Option<String>,
    /// The field of the rule (`pattern`, `succ`, `servername`, …), or of
    /// the domain (`init`) when `rule` is `None`.
    pub field: Option<String>,
    pub message: String,
}

impl RouteError {
    /// `domain "example.com", rule "r4", field "pattern": invalid regex: …`,
    /// each part of the place present only when known; a problem with a
    /// whole document is its message alone.
    fn place_and_message(&self) -> String {
        let mut place = Vec::with_capacity(3);
        if !self.domain.is_empty() || self.rule.is_some() || self.field.is_some() {
            place.push(format!("domain {:?}", self.domain));
        }
        if let Some(rule) = &self.rule {
            place.push(format!("rule {rule:?}"));
        }
        if let Some(field) = &self.field {
            place.push(format!("field {field:?}"));
        }
        if place.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", place.join(", "), self.message)
        }
    }
}

/// What the proxy knows of a request when routing it.
pub struct Request<'a> {
    pub path: &'a str,
    /// As sent; rules see it lower-cased.
    pub user_agent: &'a str,
    pub headers: &'a dyn Headers,
}

/// A request's headers as routing reads them: whatever the caller parsed
/// them into.
pub trait Headers {
    /// Whether any value of the header `name` (lower case) satisfies `f`.
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

impl Headers for http::HeaderMap {
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.get_all(name).iter().any(|v| f(v.as_bytes()))
    }
}

/// Where a request goes, and the rules it went through (for `route test`).
///
/// Its `Display` reads as the walk:
/// `r1 (ua: match) → r4 (path: no match) → r3 → backend upstream2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Rule names in the order visited, the final one included.
    pub trace: Vec<String>,
    /// What each rule of `trace` did, in the same order.
    pub steps: Vec<Step>,
    pub outcome: Outcome,
}

/// What one visited rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ua {
        matched: bool,
    },
    /// `rewrote`: the rule changed the path sent upstream.
    Path {
        matched: bool,
        rewrote: bool,
    },
    Header {
        matched: bool,
    },
    Backend,
}

impl Step {
    /// Whether a filter rule matched (it went on at `succ`) or not (at
    /// `fail`); `None` for a backend.
    pub fn matched(self) -> Option<bool> {
        match self {
            Step::Ua { matched } | Step::Path { matched, .. } | Step::Header { matched } => {
                Some(matched)
            }
            Step::Backend => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forward to `upstream`; `path` is set when a rule rewrote it.
    Backend {
        upstream: String,
        path: Option<String>,
    },
    /// A rule had no next rule for this request: 403.
    Forbidden { rule: String },
}

/// Every domain's chain, compiled; what the proxy routes with.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// One per domain, in name order.
    chains: Vec<Chain>,
    /// Which chain serves which host.
    hosts: Hosts,
}

impl RouteTable {
    /// Checks and compiles every domain. `upstream_exists` says whether a
    /// backend rule's `servername` names a known upstream. Every problem is
    /// reported, not just the first, sorted by domain and then rule.
    pub fn compile(
        domains: &BTreeMap<String, Domain>,
        upstream_exists: &dyn Fn(&str) -> bool,
    ) -> Result<RouteTable, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut table = RouteTable::default();
        for (name, domain) in domains {
            if let Some(chain) = compile::domain(name, domain, upstream_exists, &mut errors) {
                table.hosts.insert(name, table.chains.len());
                table.chains.push(chain);
            }
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            compile::sort(&mut errors);
            Err(errors)
        }
    }

    /// The decision for a request to `host` (a `Host` header: case, a
    /// `:port` and a trailing dot are ignored); `None` when no domain
    /// matches (404).
    pub fn route(&self, host: &str, request: &Request<'_>) -> Option<Decision> {
        let chain = self.hosts.find(host)?;
        Some(self.chains[chain].evaluate(request))
    }

    /// As [`RouteTable::route`], only where the request goes: what the
    /// proxy calls per request (no trace, nothing allocated for it).
    pub fn pick(&self, host: &str, request: &Request<'_>) -> Option<Pick<'_>> {
        let chain = self.hosts.find(host)?;
        Some(self.chains[chain].pick(request))
    }

    /// The domain that serves `host`: its exact name, else the longest
    /// `*.` wildcard it is under, else `*`.
    pub fn domain_for(&self, host: &str) -> Option<&str> {
        let chain = self.hosts.find(host)?;
        Some(&self.chains[chain].domain)
    }

    /// The domains compiled, in name order.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.chains.iter().map(|chain| chain.domain.as_str())
    }
}

/// Checks a domain name: lower-case letters, digits, `-` and `.` in
/// non-empty labels, with an optional leading `*.`; or `*` alone, which
/// matches every host no other domain does.
pub fn validate_domain_name(name: &str) -> Result<(), RouteError> {
    compile::domain_name(name).map_err(|message| RouteError {
        domain: name.to_owned(),
        rule: None,
        field: None,
        message,
    })
}
