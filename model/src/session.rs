//! What travels on an agent's session: its hello, the master's snapshot
//! and deltas of what it wants of the node, and the agent's
//! acknowledgements.

use crate::ids::NodeId;
use crate::naming::Naming;
use crate::node::{FactProblem, Grains, HealthStatus, HostEntry, NodeSpec};
use crate::proxy::ProxyView;

/// What an agent says about itself when its session opens.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub node_id: NodeId,
    pub grains: Grains,
    pub roles: Vec<String>,
    pub addresses: Vec<String>,
    pub health_url: String,
    /// Empty: named by its id.
    pub service: String,
    pub naming: Naming,
    pub aliases: Vec<String>,
    /// The generation of the desired state it has cached (0: none).
    pub cached_generation: u64,
    pub agent_version: String,
    pub report_interval_ms: u32,
    /// Whether the agent keeps a hosts file (else it is sent no lines).
    pub wants_hosts: bool,
    /// Whether the agent runs the proxy (and is sent routes and upstreams).
    pub wants_proxy: bool,
    /// Whether the agent takes hosts lines in parts (see `HostsChunk`).
    pub takes_hosts_in_parts: bool,
    /// Facter-shaped structured facts (external facts among them).
    pub facts: Grains,
    /// The external fact sources that failed.
    pub fact_problems: Vec<FactProblem>,
}

/// Everything the agent must hold, replacing what it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub generation: u64,
    /// The leadership it was served under (0 with one master): an agent
    /// that has seen a newer one ignores it.
    pub epoch: u64,
    pub node: NodeSpec,
    /// Every node's hosts line (none for agents that keep no hosts file).
    pub hosts: Vec<HostEntry>,
    /// For agents that run the proxy.
    pub proxy: Option<ProxyView>,
}

/// What changed since `prev_generation`; applies only on top of exactly
/// that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub generation: u64,
    pub prev_generation: u64,
    /// As in [`Snapshot`].
    pub epoch: u64,
    /// Present when the node's own spec changed.
    pub node: Option<NodeSpec>,
    pub hosts_upsert: Vec<HostEntry>,
    pub hosts_removed: Vec<NodeId>,
    /// Present when the proxy's configuration changed (whole).
    pub proxy: Option<ProxyView>,
}

/// The agent has applied the desired state up to `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub generation: u64,
    /// What its health endpoint answers now.
    pub health: HealthStatus,
    /// Set when it could not make that state durable.
    pub cache_error: Option<String>,
}
