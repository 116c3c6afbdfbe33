//! Drains on the wire: each node's result, why a node is not yet out of
//! rotation (or back in), and the events of one drain.

use super::node::source_of;
use super::{WireError, enum_of, node_name};
use crate::rotation::{ApplyStatus, DrainEvent, NodeResult, Pending};
use cluster_proto as pb;

impl From<ApplyStatus> for pb::ApplyStatus {
    fn from(s: ApplyStatus) -> pb::ApplyStatus {
        match s {
            ApplyStatus::Stored => pb::ApplyStatus::Stored,
            ApplyStatus::Acknowledged => pb::ApplyStatus::Acknowledged,
            ApplyStatus::TimedOut => pb::ApplyStatus::TimedOut,
            ApplyStatus::NotConnected => pb::ApplyStatus::NotConnected,
            ApplyStatus::Unchanged => pb::ApplyStatus::Unchanged,
        }
    }
}

impl From<&NodeResult> for pb::NodeResult {
    fn from(r: &NodeResult) -> pb::NodeResult {
        pb::NodeResult {
            name: r.name.to_string(),
            status: pb::ApplyStatus::from(r.status) as i32,
            connected: r.connected,
        }
    }
}

impl TryFrom<pb::NodeResult> for NodeResult {
    type Error = WireError;
    fn try_from(r: pb::NodeResult) -> Result<NodeResult, WireError> {
        let status = match enum_of::<pb::ApplyStatus>(r.status, "result.status")? {
            pb::ApplyStatus::Stored => ApplyStatus::Stored,
            pb::ApplyStatus::Acknowledged => ApplyStatus::Acknowledged,
            pb::ApplyStatus::TimedOut => ApplyStatus::TimedOut,
            pb::ApplyStatus::NotConnected => ApplyStatus::NotConnected,
            pb::ApplyStatus::Unchanged | pb::ApplyStatus::Unspecified => ApplyStatus::Unchanged,
        };
        Ok(NodeResult {
            name: node_name(r.name, "result.name")?,
            status,
            connected: r.connected,
        })
    }
}

impl From<&Pending> for pb::Pending {
    fn from(p: &Pending) -> pb::Pending {
        use pb::pending::Reason;
        let s = |v: &crate::ids::NodeName| v.to_string();
        let reason = match p {
            Pending::NotApplied { node } => Reason::NotApplied(pb::NotApplied { node: s(node) }),
            Pending::ProxyBehind {
                balancer,
                applied,
                wanted,
            } => Reason::ProxyBehind(pb::ProxyBehind {
                balancer: s(balancer),
                applied: *applied,
                wanted: *wanted,
            }),
            Pending::InRotation {
                balancer,
                node,
                source,
                server,
                addr,
                status,
            } => Reason::InRotation(pb::InRotation {
                balancer: s(balancer),
                node: s(node),
                source: pb::LbSource::from(*source) as i32,
                server: server.clone(),
                addr: addr.clone(),
                status: status.clone(),
            }),
            Pending::InFlight {
                balancer,
                node,
                source,
                server,
                addr,
                count,
            } => Reason::InFlight(pb::InFlight {
                balancer: s(balancer),
                node: s(node),
                source: pb::LbSource::from(*source) as i32,
                server: server.clone(),
                addr: addr.clone(),
                count: *count,
            }),
            Pending::OutOfRotation {
                balancer,
                node,
                source,
                server,
                status,
            } => Reason::OutOfRotation(pb::OutOfRotation {
                balancer: s(balancer),
                node: s(node),
                source: pb::LbSource::from(*source) as i32,
                server: server.clone(),
                status: status.clone(),
            }),
            Pending::DrainedAgain { node } => {
                Reason::DrainedAgain(pb::DrainedAgain { node: s(node) })
            }
        };
        pb::Pending {
            reason: Some(reason),
        }
    }
}

