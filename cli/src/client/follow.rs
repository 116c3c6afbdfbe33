//! The followed reads: `FollowEvents` and `WatchNodes`, server streams
//! that the master pushes to. When a stream breaks — its master stopped,
//! crashed, or lost its host — the call is opened again, on the same
//! master or the next, after the usual backoff, for as long as it takes:
//! a follow is meant to outlive a master's restart. An event follow
//! resumes after the last sequence number its stream said it got to
//! (`last_seq`), so nothing is lost and nothing comes twice; a node watch
//! starts again from a snapshot, which the caller compares with what it
//! had.

use super::failover::{Call, Control, Outage, went_away};
use super::{Client, EventView, NodeView, Targeting, target_pb, unreadable};
use crate::Failure;
use cluster_model::watch::Watched;
use cluster_model::{Event, NodeStatus};
use cluster_proto as pb;
use std::cell::Cell;
use std::time::Duration;

/// Events the stream brought, oldest first, and how far it got.
#[derive(Debug, Clone)]
pub struct EventsBatch {
    pub events: Vec<EventView>,
    pub last_seq: u64,
}

/// A node as a watch reports it: what is shown, and the part compared.
#[derive(Debug, Clone)]
pub struct WatchedNode {
    pub view: NodeView,
    pub watched: Watched,
}

/// One message of a node watch.
#[derive(Debug, Clone)]
pub struct NodesChange {
    /// Every node selected (the first message after each connection), or
    /// only those that changed.
    pub snapshot: bool,
    pub nodes: Vec<WatchedNode>,
    /// Ids of nodes removed or no longer selected.
    pub gone: Vec<String>,
}

/// What a followed read says about its connection, for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The stream broke: `why`; reconnecting.
    Lost { master: String, why: String },
    /// A stream is open again, on `master`.
    Resumed { master: String },
}

impl Client {
    /// The event log from the newest `limit` events, then as it grows;
    /// `on` is given each batch, `notice` each break and resumption.
    /// Returns only with a failure: the master's refusal, or `on`'s.
    pub async fn follow_events(
        &mut self,
        node: Option<&str>,
        limit: u32,
        mut on: impl FnMut(EventsBatch) -> Result<(), Failure>,
        notice: impl FnMut(Connection),
    ) -> Result<(), Failure> {
        let after: Cell<Option<u64>> = Cell::new(None);
        let node = node.unwrap_or_default().to_owned();
        self.followed(
            || pb::FollowEventsRequest {
                after_seq: after.get(),
                limit,
                node: node.clone(),
            },
            |mut c, r| async move { c.follow_events(r).await },
            |m: pb::EventsFollowed| {
                let seen = after.get();
                let events = m
                    .events
                    .into_iter()
                    .map(Event::try_from)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unreadable)?
                    .into_iter()
                    // Never twice, whatever a master sends.
                    .filter(|e| seen.is_none_or(|s| e.seq > s))
                    .map(EventView::from)
                    .collect();
                after.set(Some(m.last_seq.max(seen.unwrap_or(0))));
                on(EventsBatch {
                    events,
                    last_seq: m.last_seq,
                })
            },
            notice,
        )
        .await
    }

    /// The nodes `target` selects, then each change of them.
    pub async fn watch_nodes(
        &mut self,
        target: &Targeting,
        mut on: impl FnMut(NodesChange) -> Result<(), Failure>,
        notice: impl FnMut(Connection),
    ) -> Result<(), Failure> {
        let target = target_pb(target);
        self.followed(
            || pb::ListNodesRequest {
                names: Vec::new(),
                target: Some(target.clone()),
            },
            |mut c, r| async move { c.watch_nodes(r).await },
            |m: pb::NodesChanged| {
                let nodes = m
                    .nodes
                    .into_iter()
                    .map(|n| {
                        NodeStatus::try_from(n).map(|s| WatchedNode {
                            watched: Watched::of(&s),
                            view: NodeView::from(s),
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err(unreadable)?;
                on(NodesChange {
                    snapshot: m.snapshot,
                    nodes,
                    gone: m.gone,
                })
            },
            notice,
        )
        .await
    }

    /// A server stream opened with `request()` by `open`, each message
    /// given to `on`, opened again (a new `request()`) whenever it breaks.
    async fn followed<Req, M, Fut>(
        &mut self,
        request: impl Fn() -> Req,
        open: impl Fn(Control, tonic::Request<Req>) -> Fut,
        mut on: impl FnMut(M) -> Result<(), Failure>,
        mut notice: impl FnMut(Connection),
    ) -> Result<(), Failure>
    where
        Fut: Future<Output = Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>>,
    {
        // Without end: the backoff grows to its cap and stays there.
        self.patience.give_up = Duration::MAX;
        let mut outage: Option<Outage> = None;
        loop {
            let status = match open(self.control.clone(), tonic::Request::new(request())).await {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(m)) => {
                                if outage.take().is_some() {
                                    notice(Connection::Resumed {
                                        master: self.master().to_owned(),
                                    });
                                }
                                on(m)?;
                            }
                            Ok(None) => {
                                break tonic::Status::unavailable("the master ended the stream");
                            }
                            Err(s) if went_away(&s) => break s,
                            Err(s) => return Err(Failure::from_status(s)),
                        }
                    }
                }
                Err(s) if went_away(&s) => s,
                Err(s) => return Err(Failure::from_status(s)),
            };
            if outage.is_none() {
                notice(Connection::Lost {
                    master: self.master().to_owned(),
                    why: status.message().to_owned(),
                });
            }
            let outage = outage.get_or_insert_with(|| Outage::new(Call::Read));
            self.failover(outage, &status).await?;
        }
    }
}

impl Client {
    /// How long each call keeps trying while its masters are away.
    pub fn set_patience(&mut self, patience: super::Patience) {
        self.patience = patience;
    }
}
