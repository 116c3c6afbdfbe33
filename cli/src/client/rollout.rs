//! Calls for rolling deploys. The master sends a rollout's record whole
//! (JSON); it is read into the master's own type. Following one survives
//! its master going away: the watch is opened again on the next.

use super::failover::{Call, Outage, went_away};
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
            .unary(
                Call::Write,
                pb::StartRolloutRequest {
                    target: Some(target_pb(&r.target)),
                    argv: r.argv,
                    batch: r.batch,
                    max_failures: r.max_failures,
                    drain_timeout_ms: ms(r.drain_timeout),
                    healthy_for_ms: ms(r.healthy_for),
                    health_timeout_ms: ms(r.health_timeout),
                    command_timeout_ms: r.command_timeout.map_or(0, ms),
                    allow_last: r.allow_last,
                },
                |mut c, r| async move { c.start_rollout(r).await },
            )
            .await?;
        record(info)
    }

    pub async fn rollout(&mut self, id: &str) -> Result<RolloutRecord, Failure> {
        let info = self
            .unary(
                Call::Read,
                pb::RolloutRequest { id: id.to_owned() },
                |mut c, r| async move { c.get_rollout(r).await },
            )
            .await?;
        record(info)
    }

    pub async fn rollouts(&mut self, limit: u32) -> Result<Vec<RolloutRecord>, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::ListRolloutsRequest { limit },
                |mut c, r| async move { c.list_rollouts(r).await },
            )
            .await?;
        resp.rollouts.into_iter().map(record).collect()
    }

    pub async fn resume_rollout(&mut self, id: &str) -> Result<RolloutRecord, Failure> {
        let info = self
            .unary(
                Call::Write,
                pb::RolloutRequest { id: id.to_owned() },
                |mut c, r| async move { c.resume_rollout(r).await },
            )
            .await?;
        record(info)
    }

    pub async fn abort_rollout(&mut self, id: &str) -> Result<RolloutRecord, Failure> {
        let info = self
            .unary(
                Call::Write,
                pb::RolloutRequest { id: id.to_owned() },
                |mut c, r| async move { c.abort_rollout(r).await },
            )
            .await?;
        record(info)
    }

    /// Follows a rollout: its record on every change, until it stops
    /// running ([`Client::next_rollout`]).
    pub async fn watch_rollout(&mut self, id: &str) -> Result<RolloutWatch, Failure> {
        let mut watch = RolloutWatch {
            id: id.to_owned(),
            stream: None,
            outage: None,
        };
        let stream = self.open_watch(&mut watch).await?;
        watch.stream = Some(stream);
        Ok(watch)
    }

    /// The rollout's next record (`None` once the master ended the
    /// watch). Opened again on the next master while its master went away:
    /// a watch only reads, and each record is whole.
    pub async fn next_rollout(
        &mut self,
        watch: &mut RolloutWatch,
    ) -> Result<Option<RolloutRecord>, Failure> {
        loop {
            let mut stream = match watch.stream.take() {
                Some(s) => s,
                None => self.open_watch(watch).await?,
            };
            match stream.message().await {
                Ok(Some(info)) => {
                    watch.stream = Some(stream);
                    watch.outage = None;
                    return record(info).map(Some);
                }
                Ok(None) => return Ok(None),
                Err(status) if went_away(&status) => {
                    let outage = watch.outage.get_or_insert_with(|| Outage::new(Call::Read));
                    self.failover(outage, &status).await?;
                }
                Err(status) => return Err(Failure::from_status(status)),
            }
        }
    }

    async fn open_watch(
        &mut self,
        watch: &mut RolloutWatch,
    ) -> Result<tonic::Streaming<pb::RolloutInfo>, Failure> {
        loop {
            let request = pb::RolloutRequest {
                id: watch.id.clone(),
            };
            match self.control.watch_rollout(request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if went_away(&status) => {
                    let outage = watch.outage.get_or_insert_with(|| Outage::new(Call::Read));
                    self.failover(outage, &status).await?;
                }
                Err(status) => return Err(Failure::from_status(status)),
            }
        }
    }
}

/// A rollout being followed: the open stream, if any, and the outage it is
/// in while masters are away.
pub struct RolloutWatch {
    id: String,
    stream: Option<tonic::Streaming<pb::RolloutInfo>>,
    outage: Option<Outage>,
}
