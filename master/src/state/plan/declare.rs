//! The cluster as one description (`clusterctl export` / `plan` /
//! `apply`): read whole from the state, and applied whole — one change, or
//! nothing. `plan` is this planner without the commit, so it refuses
//! exactly what `apply` refuses.

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::state::State;
use crate::store::{Key, Record};
use cluster_balancer::UpstreamSource;
use cluster_model::EventKind;
use cluster_model::clusterfile::{self, Change as FileChange, DesiredCluster, RoleDef, Settings};
use std::collections::BTreeMap;

/// The cluster as a cluster file describes it. Every role an upstream
/// derives from is defined (an empty `[roles.NAME]` when nothing else is
/// known of it), so what this exports applies back to no change.
pub fn desired(st: &State) -> DesiredCluster {
    let mut settings = st.settings().cloned().unwrap_or_else(|| {
        let naming = st.hosts_naming();
        Settings {
            name: None,
            base_domain: naming.base_domain.clone(),
            roles: naming
                .role_aliases
                .iter()
                .map(|(r, aliases)| {
                    let def = RoleDef {
                        aliases: aliases.clone(),
                        ..RoleDef::default()
                    };
                    (r.clone(), def)
                })
                .collect(),
        }
    });
    for (_, source) in st.upstreams() {
        if let UpstreamSource::Role { role, .. } = source {
            settings.roles.entry(role.clone()).or_default();
        }
    }
    DesiredCluster {
        settings,
        upstreams: st
            .upstreams()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        routes: st.routes().map(|(k, v)| (k.clone(), v.clone())).collect(),
        nodegroups: st.groups().clone(),
        labels: st
            .nodes()
            .map(|n| &n.value)
            .filter(|n| !n.labels.is_empty())
            .map(|n| (n.name.to_string(), n.labels.clone()))
            .collect(),
    }
}

/// Makes the cluster match `wanted`, after checking all of it: every
/// problem is reported (`place: problem`, one a line) and nothing changes.
/// Applying the same description twice changes nothing the second time.
pub struct ApplyClusterFile {
    pub wanted: DesiredCluster,
    pub by: String,
}

impl Command for ApplyClusterFile {
    type Out = Vec<FileChange>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<FileChange>>, ClusterError> {
        let wanted = &self.wanted;
        let mut problems = clusterfile::check(wanted);
        for node in wanted.labels.keys() {
            if st.id_of(node).is_none() {
                problems.push((format!("labels.{node}"), format!("no node named {node:?}")));
            }
        }
        if !problems.is_empty() {
            return Err(ClusterError::ClusterFile { problems });
        }
        let current = desired(st);
        let changes = clusterfile::diff(&current, wanted);
        let mut d = Draft::new(st, env);
        if changes.is_empty() {
            return Ok(d.finish(changes));
        }
        if current.settings != wanted.settings || st.settings().is_none() {
            d.put(Record::Settings(wanted.settings.clone()));
        }
        for (name, source) in &wanted.upstreams {
            if current.upstreams.get(name) != Some(source) {
                d.put(Record::Upstream {
                    name: name.clone(),
                    source: source.clone(),
                });
            }
        }
        for name in current.upstreams.keys() {
            if !wanted.upstreams.contains_key(name) {
                d.delete(Key::Upstream(name.clone()));
            }
        }
        for (domain, chain) in &wanted.routes {
            if current.routes.get(domain) != Some(chain) {
                d.put(Record::Route {
                    domain: domain.clone(),
                    chain: chain.clone(),
                });
            }
        }
        for domain in current.routes.keys() {
            if !wanted.routes.contains_key(domain) {
                d.delete(Key::Route(domain.clone()));
            }
        }
        for (name, expr) in &wanted.nodegroups {
            if current.nodegroups.get(name) != Some(expr) {
                d.put(Record::Group {
                    name: name.clone(),
                    expr: expr.clone(),
                });
            }
        }
        for name in current.nodegroups.keys() {
            if !wanted.nodegroups.contains_key(name) {
                d.delete(Key::Group(name.clone()));
            }
        }
        // Labels: the file is the whole truth for every node.
        let empty = BTreeMap::new();
        for n in st.nodes() {
            let want = wanted.labels.get(n.value.name.as_str()).unwrap_or(&empty);
            if &n.value.labels != want {
                let mut node = n.value.clone();
                node.labels = want.clone();
                d.put_node(node);
            }
        }
        for c in &changes {
            d.event(
                EventKind::Balancing,
                About::Cluster,
                &self.by,
                format!("cluster file: {c}"),
            );
        }
        Ok(d.finish(changes))
    }
}
