//! Which nodes a request means: names and globs, or a target expression
//! (`crate::target`) evaluated against the nodes' grains, labels, roles and
//! addresses; plus the two things targeting reads that only the master
//! holds: labels (`-I`) and node groups (`-N`).

use super::{Cluster, ClusterError, State};
use crate::model::{EventKind, Node};
use crate::store::Write;
use crate::targets::{Candidate, Kind, Target};
use std::collections::BTreeMap;

/// What a request targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Names, ids or globs on names; each must match at least one node.
    Names(Vec<String>),
    /// An expression of one kind (`-G os:Debian`, `-C '…'`).
    Expr(Kind, String),
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSpec::Names(n) => write!(f, "{}", n.join(" ")),
            TargetSpec::Expr(kind, e) => {
                let flag = match kind {
                    Kind::Glob => "",
                    Kind::Regex => "-E ",
                    Kind::List => "-L ",
                    Kind::Grain => "-G ",
                    Kind::GrainRegex => "-P ",
                    Kind::Label => "-I ",
                    Kind::Subnet => "-S ",
                    Kind::Role => "-R ",
                    Kind::NodeGroup => "-N ",
                    Kind::Compound => "-C ",
                };
                write!(f, "{flag}{e}")
            }
        }
    }
}

fn candidate(n: &Node) -> Candidate<'_> {
    Candidate {
        name: &n.name,
        grains: &n.grains,
        labels: &n.labels,
        roles: &n.roles,
        addresses: &n.addresses,
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl State {
    /// Node ids `spec` selects, sorted by name; an expression or glob that
    /// matches nothing is an error, as is an unknown name.
    pub(super) fn select(&self, spec: &TargetSpec) -> Result<Vec<String>, ClusterError> {
        let mut ids = match spec {
            TargetSpec::Names(names) => {
                if names.is_empty() {
                    return Err(ClusterError::NoNames);
                }
                let mut ids = Vec::new();
                let mut plain = Vec::new();
                for (i, n) in names.iter().enumerate() {
                    let n = n.trim();
                    if n.is_empty() {
                        return Err(ClusterError::EmptyName { position: i + 1 });
                    }
                    if is_glob(n) {
                        let t = Target::parse(Kind::Glob, n, &self.groups)
                            .map_err(|e| ClusterError::Invalid(e.to_string()))?;
                        let found: Vec<_> = self
                            .nodes
                            .values()
                            .filter(|node| t.matches(&candidate(node)))
                            .map(|node| node.id.clone())
                            .collect();
                        if found.is_empty() {
                            return Err(ClusterError::NoMatch(n.to_owned()));
                        }
                        ids.extend(found);
                    } else {
                        plain.push(n.to_owned());
                    }
                }
                if !plain.is_empty() {
                    ids.extend(self.resolve(&plain)?);
                }
                ids
            }
            TargetSpec::Expr(kind, expr) => {
                let t = Target::parse(*kind, expr, &self.groups)
                    .map_err(|e| ClusterError::Invalid(e.to_string()))?;
                let ids: Vec<_> = self
                    .nodes
                    .values()
                    .filter(|node| t.matches(&candidate(node)))
                    .map(|node| node.id.clone())
                    .collect();
                if ids.is_empty() {
                    return Err(ClusterError::NoMatch(spec.to_string()));
                }
                ids
            }
        };
        ids.sort_by(|a, b| self.nodes[a].name.cmp(&self.nodes[b].name));
        ids.dedup();
        Ok(ids)
    }
}

pub(crate) fn check_label_key(k: &str) -> Result<(), ClusterError> {
    let ok = !k.is_empty()
        && k.len() <= 63
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Invalid(format!(
            "label key {k:?}: 1 to 63 letters, digits, '-', '_', '.' or '/'"
        )))
    }
}

impl Cluster {
    /// `(id, name, connected)` of every node `spec` selects, sorted by name.
    pub fn select(&self, spec: &TargetSpec) -> Result<Vec<(String, String, bool)>, ClusterError> {
        let st = self.state();
        let ids = st.select(spec)?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let n = &st.nodes[&id];
                (id.clone(), n.name.clone(), n.connected)
            })
            .collect())
    }

    /// Sets (or, with an empty value, removes) labels on the selected nodes.
    pub async fn set_labels(
        &self,
        spec: &TargetSpec,
        labels: &BTreeMap<String, String>,
        by: &str,
    ) -> Result<Vec<String>, ClusterError> {
        if labels.is_empty() {
            return Err(ClusterError::Invalid(
                "no labels given (KEY=VALUE, or KEY- to remove)".into(),
            ));
        }
        for k in labels.keys() {
            check_label_key(k)?;
        }
        let _w = self.writer.lock().await;
        let mut write = Write::default();
        let mut names = Vec::new();
        {
            let mut st = self.state();
            let ids = st.select(spec)?;
            let detail = labels
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        format!("{k}-")
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            for id in ids {
                let mut node = st.nodes[&id].clone();
                for (k, v) in labels {
                    if v.is_empty() {
                        node.labels.remove(k);
                    } else {
                        node.labels.insert(k.clone(), v.clone());
                    }
                }
                names.push(node.name.clone());
                let event = st.event(EventKind::Label, &node.name, by, detail.clone());
                write.events.push(event);
                write.nodes.push(node);
            }
        }
        self.commit(write.clone()).await?;
        let mut st = self.state();
        for node in write.nodes {
            if let Some(live) = st.nodes.get_mut(&node.id) {
                live.labels = node.labels;
            }
        }
        Ok(names)
    }

    /// Defines (or, with an empty expression, removes) a node group. The
    /// expression is checked as it will be used — a compound expression
    /// that may name other groups, without cycles.
    pub async fn set_group(&self, name: &str, expr: &str, by: &str) -> Result<(), ClusterError> {
        super::access::check_name("node group", name)?;
        let _w = self.writer.lock().await;
        let detail;
        {
            let st = self.state();
            if expr.trim().is_empty() {
                if !st.groups.contains_key(name) {
                    return Err(ClusterError::Invalid(format!(
                        "there is no node group {name:?}"
                    )));
                }
                detail = format!("removed node group {name}");
            } else {
                let mut groups = st.groups.clone();
                groups.insert(name.to_owned(), expr.to_owned());
                Target::parse(Kind::NodeGroup, name, &groups)
                    .map_err(|e| ClusterError::Invalid(e.to_string()))?;
                detail = format!("node group {name} = {expr}");
            }
        }
        let event = self.state().event(EventKind::Group, "", by, detail);
        let write = Write {
            groups: vec![(name.to_owned(), expr.trim().to_owned())],
            events: vec![event],
            ..Write::default()
        };
        self.commit(write).await?;
        let mut st = self.state();
        if expr.trim().is_empty() {
            st.groups.remove(name);
        } else {
            st.groups.insert(name.to_owned(), expr.trim().to_owned());
        }
        Ok(())
    }

    pub fn groups(&self) -> BTreeMap<String, String> {
        self.state().groups.clone()
    }
}
