//! What the master's edge converts beyond `cluster_model::wire`: refusals
//! into statuses, and requests into the master's commands.

use crate::cluster::ClusterError;
use cluster_model::TargetSpec;
use cluster_model::wire::{self, WireError};
use cluster_proto as pb;
use tonic::Status;

/// A request that does not say what it must.
pub fn invalid(e: WireError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The target a request must have: `target` when set, else `names`.
pub fn required_target(
    target: Option<pb::Target>,
    names: Vec<String>,
) -> Result<TargetSpec, Status> {
    wire::target_of(target, names)
        .map_err(invalid)?
        .ok_or_else(|| Status::invalid_argument("missing field `target` (or names)"))
}

/// How cluster errors reach a client: the message is the error's own text.
pub fn status_of(e: ClusterError) -> Status {
    match e {
        ClusterError::UnknownNodes(_) | ClusterError::UnknownKeys(_) | ClusterError::NoMatch(_) => {
            Status::not_found(e.to_string())
        }
        ClusterError::Unauthenticated(_) => Status::unauthenticated(e.to_string()),
        ClusterError::NameTaken { .. } => Status::already_exists(e.to_string()),
        ClusterError::InUse { .. } => Status::failed_precondition(e.to_string()),
        ClusterError::Store(_) => Status::unavailable(e.to_string()),
        ClusterError::Pki(_) => Status::internal(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}
