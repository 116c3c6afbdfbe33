//! `AgentService`: the session stream between the master and one agent.
//!
//! On open: read `Hello` (bounded wait), register the node, send a snapshot.
//! Then, until the agent goes away, the master is replaced by a newer session
//! of the same node, or the master shuts down: forward usage reports and
//! acknowledgements to the cluster, and send a delta whenever the node's
//! spec generation moves past what this session last sent.

use super::convert::invalid;
use crate::cluster::{Cluster, SessionHandle, SessionSnapshot};
use crate::jobs::{self, Jobs};
use cluster_model::LbReport;
use cluster_model::job::{JobDone, JobOutput};
use cluster_model::session::{Ack, Hello};
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
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

/// How long a new stream may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued toward one agent before the session waits for it. Few:
/// what a slow agent has not read waits here, for every session at once
/// in a join storm (16 held 10,000 sessions at 1.4 GiB, 4 at 0.9 GiB), and
/// the session's changes coalesce while it waits (level-triggered).
const OUTBOUND_QUEUE: usize = 4;

pub struct AgentSvc {
    pub cluster: Arc<Cluster>,
    pub jobs: Arc<Jobs>,
    pub shutdown: CancellationToken,
    /// Every session's loop, so a stopping master waits for them to end.
    pub sessions: TaskTracker,
    /// Events about sessions refused because another holds the node: one
    /// a minute per source address.
    pub held_events: crate::cluster::JoinLimits,
    /// Sessions may come from elsewhere than their node's address.
    pub allow_nat: bool,
}

