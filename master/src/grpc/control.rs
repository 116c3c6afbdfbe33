//! `Control`: the calls clusterctl makes.

use super::convert;
use crate::cluster::{ApplyStatus, Cluster};
use crate::store::EventQuery;
use cluster_proto as pb;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// How long `SetOffline` waits for acknowledgements when asked to and the
/// request names no timeout.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Events returned when the request names no limit.
const DEFAULT_EVENTS: usize = 100;

pub struct ControlSvc {
    pub cluster: Arc<Cluster>,
}

#[tonic::async_trait]
impl pb::control_server::Control for ControlSvc {
    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let req = request.into_inner();
        let nodes = self.cluster.nodes(&req.names).map_err(super::status_of)?;
        Ok(Response::new(pb::ListNodesResponse {
            nodes: nodes
                .iter()
                .map(|(n, s)| convert::node_to_pb(n, *s))
                .collect(),
            generation: self.cluster.generation(),
        }))
    }

    async fn set_offline(
        &self,
        request: Request<pb::SetOfflineRequest>,
    ) -> Result<Response<pb::SetOfflineResponse>, Status> {
        let req = request.into_inner();
        let by = if req.by.trim().is_empty() {
            "unknown".to_owned()
        } else {
            req.by
        };
        let reason = req.offline.then(|| {
            let r = req.reason.trim();
            if r.is_empty() {
                "no reason given".to_owned()
            } else {
                r.to_owned()
            }
        });
        let (generation, changes) = self
            .cluster
            .set_offline(&req.names, reason, &by)
            .await
            .map_err(super::status_of)?;
        tracing::info!(nodes = ?req.names, offline = req.offline, %by, generation, "set offline");

        let statuses = if req.wait {
            let timeout = match req.timeout_ms {
                0 => DEFAULT_WAIT,
                ms => Duration::from_millis(ms).min(MAX_WAIT),
            };
            let targets: Vec<_> = changes
                .iter()
                .map(|c| (c.id.clone(), c.spec_generation))
                .collect();
            self.cluster.wait_applied(&targets, timeout).await
        } else {
            changes
                .iter()
                .map(|c| {
                    if c.changed {
                        ApplyStatus::Stored
                    } else {
                        ApplyStatus::Unchanged
                    }
                })
                .collect()
        };
        let connected = |name: &str| {
            self.cluster
                .nodes(&[name.to_owned()])
                .map(|n| n.first().is_some_and(|(n, _)| n.connected))
                .unwrap_or(false)
        };
        let results = changes
            .iter()
            .zip(statuses)
            .map(|(c, s)| pb::NodeResult {
                name: c.name.clone(),
                status: convert::apply_status_to_pb(s) as i32,
                detail: match s {
                    ApplyStatus::NotConnected => {
                        "agent not connected; it applies the change when it reconnects".into()
                    }
                    ApplyStatus::TimedOut => "agent did not acknowledge in time".into(),
                    ApplyStatus::Stored if !connected(&c.name) => {
                        "agent not connected; it applies the change when it reconnects".into()
                    }
                    _ => String::new(),
                },
            })
            .collect();
        Ok(Response::new(pb::SetOfflineResponse {
            generation,
            results,
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let req = request.into_inner();
        let node = match req.node.trim() {
            "" => None,
            name => {
                // Unknown names are an error, not an empty list.
                let found = self
                    .cluster
                    .nodes(&[name.to_owned()])
                    .map_err(super::status_of)?;
                found.into_iter().next().map(|(n, _)| n.name)
            }
        };
        let query = EventQuery {
            after_seq: req.after_seq,
            limit: match req.limit {
                0 => DEFAULT_EVENTS,
                n => n as usize,
            },
            node,
        };
        let events = self
            .cluster
            .events(&query)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.iter().map(convert::event_to_pb).collect(),
        }))
    }
}
