//! What the master keeps of its history, enforced by the leader: the
//! newest events, jobs and rollouts up to a bound each, and answered
//! requests for as long as a caller may retry them.

use super::{Cluster, ClusterError};
use crate::state::plan::Forget;
use crate::store::{History, Key};
use cluster_model::time::now_ms;
use std::time::Duration;

/// What is kept: records of each history, and how long a request id is
/// remembered (a retry after that acts again).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub events: usize,
    pub jobs: usize,
    pub rollouts: usize,
    pub requests: Duration,
    /// How long a key may wait as pending before it is deleted.
    pub pending_keys: Duration,
    /// Events older than this go, however few there are (`None`: kept
    /// by count alone).
    pub events_for: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            events: 10_000,
            jobs: 1_000,
            rollouts: 200,
            requests: Duration::from_secs(3600),
            pending_keys: Duration::from_secs(24 * 3600),
            events_for: Some(Duration::from_secs(90 * 24 * 3600)),
        }
    }
}
/// Records deleted per change (within etcd's 128 operations).
const PER_CHANGE: usize = 100;

impl Cluster {
    /// Deletes what is past retention, a bounded number per change; how
    /// many records went.
    pub async fn retain(&self, keep: &Retention) -> Result<usize, ClusterError> {
        let mut gone = 0;
        for (history, keep) in [
            (History::Events, keep.events),
            (History::Jobs, keep.jobs),
            (History::Rollouts, keep.rollouts),
        ] {
            loop {
                let keys = self.store.expired(history, keep, PER_CHANGE).await?;
                if keys.is_empty() {
                    break;
                }
                gone += keys.len();
                self.execute(&Forget { keys }).await?;
            }
        }
        if let Some(age) = keep.events_for {
            let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
            loop {
                let oldest = self.store.oldest_events(PER_CHANGE).await?;
                let keys: Vec<Key> = oldest
                    .iter()
                    .take_while(|e| e.time_ms < cutoff)
                    .map(|e| Key::Event(e.seq))
                    .collect();
                let (n, all) = (keys.len(), oldest.len());
                if n == 0 {
                    break;
                }
                gone += n;
                self.execute(&Forget { keys }).await?;
                if n < all {
                    break;
                }
            }
        }
        let before = now_ms().saturating_sub(keep.requests.as_millis() as u64);
        let old = self.read(|st| st.requests_before(before));
        for chunk in old.chunks(PER_CHANGE) {
            let keys = chunk.iter().cloned().map(Key::Request).collect();
            gone += chunk.len();
            self.execute(&Forget { keys }).await?;
        }
        // Pending keys nobody decided on go, each with an event (a node's
        // requests together, once the newest of them is old).
        let before = now_ms().saturating_sub(keep.pending_keys.as_millis() as u64);
        let stale: Vec<String> = self.read(|st| {
            st.keys()
                .filter(|k| {
                    k.state == cluster_model::KeyState::Pending
                        && k.requests().iter().all(|r| r.requested_ms <= before)
                })
                .map(|k| k.node_id.to_string())
                .collect()
        });
        for chunk in stale.chunks(PER_CHANGE / 2) {
            gone += chunk.len();
            self.execute(&crate::state::plan::DecideKeys {
                ids: chunk.to_vec(),
                decision: crate::state::plan::KeyDecision::Delete,
                fingerprint: None,
                by: format!(
                    "retention (pending longer than {})",
                    humantime::format_duration(keep.pending_keys)
                ),
            })
            .await?;
        }
        Ok(gone)
    }

    /// Drops the store's history of old revisions (with etcd).
    pub async fn compact(&self) -> Result<(), ClusterError> {
        Ok(self.store.compact().await?)
    }
}
