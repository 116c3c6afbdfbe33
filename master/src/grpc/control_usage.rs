//! `Control`'s usage calls: a node's history, as this master keeps it.

use super::auth::{Permission, authorize};
use super::control::ControlSvc;
use super::convert::status_of;
use crate::monitor::Sample;
use cluster_proto as pb;
use tonic::{Request, Response, Status};

fn sample_to_pb(s: &Sample) -> pb::UsageSample {
    pb::UsageSample {
        at_ms: s.at_ms,
        cpu_percent: s.cpu_percent,
        memory_percent: s.memory_percent,
        swap_percent: s.swap_percent,
        disk_percent: s.disk_percent,
        load1: s.load1,
        net_rx_bytes_per_sec: s.net_rx_bytes_per_sec,
        net_tx_bytes_per_sec: s.net_tx_bytes_per_sec,
    }
}

impl ControlSvc {
    pub(super) async fn handle_usage_history(
        &self,
        request: Request<pb::UsageHistoryRequest>,
    ) -> Result<Response<pb::UsageHistoryResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "read usage").await?;
        let req = request.into_inner();
        let node = self
            .cluster
            .nodes(&[req.node.trim().to_owned()])
            .map_err(status_of)?
            .pop()
            .ok_or_else(|| Status::not_found(format!("unknown node: {}", req.node.trim())))?;
        let (window, ..) = self.monitor.history_size();
        let samples = self.monitor.usage_history(&node.node.id, req.since_ms);
        Ok(Response::new(pb::UsageHistoryResponse {
            node: node.node.name.to_string(),
            window_ms: window.as_millis() as u64,
            samples: samples.iter().map(sample_to_pb).collect(),
        }))
    }
}
