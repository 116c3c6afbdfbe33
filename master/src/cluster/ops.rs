//! The cluster's operations as the edges call them: each mutation one
//! planner through [`Cluster::execute`], each read one look at the state
//! (or, for the event log, jobs and rollouts, the store).

use super::{Cluster, ClusterError};
use crate::state::plan::{
    ApplyClusterFile, NodeChange, RecordJob, RecordRollout, RemoveNode, RemoveRoutes,
    RemoveUpstream, Rename, SetBalancing, SetGroup, SetLabels, SetOut, SweepLiveness,
};
use crate::state::{BalancingState, Observation, State};
use crate::store::{EventQuery, StoreError};
use cluster_balancer::{Domain, UpstreamSource};
use cluster_model::clusterfile::{Change as FileChange, DesiredCluster};
use cluster_model::rollout::RolloutRecord;
use cluster_model::time::now_ms;
use cluster_model::{Event, EventKind, HostEntry, JobRecord, NodeId, NodeStatus, TargetSpec};
use std::collections::BTreeMap;
use std::time::Duration;

/// Nodes: drains, labels, names, liveness.
impl Cluster {
    /// Takes nodes out of service (`reason: Some`) or puts them back; with
    /// `maintenance`, entirely (HAProxy MAINT). All or nothing.
    pub async fn set_out(
        &self,
        target: &TargetSpec,
        reason: Option<String>,
        maintenance: bool,
        by: &str,
        note: &str,
    ) -> Result<(u64, Vec<NodeChange>), ClusterError> {
        let out = reason.is_some();
        let changes = self
            .execute(&SetOut {
                target: target.clone(),
                reason,
                maintenance,
                by: by.to_owned(),
                note: note.to_owned(),
            })
            .await?;
        for _ in changes.iter().filter(|c| c.changed) {
            if out {
                self.counters.drained(maintenance);
            } else {
                self.counters.undrains.inc();
            }
        }
        Ok((self.generation(), changes))
    }

    pub async fn set_offline(
        &self,
        target: &TargetSpec,
        reason: Option<String>,
        by: &str,
    ) -> Result<(u64, Vec<NodeChange>), ClusterError> {
        self.set_out(target, reason, false, by, "").await
    }

    /// Sets (or, with an empty value, removes) labels on the selected nodes.
    pub async fn set_labels(
        &self,
        target: &TargetSpec,
        labels: &BTreeMap<String, String>,
        by: &str,
    ) -> Result<Vec<String>, ClusterError> {
        self.execute(&SetLabels {
            target: target.clone(),
            labels: labels.clone(),
            by: by.to_owned(),
        })
        .await
    }

    /// Defines (or, with an empty expression, removes) a node group.
    pub async fn set_group(&self, name: &str, expr: &str, by: &str) -> Result<(), ClusterError> {
        self.execute(&SetGroup {
            name: name.to_owned(),
            expr: expr.to_owned(),
            by: by.to_owned(),
        })
        .await
    }

    pub fn groups(&self) -> BTreeMap<String, String> {
        self.read(|st| st.groups().clone())
    }

    /// Makes `node` its masterful service's master; the old master takes
    /// the lowest free slave number.
    pub async fn promote(
        &self,
        node: &str,
        by: &str,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        self.execute(&Rename::Promote {
            node: node.to_owned(),
            by: by.to_owned(),
        })
        .await
    }

    pub async fn rename(
        &self,
        node: &str,
        new_name: &str,
        by: &str,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        self.execute(&Rename::To {
            node: node.to_owned(),
            new_name: new_name.to_owned(),
            by: by.to_owned(),
        })
        .await
    }

    /// Forgets a node that is not connected; its name is free again.
    pub async fn remove_node(&self, node: &str, by: &str) -> Result<(), ClusterError> {
        self.execute(&RemoveNode {
            node: node.to_owned(),
            by: by.to_owned(),
        })
        .await
    }

    /// Records the nodes that went down or came back since the last sweep,
    /// and lets the proxies' view follow liveness. Run by the liveness task.
    pub async fn sweep_liveness(&self) -> Result<Vec<Event>, ClusterError> {
        let events = self.execute(&SweepLiveness).await?;
        let mut inner = self.inner();
        let observed = inner.state.observe(Observation::Tick { now_ms: now_ms() });
        self.wake(&mut inner, observed.effects);
        Ok(events)
    }

