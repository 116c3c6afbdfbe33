//! `Control`'s load-balancing calls: upstreams and routes.

use super::auth::{Permission, authorize};
use super::control::ControlSvc;
use super::convert::invalid;
use super::convert_lb;
use cluster_model::wire;
use cluster_proto as pb;
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
        let (name, source) = wire::upstream_of(def).map_err(invalid)?;
        self.cluster
            .set_balancing(
                vec![(name.clone(), source)],
                Vec::new(),
                Vec::new(),
                &caller.label(),
            )
            .await
            .map_err(super::convert::status_of)?;
        let view = self.cluster.proxy_view();
        let servers = view.upstreams.get(&name).cloned().unwrap_or_default();
        Ok(Response::new(pb::SetUpstreamResponse {
            resolved: Some(wire::resolved_to_pb(&name, &servers)),
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
            .map_err(super::convert::status_of)?;
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
            .map(wire::route_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let upstreams = req
            .upstreams
            .into_iter()
            .map(wire::upstream_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let version = self
            .cluster
            .set_balancing(upstreams, routes, req.remove, &caller.label())
            .await
            .map_err(super::convert::status_of)?;
        Ok(Response::new(pb::SetRoutesResponse { version }))
    }
}
