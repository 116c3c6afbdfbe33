//! A node: its stored record ([`Node`]), what the master wants of it
//! ([`NodeSpec`]), what its agent last said ([`Applied`], [`CheckResult`],
//! [`Usage`](crate::Usage)), and the state operators see ([`NodeState`]),
//! derived from all of it by [`NodeState::of`].

use crate::ids::{NodeId, NodeName};
use crate::naming::Naming;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Grains: a JSON object of facts, nested values allowed (`os`, `ipv4`, …).
pub type Grains = serde_json::Map<String, serde_json::Value>;

/// A source of external facts that gave none, or not all: the file's name
/// in the agent's facts directory and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactProblem {
    pub source: String,
    pub problem: String,
}

impl std::fmt::Display for FactProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.problem)
    }
}

/// What an agent knows of its machine: Salt-shaped grains, Facter-shaped
/// structured facts (the external ones among them), and the fact sources
/// that failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub grains: Grains,
    pub facts: Grains,
    pub problems: Vec<FactProblem>,
}

/// One node of the cluster as the master stores it. What only the agent's
/// live session knows (connected, usage, checks, acknowledgements) is not
/// here: see [`NodeStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Stable identity from enrollment; never changes.
    pub id: NodeId,
    /// Assigned name, what operators type. Unique across the cluster.
    pub name: NodeName,
    pub roles: Vec<String>,
    pub addresses: Vec<String>,
    /// Where load balancers probe this node.
    pub health_url: String,
    pub grains: Grains,
    /// Present while the node is taken out of service.
    pub offline: Option<OfflineFlag>,
    pub registered_ms: u64,
    /// When the agent was last heard from, as of this record's last write
    /// (the live figure is newer; it is written with the node's next change).
    pub last_seen_ms: u64,
    /// Master-side labels (`clusterctl label`), what `-I` targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The service the node was named from (empty: named by its id).
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub naming: Naming,
    /// Extra names in every hosts file.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Facter-shaped structured facts (`os.release.full`), external facts
    /// among them: what `F@` targets and `clusterctl facts` shows.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub facts: Grains,
    /// The external fact sources that failed at the agent's last
    /// collection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fact_problems: Vec<FactProblem>,
}

impl Node {
    pub fn spec(&self) -> NodeSpec {
        NodeSpec {
            name: self.name.clone(),
            offline: self.offline.clone(),
        }
    }
}

/// What the master wants of one node, as sent to its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: NodeName,
    pub offline: Option<OfflineFlag>,
}

/// Why and since when a node is out of service (bethel's offline flag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineFlag {
    pub reason: String,
    pub since_ms: u64,
    pub by: String,
    /// Maintenance (HAProxy MAINT: no traffic at all) rather than a drain.
    #[serde(default)]
    pub maintenance: bool,
}

/// A node's line in every hosts file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub node_id: NodeId,
    pub address: String,
    /// Canonical name first (name.base_domain when one is set), then the
    /// name, then aliases.
    pub names: Vec<String>,
}

/// What a node's health endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// 200: in service.
    #[default]
    Online,
    /// 503: drained.
    Offline,
    /// 503: in maintenance (HAProxy MAINT).
    Maintenance,
    /// 503: a local check fails.
    Failing,
}

impl HealthStatus {
    /// A drain or maintenance wins over a failing check.
    pub fn of(offline: Option<&OfflineFlag>, check_failing: bool) -> HealthStatus {
        match offline {
            Some(o) if o.maintenance => HealthStatus::Maintenance,
            Some(_) => HealthStatus::Offline,
            None if check_failing => HealthStatus::Failing,
            None => HealthStatus::Online,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Online => "online",
            HealthStatus::Offline => "offline",
            HealthStatus::Maintenance => "maintenance",
            HealthStatus::Failing => "failing",
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A local health check's state, as the agent last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    /// "http", "tcp" or "command".
    pub kind: String,
    pub passing: bool,
    pub output: String,
    pub since_ms: u64,
}

/// What the agent last acknowledged on its current session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The generation it has applied (its health answers accordingly).
    pub generation: u64,
    /// What its health endpoint answered then.
    pub health: HealthStatus,
    /// Set when the agent applied the state but could not make it durable
    /// (its on-disk cache): a restart without the master would lose it.
    pub cache_error: Option<String>,
}

/// The state operators see, derived from the flag, the checks and liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Online,
    /// Drained: no new traffic.
    Drained,
    /// In maintenance: no traffic at all.
    Maintenance,
    /// In service but a local check fails: balancers leave it out.
    Failing,
    /// Not heard from for `down_after`.
    Down,
}

