//! Taking nodes out of service and putting them back (bethel's offline
//! flag), and waiting until their agents have applied it.

use super::{ApplyStatus, Cluster, ClusterError, NodeChange, TargetSpec};
use crate::model::{EventKind, OfflineFlag, now_ms};
use crate::store::Write;
use std::time::Duration;

impl Cluster {
    /// Takes nodes out of service (`reason: Some`) or puts them back
    /// (`None`). All or nothing: an unknown name changes nothing.
    pub async fn set_offline(
        &self,
        spec: &TargetSpec,
        reason: Option<String>,
        by: &str,
    ) -> Result<(u64, Vec<NodeChange>), ClusterError> {
        self.set_out(spec, reason, false, by).await
    }

    /// As [`Cluster::set_offline`]; `maintenance` takes nodes out entirely
    /// (HAProxy MAINT) rather than draining them.
    pub async fn set_out(
        &self,
        spec: &TargetSpec,
        reason: Option<String>,
        maintenance: bool,
        by: &str,
    ) -> Result<(u64, Vec<NodeChange>), ClusterError> {
        let result = self.set_out_inner(spec, reason, maintenance, by).await;
        self.refresh_proxy();
        result
    }

    async fn set_out_inner(
        &self,
        spec: &TargetSpec,
        reason: Option<String>,
        maintenance: bool,
        by: &str,
    ) -> Result<(u64, Vec<NodeChange>), ClusterError> {
        let _w = self.writer.lock().await;
        let now = now_ms();
        let (write, changes) = {
            let mut st = self.state();
            let ids = st.select(spec)?;
            let generation = st.generation + 1;
            let mut write = Write::default();
            let mut changes = Vec::new();
            for id in ids {
                let node = &st.nodes[&id];
                let wanted = reason.as_ref().map(|r| OfflineFlag {
                    reason: r.clone(),
                    since_ms: now,
                    by: by.to_owned(),
                    maintenance,
                });
                let changed = match (&node.offline, &wanted) {
                    (None, None) => false,
                    (Some(old), Some(new)) => {
                        old.reason != new.reason || old.maintenance != new.maintenance
                    }
                    _ => true,
                };
                let mut change = NodeChange {
                    id: id.clone(),
                    name: node.name.clone(),
                    changed,
                    spec_generation: node.spec_generation,
                };
                if changed {
                    let mut node = node.clone();
                    node.offline = wanted;
                    node.spec_generation = generation;
                    change.spec_generation = generation;
                    let (kind, detail) = match &reason {
                        Some(r) if maintenance => (EventKind::Drain, format!("maintenance: {r}")),
                        Some(r) => (EventKind::Drain, r.clone()),
                        None => (EventKind::Undrain, String::new()),
                    };
                    let name = node.name.clone();
                    write.nodes.push(node);
                    let event = st.event(kind, &name, by, detail);
                    write.events.push(event);
                }
                changes.push(change);
            }
            if !write.nodes.is_empty() {
                write.generation = Some(generation);
            }
            (write, changes)
        };
        let generation = write.generation;
        if let Err(e) = self.persist(write.clone()).await {
            // Give back the event numbers this attempt took.
            self.state().next_event_seq -= write.events.len() as u64;
            return Err(e.into());
        }
        let mut st = self.state();
        for node in write.nodes {
            let id = node.id.clone();
            let spec_generation = node.spec_generation;
            if let Some(live) = st.nodes.get_mut(&id) {
                live.offline = node.offline;
                live.spec_generation = spec_generation;
            }
            st.notify(&id, spec_generation);
        }
        if let Some(g) = generation {
            st.generation = g;
        }
        Ok((st.generation, changes))
    }

    /// Waits until every node in `targets` has acknowledged at least its
    /// spec generation, or `timeout` passes. Nodes without a session are
    /// reported at once as not connected.
    pub async fn wait_applied(
        &self,
        targets: &[(String, u64)],
        timeout: Duration,
    ) -> Vec<ApplyStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.acks.subscribe();
        loop {
            let statuses: Vec<Option<ApplyStatus>> = {
                let st = self.state();
                targets
                    .iter()
                    .map(|(id, generation)| match st.nodes.get(id) {
                        Some(n) if !n.connected => Some(ApplyStatus::NotConnected),
                        Some(n) if n.applied.generation >= *generation => {
                            Some(ApplyStatus::Acknowledged)
                        }
                        Some(_) => None,
                        None => Some(ApplyStatus::NotConnected),
                    })
                    .collect()
            };
            if statuses.iter().all(Option::is_some) {
                return statuses.into_iter().flatten().collect();
            }
            let timed_out = tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err();
            if timed_out {
                return statuses
                    .into_iter()
                    .map(|s| s.unwrap_or(ApplyStatus::TimedOut))
                    .collect();
            }
        }
    }
}
