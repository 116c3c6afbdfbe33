//! The CLI's gRPC edge: connects to the master, builds requests, and turns
//! answers into the CLI's own view types. The only CLI module that names
//! `cluster_proto` types.

use crate::Failure;
use crate::context::Target;
use cluster_proto as pb;
use serde::Serialize;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// TLS for the target: its CA, and this user's certificate and key.
fn tls(target: &Target) -> Result<ClientTlsConfig, Failure> {
    let read = |what: &str, path: &Option<std::path::PathBuf>| -> Result<String, Failure> {
        let path = path.as_ref().ok_or_else(|| {
            Failure::bad_input(format!(
                "no {what} configured for {} (from {})\n\
                 hint: use the admin.toml `cluster-master` wrote in its data directory \
                 (clusterctl --config-file PATH, or CLUSTERCTL_CONFIG), or `cluster-master init`",
                target.master, target.origin
            ))
        })?;
        std::fs::read_to_string(path).map_err(|e| {
            Failure::bad_input(format!("cannot read the {what} {}: {e}", path.display()))
        })
    };
    let ca = read("CA certificate (ca)", &target.ca)?;
    let cert = read("client certificate (cert)", &target.cert)?;
    let key = read("client key (key)", &target.key)?;
    let host = target
        .master
        .split_once("://")
        .map_or(target.master.as_str(), |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name(host))
}

pub struct Client {
    control: pb::control_client::ControlClient<Channel>,
}

