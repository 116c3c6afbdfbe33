//! The master's gRPC edge: the only modules that name `cluster_proto` types.
//!
//! - `agent` — `AgentService`: one long-lived session per agent.
//! - `auth` — who may call what, from the verified client certificate.
//! - `control` — `Control`: what clusterctl calls.
//! - `enroll` — `Enrollment`: agents asking for their certificate.
//! - `convert` — wire types ⇄ the master's own types, with precise errors.
//!
//! See `LIFECYCLE.md` beside this file for the life of an agent session.

pub mod agent;
pub mod auth;
pub mod control;
pub mod convert;
pub mod enroll;

use crate::cluster::ClusterError;
use tonic::Status;

/// How cluster errors reach a client: the message is the error's own text.
pub fn status_of(e: ClusterError) -> Status {
    match e {
        ClusterError::NoNames | ClusterError::EmptyName { .. } | ClusterError::Invalid(_) => {
            Status::invalid_argument(e.to_string())
        }
        ClusterError::UnknownNodes(_) | ClusterError::UnknownKeys(_) | ClusterError::NoMatch(_) => {
            Status::not_found(e.to_string())
        }
        ClusterError::Unauthenticated(_) => Status::unauthenticated(e.to_string()),
        ClusterError::NameTaken { .. } => Status::already_exists(e.to_string()),
        ClusterError::Store(_) => Status::unavailable(e.to_string()),
    }
}