impl NodeState {
    pub const ALL: [NodeState; 5] = [
        NodeState::Online,
        NodeState::Drained,
        NodeState::Maintenance,
        NodeState::Failing,
        NodeState::Down,
    ];

    /// Down when not heard from within `down_after_ms`; otherwise the
    /// offline flag (maintenance, drained); otherwise failing when a check
    /// fails; otherwise online.
    pub fn of(
        offline: Option<&OfflineFlag>,
        check_failing: bool,
        last_seen_ms: u64,
        now_ms: u64,
        down_after_ms: u64,
    ) -> NodeState {
        if now_ms.saturating_sub(last_seen_ms) > down_after_ms {
            return NodeState::Down;
        }
        match HealthStatus::of(offline, check_failing) {
            HealthStatus::Maintenance => NodeState::Maintenance,
            HealthStatus::Offline => NodeState::Drained,
            HealthStatus::Failing => NodeState::Failing,
            HealthStatus::Online => NodeState::Online,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Drained => "drained",
            NodeState::Maintenance => "maintenance",
            NodeState::Failing => "failing",
            NodeState::Down => "down",
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node as reads show it: the record, with what its session says now.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub node: Node,
    pub state: NodeState,
    pub connected: bool,
    /// The newest of the stored and the live figure.
    pub last_seen_ms: u64,
    pub usage: Option<Usage>,
    pub applied: Applied,
    pub checks: Vec<CheckResult>,
    /// The generation at which the node's record last changed: an agent
    /// that acknowledged at least this has applied its desired state.
    pub spec_generation: u64,
    /// Its firing alerts.
    pub alerts: Vec<crate::alerts::Notice>,
    /// The levels its usage is judged by, when the reader was told them
    /// (the master's monitor knows them; the state does not).
    pub levels: Option<crate::alerts::Levels>,
}

impl NodeStatus {
    pub fn failing_check(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| !c.passing)
    }
}

/// Which balancer a rotation report is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbSource {
    /// The agent's own reverse proxy.
    Proxy,
    /// HAProxy, read through its stats socket.
    Haproxy,
}

impl LbSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LbSource::Proxy => "proxy",
            LbSource::Haproxy => "haproxy",
        }
    }
}

/// What the load balancers on a node report about the servers behind them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbReport {
    /// The proxy configuration version applied (0: no proxy).
    pub proxy_version: u64,
    pub backends: Vec<LbBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbBackend {
    pub source: LbSource,
    /// HAProxy's `backend/server`, or the proxy's upstream.
    pub name: String,
    /// `ip:port` the balancer sends to.
    pub addr: String,
    /// Whether the balancer still sends new requests there.
    pub in_rotation: bool,
    /// Requests (proxy) or sessions (HAProxy) open to it now.
    pub inflight: u64,
    /// HAProxy's status word (UP, DRAIN, MAINT, DOWN…); empty for the proxy.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(maintenance: bool) -> OfflineFlag {
        OfflineFlag {
            reason: "r".into(),
            since_ms: 0,
            by: "t".into(),
            maintenance,
        }
    }

    #[test]
    fn the_state_operators_see() {
        let (drain, maint) = (flag(false), flag(true));
        // (offline, a check failing, last seen, now) → state; down_after 10.
        let cases = [
            (None, false, 100, 105, NodeState::Online),
            (None, true, 100, 105, NodeState::Failing),
            (Some(&drain), false, 100, 105, NodeState::Drained),
            (Some(&drain), true, 100, 105, NodeState::Drained),
            (Some(&maint), false, 100, 105, NodeState::Maintenance),
            (Some(&maint), true, 100, 200, NodeState::Down),
            (None, false, 100, 111, NodeState::Down),
            (None, false, 100, 110, NodeState::Online),
        ];
        for (offline, failing, seen, now, want) in cases {
            assert_eq!(
                NodeState::of(offline, failing, seen, now, 10),
                want,
                "{offline:?} {failing} {seen} {now}"
            );
        }
    }
}
