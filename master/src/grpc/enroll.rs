//! `Enrollment`: the one service open to callers without a certificate.

use crate::cluster::{Cluster, JoinOutcome};
use cluster_proto as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct EnrollSvc {
    pub cluster: Arc<Cluster>,
    /// Requests that cost a write, per source address.
    pub limits: crate::cluster::JoinLimits,
}

#[tonic::async_trait]
impl pb::enrollment_server::Enrollment for EnrollSvc {
    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let source = request
            .extensions()
            .get::<crate::tls::PeerInfo>()
            .map(|p| p.addr.ip());
        let req = request.into_inner();
        let token = (!req.token.is_empty()).then_some(req.token.as_str());
        let outcome = self
            .cluster
            .join(&req.node_id, &req.csr_pem, token, source, &self.limits)
            .await
            .map_err(super::convert::status_of)?;
        let resp = match outcome {
            JoinOutcome::Accepted { cert_pem } => {
                tracing::info!(node = %req.node_id, "node enrolled");
                pb::JoinResponse {
                    status: pb::JoinStatus::Accepted as i32,
                    cert_pem,
                    ca_pem: self.cluster.ca_pem().to_owned(),
                    message: String::new(),
                }
            }
            JoinOutcome::Pending => pb::JoinResponse {
                status: pb::JoinStatus::Pending as i32,
                message: format!(
                    "waiting for an admin to run `clusterctl keys accept {}`",
                    req.node_id
                ),
                ..Default::default()
            },
            JoinOutcome::Rejected(why) => pb::JoinResponse {
                status: pb::JoinStatus::Rejected as i32,
                message: why,
                ..Default::default()
            },
        };
        Ok(Response::new(resp))
    }
}
