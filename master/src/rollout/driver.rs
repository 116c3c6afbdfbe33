//! One task per running rollout: batches through the loop, the record
//! stored after every step, every wait bounded and woken by the cluster's
//! changes (never a sleep standing in for a signal).

use crate::cluster::Cluster;
use crate::jobs::{self, Jobs, RunSpec};
use cluster_model::job::RunEvent;
use cluster_model::rollout::{NodePhase, RolloutRecord, RolloutState};
use cluster_model::time::now_ms;
use cluster_model::{EventKind, JobStatus, TargetSpec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What is still pending, for a log line.
fn joined(pending: &[cluster_model::rotation::Pending]) -> String {
    pending
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shown as the drain reason of the nodes a rollout has out.
fn reason(rec: &RolloutRecord) -> String {
    format!("rollout {}", rec.id)
}

struct Ctx<'a> {
    cluster: &'a Arc<Cluster>,
    jobs: &'a Arc<Jobs>,
    tx: &'a watch::Sender<RolloutRecord>,
    stop: &'a CancellationToken,
}

impl Ctx<'_> {
    /// Publishes to watchers and stores it.
    async fn save(&self, rec: &RolloutRecord, event: Option<String>) {
        self.tx.send_replace(rec.clone());
        let event = event.map(|d| (EventKind::Rollout, d));
        if let Err(e) = self.cluster.record_rollout(rec, event).await {
            tracing::error!(rollout = %rec.id, error = %e, "cannot store the rollout's progress");
        }
    }

    /// Takes `nodes` out with `why` as the reason (they stay so).
    async fn fail(&self, rec: &mut RolloutRecord, nodes: &[String], why: &str) {
        for n in nodes {
            rec.set(n, NodePhase::Failed);
            rec.details.insert(n.clone(), why.to_owned());
            rec.log(now_ms(), n, &format!("failed: {why}; left drained"));
        }
        let spec = TargetSpec::Names(nodes.to_vec());
        let r = format!("rollout {} failed: {why}", rec.id);
        if let Err(e) = self.cluster.set_offline(&spec, Some(r), &rec.by).await {
            tracing::error!(rollout = %rec.id, error = %e, "cannot mark failed nodes");
        }
        self.save(rec, None).await;
    }
}

pub async fn drive(
    cluster: &Arc<Cluster>,
    jobs: &Arc<Jobs>,
    mut rec: RolloutRecord,
    tx: &watch::Sender<RolloutRecord>,
    stop: CancellationToken,
    halt: &CancellationToken,
    elsewhere: &(dyn Fn(&str) -> Option<String> + Sync),
) {
    let ctx = Ctx {
        cluster,
        jobs,
        tx,
        stop: &stop,
    };
    loop {
        if stop.is_cancelled() {
            break;
        }
        let failed = rec.count(NodePhase::Failed);
        if failed > rec.params.max_failures as usize {
            rec.state = RolloutState::Failed;
            break;
        }
        if rematch(cluster, &mut rec, elsewhere) {
            ctx.save(&rec, None).await;
        }
        // Failed nodes stay out of rotation: they count against the batch.
        let room = rec.batch_size.saturating_sub(failed);
        let pending: Vec<String> = rec
            .order
            .iter()
            .filter(|n| rec.nodes.get(*n) == Some(&NodePhase::Pending))
            .cloned()
            .collect();
        if pending.is_empty() {
            rec.state = if failed == 0 {
                RolloutState::Succeeded
            } else {
                RolloutState::Failed
            };
            break;
        }
        if room == 0 {
            rec.log(
                now_ms(),
                "",
                &format!(
                    "{failed} failed node(s) fill the batch of {}; halting",
                    rec.batch_size
                ),
            );
            rec.state = RolloutState::Failed;
            break;
        }
        let batch: Vec<String> = pending.into_iter().take(room).collect();
        batch_step(&ctx, &mut rec, batch).await;
    }
    if halt.is_cancelled() {
        // The master is stopping: the record stays as last stored, and the
        // next start holds the rollout as interrupted.
        return;
    }
    if stop.is_cancelled() && rec.state == RolloutState::Running {
        rec.state = RolloutState::Aborted;
        let out: Vec<&str> = rec
            .order
            .iter()
            .filter(|n| rec.nodes.get(*n).is_some_and(|p| p.is_out()))
            .map(String::as_str)
            .collect();
        let left = if out.is_empty() {
            "no node left drained".to_owned()
        } else {
            format!(
                "left drained: {} (clusterctl undrain {})",
                out.join(", "),
                out.join(" ")
            )
        };
        rec.log(now_ms(), "", &format!("aborted; {left}"));
    }
    rec.finished_ms = now_ms();
    let summary = match rec.state {
        RolloutState::Succeeded => match rec.count(NodePhase::Skipped) {
            0 => format!("all {} node(s) done", rec.order.len()),
            skipped => format!(
                "{} node(s) done, {skipped} skipped (no longer matching the target)",
                rec.count(NodePhase::Done)
            ),
        },
        RolloutState::Failed => {
            let failed = rec.failed();
            format!(
                "halted: {} failed ({}); fix and `clusterctl rollout resume {}`",
                failed.len(),
                failed.join(", "),
                rec.id
            )
        }
        _ => rec.state.as_str().to_owned(),
    };
    rec.log(now_ms(), "", &summary);
    let event = format!("rollout {} {}: {summary}", rec.id, rec.state.as_str());
    ctx.save(&rec, Some(event)).await;
}

