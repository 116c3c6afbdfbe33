//! The CLI's gRPC edge: connects to the masters, builds requests, and
//! turns answers into the CLI's own view types. The only CLI module that
//! names `cluster_proto` types.
//!
//! - `failover` — reaching the masters: their order, connect timeouts,
//!   retries on another master, request ids (which calls are sent again,
//!   and why).
//! - `drain`, `balancing`, `rollout`, `declare`, `masters` — the calls of
//!   each area; `follow` — the followed reads (events, nodes), opened
//!   again when they break; `views` — the CLI's view types.

mod balancing;
mod declare;
mod drain;
mod failover;
mod follow;
mod masters;
mod rollout;
mod views;

pub use balancing::*;
pub use drain::DrainAsk;
pub use failover::{CONNECT_TIMEOUT, PATIENCE, Patience, REQUEST_ID, RequestId, went_away};
pub use follow::*;
pub use masters::*;
pub use rollout::*;
pub use views::*;

use crate::Failure;
use cluster_model::wire::{self, WireError};
use cluster_model::{Event, JobRecord, KeyRecord, NodeStatus, TargetSpec};
use cluster_proto as pb;
use failover::{Call, Connector, Control, Rotation};
use std::time::Duration;

pub struct Client {
    /// Talks to the current master of `rotation`.
    control: Control,
    /// The masters in the order this client tries them.
    rotation: Rotation,
    connector: Connector,
    /// Where the masters came from, for messages.
    origin: String,
    patience: Patience,
}

/// An answer this clusterctl cannot read (a master of another version?).
pub(crate) fn unreadable(e: WireError) -> Failure {
    Failure::partial(format!("the master sent an unreadable answer: {e}"))
}

