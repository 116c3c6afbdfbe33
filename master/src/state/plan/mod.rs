//! The planners: every mutation of the cluster as a pure function of the
//! state, a command and its environment (`now`, and the CA to sign with),
//! producing the [`Change`] to commit and what the caller is told. Nothing
//! here changes the state: a refused command is an `Err` and a command
//! that would change nothing is an empty change.
//!
//! A [`Draft`] collects a change: every record it puts or deletes adds the
//! precondition the plan relies on (the record's revision as read, or
//! "must not exist"), and every event is numbered from the state's next
//! sequence number.
//!
//! - `nodes` — registration, drains, labels, names (promote, rename,
//!   remove), liveness, checks and durability events.
//! - `access` — tokens, enrollment, keys, users, refusals.
//! - `balancing` — upstreams and routes.
//! - `groups` — node groups.
//! - `declare` — the cluster file, applied whole.
//! - `records` — job and rollout records.
//! - `alerts` — firing alerts' records and their events.

mod access;
mod alerts;
mod balancing;
mod declare;
mod facts;
mod groups;
mod keys;
mod nodes;
mod records;
mod roles;

pub use access::{
    CreateToken, DeleteTokens, Deny, IssueUser, JoinOutcome, RevokeUser, api_token, join_is_cheap,
};
pub use alerts::{AlertChanges, DeliveryFailed, lasted};
pub use balancing::{RemoveRoutes, RemoveUpstream, SetBalancing};
pub use declare::{ApplyClusterFile, desired};
pub use facts::UpdateFacts;
pub use groups::SetGroup;
pub use keys::{DecideKeys, Join, KeyDecision, MAX_PENDING, RenewNode, Renewed};
pub use nodes::{
    CacheEvent, CheckEvents, NodeChange, Register, RemoveNode, Rename, SetLabels, SetOut,
    SweepLiveness,
};
pub use records::{Forget, RecordJob, RecordRollout};

use super::State;
use crate::cluster::ClusterError;
use crate::pki::Subject;
use crate::store::{Change, Expect, Key, Precondition, Record};
use cluster_model::{Event, EventKind, Node};
use std::collections::HashSet;

/// Signs certificates for planners that admit nodes and people.
pub trait Issuer: Send + Sync {
    /// The certificate (PEM) for the public key of `csr_pem`, issued to
    /// `subject`, and its serial (hex).
    fn issue(
        &self,
        csr_pem: &str,
        subject: &Subject,
        now_ms: u64,
    ) -> Result<(String, String), ClusterError>;
}

/// What a planner may use besides the state and its command.
pub struct Env<'a> {
    pub now_ms: u64,
    pub issuer: &'a dyn Issuer,
}

/// A change to commit, and what the caller is told once it is.
#[derive(Debug)]
pub struct Planned<T> {
    pub change: Change,
    pub out: T,
}

/// One mutation of the cluster.
pub trait Command {
    /// What the caller is answered; kept with the change under the call's
    /// request id, so a retry is answered the same.
    type Out: serde::Serialize + serde::de::DeserializeOwned;
    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Self::Out>, ClusterError>;
}

/// Who or what an event is about.
pub(crate) enum About<'a> {
    Cluster,
    /// A node as it is (its id, and its name now).
    Node(&'a Node),
    /// A name or id that may be no node's (a refusal, a key).
    Named(&'a str),
}

/// A change being planned.
pub(crate) struct Draft<'s> {
    st: &'s State,
    change: Change,
    expected: HashSet<Key>,
}

impl<'s> Draft<'s> {
    pub fn new(st: &'s State, env: &Env) -> Draft<'s> {
        Draft {
            st,
            change: Change {
                at_ms: env.now_ms,
                read_revision: st.revision(),
                ..Change::default()
            },
            expected: HashSet::new(),
        }
    }

    fn expect(&mut self, key: &Key) {
        if matches!(key, Key::Job(_) | Key::Rollout(_) | Key::Event(_)) {
            return; // appended or rewritten, never compared
        }
        if self.expected.insert(key.clone()) {
            let expect = match self.st.revision_of(key) {
                Some(rev) => Expect::At(rev),
                None => Expect::Absent,
            };
            self.change.preconditions.push(Precondition {
                key: key.clone(),
                expect,
            });
        }
    }

    pub fn put(&mut self, record: Record) {
        self.expect(&record.key());
        self.change.puts.push(record);
    }

    /// Puts a node's record, with the newest last-seen this state knows.
    pub fn put_node(&mut self, mut node: Node) {
        if let Some(live) = self.st.live(&node.id) {
            node.last_seen_ms = node.last_seen_ms.max(live.last_seen_ms);
        }
        self.put(Record::Node(node));
    }

    pub fn delete(&mut self, key: Key) {
        self.expect(&key);
        self.change.deletes.push(key);
    }

    pub fn event(&mut self, kind: EventKind, about: About, by: &str, detail: impl Into<String>) {
        let (node_id, node) = match about {
            About::Cluster => (None, String::new()),
            About::Node(n) => (Some(n.id.clone()), n.name.to_string()),
            About::Named(s) => match self
                .st
                .id_of(s)
                .or_else(|| self.st.node(s).map(|n| &n.value.id))
            {
                Some(id) => (
                    Some(id.clone()),
                    self.st
                        .node(id)
                        .map_or(s.to_owned(), |n| n.value.name.to_string()),
                ),
                None => (cluster_model::NodeId::new(s).ok(), s.to_owned()),
            },
        };
        let seq = self.st.next_event_seq() + self.change.events.len() as u64;
        self.change.events.push(Event {
            seq,
            time_ms: self.change.at_ms,
            kind,
            node_id,
            node,
            by: by.to_owned(),
            note: String::new(),
            detail: detail.into(),
        });
    }

    /// Adds the caller's own note to the last event.
    pub fn note(&mut self, note: &str) {
        if let Some(e) = self.change.events.last_mut() {
            e.note = note.to_owned();
        }
    }

    pub fn finish<T>(self, out: T) -> Planned<T> {
        Planned {
            change: self.change,
            out,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;
