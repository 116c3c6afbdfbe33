//! `Masters`: the calls between the masters of one cluster — the server
//! side ([`MastersSvc`]) and the client side ([`GrpcPeers`], how this
//! master reaches the others). Callers prove they are masters with a
//! client certificate the cluster's CA issued each master at its start.

use super::auth;
use crate::cluster::{Cluster, PeerStatus, Peers};
use crate::jobs::{Jobs, Report};
use crate::store::{Change, Revision, StoreError};
use cluster_model::NodeId;
use cluster_model::job::{JobCommand, JobDone, JobOutput};
use cluster_proto as pb;
use pb::CommitRefusal as Refusal;
use pb::relay_report::Report as Out;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Response, Status};

/// A forwarded commit's patience: the leader's store commit is bounded
/// by less than this.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer may take to connect, and to say its status.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

pub struct MastersSvc {
    pub cluster: Arc<Cluster>,
    pub jobs: Arc<Jobs>,
}

type RelayStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::RelayReport, Status>> + Send>>;

#[tonic::async_trait]
impl pb::masters_server::Masters for MastersSvc {
    type RelayStream = RelayStream;

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        auth::master(&self.cluster, &request).await?;
        let change: Change = serde_json::from_str(&request.get_ref().change_json)
            .map_err(|e| Status::invalid_argument(format!("the change is not readable: {e}")))?;
        let refused = |refusal: Refusal, e: &StoreError| pb::CommitResponse {
            refusal: refusal as i32,
            message: e.to_string(),
            ..Default::default()
        };
        let resp = match self.cluster.commit_for_peer(change).await {
            Ok(revision) => pb::CommitResponse {
                revision,
                ..Default::default()
            },
            Err(e @ StoreError::Outdated { now, .. }) => pb::CommitResponse {
                revision: now,
                ..refused(Refusal::Conflict, &e)
            },
            Err(e @ StoreError::NotLeader { .. }) => pb::CommitResponse {
                leader: match &e {
                    StoreError::NotLeader { leader } => leader.clone().unwrap_or_default(),
                    _ => String::new(),
                },
                ..refused(Refusal::NotLeader, &e)
            },
            Err(e @ StoreError::Fenced) => refused(Refusal::NotLeader, &e),
            Err(e @ StoreError::TooLarge { .. }) => refused(Refusal::TooLarge, &e),
            // The standby says "the store cannot be reached" itself.
            Err(StoreError::Unavailable(inner)) => pb::CommitResponse {
                refusal: Refusal::Unavailable as i32,
                message: inner.to_string(),
                ..Default::default()
            },
            Err(e) => refused(Refusal::Unavailable, &e),
        };
        Ok(Response::new(resp))
    }

    async fn status(
        &self,
        request: Request<pb::MasterStatusRequest>,
    ) -> Result<Response<pb::MasterStatusResponse>, Status> {
        auth::master(&self.cluster, &request).await?;
        let s = self.cluster.own_status();
        Ok(Response::new(pb::MasterStatusResponse {
            name: s.name,
            revision: s.revision,
            agents: s.agents,
        }))
    }

    async fn relay(
        &self,
        request: Request<tonic::Streaming<pb::RelayCommand>>,
    ) -> Result<Response<RelayStream>, Status> {
        let from = auth::master(&self.cluster, &request).await?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(relay_here(
            self.cluster.clone(),
            self.jobs.clone(),
            from,
            inbound,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Carries out another master's job commands on this master's sessions
/// and sends back what the agents report, until that master hangs up —
/// then its jobs here are cancelled (their results have nowhere to go).
async fn relay_here(
    cluster: Arc<Cluster>,
    jobs: Arc<Jobs>,
    from: String,
    mut inbound: tonic::Streaming<pb::RelayCommand>,
    tx: mpsc::Sender<Result<pb::RelayReport, Status>>,
) {
    // Each relayed job: its nodes here, and the task forwarding reports.
    let mut relayed: HashMap<String, (HashSet<String>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    while let Ok(Some(msg)) = inbound.message().await {
        let Some(Ok(cmd)) = msg.command.map(JobCommand::try_from) else {
            continue;
        };
        let node = msg.node_id;
        let job_id = match &cmd {
            JobCommand::Run { job_id, .. } | JobCommand::Cancel { job_id } => job_id.clone(),
        };
        if let JobCommand::Run { .. } = cmd {
            let (nodes, _) = relayed.entry(job_id.clone()).or_insert_with(|| {
                let mut reports = jobs.relay(&job_id);
                let (tx, job) = (tx.clone(), job_id.clone());
                let forward = tokio::spawn(async move {
                    while let Some((node_id, report)) = reports.recv().await {
                        let report = match report {
                            Report::Output { stream, data } => Out::Output(
                                (&JobOutput {
                                    job_id: job.clone(),
                                    stream,
                                    data,
                                })
                                    .into(),
                            ),
                            Report::Done(done) => Out::Done((&done).into()),
                            Report::Gone => Out::GoneJobId(job.clone()),
                        };
                        let msg = pb::RelayReport {
                            node_id,
                            report: Some(report),
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                });
                (HashSet::new(), forward)
            });
            nodes.insert(node.clone());
        }
        if !cluster.command_here(&node, cmd).await {
            let msg = pb::RelayReport {
                node_id: node,
                report: Some(Out::GoneJobId(job_id)),
            };
            if tx.send(Ok(msg)).await.is_err() {
                break;
            }
        }
    }
    if !relayed.is_empty() {
        tracing::info!(master = %from, jobs = relayed.len(), "a master's relay ended; cancelling its jobs here");
    }
    for (job_id, (nodes, forward)) in relayed {
        jobs.forget(&job_id);
        forward.abort();
        for node in nodes {
            let cancel = JobCommand::Cancel {
                job_id: job_id.clone(),
            };
            cluster.command_here(&node, cancel).await;
        }
    }
}

/// One relay stream to another master: commands go in on `tx`; `carried`
/// is every (job, node) a run was relayed for and not yet answered.
struct Relay {
    tx: mpsc::Sender<pb::RelayCommand>,
    carried: Arc<Mutex<HashSet<(String, String)>>>,
}

/// This master's way to the others: one channel per address, made on
/// first use, authenticated with this master's own certificate.
pub struct GrpcPeers {
    tls: ClientTlsConfig,
    channels: Mutex<HashMap<String, Channel>>,
    relays: Arc<Mutex<HashMap<String, Relay>>>,
    /// Where relayed jobs' reports go (set once the registry exists).
    jobs: std::sync::OnceLock<Arc<Jobs>>,
}

impl GrpcPeers {
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> GrpcPeers {
        GrpcPeers {
            tls: ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .identity(Identity::from_pem(cert_pem, key_pem)),
            channels: Mutex::new(HashMap::new()),
            relays: Default::default(),
            jobs: std::sync::OnceLock::new(),
        }
    }

    /// Relayed jobs' reports go to `jobs`.
    pub fn set_jobs(&self, jobs: Arc<Jobs>) {
        let _ = self.jobs.set(jobs);
    }

    /// The relay stream to `address`, opened when there is none.
    async fn relay(
        &self,
        address: &str,
    ) -> Option<(
        mpsc::Sender<pb::RelayCommand>,
        Arc<Mutex<HashSet<(String, String)>>>,
    )> {
        if let Some(r) = self
            .relays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(address)
            && !r.tx.is_closed()
        {
            return Some((r.tx.clone(), r.carried.clone()));
        }
        let jobs = self.jobs.get()?.clone();
        let mut client = self.client(address).ok()?;
        let (tx, rx) = mpsc::channel::<pb::RelayCommand>(1024);
        let mut inbound = match client.relay(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                tracing::warn!(master = %address, error = %e, "cannot relay jobs to a master");
                return None;
            }
        };
        let carried: Arc<Mutex<HashSet<(String, String)>>> = Default::default();
        self.relays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                address.to_owned(),
                Relay {
                    tx: tx.clone(),
                    carried: carried.clone(),
                },
            );
        let (relays, address, carried_in) =
            (self.relays.clone(), address.to_owned(), carried.clone());
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                let (job_id, report) = match r.report {
                    Some(Out::Output(o)) => {
                        let o = JobOutput::from(o);
                        (
                            o.job_id,
                            Report::Output {
                                stream: o.stream,
                                data: o.data,
                            },
                        )
                    }
                    Some(Out::Done(d)) => {
                        let d = JobDone::from(d);
                        (d.job_id.clone(), Report::Done(d))
                    }
                    Some(Out::GoneJobId(job_id)) => (job_id, Report::Gone),
                    None => continue,
                };
                if !matches!(report, Report::Output { .. }) {
                    carried_in
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(job_id.clone(), r.node_id.clone()));
                }
                jobs.report(&job_id, &r.node_id, report).await;
            }
            // The stream ended: every job it carried is lost on its nodes.
            relays
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&address);
            let lost: Vec<(String, String)> = carried_in
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for (job_id, node) in lost {
                jobs.report(&job_id, &node, Report::Gone).await;
            }
        });
        Some((tx, carried))
    }

    /// The channel to `address` (connected lazily; tonic reconnects it).
    pub fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let host = host_of(address);
        let channel = Endpoint::from_shared(address.to_owned())
            .and_then(|e| e.tls_config(self.tls.clone().domain_name(host)))
            .map_err(|e| format!("bad master address {address:?}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    fn client(&self, address: &str) -> Result<pb::masters_client::MastersClient<Channel>, String> {
        Ok(pb::masters_client::MastersClient::new(
            self.channel(address)?,
        ))
    }
}

