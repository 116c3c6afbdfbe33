//! The live side of the dashboard, shared by every open tab: one task keeps
//! each node's table row rendered, with a version per row, and a short
//! usage history per node for the sparklines. A tab's stream remembers
//! only the last version it sent, so an open tab costs a few hundred bytes
//! of state whatever the cluster's size; a drain reaches every tab as one
//! re-rendered row.

use super::views;
use crate::cluster::Cluster;
use cluster_model::NodeId;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// Usage samples kept per node for its sparkline (and the node page).
pub const HISTORY: usize = 60;
/// How often rows are rebuilt when nothing else wakes the board: usage
/// reports do not wake waiters.
const TICK: Duration = Duration::from_secs(2);

/// One usage sample: CPU and memory, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_ms: u64,
    pub cpu: f32,
    pub mem: f32,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub version: u64,
    pub id: NodeId,
    /// `<tr>…</tr>`, the same for every viewer.
    pub html: Arc<str>,
    pub state: cluster_model::NodeState,
    pub roles: Vec<String>,
}

/// A row as a tab is sent it: its node's name and its HTML (`None`: the
/// node is gone).
pub type RowUpdate = (String, Option<Arc<str>>);

#[derive(Default)]
struct Inner {
    version: u64,
    rows: BTreeMap<String, Row>,
    /// Names removed, with the version that removed them (the last 1,000).
    gone: VecDeque<(u64, String)>,
    history: HashMap<NodeId, VecDeque<Sample>>,
}

pub struct Board {
    inner: RwLock<Inner>,
    version: watch::Sender<u64>,
}

impl Board {
    /// A board kept up to date by a task of its own until `cluster` goes.
    pub fn start(cluster: Arc<Cluster>) -> Arc<Board> {
        let board = Arc::new(Board {
            inner: RwLock::new(Inner::default()),
            version: watch::channel(0).0,
        });
        board.rebuild(&cluster);
        let weak = Arc::downgrade(&board);
        tokio::spawn(async move {
            let mut changes = cluster.changes();
            loop {
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(TICK) => {}
                }
                let Some(board) = weak.upgrade() else { return };
                board.rebuild(&cluster);
            }
        });
        board
    }

    /// Re-renders every row; those that changed take a new version.
    pub fn rebuild(&self, cluster: &Cluster) {
        let nodes = cluster.nodes(&[]).unwrap_or_default();
        let lb = views::balancer_views(&cluster.balancing());
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let next = inner.version + 1;
        let mut changed = false;
        for n in &nodes {
            let history = inner.history.entry(n.node.id.clone()).or_default();
            if let Some(u) = &n.usage
                && history.back().is_none_or(|s| s.at_ms != u.sampled_at_ms)
            {
                if history.len() == HISTORY {
                    history.pop_front();
                }
                history.push_back(Sample {
                    at_ms: u.sampled_at_ms,
                    cpu: u.cpu_percent as f32,
                    mem: percent(u.mem_used_bytes, u.mem_total_bytes),
                });
            }
            let html: Arc<str> = views::node_row(n, &lb, history).into_string().into();
            let name = n.node.name.to_string();
            if inner.rows.get(&name).is_some_and(|r| r.html == html) {
                continue;
            }
            changed = true;
            inner.rows.insert(
                name,
                Row {
                    version: next,
                    id: n.node.id.clone(),
                    html,
                    state: n.state,
                    roles: n.node.roles.clone(),
                },
            );
        }
        if inner.rows.len() != nodes.len() {
            let present: std::collections::HashSet<&str> =
                nodes.iter().map(|n| n.node.name.as_str()).collect();
            let gone: Vec<String> = inner
                .rows
                .keys()
                .filter(|k| !present.contains(k.as_str()))
                .cloned()
                .collect();
            for name in gone {
                if let Some(row) = inner.rows.remove(&name) {
                    inner.history.remove(&row.id);
                }
                if inner.gone.len() == 1000 {
                    inner.gone.pop_front();
                }
                inner.gone.push_back((next, name));
                changed = true;
            }
        }
        if changed {
            inner.version = next;
            drop(inner);
            self.version.send_replace(next);
        }
    }

    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Rows changed after `seen` (`None` html: the node is gone), among
    /// `names` when given; and the version they bring the viewer to.
    pub fn since(&self, seen: u64, names: Option<&[String]>) -> (u64, Vec<RowUpdate>) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let wanted = |name: &str| names.is_none_or(|n| n.iter().any(|x| x == name));
        let mut out: Vec<RowUpdate> = inner
            .rows
            .iter()
            .filter(|(name, r)| r.version > seen && wanted(name))
            .map(|(name, r)| (name.clone(), Some(r.html.clone())))
            .collect();
        out.extend(
            inner
                .gone
                .iter()
                .filter(|(v, _)| *v > seen)
                .map(|(_, name)| (name.clone(), None)),
        );
        (inner.version, out)
    }

    /// The rows of `names` (every node when `None`), sorted by name.
    pub fn rows(&self, names: Option<&[String]>) -> (u64, Vec<Row>) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let rows = match names {
            None => inner.rows.values().cloned().collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| inner.rows.get(n).cloned())
                .collect(),
        };
        (inner.version, rows)
    }

    /// Every row's name, state and roles: what a bulk action's preview
    /// counts.
    pub fn census(&self) -> Vec<(String, cluster_model::NodeState, Vec<String>)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .rows
            .iter()
            .map(|(name, r)| (name.clone(), r.state, r.roles.clone()))
            .collect()
    }

    pub fn history(&self, id: &NodeId) -> Vec<Sample> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .history
            .get(id)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }
}

pub fn percent(used: u64, total: u64) -> f32 {
    if total == 0 {
        0.0
    } else {
        (used as f64 * 100.0 / total as f64) as f32
    }
}
