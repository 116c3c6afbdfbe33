//! A drain in one place: taking nodes out of service (or back) and, when
//! asked, following them until they are really out of rotation (or back
//! in) — each agent's acknowledgement, every proxy's applied
//! configuration and what it still has in flight, HAProxy's servers — as
//! one stream of [`DrainEvent`]s under one deadline, the master's. What is
//! still pending is typed ([`Pending`]); whoever shows it renders it.
//! Rollouts wait on the same conditions through [`Cluster::wait_rotation`].

use super::{Cluster, ClusterError};
use cluster_model::rotation::{ApplyStatus, DrainEvent, NodeResult, Pending};
use cluster_model::{NodeId, NodeName, TargetSpec};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A drain or undrain, as asked.
#[derive(Debug, Clone)]
pub struct DrainRequest {
    pub target: TargetSpec,
    /// True: out of service; false: back in.
    pub offline: bool,
    pub reason: String,
    pub maintenance: bool,
    /// Who, for the event log: the certificate's identity.
    pub by: String,
    /// The client's note on itself, sanitised.
    pub note: String,
    /// Follow the nodes until really out (or back in), or `timeout`.
    pub wait: bool,
    pub timeout: Duration,
}

/// Where a followed node is.
struct Target {
    id: NodeId,
    name: NodeName,
    /// The spec generation its agent must acknowledge.
    generation: u64,
}

impl Cluster {
    /// Stores the drain (all or nothing) and returns its events: first
    /// what was stored; with `wait`, then acknowledgements and what is
    /// pending as they happen, and last how it ended. The stream ends
    /// early when its receiver goes away.
    pub async fn drain(
        self: &Arc<Self>,
        req: DrainRequest,
    ) -> Result<mpsc::Receiver<DrainEvent>, ClusterError> {
        let started = Instant::now();
        let reason = req.offline.then(|| match req.reason.trim() {
            "" => "no reason given".to_owned(),
            r => r.to_owned(),
        });
        let (generation, changes) = self
            .set_out(&req.target, reason, req.maintenance, &req.by, &req.note)
            .await?;
        let (targets, results): (Vec<Target>, Vec<NodeResult>) = self.read(|st| {
            changes
                .iter()
                .map(|c| {
                    let target = Target {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        generation: st.node(&c.id).map_or(0, |n| n.revision),
                    };
                    let result = NodeResult {
                        name: c.name.clone(),
                        status: if c.changed {
                            ApplyStatus::Stored
                        } else {
                            ApplyStatus::Unchanged
                        },
                        connected: st.session(&c.id).is_some(),
                    };
                    (target, result)
                })
                .unzip()
        });
        let (tx, rx) = mpsc::channel(64);
        tx.try_send(DrainEvent::Stored {
            generation,
            results,
        })
        .expect("a new channel has room");
        if req.wait {
            let cluster = self.clone();
            let deadline = started + req.timeout;
            tokio::spawn(async move {
                cluster
                    .follow(targets, req.offline, started, deadline, tx)
                    .await
            });
        }
        Ok(rx)
    }

    /// Per target: acknowledged, not connected, or (at the deadline)
    /// timed out; `None` while still waited for.
    fn applied(&self, targets: &[Target]) -> Vec<Option<ApplyStatus>> {
        self.read(|st| {
            targets
                .iter()
                .map(|t| match st.live(&t.id) {
                    Some(l) if l.session.is_some() => {
                        (l.applied.generation >= t.generation).then_some(ApplyStatus::Acknowledged)
                    }
                    _ => Some(ApplyStatus::NotConnected),
                })
                .collect()
        })
    }

