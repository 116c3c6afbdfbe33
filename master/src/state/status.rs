//! Nodes as reads show them: the record with what its session says now,
//! and the state operators see, derived in one place
//! ([`NodeState::of`]); balancing as `upstream list` shows it.

use super::State;
use cluster_balancer::{Domain, UpstreamSource};
use cluster_model::{LbReport, NodeId, NodeState, NodeStatus, ProxyView};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything `clusterctl upstream list` / `route list` show.
#[derive(Debug, Clone)]
pub struct BalancingState {
    pub upstreams: BTreeMap<String, UpstreamSource>,
    pub routes: BTreeMap<String, Domain>,
    pub view: Arc<ProxyView>,
    /// Reports by balancer node name.
    pub reports: BTreeMap<String, LbReport>,
}

impl State {
    /// The node with its live state, as of `now_ms`.
    pub fn status(&self, id: &NodeId, now_ms: u64) -> Option<NodeStatus> {
        let stored = self.nodes.get(id)?;
        let node = &stored.value;
        let live = self.live.get(id);
        let last_seen_ms = node.last_seen_ms.max(live.map_or(0, |l| l.last_seen_ms));
        let checks = live.map(|l| l.checks.clone()).unwrap_or_default();
        let failing = checks.iter().any(|c| !c.passing);
        Some(NodeStatus {
            state: NodeState::of(
                node.offline.as_ref(),
                failing,
                last_seen_ms,
                now_ms,
                self.config.down_after_ms,
            ),
            connected: live.is_some_and(|l| l.session.is_some()),
            last_seen_ms,
            usage: live.and_then(|l| l.usage.clone()),
            applied: live.map(|l| l.applied.clone()).unwrap_or_default(),
            checks,
            spec_generation: stored.revision,
            alerts: self.alerts_of(id).map(|a| a.notice.clone()).collect(),
            levels: None,
            node: node.clone(),
        })
    }

    /// The nodes `ids` (every node for `None`), sorted by name.
    pub fn statuses(&self, ids: Option<&[NodeId]>, now_ms: u64) -> Vec<NodeStatus> {
        let mut out: Vec<NodeStatus> = match ids {
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.status(id, now_ms))
                .collect(),
            None => self
                .nodes
                .keys()
                .filter_map(|id| self.status(id, now_ms))
                .collect(),
        };
        out.sort_by(|a, b| a.node.name.cmp(&b.node.name));
        out
    }

    pub fn balancing(&self) -> BalancingState {
        BalancingState {
            upstreams: self
                .upstreams
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            view: self.proxy.clone(),
            reports: self
                .live
                .iter()
                .filter_map(|(id, l)| {
                    let r = l.lb.clone()?;
                    let name = self
                        .nodes
                        .get(id)
                        .map_or_else(|| id.to_string(), |n| n.value.name.to_string());
                    Some((name, r))
                })
                .collect(),
        }
    }
}
