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
//! - `access` — callers by their certificates, refusals, tokens, node
//!   keys and their renewal, people's certificates, what expires when.
//! - `ops` — every other mutation and read, by area.
//! - `retention` — the history kept bounded (the leader's work).
//! - `replica` — one master among several: commits made by the leader,
//!   the state following what the others commit.
//! - `drain` — drains followed until really out of rotation (or back in);
//!   waiting for acknowledgements and rotation.
//! - `latency` — how long commits take, for `/metrics`.
//! - `error` — [`ClusterError`].

mod access;
mod counters;
mod drain;
mod error;
pub(crate) mod hosts_table;
pub mod joins;
mod latency;
mod ops;
mod replica;
mod retention;
mod sessions;

#[cfg(test)]
mod tests;

pub use crate::state::plan::{JoinOutcome, KeyDecision, NodeChange};
pub use crate::state::{BalancingState, HostsChanges, HostsNaming};
pub use access::{Caller, Permission, Refusal, TokenGrant};
pub use counters::Counters;
pub use drain::DrainRequest;
pub use error::ClusterError;
pub use hosts_table::Part as HostsPart;
pub use joins::JoinLimits;
pub use latency::{BUCKETS, CommitLatency, Histogram};
pub use replica::{Alone, LEADER_PATIENCE, MasterView, Masters, Me, PeerStatus, Peers};
pub use retention::Retention;
pub use sessions::{SessionHandle, SessionSnapshot};

use crate::pki::{Ca, Subject};
use crate::state::plan::{Command, Env, Issuer};
use crate::state::{Config, Effects, State};
use crate::store::{
    Expect, Followed, Key, Precondition, Record, RequestRecord, Revision, Store, StoreError,
};
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
    /// Where the session comes from.
    from: Option<std::net::IpAddr>,
}

struct Inner {
    state: State,
    channels: HashMap<NodeId, Channels>,
    next_session_id: u64,
    /// Every hosts line as sessions send it, shared.
    hosts_table: hosts_table::HostsTable,
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

/// How many times a commit that lost a race is planned again at once.
const REPLANS: usize = 3;
/// Past those, while several masters write at once (a standby's plan can
/// keep losing to the others' commits), it is planned again after a
/// random pause that grows to [`REPLAN_PAUSE_MAX`], for this long.
const REPLAN_PATIENCE: Duration = Duration::from_secs(10);
const REPLAN_PAUSE_MAX: Duration = Duration::from_millis(64);

/// The pause before the `attempt`th plan past [`REPLANS`]: random (from
/// the clock's nanoseconds), so racing masters do not meet again, up to
/// twice the last one's bound.
fn replan_pause(attempt: usize) -> Duration {
    let bound =
        (1u64 << attempt.saturating_sub(REPLANS).min(6)).min(REPLAN_PAUSE_MAX.as_millis() as u64);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_micros(nanos % (bound * 1000) + 100)
}

/// The call being served, under its caller's request id.
#[derive(Default)]
struct Request {
    /// Taken by the call's first change.
    id: Option<String>,
    /// Set when that change was made before: the call was answered from
    /// its record.
    replayed: bool,
}

tokio::task_local! {
    static REQUEST: std::cell::RefCell<Request>;
}

/// Runs `f` as the call with request id `id` (`x-request-id`): its first
/// change is made once, however many times the call is retried with it.
pub async fn with_request<F: std::future::Future>(id: Option<String>, f: F) -> F::Output {
    let request = Request {
        id,
        replayed: false,
    };
    REQUEST.scope(std::cell::RefCell::new(request), f).await
}

fn take_request() -> Option<String> {
    REQUEST
        .try_with(|r| r.borrow_mut().id.take())
        .ok()
        .flatten()
}

/// Whether the call being served was answered from the record of an
/// earlier try (what only that try could say, a secret, is gone).
pub fn replayed() -> bool {
    REQUEST.try_with(|r| r.borrow().replayed).unwrap_or(false)
}

pub struct Cluster {
    store: Arc<dyn Store>,
    /// The leader, when another master leads.
    peers: Arc<dyn Peers>,
    /// This master, as the others know it.
    me: Me,
    role: watch::Receiver<crate::store::Role>,
    /// Commits made through any master, until `follow` takes them.
    following: tokio::sync::Mutex<Option<mpsc::Receiver<Followed>>>,
    /// The store revision every commit up to has been followed.
    followed: watch::Sender<Revision>,
    /// How long commits take.
    latency: CommitLatency,
    /// What was done through this master, for `/metrics`.
    pub counters: Counters,
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
    /// Bumped when a certificate is revoked; calls open under one watch it.
    revocations: watch::Sender<u64>,
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
        let loaded = store.load().await?;
        let revision = loaded.revision;
        let following = store.follow(revision).await;
        let state = State::load(config, loaded, now);
        let proxy_version = state.proxy_view().version;
        let role = store.role();
        Ok(Cluster {
            store,
            peers: Arc::new(Alone),
            me: Me::default(),
            role,
            following: tokio::sync::Mutex::new(following),
            followed: watch::Sender::new(revision),
            latency: CommitLatency::default(),
            counters: Counters::default(),
            ca,
            inner: Mutex::new(Inner {
                state,
                channels: HashMap::new(),
                next_session_id: 0,
                hosts_table: Default::default(),
            }),
            writer: tokio::sync::Mutex::new(()),
            changes: watch::Sender::new(0),
            hosts_changed: watch::Sender::new(0),
            proxy_changed: watch::Sender::new(proxy_version),
            revocations: watch::Sender::new(0),
            down_after,
        })
    }

