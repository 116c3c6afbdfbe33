//! The cluster file: the whole cluster described in one TOML file —
//! `[cluster]`, `[roles.NAME]`, `[upstreams.NAME]`, `[routes."domain"]`,
//! `[nodegroups]`, `[labels.NODE]` — read into [`DesiredCluster`], the
//! master's own description of what it manages, and written back from it.
//!
//! Pure: `parse` checks everything it can see in the file and reports every
//! problem with its line; what needs the live cluster (do the labelled nodes
//! exist?) is checked by the master when it applies. `diff` is what `plan`
//! prints and `apply` records.
//!
//! - `file` — the TOML shapes, with spans.
//! - `diff` — changes between two descriptions.

mod diff;
mod file;

pub use diff::{Change, ChangeKind, diff};
pub use file::{locate, parse, to_toml};

use crate::naming::Naming;
use cluster_balancer::{Domain, RouteTable, UpstreamSource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a role means for the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    /// Nodes with the role that name no service of their own are named
    /// from this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<Naming>,
    /// Named ports, for upstreams (`port = "http"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u16>,
    /// Extra names of the role's nodes in every hosts file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// The cluster-wide settings a cluster file carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_domain: Option<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleDef>,
}

impl Settings {
    /// Role aliases for the hosts files.
    pub fn role_aliases(&self) -> BTreeMap<String, Vec<String>> {
        self.roles
            .iter()
            .filter(|(_, r)| !r.aliases.is_empty())
            .map(|(n, r)| (n.clone(), r.aliases.clone()))
            .collect()
    }
}

/// Everything a cluster file describes, as the master holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredCluster {
    pub settings: Settings,
    pub upstreams: BTreeMap<String, UpstreamSource>,
    pub routes: BTreeMap<String, Domain>,
    pub nodegroups: BTreeMap<String, String>,
    /// Node name → its labels (nodes without labels are left out).
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// One problem with a cluster file: where (the line, when known) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Checks what can be checked without the live cluster; every problem,
/// each as `(place, message)` where the place names the table it is in
/// (`upstreams.app`, `routes."example.com".rules.r1`, …).
pub fn check(d: &DesiredCluster) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(domain) = &d.settings.base_domain
        && let Err(e) = crate::naming::check_hostname(domain)
    {
        out.push(("cluster".into(), format!("base_domain {domain:?}: {e}")));
    }
    for (name, role) in &d.settings.roles {
        let place = format!("roles.{name}");
        if crate::ids::check_name(name).is_err() {
            out.push((
                place.clone(),
                format!("role name {name:?}: letters, digits, '-', '_' and '.' only"),
            ));
        }
        if let Some(svc) = &role.service
            && let Err(e) = crate::naming::check_service(svc)
        {
            out.push((place.clone(), format!("service {svc:?}: {e}")));
        }
        for a in &role.aliases {
            if let Err(e) = crate::naming::check_hostname(a) {
                out.push((place.clone(), format!("alias {a:?}: {e}")));
            }
        }
        for (port_name, port) in &role.ports {
            if *port == 0 {
                out.push((place.clone(), format!("port {port_name:?}: 1-65535")));
            }
        }
    }
    for (name, source) in &d.upstreams {
        let place = format!("upstreams.{name}");
        for p in cluster_balancer::upstream::problems(name, source) {
            out.push((place.clone(), p));
        }
        if let UpstreamSource::Role { role, .. } = source
            && !d.settings.roles.contains_key(role)
        {
            out.push((
                place.clone(),
                format!("unknown role {role:?} (define it under [roles.{role}])"),
            ));
        }
    }
    if let Err(errors) = RouteTable::compile(&d.routes, &|u| d.upstreams.contains_key(u)) {
        for e in errors {
            let place = match &e.rule {
                Some(r) => format!("routes.{:?}.rules.{r}", e.domain),
                None => format!("routes.{:?}", e.domain),
            };
            out.push((place, e.to_string()));
        }
    }
    for (name, expr) in &d.nodegroups {
        let place = format!("nodegroups.{name}");
        if crate::ids::check_name(name).is_err() {
            out.push((
                place.clone(),
                format!("node group name {name:?}: letters, digits, '-', '_' and '.' only"),
            ));
        }
        if let Err(e) =
            crate::targets::Target::parse(crate::targets::Kind::NodeGroup, name, &d.nodegroups)
        {
            out.push((
                place,
                format!(
                    "node group {name}: {e} (in {:?})",
                    crate::limits::excerpt(expr)
                ),
            ));
        }
    }
    for (node, labels) in &d.labels {
        for (k, v) in labels {
            if let Err(e) = crate::labels::check_key(k) {
                out.push((format!("labels.{node}"), e.to_string()));
            }
            if let Err(e) = crate::labels::check_value(k, v) {
                out.push((format!("labels.{node}"), e.to_string()));
            }
        }
        if labels.len() > crate::limits::LABELS_MAX {
            out.push((
                format!("labels.{node}"),
                format!(
                    "{} labels; at most {} are allowed",
                    labels.len(),
                    crate::limits::LABELS_MAX
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
