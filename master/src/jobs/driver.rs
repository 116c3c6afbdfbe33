//! One task per job: start nodes up to the window, collect what they
//! report, finish each node exactly once, store the record.

use super::{Jobs, LiveJob, Report};
use crate::cluster::{Cluster, ClusterError};
use cluster_model::job::{Builtin, JobCommand, JobDone, RunEvent};
use cluster_model::time::now_ms;
use cluster_model::{EventKind, JobNodeResult, JobRecord, JobStatus, TargetSpec};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long past its timeout a node may stay silent before the master
/// gives up on it; also how long cancelled nodes get to confirm.
const GRACE: Duration = Duration::from_secs(5);
/// What an agent may stream for one job; beyond it output is dropped and
/// counted.
const STREAM_LIMIT: u64 = 16 * 1024 * 1024;

/// A job as asked for.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub target: TargetSpec,
    /// Empty for a built-in job.
    pub argv: Vec<String>,
    pub builtin: Option<Builtin>,
    pub timeout: Option<Duration>,
    pub batch: String,
}

/// A node the job runs on; its output is kept in the job's [`LiveJob`].
struct Running {
    name: String,
    started: Instant,
    deadline: Option<Instant>,
}

impl Running {
    /// Its result, without the output (`LiveJob::finish` adds it).
    fn finish(self, status: JobStatus, exit_code: i32, error: String) -> JobNodeResult {
        JobNodeResult {
            node: self.name,
            status,
            exit_code,
            duration_ms: self.started.elapsed().as_millis() as u64,
            error,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
        }
    }
}

fn status_of(d: &JobDone) -> JobStatus {
    if !d.error.is_empty() {
        JobStatus::Error
    } else if d.cancelled {
        JobStatus::Cancelled
    } else if d.timed_out {
        JobStatus::TimedOut
    } else if d.exit_code == 0 {
        JobStatus::Ok
    } else {
        JobStatus::Failed
    }
}

