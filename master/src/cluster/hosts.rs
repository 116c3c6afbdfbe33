//! Every node's line in every hosts file, and what changed since a
//! session last looked: each change is stamped with the generation that
//! made it, so a session sends only the lines that moved (one delta per
//! agent when a node joins or leaves, not the whole table).

use super::{Cluster, State};
use crate::model::{HostEntry, Node, NodeSpec};
use std::collections::{BTreeSet, HashMap};

/// The generation of each node's last hosts change.
#[derive(Default)]
pub struct HostsLog {
    by_node: HashMap<String, u64>,
    /// (generation, node id): one change may touch several nodes.
    by_generation: BTreeSet<(u64, String)>,
}

impl HostsLog {
    pub fn touch(&mut self, node_id: &str, generation: u64) {
        if let Some(old) = self.by_node.insert(node_id.to_owned(), generation) {
            self.by_generation.remove(&(old, node_id.to_owned()));
        }
        self.by_generation.insert((generation, node_id.to_owned()));
    }

    fn since(&self, seen: u64) -> impl Iterator<Item = &String> {
        self.by_generation
            .range((seen + 1, String::new())..)
            .map(|(_, id)| id)
    }

    fn latest(&self) -> u64 {
        self.by_generation.last().map_or(0, |(g, _)| *g)
    }
}

/// What shapes every line: the domain, and extra names per role.
#[derive(Debug, Clone, Default)]
pub struct HostsNaming {
    pub base_domain: Option<String>,
    pub role_aliases: std::collections::BTreeMap<String, Vec<String>>,
}

fn entry(node: &Node, naming: &HostsNaming) -> Option<HostEntry> {
    let address = node.addresses.first()?.clone();
    let mut names = Vec::with_capacity(2 + node.aliases.len());
    if let Some(d) = &naming.base_domain {
        names.push(format!("{}.{d}", node.name));
    }
    names.push(node.name.clone());
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
    fn host_entries(&self, naming: &HostsNaming) -> Vec<HostEntry> {
        let mut all: Vec<_> = self
            .nodes
            .values()
            .filter_map(|n| entry(n, naming))
            .collect();
        all.sort_by(|a, b| {
            a.names
                .last()
                .cmp(&b.names.last())
                .then(a.node_id.cmp(&b.node_id))
        });
        all
    }
}

/// What changed in the hosts table since a generation.
pub struct HostsChanges {
    /// Up to which generation this covers.
    pub seen: u64,
    pub upsert: Vec<HostEntry>,
    pub removed: Vec<String>,
}

impl Cluster {
    /// The domain appended to names in hosts files (`web-1.example.com`)
    /// and extra names per role.
    /// From the master's configuration; settings applied from a cluster
    /// file (stored) win.
    pub fn with_hosts_naming(self, naming: HostsNaming) -> Cluster {
        {
            let mut st = self.state();
            if st.settings.is_none() {
                st.hosts_naming = naming;
            }
        }
        self
    }

    /// Every node's line, sorted by name, and the generation it is as of.
    pub fn hosts(&self) -> (u64, Vec<HostEntry>) {
        let st = self.state();
        (st.hosts_log.latest(), st.host_entries(&st.hosts_naming))
    }

    /// The lines that changed after generation `seen`.
    pub fn hosts_since(&self, seen: u64) -> HostsChanges {
        let st = self.state();
        let mut changes = HostsChanges {
            seen: st.hosts_log.latest().max(seen),
            upsert: Vec::new(),
            removed: Vec::new(),
        };
        for id in st.hosts_log.since(seen) {
            match st.nodes.get(id).and_then(|n| entry(n, &st.hosts_naming)) {
                Some(e) => changes.upsert.push(e),
                None => changes.removed.push(id.clone()),
            }
        }
        changes
    }

    /// How long a session gathers hosts changes before sending them: a join
    /// storm becomes a few deltas per agent instead of one per join. Grows
    /// with the number of sessions (20 ms for a few, 500 ms at 10,000); a
    /// node's own spec (a drain) never waits for it.
    pub fn hosts_coalesce(&self) -> std::time::Duration {
        let sessions = self.state().sessions.len() as u64;
        std::time::Duration::from_micros((sessions * 50).clamp(20_000, 500_000))
    }

    /// Wakes every session: hosts lines changed at `generation` (the caller
    /// touched the log in the same critical section as the generation).
    pub(super) fn wake_hosts(&self, generation: u64) {
        self.hosts_changed.send_replace(generation);
    }

    /// Everything a session's first message holds, read at one instant:
    /// `(generation, spec generation, spec, hosts generation, every line)`.
    pub fn session_snapshot(
        &self,
        node_id: &str,
        wants_hosts: bool,
    ) -> Option<(u64, u64, NodeSpec, u64, Vec<HostEntry>)> {
        let st = self.state();
        let n = st.nodes.get(node_id)?;
        // An agent that keeps no hosts file gets no lines: not even built.
        let hosts = if wants_hosts {
            st.host_entries(&st.hosts_naming)
        } else {
            Vec::new()
        };
        Some((
            st.generation,
            n.spec_generation,
            n.spec(),
            st.hosts_log.latest(),
            hosts,
        ))
    }

    /// What moved since a session last sent `spec_sent` / `hosts_seen`, read
    /// at one instant, with the generation that covers it all; `None` when
    /// the node is gone.
    pub fn session_delta(
        &self,
        node_id: &str,
        spec_sent: u64,
        hosts_seen: u64,
        wants_hosts: bool,
    ) -> Option<(u64, Option<(u64, NodeSpec)>, HostsChanges)> {
        let st = self.state();
        let n = st.nodes.get(node_id)?;
        let spec = (n.spec_generation > spec_sent).then(|| (n.spec_generation, n.spec()));
        let mut changes = HostsChanges {
            seen: st.hosts_log.latest().max(hosts_seen),
            upsert: Vec::new(),
            removed: Vec::new(),
        };
        let since = wants_hosts.then(|| st.hosts_log.since(hosts_seen));
        for id in since.into_iter().flatten() {
            match st.nodes.get(id).and_then(|n| entry(n, &st.hosts_naming)) {
                Some(e) => changes.upsert.push(e),
                None => changes.removed.push(id.clone()),
            }
        }
        Some((st.generation, spec, changes))
    }
}

#[cfg(test)]
mod tests {
    use super::HostsLog;

    #[test]
    fn a_node_appears_once_at_its_latest_change() {
        let mut log = HostsLog::default();
        log.touch("a", 1);
        log.touch("b", 2);
        log.touch("a", 3);
        log.touch("c", 3);
        assert_eq!(log.since(0).cloned().collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(log.since(2).cloned().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(log.since(3).count(), 0);
        assert_eq!(log.latest(), 3);
    }
}
