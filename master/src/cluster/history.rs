//! What happened: stored job records (and their audit events).

use super::{Cluster, ClusterError};
use crate::model::{EventKind, JobRecord};
use crate::store::{StoreError, Write};

impl Cluster {
    /// Stores a job record (again, as it progresses), with an optional
    /// event in the same durable write.
    pub async fn record_job(
        &self,
        record: &JobRecord,
        event: Option<(EventKind, String)>,
    ) -> Result<(), ClusterError> {
        let _w = self.writer.lock().await;
        let mut write = Write {
            jobs: vec![record.clone()],
            ..Write::default()
        };
        if let Some((kind, detail)) = event {
            write
                .events
                .push(self.state().event(kind, "", &record.by, detail));
        }
        self.commit(write).await
    }

    /// Stores a rollout's record (again, as it progresses), with an
    /// optional event in the same durable write.
    pub async fn record_rollout(
        &self,
        record: &crate::rollout::RolloutRecord,
        event: Option<(EventKind, String)>,
    ) -> Result<(), ClusterError> {
        let _w = self.writer.lock().await;
        let mut write = Write {
            rollouts: vec![record.clone()],
            ..Write::default()
        };
        if let Some((kind, detail)) = event {
            write
                .events
                .push(self.state().event(kind, "", &record.by, detail));
        }
        self.commit(write).await
    }

    pub fn rollouts(&self, limit: usize) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError> {
        self.store.rollouts(limit)
    }

    pub fn rollout(&self, id: &str) -> Result<Option<crate::rollout::RolloutRecord>, StoreError> {
        self.store.rollout(id)
    }

    /// The newest `limit` jobs, newest first.
    pub fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.store.jobs(limit)
    }

    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.store.job(id)
    }
}
