//! Calls for the cluster file: export, plan (a dry run of apply), apply.

use super::Client;
use crate::Failure;
use cluster_model::clusterfile::{Change, ChangeKind, DesiredCluster};
use cluster_proto as pb;

impl Client {
    pub async fn export(&mut self) -> Result<DesiredCluster, Failure> {
        let resp = self
            .control
            .export_cluster(pb::ExportClusterRequest {})
            .await
            .map_err(Failure::from_status)?
            .into_inner();
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
            .control
            .apply_cluster(pb::ApplyClusterRequest {
                desired_json: serde_json::to_string(wanted).expect("always serialises"),
                dry_run,
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
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
