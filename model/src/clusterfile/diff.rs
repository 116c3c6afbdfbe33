//! What would change going from one description of the cluster to another:
//! what `clusterctl plan` prints and `apply` records, one line per thing.

use super::DesiredCluster;
use cluster_balancer::UpstreamSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Add,
    Change,
    Remove,
}

/// One thing that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// What it is: `upstream app`, `route example.com`, `cluster base_domain`.
    pub what: String,
    /// How it is afterwards (or was, for a removal), in short.
    pub detail: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.kind {
            ChangeKind::Add => '+',
            ChangeKind::Change => '~',
            ChangeKind::Remove => '-',
        };
        if self.detail.is_empty() {
            write!(f, "{sign} {}", self.what)
        } else {
            write!(f, "{sign} {}: {}", self.what, self.detail)
        }
    }
}

fn upstream_text(s: &UpstreamSource) -> String {
    match s {
        UpstreamSource::Role {
            role, port, weight, ..
        } => {
            let w = if *weight == 1 {
                String::new()
            } else {
                format!(", weight {weight}")
            };
            format!("role {role} port {port}{w}")
        }
        UpstreamSource::Servers(list) => {
            let addrs: Vec<String> = list
                .iter()
                .map(|s| {
                    let mut t = s.addr.clone();
                    if s.weight != 1 {
                        t.push_str(&format!(" weight {}", s.weight));
                    }
                    if s.backup {
                        t.push_str(" backup");
                    }
                    if s.down {
                        t.push_str(" down");
                    }
                    t
                })
                .collect();
            format!("servers {}", addrs.join(", "))
        }
    }
}

