//! The cluster file's TOML shapes. Tables carry their spans, so every
//! problem is reported at its line.
//!
//! ```toml
//! [cluster]
//! name = "shop"
//! base_domain = "shop.internal"
//!
//! [roles.web]
//! service = "web"          # nodes with the role are named web-0, web-1, …
//! naming = "iterative"     # or "masterful"
//! ports = { http = 8080 }
//! aliases = ["www"]        # in every hosts file, on the role's nodes' lines
//!
//! [upstreams.app]
//! role = "web"             # the role's online nodes…
//! port = "http"            # …at a named port of the role, or a number
//!
//! [upstreams.legacy]
//! servers = [{ addr = "10.0.0.9:80", weight = 5 }, { addr = "10.0.0.10:80", backup = true }]
//!
//! [routes."example.com"]
//! init = "r1"
//! rules.r1 = { type = "ua", pattern = "httpie", succ = "r2", fail = "r3" }
//! rules.r2 = { type = "backend", upstream = "app" }
//! rules.r3 = { type = "backend", upstream = "legacy" }
//!
//! [nodegroups]
//! front = "G@roles:web or G@roles:balancer"
//!
//! [labels.web-0]
//! tier = "gold"
//! ```

use super::{DesiredCluster, FileError, RoleDef, Settings};
use cluster_balancer::{Domain, Rule, Server, UpstreamSource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    cluster: FileCluster,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    roles: BTreeMap<String, Spanned<FileRole>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    upstreams: BTreeMap<String, Spanned<FileUpstream>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    routes: BTreeMap<String, Spanned<FileRoute>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    nodegroups: BTreeMap<String, Spanned<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, Spanned<BTreeMap<String, String>>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_domain: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRole {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    naming: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    ports: BTreeMap<String, u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<PortRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    servers: Option<Vec<FileServer>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_fails: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fail_timeout: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_fails: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fail_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    down: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    init: String,
    rules: BTreeMap<String, Spanned<FileRule>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rewrite: Option<bool>,
    /// The header a `header` rule looks at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    succ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fail: Option<String>,
    /// The upstream a `backend` rule sends to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream: Option<String>,
}

/// The lines of one text: its newlines found once, so placing every table
/// of a big file costs a binary search each, not a scan from the start.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Lines {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// 1-based line of a byte offset.
    fn at(&self, offset: usize) -> usize {
        self.0.partition_point(|&newline| newline < offset) + 1
    }
}

fn millis(place: &str, v: &Option<String>, errors: &mut Vec<(String, String)>) -> Option<u64> {
    let v = v.as_ref()?;
    match humantime::parse_duration(v) {
        Ok(d) => Some(d.as_millis() as u64),
        Err(e) => {
            errors.push((
                place.to_owned(),
                format!("fail_timeout {v:?}: {e}; try \"10s\""),
            ));
            None
        }
    }
}

fn rule_of(r: &FileRule) -> Result<Rule, String> {
    let need = |what: &str, v: &Option<String>| {
        v.clone()
            .ok_or_else(|| format!("a {} rule needs `{what}`", r.kind))
    };
    let only = |allowed: &[&str]| -> Result<(), String> {
        let given = [
            ("pattern", r.pattern.is_some()),
            ("regex", r.regex.is_some()),
            ("rewrite", r.rewrite.is_some()),
            ("header", r.header.is_some()),
            ("succ", r.succ.is_some()),
            ("fail", r.fail.is_some()),
            ("upstream", r.upstream.is_some()),
        ];
        match given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            Some((k, _)) => Err(format!("`{k}` does not apply to a {} rule", r.kind)),
            None => Ok(()),
        }
    };
    match r.kind.as_str() {
        "ua" => {
            only(&["pattern", "succ", "fail"])?;
            Ok(Rule::Ua {
                pattern: need("pattern", &r.pattern)?,
                succ: r.succ.clone(),
                fail: r.fail.clone(),
            })
        }
        "path" => {
            only(&["pattern", "regex", "rewrite", "succ", "fail"])?;
            Ok(Rule::Path {
                pattern: need("pattern", &r.pattern)?,
                regex: r.regex.unwrap_or(false),
                rewrite: r.rewrite.unwrap_or(false),
                succ: r.succ.clone(),
                fail: r.fail.clone(),
            })
        }
        "header" => {
            only(&["header", "pattern", "succ", "fail"])?;
            Ok(Rule::Header {
                name: need("header", &r.header)?,
                pattern: need("pattern", &r.pattern)?,
                succ: r.succ.clone(),
                fail: r.fail.clone(),
            })
        }
        "backend" => {
            only(&["upstream"])?;
            Ok(Rule::Backend {
                servername: need("upstream", &r.upstream)?,
            })
        }
        other => Err(format!(
            "unknown rule type {other:?}: expected \"ua\", \"path\", \"header\" or \"backend\""
        )),
    }
}

