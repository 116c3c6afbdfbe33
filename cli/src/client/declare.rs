//! Calls for the cluster file: export, plan (a dry run of apply), apply.

use super::Client;
use super::failover::Call;
use crate::Failure;
use cluster_model::clusterfile::{Change, ChangeKind, DesiredCluster};
use cluster_proto as pb;

impl Client {
    pub async fn export(&mut self) -> Result<DesiredCluster, Failure> {
        let resp = self
            .unary(
                Call::Read,
                pb::ExportClusterRequest {},
                |mut c, r| async move { c.export_cluster(r).await },
            )
            .await?;
        serde_json::from_str(&resp.desired_json).map_err(|e| {
            Failure::partial(format!("the master sent an unreadable description: {e}"))
        })
    }

    /// What the master changed (or, with `dry_run`, would change).
    pub async fn apply(
        &mut self,
        wanted: &DesiredCluster,
        dry_run: bool,
    ) -> Result<Vec<Change>, Failure> {
        let resp = self
            .unary(
                if dry_run { Call::Read } else { Call::Write },
                pb::ApplyClusterRequest {
                    desired_json: serde_json::to_string(wanted).expect("always serialises"),
                    dry_run,
                },
                |mut c, r| async move { c.apply_cluster(r).await },
            )
            .await?;
        Ok(resp
            .changes
            .into_iter()
            .map(|c| Change {
                kind: match c.kind.as_str() {
                    "add" => ChangeKind::Add,
                    "remove" => ChangeKind::Remove,
                    _ => ChangeKind::Change,
                },
                what: c.what,
                detail: c.detail,
            })
            .collect())
    }
}
