//! The CLI's gRPC edge: connects to the master, builds requests, and turns
//! answers into the CLI's own view types. The only CLI module that names
//! `cluster_proto` types.

mod balancing;
mod declare;
mod rollout;
mod views;

pub use balancing::*;
pub use rollout::*;
pub use views::*;

use crate::Failure;
use crate::context::Target;
use cluster_proto as pb;
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
        self.set_out(target, offline, false, reason, by, wait).await
    }

    /// As `set_offline`; `maintenance` takes nodes out entirely (HAProxy
    /// MAINT) rather than draining them.
    pub async fn set_out(
        &mut self,
        target: &Targeting,
        offline: bool,
        maintenance: bool,
        reason: &str,
        by: &str,
        wait: Option<Duration>,
    ) -> Result<Vec<NodeResult>, Failure> {
        let req = pb::SetOfflineRequest {
            maintenance,
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

/// Which nodes a command means, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targeting {
    /// Every node.
    All,
    /// Names, ids or globs; each must match.
    Names(Vec<String>),
    Expr(cluster_master::targets::Kind, String),
}

pub(crate) fn target_pb(t: &Targeting) -> pb::Target {
    use cluster_master::targets::Kind;
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

    pub async fn promote(&mut self, node: &str) -> Result<Vec<(String, String)>, Failure> {
        let resp = self
            .control
            .promote(pb::PromoteRequest {
                node: node.to_owned(),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.renames.into_iter().map(|r| (r.from, r.to)).collect())
    }

    pub async fn rename(
        &mut self,
        node: &str,
        new_name: &str,
    ) -> Result<Vec<(String, String)>, Failure> {
        let resp = self
            .control
            .rename(pb::RenameRequest {
                node: node.to_owned(),
                new_name: new_name.to_owned(),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.renames.into_iter().map(|r| (r.from, r.to)).collect())
    }

    pub async fn remove_node(&mut self, node: &str) -> Result<(), Failure> {
        self.control
            .remove_node(pb::RemoveNodeRequest {
                node: node.to_owned(),
            })
            .await
            .map_err(Failure::from_status)?;
        Ok(())
    }

    /// `(address, names)` of every line a node's hosts block holds.
    pub async fn hosts(
        &mut self,
        node: Option<&str>,
    ) -> Result<Vec<(String, Vec<String>)>, Failure> {
        let resp = self
            .control
            .hosts(pb::HostsRequest {
                node: node.unwrap_or_default().to_owned(),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp
            .hosts
            .into_iter()
            .map(|h| (h.address, h.names))
            .collect())
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
