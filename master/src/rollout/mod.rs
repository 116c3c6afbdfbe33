//! Rolling deploys, run by the master: for each batch, drain (until really
//! out of rotation) → run the command → wait until healthy for a while →
//! undrain → wait until back in rotation. The rollout's state is stored
//! after every step, so a clusterctl that goes away changes nothing, and a
//! master that restarts holds the rollout where it was (`interrupted`)
//! until someone resumes it.
//!
//! - [`Rollouts`] — the running drivers: start, resume, abort, watch.
//! - `driver` — one task per running rollout; before each batch it
//!   matches the target again (a `Selector`), so nodes whose grains
//!   changed join or are skipped.
//! - `record` — what is stored: [`RolloutRecord`].
//!
//! See `LIFECYCLE.md` beside this file.

mod driver;

pub use cluster_model::rollout::{LogLine, NodePhase, RolloutParams, RolloutRecord, RolloutState};

use crate::cluster::{Cluster, ClusterError};
use crate::jobs::Jobs;
use cluster_model::rollout::Selector;
use cluster_model::targets::Kind;
use cluster_model::time::now_ms;
use cluster_model::{EventKind, NodeState};
use cluster_model::{NodeStatus, TargetSpec};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A rollout as asked for.
#[derive(Debug, Clone)]
pub struct RolloutSpec {
    pub target: TargetSpec,
    pub argv: Vec<String>,
    pub params: RolloutParams,
}

struct Running {
    record: watch::Sender<RolloutRecord>,
    stop: CancellationToken,
}

/// Every rollout this master drives now, and the watches on them.
pub struct Rollouts {
    cluster: Arc<Cluster>,
    jobs: Arc<Jobs>,
    running: Mutex<HashMap<String, Running>>,
    /// The drivers, so a stopping master stops them and waits.
    tasks: TaskTracker,
    /// Cancelled when the master stops: every driver's stop token is a
    /// child of it, and a driver halted so stores nothing more.
    halt: CancellationToken,
}

