//! The CLI's own view of what the master answers: plain types that
//! `-o json` prints as they are, converted from the wire types here.

use cluster_proto as pb;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub token: String,
    pub ca_fingerprint: String,
    pub expires: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub node_id: String,
    /// accepted, pending or rejected
    pub state: &'static str,
    pub fingerprint: String,
    pub requested: String,
    pub decided_by: String,
    pub serial: String,
}

impl From<pb::KeyInfo> for KeyView {
    fn from(k: pb::KeyInfo) -> Self {
        KeyView {
            state: match pb::KeyState::try_from(k.state) {
                Ok(pb::KeyState::Accepted) => "accepted",
                Ok(pb::KeyState::Pending) => "pending",
                Ok(pb::KeyState::Rejected) => "rejected",
                _ => "unknown",
            },
            node_id: k.node_id,
            fingerprint: k.fingerprint,
            requested: rfc3339(k.requested_ms),
            decided_by: k.decided_by,
            serial: k.serial,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JobResultView {
    pub node: String,
    pub status: String,
    pub exit_code: i32,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub argv: Vec<String>,
    pub target: String,
    pub by: String,
    pub started: String,
    pub finished: String,
    pub results: Vec<JobResultView>,
}

pub(super) fn result_view(r: pb::JobNodeResult) -> JobResultView {
    JobResultView {
        node: r.node,
        status: r.status,
        exit_code: r.exit_code,
        duration_ms: r.duration_ms,
        error: r.error,
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        truncated: r.truncated,
    }
}

pub(super) fn job_view(j: pb::JobInfo) -> JobView {
    JobView {
        id: j.id,
        argv: j.argv,
        target: j.target,
        by: j.by,
        started: rfc3339(j.started_ms),
        finished: if j.finished_ms == 0 {
            String::new()
        } else {
            rfc3339(j.finished_ms)
        },
        results: j.results.into_iter().map(result_view).collect(),
    }
}

pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A node as clusterctl shows it (`-o json` prints exactly this).
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    pub id: String,
    /// online, drained or down.
    pub state: &'static str,
    pub roles: Vec<String>,
    pub addresses: Vec<String>,
    pub health_url: String,
    pub connected: bool,
    pub last_seen: String,
    pub last_seen_ms: u64,
    pub offline: Option<OfflineView>,
    pub usage: Option<UsageView>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub grains: serde_json::Value,
    /// What the agent's health endpoint answered at its last
    /// acknowledgement: online, offline, maintenance, failing.
    pub health: String,
    /// The agent's local health checks.
    pub checks: Vec<CheckView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub name: String,
    pub kind: String,
    pub passing: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    pub since: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OfflineView {
    pub reason: String,
    pub since: String,
    pub by: String,
    pub maintenance: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageView {
    pub cpu_percent: f64,
    pub load: [f64; 3],
    pub mem_total_bytes: u64,
    pub mem_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub disks: Vec<DiskView>,
    pub net_rx_bytes_per_sec: u64,
    pub net_tx_bytes_per_sec: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskView {
    pub mount: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl From<pb::NodeInfo> for NodeView {
    fn from(n: pb::NodeInfo) -> Self {
        NodeView {
            state: match pb::NodeState::try_from(n.state) {
                Ok(pb::NodeState::Online) => "online",
                Ok(pb::NodeState::Drained) => "drained",
                Ok(pb::NodeState::Down) => "down",
                _ => "unknown",
            },
            name: n.name,
            id: n.id,
            roles: n.roles,
            addresses: n.addresses,
            health_url: n.health_url,
            connected: n.connected,
            last_seen: rfc3339(n.last_seen_ms),
            last_seen_ms: n.last_seen_ms,
            offline: n.offline.map(|o| OfflineView {
                reason: o.reason,
                since: rfc3339(o.since_ms),
                by: o.by,
                maintenance: o.maintenance,
            }),
            health: n.health_status,
            checks: n
                .checks
                .into_iter()
                .map(|c| CheckView {
                    name: c.name,
                    kind: c.kind,
                    passing: c.passing,
                    output: c.output,
                    since: rfc3339(c.since_ms),
                })
                .collect(),
            usage: n.usage.map(|u| UsageView {
                cpu_percent: u.cpu_percent,
                load: [u.load1, u.load5, u.load15],
                mem_total_bytes: u.mem_total_bytes,
                mem_used_bytes: u.mem_used_bytes,
                swap_total_bytes: u.swap_total_bytes,
                swap_used_bytes: u.swap_used_bytes,
                disks: u
                    .disks
                    .into_iter()
                    .map(|d| DiskView {
                        mount: d.mount,
                        total_bytes: d.total_bytes,
                        available_bytes: d.available_bytes,
                    })
                    .collect(),
                net_rx_bytes_per_sec: u.net_rx_bytes_per_sec,
                net_tx_bytes_per_sec: u.net_tx_bytes_per_sec,
            }),
            labels: n.labels.into_iter().collect(),
            grains: serde_json::from_str(&n.grains_json).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    pub name: String,
    pub status: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub time: String,
    pub kind: String,
    pub node: String,
    pub by: String,
    pub detail: String,
}
