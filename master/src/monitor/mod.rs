//! Watching the fleet: every master keeps the usage history of every
//! node it sees (its own sessions' and, with several masters, the
//! others'); the leader runs the alert rules over it, stores what fires
//! and resolves (records and events, through the plan/commit core) and
//! hands each change to delivery.
//!
//! One loop, every [`TICK`]: it takes from the state only the nodes with
//! something new — a report newer than the history's, a drain or a
//! silence that began or ended — and the nodes whose alerts are pending
//! or firing (time moves them), so a quiet fleet of 10,000 costs little.
//!
//! - `history` — the bounded per-node rings.
//! - `alerting` — the leader's side: rules run, changes committed, then
//!   delivered; taken up from the stored records on becoming leader.

mod alerting;
pub mod history;

pub use alerting::Deliver;
pub use history::{Sample, UsageHistory};

use crate::cluster::Cluster;
use crate::store::Role;
use alerting::Leader;
use cluster_model::alerts::Thresholds;
use cluster_model::time::now_ms;
use cluster_model::{NodeId, Usage};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the loop looks.
pub const TICK: Duration = Duration::from_millis(250);

/// What the monitor is configured with.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Usage history kept per node.
    pub history: Duration,
    pub thresholds: Thresholds,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            history: Duration::from_secs(3600),
            thresholds: Thresholds::default(),
        }
    }
}

/// A node as one tick takes it from the state.
#[derive(Debug, Clone)]
pub(crate) struct Snap {
    pub id: NodeId,
    pub name: String,
    pub roles: Vec<String>,
    pub drained: bool,
    /// Last seen, when silent past the master's patience.
    pub down_since_ms: Option<u64>,
    pub usage: Option<Usage>,
    pub cores: f64,
    /// Its report is newer than the history's newest.
    pub fresh: bool,
}

/// What a node looked like at the last tick (to see what is new).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    sampled_at_ms: u64,
    drained: bool,
    down: bool,
}

pub struct Monitor {
    history: Mutex<UsageHistory>,
    thresholds: Thresholds,
    seen: Mutex<HashMap<NodeId, Seen>>,
    leader: tokio::sync::Mutex<Option<Leader>>,
    deliver: Arc<dyn Deliver>,
}

impl Monitor {
    pub fn new(config: MonitorConfig, deliver: Arc<dyn Deliver>) -> Monitor {
        Monitor {
            history: Mutex::new(UsageHistory::new(config.history)),
            thresholds: config.thresholds,
            seen: Mutex::new(HashMap::new()),
            leader: tokio::sync::Mutex::new(None),
            deliver,
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Each node with the levels its usage is judged by.
    pub fn with_levels(&self, nodes: &mut [cluster_model::NodeStatus]) {
        for n in nodes {
            n.levels = Some(
                self.thresholds
                    .for_node(n.node.name.as_str(), &n.node.roles),
            );
        }
    }

    fn history(&self) -> std::sync::MutexGuard<'_, UsageHistory> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node's samples since `since_ms`, oldest first.
    pub fn usage_history(&self, node: &NodeId, since_ms: u64) -> Vec<Sample> {
        self.history().of(node, since_ms)
    }

    /// How long history is kept, and what it holds now: nodes and bytes.
    pub fn history_size(&self) -> (Duration, usize, usize) {
        let h = self.history();
        (h.window(), h.nodes(), h.bytes())
    }

    /// The nodes with something new since the last tick, and `also`
    /// (whose alerts time moves).
    fn take(&self, cluster: &Cluster, also: &HashSet<NodeId>, now: u64) -> Vec<Snap> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        cluster.read(|st| {
            let down_after = st.config().down_after_ms;
            let mut out = Vec::new();
            for stored in st.nodes() {
                let node = &stored.value;
                let live = st.live(&node.id);
                let last_seen = node.last_seen_ms.max(live.map_or(0, |l| l.last_seen_ms));
                let usage = live.and_then(|l| l.usage.as_ref());
                let now_seen = Seen {
                    sampled_at_ms: usage.map_or(0, |u| u.sampled_at_ms),
                    drained: node.offline.is_some(),
                    down: now.saturating_sub(last_seen) > down_after,
                };
                let before = seen.insert(node.id.clone(), now_seen);
                let fresh = now_seen.sampled_at_ms > before.map_or(0, |b| b.sampled_at_ms);
                if !(fresh || before != Some(now_seen) || also.contains(&node.id)) {
                    continue;
                }
                out.push(Snap {
                    id: node.id.clone(),
                    name: node.name.to_string(),
                    roles: node.roles.clone(),
                    drained: now_seen.drained,
                    down_since_ms: now_seen.down.then_some(last_seen),
                    usage: usage.cloned(),
                    cores: node
                        .grains
                        .get("num_cpus")
                        .and_then(|v| v.as_f64())
                        .unwrap_or(1.0)
                        .max(1.0),
                    fresh,
                });
            }
            // Nodes removed: forgotten here too.
            if seen.len() > st.nodes().count() {
                seen.retain(|id, _| st.node(id).is_some());
                self.history().retain(|id| st.node(id).is_some());
            }
            out
        })
    }

    /// One look: history for every master, alerts for the leader.
    pub async fn tick(&self, cluster: &Cluster, leading: bool) {
        let now = now_ms();
        let mut leader = self.leader.lock().await;
        match (leading, leader.is_some()) {
            (true, false) => *leader = Some(Leader::take_up(cluster, self.deliver.clone())),
            (false, true) => {
                *leader = None;
                self.deliver.step_down();
            }
            _ => {}
        }
        let active = leader.as_ref().map(Leader::active).unwrap_or_default();
        let snaps = self.take(cluster, &active, now);
        {
            let mut h = self.history();
            for s in snaps.iter().filter(|s| s.fresh) {
                if let Some(u) = &s.usage {
                    h.push(&s.id, u);
                }
            }
        }
        if let Some(l) = leader.as_mut() {
            l.evaluate(cluster, &self.thresholds, &snaps, now).await;
        }
    }
}

/// The monitor's loop, until `token` ends it.
pub async fn run(monitor: Arc<Monitor>, cluster: Arc<Cluster>, token: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let leading = matches!(*cluster.role().borrow(), Role::Leader { .. });
        monitor.tick(&cluster, leading).await;
    }
}
