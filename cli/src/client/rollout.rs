//! Calls for rolling deploys. The master sends a rollout's record whole
//! (JSON); it is read into the master's own type.

use super::{Client, Targeting, target_pb};
use crate::Failure;
use cluster_model::rollout::RolloutRecord;
use cluster_proto as pb;
use std::time::Duration;

/// How a rollout is to go.
pub struct RolloutRequest {
    pub target: Targeting,
    pub argv: Vec<String>,
    pub batch: String,
    pub max_failures: u32,
    pub drain_timeout: Duration,
    pub healthy_for: Duration,
    pub health_timeout: Duration,
    pub command_timeout: Option<Duration>,
    pub allow_last: bool,
}

fn record(info: pb::RolloutInfo) -> Result<RolloutRecord, Failure> {
    serde_json::from_str(&info.record_json)
        .map_err(|e| Failure::partial(format!("the master sent an unreadable rollout: {e}")))
}

impl Client {
    pub async fn start_rollout(&mut self, r: RolloutRequest) -> Result<RolloutRecord, Failure> {
        let ms = |d: Duration| d.as_millis() as u64;
        let info = self
            .control
            .start_rollout(pb::StartRolloutRequest {
                target: Some(target_pb(&r.target)),
                argv: r.argv,
                batch: r.batch,
                max_failures: r.max_failures,
                drain_timeout_ms: ms(r.drain_timeout),
                healthy_for_ms: ms(r.healthy_for),
                health_timeout_ms: ms(r.health_timeout),
                command_timeout_ms: r.command_timeout.map_or(0, ms),
                allow_last: r.allow_last,
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        record(info)
    }

    pub async fn rollout(&mut self, id: &str) -> Result<RolloutRecord, Failure> {
        let info = self
            .control
            .get_rollout(pb::RolloutRequest { id: id.to_owned() })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        record(info)
    }

    pub async fn rollouts(&mut self, limit: u32) -> Result<Vec<RolloutRecord>, Failure> {
        let resp = self
            .control
            .list_rollouts(pb::ListRolloutsRequest { limit })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        resp.rollouts.into_iter().map(record).collect()
    }

    pub async fn resume_rollout(&mut self, id: &str) -> Result<RolloutRecord, Failure> {
        let info = self
            .control
            .resume_rollout(pb::RolloutRequest { id: id.to_owned() })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        record(info)
    }

    pub async fn abort_rollout(&mut self, id: &str) -> Result<RolloutRecord, Failure> {
        let info = self
            .control
            .abort_rollout(pb::RolloutRequest { id: id.to_owned() })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        record(info)
    }

    /// The rollout's record on every change, until it stops running.
    pub async fn watch_rollout(
        &mut self,
        id: &str,
    ) -> Result<tonic::Streaming<pb::RolloutInfo>, Failure> {
        Ok(self
            .control
            .watch_rollout(pb::RolloutRequest { id: id.to_owned() })
            .await
            .map_err(Failure::from_status)?
            .into_inner())
    }

    pub async fn next_rollout(
        stream: &mut tonic::Streaming<pb::RolloutInfo>,
    ) -> Result<Option<RolloutRecord>, Failure> {
        match stream.message().await.map_err(Failure::from_status)? {
            Some(info) => record(info).map(Some),
            None => Ok(None),
        }
    }
}