    /// Commits go to the leader through `peers` when another master leads;
    /// `me` is this master as the others know it.
    pub fn with_peers(mut self, peers: Arc<dyn Peers>, me: Me) -> Cluster {
        self.peers = peers;
        self.me = me;
        self
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

    /// Whether `cmd`, planned now, would change nothing (a reader's check:
    /// a writer must plan again under the lock).
    fn plans_nothing<C: Command>(&self, cmd: &C) -> bool {
        let env = Env {
            now_ms: now_ms(),
            issuer: &*self.ca,
        };
        cmd.plan(&self.inner().state, &env)
            .is_ok_and(|p| p.change.is_empty())
    }

    /// [`Cluster::execute`] for callers that hold the writer lock.
    async fn execute_locked<C: Command>(&self, cmd: &C) -> Result<C::Out, ClusterError> {
        let request = take_request();
        let mut attempt = 0;
        let patience = std::time::Instant::now() + REPLAN_PATIENCE;
        loop {
            // A retry of a call that took effect is answered as it was.
            if let Some(id) = &request
                && let Some(done) = self.read(|st| st.request(id).cloned())
            {
                let _ = REQUEST.try_with(|r| r.borrow_mut().replayed = true);
                return serde_json::from_str(&done.out).map_err(|e| {
                    ClusterError::Invalid(format!(
                        "request {id} took effect before, but its answer cannot be read again: {e}"
                    ))
                });
            }
            let mut planned = {
                let env = Env {
                    now_ms: now_ms(),
                    issuer: &*self.ca,
                };
                cmd.plan(&self.inner().state, &env)?
            };
            if planned.change.is_empty() {
                return Ok(planned.out);
            }
            if let Some(id) = &request {
                let out = serde_json::to_string(&planned.out).expect("answers serialise");
                let change = &mut planned.change;
                change.puts.push(Record::Request(RequestRecord {
                    id: id.clone(),
                    out,
                    at_ms: change.at_ms,
                }));
                change.preconditions.push(Precondition {
                    key: Key::Request(id.clone()),
                    expect: Expect::Absent,
                });
            }
            match self.commit(planned.change).await {
                Ok(()) => return Ok(planned.out),
                Err(
                    e @ (StoreError::Conflict { .. }
                    | StoreError::Stale { .. }
                    | StoreError::Outdated { .. }),
                ) if attempt < REPLANS || std::time::Instant::now() < patience => {
                    attempt += 1;
                    if attempt <= REPLANS {
                        tracing::info!(reason = %e, "the store moved under a change; planning it again");
                    } else {
                        tracing::debug!(reason = %e, attempt, "the store keeps moving under a change");
                        tokio::time::sleep(replan_pause(attempt)).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Turns effects into wake-ups; called with the state lock held, so
    /// every session reads the state they announce.
    fn wake(&self, inner: &mut Inner, effects: Effects) {
        for id in &effects.close {
            // Dropping the session's watch ends its loop and closes the stream.
            if inner.channels.remove(id).is_some() {
                self.store.publish(id, None);
            }
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
        if effects.revoked {
            self.revocations.send_modify(|n| *n += 1);
        }
    }

    /// Resolves once the certificate `serial` is revoked (at once if it
    /// is already), on this master or, through the store, on another.
    pub fn revocation(
        self: &Arc<Self>,
        serial: &str,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut revocations = self.revocations.subscribe();
        let (cluster, serial) = (self.clone(), serial.to_owned());
        async move {
            while !cluster.read(|st| st.is_revoked(&serial)) {
                if revocations.changed().await.is_err() {
                    return;
                }
            }
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
