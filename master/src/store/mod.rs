//! Persistence of the cluster's desired state.
//!
//! Only this module (and its submodule `sled`) touches the storage engine; the
//! rest of the master sees the [`Store`] trait, so another backend (etcd) can
//! stand in. A write is one atomic, durable unit: when [`Store::write`]
//! returns `Ok`, the nodes, events and generation in it survive a crash.
//!
//! - `sled` — the embedded default.

mod sled;

pub use self::sled::SledStore;

use crate::model::{Event, JobRecord, KeyRecord, Node, Token};
use cluster_balancer::{Domain, UpstreamSource};
use std::path::PathBuf;

/// Everything the master reloads on start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub nodes: Vec<Node>,
    pub tokens: Vec<Token>,
    pub keys: Vec<KeyRecord>,
    /// Serials (hex) of revoked certificates.
    pub revoked: Vec<String>,
    /// Node groups: name → compound expression.
    pub groups: Vec<(String, String)>,
    pub upstreams: Vec<(String, UpstreamSource)>,
    pub routes: Vec<(String, Domain)>,
    /// Settings applied from a cluster file.
    pub settings: Option<crate::clusterfile::Settings>,
    pub generation: u64,
    /// The sequence number the next event gets.
    pub next_event_seq: u64,
}

/// One atomic, durable change.
#[derive(Debug, Default, Clone)]
pub struct Write {
    pub nodes: Vec<Node>,
    /// Node ids whose records go.
    pub nodes_deleted: Vec<String>,
    pub events: Vec<Event>,
    pub generation: Option<u64>,
    pub tokens: Vec<Token>,
    pub keys: Vec<KeyRecord>,
    /// Node ids whose key records go.
    pub keys_deleted: Vec<String>,
    pub revoked: Vec<String>,
    /// Node groups to set (an empty expression removes the group).
    pub groups: Vec<(String, String)>,
    pub jobs: Vec<JobRecord>,
    /// Upstreams to set (`None` removes).
    pub upstreams: Vec<(String, Option<UpstreamSource>)>,
    /// Domains' route chains to set (`None` removes).
    pub routes: Vec<(String, Option<Domain>)>,
    pub rollouts: Vec<crate::rollout::RolloutRecord>,
    pub settings: Option<crate::clusterfile::Settings>,
}

impl Write {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.nodes_deleted.is_empty()
            && self.events.is_empty()
            && self.generation.is_none()
            && self.tokens.is_empty()
            && self.keys.is_empty()
            && self.keys_deleted.is_empty()
            && self.revoked.is_empty()
            && self.groups.is_empty()
            && self.jobs.is_empty()
            && self.upstreams.is_empty()
            && self.routes.is_empty()
            && self.rollouts.is_empty()
            && self.settings.is_none()
    }
}

/// Which events to read back.
#[derive(Debug, Default, Clone)]
pub struct EventQuery {
    pub after_seq: u64,
    pub limit: usize,
    pub node: Option<String>,
}

pub trait Store: Send + Sync + 'static {
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Applies `write` atomically and returns once it is durable.
    fn write(&self, write: &Write) -> Result<(), StoreError>;
    /// Events matching `query`, oldest first; the newest `limit` when more match.
    fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;
    /// The newest `limit` jobs, newest first.
    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError>;
    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// The newest `limit` rollouts, newest first.
    fn rollouts(&self, limit: usize) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError>;
    fn rollout(&self, id: &str) -> Result<Option<crate::rollout::RolloutRecord>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: ::sled::Error,
    },
    #[error("cannot open the store at {path}: another master process is using it")]
    Locked { path: PathBuf },
    #[error("cannot write to the store: {0}")]
    Write(#[source] ::sled::Error),
    #[error("cannot read from the store: {0}")]
    Read(#[source] ::sled::Error),
    #[error("corrupt record under key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
}
