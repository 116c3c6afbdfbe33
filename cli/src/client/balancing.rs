//! Calls for load balancing: upstreams and routes.

use super::{Client, unreadable};
use crate::Failure;
use cluster_balancer::{Domain, UpstreamSource};
use cluster_model::wire::{self, route_to_pb, upstream_to_pb};
use cluster_model::{LbReport, ResolvedServer};
use cluster_proto as pb;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct BalancingView {
    pub upstreams: BTreeMap<String, UpstreamSource>,
    pub routes: BTreeMap<String, Domain>,
    pub version: u64,
    pub resolved: BTreeMap<String, Vec<ResolvedServer>>,
    pub reports: BTreeMap<String, LbReport>,
}

impl Client {
    pub async fn balancing(&mut self) -> Result<BalancingView, Failure> {
        let resp = self
            .control
            .list_balancing(pb::ListBalancingRequest {})
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        let routes = resp
            .routes
            .into_iter()
            .map(wire::route_of)
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        let upstreams = resp
            .upstreams
            .into_iter()
            .map(wire::upstream_of)
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        let resolved = cluster_model::ProxyView::try_from(resp.resolved.unwrap_or_default())
            .map_err(unreadable)?;
        let reports = resp
            .reports
            .into_iter()
            .map(|(node, r)| Ok((node, LbReport::try_from(r)?)))
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        Ok(BalancingView {
            upstreams,
            routes,
            version: resolved.version,
            resolved: resolved.upstreams,
            reports,
        })
    }

    /// Sets one upstream; returns the servers it has now.
    pub async fn set_upstream(
        &mut self,
        name: &str,
        source: &UpstreamSource,
    ) -> Result<Vec<ResolvedServer>, Failure> {
        let resp = self
            .control
            .set_upstream(pb::SetUpstreamRequest {
                upstream: Some(upstream_to_pb(name, source)),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        let resolved = resp.resolved.unwrap_or_default();
        let view = cluster_model::ProxyView::try_from(pb::ProxyConfig {
            version: 0,
            upstreams: vec![resolved],
            routes: Vec::new(),
        })
        .map_err(unreadable)?;
        Ok(view.upstreams.into_values().next().unwrap_or_default())
    }

    pub async fn remove_upstream(&mut self, name: &str) -> Result<(), Failure> {
        self.control
            .remove_upstream(pb::RemoveUpstreamRequest {
                name: name.to_owned(),
            })
            .await
            .map_err(Failure::from_status)?;
        Ok(())
    }

    /// Sets and removes domains' routes, with upstreams, as one change.
    pub async fn set_routes(
        &mut self,
        set: &BTreeMap<String, Domain>,
        remove: &[String],
        upstreams: &BTreeMap<String, UpstreamSource>,
    ) -> Result<u64, Failure> {
        let resp = self
            .control
            .set_routes(pb::SetRoutesRequest {
                set: set.iter().map(|(d, c)| route_to_pb(d, c)).collect(),
                remove: remove.to_vec(),
                upstreams: upstreams
                    .iter()
                    .map(|(n, s)| upstream_to_pb(n, s))
                    .collect(),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.version)
    }
}
