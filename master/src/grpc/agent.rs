//! `AgentService`: the session stream between the master and one agent.
//!
//! On open: read `Hello` (bounded wait), register the node, send a snapshot.
//! Then, until the agent goes away, the master is replaced by a newer session
//! of the same node, or the master shuts down: forward usage reports and
//! acknowledgements to the cluster, and send a delta whenever the node's
//! spec generation moves past what this session last sent.

use super::convert::{self, InvalidMessage};
use super::convert_lb;
use crate::cluster::{Cluster, Hello, SessionHandle};
use crate::jobs::{self, Jobs};
use cluster_proto as pb;
use pb::agent_message::Msg as In;
use pb::master_message::Msg as Out;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// How long a new stream may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued toward one agent before the session waits for it.
const OUTBOUND_QUEUE: usize = 16;

pub struct AgentSvc {
    pub cluster: Arc<Cluster>,
    pub jobs: Arc<Jobs>,
    pub shutdown: CancellationToken,
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::MasterMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentSvc {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let cert_node = super::auth::node(&self.cluster, &request).await?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded("no hello within 10s of opening the session")
            })??;
        let hello = match first.and_then(|m| m.msg) {
            Some(In::Hello(h)) => Hello::try_from(h).map_err(invalid)?,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be `hello`",
                ));
            }
        };
        if hello.node_id != cert_node {
            let msg = format!(
                "this certificate is node {cert_node}'s; it cannot speak as node {}",
                hello.node_id
            );
            self.cluster
                .deny(&cert_node, &format!("node {cert_node}"), msg.clone())
                .await;
            return Err(Status::permission_denied(msg));
        }
        let node_id = hello.node_id.clone();
        let handle = self
            .cluster
            .connect(hello)
            .await
            .map_err(super::status_of)?;
        tracing::info!(node = %node_id, session = handle.session_id, "agent connected");

        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let cluster = self.cluster.clone();
        let jobs = self.jobs.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut handle = handle;
            let reason = drive(&cluster, &jobs, &mut handle, inbound, tx, shutdown).await;
            cluster.disconnect(&handle);
            jobs.node_gone(&handle.node_id).await;
            tracing::info!(node = %node_id, session = handle.session_id, %reason, "agent session closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn invalid(e: InvalidMessage) -> Status {
    Status::invalid_argument(e.to_string())
}

type Tx = mpsc::Sender<Result<pb::MasterMessage, Status>>;

/// What this session has sent: the generation stamped on its last message,
/// the node spec generation and the hosts generation it covered.
struct Sent {
    generation: u64,
    spec: u64,
    hosts: u64,
    /// The proxy configuration version sent (0: none, or not wanted).
    proxy: u64,
}

fn snapshot(cluster: &Cluster, handle: &SessionHandle) -> Option<(Sent, pb::MasterMessage)> {
    let (generation, spec_generation, spec, hosts_generation, hosts) =
        cluster.session_snapshot(&handle.node_id, handle.wants_hosts)?;
    let view = handle.wants_proxy.then(|| cluster.proxy_view());
    let msg = pb::MasterMessage {
        msg: Some(Out::Snapshot(pb::Snapshot {
            generation,
            node: Some(convert::spec_to_pb(&spec)),
            hosts: hosts.iter().map(convert::host_to_pb).collect(),
            proxy: view.as_deref().map(convert_lb::view_to_pb),
        })),
    };
    let sent = Sent {
        generation,
        spec: spec_generation,
        hosts: hosts_generation,
        proxy: view.map_or(0, |v| v.version),
    };
    Some((sent, msg))
}

