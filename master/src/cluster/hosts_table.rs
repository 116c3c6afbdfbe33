//! Every node's hosts line as sessions send it, built once and shared: a
//! snapshot takes the table's parts (an `Arc` each, [`PART`] lines) under
//! the state's lock — not a copy of 10,000 lines, formatted and sorted for
//! each session — and turns each part into a message only as it sends it,
//! from the part's lines encoded once for every session
//! ([`PartLines::encoded`], written by `cluster_proto::codec`). A hosts
//! change copies the one part it touches (and forgets its encoding); the
//! table follows the state's hosts log, so it is brought up to date when
//! read. A state loaded again whole (its log begun anew) takes a new table.

use crate::state::State;
use cluster_model::NodeId;
use cluster_model::wire::HOSTS_CHUNK_LINES as PART;
use cluster_proto as pb;
use prost::bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// One part of the table.
pub type Part = Arc<PartLines>;

/// A part's lines, and their encoding once a session has asked for it.
#[derive(Debug, Clone, Default)]
pub struct PartLines {
    lines: Vec<pb::HostEntry>,
    encoded: OnceLock<Bytes>,
}

impl std::ops::Deref for PartLines {
    type Target = [pb::HostEntry];
    fn deref(&self) -> &[pb::HostEntry] {
        &self.lines
    }
}

impl PartLines {
    fn new(lines: Vec<pb::HostEntry>) -> PartLines {
        PartLines {
            lines,
            encoded: OnceLock::new(),
        }
    }

    /// The lines as a `HostsChunk`'s `hosts` field, encoded at the first
    /// ask and shared by every session after it.
    pub fn encoded(&self) -> Bytes {
        self.encoded
            .get_or_init(|| pb::codec::encode_hosts(&self.lines))
            .clone()
    }

    /// The lines to change: the part copied if a snapshot holds it, its
    /// encoding forgotten.
    fn edit(part: &mut Part) -> &mut Vec<pb::HostEntry> {
        let p = Arc::make_mut(part);
        p.encoded = OnceLock::new();
        &mut p.lines
    }
}

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
        self.parts = lines
            .chunks(PART)
            .map(|c| Arc::new(PartLines::new(c.to_vec())))
            .collect();
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
            PartLines::edit(&mut self.parts[p])[i] = line;
            return;
        }
        if self.parts.last().is_none_or(|p| p.len() >= PART) {
            let lines = Vec::with_capacity(PART);
            self.parts.push(Arc::new(PartLines::new(lines)));
        }
        let p = self.parts.len() - 1;
        let part = PartLines::edit(&mut self.parts[p]);
        part.push(line);
        self.at.insert(id, (p, part.len() - 1));
    }

    fn remove(&mut self, id: &NodeId) {
        let Some((p, i)) = self.at.remove(id) else {
            return;
        };
        let part = PartLines::edit(&mut self.parts[p]);
        part.swap_remove(i);
        // The line that took its place moved.
        if let Some(moved) = part.get(i)
            && let Ok(moved) = NodeId::new(&moved.node_id)
        {
            self.at.insert(moved, (p, i));
        }
    }
}
