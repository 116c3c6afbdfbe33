//! One master among several: where a commit is made, and how the state
//! follows commits made through the others.
//!
//! Only the leader commits. A change planned here is committed
//!
//! - by the store, when this master leads — once its state has followed
//!   every commit up to the revision its leadership began at (its epoch),
//!   so it never plans on what an earlier leader left half-seen; the
//!   change is then applied here at once;
//! - by the leader, when another master leads ([`Peers::commit`]) — the
//!   change travels whole, its preconditions are checked by the store, so
//!   a change planned on a view that has moved is refused as a conflict
//!   and planned again here. This master then waits until its own state
//!   has followed the change's revision, so a caller reads what it wrote
//!   on whichever master it asked.
//!
//! Forwarding rather than sending callers to the leader: agents' sessions
//! commit too (a node registering, a check's event), and they stay on the
//! master they are connected to; clusterctl needs no retry loop to find
//! the leader.
//!
//! No leader (an election in progress), or a fenced commit (this master
//! lost its leadership while committing: nothing was written), is waited
//! out for a bounded time and tried again. A commit whose outcome is
//! unknown (the leader went away mid-call) is not retried here: it is an
//! `Unavailable` error the caller retries with its request id.

use super::Cluster;
use crate::state::Effects;
use crate::store::{Change, Followed, MasterEntry, Revision, Role, StoreError, Topology};
use async_trait::async_trait;
use cluster_model::NodeId;
use cluster_model::job::JobCommand;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How this master reaches the leader.
#[async_trait]
pub trait Peers: Send + Sync + 'static {
    /// Has the leader at `leader` commit `change`: its revision.
    /// `NotLeader` when it does not lead (any more); `Unavailable` when
    /// the outcome is unknown.
    async fn commit(&self, leader: &str, change: &Change) -> Result<Revision, StoreError>;
    /// What the master at `address` says of itself.
    async fn status(&self, address: &str) -> Result<PeerStatus, String>;
    /// Hands a job command to `node`'s session on the master at
    /// `address`; false when it cannot be relayed there.
    async fn command(&self, address: &str, node: &NodeId, cmd: JobCommand) -> bool;
}

/// The cluster's masters as `clusterctl masters` shows them.
#[derive(Debug, Clone)]
pub struct Masters {
    pub topology: Topology,
    pub masters: Vec<MasterView>,
}

#[derive(Debug, Clone)]
pub struct MasterView {
    pub entry: MasterEntry,
    pub leader: bool,
    /// The master that was asked.
    pub answering: bool,
    /// What it said of itself, or why it could not be asked.
    pub status: Result<PeerStatus, String>,
}

/// This master, as the others and `clusterctl masters` know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub name: String,
    /// Its gRPC address.
    pub address: String,
}

impl Default for Me {
    fn default() -> Me {
        Me {
            name: "master".into(),
            address: String::new(),
        }
    }
}

/// A master's own view, as it reports it to the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub name: String,
    /// The store revision its state is at.
    pub revision: Revision,
    /// Agents whose sessions it holds.
    pub agents: u32,
}

/// No other master: commits are never forwarded.
pub struct Alone;

#[async_trait]
impl Peers for Alone {
    async fn commit(&self, _: &str, _: &Change) -> Result<Revision, StoreError> {
        Err(StoreError::NotLeader { leader: None })
    }
    async fn status(&self, address: &str) -> Result<PeerStatus, String> {
        Err(format!("no way to reach {address}: this master runs alone"))
    }
    async fn command(&self, _: &str, _: &NodeId, _: JobCommand) -> bool {
        false
    }
}

/// Where a commit was made.
enum Made {
    /// By this master: current here at once.
    Here(Revision),
    /// By the leader: current here once followed.
    There(Revision),
}

/// How long a commit waits for a leader (an election, a handover).
pub const LEADER_PATIENCE: Duration = Duration::from_secs(15);
/// How long a commit made through the leader waits to be followed here.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(5);

