//! Calls for load balancing: upstreams and routes.

use super::failover::Call;
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
            .unary(
                Call::Read,
                pb::ListBalancingRequest {},
                |mut c, r| async move { c.list_balancing(r).await },
            )
            .await?;
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
            .unary(
                Call::Write,
                pb::SetUpstreamRequest {
                    upstream: Some(upstream_to_pb(name, source)),
                },
                |mut c, r| async move { c.set_upstream(r).await },
            )
            .await?;
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
        self.unary(
            Call::Write,
            pb::RemoveUpstreamRequest {
                name: name.to_owned(),
            },
            |mut c, r| async move { c.remove_upstream(r).await },
        )
        .await?;
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
            .unary(
                Call::Write,
                pb::SetRoutesRequest {
                    set: set.iter().map(|(d, c)| route_to_pb(d, c)).collect(),
                    remove: remove.to_vec(),
                    upstreams: upstreams
                        .iter()
                        .map(|(n, s)| upstream_to_pb(n, s))
                        .collect(),
                },
                |mut c, r| async move { c.set_routes(r).await },
            )
            .await?;
        Ok(resp.version)
    }
}