/// The delta since `sent`, if anything moved; `Err` when the node is gone.
fn delta(
    cluster: &Cluster,
    handle: &SessionHandle,
    sent: &Sent,
) -> Result<Option<(Sent, pb::MasterMessage)>, ()> {
    let (generation, spec, hosts) = cluster
        .session_delta(&handle.node_id, sent.spec, sent.hosts, handle.wants_hosts)
        .ok_or(())?;
    let view = handle
        .wants_proxy
        .then(|| cluster.proxy_view())
        .filter(|v| v.version != sent.proxy);
    if spec.is_none() && hosts.upsert.is_empty() && hosts.removed.is_empty() && view.is_none() {
        return Ok(None); // already in the snapshot or an earlier delta
    }
    let msg = pb::MasterMessage {
        msg: Some(Out::Delta(pb::Delta {
            generation,
            prev_generation: sent.generation,
            node: spec.as_ref().map(|(_, s)| convert::spec_to_pb(s)),
            hosts_upsert: hosts.upsert.iter().map(convert::host_to_pb).collect(),
            hosts_removed: hosts.removed,
            proxy: view.as_deref().map(convert_lb::view_to_pb),
        })),
    };
    let next = Sent {
        generation,
        spec: spec.map_or(sent.spec, |(g, _)| g),
        hosts: hosts.seen,
        proxy: view.map_or(sent.proxy, |v| v.version),
    };
    Ok(Some((next, msg)))
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs one session until it ends; returns why it ended.
async fn drive(
    cluster: &Cluster,
    jobs: &Jobs,
    handle: &mut SessionHandle,
    mut inbound: Streaming<pb::AgentMessage>,
    tx: Tx,
    shutdown: CancellationToken,
) -> &'static str {
    let Some((mut sent, msg)) = snapshot(cluster, handle) else {
        return "node vanished";
    };
    if tx.send(Ok(msg)).await.is_err() {
        return "agent went away";
    }
    // When gathered hosts changes are due to be sent.
    let mut hosts_due: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return "master shutting down",
            _ = tx.closed() => return "agent went away",
            changed = handle.spec_changed.changed() => {
                if changed.is_err() {
                    return "replaced by a newer session";
                }
                match delta(cluster, handle, &sent) {
                    Err(()) => return "node vanished",
                    Ok(None) => {}
                    Ok(Some((next, msg))) => {
                        if tx.send(Ok(msg)).await.is_err() {
                            return "agent went away";
                        }
                        sent = next;
                    }
                }
            }
            _ = handle.proxy_changed.changed(), if handle.wants_proxy => {
                match delta(cluster, handle, &sent) {
                    Err(()) => return "node vanished",
                    Ok(None) => {}
                    Ok(Some((next, msg))) => {
                        if tx.send(Ok(msg)).await.is_err() {
                            return "agent went away";
                        }
                        sent = next;
                    }
                }
            }
            _ = handle.hosts_changed.changed(), if hosts_due.is_none() && handle.wants_hosts => {
                // Gather what else changes in the next moments, then send once.
                hosts_due = Some(tokio::time::Instant::now() + cluster.hosts_coalesce());
            }
            _ = sleep_until(hosts_due) => {
                hosts_due = None;
                handle.hosts_changed.borrow_and_update();
                match delta(cluster, handle, &sent) {
                    Err(()) => return "node vanished",
                    Ok(None) => {}
                    Ok(Some((next, msg))) => {
                        if tx.send(Ok(msg)).await.is_err() {
                            return "agent went away";
                        }
                        sent = next;
                    }
                }
            }
            cmd = handle.commands.recv() => {
                let Some(cmd) = cmd else { return "replaced by a newer session" };
                if tx.send(Ok(convert::command_to_pb(cmd))).await.is_err() {
                    return "agent went away";
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(pb::AgentMessage { msg: Some(m) })) => match m {
                    In::Usage(u) => cluster.report_usage(handle, u.into()),
                    In::Ack(a) => cluster.acknowledge(handle, a.generation, a.health_status),
                    In::Checks(c) => cluster.report_checks(handle, convert_lb::checks_of(c)).await,
                    In::Lb(r) => cluster.report_lb(handle, convert_lb::report_of(r)),
                    In::Resync(_) => {
                        let Some((next, msg)) = snapshot(cluster, handle) else {
                            return "node vanished";
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return "agent went away";
                        }
                        sent = next;
                    }
                    In::Output(o) => {
                        let stream = convert::stream_of(o.stream);
                        let report = jobs::Report::Output { stream, data: o.data };
                        jobs.report(&o.job_id, &handle.node_id, report).await;
                    }
                    In::Done(d) => {
                        let job_id = d.job_id.clone();
                        jobs.report(&job_id, &handle.node_id, jobs::Report::Done(convert::done_of(d))).await;
                    }
                    In::Hello(_) => {
                        let _ = tx.send(Err(Status::invalid_argument("`hello` sent twice"))).await;
                        return "protocol error: second hello";
                    }
                },
                Ok(Some(pb::AgentMessage { msg: None })) => {}
                Ok(None) => return "agent closed the stream",
                Err(_) => return "stream error",
            },
        }
    }
}