    /// Forgets nodes not heard from for longer than `expiry` (their names
    /// are free again); returns the names it removed.
    pub async fn expire_names(&self, expiry: Duration) -> Vec<String> {
        let now = now_ms();
        let expired: Vec<(NodeId, String)> = self.read(|st| {
            st.statuses(None, now)
                .into_iter()
                .filter(|s| {
                    !s.connected && now.saturating_sub(s.last_seen_ms) > expiry.as_millis() as u64
                })
                .map(|s| (s.node.id, s.node.name.to_string()))
                .collect()
        });
        let by = format!(
            "master (down longer than {})",
            humantime::format_duration(expiry)
        );
        let mut removed = Vec::new();
        for (id, name) in expired {
            match self.remove_node(&id, &by).await {
                Ok(()) => removed.push(name),
                Err(e) => tracing::warn!(node = %name, error = %e, "cannot expire the node's name"),
            }
        }
        removed
    }

    /// `spec` with its expression parsed, outside the state's lock (a big
    /// one on a blocking thread), so that no caller's expression holds up
    /// the sessions, drains and reports that need the lock meanwhile. It
    /// is parsed against the node groups of the moment.
    pub async fn prepare(&self, spec: TargetSpec) -> Result<TargetSpec, ClusterError> {
        let TargetSpec::Expr(kind, expr, delimiter) = spec else {
            return Ok(spec);
        };
        /// Longer than this, parsing goes to a blocking thread (1,000
        /// regex terms take a few hundred milliseconds).
        const BIG: usize = 1024;
        let big = expr.len() > BIG;
        let groups = self.read(|st| st.groups().clone());
        let parse =
            move || cluster_model::targets::Target::parse_with(kind, &expr, &groups, delimiter);
        let parsed = if big {
            // One at a time: what a big parse costs in memory is bounded
            // by one expression, not by how many callers send one.
            static BIG_PARSES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
            let _turn = BIG_PARSES.acquire().await.map_err(|e| {
                ClusterError::Invalid(format!("the target could not be parsed: {e}"))
            })?;
            tokio::task::spawn_blocking(parse).await.map_err(|e| {
                ClusterError::Invalid(format!("the target could not be parsed: {e}"))
            })?
        } else {
            parse()
        }?;
        Ok(TargetSpec::Parsed(std::sync::Arc::new(parsed)))
    }

    /// Nodes by name or id (every node when `names` is empty), sorted by
    /// name.
    pub fn nodes(&self, names: &[String]) -> Result<Vec<NodeStatus>, ClusterError> {
        let spec = (!names.is_empty()).then(|| TargetSpec::Names(names.to_vec()));
        self.nodes_matching(spec.as_ref())
    }

    /// Nodes `spec` selects (every node for `None`), sorted by name.
    pub fn nodes_matching(
        &self,
        spec: Option<&TargetSpec>,
    ) -> Result<Vec<NodeStatus>, ClusterError> {
        let now = now_ms();
        self.read(|st| match spec {
            None => Ok(st.statuses(None, now)),
            Some(spec) => Ok(st.statuses(Some(&st.select(spec)?), now)),
        })
    }

    /// `(id, name, connected)` of every node `spec` selects, sorted by name.
    pub fn select(&self, spec: &TargetSpec) -> Result<Vec<(NodeId, String, bool)>, ClusterError> {
        self.read(|st| {
            Ok(st
                .select(spec)?
                .into_iter()
                .map(|id| {
                    let name = st
                        .node(&id)
                        .map(|n| n.value.name.to_string())
                        .unwrap_or_default();
                    let connected = st.session(&id).is_some();
                    (id, name, connected)
                })
                .collect())
        })
    }

    /// Every node's hosts line, sorted by name, and the revision it is as of.
    pub fn hosts(&self) -> (u64, Vec<HostEntry>) {
        self.read(|st| (st.hosts_revision(), st.host_entries()))
    }

    /// The lines that changed after revision `seen`.
    pub fn hosts_since(&self, seen: u64) -> crate::state::HostsChanges {
        self.read(|st| st.hosts_since(seen))
    }

    /// The event log. A node named in `node` (by name or id) selects its
    /// whole history, under every name it had.
    pub async fn events(
        &self,
        after_seq: u64,
        limit: usize,
        node: Option<&str>,
    ) -> Result<Vec<Event>, ClusterError> {
        let node = match node {
            None => None,
            Some(n) => {
                let id = self.read(|st| st.resolve(&[n.to_owned()]))?.remove(0);
                let name = self.read(|st| st.node(&id).map(|s| s.value.name.to_string()));
                Some((id, name.unwrap_or_default()))
            }
        };
        let query = EventQuery {
            after_seq,
            limit,
            node,
        };
        Ok(self.store.events(&query).await?)
    }
}

