//! Every node's hosts line as sessions send it, built once and shared: a
//! snapshot takes the table's parts (an `Arc` each, [`PART`] lines) under
//! the state's lock — not a copy of 10,000 lines, formatted and sorted for
//! each session — and turns each part into a message only as it sends it.
//! A hosts change copies the one part it touches; the table follows the
//! state's hosts log, so it is brought up to date when read. A state loaded
//! again whole (its log begun anew) takes a new table.

use crate::state::State;
use cluster_model::NodeId;
use cluster_model::wire::HOSTS_CHUNK_LINES as PART;
use cluster_proto as pb;
use std::collections::HashMap;
use std::sync::Arc;

/// One part of the table.
pub type Part = Arc<Vec<pb::HostEntry>>;

#[derive(Debug, Default)]
pub struct HostsTable {
    /// The hosts revision the table is at.
    revision: u64,
    parts: Vec<Part>,
    /// Where each node's line is: (part, index).
    at: HashMap<NodeId, (usize, usize)>,
}

impl HostsTable {
    /// The table's parts as of `st` (lines in no particular order: agents
    /// key them by node).
    pub fn parts(&mut self, st: &State) -> Vec<Part> {
        let latest = st.hosts_revision();
        if latest != self.revision {
            let changes = st.hosts_since(self.revision);
            if changes.upsert.len() + changes.removed.len() > self.at.len() / 4 + PART {
                self.rebuild(st);
            } else {
                for id in &changes.removed {
                    self.remove(id);
                }
                for e in &changes.upsert {
                    self.upsert(pb::HostEntry::from(e));
                }
            }
            self.revision = latest;
        }
        self.parts
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect()
    }

    fn rebuild(&mut self, st: &State) {
        let lines: Vec<pb::HostEntry> = st.host_entries().iter().map(Into::into).collect();
        self.at.clear();
        self.parts = lines.chunks(PART).map(|c| Arc::new(c.to_vec())).collect();
        for (p, part) in self.parts.iter().enumerate() {
            for (i, e) in part.iter().enumerate() {
                if let Ok(id) = NodeId::new(&e.node_id) {
                    self.at.insert(id, (p, i));
                }
            }
        }
    }

    fn upsert(&mut self, line: pb::HostEntry) {
        let Ok(id) = NodeId::new(&line.node_id) else {
            return;
        };
        if let Some(&(p, i)) = self.at.get(&id) {
            Arc::make_mut(&mut self.parts[p])[i] = line;
            return;
        }
        if self.parts.last().is_none_or(|p| p.len() >= PART) {
            self.parts.push(Arc::new(Vec::with_capacity(PART)));
        }
        let p = self.parts.len() - 1;
        let part = Arc::make_mut(&mut self.parts[p]);
        part.push(line);
        self.at.insert(id, (p, part.len() - 1));
    }

    fn remove(&mut self, id: &NodeId) {
        let Some((p, i)) = self.at.remove(id) else {
            return;
        };
        let part = Arc::make_mut(&mut self.parts[p]);
        part.swap_remove(i);
        // The line that took its place moved.
        if let Some(moved) = part.get(i)
            && let Ok(moved) = NodeId::new(&moved.node_id)
        {
            self.at.insert(moved, (p, i));
        }
    }
}
