//! `Control`'s calls for rolling deploys and the cluster file.

use super::auth::{Permission, authorize, revocable};
use super::control::{ControlSvc, WatchRolloutStream};
use super::convert::{required_target, status_of};
use cluster_model::clusterfile::{ChangeKind, DesiredCluster};
use cluster_model::rollout::{RolloutParams, RolloutRecord};
use cluster_proto as pb;
use tonic::{Request, Response, Status};

fn rollout_info(r: &RolloutRecord) -> pb::RolloutInfo {
    pb::RolloutInfo {
        record_json: serde_json::to_string(r).expect("a rollout always serialises"),
    }
}

impl ControlSvc {
    pub(super) async fn handle_export_cluster(
        &self,
        request: Request<pb::ExportClusterRequest>,
    ) -> Result<Response<pb::ClusterDescription>, Status> {
        authorize(
            &self.cluster,
            &request,
            Permission::Read,
            "export the cluster",
        )
        .await?;
        let desired = self.cluster.desired();
        Ok(Response::new(pb::ClusterDescription {
            desired_json: serde_json::to_string(&desired).expect("always serialises"),
        }))
    }

    pub(super) async fn handle_apply_cluster(
        &self,
        request: Request<pb::ApplyClusterRequest>,
    ) -> Result<Response<pb::ApplyClusterResponse>, Status> {
        let dry_run = request.get_ref().dry_run;
        let (need, action) = if dry_run {
            (Permission::Read, "plan the cluster")
        } else {
            (Permission::Admin, "apply a cluster file")
        };
        let caller = authorize(&self.cluster, &request, need, action).await?;
        let req = request.into_inner();
        let wanted: DesiredCluster = serde_json::from_str(&req.desired_json)
            .map_err(|e| Status::invalid_argument(format!("field `desired_json`: {e}")))?;
        // A plan is the apply's own planner, without the commit: it refuses
        // exactly what the apply would.
        let changes = if dry_run {
            self.cluster
                .plan(wanted, &caller.label())
                .map_err(status_of)?
        } else {
            self.cluster
                .apply(wanted, &caller.label())
                .await
                .map_err(status_of)?
        };
        Ok(Response::new(pb::ApplyClusterResponse {
            changes: changes
                .iter()
                .map(|c| pb::ClusterChange {
                    kind: match c.kind {
                        ChangeKind::Add => "add",
                        ChangeKind::Change => "change",
                        ChangeKind::Remove => "remove",
                    }
                    .into(),
                    what: c.what.clone(),
                    detail: c.detail.clone(),
                })
                .collect(),
        }))
    }

    pub(super) async fn handle_start_rollout(
        &self,
        request: Request<pb::StartRolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        let caller =
            authorize(&self.cluster, &request, Permission::Admin, "start rollouts").await?;
        let req = request.into_inner();
        let target = self
            .prepared(required_target(req.target, Vec::new())?)
            .await?;
        let ms = |v: u64, default: u64| if v == 0 { default } else { v };
        let params = RolloutParams {
            batch: if req.batch.is_empty() {
                "1".into()
            } else {
                req.batch
            },
            max_failures: req.max_failures,
            drain_timeout_ms: ms(req.drain_timeout_ms, 60_000),
            healthy_for_ms: req.healthy_for_ms,
            health_timeout_ms: ms(req.health_timeout_ms, 60_000),
            command_timeout_ms: req.command_timeout_ms,
            allow_last: req.allow_last,
        };
        let spec = crate::rollout::RolloutSpec {
            target,
            argv: req.argv,
            params,
        };
        let rec = self
            .rollouts
            .start(spec, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(rollout_info(&rec)))
    }

    pub(super) async fn handle_watch_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<WatchRolloutStream>, Status> {
        let caller = authorize(&self.cluster, &request, Permission::Read, "watch rollouts").await?;
        let id = request.into_inner().id;
        let first = self.rollouts.get(&id).await.map_err(status_of)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let watch = self.rollouts.watch(&id);
        let rollouts = self.rollouts.clone();
        tokio::spawn(async move {
            if tx.send(Ok(rollout_info(&first))).await.is_err() {
                return;
            }
            let Some(mut watch) = watch else {
                // Driven by another master: follow its stored record.
                let mut last = first;
                while last.state == cluster_model::rollout::RolloutState::Running {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                    }
                    let Ok(rec) = rollouts.get(&id).await else {
                        return;
                    };
                    if rec != last {
                        if tx.send(Ok(rollout_info(&rec))).await.is_err() {
                            return;
                        }
                        last = rec;
                    }
                }
                return;
            };
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    changed = watch.changed() => {
                        let rec = match changed {
                            Ok(()) => watch.borrow_and_update().clone(),
                            // Stopped running: the stored record is final.
                            Err(_) => match rollouts.get(&id).await {
                                Ok(r) => r,
                                Err(_) => return,
                            },
                        };
                        let last = changed.is_err();
                        if tx.send(Ok(rollout_info(&rec))).await.is_err() || last {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(revocable(
            &self.cluster,
            &caller,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    pub(super) async fn handle_get_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "read rollouts").await?;
        let rec = self
            .rollouts
            .get(&request.into_inner().id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(rollout_info(&rec)))
    }

    pub(super) async fn handle_list_rollouts(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        authorize(&self.cluster, &request, Permission::Read, "read rollouts").await?;
        let limit = match request.get_ref().limit {
            0 => 20,
            n => n as usize,
        };
        let list = self.rollouts.list(limit).await.map_err(status_of)?;
        Ok(Response::new(pb::ListRolloutsResponse {
            rollouts: list.iter().map(rollout_info).collect(),
        }))
    }

    pub(super) async fn handle_resume_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        let caller = authorize(
            &self.cluster,
            &request,
            Permission::Admin,
            "resume rollouts",
        )
        .await?;
        let rec = self
            .rollouts
            .resume(&request.into_inner().id, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(rollout_info(&rec)))
    }

    pub(super) async fn handle_abort_rollout(
        &self,
        request: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutInfo>, Status> {
        let caller =
            authorize(&self.cluster, &request, Permission::Admin, "abort rollouts").await?;
        let rec = self
            .rollouts
            .abort(&request.into_inner().id, &caller.label())
            .await
            .map_err(status_of)?;
        Ok(Response::new(rollout_info(&rec)))
    }
}
