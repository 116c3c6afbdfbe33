//! Taking nodes out of rotation and back: what a drain did to each node
//! ([`NodeResult`]), why a node is not yet really out — or back in —
//! ([`Pending`], typed, rendered by whoever shows it), and the events of
//! one `drain --wait` as they happen ([`DrainEvent`]).

use crate::ids::NodeName;
use crate::node::LbSource;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a drain or undrain is for one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyStatus {
    /// Stored; not waited for.
    Stored,
    /// The agent acknowledged; its health endpoint answers accordingly.
    Acknowledged,
    /// The agent did not acknowledge before the deadline.
    TimedOut,
    /// The agent is not connected; it applies the change when it returns.
    NotConnected,
    /// Already in the requested state; nothing changed.
    Unchanged,
}

impl ApplyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyStatus::Stored => "stored",
            ApplyStatus::Acknowledged => "acknowledged",
            ApplyStatus::TimedOut => "timed out",
            ApplyStatus::NotConnected => "not connected",
            ApplyStatus::Unchanged => "unchanged",
        }
    }

    /// Whether the node's agent has not (yet) done what was asked.
    pub fn is_failure(self) -> bool {
        matches!(self, ApplyStatus::TimedOut | ApplyStatus::NotConnected)
    }
}

impl fmt::Display for ApplyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node's part of a drain or undrain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResult {
    pub name: NodeName,
    pub status: ApplyStatus,
    /// Whether its agent is connected now.
    pub connected: bool,
}

/// One reason a node is not yet out of rotation (or back in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Pending {
    /// The node's agent has not applied the change.
    NotApplied { node: NodeName },
    /// A proxy has not applied the configuration without (or with) the
    /// node; `applied` 0: it has not reported at all.
    ProxyBehind {
        balancer: NodeName,
        applied: u64,
        wanted: u64,
    },
    /// A balancer still sends new requests to the node.
    InRotation {
        balancer: NodeName,
        node: NodeName,
        source: LbSource,
        server: String,
        addr: String,
        status: String,
    },
    /// A balancer no longer sends to the node but has requests open to it.
    InFlight {
        balancer: NodeName,
        node: NodeName,
        source: LbSource,
        server: String,
        addr: String,
        count: u64,
    },
    /// A balancer does not send to the node yet (undrain).
    OutOfRotation {
        balancer: NodeName,
        node: NodeName,
        source: LbSource,
        server: String,
        status: String,
    },
    /// Drained again while waiting for it to come back.
    DrainedAgain { node: NodeName },
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
            if s.is_empty() { default } else { s }
        }
        match self {
            Pending::NotApplied { node } => {
                write!(f, "{node}: the agent has not applied the change yet")
            }
            Pending::ProxyBehind {
                balancer,
                applied: 0,
                ..
            } => write!(f, "{balancer}: the proxy has not reported yet"),
            Pending::ProxyBehind {
                balancer,
                applied,
                wanted,
            } => write!(
                f,
                "{balancer}: the proxy is at configuration {applied} of {wanted}"
            ),
            Pending::InRotation {
                balancer,
                source: LbSource::Haproxy,
                server,
                addr,
                status,
                ..
            } => write!(
                f,
                "{balancer}: HAProxy server {server} ({addr}) is {} — still in rotation",
                or(status, "up")
            ),
            Pending::InRotation {
                balancer,
                server,
                addr,
                ..
            } => write!(
                f,
                "{balancer}: proxy backend {server} ({addr}) is up — still in rotation"
            ),
            Pending::InFlight {
                balancer,
                source: LbSource::Haproxy,
                server,
                count,
                ..
            } => write!(
                f,
                "{balancer}: HAProxy server {server} has {count} session{} open",
                if *count == 1 { "" } else { "s" }
            ),
            Pending::InFlight {
                balancer,
                node,
                addr,
                count,
                ..
            } => write!(
                f,
                "{balancer}: {count} request{} in flight to {node} ({addr})",
                if *count == 1 { "" } else { "s" }
            ),
            Pending::OutOfRotation {
                balancer,
                source,
                server,
                status,
                ..
            } => {
                let what = match source {
                    LbSource::Haproxy => "HAProxy server",
                    LbSource::Proxy => "proxy backend",
                };
                write!(f, "{balancer}: {what} {server} is {}", or(status, "out"))
            }
            Pending::DrainedAgain { node } => write!(f, "{node}: drained again"),
        }
    }
}

/// The events of one drain or undrain, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    /// First, once the change is durable.
    Stored {
        generation: u64,
        results: Vec<NodeResult>,
    },
    /// A node's agent acknowledged the change.
    Applied { node: NodeName },
    /// What is still pending, whole, each time it changes.
    Pending {
        pending: Vec<Pending>,
        elapsed_ms: u64,
    },
    /// Last, when waiting: really out (or back in), or the deadline passed.
    Done {
        complete: bool,
        pending: Vec<Pending>,
        elapsed_ms: u64,
        results: Vec<NodeResult>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    #[test]
    fn pending_reasons_read_as_sentences() {
        let cases = [
            (
                Pending::NotApplied { node: n("web-1") },
                "web-1: the agent has not applied the change yet",
            ),
            (
                Pending::ProxyBehind {
                    balancer: n("lb-1"),
                    applied: 0,
                    wanted: 7,
                },
                "lb-1: the proxy has not reported yet",
            ),
            (
                Pending::ProxyBehind {
                    balancer: n("lb-1"),
                    applied: 6,
                    wanted: 7,
                },
                "lb-1: the proxy is at configuration 6 of 7",
            ),
            (
                Pending::InRotation {
                    balancer: n("lb-1"),
                    node: n("web-1"),
                    source: LbSource::Haproxy,
                    server: "web/web-1".into(),
                    addr: "127.0.0.2:80".into(),
                    status: "UP".into(),
                },
                "lb-1: HAProxy server web/web-1 (127.0.0.2:80) is UP — still in rotation",
            ),
            (
                Pending::InFlight {
                    balancer: n("lb-1"),
                    node: n("web-1"),
                    source: LbSource::Proxy,
                    server: "app".into(),
                    addr: "127.0.0.2:80".into(),
                    count: 3,
                },
                "lb-1: 3 requests in flight to web-1 (127.0.0.2:80)",
            ),
            (
                Pending::InFlight {
                    balancer: n("lb-1"),
                    node: n("web-1"),
                    source: LbSource::Proxy,
                    server: "app".into(),
                    addr: "127.0.0.2:80".into(),
                    count: 1,
                },
                "lb-1: 1 request in flight to web-1 (127.0.0.2:80)",
            ),
            (
                Pending::InFlight {
                    balancer: n("lb-1"),
                    node: n("web-1"),
                    source: LbSource::Haproxy,
                    server: "web/web-1".into(),
                    addr: "127.0.0.2:80".into(),
                    count: 1,
                },
                "lb-1: HAProxy server web/web-1 has 1 session open",
            ),
            (
                Pending::OutOfRotation {
                    balancer: n("lb-1"),
                    node: n("web-1"),
                    source: LbSource::Haproxy,
                    server: "web/web-1".into(),
                    status: String::new(),
                },
                "lb-1: HAProxy server web/web-1 is out",
            ),
        ];
        for (p, want) in cases {
            assert_eq!(p.to_string(), want);
        }
    }
}