    async fn follow(
        &self,
        targets: Vec<Target>,
        offline: bool,
        started: Instant,
        deadline: Instant,
        tx: mpsc::Sender<DrainEvent>,
    ) {
        let elapsed = || started.elapsed().as_millis() as u64;
        let waited: Vec<(NodeId, u64)> = targets
            .iter()
            .map(|t| (t.id.clone(), t.generation))
            .collect();
        let mut changes = self.changes();
        let mut announced = HashSet::new();
        let mut last: Option<Vec<Pending>> = None;
        loop {
            changes.borrow_and_update();
            let statuses = self.applied(&targets);
            for (t, s) in targets.iter().zip(&statuses) {
                if *s == Some(ApplyStatus::Acknowledged) && announced.insert(t.id.clone()) {
                    let event = DrainEvent::Applied {
                        node: t.name.clone(),
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            let pending = self.read(|st| {
                if offline {
                    st.out_pending(&waited)
                } else {
                    st.in_pending(&waited)
                }
            });
            let results = |timed_out: bool| {
                targets
                    .iter()
                    .zip(&statuses)
                    .map(|(t, s)| NodeResult {
                        name: t.name.clone(),
                        status: s.unwrap_or(if timed_out {
                            ApplyStatus::TimedOut
                        } else {
                            ApplyStatus::Stored
                        }),
                        connected: *s != Some(ApplyStatus::NotConnected),
                    })
                    .collect()
            };
            if pending.is_empty() && statuses.iter().all(Option::is_some) {
                let _ = tx
                    .send(DrainEvent::Done {
                        complete: true,
                        pending,
                        elapsed_ms: elapsed(),
                        results: results(false),
                    })
                    .await;
                return;
            }
            if last.as_ref() != Some(&pending) {
                last = Some(pending.clone());
                let event = DrainEvent::Pending {
                    pending: pending.clone(),
                    elapsed_ms: elapsed(),
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                woke = tokio::time::timeout_at(deadline, changes.changed()) => {
                    if woke.is_err() {
                        let _ = tx
                            .send(DrainEvent::Done {
                                complete: false,
                                pending,
                                elapsed_ms: elapsed(),
                                results: results(true),
                            })
                            .await;
                        return;
                    }
                }
            }
        }
    }

    /// The nodes of a drain's changes with the spec generation their
    /// agents must acknowledge.
    pub fn spec_generations(&self, changes: &[super::NodeChange]) -> Vec<(NodeId, u64)> {
        self.read(|st| {
            changes
                .iter()
                .map(|c| (c.id.clone(), st.node(&c.id).map_or(0, |n| n.revision)))
                .collect()
        })
    }

    /// Waits until `pending` (`State::out_pending` or `in_pending` for the
    /// nodes at hand) is empty or `timeout` passes; returns what was still
    /// pending.
    pub async fn wait_rotation(
        &self,
        timeout: Duration,
        pending: impl Fn(&crate::state::State) -> Vec<Pending>,
    ) -> Vec<Pending> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.changes();
        loop {
            rx.borrow_and_update();
            let now = self.read(&pending);
            if now.is_empty()
                || tokio::time::timeout_at(deadline, rx.changed())
                    .await
                    .is_err()
            {
                return now;
            }
        }
    }

    /// Waits until every node in `targets` has acknowledged at least its
    /// spec generation, or `timeout` passes. Nodes without a session are
    /// reported at once as not connected.
    pub async fn wait_applied(
        &self,
        targets: &[(NodeId, u64)],
        timeout: Duration,
    ) -> Vec<ApplyStatus> {
        let targets: Vec<Target> = targets
            .iter()
            .map(|(id, generation)| Target {
                id: id.clone(),
                name: NodeName::of_id(id),
                generation: *generation,
            })
            .collect();
        let deadline = Instant::now() + timeout;
        let mut rx = self.changes();
        loop {
            rx.borrow_and_update();
            let statuses = self.applied(&targets);
            if statuses.iter().all(Option::is_some) {
                return statuses.into_iter().flatten().collect();
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return statuses
                    .into_iter()
                    .map(|s| s.unwrap_or(ApplyStatus::TimedOut))
                    .collect();
            }
        }
    }
}
