//! The CLI's own view of what the master answers: plain types that
//! `-o json` prints as they are (their shape is the JSON's contract), made
//! from the project's types, which `cluster_model::wire` reads off the wire.

use cluster_model::rotation::{ApplyStatus, NodeResult as Applied};
use cluster_model::{Event, JobNodeResult, JobRecord, KeyRecord, NodeStatus};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub token: String,
    pub ca_fingerprint: String,
    /// RFC 3339, or `never`.
    pub expires: String,
    /// An API token's holder and role (absent for a join token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// When a token expires: RFC 3339, or `never`.
pub fn token_expiry(expires_ms: u64) -> String {
    if expires_ms == cluster_model::Token::NEVER {
        "never".into()
    } else {
        rfc3339(expires_ms)
    }
}

/// A certificate as `ca status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateView {
    pub kind: String,
    pub name: String,
    pub serial: String,
    pub expires: String,
    pub expires_ms: u64,
    /// Nodes: when their agent renews it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renews_from: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
}

impl From<cluster_proto::CertificateInfo> for CertificateView {
    fn from(c: cluster_proto::CertificateInfo) -> CertificateView {
        CertificateView {
            kind: c.kind,
            name: c.name,
            serial: c.serial,
            expires: rfc3339(c.not_after_ms),
            expires_ms: c.not_after_ms,
            renews_from: (c.renews_from_ms > 0).then(|| rfc3339(c.renews_from_ms)),
            fingerprint: c.fingerprint,
        }
    }
}

/// A person's certificate as `user list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub name: String,
    pub role: &'static str,
    pub serial: String,
    pub issued: String,
    pub issued_by: String,
    /// `null` while valid.
    pub revoked: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub revoked_by: String,
}

impl From<cluster_model::UserRecord> for UserView {
    fn from(u: cluster_model::UserRecord) -> UserView {
        UserView {
            name: u.name,
            role: u.role.as_str(),
            serial: u.serial,
            issued: rfc3339(u.issued_ms),
            issued_by: u.issued_by,
            revoked: u.revoked_ms.map(rfc3339),
            revoked_by: u.revoked_by,
        }
    }
}

/// A token as `token list` shows it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfoView {
    pub id: String,
    /// `join` (enrolls nodes) or `api` (opens the HTTP API)
    pub kind: &'static str,
    /// An API token's holder and role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// valid, expired or used up
    pub state: &'static str,
    /// `null`: any number until it expires.
    pub uses_left: Option<u32>,
    pub roles: Vec<String>,
    pub expires: String,
    pub created_by: String,
    pub created: String,
}

impl TokenInfoView {
    pub fn of(t: cluster_model::Token, now_ms: u64) -> TokenInfoView {
        TokenInfoView {
            state: if now_ms >= t.expires_ms {
                "expired"
            } else if t.uses_left == Some(0) {
                "used up"
            } else {
                "valid"
            },
            id: t.id,
            kind: if t.api.is_some() { "api" } else { "join" },
            holder: t.api.as_ref().map(|a| a.name.clone()),
            role: t.api.as_ref().map(|a| a.role.as_str()),
            uses_left: t.uses_left,
            roles: t.roles,
            expires: token_expiry(t.expires_ms),
            created_by: t.created_by,
            created: rfc3339(t.created_ms),
        }
    }
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
    /// The address the request came from.
    pub source: String,
}

