//! Conversions between the `cluster_proto` wire types and this crate's
//! own, written once for every side: `From<&T> for pb::X` to send,
//! `TryFrom<pb::X> for T` to receive, failing with a [`WireError`] that
//! names the field ("missing field `snapshot.node`"). Nothing else in the
//! project builds or reads a wire type field by field.
//!
//! - `node` — nodes, their specs, health, usage, checks, balancer reports.
//! - `levels` — a node's alert levels (`NodeInfo.levels`).
//! - `session` — an agent's session: hello, snapshot, delta, ack, jobs.
//! - `control` — clusterctl's calls: events, jobs, keys, upstreams and
//!   routes.
//! - `target` — what a request targets: names, or an expression and its
//!   delimiter.
//! - `rotation` — drains: results, pending reasons, events.

mod control;
mod levels;
mod node;
mod parts;
mod rotation;
mod session;
mod target;

pub use control::{
    job_to_pb, key_rows, role_of, route_of, route_to_pb, run_event_of, upstream_of, upstream_to_pb,
};
pub use parts::{HOSTS_CHUNK_LINES, HostsAssembly, in_parts};
pub use session::resolved_to_pb;
pub use target::target_of;

use crate::ids::{InvalidName, NodeId, NodeName};

/// A message that does not say what it must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl WireError {
    pub(crate) fn invalid(field: &'static str, reason: impl std::fmt::Display) -> WireError {
        WireError::Invalid {
            field,
            reason: reason.to_string(),
        }
    }
}

pub(crate) fn required<T>(v: Option<T>, field: &'static str) -> Result<T, WireError> {
    v.ok_or(WireError::Missing(field))
}

pub(crate) fn node_id(s: String, field: &'static str) -> Result<NodeId, WireError> {
    NodeId::new(s).map_err(|e: InvalidName| WireError::invalid(field, e))
}

pub(crate) fn node_name(s: String, field: &'static str) -> Result<NodeName, WireError> {
    NodeName::new(s).map_err(|e: InvalidName| WireError::invalid(field, e))
}

/// A proto enum field read as its generated type; 0 (unspecified) and
/// unknown numbers are errors naming the field.
pub(crate) fn enum_of<E>(v: i32, field: &'static str) -> Result<E, WireError>
where
    E: TryFrom<i32> + Default + PartialEq,
{
    match E::try_from(v) {
        Ok(e) if e != E::default() => Ok(e),
        Ok(_) => Err(WireError::Missing(field)),
        Err(_) => Err(WireError::invalid(field, format!("unknown value {v}"))),
    }
}
