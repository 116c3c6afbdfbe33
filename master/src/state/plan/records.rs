//! Planners for what happened: job and rollout records (stored again as
//! they progress), each with an optional event in the same change.

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::state::State;
use crate::store::{Key, Record};
use cluster_model::rollout::RolloutRecord;
use cluster_model::{EventKind, JobRecord};

pub struct RecordJob {
    pub record: JobRecord,
    pub event: Option<(EventKind, String)>,
}

impl Command for RecordJob {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        if let Some((kind, detail)) = &self.event {
            d.event(*kind, About::Cluster, &self.record.by, detail.clone());
        }
        d.put(Record::Job(self.record.clone()));
        Ok(d.finish(()))
    }
}

/// Deletes old history (and answered requests past their retention).
pub struct Forget {
    pub keys: Vec<Key>,
}

impl Command for Forget {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        for k in &self.keys {
            // Only what is there: a request record gone already is fine.
            if !matches!(k, Key::Request(_)) || st.revision_of(k).is_some() {
                d.delete(k.clone());
            }
        }
        Ok(d.finish(()))
    }
}

pub struct RecordRollout {
    pub record: RolloutRecord,
    pub event: Option<(EventKind, String)>,
}

impl Command for RecordRollout {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        if let Some((kind, detail)) = &self.event {
            d.event(*kind, About::Cluster, &self.record.by, detail.clone());
        }
        d.put(Record::Rollout(self.record.clone()));
        Ok(d.finish(()))
    }
}
