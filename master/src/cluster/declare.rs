//! The cluster as one description (`clusterctl export` / `plan` / `apply`):
//! read whole, and applied whole — one durable write, or nothing.

use super::{Cluster, ClusterError, State, hosts};
use crate::clusterfile::{Change, DesiredCluster, Settings, diff};
use crate::model::EventKind;
use crate::store::Write;
use std::collections::BTreeMap;

impl State {
    fn desired(&self) -> DesiredCluster {
        let settings = self.settings.clone().unwrap_or_else(|| Settings {
            name: None,
            base_domain: self.hosts_naming.base_domain.clone(),
            roles: self
                .hosts_naming
                .role_aliases
                .iter()
                .map(|(r, aliases)| {
                    let def = crate::clusterfile::RoleDef {
                        aliases: aliases.clone(),
                        ..Default::default()
                    };
                    (r.clone(), def)
                })
                .collect(),
        });
        let labels = self
            .nodes
            .values()
            .filter(|n| !n.labels.is_empty())
            .map(|n| (n.name.clone(), n.labels.clone()))
            .collect();
        DesiredCluster {
            settings,
            upstreams: self.balancing.upstreams.clone(),
            routes: self.balancing.routes.clone(),
            nodegroups: self.groups.clone(),
            labels,
        }
    }
}

impl Cluster {
    /// The cluster as a cluster file describes it.
    pub fn desired(&self) -> DesiredCluster {
        self.state().desired()
    }

    /// What applying `wanted` would change (nothing is changed).
    pub fn plan(&self, wanted: &DesiredCluster) -> Vec<Change> {
        diff(&self.state().desired(), wanted)
    }

    /// Makes the cluster match `wanted` in one durable change, after
    /// checking all of it: every problem is reported and nothing changes.
    /// Applying the same description twice changes nothing the second time.
    pub async fn apply(
        &self,
        wanted: DesiredCluster,
        by: &str,
    ) -> Result<Vec<Change>, ClusterError> {
        let mut problems: Vec<String> = crate::clusterfile::check(&wanted)
            .into_iter()
            .map(|(place, p)| format!("{place}: {p}"))
            .collect();
        let _w = self.writer.lock().await;
        let (write, changes, relabel, naming_changed) = {
            let mut st = self.state();
            for node in wanted.labels.keys() {
                if !st.names.contains_key(node) {
                    problems.push(format!("labels.{node}: no node named {node:?}"));
                }
            }
            if !problems.is_empty() {
                return Err(ClusterError::Invalid(problems.join("\n")));
            }
            let current = st.desired();
            let changes = diff(&current, &wanted);
            if changes.is_empty() {
                return Ok(changes);
            }
            let mut write = Write::default();
            let naming_changed = current.settings != wanted.settings;
            if naming_changed || st.settings.is_none() {
                write.settings = Some(wanted.settings.clone());
            }
            for (name, source) in &wanted.upstreams {
                if current.upstreams.get(name) != Some(source) {
                    write.upstreams.push((name.clone(), Some(source.clone())));
                }
            }
            for name in current.upstreams.keys() {
                if !wanted.upstreams.contains_key(name) {
                    write.upstreams.push((name.clone(), None));
                }
            }
            for (domain, chain) in &wanted.routes {
                if current.routes.get(domain) != Some(chain) {
                    write.routes.push((domain.clone(), Some(chain.clone())));
                }
            }
            for domain in current.routes.keys() {
                if !wanted.routes.contains_key(domain) {
                    write.routes.push((domain.clone(), None));
                }
            }
            for (name, expr) in &wanted.nodegroups {
                if current.nodegroups.get(name) != Some(expr) {
                    write.groups.push((name.clone(), expr.clone()));
                }
            }
            for name in current.nodegroups.keys() {
                if !wanted.nodegroups.contains_key(name) {
                    write.groups.push((name.clone(), String::new()));
                }
            }
            // Labels: the file is the whole truth for every node.
            let mut relabel = Vec::new();
            let empty = BTreeMap::new();
            for node in st.nodes.values() {
                let want = wanted.labels.get(&node.name).unwrap_or(&empty);
                if &node.labels != want {
                    let mut n = node.clone();
                    n.labels = want.clone();
                    relabel.push((n.id.clone(), want.clone()));
                    write.nodes.push(n);
                }
            }
            if naming_changed {
                // Every hosts line may change with the domain or aliases.
                write.generation = Some(st.generation + 1);
            }
            for c in &changes {
                let e = st.event(EventKind::Balancing, "", by, format!("cluster file: {c}"));
                write.events.push(e);
            }
            (write, changes, relabel, naming_changed)
        };
        let generation = write.generation;
        if let Err(e) = self.persist(write.clone()).await {
            self.state().next_event_seq -= write.events.len() as u64;
            return Err(e.into());
        }
        {
            let mut st = self.state();
            st.settings = Some(wanted.settings.clone());
            st.hosts_naming = hosts::HostsNaming {
                base_domain: wanted.settings.base_domain.clone(),
                role_aliases: wanted.settings.role_aliases(),
            };
            st.balancing.upstreams = wanted.upstreams.clone();
            st.balancing.routes = wanted.routes.clone();
            st.groups = wanted.nodegroups.clone();
            for (id, labels) in relabel {
                if let Some(n) = st.nodes.get_mut(&id) {
                    n.labels = labels;
                }
            }
            if let Some(g) = generation {
                st.generation = g;
                let ids: Vec<String> = st.nodes.keys().cloned().collect();
                for id in ids {
                    st.hosts_log.touch(&id, g);
                }
            }
        }
        if naming_changed && let Some(g) = generation {
            self.wake_hosts(g);
        }
        self.refresh_proxy();
        Ok(changes)
    }

    /// The service and naming a node with `roles` gets when it names none
    /// itself: from the first of its roles that defines one.
    pub(super) fn role_service(&self, roles: &[String]) -> Option<(String, crate::naming::Naming)> {
        let st = self.state();
        let settings = st.settings.as_ref()?;
        roles.iter().find_map(|r| {
            let def = settings.roles.get(r)?;
            def.service
                .clone()
                .map(|s| (s, def.naming.unwrap_or_default()))
        })
    }
}
