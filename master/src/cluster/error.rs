//! Why a cluster operation was refused or failed: one enum for the layer,
//! its variants carrying what the message needs.

use crate::store::StoreError;
use cluster_model::InvalidName;
use cluster_model::labels::InvalidLabelKey;
use cluster_model::targets::TargetError;

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no node names given")]
    NoNames,
    #[error("empty node name at position {position}")]
    EmptyName { position: usize },
    #[error("unknown node{}: {}", plural(.0.len()), .0.join(", "))]
    UnknownNodes(Vec<String>),
    #[error("name {name:?} already belongs to node {owner:?}")]
    NameTaken { name: String, owner: String },
    #[error("no nodes matched {0}")]
    NoMatch(String),
    #[error("unknown key{}: {}", plural(.0.len()), .0.join(", "))]
    UnknownKeys(Vec<String>),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{what} {name:?} {source}")]
    InvalidName {
        what: &'static str,
        name: String,
        source: InvalidName,
    },
    #[error(transparent)]
    Label(#[from] InvalidLabelKey),
    #[error("no labels given (KEY=VALUE, or KEY- to remove)")]
    NoLabels,
    /// Removing (or changing) something others depend on.
    #[error("{what} is still used by {}; {fix}", .users.join(", "))]
    InUse {
        what: String,
        users: Vec<String>,
        fix: &'static str,
    },
    /// Upstreams and routes that do not hold together, every problem.
    #[error("{}", .problems.join("\n"))]
    Balancing { problems: Vec<String> },
    /// A cluster file the master refuses: `(place, problem)` each.
    #[error("{}", .problems.iter().map(|(place, p)| format!("{place}: {p}")).collect::<Vec<_>>().join("\n"))]
    ClusterFile { problems: Vec<(String, String)> },
    #[error("cannot issue the certificate: {0}")]
    Pki(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A node's certificate used from a second place while its session
    /// from the first is alive.
    #[error(
        "node {node} already has a live session from {held_from}; refused the one from {from} (a copy of its key is in use elsewhere, or it moved: it may connect from there once the old session has been silent for {patience:?})"
    )]
    SessionHeld {
        node: String,
        held_from: std::net::IpAddr,
        from: std::net::IpAddr,
        patience: std::time::Duration,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