impl TryFrom<pb::Pending> for Pending {
    type Error = WireError;
    fn try_from(p: pb::Pending) -> Result<Pending, WireError> {
        use pb::pending::Reason;
        let f = "pending";
        Ok(
            match p.reason.ok_or(WireError::Missing("pending.reason"))? {
                Reason::NotApplied(r) => Pending::NotApplied {
                    node: node_name(r.node, f)?,
                },
                Reason::ProxyBehind(r) => Pending::ProxyBehind {
                    balancer: node_name(r.balancer, f)?,
                    applied: r.applied,
                    wanted: r.wanted,
                },
                Reason::InRotation(r) => Pending::InRotation {
                    balancer: node_name(r.balancer, f)?,
                    node: node_name(r.node, f)?,
                    source: source_of(r.source, "pending.source")?,
                    server: r.server,
                    addr: r.addr,
                    status: r.status,
                },
                Reason::InFlight(r) => Pending::InFlight {
                    balancer: node_name(r.balancer, f)?,
                    node: node_name(r.node, f)?,
                    source: source_of(r.source, "pending.source")?,
                    server: r.server,
                    addr: r.addr,
                    count: r.count,
                },
                Reason::OutOfRotation(r) => Pending::OutOfRotation {
                    balancer: node_name(r.balancer, f)?,
                    node: node_name(r.node, f)?,
                    source: source_of(r.source, "pending.source")?,
                    server: r.server,
                    status: r.status,
                },
                Reason::DrainedAgain(r) => Pending::DrainedAgain {
                    node: node_name(r.node, f)?,
                },
            },
        )
    }
}

fn pendings(list: &[Pending]) -> Vec<pb::Pending> {
    list.iter().map(Into::into).collect()
}

fn pendings_of(list: Vec<pb::Pending>) -> Result<Vec<Pending>, WireError> {
    list.into_iter().map(TryInto::try_into).collect()
}

fn results(list: &[NodeResult]) -> Vec<pb::NodeResult> {
    list.iter().map(Into::into).collect()
}

fn results_of(list: Vec<pb::NodeResult>) -> Result<Vec<NodeResult>, WireError> {
    list.into_iter().map(TryInto::try_into).collect()
}

impl From<&DrainEvent> for pb::DrainEvent {
    fn from(e: &DrainEvent) -> pb::DrainEvent {
        use pb::drain_event::Event;
        let event = match e {
            DrainEvent::Stored {
                generation,
                results: r,
            } => Event::Stored(pb::DrainStored {
                generation: *generation,
                results: results(r),
            }),
            DrainEvent::Applied { node } => Event::Applied(pb::NodeApplied {
                node: node.to_string(),
            }),
            DrainEvent::Pending {
                pending,
                elapsed_ms,
            } => Event::Pending(pb::RotationPending {
                pending: pendings(pending),
                elapsed_ms: *elapsed_ms,
            }),
            DrainEvent::Done {
                complete,
                pending,
                elapsed_ms,
                results: r,
            } => Event::Done(pb::DrainDone {
                complete: *complete,
                pending: pendings(pending),
                elapsed_ms: *elapsed_ms,
                results: results(r),
            }),
        };
        pb::DrainEvent { event: Some(event) }
    }
}

impl TryFrom<pb::DrainEvent> for DrainEvent {
    type Error = WireError;
    fn try_from(e: pb::DrainEvent) -> Result<DrainEvent, WireError> {
        use pb::drain_event::Event;
        Ok(match e.event.ok_or(WireError::Missing("drain.event"))? {
            Event::Stored(s) => DrainEvent::Stored {
                generation: s.generation,
                results: results_of(s.results)?,
            },
            Event::Applied(a) => DrainEvent::Applied {
                node: node_name(a.node, "applied.node")?,
            },
            Event::Pending(p) => DrainEvent::Pending {
                pending: pendings_of(p.pending)?,
                elapsed_ms: p.elapsed_ms,
            },
            Event::Done(d) => DrainEvent::Done {
                complete: d.complete,
                pending: pendings_of(d.pending)?,
                elapsed_ms: d.elapsed_ms,
                results: results_of(d.results)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::LbSource;

    #[test]
    fn drain_events_round_trip() {
        let name = |s: &str| crate::ids::NodeName::new(s).unwrap();
        let events = [
            DrainEvent::Stored {
                generation: 3,
                results: vec![NodeResult {
                    name: name("web-1"),
                    status: ApplyStatus::Stored,
                    connected: true,
                }],
            },
            DrainEvent::Pending {
                pending: vec![
                    Pending::NotApplied {
                        node: name("web-1"),
                    },
                    Pending::InFlight {
                        balancer: name("lb"),
                        node: name("web-1"),
                        source: LbSource::Haproxy,
                        server: "web/web-1".into(),
                        addr: "127.0.0.2:80".into(),
                        count: 2,
                    },
                ],
                elapsed_ms: 4,
            },
            DrainEvent::Done {
                complete: true,
                pending: vec![],
                elapsed_ms: 9,
                results: vec![],
            },
        ];
        for e in events {
            assert_eq!(DrainEvent::try_from(pb::DrainEvent::from(&e)).unwrap(), e);
        }
    }
}