impl Cluster {
    /// Makes `change` durable wherever it must be, then current here.
    pub(super) async fn commit(&self, change: Change) -> Result<(), StoreError> {
        let deadline = Instant::now() + LEADER_PATIENCE;
        let mut role = self.role.clone();
        loop {
            let current = role.borrow_and_update().clone();
            let started = std::time::Instant::now();
            let result = match &current {
                Role::Leader { from, .. } => match self.caught_up(*from, deadline).await {
                    Ok(()) => {
                        let r = self.store.commit(&change).await.map(Made::Here);
                        self.latency.store.observe(started.elapsed());
                        r
                    }
                    Err(e) => Err(e),
                },
                Role::Follower {
                    leader: Some(leader),
                    ..
                } => {
                    let r = self.peers.commit(leader, &change).await.map(Made::There);
                    self.latency.leader.observe(started.elapsed());
                    r
                }
                Role::Follower { leader: None, .. } => Err(StoreError::NotLeader { leader: None }),
            };
            match result {
                Ok(Made::Here(revision)) => {
                    let mut inner = self.inner();
                    // The follow may have applied it already.
                    if revision > inner.state.revision() {
                        let effects = inner.state.apply(&change, revision);
                        self.wake(&mut inner, effects);
                    }
                    return Ok(());
                }
                Ok(Made::There(revision)) => {
                    self.followed_past(revision).await;
                    return Ok(());
                }
                // Planned on a view the leader has moved past: follow it
                // that far, then the caller plans again.
                Err(e @ StoreError::Outdated { now, .. }) => {
                    self.followed_past(now).await;
                    return Err(e);
                }
                Err(StoreError::NotLeader { .. } | StoreError::Fenced)
                    if Instant::now() < deadline =>
                {
                    // Wait for the role to move (an election), a little.
                    let _ = tokio::time::timeout(Duration::from_millis(200), role.changed()).await;
                }
                // Nobody led for the whole wait: say that, not whom to ask.
                Err(StoreError::NotLeader { leader: None }) => {
                    return Err(StoreError::Leaderless {
                        waited: LEADER_PATIENCE,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits a change another master planned, when this one leads —
    /// in turn with its own, so every commit is applied here in order.
    pub async fn commit_for_peer(&self, change: Change) -> Result<Revision, StoreError> {
        let _w = self.writer.lock().await;
        let Role::Leader { from, .. } = self.role.borrow().clone() else {
            return Err(StoreError::NotLeader {
                leader: match &*self.role.borrow() {
                    Role::Follower { leader, .. } => leader.clone(),
                    Role::Leader { .. } => None,
                },
            });
        };
        self.caught_up(from, Instant::now() + LEADER_PATIENCE)
            .await?;
        let started = std::time::Instant::now();
        let committed = self.store.commit(&change).await;
        self.latency.store.observe(started.elapsed());
        match committed {
            Ok(revision) => {
                let mut inner = self.inner();
                if revision > inner.state.revision() {
                    let effects = inner.state.apply(&change, revision);
                    self.wake(&mut inner, effects);
                }
                Ok(revision)
            }
            Err(StoreError::Conflict { .. } | StoreError::Stale { .. }) => {
                Err(StoreError::Outdated {
                    planned: change.read_revision,
                    now: self.generation(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Every master, who leads, and the store's endpoints, each master
    /// asked for its own view (at once, each within its timeout).
    pub async fn masters(&self) -> Masters {
        let mut topology = self.store.topology().await;
        if topology.masters.is_empty() && topology.store == "sled" {
            topology.masters.push(MasterEntry {
                name: self.me.name.clone(),
                address: self.me.address.clone(),
            });
            topology.led = true;
        }
        if topology.revision == 0 {
            topology.revision = self.generation();
        }
        let mut asked = tokio::task::JoinSet::new();
        for (i, m) in topology.masters.iter().enumerate() {
            if m.name == self.me.name {
                continue;
            }
            let (peers, address) = (self.peers.clone(), m.address.clone());
            asked.spawn(async move { (i, peers.status(&address).await) });
        }
        let mut statuses: Vec<Option<Result<PeerStatus, String>>> =
            vec![None; topology.masters.len()];
        while let Some(Ok((i, status))) = asked.join_next().await {
            statuses[i] = Some(status);
        }
        let masters = topology
            .masters
            .iter()
            .zip(statuses)
            .enumerate()
            .map(|(i, (m, status))| {
                let answering = m.name == self.me.name;
                MasterView {
                    entry: m.clone(),
                    leader: i == 0 && topology.led,
                    answering,
                    status: match status {
                        Some(s) => s,
                        None => Ok(self.own_status()),
                    },
                }
            })
            .collect();
        Masters { topology, masters }
    }

    /// How long commits take.
    pub fn commit_latency(&self) -> &super::CommitLatency {
        &self.latency
    }

    /// This master's name.
    pub fn name(&self) -> &str {
        &self.me.name
    }

    /// The store revision this master has followed every commit up to.
    pub fn followed(&self) -> Revision {
        *self.followed.borrow()
    }

    /// This master's view, for the others.
    pub fn own_status(&self) -> PeerStatus {
        let inner = self.inner();
        PeerStatus {
            name: self.me.name.clone(),
            revision: inner.state.revision(),
            agents: inner.channels.len() as u32,
        }
    }

    /// The leadership this master serves under: its own when it leads.
    pub fn epoch(&self) -> Revision {
        self.role.borrow().epoch()
    }

    /// Who commits, now and as it changes.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Waits until this master's state has followed every commit up to
    /// `from` (the store's revision when its leadership began).
    async fn caught_up(&self, from: Revision, deadline: Instant) -> Result<(), StoreError> {
        let mut seen = self.followed.subscribe();
        let wait = seen.wait_for(|r| *r >= from);
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::Unavailable(
                format!(
                    "this master leads from revision {from} but has not yet followed the store that far"
                )
                .into(),
            )),
        }
    }

    /// Waits (bounded) until the state holds what was committed at
    /// `revision` through the leader.
    async fn followed_past(&self, revision: Revision) {
        let mut seen = self.followed.subscribe();
        let wait = seen.wait_for(|r| *r >= revision);
        if tokio::time::timeout(FOLLOW_PATIENCE, wait).await.is_err() {
            tracing::warn!(
                revision,
                "a change committed through the leader is not yet followed here; reads may lag"
            );
        }
    }

    /// Applies what the store says was committed (through any master), in
    /// order, until `token` is cancelled or the store stops following.
    pub async fn follow_store(&self, token: CancellationToken) {
        let Some(mut rx) = self.following.lock().await.take() else {
            return;
        };
        loop {
            let followed = tokio::select! {
                _ = token.cancelled() => return,
                f = rx.recv() => f,
            };
            let Some(followed) = followed else { return };
            let seen = {
                let mut inner = self.inner();
                match followed {
                    Followed::Change { revision, change } => {
                        // This master's own commits are applied when made.
                        if revision > inner.state.revision() {
                            let effects = inner.state.apply(&change, revision);
                            self.wake(&mut inner, effects);
                        }
                        revision
                    }
                    Followed::Reload(loaded) => {
                        let revision = loaded.revision;
                        let effects: Effects =
                            inner.state.reload(loaded, cluster_model::time::now_ms());
                        // Lines removed in the gap are in no log: built afresh.
                        inner.hosts_table = Default::default();
                        self.wake(&mut inner, effects);
                        revision
                    }
                    Followed::Seen(revision) => revision,
                    Followed::Live { node, record } => {
                        // This master's own records echo back: it knows.
                        if record.as_ref().is_some_and(|r| r.master == self.me.name) {
                            continue;
                        }
                        let observed = inner.state.observe(crate::state::Observation::Remote {
                            node,
                            record: record.map(|r| *r),
                            now_ms: cluster_model::time::now_ms(),
                        });
                        self.wake(&mut inner, observed.effects);
                        continue;
                    }
                }
            };
            self.followed.send_if_modified(|r| {
                let moved = seen > *r;
                *r = (*r).max(seen);
                moved
            });
        }
    }
}
