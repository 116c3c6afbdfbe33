//! The master's gRPC edge: the only modules that name `cluster_proto` types.
//!
//! - `agent` — `AgentService`: one long-lived session per agent.
//! - `auth` — who may call what, from the verified client certificate.
//! - `control` — `Control`: what clusterctl calls (`control_lb` and
//!   `control_rollout` hold the load-balancing, rollout and cluster-file
//!   calls).
//! - `enroll` — `Enrollment`: agents asking for their certificate.
//! - `convert` — refusals into statuses, requests into commands (the wire
//!   types themselves convert in `cluster_model::wire`).
//! - `convert_lb` — the load-balancing replies.
//!
//! See `LIFECYCLE.md` beside this file for the life of an agent session.

pub mod agent;
pub mod auth;
pub mod control;
mod control_lb;
mod control_rollout;
pub mod convert;
mod convert_lb;
pub mod enroll;

use crate::cluster::Cluster;
use crate::jobs::Jobs;
use cluster_proto as pb;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::{Router, Server};

/// Largest message accepted from a peer (grains of a big host fit easily).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The master's three services on `server`; each agent session's loop is
/// spawned on `sessions`.
pub fn services(
    mut server: Server,
    cluster: Arc<Cluster>,
    jobs: Arc<Jobs>,
    rollouts: Arc<crate::rollout::Rollouts>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
) -> Router {
    let agent = pb::agent_service_server::AgentServiceServer::new(agent::AgentSvc {
        cluster: cluster.clone(),
        jobs: jobs.clone(),
        shutdown,
        sessions,
    })
    .max_decoding_message_size(MAX_MESSAGE);
    let control = pb::control_server::ControlServer::new(control::ControlSvc {
        cluster: cluster.clone(),
        jobs,
        rollouts,
    })
    .max_decoding_message_size(MAX_MESSAGE);
    // Enrollment is open to callers without a certificate: small messages only.
    let enroll = pb::enrollment_server::EnrollmentServer::new(enroll::EnrollSvc { cluster })
        .max_decoding_message_size(64 * 1024);
    server
        .add_service(agent)
        .add_service(control)
        .add_service(enroll)
}
