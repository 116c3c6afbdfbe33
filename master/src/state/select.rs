//! Which nodes a request means: names, ids and globs, or a target
//! expression (`cluster_model::targets`) matched against the nodes'
//! grains, labels, roles and addresses, with the node groups this state
//! holds.

use super::State;
use crate::cluster::ClusterError;
use cluster_model::targets::{Candidate, Kind, Target};
use cluster_model::{Node, NodeId, TargetSpec};
use std::collections::HashSet;

fn candidate(n: &Node) -> Candidate<'_> {
    Candidate {
        name: &n.name,
        grains: &n.grains,
        facts: &n.facts,
        labels: &n.labels,
        roles: &n.roles,
        addresses: &n.addresses,
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl State {
    /// Node ids by name or id, in order, without repeats; all or nothing.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<NodeId>, ClusterError> {
        if names.is_empty() {
            return Err(ClusterError::NoNames);
        }
        let mut ids = Vec::with_capacity(names.len());
        let mut unknown = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() {
                return Err(ClusterError::EmptyName { position: i + 1 });
            }
            cluster_model::ids::check_name(name).map_err(|source| ClusterError::InvalidName {
                what: "node name",
                name: cluster_model::limits::excerpt(name),
                source,
            })?;
            match self.names.get(name) {
                Some(id) => ids.push(id.clone()),
                None => match self.nodes.get(name) {
                    Some(n) => ids.push(n.value.id.clone()),
                    None => unknown.push(name.to_owned()),
                },
            }
        }
        if !unknown.is_empty() {
            return Err(ClusterError::UnknownNodes(unknown));
        }
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        Ok(ids)
    }

    fn matching(&self, t: &Target) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| t.matches(&candidate(&n.value)))
            .map(|n| n.value.id.clone())
            .collect()
    }

    /// Node ids `spec` selects, sorted by name; an expression or glob that
    /// matches nothing is an error, as is an unknown name.
    pub fn select(&self, spec: &TargetSpec) -> Result<Vec<NodeId>, ClusterError> {
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
                        let t = Target::parse(Kind::Glob, n, &self.group_exprs)?;
                        let found = self.matching(&t);
                        if found.is_empty() {
                            return Err(ClusterError::NoMatch(cluster_model::limits::excerpt(n)));
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
            TargetSpec::Parsed(t) => {
                let ids = self.matching(t);
                if ids.is_empty() {
                    return Err(ClusterError::NoMatch(cluster_model::limits::excerpt(
                        &spec.to_string(),
                    )));
                }
                ids
            }
            TargetSpec::Expr(kind, expr, delimiter) => {
                let t = Target::parse_with(*kind, expr, &self.group_exprs, *delimiter)?;
                let ids = self.matching(&t);
                if ids.is_empty() {
                    return Err(ClusterError::NoMatch(cluster_model::limits::excerpt(
                        &spec.to_string(),
                    )));
                }
                ids
            }
        };
        ids.sort_by(|a, b| self.nodes[a].value.name.cmp(&self.nodes[b].value.name));
        ids.dedup();
        Ok(ids)
    }
}
