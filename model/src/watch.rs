//! What a watch on nodes reports (`clusterctl nodes --watch`): the part
//! of a node's status whose change is news — its name, state, offline
//! flag, health, connection, roles, failing checks, cache trouble, firing
//! alerts (which rules, not their values) — and
//! not its usage, which moves at every report. The master sends a node
//! when this part moves; clusterctl compares the same part again after a
//! reconnection, so a resumed watch prints each change once.

use crate::node::{HealthStatus, NodeState, NodeStatus, OfflineFlag};
use std::collections::BTreeMap;

/// The watched part of one node's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub name: String,
    pub state: NodeState,
    pub offline: Option<OfflineFlag>,
    pub health: HealthStatus,
    pub connected: bool,
    pub roles: Vec<String>,
    /// The names of the checks that fail.
    pub failing: Vec<String>,
    pub cache_error: Option<String>,
    /// The firing alerts: `metric device severity`.
    pub alerts: Vec<String>,
}

impl Watched {
    pub fn of(s: &NodeStatus) -> Watched {
        Watched {
            name: s.node.name.to_string(),
            state: s.state,
            offline: s.node.offline.clone(),
            health: s.applied.health,
            connected: s.connected,
            roles: s.node.roles.clone(),
            failing: s
                .checks
                .iter()
                .filter(|c| !c.passing)
                .map(|c| c.name.clone())
                .collect(),
            cache_error: s.applied.cache_error.clone(),
            alerts: s
                .alerts
                .iter()
                .map(|a| format!("{} {} {}", a.metric, a.device, a.severity))
                .collect(),
        }
    }
}

/// The watched part of every node last reported, by id.
pub type Seen = BTreeMap<String, Watched>;

/// What moved from `seen` to `now`: the indexes in `now` of nodes that are
/// new or whose watched part changed, and the ids of nodes that are gone.
/// `seen` becomes `now`'s.
pub fn diff(seen: &mut Seen, now: &[NodeStatus]) -> (Vec<usize>, Vec<String>) {
    let mut changed = Vec::new();
    let mut next = Seen::new();
    for (i, s) in now.iter().enumerate() {
        let w = Watched::of(s);
        if seen.get(s.node.id.as_str()) != Some(&w) {
            changed.push(i);
        }
        next.insert(s.node.id.to_string(), w);
    }
    let gone = seen
        .keys()
        .filter(|id| !next.contains_key(*id))
        .cloned()
        .collect();
    *seen = next;
    (changed, gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Applied, Node};
    use crate::usage::Usage;

    fn status(id: &str, state: NodeState, cpu: f64) -> NodeStatus {
        NodeStatus {
            node: Node {
                id: id.try_into().unwrap(),
                name: id.try_into().unwrap(),
                roles: vec!["web".into()],
                addresses: vec![],
                health_url: String::new(),
                grains: Default::default(),
                offline: None,
                registered_ms: 1,
                last_seen_ms: 2,
                labels: Default::default(),
                service: String::new(),
                naming: Default::default(),
                aliases: vec![],
                facts: Default::default(),
                fact_problems: vec![],
            },
            state,
            connected: true,
            last_seen_ms: 2,
            usage: Some(Usage {
                cpu_percent: cpu,
                ..Usage::default()
            }),
            applied: Applied::default(),
            alerts: vec![],
            levels: None,
            checks: vec![],
            spec_generation: 1,
        }
    }

    #[test]
    fn usage_is_not_news_a_state_is_and_so_is_a_node_gone() {
        let mut seen = Seen::new();
        let first = [
            status("web-1", NodeState::Online, 1.0),
            status("web-2", NodeState::Online, 1.0),
        ];
        assert_eq!(diff(&mut seen, &first), (vec![0, 1], vec![]));
        let busier = [
            status("web-1", NodeState::Online, 99.0),
            status("web-2", NodeState::Online, 50.0),
        ];
        assert_eq!(diff(&mut seen, &busier), (vec![], vec![]));
        let drained = [
            status("web-1", NodeState::Online, 99.0),
            status("web-2", NodeState::Drained, 50.0),
        ];
        assert_eq!(diff(&mut seen, &drained), (vec![1], vec![]));
        let one = [status("web-2", NodeState::Drained, 50.0)];
        assert_eq!(diff(&mut seen, &one), (vec![], vec!["web-1".to_owned()]));
    }
}
