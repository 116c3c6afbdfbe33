//! Persistence of the cluster's desired state.
//!
//! Only this module (and its submodules) touches a storage engine; the rest
//! of the master sees the [`Store`] trait, written so that an etcd
//! transaction is a direct fit: [`Store::commit`] checks a [`Change`]'s
//! preconditions (a record's revision, or "must not exist") and applies
//! its puts, deletes and events in one atomic, durable step, returning the
//! store's new [`Revision`] — the generation agents see. A failed
//! precondition is a [`StoreError::Conflict`] the caller may re-plan on.
//!
//! - `change` — the vocabulary: [`Change`], [`Record`], [`Key`],
//!   [`Precondition`].
//! - `codec` — records as stored values, for every backend.
//! - `sled` — the embedded default.
//! - `etcd` — several masters on a real etcd cluster (cargo feature
//!   `etcd`): fenced commits, the leader's election, following commits
//!   made through the others.
//! - `mem` — in memory, for tests of the core (it can be told to fail).

mod change;
mod codec;
#[cfg(feature = "etcd")]
pub mod etcd;
mod sled;

#[cfg(test)]
pub mod mem;

pub use self::change::{
    Change, Expect, Key, LiveRecord, Loaded, Precondition, Record, RequestRecord, Revision,
};
pub use self::sled::SledStore;

use cluster_model::rollout::RolloutRecord;
use cluster_model::{Event, JobRecord, NodeId};
use std::path::PathBuf;

/// Which events to read back.
#[derive(Debug, Default, Clone)]
pub struct EventQuery {
    pub after_seq: u64,
    pub limit: usize,
    /// Only events about this node: by its id (its whole history under
    /// every name), or by name for events stored before ids were.
    pub node: Option<(NodeId, String)>,
}

impl EventQuery {
    pub fn matches(&self, e: &Event) -> bool {
        match &self.node {
            None => true,
            Some((id, name)) => match &e.node_id {
                Some(event_id) => event_id == id,
                None => e.node == *name,
            },
        }
    }
}

/// History the master keeps bounded: the event log, jobs, rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    Events,
    Jobs,
    Rollouts,
}

impl History {
    /// The key prefix its records live under (relative).
    pub fn prefix(self) -> &'static str {
        match self {
            History::Events => "event/",
            History::Jobs => "job/",
            History::Rollouts => "rollout/",
        }
    }
}

/// Who commits: this master, or another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// This master; `epoch` is the revision its leadership began at (its
    /// fence), so pushes of an older leader can be told apart; `from` the
    /// store's revision when it won: every earlier leader's commits are at
    /// or below it, so it commits once its state has followed that far.
    Leader { epoch: Revision, from: Revision },
    /// Another master leads (its address, when known); commits go there.
    /// `epoch`: the newest leadership this master knows of.
    Follower {
        leader: Option<String>,
        epoch: Revision,
    },
}

impl Role {
    /// The leadership the state is served under.
    pub fn epoch(&self) -> Revision {
        match self {
            Role::Leader { epoch, .. } | Role::Follower { epoch, .. } => *epoch,
        }
    }
}

/// What another master committed, as the store saw it.
#[derive(Debug)]
pub enum Followed {
    /// One commit, whole, at its revision.
    Change { revision: Revision, change: Change },
    /// The history was compacted past what was followed: the state again,
    /// whole.
    Reload(Loaded),
    /// Every commit up to this revision has been followed (revisions that
    /// moved nothing of the state: the election, progress).
    Seen(Revision),
    /// What a master's session with a node says now (`None`: it ended).
    Live {
        node: NodeId,
        /// Boxed: a full usage report makes it the largest by far.
        record: Option<Box<LiveRecord>>,
    },
}

/// A master as the store knows it: campaigning for leadership.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MasterEntry {
    pub name: String,
    /// Its gRPC address.
    pub address: String,
}

/// One of the store's endpoints, as it answered a status call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointHealth {
    pub endpoint: String,
    /// Why it is unhealthy (`None`: it answered).
    pub error: Option<String>,
    pub revision: Revision,
    /// Whether it leads the store's own cluster.
    pub leader: bool,
    pub version: String,
    pub db_size_bytes: u64,
    pub latency: std::time::Duration,
}

