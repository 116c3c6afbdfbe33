//! The leader's election, with etcd's election API on a lease this master
//! keeps alive itself.
//!
//! One task: grant a lease of the configured TTL, keep it alive every
//! TTL/3 (a keep-alive stream that breaks is opened again with the same
//! lease), campaign with this master's address as the value, and lead —
//! with the fence, the leader key's create revision, that every commit
//! carries. Leadership ends when
//!
//! - no keep-alive succeeded for 3/4 of the TTL: step down before the
//!   lease can have expired (Patroni's rule), so two masters never both
//!   believe they lead;
//! - a commit found the fence gone (`fenced`): at once;
//! - the master stops (`resign`): the lease is revoked, so another master
//!   wins within milliseconds instead of a TTL.
//!
//! Followers learn the leader's address by observing the election.

use super::EtcdConfig;
use crate::store::{MasterEntry, Revision, Role};
use etcd_client::Client;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a leader's commits are fenced on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The leader key (`<election>/<lease id>`).
    pub key: Vec<u8>,
    /// Its create revision: it changes if the key is lost and made again.
    pub revision: i64,
}

struct Shared {
    role: watch::Sender<Role>,
    fence: watch::Sender<Option<Fence>>,
    stop: CancellationToken,
    /// The lease and leader key of the current term, to resign.
    term: std::sync::Mutex<Option<(i64, Option<etcd_client::LeaderKey>)>>,
    /// The last leader the election was seen to have (another master's
    /// address, and its epoch), kept while this master leads too: a
    /// master that steps down knows whom to send commits to at once.
    observed: std::sync::Mutex<(Option<String>, Revision)>,
}

impl Shared {
    /// Steps down from leading `epoch`: a follower of whoever the election
    /// was last seen to have (if it is newer).
    fn step_down(&self, epoch: Revision) {
        let (leader, seen) = self
            .observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (leader, epoch) = if seen > epoch {
            (leader, seen)
        } else {
            (None, epoch)
        };
        self.role.send_if_modified(|role| match role {
            Role::Leader { .. } => {
                *role = Role::Follower { leader, epoch };
                true
            }
            Role::Follower { .. } => false,
        });
    }
}

pub struct Leadership {
    shared: Arc<Shared>,
    client: Client,
    /// What `campaign` starts.
    campaign: std::sync::Mutex<Option<Campaign>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Campaign {
    name: String,
    me: Candidate,
    ttl: Duration,
}

/// How often a failed step (a grant, a campaign) is tried again.
const RETRY: Duration = Duration::from_millis(250);

impl Leadership {
    /// Follows who leads; campaigns only once [`Leadership::campaign`]
    /// is called (when this master serves).
    pub fn start(client: Client, config: &EtcdConfig) -> Leadership {
        let shared = Arc::new(Shared {
            role: watch::Sender::new(Role::Follower {
                leader: None,
                epoch: 0,
            }),
            fence: watch::Sender::new(None),
            observed: std::sync::Mutex::new((None, 0)),
            stop: CancellationToken::new(),
            term: std::sync::Mutex::new(None),
        });
        let name = format!("{}election", config.prefix);
        let me = Candidate {
            name: config.name.clone(),
            address: config.advertise.clone(),
        };
        tokio::spawn(observe(
            client.clone(),
            name.clone(),
            me.name.clone(),
            shared.clone(),
        ));
        Leadership {
            shared,
            client,
            campaign: std::sync::Mutex::new(Some(Campaign {
                name,
                me,
                ttl: config.lease_ttl,
            })),
            task: std::sync::Mutex::new(None),
        }
    }