/// Matches the rollout's target again (grains, facts, roles may have
/// changed since the last batch): a node that now matches joins the end of
/// the order if it is connected and up and in no other running rollout; a
/// pending node that no longer matches is skipped. Nodes past pending are
/// the rollout's whatever they match now. Whether anything moved.
fn rematch(
    cluster: &Cluster,
    rec: &mut RolloutRecord,
    elsewhere: &(dyn Fn(&str) -> Option<String> + Sync),
) -> bool {
    let Some(selector) = &rec.selector else {
        return false;
    };
    let now = match cluster.nodes_matching(Some(&selector.spec())) {
        Ok(now) => now,
        // Matching nothing is an error for a request, not here.
        Err(crate::cluster::ClusterError::NoMatch(_)) => Vec::new(),
        Err(e) => {
            tracing::warn!(rollout = %rec.id, error = %e, "cannot match the rollout's target again; its nodes stay as they are");
            return false;
        }
    };
    let mut moved = false;
    let at = now_ms();
    for name in rec.order.clone() {
        if rec.nodes.get(&name) == Some(&NodePhase::Pending)
            && !now.iter().any(|n| n.node.name.as_str() == name)
        {
            rec.set(&name, NodePhase::Skipped);
            rec.details
                .insert(name.clone(), "no longer matches the target".into());
            rec.log(at, &name, "skipped: no longer matches the target");
            moved = true;
        }
    }
    for n in &now {
        let name = n.node.name.as_str();
        if rec.nodes.contains_key(name)
            || !n.connected
            || n.state == cluster_model::NodeState::Down
            || elsewhere(name).is_some()
        {
            continue;
        }
        rec.order.push(name.to_owned());
        rec.set(name, NodePhase::Pending);
        rec.log(at, name, "joins: now matches the target");
        moved = true;
    }
    moved
}

/// The names of `names` that are nodes of the cluster.
fn known(cluster: &Cluster, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| cluster.nodes(std::slice::from_ref(*n)).is_ok())
        .cloned()
        .collect()
}

/// Runs `wait` unless the rollout is stopped first (`None` then).
async fn or_stop<T>(
    stop: &CancellationToken,
    wait: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        // A stop wins over whatever else is ready at the same moment: a
        // stopping master must not act on what its own shutdown caused
        // (sessions ending, jobs lost).
        biased;
        _ = stop.cancelled() => None,
        v = wait => Some(v),
    }
}