/// Why a session that comes from `from` may not speak for a node that
/// says it is reached at `addresses` (its first is what hosts files and
/// upstreams use): `None` when it comes from there.
fn elsewhere(node: &str, addresses: &[String], from: std::net::IpAddr) -> Option<String> {
    let said = addresses.first()?;
    let same = said
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical() == from.to_canonical());
    (!same).then(|| {
        format!(
            "node {node} says it is reached at {}, but its session comes from {from}; \
             a node is sent traffic where it connects from (set `allow_nat = true` on the \
             masters when agents are behind NAT or a proxy)",
            cluster_model::limits::excerpt(said)
        )
    })
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::MasterMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentSvc {
    type SessionStream = SessionStream;

    async fn renew(
        &self,
        request: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::RenewResponse>, Status> {
        let (node, serial) = match super::auth::caller(&self.cluster, &request).await? {
            crate::cluster::Caller::Node { id, serial } => (id, serial),
            other => {
                return Err(Status::permission_denied(format!(
                    "only a node renews its certificate, not {}",
                    other.label()
                )));
            }
        };
        let csr_pem = request.into_inner().csr_pem;
        let renewed = self
            .cluster
            .renew(&node, &serial, &csr_pem)
            .await
            .map_err(super::convert::status_of)?;
        tracing::info!(%node, "renewed the node's certificate");
        Ok(Response::new(pb::RenewResponse {
            cert_pem: renewed.cert_pem,
            not_after_ms: renewed.not_after_ms,
        }))
    }

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let cert_node = super::auth::node(&self.cluster, &request).await?;
        let from = request
            .extensions()
            .get::<crate::tls::PeerInfo>()
            .map(|p| p.addr.ip());
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
        if hello.node_id != *cert_node {
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
        if !self.allow_nat
            && let Some(from) = from
            && let Some(why) = elsewhere(&node_id, &hello.addresses, from)
        {
            if self.held_events.admit(from, std::time::Instant::now()) {
                self.cluster
                    .deny(&node_id, &format!("node {node_id}"), why.clone())
                    .await;
            }
            return Err(Status::failed_precondition(why));
        }
        let handle = match self.cluster.connect_from(hello, from).await {
            Ok(h) => h,
            Err(e @ crate::cluster::ClusterError::SessionHeld { .. }) => {
                // One event per node and minute: the copy keeps trying.
                if let Some(ip) = from
                    && self.held_events.admit(ip, std::time::Instant::now())
                {
                    self.cluster
                        .deny(&node_id, &format!("node {node_id}"), e.to_string())
                        .await;
                }
                return Err(Status::failed_precondition(e.to_string()));
            }
            Err(e) => return Err(super::convert::status_of(e)),
        };
        tracing::info!(node = %node_id, session = handle.session_id, "agent connected");

        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let cluster = self.cluster.clone();
        let jobs = self.jobs.clone();
        let shutdown = self.shutdown.clone();
        self.sessions.spawn(async move {
            let mut handle = handle;
            let reason = drive(&cluster, &jobs, &mut handle, inbound, tx, shutdown).await;
            cluster.disconnect(&handle);
            jobs.node_gone(&handle.node_id).await;
            tracing::info!(node = %node_id, session = handle.session_id, %reason, "agent session closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type Tx = mpsc::Sender<Result<pb::MasterMessage, Status>>;

/// Sends the session's snapshot: to an agent that takes hosts lines in
/// parts, the snapshot without them and then one `HostsChunk` per part of
/// the shared table, each made as it is sent; to one that does not, all
/// in one message.
async fn send_snapshot(
    cluster: &Cluster,
    handle: &SessionHandle,
    tx: &Tx,
) -> Result<SessionSnapshot, &'static str> {
    let Some((sent, snapshot, parts)) = cluster.session_snapshot(handle) else {
        return Err("node vanished");
    };
    let mut head = pb::Snapshot::from(&snapshot);
    let gone = |_| "agent went away";
    if !handle.hosts_in_parts {
        head.hosts = parts.iter().flat_map(|p| p.iter().cloned()).collect();
        let msg = pb::MasterMessage {
            msg: Some(Out::Snapshot(head)),
        };
        tx.send(Ok(msg)).await.map_err(gone)?;
        return Ok(sent);
    }
    head.hosts_more = !parts.is_empty();
    let msg = pb::MasterMessage {
        msg: Some(Out::Snapshot(head)),
    };
    tx.send(Ok(msg)).await.map_err(gone)?;
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        let chunk = pb::HostsChunk {
            generation: sent.generation,
            hosts: Vec::new(),
            more: i < last,
            // The same bytes for every session (see `cluster_proto::codec`).
            hosts_encoded: part.encoded(),
        };
        let msg = pb::MasterMessage {
            msg: Some(Out::HostsChunk(chunk)),
        };
        tx.send(Ok(msg)).await.map_err(gone)?;
    }
    Ok(sent)
}

/// The delta since `sent`, if anything moved; `Err` when the node is gone.
fn delta(
    cluster: &Cluster,
    handle: &SessionHandle,
    sent: &SessionSnapshot,
) -> Result<Option<(SessionSnapshot, pb::MasterMessage)>, ()> {
    Ok(cluster.session_delta(handle, sent)?.map(|(next, delta)| {
        let msg = pb::MasterMessage {
            msg: Some(Out::Delta((&delta).into())),
        };
        (next, msg)
    }))
}

/// Sends a snapshot or delta: in parts of a few KiB to an agent that
/// takes hosts lines so (see `wire::in_parts`), whole to one that does not.
async fn send_state(tx: &Tx, handle: &SessionHandle, msg: pb::MasterMessage) -> Result<(), ()> {
    let parts = if handle.hosts_in_parts {
        cluster_model::wire::in_parts(msg)
    } else {
        vec![msg]
    };
    for part in parts {
        tx.send(Ok(part)).await.map_err(|_| ())?;
    }
    Ok(())
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
    let mut sent = match send_snapshot(cluster, handle, &tx).await {
        Ok(sent) => sent,
        Err(why) => return why,
    };
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
                        if send_state(&tx, handle, msg).await.is_err() {
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
                        if send_state(&tx, handle, msg).await.is_err() {
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
                        if send_state(&tx, handle, msg).await.is_err() {
                            return "agent went away";
                        }
                        sent = next;
                    }
                }
            }
            cmd = handle.commands.recv() => {
                let Some(cmd) = cmd else { return "replaced by a newer session" };
                if tx.send(Ok(pb::MasterMessage::from(&cmd))).await.is_err() {
                    return "agent went away";
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(pb::AgentMessage { msg: Some(m) })) => match m {
                    In::Usage(u) => cluster.report_usage(handle, u.into()),
                    In::Ack(a) => match Ack::try_from(a) {
                        Ok(ack) => cluster.acknowledge(handle, ack).await,
                        Err(e) => {
                            let _ = tx.send(Err(invalid(e))).await;
                            return "protocol error: bad ack";
                        }
                    },
                    In::Checks(c) => {
                        let checks = c.checks.into_iter().map(Into::into).collect();
                        cluster.report_checks(handle, checks).await
                    }
                    In::Facts(f) => match cluster_model::Facts::try_from(f) {
                        // Committed before the next message is read: what
                        // the agent sends after it sees these facts.
                        Ok(facts) => cluster.report_facts(handle, facts).await,
                        Err(e) => {
                            let _ = tx.send(Err(invalid(e))).await;
                            return "protocol error: bad facts";
                        }
                    },
                    In::Lb(r) => match LbReport::try_from(r) {
                        Ok(report) => cluster.report_lb(handle, report),
                        Err(e) => {
                            let _ = tx.send(Err(invalid(e))).await;
                            return "protocol error: bad balancer report";
                        }
                    },
                    In::Resync(_) => match send_snapshot(cluster, handle, &tx).await {
                        Ok(next) => sent = next,
                        Err(why) => return why,
                    },
                    In::Output(o) => {
                        let o = JobOutput::from(o);
                        let report = jobs::Report::Output { stream: o.stream, data: o.data };
                        jobs.report(&o.job_id, &handle.node_id, report).await;
                    }
                    In::Done(d) => {
                        let done = JobDone::from(d);
                        let job_id = done.job_id.clone();
                        jobs.report(&job_id, &handle.node_id, jobs::Report::Done(done)).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::HostsNaming;
    use crate::pki::Ca;
    use crate::state::plan::testing::hello;
    use crate::store::mem::MemStore;
    use prost::Message;

    /// A snapshot of 150 lines to an agent that takes them in parts: as the
    /// session writes them (each part encoded once, shared), the agent puts
    /// back together exactly the cluster's lines.
    #[tokio::test]
    async fn a_snapshot_in_parts_reaches_the_agent_whole() {
        let (ca, _) = Ca::generate("test", std::time::SystemTime::now()).unwrap();
        let store = Arc::new(MemStore::default());
        let c = Cluster::open(
            store,
            Arc::new(ca),
            Duration::from_secs(15),
            HostsNaming::default(),
        )
        .await
        .unwrap();
        for i in 0..150 {
            let h = Hello {
                addresses: vec![format!("10.0.{}.{}", i / 200, i % 200 + 1)],
                ..hello(&format!("n{i}"))
            };
            c.connect(h).await.unwrap();
        }
        let agent = Hello {
            wants_hosts: true,
            takes_hosts_in_parts: true,
            addresses: vec!["10.1.0.1".into()],
            ..hello("agent")
        };
        let agent = c.connect(agent).await.unwrap();
        // Twice: the second session sends the parts encoded for the first.
        for _ in 0..2 {
            let (tx, mut rx) = mpsc::channel(1024);
            send_snapshot(&c, &agent, &tx).await.unwrap();
            drop(tx);
            let mut assembly = cluster_model::wire::HostsAssembly::default();
            let (mut chunks, mut whole) = (0, None);
            while let Some(Ok(msg)) = rx.recv().await {
                let mut wire = Vec::new();
                pb::codec::encode(&msg, &mut wire);
                let read = pb::MasterMessage::decode(wire.as_slice()).unwrap();
                chunks += usize::from(matches!(read.msg, Some(Out::HostsChunk(_))));
                if let Some(m) = assembly.take(read).unwrap() {
                    whole = Some(m);
                }
            }
            assert_eq!(chunks, 3, "151 lines in parts of 64");
            let Some(pb::MasterMessage {
                msg: Some(Out::Snapshot(s)),
            }) = whole
            else {
                panic!("no whole snapshot");
            };
            let mut got: Vec<String> = s.hosts.iter().map(|h| format!("{h:?}")).collect();
            let (_, lines) = c.hosts();
            let mut want: Vec<String> = lines
                .iter()
                .map(|h| format!("{:?}", pb::HostEntry::from(h)))
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got.len(), 151);
            assert_eq!(got, want);
        }
    }
}