/// What the store knows of the masters and of itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    /// "sled" or "etcd".
    pub store: &'static str,
    /// Every master campaigning, the leader first.
    pub masters: Vec<MasterEntry>,
    /// Whether the first of `masters` leads (else no one does now).
    pub led: bool,
    pub epoch: Revision,
    pub lease_remaining: Option<std::time::Duration>,
    /// The store's revision now (0: as the state says).
    pub revision: Revision,
    pub endpoints: Vec<EndpointHealth>,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every record of the state, at one revision.
    async fn load(&self) -> Result<Loaded, StoreError>;
    /// Checks `change`'s preconditions and applies it atomically; returns
    /// the new revision once it is durable.
    async fn commit(&self, change: &Change) -> Result<Revision, StoreError>;
    /// Events matching `query`, oldest first; the newest `limit` when more match.
    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;
    /// The oldest `limit` events, oldest first (what age-based retention
    /// looks at).
    async fn oldest_events(&self, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// The newest `limit` jobs, newest first.
    async fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError>;
    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// The newest `limit` rollouts, newest first.
    async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError>;
    async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError>;
    /// Who commits now, and when that changes.
    fn role(&self) -> tokio::sync::watch::Receiver<Role>;
    /// Commits made through other masters after revision `after`, in
    /// order; `None` when no one else writes to this store.
    async fn follow(&self, _after: Revision) -> Option<tokio::sync::mpsc::Receiver<Followed>> {
        None
    }
    /// Gives up leading (a planned stop), so another master takes over at
    /// once.
    async fn resign(&self) {}
    /// The oldest records of `history` beyond the newest `keep`, at most
    /// `limit` of them: what retention deletes next.
    async fn expired(
        &self,
        history: History,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError>;
    /// Drops the store's own history of old revisions (etcd's compaction),
    /// up to what the previous call saw: a watcher that far behind loads
    /// the state again. Nothing to do for most stores.
    async fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Tells the other masters what this master's session with `node`
    /// says (`None`: it ended). Returns at once; rapid updates coalesce.
    fn publish(&self, _node: &NodeId, _record: Option<LiveRecord>) {}
    /// The masters and the store's endpoints (`clusterctl masters`).
    async fn topology(&self) -> Topology {
        Topology {
            store: "sled",
            ..Topology::default()
        }
    }
}

/// The role of a store only this master writes to.
pub fn sole_leader() -> tokio::sync::watch::Sender<Role> {
    tokio::sync::watch::Sender::new(Role::Leader { epoch: 0, from: 0 })
}

/// What a storage engine reported, without naming its types.
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: EngineError,
    },
    #[error("cannot open the store at {path}: another master process is using it")]
    Locked { path: PathBuf },
    #[error("cannot write to the store: {0}")]
    Write(#[source] EngineError),
    #[error("cannot read from the store: {0}")]
    Read(#[source] EngineError),
    #[error("corrupt record under key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{key} changed since it was read (expected {expected:?}, found {found:?})")]
    Conflict {
        key: Key,
        expected: Expect,
        /// Its revision now (`None`: absent).
        found: Option<Revision>,
    },
    #[error("the store moved past revision {read}, which the change was planned at")]
    Stale { read: Revision },
    #[error("the master is shutting down; the change was not made")]
    Closed,
    #[error("this master does not lead{}; the change was not made", .leader.as_ref().map(|l| format!(" (the leader is {l})")).unwrap_or_default())]
    NotLeader { leader: Option<String> },
    /// A standby waited its whole patience and no master led.
    #[error(
        "no master has led for {}s; the change was not made (is the store reachable, with a quorum? `clusterctl masters` shows its endpoints)",
        .waited.as_secs()
    )]
    Leaderless { waited: std::time::Duration },
    #[error("this master lost its leadership while committing; the change was not made")]
    Fenced,
    #[error("the change is {bytes} bytes; the store takes at most {limit} in one commit")]
    TooLarge { bytes: usize, limit: usize },
    #[error("the store cannot be reached: {0}")]
    Unavailable(#[source] EngineError),
    /// The leader refused a change planned here on a view that has moved
    /// since: plan it again once this master has followed `now`.
    #[error("the change was planned at revision {planned}; the store has moved to {now}")]
    Outdated { planned: Revision, now: Revision },
    /// The leader refused the change for good (over the store's limits).
    #[error("{0}")]
    Refused(String),
}