/// Where each table of a cluster file starts (`upstreams.app` → its line),
/// to place problems the master finds (`labels.web-9: no node named …`).
pub fn locate(text: &str) -> BTreeMap<String, usize> {
    let Ok(file) = toml::from_str::<File>(text) else {
        return BTreeMap::new();
    };
    let at = Lines::of(text);
    let mut lines = BTreeMap::new();
    for (n, r) in &file.roles {
        lines.insert(format!("roles.{n}"), at.at(r.span().start));
    }
    for (n, u) in &file.upstreams {
        lines.insert(format!("upstreams.{n}"), at.at(u.span().start));
    }
    for (d, r) in &file.routes {
        lines.insert(format!("routes.{d:?}"), at.at(r.span().start));
        for (n, rule) in &r.get_ref().rules {
            lines.insert(format!("routes.{d:?}.rules.{n}"), at.at(rule.span().start));
        }
    }
    for (n, e) in &file.nodegroups {
        lines.insert(format!("nodegroups.{n}"), at.at(e.span().start));
    }
    for (n, l) in &file.labels {
        lines.insert(format!("labels.{n}"), at.at(l.span().start));
    }
    lines
}

/// Reads a cluster file. Every problem is reported, each with its line.
pub fn parse(text: &str) -> Result<DesiredCluster, Vec<FileError>> {
    let at = Lines::of(text);
    let file: File = toml::from_str(text).map_err(|e| {
        vec![FileError {
            line: e.span().map(|s| at.at(s.start)),
            message: e.message().trim().to_owned(),
        }]
    })?;
    // Where each table starts, to place problems found later.
    let mut lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut d = DesiredCluster {
        settings: Settings {
            name: file.cluster.name.clone(),
            base_domain: file.cluster.base_domain.clone(),
            roles: BTreeMap::new(),
        },
        ..DesiredCluster::default()
    };
    lines.insert("cluster".into(), 1);
    for (name, role) in &file.roles {
        let place = format!("roles.{name}");
        lines.insert(place.clone(), at.at(role.span().start));
        let r = role.get_ref();
        let naming = match r.naming.as_deref().map(str::parse) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                errors.push((place.clone(), e));
                None
            }
        };
        d.settings.roles.insert(
            name.clone(),
            RoleDef {
                service: r.service.clone(),
                naming,
                ports: r.ports.clone(),
                aliases: r.aliases.clone(),
            },
        );
    }
    for (name, up) in &file.upstreams {
        let place = format!("upstreams.{name}");
        lines.insert(place.clone(), at.at(up.span().start));
        let u = up.get_ref();
        let fail_timeout = millis(&place, &u.fail_timeout, &mut errors);
        let source = match (&u.role, &u.servers) {
            (Some(role), None) => {
                let port = match &u.port {
                    Some(PortRef::Number(p)) => Some(*p),
                    Some(PortRef::Name(n)) => {
                        match d.settings.roles.get(role).and_then(|r| r.ports.get(n)) {
                            Some(p) => Some(*p),
                            None => {
                                errors.push((
                                    place.clone(),
                                    format!("role {role:?} has no port named {n:?}"),
                                ));
                                None
                            }
                        }
                    }
                    None => {
                        errors.push((
                            place.clone(),
                            "a role upstream needs `port` (a number or a port of the role)".into(),
                        ));
                        None
                    }
                };
                port.map(|port| UpstreamSource::Role {
                    role: role.clone(),
                    port,
                    weight: u.weight.unwrap_or(1),
                    max_fails: u.max_fails.unwrap_or(1),
                    fail_timeout_ms: fail_timeout.unwrap_or(10_000),
                })
            }
            (None, Some(servers)) => {
                if u.port.is_some()
                    || u.weight.is_some()
                    || u.max_fails.is_some()
                    || u.fail_timeout.is_some()
                {
                    errors.push((place.clone(), "port, weight, max_fails and fail_timeout go on each server of a listed upstream".into()));
                }
                let list = servers
                    .iter()
                    .map(|s| Server {
                        addr: s.addr.clone(),
                        weight: s.weight.unwrap_or(1),
                        max_fails: s.max_fails.unwrap_or(1),
                        fail_timeout_ms: millis(&place, &s.fail_timeout, &mut errors)
                            .unwrap_or(10_000),
                        backup: s.backup.unwrap_or(false),
                        down: s.down.unwrap_or(false),
                    })
                    .collect();
                Some(UpstreamSource::Servers(list))
            }
            _ => {
                errors.push((
                    place.clone(),
                    "give either `role` (with `port`) or `servers`".into(),
                ));
                None
            }
        };
        if let Some(s) = source {
            d.upstreams.insert(name.clone(), s);
        }
    }
    for (domain, route) in &file.routes {
        let place = format!("routes.{domain:?}");
        lines.insert(place.clone(), at.at(route.span().start));
        let r = route.get_ref();
        let mut rules = BTreeMap::new();
        for (rule_name, rule) in &r.rules {
            let rplace = format!("routes.{domain:?}.rules.{rule_name}");
            lines.insert(rplace.clone(), at.at(rule.span().start));
            match rule_of(rule.get_ref()) {
                Ok(rule) => {
                    rules.insert(rule_name.clone(), rule);
                }
                Err(e) => errors.push((
                    rplace,
                    format!("domain {domain:?}, rule {rule_name:?}: {e}"),
                )),
            }
        }
        d.routes.insert(
            domain.clone(),
            Domain {
                init: r.init.clone(),
                rules,
            },
        );
    }
    for (name, expr) in &file.nodegroups {
        lines.insert(format!("nodegroups.{name}"), at.at(expr.span().start));
        d.nodegroups
            .insert(name.clone(), expr.get_ref().trim().to_owned());
    }
    for (node, labels) in &file.labels {
        lines.insert(format!("labels.{node}"), at.at(labels.span().start));
        if !labels.get_ref().is_empty() {
            d.labels.insert(node.clone(), labels.get_ref().clone());
        }
    }
    errors.extend(super::check(&d));
    if errors.is_empty() {
        return Ok(d);
    }
    let mut out: Vec<FileError> = errors
        .into_iter()
        .map(|(place, message)| {
            // The innermost table that has a line (a rule, else its route).
            let line = lines.get(&place).copied().or_else(|| {
                place
                    .rsplit_once(".rules.")
                    .and_then(|(route, _)| lines.get(route).copied())
            });
            FileError { line, message }
        })
        .collect();
    out.sort_by_key(|e| e.line);
    out.dedup();
    Err(out)
}

