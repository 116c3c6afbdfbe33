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
use cluster_model::rotation::DrainEvent;
use cluster_model::wire::{self, WireError};
use cluster_model::{Event, JobRecord, KeyRecord, NodeStatus, TargetSpec};
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

/// An answer this clusterctl cannot read (a master of another version?).
pub(crate) fn unreadable(e: WireError) -> Failure {
    Failure::partial(format!("the master sent an unreadable answer: {e}"))
}

/// What a drain asks for.
#[derive(Debug, Clone)]
pub struct DrainAsk<'a> {
    pub target: &'a Targeting,
    pub offline: bool,
    pub maintenance: bool,
    pub reason: &'a str,
    pub by: &'a str,
    /// Follow until really out (or back in), for at most this long.
    pub wait: Option<Duration>,
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
        resp.nodes
            .into_iter()
            .map(|n| NodeStatus::try_from(n).map(NodeView::from))
            .collect::<Result<_, _>>()
            .map_err(unreadable)
    }

    /// Takes nodes out of service (or back in); calls `event` with each
    /// event of the drain as it happens: what was stored first, then, when
    /// waiting, acknowledgements, what is pending, and how it ended.
    pub async fn drain(
        &mut self,
        ask: DrainAsk<'_>,
        mut event: impl FnMut(DrainEvent) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut request = tonic::Request::new(pb::DrainRequest {
            names: Vec::new(),
            target: Some(target_pb(ask.target)),
            offline: ask.offline,
            reason: ask.reason.to_owned(),
            by: ask.by.to_owned(),
            maintenance: ask.maintenance,
            wait: ask.wait.is_some(),
            timeout_ms: ask.wait.map_or(0, |d| d.as_millis() as u64),
        });
        if let Some(w) = ask.wait {
            // The master owns the deadline; this only bounds a master that
            // went silent.
            request.set_timeout(w + Duration::from_secs(10));
        }
        let mut stream = self
            .control
            .drain(request)
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        while let Some(ev) = stream.message().await.map_err(Failure::from_status)? {
            event(DrainEvent::try_from(ev).map_err(unreadable)?)?;
        }
        Ok(())
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
        resp.events
            .into_iter()
            .map(|e| Event::try_from(e).map(EventView::from))
            .collect::<Result<_, _>>()
            .map_err(unreadable)
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
        keys_view(resp.keys)
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
        keys_view(resp.keys)
    }

    /// The certificate and CA (PEM) for a new user whose CSR is `csr_pem`.
    pub async fn add_user(
        &mut self,
        name: &str,
        admin: bool,
        csr_pem: String,
    ) -> Result<(String, String), Failure> {
        let role = if admin {
            cluster_model::Role::Admin
        } else {
            cluster_model::Role::Operator
        };
        let resp = self
            .control
            .add_user(pb::AddUserRequest {
                name: name.to_owned(),
                role: pb::UserRole::from(role) as i32,
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

fn keys_view(keys: Vec<pb::KeyInfo>) -> Result<Vec<KeyView>, Failure> {
    keys.into_iter()
        .map(|k| KeyRecord::try_from(k).map(KeyView::from))
        .collect::<Result<_, _>>()
        .map_err(unreadable)
}

/// Which nodes a command means, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targeting {
    /// Every node.
    All,
    /// Names, ids or globs, each of which must match; or an expression.
    Spec(TargetSpec),
}

pub(crate) fn target_pb(t: &Targeting) -> pb::Target {
    match t {
        Targeting::All => pb::Target::default(),
        Targeting::Spec(spec) => spec.into(),
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
        use cluster_model::job::{OutputStream, RunEvent as Event};
        loop {
            let Some(ev) = stream.message().await.map_err(Failure::from_status)? else {
                return Ok(None);
            };
            let ev = match wire::run_event_of(ev).map_err(unreadable)? {
                Some(Event::Started {
                    job_id,
                    matched,
                    not_connected,
                }) => RunEvent::Started {
                    job_id,
                    matched,
                    not_connected,
                },
                Some(Event::Output { node, stream, data }) => RunEvent::Output {
                    node,
                    stderr: stream == OutputStream::Stderr,
                    data,
                },
                Some(Event::NodeDone(r)) => RunEvent::NodeDone(result_view(r)),
                Some(Event::Finished(j)) => RunEvent::Finished(job_view(j)),
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
        resp.jobs
            .into_iter()
            .map(|j| JobRecord::try_from(j).map(job_view))
            .collect::<Result<_, _>>()
            .map_err(unreadable)
    }

    pub async fn job(&mut self, id: &str) -> Result<JobView, Failure> {
        let resp = self
            .control
            .get_job(pb::GetJobRequest { id: id.to_owned() })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        let job = resp
            .job
            .ok_or_else(|| Failure::partial("the master sent no job"))?;
        Ok(job_view(JobRecord::try_from(job).map_err(unreadable)?))
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
