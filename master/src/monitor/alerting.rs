//! The leader's side of alerts: the rules run over what each tick took,
//! every change committed (a record while firing, an event for each
//! change) and only then delivered, so what operators are told and what
//! the cluster shows agree. A commit that fails is tried again on the
//! next tick, the changes held in order (bounded).

use super::Snap;
use crate::cluster::Cluster;
use crate::state::plan::AlertChanges;
use cluster_model::NodeId;
use cluster_model::alerts::rules::NodeSample;
use cluster_model::alerts::{Alerting, Levels, Notice, Thresholds, Transition};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Where alerts go (Alertmanager, email, webhooks): never blocks.
pub trait Deliver: Send + Sync {
    /// An alert fired or resolved.
    fn notify(&self, notice: Notice);
    /// The alerts firing when this master became leader (to re-send; no
    /// new mail).
    fn restore(&self, firing: Vec<Notice>);
    /// This master no longer leads: what it was re-sending is the new
    /// leader's.
    fn step_down(&self);
}

/// Changes held while the store refuses them, at most.
const UNSAVED_MOST: usize = 10_000;

pub(crate) struct Leader {
    alerting: Alerting,
    /// Each node's levels, with the name and roles they were made for.
    levels: HashMap<NodeId, (String, Vec<String>, Levels)>,
    unsaved: Vec<Transition>,
    deliver: Arc<dyn Deliver>,
    ticks: u64,
}

impl Leader {
    /// Becomes the one that runs the rules: the stored firing alerts are
    /// taken up (they resolve as any other, and do not fire again).
    pub fn take_up(cluster: &Cluster, deliver: Arc<dyn Deliver>) -> Leader {
        let mut alerting = Alerting::default();
        let firing: Vec<Notice> = cluster.read(|st| {
            st.alerts()
                .map(|t| {
                    alerting.restore(t.key.clone(), &t.notice);
                    t.notice.clone()
                })
                .collect()
        });
        if !firing.is_empty() {
            tracing::info!(firing = firing.len(), "took up the firing alerts");
        }
        deliver.restore(firing);
        Leader {
            alerting,
            levels: HashMap::new(),
            unsaved: Vec::new(),
            deliver,
            ticks: 0,
        }
    }

    /// The nodes whose alerts are pending or firing.
    pub fn active(&self) -> HashSet<NodeId> {
        self.alerting.active_nodes().into_iter().collect()
    }

    fn levels_of(&mut self, t: &Thresholds, s: &Snap) -> &Levels {
        let fresh = match self.levels.get(&s.id) {
            Some((name, roles, _)) => name != &s.name || roles != &s.roles,
            None => true,
        };
        if fresh {
            let l = t.for_node(&s.name, &s.roles);
            self.levels
                .insert(s.id.clone(), (s.name.clone(), s.roles.clone(), l));
        }
        &self.levels[&s.id].2
    }

    pub async fn evaluate(
        &mut self,
        cluster: &Cluster,
        thresholds: &Thresholds,
        snaps: &[Snap],
        now: u64,
    ) {
        let mut changes = Vec::new();
        for s in snaps {
            let levels = self.levels_of(thresholds, s).clone();
            let sample = NodeSample {
                id: &s.id,
                name: &s.name,
                roles: &s.roles,
                drained: s.drained,
                down_since_ms: s.down_since_ms,
                usage: s.usage.as_ref(),
                cores: s.cores,
            };
            changes.extend(self.alerting.observe(&sample, &levels, now));
        }
        self.ticks += 1;
        if self.ticks.is_multiple_of(40) {
            // Removed nodes' alerts resolve.
            let gone: Vec<NodeId> = cluster.read(|st| {
                self.alerting
                    .nodes()
                    .filter(|id| st.node(id).is_none())
                    .cloned()
                    .collect()
            });
            for id in gone {
                changes.extend(self.alerting.forget(&id, now));
                self.levels.remove(&id);
            }
        }
        self.unsaved.extend(changes);
        if self.unsaved.is_empty() {
            return;
        }
        if self.unsaved.len() > UNSAVED_MOST {
            let over = self.unsaved.len() - UNSAVED_MOST;
            tracing::error!(
                dropped = over,
                "the store has refused alert changes for too long; the oldest are dropped"
            );
            self.unsaved.drain(..over);
        }
        let cmd = AlertChanges {
            transitions: self.unsaved.clone(),
        };
        match cluster.execute(&cmd).await {
            Ok(()) => {
                for t in self.unsaved.drain(..) {
                    tracing::warn!(node = %t.notice.node, alert = %t.notice.alertname(),
                        status = t.notice.status.as_str(), "{}", t.notice.summary());
                    self.deliver.notify(t.notice);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, held = self.unsaved.len(), "cannot record alert changes; trying again");
            }
        }
    }
}