impl Client {
    pub async fn nodes(&mut self, target: &Targeting) -> Result<Vec<NodeView>, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::ListNodesRequest {
                    names: Vec::new(),
                    target: Some(target_pb(target)),
                },
                |mut c, r| async move { c.list_nodes(r).await },
            )
            .await?;
        resp.nodes
            .into_iter()
            .map(|n| NodeStatus::try_from(n).map(NodeView::from))
            .collect::<Result<_, _>>()
            .map_err(unreadable)
    }

    /// A node's usage history since `since_ms`, as its master keeps it.
    pub async fn usage_history(
        &mut self,
        node: &str,
        since_ms: u64,
    ) -> Result<pb::UsageHistoryResponse, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::UsageHistoryRequest {
                    node: node.to_owned(),
                    since_ms,
                },
                |mut c, r| async move { c.usage_history(r).await },
            )
            .await?;
        Ok(resp)
    }

    pub async fn events(
        &mut self,
        node: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventView>, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::ListEventsRequest {
                    after_seq: 0,
                    limit,
                    node: node.unwrap_or_default().to_owned(),
                },
                |mut c, r| async move { c.list_events(r).await },
            )
            .await?;
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
        ttl: Option<Duration>,
        uses: u32,
        roles: Vec<String>,
        api: Option<(String, cluster_model::Role)>,
    ) -> Result<TokenView, Failure> {
        let (api_name, api_role) = api
            .map(|(name, role)| (name, role.as_str().to_owned()))
            .unwrap_or_default();
        let t = self
            .unary(
                Call::Write,
                pb::CreateTokenRequest {
                    ttl_ms: ttl.map_or(0, |t| t.as_millis() as u64),
                    uses,
                    roles,
                    never_expires: ttl.is_none(),
                    api_name,
                    api_role,
                },
                |mut c, r| async move { c.create_token(r).await },
            )
            .await?;
        Ok(TokenView {
            token: t.token,
            ca_fingerprint: t.ca_fingerprint,
            expires: views::token_expiry(t.expires_ms),
            holder: Some(t.api_name).filter(|n| !n.is_empty()),
            role: Some(t.api_role).filter(|r| !r.is_empty()),
        })
    }

    pub async fn certificates(&mut self) -> Result<Vec<CertificateView>, Failure> {
        let resp = self
            .unary(Call::Read, pb::CaStatusRequest {}, |mut c, r| async move {
                c.ca_status(r).await
            })
            .await?;
        Ok(resp.certificates.into_iter().map(Into::into).collect())
    }

    pub async fn users(&mut self) -> Result<Vec<UserView>, Failure> {
        let resp = self
            .unary(Call::Read, pb::ListUsersRequest {}, |mut c, r| async move {
                c.list_users(r).await
            })
            .await?;
        resp.users
            .into_iter()
            .map(|u| cluster_model::UserRecord::try_from(u).map(UserView::from))
            .collect::<Result<_, _>>()
            .map_err(unreadable)
    }

    pub async fn revoke_user(&mut self, name: &str) -> Result<UserView, Failure> {
        let u = self
            .unary(
                Call::Write,
                pb::RevokeUserRequest {
                    name: name.to_owned(),
                },
                |mut c, r| async move { c.revoke_user(r).await },
            )
            .await?;
        cluster_model::UserRecord::try_from(u)
            .map(UserView::from)
            .map_err(unreadable)
    }

    pub async fn tokens(&mut self) -> Result<Vec<TokenInfoView>, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::ListTokensRequest {},
                |mut c, r| async move { c.list_tokens(r).await },
            )
            .await?;
        Ok(tokens_view(resp.tokens))
    }

    pub async fn delete_tokens(&mut self, ids: &[String]) -> Result<Vec<TokenInfoView>, Failure> {
        let resp = self
            .unary(
                Call::Write,
                pb::DeleteTokensRequest { ids: ids.to_vec() },
                |mut c, r| async move { c.delete_tokens(r).await },
            )
            .await?;
        Ok(tokens_view(resp.tokens))
    }

    pub async fn keys(&mut self) -> Result<Vec<KeyView>, Failure> {
        let resp = self
            .unary(Call::Read, pb::ListKeysRequest {}, |mut c, r| async move {
                c.list_keys(r).await
            })
            .await?;
        keys_view(resp.keys)
    }

    pub async fn decide_keys(
        &mut self,
        ids: &[String],
        decision: KeyDecision,
        fingerprint: Option<&str>,
    ) -> Result<Vec<KeyView>, Failure> {
        let decision = match decision {
            KeyDecision::Accept => pb::KeyDecision::Accept,
            KeyDecision::Reject => pb::KeyDecision::Reject,
            KeyDecision::Delete => pb::KeyDecision::Delete,
        };
        let resp = self
            .unary(
                Call::Write,
                pb::DecideKeysRequest {
                    node_ids: ids.to_vec(),
                    decision: decision as i32,
                    fingerprint: fingerprint.unwrap_or_default().to_owned(),
                },
                |mut c, r| async move { c.decide_keys(r).await },
            )
            .await?;
        keys_view(resp.keys)
    }

    /// The certificate and CA (PEM) for a new user whose CSR is `csr_pem`.
    pub async fn add_user(
        &mut self,
        name: &str,
        role: cluster_model::Role,
        csr_pem: String,
    ) -> Result<(String, String), Failure> {
        let resp = self
            .unary(
                Call::Write,
                pb::AddUserRequest {
                    name: name.to_owned(),
                    role: pb::UserRole::from(role) as i32,
                    csr_pem,
                },
                |mut c, r| async move { c.add_user(r).await },
            )
            .await?;
        Ok((resp.cert_pem, resp.ca_pem))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum KeyDecision {
    Accept,
    Reject,
    Delete,
}

fn tokens_view(tokens: Vec<pb::TokenInfo>) -> Vec<TokenInfoView> {
    let now = cluster_model::time::now_ms();
    tokens
        .into_iter()
        .map(|t| TokenInfoView::of(t.into(), now))
        .collect()
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

/// What a job does on each node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A program and its arguments (no shell).
    Command(Vec<String>),
    /// Something the agent does itself (`grains refresh`).
    Builtin(cluster_model::job::Builtin),
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
    /// cancels the job on every node. Carries a request id, and is never
    /// sent again: its command runs on the nodes (see `failover`).
    pub async fn run(
        &mut self,
        target: &Targeting,
        job: Job,
        timeout: Option<Duration>,
        batch: Option<String>,
    ) -> Result<tonic::Streaming<pb::RunEvent>, Failure> {
        let (argv, builtin) = match job {
            Job::Command(argv) => (argv, String::new()),
            Job::Builtin(b) => (Vec::new(), b.name().to_owned()),
        };
        let mut request = tonic::Request::new(pb::RunRequest {
            target: Some(target_pb(target)),
            argv,
            timeout_ms: timeout.map_or(0, |t| t.as_millis() as u64),
            batch: batch.unwrap_or_default(),
            builtin,
        });
        RequestId::random().attach(&mut request);
        Ok(self
            .control
            .run(request)
            .await
            .map_err(Failure::from_status)?
            .into_inner())
    }

    /// The next event of a running job (`None` at the end). A stream that
    /// broke is not opened again (see `failover`): its failure says so.
    pub async fn next_event(
        stream: &mut tonic::Streaming<pb::RunEvent>,
    ) -> Result<Option<RunEvent>, Failure> {
        use cluster_model::job::{OutputStream, RunEvent as Event};
        let lost = |status: tonic::Status| {
            if went_away(&status) {
                Failure::unreachable(format!(
                    "lost the master during the job: {}; a job is not started again, \
                     as its command may already have run",
                    status.message()
                ))
            } else {
                Failure::from_status(status)
            }
        };
        loop {
            let Some(ev) = stream.message().await.map_err(lost)? else {
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
            .unary(
                Call::Read,
                pb::ListJobsRequest { limit },
                |mut c, r| async move { c.list_jobs(r).await },
            )
            .await?;
        resp.jobs
            .into_iter()
            .map(|j| JobRecord::try_from(j).map(job_view))
            .collect::<Result<_, _>>()
            .map_err(unreadable)
    }

    pub async fn job(&mut self, id: &str) -> Result<JobView, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::GetJobRequest { id: id.to_owned() },
                |mut c, r| async move { c.get_job(r).await },
            )
            .await?;
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
            .unary(
                Call::Write,
                pb::SetLabelsRequest {
                    target: Some(target_pb(target)),
                    labels,
                },
                |mut c, r| async move { c.set_labels(r).await },
            )
            .await?;
        Ok(resp.nodes)
    }

    pub async fn set_group(&mut self, name: &str, expr: &str) -> Result<(), Failure> {
        self.unary(
            Call::Write,
            pb::SetNodeGroupRequest {
                name: name.to_owned(),
                expr: expr.to_owned(),
            },
            |mut c, r| async move { c.set_node_group(r).await },
        )
        .await?;
        Ok(())
    }

    pub async fn groups(&mut self) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::ListNodeGroupsRequest {},
                |mut c, r| async move { c.list_node_groups(r).await },
            )
            .await?;
        Ok(resp.groups.into_iter().collect())
    }

    pub async fn promote(&mut self, node: &str) -> Result<Vec<(String, String)>, Failure> {
        let resp = self
            .unary(
                Call::Write,
                pb::PromoteRequest {
                    node: node.to_owned(),
                },
                |mut c, r| async move { c.promote(r).await },
            )
            .await?;
        Ok(resp.renames.into_iter().map(|r| (r.from, r.to)).collect())
    }

    pub async fn rename(
        &mut self,
        node: &str,
        new_name: &str,
    ) -> Result<Vec<(String, String)>, Failure> {
        let resp = self
            .unary(
                Call::Write,
                pb::RenameRequest {
                    node: node.to_owned(),
                    new_name: new_name.to_owned(),
                },
                |mut c, r| async move { c.rename(r).await },
            )
            .await?;
        Ok(resp.renames.into_iter().map(|r| (r.from, r.to)).collect())
    }

    pub async fn remove_node(&mut self, node: &str) -> Result<(), Failure> {
        self.unary(
            Call::Write,
            pb::RemoveNodeRequest {
                node: node.to_owned(),
            },
            |mut c, r| async move { c.remove_node(r).await },
        )
        .await?;
        Ok(())
    }

    /// `(address, names)` of every line a node's hosts block holds.
    pub async fn hosts(
        &mut self,
        node: Option<&str>,
    ) -> Result<Vec<(String, Vec<String>)>, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::HostsRequest {
                    node: node.unwrap_or_default().to_owned(),
                },
                |mut c, r| async move { c.hosts(r).await },
            )
            .await?;
        Ok(resp
            .hosts
            .into_iter()
            .map(|h| (h.address, h.names))
            .collect())
    }
}

/// An error with its sources, each said once (a source that only repeats
/// what was said is left out).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
