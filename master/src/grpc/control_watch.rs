//! `Control`'s followed reads: `FollowEvents` (`clusterctl events
//! --follow`) and `WatchNodes` (`clusterctl nodes --watch`), each a server
//! stream.
//!
//! Both wait on [`Cluster::changes`], the signal every waiter re-checks on:
//! it moves when a change is applied — committed here, or followed from
//! the store when another master made it — and when sessions report. A
//! follow reads the event log again only when the state's next sequence
//! number moved (not at every usage report), and a node watch sends only
//! the nodes whose watched part moved ([`cluster_model::watch`]). Both end
//! with `Unavailable` when the master stops, so clients reconnect — to
//! this master once it is back, or to another — and resume: events after
//! the last `last_seq` they were sent, nodes from a fresh snapshot.

use super::auth::{Permission, authorize, revocable};
use super::control::ControlSvc;
use super::convert::{invalid, status_of};
use crate::cluster::Cluster;
use cluster_model::{TargetSpec, watch, wire};
use cluster_proto as pb;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub(super) type FollowEventsStream =
    Pin<Box<dyn Stream<Item = Result<pb::EventsFollowed, Status>> + Send>>;
pub(super) type WatchNodesStream =
    Pin<Box<dyn Stream<Item = Result<pb::NodesChanged, Status>> + Send>>;

/// Messages queued per stream: a client that does not read holds no more
/// of the master's memory than this.
const QUEUE: usize = 16;

fn stopping() -> Status {
    Status::unavailable("the master is stopping: connect again (to it or another master)")
}

impl ControlSvc {
    pub(super) async fn handle_follow_events(
        &self,
        request: Request<pb::FollowEventsRequest>,
    ) -> Result<Response<FollowEventsStream>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Read, "read events").await?;
        let req = request.into_inner();
        // The node once, by id: its whole history, whatever it is renamed to.
        let node = match req.node.trim() {
            "" => None,
            n => Some(
                self.cluster
                    .read(|st| st.resolve(&[n.to_owned()]))
                    .map_err(status_of)?
                    .remove(0)
                    .to_string(),
            ),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let start = match req.after_seq {
            Some(after) => Start::After(after),
            None => Start::Newest(req.limit as usize),
        };
        tokio::spawn(follow_events(
            self.cluster.clone(),
            self.shutdown.clone(),
            start,
            node,
            tx,
        ));
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(revocable(&self.cluster, &caller, stream)))
    }

    pub(super) async fn handle_watch_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<WatchNodesStream>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Read, "list nodes").await?;
        let req = request.into_inner();
        let spec = match wire::target_of(req.target, req.names).map_err(invalid)? {
            Some(spec) => Some(self.prepared(spec).await?),
            None => None,
        };
        // A target that selects nothing valid is refused now, not mid-stream.
        self.cluster
            .nodes_matching(spec.as_ref())
            .map_err(status_of)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(watch_nodes(
            self.cluster.clone(),
            self.shutdown.clone(),
            spec,
            tx,
        ));
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(revocable(&self.cluster, &caller, stream)))
    }
}

/// Where a follow starts.
enum Start {
    /// The newest this many events that are there (0: none).
    Newest(usize),
    /// Every event with a greater sequence number.
    After(u64),
}

/// What a stream's loop does after it sent what there was.
enum Wait {
    Again,
    Stop,
}

/// Until the next change, the master's stop, or the client gone.
async fn next_change<T>(
    changes: &mut tokio::sync::watch::Receiver<u64>,
    shutdown: &CancellationToken,
    tx: &mpsc::Sender<Result<T, Status>>,
) -> Wait {
    tokio::select! {
        _ = shutdown.cancelled() => {
            let _ = tx.send(Err(stopping())).await;
            Wait::Stop
        }
        _ = tx.closed() => Wait::Stop,
        r = changes.changed() => match r {
            Ok(()) => Wait::Again,
            Err(_) => {
                let _ = tx.send(Err(stopping())).await;
                Wait::Stop
            }
        },
    }
}

async fn follow_events(
    cluster: Arc<Cluster>,
    shutdown: CancellationToken,
    start: Start,
    node: Option<String>,
    tx: mpsc::Sender<Result<pb::EventsFollowed, Status>>,
) {
    let mut changes = cluster.changes();
    // The sequence number the stream has got to, once it has read.
    let mut last: Option<u64> = match start {
        Start::After(seq) => Some(seq),
        Start::Newest(_) => None,
    };
    // The state's next sequence number when the log was last read.
    let mut read_at: Option<u64> = None;
    loop {
        changes.borrow_and_update();
        // Read before the log: every event numbered below it is stored.
        let next = cluster.read(|st| st.next_event_seq());
        if read_at != Some(next) {
            let events = match (last, &start) {
                (Some(after), _) => cluster.events(after, 0, node.as_deref()).await,
                (None, Start::Newest(0)) => Ok(Vec::new()),
                (None, Start::Newest(n)) => cluster.events(0, *n, node.as_deref()).await,
                (None, Start::After(_)) => unreachable!("set above"),
            };
            let events = match events {
                Ok(events) => events,
                Err(e) => {
                    let _ = tx.send(Err(status_of(e))).await;
                    return;
                }
            };
            let first = read_at.is_none();
            read_at = Some(next);
            let got = events
                .last()
                .map_or(0, |e| e.seq)
                .max(next.saturating_sub(1))
                .max(last.unwrap_or(0));
            let moved = last != Some(got);
            last = Some(got);
            if first || moved || !events.is_empty() {
                let message = pb::EventsFollowed {
                    events: events.iter().map(Into::into).collect(),
                    last_seq: got,
                };
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        }
        if let Wait::Stop = next_change(&mut changes, &shutdown, &tx).await {
            return;
        }
    }
}

async fn watch_nodes(
    cluster: Arc<Cluster>,
    shutdown: CancellationToken,
    spec: Option<TargetSpec>,
    tx: mpsc::Sender<Result<pb::NodesChanged, Status>>,
) {
    let mut changes = cluster.changes();
    let mut seen: Option<watch::Seen> = None;
    loop {
        changes.borrow_and_update();
        let nodes = match cluster.nodes_matching(spec.as_ref()) {
            Ok(nodes) => nodes,
            Err(e) => {
                let _ = tx.send(Err(status_of(e))).await;
                return;
            }
        };
        let snapshot = seen.is_none();
        let seen = seen.get_or_insert_with(watch::Seen::new);
        let (changed, gone) = watch::diff(seen, &nodes);
        if snapshot || !changed.is_empty() || !gone.is_empty() {
            let message = pb::NodesChanged {
                nodes: if snapshot {
                    nodes.iter().map(Into::into).collect()
                } else {
                    changed.iter().map(|&i| (&nodes[i]).into()).collect()
                },
                snapshot,
                gone,
                generation: cluster.generation(),
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        }
        if let Wait::Stop = next_change(&mut changes, &shutdown, &tx).await {
            return;
        }
    }
}