impl Client {
    pub async fn connect(target: &Target) -> Result<Client, Failure> {
        let master = &target.master;
        let origin = &target.origin;
        let unreachable = |e: &dyn std::fmt::Display| {
            Failure::unreachable(format!(
                "cannot reach the master at {master} (from {origin}): {e}\n\
                 hint: is it running? `clusterctl dev` starts one locally; --master picks another"
            ))
        };
        let tls = tls(target)?;
        let channel = Endpoint::from_shared(master.to_owned())
            .map_err(|e| Failure::bad_input(format!("invalid master address {master:?}: {e}")))?
            .tls_config(tls)
            .map_err(|e| Failure::bad_input(format!("invalid TLS settings: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| unreachable(&source_chain(&e)))?;
        Ok(Client {
            control: pb::control_client::ControlClient::new(channel)
                .max_decoding_message_size(64 * 1024 * 1024),
        })
    }

    pub async fn nodes(&mut self, target: &Targeting) -> Result<Vec<NodeView>, Failure> {
        let resp = self
            .control
            .list_nodes(pb::ListNodesRequest {
                names: Vec::new(),
                target: Some(target_pb(target)),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.nodes.into_iter().map(NodeView::from).collect())
    }

    pub async fn set_offline(
        &mut self,
        target: &Targeting,
        offline: bool,
        reason: &str,
        by: &str,
        wait: Option<Duration>,
    ) -> Result<Vec<NodeResult>, Failure> {
        let req = pb::SetOfflineRequest {
            names: Vec::new(),
            target: Some(target_pb(target)),
            offline,
            reason: reason.to_owned(),
            by: by.to_owned(),
            wait: wait.is_some(),
            timeout_ms: wait.map(|d| d.as_millis() as u64).unwrap_or(0),
        };
        let mut request = tonic::Request::new(req);
        if let Some(w) = wait {
            // Leave the master room to answer with per-node results.
            request.set_timeout(w + Duration::from_secs(10));
        }
        let resp = self
            .control
            .set_offline(request)
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp
            .results
            .into_iter()
            .map(|r| NodeResult {
                status: match pb::ApplyStatus::try_from(r.status) {
                    Ok(pb::ApplyStatus::Acknowledged) => "acknowledged",
                    Ok(pb::ApplyStatus::Stored) => "stored",
                    Ok(pb::ApplyStatus::TimedOut) => "timed out",
                    Ok(pb::ApplyStatus::NotConnected) => "not connected",
                    Ok(pb::ApplyStatus::Unchanged) => "unchanged",
                    _ => "unknown",
                },
                name: r.name,
                detail: r.detail,
            })
            .collect())
    }

    pub async fn events(
        &mut self,
        node: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventView>, Failure> {
        let resp = self
            .control
            .list_events(pb::ListEventsRequest {
                after_seq: 0,
                limit,
                node: node.unwrap_or_default().to_owned(),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp
            .events
            .into_iter()
            .map(|e| EventView {
                seq: e.seq,
                time: rfc3339(e.time_ms),
                kind: e.kind,
                node: e.node,
                by: e.by,
                detail: e.detail,
            })
            .collect())
    }
}

impl Client {
    pub async fn create_token(
        &mut self,
        ttl: Duration,
        uses: u32,
        roles: Vec<String>,
    ) -> Result<TokenView, Failure> {
        let t = self
            .control
            .create_token(pb::CreateTokenRequest {
                ttl_ms: ttl.as_millis() as u64,
                uses,
                roles,
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(TokenView {
            token: t.token,
            ca_fingerprint: t.ca_fingerprint,
            expires: rfc3339(t.expires_ms),
        })
    }

    pub async fn keys(&mut self) -> Result<Vec<KeyView>, Failure> {
        let resp = self
            .control
            .list_keys(pb::ListKeysRequest {})
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.keys.into_iter().map(KeyView::from).collect())
    }

    pub async fn decide_keys(
        &mut self,
        ids: &[String],
        decision: KeyDecision,
    ) -> Result<Vec<KeyView>, Failure> {
        let decision = match decision {
            KeyDecision::Accept => pb::KeyDecision::Accept,
            KeyDecision::Reject => pb::KeyDecision::Reject,
            KeyDecision::Delete => pb::KeyDecision::Delete,
        };
        let resp = self
            .control
            .decide_keys(pb::DecideKeysRequest {
                node_ids: ids.to_vec(),
                decision: decision as i32,
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.keys.into_iter().map(KeyView::from).collect())
    }

    /// The certificate and CA (PEM) for a new user whose CSR is `csr_pem`.
    pub async fn add_user(
        &mut self,
        name: &str,
        admin: bool,
        csr_pem: String,
    ) -> Result<(String, String), Failure> {
        let role = if admin {
            pb::UserRole::Admin
        } else {
            pb::UserRole::Operator
        };
        let resp = self
            .control
            .add_user(pb::AddUserRequest {
                name: name.to_owned(),
                role: role as i32,
                csr_pem,
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok((resp.cert_pem, resp.ca_pem))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum KeyDecision {
    Accept,
    Reject,
    Delete,
}

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

/// Which nodes a command means, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targeting {
    /// Every node.
    All,
    /// Names, ids or globs; each must match.
    Names(Vec<String>),
    Expr(cluster_master::target::Kind, String),
}

fn target_pb(t: &Targeting) -> pb::Target {
    use cluster_master::target::Kind;
    match t {
        Targeting::All => pb::Target::default(),
        Targeting::Names(n) => pb::Target {
            kind: pb::TargetKind::Unspecified as i32,
            expr: String::new(),
            names: n.clone(),
        },
        Targeting::Expr(kind, expr) => pb::Target {
            kind: match kind {
                Kind::Glob => pb::TargetKind::Glob,
                Kind::Regex => pb::TargetKind::Regex,
                Kind::List => pb::TargetKind::List,
                Kind::Grain => pb::TargetKind::Grain,
                Kind::GrainRegex => pb::TargetKind::GrainRegex,
                Kind::Label => pb::TargetKind::Label,
                Kind::Subnet => pb::TargetKind::Subnet,
                Kind::Role => pb::TargetKind::Role,
                Kind::NodeGroup => pb::TargetKind::NodeGroup,
                Kind::Compound => pb::TargetKind::Compound,
            } as i32,
            expr: expr.clone(),
            names: Vec::new(),
        },
    }
}

/// A job's events as clusterctl handles them.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started {
        job_id: String,
        matched: Vec<String>,
        not_connected: Vec<String>,
    },
    NodeStarted(String),
    Output {
        node: String,
        stderr: bool,
        data: Vec<u8>,
    },
    NodeDone(JobResultView),
    Finished(JobView),
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

fn result_view(r: pb::JobNodeResult) -> JobResultView {
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

fn job_view(j: pb::JobInfo) -> JobView {
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

impl Client {
    /// Starts a job; events come from the returned stream. Dropping it
    /// cancels the job on every node.
    pub async fn run(
        &mut self,
        target: &Targeting,
        argv: Vec<String>,
        timeout: Option<Duration>,
        batch: Option<String>,
    ) -> Result<tonic::Streaming<pb::RunEvent>, Failure> {
        Ok(self
            .control
            .run(pb::RunRequest {
                target: Some(target_pb(target)),
                argv,
                timeout_ms: timeout.map_or(0, |t| t.as_millis() as u64),
                batch: batch.unwrap_or_default(),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner())
    }

    /// The next event of a running job (`None` at the end).
    pub async fn next_event(
        stream: &mut tonic::Streaming<pb::RunEvent>,
    ) -> Result<Option<RunEvent>, Failure> {
        use pb::run_event::Event;
        loop {
            let Some(ev) = stream.message().await.map_err(Failure::from_status)? else {
                return Ok(None);
            };
            let ev = match ev.event {
                Some(Event::Started(s)) => RunEvent::Started {
                    job_id: s.job_id,
                    matched: s.matched,
                    not_connected: s.not_connected,
                },
                Some(Event::NodeStarted(n)) => RunEvent::NodeStarted(n.node),
                Some(Event::Output(o)) => RunEvent::Output {
                    node: o.node,
                    stderr: o.stream == pb::OutputStream::Stderr as i32,
                    data: o.data,
                },
                Some(Event::NodeDone(r)) => RunEvent::NodeDone(result_view(r)),
                Some(Event::Finished(f)) => match f.job {
                    Some(j) => RunEvent::Finished(job_view(j)),
                    None => continue,
                },
                None => continue,
            };
            return Ok(Some(ev));
        }
    }

    pub async fn jobs(&mut self, limit: u32) -> Result<Vec<JobView>, Failure> {
        let resp = self
            .control
            .list_jobs(pb::ListJobsRequest { limit })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.jobs.into_iter().map(job_view).collect())
    }

    pub async fn job(&mut self, id: &str) -> Result<JobView, Failure> {
        let resp = self
            .control
            .get_job(pb::GetJobRequest { id: id.to_owned() })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        resp.job
            .map(job_view)
            .ok_or_else(|| Failure::partial("the master sent no job"))
    }

    pub async fn set_labels(
        &mut self,
        target: &Targeting,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<Vec<String>, Failure> {
        let resp = self
            .control
            .set_labels(pb::SetLabelsRequest {
                target: Some(target_pb(target)),
                labels,
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.nodes)
    }

    pub async fn set_group(&mut self, name: &str, expr: &str) -> Result<(), Failure> {
        self.control
            .set_node_group(pb::SetNodeGroupRequest {
                name: name.to_owned(),
                expr: expr.to_owned(),
            })
            .await
            .map_err(Failure::from_status)?;
        Ok(())
    }

    pub async fn groups(&mut self) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        let resp = self
            .control
            .list_node_groups(pb::ListNodeGroupsRequest {})
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.groups.into_iter().collect())
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
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
}

#[derive(Debug, Clone, Serialize)]
pub struct OfflineView {
    pub reason: String,
    pub since: String,
    pub by: String,
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
            }),
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