/// Load balancing and the cluster file.
impl Cluster {
    pub fn balancing(&self) -> BalancingState {
        self.read(State::balancing)
    }

    /// Sets upstreams and route chains, and removes domains, as one change
    /// checked whole; returns the proxies' view version after it.
    pub async fn set_balancing(
        &self,
        upstreams: Vec<(String, UpstreamSource)>,
        routes: Vec<(String, Domain)>,
        remove_routes: Vec<String>,
        by: &str,
    ) -> Result<u64, ClusterError> {
        self.execute(&SetBalancing {
            upstreams,
            routes,
            remove_routes,
            by: by.to_owned(),
        })
        .await?;
        Ok(self.proxy_view().version)
    }

    /// Removes an upstream no route uses.
    pub async fn remove_upstream(&self, name: &str, by: &str) -> Result<u64, ClusterError> {
        self.execute(&RemoveUpstream {
            names: vec![name.to_owned()],
            missing_ok: false,
            by: by.to_owned(),
        })
        .await?;
        Ok(self.proxy_view().version)
    }

    /// Removes those of `names` there is an upstream of, if no route uses
    /// any of them (else none): the names removed.
    pub async fn remove_upstreams(
        &self,
        names: Vec<String>,
        by: &str,
    ) -> Result<Vec<String>, ClusterError> {
        self.execute(&RemoveUpstream {
            names,
            missing_ok: true,
            by: by.to_owned(),
        })
        .await
    }

    /// Removes the route chains of those `domains` that have one: the
    /// domains removed.
    pub async fn remove_routes(
        &self,
        domains: Vec<String>,
        by: &str,
    ) -> Result<Vec<String>, ClusterError> {
        self.execute(&RemoveRoutes {
            domains,
            by: by.to_owned(),
        })
        .await
    }

    /// The cluster as a cluster file describes it.
    pub fn desired(&self) -> DesiredCluster {
        self.read(crate::state::plan::desired)
    }

    /// What applying `wanted` would change, refused exactly as `apply`
    /// would refuse it; nothing is changed.
    pub fn plan(&self, wanted: DesiredCluster, by: &str) -> Result<Vec<FileChange>, ClusterError> {
        use crate::state::plan::{Command, Env};
        let cmd = ApplyClusterFile {
            wanted,
            by: by.to_owned(),
        };
        let env = Env {
            now_ms: now_ms(),
            issuer: &*self.ca,
        };
        Ok(self.read(|st| cmd.plan(st, &env))?.out)
    }

    /// Makes the cluster match `wanted` in one durable change, or refuses
    /// it whole naming every problem.
    pub async fn apply(
        &self,
        wanted: DesiredCluster,
        by: &str,
    ) -> Result<Vec<FileChange>, ClusterError> {
        self.execute(&ApplyClusterFile {
            wanted,
            by: by.to_owned(),
        })
        .await
    }
}

/// Jobs and rollouts: stored records.
impl Cluster {
    /// Stores a job record (again, as it progresses), with an optional
    /// event in the same change.
    pub async fn record_job(
        &self,
        record: &JobRecord,
        event: Option<(EventKind, String)>,
    ) -> Result<(), ClusterError> {
        self.execute(&RecordJob {
            record: record.clone(),
            event,
        })
        .await
    }

    /// Stores a rollout's record (again, as it progresses), with an
    /// optional event in the same change.
    pub async fn record_rollout(
        &self,
        record: &RolloutRecord,
        event: Option<(EventKind, String)>,
    ) -> Result<(), ClusterError> {
        let before = self.store.rollout(&record.id).await.ok().flatten();
        self.execute(&RecordRollout {
            record: record.clone(),
            event,
        })
        .await?;
        if before.is_none_or(|b| b.state != record.state) {
            self.counters.rollout(record.state.as_str());
        }
        Ok(())
    }

    pub async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        self.store.rollouts(limit).await
    }

    pub async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        self.store.rollout(id).await
    }

    /// The newest `limit` jobs, newest first.
    pub async fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.store.jobs(limit).await
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.store.job(id).await
    }
}