fn duration(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

fn file_rule(rule: &Rule) -> FileRule {
    match rule {
        Rule::Ua {
            pattern,
            succ,
            fail,
        } => FileRule {
            kind: "ua".into(),
            pattern: Some(pattern.clone()),
            succ: succ.clone(),
            fail: fail.clone(),
            ..FileRule::default()
        },
        Rule::Path {
            pattern,
            regex,
            rewrite,
            succ,
            fail,
        } => FileRule {
            kind: "path".into(),
            pattern: Some(pattern.clone()),
            regex: regex.then_some(true),
            rewrite: rewrite.then_some(true),
            succ: succ.clone(),
            fail: fail.clone(),
            ..FileRule::default()
        },
        Rule::Header {
            name,
            pattern,
            succ,
            fail,
        } => FileRule {
            kind: "header".into(),
            header: Some(name.clone()),
            pattern: Some(pattern.clone()),
            succ: succ.clone(),
            fail: fail.clone(),
            ..FileRule::default()
        },
        Rule::Backend { servername } => FileRule {
            kind: "backend".into(),
            upstream: Some(servername.clone()),
            ..FileRule::default()
        },
    }
}

/// Writes `d` as a cluster file that reads back to the same description.
pub fn to_toml(d: &DesiredCluster) -> String {
    let sp = |v| Spanned::new(0..0, v);
    let file = File {
        cluster: FileCluster {
            name: d.settings.name.clone(),
            base_domain: d.settings.base_domain.clone(),
        },
        roles: d
            .settings
            .roles
            .iter()
            .map(|(n, r)| {
                let role = FileRole {
                    service: r.service.clone(),
                    naming: r.naming.map(|n| n.as_str().to_owned()),
                    ports: r.ports.clone(),
                    aliases: r.aliases.clone(),
                };
                (n.clone(), Spanned::new(0..0, role))
            })
            .collect(),
        upstreams: d
            .upstreams
            .iter()
            .map(|(n, s)| {
                let up = match s {
                    UpstreamSource::Role {
                        role,
                        port,
                        weight,
                        max_fails,
                        fail_timeout_ms,
                    } => FileUpstream {
                        role: Some(role.clone()),
                        port: Some(PortRef::Number(*port)),
                        weight: (*weight != 1).then_some(*weight),
                        max_fails: (*max_fails != 1).then_some(*max_fails),
                        fail_timeout: (*fail_timeout_ms != 10_000)
                            .then(|| duration(*fail_timeout_ms)),
                        ..FileUpstream::default()
                    },
                    UpstreamSource::Servers(list) => FileUpstream {
                        servers: Some(
                            list.iter()
                                .map(|s| FileServer {
                                    addr: s.addr.clone(),
                                    weight: (s.weight != 1).then_some(s.weight),
                                    max_fails: (s.max_fails != 1).then_some(s.max_fails),
                                    fail_timeout: (s.fail_timeout_ms != 10_000)
                                        .then(|| duration(s.fail_timeout_ms)),
                                    backup: s.backup.then_some(true),
                                    down: s.down.then_some(true),
                                })
                                .collect(),
                        ),
                        ..FileUpstream::default()
                    },
                };
                (n.clone(), Spanned::new(0..0, up))
            })
            .collect(),
        routes: d
            .routes
            .iter()
            .map(|(domain, chain)| {
                let route = FileRoute {
                    init: chain.init.clone(),
                    rules: chain
                        .rules
                        .iter()
                        .map(|(n, r)| (n.clone(), Spanned::new(0..0, file_rule(r))))
                        .collect(),
                };
                (domain.clone(), Spanned::new(0..0, route))
            })
            .collect(),
        nodegroups: d
            .nodegroups
            .iter()
            .map(|(n, e)| (n.clone(), sp(e.clone())))
            .collect(),
        labels: d
            .labels
            .iter()
            .map(|(n, l)| (n.clone(), Spanned::new(0..0, l.clone())))
            .collect(),
    };
    let body = toml::to_string_pretty(&file).expect("a cluster file always serialises");
    format!(
        "# The cluster, as `clusterctl export` wrote it; `clusterctl plan FILE` compares.\n{body}"
    )
}

#[cfg(test)]
mod lines_tests {
    use super::Lines;

    #[test]
    fn every_offset_is_placed_on_the_line_a_scan_from_the_start_finds() {
        for text in ["", "a", "\n", "a\nb", "a\n\nb\n", "[x]\ny = 1\n\n[z]\n"] {
            let at = Lines::of(text);
            for offset in 0..=text.len() + 1 {
                let scanned = text[..offset.min(text.len())].matches('\n').count() + 1;
                assert_eq!(at.at(offset), scanned, "{text:?} at {offset}");
            }
        }
    }
}