/// Keyed items: added, changed (with `before → after` from `text`) and
/// removed, in key order.
fn map_diff<V: PartialEq>(
    out: &mut Vec<Change>,
    label: &str,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    text: impl Fn(&V) -> String,
) {
    for (k, v) in new {
        match old.get(k) {
            None => out.push(Change {
                kind: ChangeKind::Add,
                what: format!("{label} {k}"),
                detail: text(v),
            }),
            Some(o) if o != v => {
                let (before, after) = (text(o), text(v));
                out.push(Change {
                    kind: ChangeKind::Change,
                    what: format!("{label} {k}"),
                    detail: if before == after {
                        after
                    } else {
                        format!("{before} → {after}")
                    },
                })
            }
            Some(_) => {}
        }
    }
    for (k, v) in old {
        if !new.contains_key(k) {
            out.push(Change {
                kind: ChangeKind::Remove,
                what: format!("{label} {k}"),
                detail: text(v),
            });
        }
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(none)".into())
}

/// Everything that differs between `current` and `wanted`.
pub fn diff(current: &DesiredCluster, wanted: &DesiredCluster) -> Vec<Change> {
    let mut out = Vec::new();
    let (c, w) = (&current.settings, &wanted.settings);
    for (what, old, new) in [
        ("cluster name", &c.name, &w.name),
        ("cluster base_domain", &c.base_domain, &w.base_domain),
    ] {
        if old != new {
            let kind = match (old, new) {
                (None, _) => ChangeKind::Add,
                (_, None) => ChangeKind::Remove,
                _ => ChangeKind::Change,
            };
            out.push(Change {
                kind,
                what: what.into(),
                detail: format!("{} → {}", opt(old), opt(new)),
            });
        }
    }
    map_diff(&mut out, "role", &c.roles, &w.roles, |r| {
        let mut parts = Vec::new();
        if let Some(s) = &r.service {
            parts.push(format!(
                "service {s} ({})",
                r.naming.unwrap_or_default().as_str()
            ));
        }
        if !r.ports.is_empty() {
            let ports: Vec<String> = r.ports.iter().map(|(n, p)| format!("{n}={p}")).collect();
            parts.push(format!("ports {}", ports.join(" ")));
        }
        if !r.aliases.is_empty() {
            parts.push(format!("aliases {}", r.aliases.join(" ")));
        }
        parts.join(", ")
    });
    map_diff(
        &mut out,
        "upstream",
        &current.upstreams,
        &wanted.upstreams,
        upstream_text,
    );
    map_diff(&mut out, "route", &current.routes, &wanted.routes, |d| {
        format!("{} rules from {}", d.rules.len(), d.init)
    });
    map_diff(
        &mut out,
        "nodegroup",
        &current.nodegroups,
        &wanted.nodegroups,
        Clone::clone,
    );
    map_diff(
        &mut out,
        "labels of",
        &current.labels,
        &wanted.labels,
        |l| {
            l.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::{DesiredCluster, RoleDef};
    use super::*;
    use cluster_balancer::{Domain, Rule, Server};

    fn base() -> DesiredCluster {
        let mut d = DesiredCluster::default();
        d.settings.name = Some("shop".into());
        d.settings.roles.insert("web".into(), RoleDef::default());
        d.upstreams.insert(
            "app".into(),
            UpstreamSource::Role {
                role: "web".into(),
                port: 8080,
                weight: 1,
                max_fails: 1,
                fail_timeout_ms: 10_000,
            },
        );
        d.routes.insert(
            "example.com".into(),
            Domain {
                init: "b".into(),
                rules: [(
                    "b".to_owned(),
                    Rule::Backend {
                        servername: "app".into(),
                    },
                )]
                .into(),
            },
        );
        d.nodegroups.insert("front".into(), "G@roles:web".into());
        d.labels.insert(
            "web-0".into(),
            [("tier".to_owned(), "gold".to_owned())].into(),
        );
        d
    }

    #[test]
    fn the_same_description_changes_nothing() {
        assert_eq!(diff(&base(), &base()), vec![]);
    }

    /// What a case does to the base description.
    type Edit = Box<dyn Fn(&mut DesiredCluster)>;

    #[test]
    fn every_kind_of_change_is_one_line() {
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "base domain added",
                Box::new(|d| d.settings.base_domain = Some("shop.internal".into())),
                "+ cluster base_domain: (none) → shop.internal",
            ),
            (
                "name removed",
                Box::new(|d| d.settings.name = None),
                "- cluster name: shop → (none)",
            ),
            (
                "role changed",
                Box::new(|d| d.settings.roles.get_mut("web").unwrap().aliases = vec!["www".into()]),
                "~ role web:  → aliases www",
            ),
            (
                "upstream port changed",
                Box::new(|d| {
                    d.upstreams.insert(
                        "app".into(),
                        UpstreamSource::Role {
                            role: "web".into(),
                            port: 9090,
                            weight: 1,
                            max_fails: 1,
                            fail_timeout_ms: 10_000,
                        },
                    );
                }),
                "~ upstream app: role web port 8080 → role web port 9090",
            ),
            (
                "upstream added",
                Box::new(|d| {
                    d.upstreams.insert(
                        "legacy".into(),
                        UpstreamSource::Servers(vec![Server::new("10.0.0.9:80")]),
                    );
                }),
                "+ upstream legacy: servers 10.0.0.9:80",
            ),
            (
                "only a parameter changed",
                Box::new(|d| {
                    d.upstreams.insert(
                        "app".into(),
                        UpstreamSource::Role {
                            role: "web".into(),
                            port: 8080,
                            weight: 1,
                            max_fails: 3,
                            fail_timeout_ms: 10_000,
                        },
                    );
                }),
                "~ upstream app: role web port 8080",
            ),
            (
                "route removed",
                Box::new(|d| {
                    d.routes.clear();
                }),
                "- route example.com: 1 rules from b",
            ),
            (
                "group changed",
                Box::new(|d| {
                    d.nodegroups.insert("front".into(), "G@roles:lb".into());
                }),
                "~ nodegroup front: G@roles:web → G@roles:lb",
            ),
            (
                "labels removed",
                Box::new(|d| {
                    d.labels.clear();
                }),
                "- labels of web-0: tier=gold",
            ),
        ];
        for (name, change, want) in cases {
            let mut wanted = base();
            change(&mut wanted);
            let got: Vec<String> = diff(&base(), &wanted)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, vec![want.to_owned()], "{name}");
        }
    }
}