async fn batch_step(ctx: &Ctx<'_>, rec: &mut RolloutRecord, batch: Vec<String>) {
    let cluster = ctx.cluster;
    let known = known(cluster, &batch);
    let gone: Vec<String> = batch
        .iter()
        .filter(|n| !known.contains(*n))
        .cloned()
        .collect();
    if !gone.is_empty() {
        ctx.fail(rec, &gone, "no longer in the cluster").await;
    }
    let names = known;
    if names.is_empty() {
        return;
    }

    // 1. Out of rotation, really.
    for n in &names {
        rec.set(n, NodePhase::Draining);
        rec.log(now_ms(), n, "draining");
    }
    ctx.save(rec, None).await;
    let drained = cluster
        .set_offline(
            &TargetSpec::Names(names.clone()),
            Some(reason(rec)),
            &rec.by,
        )
        .await;
    let changes = match drained {
        Ok((_, changes)) => changes,
        Err(e) => {
            ctx.fail(rec, &names, &format!("cannot drain: {e}")).await;
            return;
        }
    };
    let out_targets = cluster.spec_generations(&changes);
    let started = Instant::now();
    let drain_timeout = Duration::from_millis(rec.params.drain_timeout_ms);
    let Some(left) = or_stop(
        ctx.stop,
        cluster.wait_rotation(drain_timeout, |st| st.out_pending(&out_targets)),
    )
    .await
    else {
        return;
    };
    if !left.is_empty() {
        let why = format!(
            "still in rotation after {}: {}",
            humantime::format_duration(drain_timeout),
            joined(&left)
        );
        ctx.fail(rec, &names, &why).await;
        return;
    }
    for n in &names {
        rec.log(
            now_ms(),
            n,
            &format!("out of rotation ({} ms)", started.elapsed().as_millis()),
        );
    }

    // 2. The command.
    for n in &names {
        rec.set(n, NodePhase::Running);
    }
    ctx.save(rec, None).await;
    let spec = RunSpec {
        target: TargetSpec::Names(names.clone()),
        argv: rec.argv.clone(),
        builtin: None,
        timeout: (rec.params.command_timeout_ms > 0)
            .then(|| Duration::from_millis(rec.params.command_timeout_ms)),
        batch: String::new(),
    };
    let mut events =
        match jobs::start(cluster.clone(), ctx.jobs.clone(), spec, rec.by.clone()).await {
            Ok(rx) => rx,
            Err(e) => {
                ctx.fail(rec, &names, &format!("cannot run the command: {e}"))
                    .await;
                return;
            }
        };
    let mut failed: Vec<(String, String)> = Vec::new();
    loop {
        let Some(ev) = or_stop(ctx.stop, events.recv()).await else {
            return; // dropping `events` cancels the job everywhere
        };
        match ev {
            Some(RunEvent::Started { job_id, .. }) => {
                rec.log(
                    now_ms(),
                    "",
                    &format!("job {job_id} on {}", names.join(", ")),
                );
            }
            Some(RunEvent::NodeDone(r)) => {
                if r.status == JobStatus::Ok {
                    let said = String::from_utf8_lossy(&r.stdout)
                        .lines()
                        .last()
                        .map(|l| format!(": {}", l.chars().take(200).collect::<String>()))
                        .unwrap_or_default();
                    rec.log(
                        now_ms(),
                        &r.node,
                        &format!("command done in {} ms{said}", r.duration_ms),
                    );
                } else {
                    let last = String::from_utf8_lossy(if r.stderr.is_empty() {
                        &r.stdout
                    } else {
                        &r.stderr
                    })
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>();
                    let mut why = format!("command {}", r.status.as_str());
                    if r.status == JobStatus::Failed {
                        why.push_str(&format!(" with exit code {}", r.exit_code));
                    }
                    if !r.error.is_empty() {
                        why.push_str(&format!(": {}", r.error));
                    }
                    if !last.is_empty() {
                        why.push_str(&format!(": {last}"));
                    }
                    failed.push((r.node.clone(), why));
                }
            }
            Some(RunEvent::Output { .. }) => {}
            Some(RunEvent::Finished(_)) | None => break,
        }
    }
    for (node, why) in &failed {
        ctx.fail(rec, std::slice::from_ref(node), why).await;
    }
    let ok: Vec<String> = names
        .iter()
        .filter(|n| !failed.iter().any(|(f, _)| f == *n))
        .cloned()
        .collect();
    if ok.is_empty() {
        return;
    }

    // 3. Healthy for a while.
    for n in &ok {
        rec.set(n, NodePhase::WaitingHealthy);
    }
    ctx.save(rec, None).await;
    let Some(unhealthy) = or_stop(ctx.stop, healthy_for(cluster, &ok, rec)).await else {
        return;
    };
    for (node, why) in &unhealthy {
        ctx.fail(rec, std::slice::from_ref(node), why).await;
    }
    let ok: Vec<String> = ok
        .into_iter()
        .filter(|n| !unhealthy.iter().any(|(u, _)| u == n))
        .collect();
    if ok.is_empty() {
        return;
    }

    // 4. Back in rotation.
    for n in &ok {
        rec.set(n, NodePhase::Undraining);
        rec.log(now_ms(), n, "healthy; undraining");
    }
    ctx.save(rec, None).await;
    let back = cluster
        .set_offline(&TargetSpec::Names(ok.clone()), None, &rec.by)
        .await;
    let changes = match back {
        Ok((_, changes)) => changes,
        Err(e) => {
            ctx.fail(rec, &ok, &format!("cannot undrain: {e}")).await;
            return;
        }
    };
    let in_targets = cluster.spec_generations(&changes);
    let started = Instant::now();
    let patience = Duration::from_millis(rec.params.health_timeout_ms);
    let Some(left) = or_stop(
        ctx.stop,
        cluster.wait_rotation(patience, |st| st.in_pending(&in_targets)),
    )
    .await
    else {
        return;
    };
    if !left.is_empty() {
        let why = format!(
            "not back in rotation after {}: {}",
            humantime::format_duration(patience),
            joined(&left)
        );
        ctx.fail(rec, &ok, &why).await;
        return;
    }
    for n in &ok {
        rec.set(n, NodePhase::Done);
        rec.log(
            now_ms(),
            n,
            &format!("back in rotation ({} ms)", started.elapsed().as_millis()),
        );
    }
    ctx.save(rec, None).await;
}

