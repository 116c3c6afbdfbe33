//! The shell around the state machine: one [`State`] behind a short lock,
//! the store, the agent sessions' channels, and the wake-ups.
//!
//! A mutation is [`Cluster::execute`]: take the writer lock (one mutation
//! at a time), plan against the state as it is, commit the change to the
//! store (its revision comes back), apply it to the state, and only then
//! wake the sessions and waiters its [`Effects`] name. A refused plan or a
//! failed commit changes nothing: there is nothing to roll back. A commit
//! that found the store moved under it (a failed precondition) is planned
//! again.
//!
//! Sessions are woken level-triggered: each holds a `watch` of its node's
//! spec generation and, when woken, reads the node's *current* spec.
//! Rapid changes coalesce and none is lost. See `grpc/LIFECYCLE.md`.
//!
//! - `sessions` — agents connecting, what they report, what they are sent.
//! - `ops` — every other mutation and read, by area.
//! - `drain` — drains followed until really out of rotation (or back in);
//!   waiting for acknowledgements and rotation.
//! - `error` — [`ClusterError`].

mod drain;
mod error;
mod ops;
mod sessions;

#[cfg(test)]
mod tests;

pub use crate::state::plan::{JoinOutcome, KeyDecision, NodeChange};
pub use crate::state::{BalancingState, HostsChanges, HostsNaming};
pub use drain::DrainRequest;
pub use error::ClusterError;
pub use ops::{Caller, TokenGrant};
pub use sessions::{SessionHandle, SessionSnapshot};

use crate::pki::{Ca, Subject};
use crate::state::plan::{Command, Env, Issuer};
use crate::state::{Config, Effects, State};
use crate::store::{Change, Revision, Store, StoreError};
use cluster_model::NodeId;
use cluster_model::job::JobCommand;
use cluster_model::time::now_ms;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A session's channels: how the shell reaches its loop.
struct Channels {
    id: u64,
    /// Moves to the node's spec generation when its record changes.
    spec: watch::Sender<u64>,
    /// Job commands for the node's agent.
    commands: mpsc::Sender<JobCommand>,
}

struct Inner {
    state: State,
    channels: HashMap<NodeId, Channels>,
    next_session_id: u64,
}

/// How the CA signs for planners.
impl Issuer for Ca {
    fn issue(
        &self,
        csr_pem: &str,
        subject: &Subject,
        now_ms: u64,
    ) -> Result<(String, String), ClusterError> {
        let now = std::time::UNIX_EPOCH + Duration::from_millis(now_ms);
        self.issue_client(csr_pem, subject, now)
            .map_err(|e| ClusterError::Pki(e.to_string()))
    }
}

/// How many times a commit that lost a race is planned again.
const REPLANS: usize = 3;

pub struct Cluster {
    store: Arc<dyn Store>,
    /// Signs node and user certificates.
    ca: Arc<Ca>,
    inner: Mutex<Inner>,
    /// Serialises mutations: held from planning until the change is
    /// applied and its wake-ups sent.
    writer: tokio::sync::Mutex<()>,
    /// Bumped on everything a waiter re-checks (acknowledgements,
    /// connects, balancer reports, applied changes).
    changes: watch::Sender<u64>,
    /// The revision of the latest hosts change; every session watches it.
    hosts_changed: watch::Sender<u64>,
    /// The version of what the proxies are sent; their sessions watch it.
    proxy_changed: watch::Sender<u64>,
    down_after: Duration,
}

impl Cluster {
    /// Loads the state from `store`. `hosts` (the master's configuration)
    /// shapes hosts lines until a cluster file applies settings of its own.
    pub async fn open(
        store: Arc<dyn Store>,
        ca: Arc<Ca>,
        down_after: Duration,
        hosts: HostsNaming,
    ) -> Result<Cluster, StoreError> {
        let now = now_ms();
        let config = Config {
            hosts,
            down_after_ms: down_after.as_millis() as u64,
            started_ms: now,
        };
        let state = State::load(config, store.load().await?, now);
        let proxy_version = state.proxy_view().version;
        Ok(Cluster {
            store,
            ca,
            inner: Mutex::new(Inner {
                state,
                channels: HashMap::new(),
                next_session_id: 0,
            }),
            writer: tokio::sync::Mutex::new(()),
            changes: watch::Sender::new(0),
            hosts_changed: watch::Sender::new(0),
            proxy_changed: watch::Sender::new(proxy_version),
            down_after,
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock is a bug; the state is still
        // whole: it changes only in `State::apply` and `observe`.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the state under its lock.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.inner().state)
    }

    /// Plans `cmd`, commits it, applies it, wakes what it moved.
    pub async fn execute<C: Command>(&self, cmd: &C) -> Result<C::Out, ClusterError> {
        let _w = self.writer.lock().await;
        self.execute_locked(cmd).await
    }

    /// [`Cluster::execute`] for callers that hold the writer lock.
    async fn execute_locked<C: Command>(&self, cmd: &C) -> Result<C::Out, ClusterError> {
        let mut attempt = 0;
        loop {
            let planned = {
                let env = Env {
                    now_ms: now_ms(),
                    issuer: &*self.ca,
                };
                cmd.plan(&self.inner().state, &env)?
            };
            if planned.change.is_empty() {
                return Ok(planned.out);
            }
            match self.commit(planned.change).await {
                Ok(()) => return Ok(planned.out),
                Err(StoreError::Conflict { key, .. }) if attempt < REPLANS => {
                    tracing::info!(%key, "the store moved under a change; planning it again");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Makes `change` durable, then current, then wakes what it moved.
    async fn commit(&self, change: Change) -> Result<(), StoreError> {
        let revision: Revision = self.store.commit(&change).await?;
        let mut inner = self.inner();
        let effects = inner.state.apply(&change, revision);
        self.wake(&mut inner, effects);
        Ok(())
    }

    /// Turns effects into wake-ups; called with the state lock held, so
    /// every session reads the state they announce.
    fn wake(&self, inner: &mut Inner, effects: Effects) {
        for id in &effects.close {
            // Dropping the session's watch ends its loop and closes the stream.
            inner.channels.remove(id);
        }
        for (id, revision) in &effects.specs {
            if let Some(ch) = inner.channels.get(id) {
                ch.spec.send_replace(*revision);
            }
        }
        if let Some(revision) = effects.hosts {
            self.hosts_changed.send_replace(revision);
        }
        if let Some(version) = effects.proxy {
            self.proxy_changed.send_replace(version);
        }
        if effects.waiters {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Moves on everything a waiter re-checks its condition on.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn down_after(&self) -> Duration {
        self.down_after
    }

    /// The store's revision the state is at: the generation.
    pub fn generation(&self) -> u64 {
        self.read(State::revision)
    }
}