fn unstarted(name: String, status: JobStatus, error: &str) -> JobNodeResult {
    JobNodeResult {
        node: name,
        status,
        exit_code: -1,
        duration_ms: 0,
        error: error.to_owned(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        truncated: false,
    }
}

/// Checks the request, selects the nodes and starts the job; its events
/// arrive on the returned receiver, the first being `RunEvent::Started`.
/// Dropping the receiver cancels the job on every node.
pub async fn start(
    cluster: Arc<Cluster>,
    jobs: Arc<Jobs>,
    spec: RunSpec,
    by: String,
) -> Result<mpsc::Receiver<RunEvent>, ClusterError> {
    match (&spec.builtin, spec.argv.first()) {
        (Some(b), Some(_)) => {
            return Err(ClusterError::Invalid(format!(
                "a built-in job ({}) takes no command",
                b.name()
            )));
        }
        (None, None) => {
            return Err(ClusterError::Invalid(
                "no command given (clusterctl run TARGET -- CMD ARGS…)".into(),
            ));
        }
        (None, Some(program)) if program.is_empty() => {
            return Err(ClusterError::Invalid(
                "no command given (clusterctl run TARGET -- CMD ARGS…)".into(),
            ));
        }
        _ => {}
    }
    let nodes: Vec<(String, String, bool)> = cluster
        .select(&spec.target)?
        .into_iter()
        .map(|(id, name, connected)| (id.into_string(), name, connected))
        .collect();
    let connected = nodes.iter().filter(|n| n.2).count();
    let window = super::batch::window(&spec.batch, connected).map_err(ClusterError::Invalid)?;
    let job_id = jobs.next_id();
    let record = JobRecord {
        id: job_id.clone(),
        argv: spec.argv.clone(),
        builtin: spec.builtin,
        target: spec.target.to_string(),
        by: by.clone(),
        started_ms: now_ms(),
        finished_ms: 0,
        results: Vec::new(),
    };
    let detail = format!(
        "job {job_id} on {} node(s): {}",
        nodes.len(),
        record.command()
    );
    cluster
        .record_job(&record, Some((EventKind::Job, detail)))
        .await?;
    let reports = jobs.register(&job_id);
    let live = Arc::new(LiveJob::new(
        nodes.iter().map(|n| n.1.clone()),
        jobs.output_cap,
    ));
    jobs.show(&job_id, live.clone());
    let (events, rx) = mpsc::channel(256);
    jobs.tasks.clone().spawn(drive(
        cluster, jobs, spec, record, nodes, window, reports, events, live,
    ));
    Ok(rx)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    cluster: Arc<Cluster>,
    jobs: Arc<Jobs>,
    spec: RunSpec,
    mut record: JobRecord,
    nodes: Vec<(String, String, bool)>,
    window: usize,
    mut reports: mpsc::Receiver<(String, Report)>,
    events: mpsc::Sender<RunEvent>,
    live: Arc<LiveJob>,
) {
    let job_id = record.id.clone();
    let emit = |e: RunEvent| {
        let events = events.clone();
        async move {
            let _ = events.send(e).await;
        }
    };
    let not_connected: Vec<String> = nodes.iter().filter(|n| !n.2).map(|n| n.1.clone()).collect();
    emit(RunEvent::Started {
        job_id: job_id.clone(),
        matched: nodes.iter().map(|n| n.1.clone()).collect(),
        not_connected: not_connected.clone(),
    })
    .await;
    for name in not_connected {
        let r = live.finish(unstarted(
            name,
            JobStatus::NotConnected,
            "no session with the node",
        ));
        emit(RunEvent::NodeDone(r)).await;
    }

    let mut queue: VecDeque<(String, String)> = nodes
        .into_iter()
        .filter(|n| n.2)
        .map(|(id, name, _)| (id, name))
        .collect();
    let mut running: HashMap<String, Running> = HashMap::new();
    // The earliest deadline first, without scanning every running node.
    let mut deadlines: BTreeSet<(Instant, String)> = BTreeSet::new();
    let mut cancelled = false;
    loop {
        while !cancelled && running.len() < window {
            let Some((id, name)) = queue.pop_front() else {
                break;
            };
            let cmd = JobCommand::Run {
                job_id: job_id.clone(),
                argv: spec.argv.clone(),
                builtin: spec.builtin,
                timeout: spec.timeout,
                output_limit: STREAM_LIMIT,
            };
            if cluster.command(&id, cmd).await {
                let started = Instant::now();
                let deadline = spec.timeout.map(|t| started + t + GRACE);
                if let Some(d) = deadline {
                    deadlines.insert((d, id.clone()));
                }
                live.started(&name);
                running.insert(
                    id,
                    Running {
                        name,
                        started,
                        deadline,
                    },
                );
            } else {
                let r = live.finish(unstarted(
                    name,
                    JobStatus::NotConnected,
                    "the session ended before the job started",
                ));
                emit(RunEvent::NodeDone(r)).await;
            }
        }
        if running.is_empty() && (queue.is_empty() || cancelled) {
            break;
        }
        let next_deadline = deadlines.first().map(|(d, _)| *d);
        tokio::select! {
            report = reports.recv() => {
                let Some((node_id, report)) = report else { break };
                match report {
                    Report::Output { stream, data } => {
                        if let Some(r) = running.get(&node_id) {
                            live.output(&r.name, stream, &data);
                            let node = r.name.clone();
                            emit(RunEvent::Output { node, stream, data }).await;
                        }
                    }
                    Report::Done(done) => {
                        if let Some(r) = running.remove(&node_id) {
                            if let Some(d) = r.deadline {
                                deadlines.remove(&(d, node_id.clone()));
                            }
                            let status = status_of(&done);
                            let mut error = done.error.clone();
                            if done.dropped_bytes > 0 {
                                error = format!("{error}{}the agent dropped {} bytes of output over its limit", if error.is_empty() { "" } else { "; " }, done.dropped_bytes);
                            }
                            let mut result = r.finish(status, done.exit_code, error);
                            result.duration_ms = done.duration_ms;
                            emit(RunEvent::NodeDone(live.finish(result))).await;
                        }
                    }
                    Report::Gone => {
                        if let Some(r) = running.remove(&node_id) {
                            if let Some(d) = r.deadline {
                                deadlines.remove(&(d, node_id.clone()));
                            }
                            let result = r.finish(JobStatus::Lost, -1, "the node's session ended before it answered".into());
                            emit(RunEvent::NodeDone(live.finish(result))).await;
                        }
                    }
                }
            }
            _ = sleep_until(next_deadline) => {
                let now = Instant::now();
                let mut expired = Vec::new();
                while let Some((d, id)) = deadlines.first().cloned() {
                    if d > now {
                        break;
                    }
                    deadlines.remove(&(d, id.clone()));
                    expired.push(id);
                }
                for id in expired {
                    let r = running.remove(&id).expect("listed above");
                    let (status, why) = if cancelled {
                        (JobStatus::Cancelled, "cancelled; the agent did not confirm")
                    } else {
                        (JobStatus::TimedOut, "no answer from the agent within the timeout")
                    };
                    let _ = cluster.command(&id, JobCommand::Cancel { job_id: job_id.clone() }).await;
                    let result = r.finish(status, -1, why.into());
                    emit(RunEvent::NodeDone(live.finish(result))).await;
                }
            }
            _ = events.closed(), if !cancelled => {
                // The caller went away (Ctrl-C): stop everywhere.
                cancelled = true;
                let until = Instant::now() + GRACE;
                for (id, r) in running.iter_mut() {
                    let _ = cluster.command(id, JobCommand::Cancel { job_id: job_id.clone() }).await;
                    let d = r.deadline.map_or(until, |d| d.min(until));
                    if let Some(old) = r.deadline.replace(d) {
                        deadlines.remove(&(old, id.clone()));
                    }
                    deadlines.insert((d, id.clone()));
                }
            }
        }
    }
    for (_, name) in queue {
        live.finish(unstarted(
            name,
            JobStatus::Cancelled,
            "not started: the job was cancelled",
        ));
    }
    jobs.unregister(&job_id);
    record.results = live.results();
    record.finished_ms = now_ms();
    for r in &record.results {
        cluster.counters.job_result(r.status.label());
    }
    if let Err(e) = cluster.record_job(&record, None).await {
        tracing::error!(job = %job_id, error = %e, "cannot store the job's results");
    }
    // Its page reads the stored record from now on.
    live.finished();
    jobs.unshow(&job_id);
    emit(RunEvent::Finished(record)).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