impl Rollouts {
    /// Rollouts the store says were running are held as `interrupted`:
    /// nodes stay as they were until someone resumes or aborts.
    /// `halt` is cancelled when the master starts to stop, before anything
    /// else is: every driver then stops where it is.
    pub async fn open(
        cluster: Arc<Cluster>,
        jobs: Arc<Jobs>,
        halt: CancellationToken,
    ) -> Arc<Rollouts> {
        let r = Arc::new(Rollouts {
            cluster: cluster.clone(),
            jobs,
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            halt,
        });
        let stored = cluster.rollouts(100).await.unwrap_or_default();
        // Only this master's own: another master may be driving the rest.
        let alone = cluster.masters().await.topology.store == "sled";
        for mut rec in stored {
            let mine = alone || rec.master.is_empty() || rec.master == cluster.name();
            if rec.state == RolloutState::Running && mine {
                rec.state = RolloutState::Interrupted;
                rec.log(
                now_ms(),
                    "",
                    "the master restarted; the rollout holds here (`clusterctl rollout resume` goes on)",
                );
                if let Err(e) = cluster.record_rollout(&rec, None).await {
                    tracing::error!(rollout = %rec.id, error = %e, "cannot store the rollout");
                }
            }
        }
        r
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the request, plans the order and starts the driver.
    pub async fn start(
        self: &Arc<Self>,
        spec: RolloutSpec,
        by: &str,
    ) -> Result<RolloutRecord, ClusterError> {
        if spec.argv.first().is_none_or(|a| a.is_empty()) {
            return Err(ClusterError::Invalid(
                "no command given (clusterctl rollout TARGET -- CMD ARGS…)".into(),
            ));
        }
        let nodes = self.cluster.nodes_matching(Some(&spec.target))?;
        if nodes.is_empty() {
            return Err(ClusterError::NoMatch(spec.target.to_string()));
        }
        let batch = crate::jobs::batch::window(&spec.params.batch, nodes.len())
            .map_err(ClusterError::Invalid)?;
        let mut problems = Vec::new();
        for n in &nodes {
            if !n.connected {
                problems.push(format!("{} is not connected", n.node.name));
            } else if n.state == NodeState::Down {
                problems.push(format!("{} is down", n.node.name));
            }
        }
        if !spec.params.allow_last {
            problems.extend(self.last_of_role(&nodes, batch));
        }
        if let Some(busy) = self.busy_with(&nodes) {
            problems.push(busy);
        }
        if !problems.is_empty() {
            return Err(ClusterError::Invalid(problems.join("\n")));
        }
        let id = self.jobs.next_id();
        let mut rec = RolloutRecord {
            id: id.clone(),
            target: spec.target.to_string(),
            selector: selector(&spec.target),
            argv: spec.argv,
            by: by.to_owned(),
            started_ms: now_ms(),
            finished_ms: 0,
            params: spec.params,
            batch_size: batch,
            state: RolloutState::Running,
            nodes: nodes
                .iter()
                .map(|n| (n.node.name.to_string(), NodePhase::Pending))
                .collect(),
            order: nodes.iter().map(|n| n.node.name.to_string()).collect(),
            details: BTreeMap::new(),
            max_out: 0,
            log: Vec::new(),
            master: self.cluster.name().to_owned(),
        };
        rec.log(
            now_ms(),
            "",
            &format!(
                "rollout of {} node(s), {} at a time: {}",
                rec.order.len(),
                batch,
                rec.argv.join(" ")
            ),
        );
        let detail = format!(
            "rollout {id} started on {}: {}",
            rec.target,
            rec.argv.join(" ")
        );
        self.cluster
            .record_rollout(&rec, Some((EventKind::Rollout, detail)))
            .await?;
        self.spawn(rec.clone());
        Ok(rec)
    }

    /// Refuses to act on a rollout another live master is driving: only
    /// its driver can stop it where it is.
    async fn not_elsewhere(&self, rec: &RolloutRecord, what: &str) -> Result<(), ClusterError> {
        if rec.state != RolloutState::Running || rec.master == self.cluster.name() {
            return Ok(());
        }
        let masters = self.cluster.masters().await;
        let Some(driver) = masters
            .topology
            .masters
            .iter()
            .find(|m| m.name == rec.master)
        else {
            return Ok(()); // its master is gone: see `orphans`
        };
        Err(ClusterError::Invalid(format!(
            "rollout {} is driven by master {} ({}); {what} it there: clusterctl --master {} rollout {what} {}",
            rec.id, driver.name, driver.address, driver.address, rec.id
        )))
    }

    /// Running rollouts whose master is gone (no longer campaigning): held
    /// as interrupted, for someone to resume. The leader's work.
    pub async fn orphans(&self) -> Result<usize, ClusterError> {
        let masters = self.cluster.masters().await;
        if masters.topology.store == "sled" {
            return Ok(0);
        }
        let live: Vec<&str> = masters
            .topology
            .masters
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        let mut held = 0;
        for mut rec in self.cluster.rollouts(100).await? {
            if rec.state != RolloutState::Running
                || self.running().contains_key(&rec.id)
                || live.contains(&rec.master.as_str())
            {
                continue;
            }
            rec.state = RolloutState::Interrupted;
            rec.log(
                now_ms(),
                "",
                &format!(
                    "master {} driving it is gone; the rollout holds here (`clusterctl rollout resume` goes on)",
                    if rec.master.is_empty() { "?" } else { &rec.master }
                ),
            );
            self.cluster.record_rollout(&rec, None).await?;
            held += 1;
        }
        Ok(held)
    }

    /// Nodes another running rollout is working on.
    /// The running rollout other than `id` that holds node `name`.
    fn held_elsewhere(&self, id: &str, name: &str) -> Option<String> {
        self.running()
            .values()
            .map(|r| r.record.borrow())
            .find(|rec| rec.id != id && rec.nodes.contains_key(name))
            .map(|rec| rec.id.clone())
    }

    fn busy_with(&self, nodes: &[NodeStatus]) -> Option<String> {
        let running = self.running();
        for r in running.values() {
            let rec = r.record.borrow();
            if let Some(n) = nodes
                .iter()
                .find(|n| rec.nodes.contains_key(n.node.name.as_str()))
            {
                return Some(format!(
                    "{} is part of rollout {}, still running (clusterctl rollout status {})",
                    n.node.name, rec.id, rec.id
                ));
            }
        }
        None
    }

    /// Roles a batch of `batch` targeted nodes could leave with no online
    /// node, one line each.
    fn last_of_role(&self, nodes: &[NodeStatus], batch: usize) -> Vec<String> {
        let all = self.cluster.nodes(&[]).unwrap_or_default();
        let mut roles: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for n in nodes {
            for r in &n.node.roles {
                roles.entry(r.as_str()).or_default().0 += 1;
            }
        }
        let mut out = Vec::new();
        for (role, (targeted, _)) in &roles {
            let online = all
                .iter()
                .filter(|n| n.state == NodeState::Online && n.node.roles.iter().any(|r| r == role))
                .count();
            let out_at_once = batch.min(*targeted);
            if online <= out_at_once {
                out.push(format!(
                    "a batch of {out_at_once} would take out every online node with role {role} ({online} online); use a smaller --batch, or --allow-last to do it anyway"
                ));
            }
        }
        out
    }

    fn spawn(self: &Arc<Self>, rec: RolloutRecord) {
        let (tx, _) = watch::channel(rec.clone());
        let stop = self.halt.child_token();
        self.running().insert(
            rec.id.clone(),
            Running {
                record: tx.clone(),
                stop: stop.clone(),
            },
        );
        let this = self.clone();
        self.tasks.spawn(async move {
            let id = rec.id.clone();
            let elsewhere = |name: &str| this.held_elsewhere(&id, name);
            driver::drive(
                &this.cluster,
                &this.jobs,
                rec,
                &tx,
                stop,
                &this.halt,
                &elsewhere,
            )
            .await;
            this.running().remove(&id);
        });
    }

    /// Stops every driver where it is, leaving its record as last stored
    /// (running: the next start holds it as interrupted), and waits for
    /// them.
    pub async fn shutdown(&self) {
        self.halt.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The rollout as it is now (running or stored).
    pub async fn get(&self, id: &str) -> Result<RolloutRecord, ClusterError> {
        if let Some(r) = self.running().get(id) {
            return Ok(r.record.borrow().clone());
        }
        self.cluster
            .rollout(id)
            .await?
            .ok_or_else(|| ClusterError::Invalid(format!("no rollout {id:?}")))
    }

    /// The newest `limit` rollouts, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<RolloutRecord>, ClusterError> {
        let mut out = self.cluster.rollouts(limit).await?;
        let running = self.running();
        for rec in &mut out {
            if let Some(r) = running.get(&rec.id) {
                *rec = r.record.borrow().clone();
            }
        }
        Ok(out)
    }

    /// A watch on a running rollout; `None` when it is not running (its
    /// stored record is final until resumed).
    pub fn watch(&self, id: &str) -> Option<watch::Receiver<RolloutRecord>> {
        self.running().get(id).map(|r| r.record.subscribe())
    }

    /// Goes on with a rollout that failed, was aborted or interrupted:
    /// failed nodes are tried again first.
    pub async fn resume(
        self: &Arc<Self>,
        id: &str,
        by: &str,
    ) -> Result<RolloutRecord, ClusterError> {
        if self.running().contains_key(id) {
            return Err(ClusterError::Invalid(format!("rollout {id} is running")));
        }
        let mut rec = self.get(id).await?;
        self.not_elsewhere(&rec, "resume").await?;
        rec.master = self.cluster.name().to_owned();
        if rec.state == RolloutState::Succeeded {
            return Err(ClusterError::Invalid(format!(
                "rollout {id} already succeeded"
            )));
        }
        for phase in rec.nodes.values_mut() {
            if !matches!(phase, NodePhase::Done) {
                *phase = NodePhase::Pending;
            }
        }
        rec.state = RolloutState::Running;
        rec.finished_ms = 0;
        rec.log(now_ms(), "", &format!("resumed by {by}"));
        let detail = format!("rollout {id} resumed");
        self.cluster
            .record_rollout(&rec, Some((EventKind::Rollout, detail)))
            .await?;
        self.spawn(rec.clone());
        Ok(rec)
    }

    /// Stops a running rollout after its current step; nodes it drained
    /// stay drained (named in the record) for someone to look at.
    pub async fn abort(&self, id: &str, by: &str) -> Result<RolloutRecord, ClusterError> {
        let found = self
            .running()
            .get(id)
            .map(|r| (r.stop.clone(), r.record.subscribe()));
        let Some((stop, mut rx)) = found else {
            let mut rec = self.get(id).await?;
            self.not_elsewhere(&rec, "abort").await?;
            if matches!(rec.state, RolloutState::Succeeded | RolloutState::Aborted) {
                return Ok(rec);
            }
            rec.state = RolloutState::Aborted;
            rec.finished_ms = now_ms();
            rec.log(now_ms(), "", &format!("aborted by {by}"));
            let event = format!("rollout {id} aborted");
            self.cluster
                .record_rollout(&rec, Some((EventKind::Rollout, event)))
                .await?;
            return Ok(rec);
        };
        stop.cancel();
        // The driver stores the final state and closes the watch.
        while rx.changed().await.is_ok() {}
        self.get(id).await
    }
}

/// What a rollout matches again before each batch: an expression on what
/// nodes are (grains, facts, labels, roles, groups, addresses), not one on
/// their names.
fn selector(target: &TargetSpec) -> Option<Selector> {
    let (kind, expression, delimiter) = match target {
        TargetSpec::Names(_) => return None,
        TargetSpec::Expr(kind, e, d) => (*kind, e.clone(), *d),
        TargetSpec::Parsed(t) => (t.kind(), t.expression().to_owned(), t.delimiter()),
    };
    match kind {
        Kind::Glob | Kind::Regex | Kind::List => None,
        _ => Some(Selector {
            kind,
            expression,
            delimiter,
        }),
    }
}