impl From<KeyRecord> for KeyView {
    fn from(k: KeyRecord) -> Self {
        KeyView {
            state: k.state.as_str(),
            node_id: k.node_id.into_string(),
            fingerprint: k.fingerprint,
            requested: rfc3339(k.requested_ms),
            decided_by: k.decided_by,
            serial: k.serial,
            source: k.source,
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
    /// Empty for a built-in job.
    pub argv: Vec<String>,
    /// A built-in job's name (`refresh_facts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<cluster_model::job::Builtin>,
    pub target: String,
    pub by: String,
    pub started: String,
    pub finished: String,
    pub results: Vec<JobResultView>,
}

pub(super) fn result_view(r: JobNodeResult) -> JobResultView {
    JobResultView {
        node: r.node,
        status: r.status.as_str().to_owned(),
        exit_code: r.exit_code,
        duration_ms: r.duration_ms,
        error: r.error,
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        truncated: r.truncated,
    }
}

pub(super) fn job_view(j: JobRecord) -> JobView {
    JobView {
        id: j.id,
        argv: j.argv,
        builtin: j.builtin,
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

impl JobView {
    /// What ran, for people.
    pub fn command(&self) -> String {
        match self.builtin {
            Some(b) => b.command().to_owned(),
            None => self.argv.join(" "),
        }
    }
}

pub use cluster_model::time::rfc3339;

/// A node as clusterctl shows it (`-o json` prints exactly this).
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    pub id: String,
    /// online, drained, maintenance, failing or down.
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
    /// Set while the agent cannot make its desired state durable (a
    /// restart without the master would lose it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_error: Option<String>,
    /// The agent's local health checks.
    pub checks: Vec<CheckView>,
    /// Its firing alerts.
    pub alerts: Vec<AlertView>,
    /// The levels its usage is judged by, as the master sent them (for
    /// `top`'s colours; `None` from a master that sends none).
    #[serde(skip)]
    pub levels: Option<cluster_model::alerts::Levels>,
    /// Facter-shaped structured facts (`clusterctl facts` shows them; not
    /// in `nodes -o json`, which has the grains).
    #[serde(skip)]
    pub facts: serde_json::Value,
    /// The last usage report as the master sent it, for the live figures
    /// `clusterctl facts` lays into the facts.
    #[serde(skip)]
    pub raw_usage: Option<cluster_model::Usage>,
    /// The external fact sources that failed: `source: why`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fact_problems: Vec<String>,
}

/// A firing alert, as clusterctl shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub node: String,
    /// As Alertmanager names it: `NodeCpuCritical`.
    pub alertname: String,
    pub metric: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub device: String,
    pub severity: String,
    pub value: f64,
    pub threshold: f64,
    pub since: String,
    pub since_ms: u64,
    pub summary: String,
}

impl From<&cluster_model::alerts::Notice> for AlertView {
    fn from(a: &cluster_model::alerts::Notice) -> AlertView {
        AlertView {
            node: a.node.clone(),
            alertname: a.alertname(),
            metric: a.metric.as_str().to_owned(),
            device: a.device.clone(),
            severity: a.severity.as_str().to_owned(),
            value: a.value,
            threshold: a.threshold,
            since: rfc3339(a.starts_at_ms),
            since_ms: a.starts_at_ms,
            summary: a.summary(),
        }
    }
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

impl From<NodeStatus> for NodeView {
    fn from(s: NodeStatus) -> Self {
        let n = s.node;
        NodeView {
            state: s.state.as_str(),
            name: n.name.into_string(),
            id: n.id.into_string(),
            roles: n.roles,
            addresses: n.addresses,
            health_url: n.health_url,
            connected: s.connected,
            last_seen: rfc3339(s.last_seen_ms),
            last_seen_ms: s.last_seen_ms,
            offline: n.offline.map(|o| OfflineView {
                reason: o.reason,
                since: rfc3339(o.since_ms),
                by: o.by,
                maintenance: o.maintenance,
            }),
            health: if s.connected {
                s.applied.health.as_str().to_owned()
            } else {
                String::new()
            },
            cache_error: s.applied.cache_error,
            checks: s
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
            raw_usage: s.usage.clone(),
            usage: s.usage.map(|u| UsageView {
                cpu_percent: u.cpu_percent,
                load: u.load,
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
            labels: n.labels,
            grains: serde_json::Value::Object(n.grains),
            alerts: s.alerts.iter().map(AlertView::from).collect(),
            levels: s.levels,
            facts: serde_json::Value::Object(n.facts),
            fact_problems: n.fact_problems.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// One node's part of a drain, as clusterctl shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    pub name: String,
    #[serde(serialize_with = "status_words")]
    pub status: ApplyStatus,
    pub detail: String,
}

/// As people read it: `acknowledged`, `timed out`, `not connected`, …
fn status_words<S: serde::Serializer>(s: &ApplyStatus, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

impl From<Applied> for NodeResult {
    fn from(r: Applied) -> Self {
        let detail = match r.status {
            ApplyStatus::NotConnected | ApplyStatus::Stored if !r.connected => {
                "agent not connected; it applies the change when it reconnects"
            }
            ApplyStatus::TimedOut => "agent did not acknowledge in time",
            _ => "",
        };
        NodeResult {
            name: r.name.into_string(),
            status: r.status,
            detail: detail.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub time: String,
    pub kind: String,
    /// The node's name when it happened.
    pub node: String,
    /// Its stable id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    /// The caller's certificate identity.
    pub by: String,
    /// What the caller's client said of itself (`user@host`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub detail: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            seq: e.seq,
            time: rfc3339(e.time_ms),
            kind: e.kind.as_str().to_owned(),
            node: e.node,
            node_id: e.node_id.map(|i| i.into_string()).unwrap_or_default(),
            by: e.by,
            note: e.note,
            detail: e.detail,
        }
    }
}