/// The host part of `https://host:port`, for the server name to verify.
fn host_of(address: &str) -> String {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_owned(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned(),
    }
}

/// Whether a failed call surely never reached the peer (it could not be
/// connected to), so trying again cannot make a change twice.
fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
            )
        {
            return true;
        }
        if e.to_string().contains("connect error") {
            return true;
        }
        source = e.source();
    }
    false
}

#[tonic::async_trait]
impl Peers for GrpcPeers {
    async fn commit(&self, leader: &str, change: &Change) -> Result<Revision, StoreError> {
        let mut client = self
            .client(leader)
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        let json = serde_json::to_string(change).expect("changes serialise");
        let mut request = Request::new(pb::CommitRequest { change_json: json });
        request.set_timeout(COMMIT_TIMEOUT);
        let resp = match client.commit(request).await {
            Ok(r) => r.into_inner(),
            // Not sent: as if no one led; the caller waits for the role to
            // move and tries again.
            Err(status) if never_sent(&status) => {
                tracing::debug!(%leader, error = %status, "the leader cannot be reached");
                return Err(StoreError::NotLeader { leader: None });
            }
            Err(status) => {
                return Err(StoreError::Unavailable(
                    format!(
                        "the leader {leader} did not answer ({}); the change may or may not have been made",
                        status.message()
                    )
                    .into(),
                ));
            }
        };
        match Refusal::try_from(resp.refusal).unwrap_or(Refusal::Unavailable) {
            Refusal::None => Ok(resp.revision),
            Refusal::Conflict => Err(StoreError::Outdated {
                planned: change.read_revision,
                now: resp.revision,
            }),
            Refusal::NotLeader => Err(StoreError::NotLeader {
                leader: Some(resp.leader).filter(|l| !l.is_empty()),
            }),
            Refusal::TooLarge => Err(StoreError::Refused(resp.message)),
            Refusal::Unavailable => Err(StoreError::Unavailable(resp.message.into())),
        }
    }

    async fn command(&self, address: &str, node: &NodeId, cmd: JobCommand) -> bool {
        let Some((tx, carried)) = self.relay(address).await else {
            return false;
        };
        if let JobCommand::Run { job_id, .. } = &cmd {
            carried
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((job_id.clone(), node.to_string()));
        }
        let msg = pb::RelayCommand {
            node_id: node.to_string(),
            command: Some(pb::MasterMessage::from(&cmd)),
        };
        tx.send(msg).await.is_ok()
    }

    async fn status(&self, address: &str) -> Result<PeerStatus, String> {
        let mut client = self.client(address)?;
        let mut request = Request::new(pb::MasterStatusRequest {});
        request.set_timeout(STATUS_TIMEOUT);
        let s = client
            .status(request)
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        Ok(PeerStatus {
            name: s.name,
            revision: s.revision,
            agents: s.agents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_address() {
        assert_eq!(host_of("https://m1.example:7440"), "m1.example");
        assert_eq!(host_of("https://127.0.0.1:7440/"), "127.0.0.1");
        assert_eq!(host_of("https://[::1]:7440"), "::1");
    }
}