    /// Stands for election (once).
    pub fn campaign(&self) {
        let Some(c) = self
            .campaign
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let task = tokio::spawn(run(
            self.client.clone(),
            c.name,
            c.me,
            c.ttl,
            self.shared.clone(),
        ));
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    pub fn role(&self) -> watch::Receiver<Role> {
        self.shared.role.subscribe()
    }

    pub fn fence(&self) -> watch::Receiver<Option<Fence>> {
        self.shared.fence.subscribe()
    }

    /// A commit found the fence gone: lead no more.
    pub fn fenced(&self) {
        self.shared.fence.send_replace(None);
        // At once, not when the campaign task hears of it.
        let epoch = self.shared.role.borrow().epoch();
        self.shared.step_down(epoch);
    }

    /// Stops campaigning and gives leadership up at once.
    pub async fn resign(&self) {
        self.shared.stop.cancel();
        self.shared.fence.send_replace(None);
        let term = self
            .shared
            .term
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((lease, leader)) = term {
            let mut election = self.client.election_client();
            if let Some(leader) = leader {
                let _ = election
                    .resign(Some(etcd_client::ResignOptions::new().with_leader(leader)))
                    .await;
            }
            revoke(&self.client, lease).await;
        }
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// Keeps `lease` alive every `ttl / 3`; returns when no renewal succeeded
/// for 3/4 of the TTL (the lease may be about to expire) or on `stop`.
pub(super) async fn keep_alive(
    client: &Client,
    lease: i64,
    ttl: Duration,
    what: &str,
    stop: &CancellationToken,
) {
    let patience = ttl * 3 / 4;
    let mut last_ok = Instant::now();
    let mut stream = None;
    loop {
        let left = patience.saturating_sub(last_ok.elapsed());
        if left.is_zero() {
            tracing::warn!(
                lease,
                "{what}: the lease could not be renewed in time; giving it up"
            );
            return;
        }
        // Each try is bounded by what patience is left, so one stuck on a
        // member that died cannot use it all.
        let attempt = left.min(ttl / 4);
        let sent = Instant::now();
        let renewed = tokio::time::timeout(attempt, async {
            if stream.is_none() {
                stream = Some(client.lease_client().keep_alive(lease).await.ok()?);
            }
            let (keeper, responses) = stream.as_mut()?;
            keeper.keep_alive().await.ok()?;
            responses.message().await.ok().flatten()
        })
        .await;
        let pause = match renewed {
            // A TTL of 0 means the lease has expired.
            Ok(Some(r)) if r.ttl() > 0 => {
                last_ok = sent;
                ttl / 3
            }
            Ok(Some(_)) => return,
            // Failed: at once again on a new stream (another member may
            // answer), not a third of the TTL later.
            _ => {
                stream = None;
                Duration::from_millis(50)
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// What a campaigning master announces: the value of its election key.
pub type Candidate = MasterEntry;

/// The candidate an election key's value names.
pub fn candidate_of(value: &[u8]) -> Option<Candidate> {
    serde_json::from_slice(value).ok()
}

async fn run(client: Client, name: String, me: Candidate, ttl: Duration, shared: Arc<Shared>) {
    // `<prefix>election` → `<prefix>meta/revision`.
    let meta = format!("{}meta/revision", name.trim_end_matches("election"));
    let value = serde_json::to_vec(&me).expect("a candidate serialises");
    let ttl_secs = ttl.as_secs().max(2) as i64;
    let ttl = Duration::from_secs(ttl_secs as u64);
    while !shared.stop.is_cancelled() {
        let lease = match client.lease_client().grant(ttl_secs, None).await {
            Ok(l) => l.id(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot get a lease from etcd; trying again");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        *shared.term.lock().unwrap_or_else(|e| e.into_inner()) = Some((lease, None));
        let kept = keep_alive(&client, lease, ttl, "the leader's election", &shared.stop);
        tokio::pin!(kept);
        let mut election = client.election_client();
        let campaign = election.campaign(name.clone(), value.clone(), lease);
        let won = tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = &mut kept => None,
            won = campaign => won.ok().and_then(|mut r| r.take_leader()),
        };
        let Some(leader) = won else {
            revoke(&client, lease).await;
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let fence = Fence {
            key: leader.key().to_vec(),
            revision: leader.rev(),
        };
        // Every earlier leader's commits are at or below the revision of
        // the last one (each rewrites `meta/revision`; the earlier leader's
        // key is gone, so its fenced commits fail from now): this master
        // commits once it has followed that far.
        let from = loop {
            match client.kv_client().get(meta.clone(), None).await {
                Ok(r) => break r.kvs().first().map_or(0, |kv| kv.mod_revision()) as Revision,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the store's revision; trying again");
                    tokio::select! {
                        _ = shared.stop.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        };
        tracing::info!(epoch = fence.revision, from, "this master leads");
        *shared.term.lock().unwrap_or_else(|e| e.into_inner()) = Some((lease, Some(leader)));
        // A commit that finds the fence gone takes it away (`fenced`).
        let mut fenced = shared.fence.subscribe();
        shared.fence.send_replace(Some(fence.clone()));
        fenced.mark_unchanged();
        shared.role.send_replace(Role::Leader {
            epoch: fence.revision as Revision,
            from,
        });
        let why = tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = &mut kept => "the lease could not be renewed in time",
            _ = fenced.wait_for(Option::is_none) => "fenced: another master leads now",
        };
        tracing::warn!(epoch = fence.revision, "stepping down: {why}");
        shared.fence.send_replace(None);
        shared.step_down(fence.revision as Revision);
        revoke(&client, lease).await;
    }
}

/// Revokes `lease` (its election key goes with it, so the next candidate
/// need not wait out its TTL), trying again for a moment when the member
/// asked does not answer.
async fn revoke(client: &Client, lease: i64) {
    for _ in 0..20 {
        let revoked = tokio::time::timeout(RETRY, client.lease_client().revoke(lease)).await;
        match revoked {
            Ok(Ok(_)) => return,
            // Gone already (expired): nothing to revoke.
            Ok(Err(etcd_client::Error::GRpcStatus(s))) if s.code() == tonic::Code::NotFound => {
                return;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Follows who leads, for followers to send commits there.
async fn observe(client: Client, name: String, me: String, shared: Arc<Shared>) {
    while !shared.stop.is_cancelled() {
        let mut election = client.election_client();
        if let Ok(mut stream) = election.observe(name.clone()).await {
            while let Ok(Some(resp)) = stream.message().await {
                let Some(kv) = resp.kv() else { continue };
                let epoch = kv.create_revision() as Revision;
                // Its own key: this master leads, or did a moment ago.
                let leader = candidate_of(kv.value())
                    .filter(|c| c.name != me)
                    .map(|c| c.address);
                {
                    let mut observed = shared.observed.lock().unwrap_or_else(|e| e.into_inner());
                    if epoch >= observed.1 {
                        *observed = (leader.clone(), epoch);
                    }
                }
                shared.role.send_if_modified(|role| match role {
                    Role::Follower {
                        leader: known,
                        epoch: seen,
                    } if (*known != leader || *seen != epoch) && epoch >= *seen => {
                        *known = leader.clone();
                        *seen = epoch;
                        true
                    }
                    _ => false,
                });
            }
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
