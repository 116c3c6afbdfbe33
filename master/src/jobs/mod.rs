//! Remote execution: a job is one command fanned out to the nodes a target
//! selects, over the agents' existing sessions, with its output streamed
//! back as it comes and the outcome of each node stored.
//!
//! - [`Jobs`] — the registry of running jobs: sessions hand it what agents
//!   report ([`Report`]), each job's driver takes it from there.
//! - `driver` — one task per job: the sliding window (`--batch`), per-node
//!   deadlines, cancellation when the caller goes away, the stored record.
//! - [`live`] — a running job as its page shows it, node by node.
//! - [`batch`] — `N` / `N%` → a window size.
//!
//! See `LIFECYCLE.md` beside this file.

pub mod batch;
mod driver;
pub mod live;

pub use driver::{RunSpec, start};
pub use live::LiveJob;

use cluster_model::job::{JobDone, OutputStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// What a session reports about a job on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Output {
        stream: OutputStream,
        data: Vec<u8>,
    },
    Done(JobDone),
    /// The node's session ended.
    Gone,
}

/// Running jobs, so sessions can route what agents report.
pub struct Jobs {
    active: Mutex<HashMap<String, mpsc::Sender<(String, Report)>>>,
    /// The jobs this master runs, as their pages show them.
    shown: Mutex<HashMap<String, Arc<LiveJob>>>,
    last_id: Mutex<String>,
    /// Output kept per node and stream in the stored record.
    pub output_cap: usize,
    /// Every job's driver, so a stopping master waits for their records.
    tasks: TaskTracker,
}

impl Jobs {
    pub fn new(output_cap: usize) -> Jobs {
        Jobs {
            active: Mutex::new(HashMap::new()),
            shown: Mutex::new(HashMap::new()),
            last_id: Mutex::new(String::new()),
            output_cap,
            tasks: TaskTracker::new(),
        }
    }

    /// Waits (at most `patience`) for every job's driver to store its
    /// record; called once the sessions have ended, so no node is left to
    /// answer and each driver finishes its nodes as lost.
    pub async fn wait(&self, patience: std::time::Duration) {
        self.tasks.close();
        if tokio::time::timeout(patience, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("jobs still running at shutdown; their records may be incomplete");
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<(String, Report)>>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job this master runs, while it runs.
    pub fn live(&self, job_id: &str) -> Option<Arc<LiveJob>> {
        self.shown().get(job_id).cloned()
    }

    fn shown(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveJob>>> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn show(&self, job_id: &str, live: Arc<LiveJob>) {
        self.shown().insert(job_id.to_owned(), live);
    }

    pub(crate) fn unshow(&self, job_id: &str) {
        self.shown().remove(job_id);
    }

    /// A new job id, time-ordered like Salt's jid (`YYYYMMDDhhmmssffffff`)
    /// and strictly increasing within this master.
    pub fn next_id(&self) -> String {
        let now = time::OffsetDateTime::now_utc();
        let mut id = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}{:06}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.microsecond()
        );
        let mut last = self.last_id.lock().unwrap_or_else(|e| e.into_inner());
        if id <= *last {
            // Same microsecond (or a clock step back): one past the last.
            let n: u128 = last.parse().unwrap_or(0) + 1;
            id = format!("{n:020}");
        }
        *last = id.clone();
        id
    }

    /// Routes an agent's report to its job; reports for jobs no longer
    /// running are dropped.
    pub async fn report(&self, job_id: &str, node_id: &str, report: Report) {
        let tx = self.active().get(job_id).cloned();
        if let Some(tx) = tx {
            let _ = tx.send((node_id.to_owned(), report)).await;
        }
    }

    /// A node's session ended: every running job hears it.
    pub async fn node_gone(&self, node_id: &str) {
        let txs: Vec<_> = self.active().values().cloned().collect();
        for tx in txs {
            let _ = tx.send((node_id.to_owned(), Report::Gone)).await;
        }
    }

    /// What this master's sessions report of a job another master runs,
    /// to relay back there.
    pub fn relay(&self, job_id: &str) -> mpsc::Receiver<(String, Report)> {
        self.register(job_id)
    }

    /// A relayed job is over here.
    pub fn forget(&self, job_id: &str) {
        self.unregister(job_id);
    }

    fn register(&self, job_id: &str) -> mpsc::Receiver<(String, Report)> {
        let (tx, rx) = mpsc::channel(1024);
        self.active().insert(job_id.to_owned(), tx);
        rx
    }

    fn unregister(&self, job_id: &str) {
        self.active().remove(job_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_sort_by_time_and_never_repeat() {
        let jobs = Jobs::new(1024);
        let ids: Vec<String> = (0..1000).map(|_| jobs.next_id()).collect();
        assert!(
            ids.iter()
                .all(|id| id.len() == 20 && id.chars().all(|c| c.is_ascii_digit()))
        );
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
