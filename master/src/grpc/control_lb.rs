//! `Control`'s load-balancing calls: upstreams, routes, and waiting until
//! nodes are really out of rotation.

use super::auth::{Permission, authorize};
use super::control::{ControlSvc, DEFAULT_WAIT, MAX_WAIT, WaitOutStream, invalid};
use super::convert_lb;
use cluster_proto as pb;
use std::time::Duration;
use tonic::{Request, Response, Status};

impl ControlSvc {
    pub(super) async fn handle_list_balancing(
        &self,
        request: Request<pb::ListBalancingRequest>,
    ) -> Result<Response<pb::ListBalancingResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "read routes").await?;
        Ok(Response::new(convert_lb::balancing_to_pb(
            &self.cluster.balancing(),
        )))
    }

    pub(super) async fn handle_set_upstream(
        &self,
        request: Request<pb::SetUpstreamRequest>,
    ) -> Result<Response<pb::SetUpstreamResponse>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "set upstreams").await?;
        let def = request
            .into_inner()
            .upstream
            .ok_or_else(|| Status::invalid_argument("missing field `upstream`"))?;
        let (name, source) = convert_lb::upstream_of(def).map_err(invalid)?;
        self.cluster
            .set_balancing(
                vec![(name.clone(), source)],
                Vec::new(),
                Vec::new(),
                &caller.label(),
            )
            .await
            .map_err(super::status_of)?;
        let view = self.cluster.proxy_view();
        let servers = view.upstreams.get(&name).cloned().unwrap_or_default();
        Ok(Response::new(pb::SetUpstreamResponse {
            resolved: Some(pb::ResolvedUpstream {
                name,
                servers: servers
                    .iter()
                    .map(|s| convert_lb::server_to_pb(&s.server, s.node.as_deref()))
                    .collect(),
            }),
        }))
    }

    pub(super) async fn handle_remove_upstream(
        &self,
        request: Request<pb::RemoveUpstreamRequest>,
    ) -> Result<Response<pb::RemoveUpstreamResponse>, Status> {
        let caller = authorize(
            &self.cluster,
            &request,
            Permission::Admin,
            "remove upstreams",
        )
        .await?;
        let name = request.into_inner().name;
        self.cluster
            .remove_upstream(&name, &caller.label())
            .await
            .map_err(super::status_of)?;
        Ok(Response::new(pb::RemoveUpstreamResponse {}))
    }

    pub(super) async fn handle_set_routes(
        &self,
        request: Request<pb::SetRoutesRequest>,
    ) -> Result<Response<pb::SetRoutesResponse>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Admin, "set routes").await?;
        let req = request.into_inner();
        let routes = req
            .set
            .into_iter()
            .map(convert_lb::route_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let upstreams = req
            .upstreams
            .into_iter()
            .map(convert_lb::upstream_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let version = self
            .cluster
            .set_balancing(upstreams, routes, req.remove, &caller.label())
            .await
            .map_err(super::status_of)?;
        Ok(Response::new(pb::SetRoutesResponse { version }))
    }

    pub(super) async fn handle_wait_out(
        &self,
        request: Request<pb::WaitOutRequest>,
    ) -> Result<Response<WaitOutStream>, Status> {
        authorize(
            &self.cluster,
            &request,
            Permission::Drain,
            "wait for drains",
        )
        .await?;
        let req = request.into_inner();
        if req.names.is_empty() {
            return Err(Status::invalid_argument("no node names given"));
        }
        let targets: Vec<(String, u64)> = self
            .cluster
            .nodes(&req.names)
            .map_err(super::status_of)?
            .into_iter()
            .map(|(n, _)| (n.id, n.spec_generation))
            .collect();
        let timeout = match req.timeout_ms {
            0 => DEFAULT_WAIT,
            ms => Duration::from_millis(ms).min(MAX_WAIT),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let elapsed = || started.elapsed().as_millis() as u64;
            let left = cluster
                .wait_out(&targets, timeout, |pending| {
                    let _ = tx.send(Ok(pb::WaitOutEvent {
                        pending: pending.to_vec(),
                        done: false,
                        timed_out: false,
                        elapsed_ms: elapsed(),
                    }));
                })
                .await;
            let _ = tx.send(Ok(pb::WaitOutEvent {
                timed_out: !left.is_empty(),
                pending: left,
                done: true,
                elapsed_ms: elapsed(),
            }));
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        )))
    }
}
