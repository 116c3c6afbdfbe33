//! Every node's line in every hosts file, and what changed since a session
//! last looked: each change is stamped with the revision that made it, so
//! a session sends only the lines that moved (one delta per agent when a
//! node joins or leaves, not the whole table). The log is kept by
//! `State::apply`, which touches a node exactly when its line changed.

use super::State;
use cluster_model::clusterfile::Settings;
use cluster_model::{HostEntry, Node, NodeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The revision of each node's last hosts change.
#[derive(Debug, Clone, Default)]
pub struct HostsLog {
    by_node: HashMap<NodeId, u64>,
    /// revision → the nodes it touched (one change may touch several).
    by_revision: BTreeMap<u64, BTreeSet<NodeId>>,
}

impl HostsLog {
    pub fn touch(&mut self, node_id: &NodeId, revision: u64) {
        if let Some(old) = self.by_node.insert(node_id.clone(), revision)
            && let Some(set) = self.by_revision.get_mut(&old)
        {
            set.remove(node_id);
            if set.is_empty() {
                self.by_revision.remove(&old);
            }
        }
        self.by_revision
            .entry(revision)
            .or_default()
            .insert(node_id.clone());
    }

    fn since(&self, seen: u64) -> impl Iterator<Item = &NodeId> {
        self.by_revision
            .range(seen.saturating_add(1)..)
            .flat_map(|(_, ids)| ids)
    }

    pub fn latest(&self) -> u64 {
        self.by_revision.keys().next_back().copied().unwrap_or(0)
    }
}

/// What shapes every line: the domain, and extra names per role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsNaming {
    pub base_domain: Option<String>,
    pub role_aliases: BTreeMap<String, Vec<String>>,
}

impl HostsNaming {
    pub fn of_settings(s: &Settings) -> HostsNaming {
        HostsNaming {
            base_domain: s.base_domain.clone(),
            role_aliases: s.role_aliases(),
        }
    }
}

/// What changed in the hosts table since a revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsChanges {
    /// Up to which revision this covers.
    pub seen: u64,
    pub upsert: Vec<HostEntry>,
    pub removed: Vec<NodeId>,
}

fn entry(node: &Node, naming: &HostsNaming) -> Option<HostEntry> {
    let address = node.addresses.first()?.clone();
    let mut names = Vec::with_capacity(2 + node.aliases.len());
    if let Some(d) = &naming.base_domain {
        names.push(format!("{}.{d}", node.name));
    }
    names.push(node.name.to_string());
    let role_names = node
        .roles
        .iter()
        .filter_map(|r| naming.role_aliases.get(r))
        .flatten();
    for alias in node.aliases.iter().chain(role_names) {
        if !names.contains(alias) {
            names.push(alias.clone());
        }
    }
    Some(HostEntry {
        node_id: node.id.clone(),
        address,
        names,
    })
}

impl State {
    /// The node's line as the hosts files hold it now.
    pub(super) fn hosts_entry(&self, node: &Node) -> Option<HostEntry> {
        entry(node, &self.hosts_naming)
    }

    /// Every node's line, sorted by name.
    pub fn host_entries(&self) -> Vec<HostEntry> {
        let mut all: Vec<_> = self
            .nodes
            .values()
            .filter_map(|n| self.hosts_entry(&n.value))
            .collect();
        all.sort_by(|a, b| {
            a.names
                .last()
                .cmp(&b.names.last())
                .then(a.node_id.cmp(&b.node_id))
        });
        all
    }

    /// The revision of the latest hosts change.
    pub fn hosts_revision(&self) -> u64 {
        self.hosts_log.latest()
    }

    /// The lines that changed after revision `seen`.
    pub fn hosts_since(&self, seen: u64) -> HostsChanges {
        let mut changes = HostsChanges {
            seen: self.hosts_log.latest().max(seen),
            ..HostsChanges::default()
        };
        for id in self.hosts_log.since(seen) {
            match self.nodes.get(id).and_then(|n| self.hosts_entry(&n.value)) {
                Some(e) => changes.upsert.push(e),
                None => changes.removed.push(id.clone()),
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::HostsLog;
    use cluster_model::NodeId;

    #[test]
    fn a_node_appears_once_at_its_latest_change() {
        let id = |s: &str| NodeId::new(s).unwrap();
        let mut log = HostsLog::default();
        log.touch(&id("a"), 1);
        log.touch(&id("b"), 2);
        log.touch(&id("a"), 3);
        log.touch(&id("c"), 3);
        let since = |n| log.since(n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(since(0), ["b", "a", "c"]);
        assert_eq!(since(2), ["a", "c"]);
        assert!(since(3).is_empty());
        assert_eq!(log.latest(), 3);
    }
}