/// Waits until every node in `names` is connected with all its local
/// checks passing, without a break, for `healthy_for`; bounded by
/// `health_timeout`. Returns the nodes that did not make it, with why.
async fn healthy_for(
    cluster: &Cluster,
    names: &[String],
    rec: &RolloutRecord,
) -> Vec<(String, String)> {
    let need = Duration::from_millis(rec.params.healthy_for_ms);
    let deadline = Instant::now() + Duration::from_millis(rec.params.health_timeout_ms);
    let mut rx = cluster.changes();
    let mut since: HashMap<String, Instant> = HashMap::new();
    loop {
        rx.borrow_and_update();
        let now = Instant::now();
        let mut why: Vec<(String, String)> = Vec::new();
        for name in names {
            let state = cluster
                .nodes(std::slice::from_ref(name))
                .ok()
                .and_then(|v| v.into_iter().next());
            let problem = match &state {
                None => Some("no longer in the cluster".to_owned()),
                Some(n) if !n.connected => Some("its agent is not connected".to_owned()),
                Some(n) => n
                    .checks
                    .iter()
                    .find(|c| !c.passing)
                    .map(|c| format!("check {} failing: {}", c.name, c.output)),
            };
            match problem {
                Some(p) => {
                    since.remove(name);
                    why.push((name.clone(), p));
                }
                None => {
                    since.entry(name.clone()).or_insert(now);
                }
            }
        }
        let due = names
            .iter()
            .filter_map(|n| since.get(n).map(|s| *s + need))
            .max();
        if why.is_empty() && due.is_some_and(|d| d <= now) {
            return Vec::new();
        }
        if now >= deadline {
            let mut out = why;
            for n in names {
                if !out.iter().any(|(o, _)| o == n) && since.get(n).is_none_or(|s| *s + need > now)
                {
                    out.push((n.clone(), "not healthy for long enough".into()));
                }
            }
            return out
                .into_iter()
                .map(|(n, p)| {
                    let t = humantime::format_duration(Duration::from_millis(
                        rec.params.health_timeout_ms,
                    ));
                    (n, format!("not healthy within {t}: {p}"))
                })
                .collect();
        }
        let wake = match due {
            Some(d) if why.is_empty() => d.min(deadline),
            _ => deadline,
        };
        let _ = tokio::time::timeout_at(wake, rx.changed()).await;
    }
}
