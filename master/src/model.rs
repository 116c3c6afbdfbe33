//! The master's own types: what it stores and reasons about.
//!
//! These are plain data with serde derives for persistence; the wire types in
//! `cluster_proto` are converted to and from them in `grpc::convert` and
//! nowhere else.

use serde::{Deserialize, Serialize};

/// Grains: a JSON object of facts, nested values allowed (`os`, `ipv4`, …).
pub type Grains = serde_json::Map<String, serde_json::Value>;

/// One node of the cluster, as the master knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Stable identity from enrollment; never changes.
    pub id: String,
    /// Assigned name, what operators type. Unique across the cluster.
    pub name: String,
    pub roles: Vec<String>,
    pub addresses: Vec<String>,
    /// Where load balancers probe this node.
    pub health_url: String,
    pub grains: Grains,
    /// Present while the node is taken out of service.
    pub offline: Option<OfflineFlag>,
    /// Generation at which this node's desired state (name, offline) last
    /// changed: an agent that acknowledged at least this has applied it.
    pub spec_generation: u64,
    pub registered_ms: u64,
    /// Last time the agent said anything (hello, usage, ack). Kept in memory
    /// between writes; persisted with the next write of this node.
    pub last_seen_ms: u64,
    /// Volatile: refreshed by every report, never persisted.
    #[serde(skip)]
    pub usage: Option<Usage>,
    /// Volatile: what the agent last acknowledged on its current session.
    #[serde(skip)]
    pub applied: Applied,
    /// Volatile: whether a session is open now.
    #[serde(skip)]
    pub connected: bool,
    /// Master-side labels (`clusterctl label`), what `-I` targets.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The service the node was named from (empty: named by its id).
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub naming: crate::naming::Naming,
    /// Extra names in every hosts file.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Volatile: the agent's local health checks.
    #[serde(skip)]
    pub checks: Vec<CheckResult>,
}

/// A node's line in every hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub node_id: String,
    pub address: String,
    pub names: Vec<String>,
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

/// A local health check's state, as the agent last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub kind: String,
    pub passing: bool,
    pub output: String,
    pub since_ms: u64,
}

/// What a load balancer on a node reported about the nodes behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbReport {
    /// The proxy configuration version applied (0: no proxy).
    pub proxy_version: u64,
    pub backends: Vec<LbBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbBackend {
    /// "proxy" or "haproxy".
    pub source: String,
    pub name: String,
    pub addr: String,
    pub in_rotation: bool,
    pub inflight: u64,
    pub status: String,
}

/// The last acknowledgement from the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub generation: u64,
    /// What the agent's health endpoint answered then: "online" / "offline".
    pub health_status: String,
}

/// The state operators see, derived from the flag and liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Online,
    Drained,
    Down,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Drained => "drained",
            NodeState::Down => "down",
        }
    }
}

impl Node {
    /// A node is down when it has not been heard from within `down_after_ms`;
    /// otherwise drained when flagged offline; otherwise online.
    pub fn state(&self, now_ms: u64, down_after_ms: u64) -> NodeState {
        if now_ms.saturating_sub(self.last_seen_ms) > down_after_ms {
            NodeState::Down
        } else if self.offline.is_some() {
            NodeState::Drained
        } else {
            NodeState::Online
        }
    }
}

/// Resource usage, as last reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub sampled_at_ms: u64,
    pub cpu_percent: f64,
    pub load: [f64; 3],
    pub mem_total_bytes: u64,
    pub mem_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub disks: Vec<DiskUsage>,
    pub net_rx_bytes_per_sec: u64,
    pub net_tx_bytes_per_sec: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskUsage {
    pub mount: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub time_ms: u64,
    pub kind: EventKind,
    /// Node name at the time of the event (empty for cluster-wide events).
    pub node: String,
    pub by: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Registered,
    Drain,
    Undrain,
    Down,
    Up,
    /// A request refused for who made it (no or bad certificate, a bad
    /// token, a role without the permission).
    Denied,
    /// A node's key: pending, accepted, rejected, deleted (revoked).
    Key,
    Token,
    User,
    Label,
    Group,
    Job,
    /// A node's name changed (assigned, renamed, promoted) or it was removed.
    Name,
    /// An upstream or a route was set or removed.
    Balancing,
    /// A node's local health check changed state.
    Check,
    /// A rolling deploy started, was resumed, ended.
    Rollout,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Registered => "registered",
            EventKind::Drain => "drain",
            EventKind::Undrain => "undrain",
            EventKind::Down => "down",
            EventKind::Up => "up",
            EventKind::Denied => "denied",
            EventKind::Key => "key",
            EventKind::Token => "token",
            EventKind::User => "user",
            EventKind::Label => "label",
            EventKind::Group => "group",
            EventKind::Job => "job",
            EventKind::Name => "name",
            EventKind::Balancing => "balancing",
            EventKind::Check => "check",
            EventKind::Rollout => "rollout",
        }
    }
}

/// What the master wants of one node, as sent to its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub offline: Option<OfflineFlag>,
}

impl Node {
    pub fn spec(&self) -> NodeSpec {
        NodeSpec {
            name: self.name.clone(),
            offline: self.offline.clone(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A join token. Only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The public half (`<id>.<secret>`), shown in events.
    pub id: String,
    /// sha256 of the secret half.
    pub secret_hash: String,
    pub expires_ms: u64,
    /// `None`: any number of uses until it expires.
    pub uses_left: Option<u32>,
    /// Roles given to nodes that join with it.
    pub roles: Vec<String>,
    pub created_by: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Accepted,
    Pending,
    Rejected,
}

/// A node's key, Salt-style: what it asked for and what was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub node_id: String,
    pub state: KeyState,
    /// sha256 of the node's public key.
    pub fingerprint: String,
    /// Kept while pending, so accepting can sign it.
    pub csr_pem: String,
    /// Set once accepted.
    pub cert_pem: String,
    pub serial: String,
    pub requested_ms: u64,
    pub decided_by: String,
    /// Roles from the token it joined with.
    pub roles: Vec<String>,
}

/// How a job ended on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Exit code 0.
    Ok,
    /// Ran and exited non-zero.
    Failed,
    TimedOut,
    Cancelled,
    /// Matched, but without a session: never sent.
    NotConnected,
    /// Could not run (not found, remote execution disabled on the node).
    Error,
    /// The session ended before the node answered.
    Lost,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed out",
            JobStatus::Cancelled => "cancelled",
            JobStatus::NotConnected => "not connected",
            JobStatus::Error => "error",
            JobStatus::Lost => "lost",
        }
    }
}

/// One node's part of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobNodeResult {
    pub node: String,
    pub status: JobStatus,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub error: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output beyond the stored limit was cut.
    pub truncated: bool,
}

/// A remote execution, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Time-ordered (Salt's jid shape): `YYYYMMDDhhmmssffffff`.
    pub id: String,
    pub argv: Vec<String>,
    /// The target as typed, for people.
    pub target: String,
    pub by: String,
    pub started_ms: u64,
    /// 0 while running.
    pub finished_ms: u64,
    pub results: Vec<JobNodeResult>,
}
