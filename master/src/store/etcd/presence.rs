//! What this master's agent sessions say, for the other masters: one key
//! per node (`live/<id>`), on a lease of this master's own, so a master
//! that dies takes its records with it within a lease TTL. (Kubernetes'
//! node leases, in the same spirit: observations are not desired state,
//! and are written by whoever observes them, not through the leader.)
//!
//! Updates coalesce: the latest record of each node waits in a map while
//! a write is in flight, and up to [`BATCH`] nodes go in one transaction.
//! The first write of a session takes the key whatever it held (the newest
//! session of a node wins); later writes and the final delete only touch
//! a key still on this master's lease, so a master whose session went
//! stale never overwrites or deletes the record of the master the agent
//! moved to.

use super::election::keep_alive;
use crate::store::LiveRecord;
use cluster_model::NodeId;
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Nodes written per transaction (etcd takes 128 operations per level).
const BATCH: usize = 64;
const RETRY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Pending {
    /// Each node's latest record (`None`: its session ended).
    latest: HashMap<NodeId, Option<LiveRecord>>,
    /// Nodes whose latest record is not written yet.
    dirty: HashSet<NodeId>,
    /// The session (its opening time) whose record each key holds.
    written: HashMap<NodeId, u64>,
}

struct Shared {
    pending: std::sync::Mutex<Pending>,
    wake: Notify,
    /// The lease records are written on (0: none yet).
    lease: AtomicI64,
    stop: CancellationToken,
}

pub struct Presence {
    shared: Arc<Shared>,
}

impl Presence {
    pub fn start(client: Client, root: String, ttl: Duration) -> Presence {
        let shared = Arc::new(Shared {
            pending: Default::default(),
            wake: Notify::new(),
            lease: AtomicI64::new(0),
            stop: CancellationToken::new(),
        });
        tokio::spawn(leases(client.clone(), ttl, shared.clone()));
        tokio::spawn(write(client, root, shared.clone()));
        Presence { shared }
    }

    pub fn publish(&self, node: &NodeId, record: Option<LiveRecord>) {
        let mut p = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.latest.insert(node.clone(), record);
        p.dirty.insert(node.clone());
        drop(p);
        self.shared.wake.notify_one();
    }

    /// Stops writing; the records go when the lease is revoked or expires.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// Holds a lease for the records: granted, kept alive every TTL/3, and,
/// when it could not be renewed in time, granted again with every record
/// written again on it.
async fn leases(client: Client, ttl: Duration, shared: Arc<Shared>) {
    let ttl_secs = ttl.as_secs().max(2) as i64;
    let ttl = Duration::from_secs(ttl_secs as u64);
    while !shared.stop.is_cancelled() {
        let lease = match client.lease_client().grant(ttl_secs, None).await {
            Ok(l) => l.id(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot get a lease for session records; trying again");
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        shared.lease.store(lease, Ordering::SeqCst);
        {
            let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            let live: Vec<NodeId> = p
                .latest
                .iter()
                .filter(|(_, r)| r.is_some())
                .map(|(n, _)| n.clone())
                .collect();
            // On a new lease, every record is a first write again.
            p.written.clear();
            p.dirty.extend(live);
        }
        shared.wake.notify_one();
        keep_alive(&client, lease, ttl, "the session records", &shared.stop).await;
        if shared.stop.is_cancelled() {
            let _ = client.lease_client().revoke(lease).await;
            return;
        }
        tracing::warn!(
            lease,
            "the session records' lease lapsed; writing them again on a new one"
        );
    }
}

async fn write(client: Client, root: String, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = shared.wake.notified() => {}
        }
        loop {
            let lease = shared.lease.load(Ordering::SeqCst);
            if lease == 0 {
                break; // written once the lease is granted
            }
            let batch: Vec<(NodeId, Option<LiveRecord>, bool)> = {
                let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
                let nodes: Vec<NodeId> = p.dirty.iter().take(BATCH).cloned().collect();
                nodes
                    .into_iter()
                    .map(|n| {
                        p.dirty.remove(&n);
                        let record = p.latest.get(&n).cloned().flatten();
                        let first = record
                            .as_ref()
                            .is_some_and(|r| p.written.get(&n) != Some(&r.since_ms));
                        (n, record, first)
                    })
                    .collect()
            };
            if batch.is_empty() {
                break;
            }
            let ops: Vec<TxnOp> = batch
                .iter()
                .map(|(node, record, first)| {
                    let key = format!("{root}live/{node}");
                    let mine = || Compare::lease(key.clone(), CompareOp::Equal, lease);
                    match record {
                        Some(r) => {
                            let value = serde_json::to_vec(r).expect("records serialise");
                            let put = TxnOp::put(
                                key.clone(),
                                value,
                                Some(PutOptions::new().with_lease(lease)),
                            );
                            if *first {
                                put
                            } else {
                                TxnOp::txn(Txn::new().when([mine()]).and_then([put]))
                            }
                        }
                        None => TxnOp::txn(
                            Txn::new()
                                .when([mine()])
                                .and_then([TxnOp::delete(key.clone(), None)]),
                        ),
                    }
                })
                .collect();
            let written = client.kv_client().txn(Txn::new().and_then(ops)).await;
            let failed = {
                let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
                match written {
                    Ok(_) => {
                        for (node, record, _) in &batch {
                            match record {
                                Some(r) => {
                                    p.written.insert(node.clone(), r.since_ms);
                                }
                                None => {
                                    p.written.remove(node);
                                    // Forget an ended session unless a new one began.
                                    if !p.dirty.contains(node) {
                                        p.latest.remove(node);
                                    }
                                }
                            }
                        }
                        false
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, nodes = batch.len(), "cannot write session records; trying again");
                        for (node, _, _) in batch {
                            p.dirty.insert(node);
                        }
                        true
                    }
                }
            };
            if failed {
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}
