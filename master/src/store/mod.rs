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
//! - `sled` — the embedded default.
//! - `mem` — in memory, for tests of the core (it can be told to fail).

mod change;
mod sled;

#[cfg(test)]
pub mod mem;

pub use self::change::{Change, Expect, Key, Loaded, Precondition, Record, Revision};
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

pub trait Store: Send + Sync + 'static {
    /// Every record of the state, at one revision.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Checks `change`'s preconditions and applies it atomically; returns
    /// the new revision once it is durable.
    fn commit(&self, change: &Change) -> Result<Revision, StoreError>;
    /// Events matching `query`, oldest first; the newest `limit` when more match.
    fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;
    /// The newest `limit` jobs, newest first.
    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError>;
    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// The newest `limit` rollouts, newest first.
    fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError>;
    fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError>;
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
    #[error("the master is shutting down; the change was not made")]
    Closed,
}
