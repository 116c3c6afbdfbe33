//! The load-balancing replies of the control service.

use crate::cluster::BalancingState;
use cluster_model::wire::{route_to_pb, upstream_to_pb};
use cluster_proto as pb;

pub fn balancing_to_pb(b: &BalancingState) -> pb::ListBalancingResponse {
    pb::ListBalancingResponse {
        upstreams: b
            .upstreams
            .iter()
            .map(|(n, s)| upstream_to_pb(n, s))
            .collect(),
        routes: b.routes.iter().map(|(d, c)| route_to_pb(d, c)).collect(),
        resolved: Some((&*b.view).into()),
        reports: b
            .reports
            .iter()
            .map(|(n, r)| (n.clone(), r.into()))
            .collect(),
    }
}
