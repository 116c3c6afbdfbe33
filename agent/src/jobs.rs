//! Running the commands the master sends: no shell (argv as given), in a
//! process group of its own, output streamed back in chunks as it comes,
//! bounded by the job's output limit.
//!
//! A timeout or a cancel kills the whole process group (SIGTERM, then
//! SIGKILL after [`KILL_GRACE`]), so nothing the command started is left
//! behind. When the session that brought a job ends, the job is cancelled:
//! its result could not be delivered anyway. `remote_exec = false` in the
//! agent's config refuses every job with a clear error.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use cluster_model::job::{Builtin, JobDone, JobOutput, OutputStream};

pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long output may keep flowing after the command exited (a child it
/// left in the background may hold the pipes open).
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    /// Empty for a built-in job.
    pub argv: Vec<String>,
    pub builtin: Option<Builtin>,
    pub timeout: Option<Duration>,
    pub output_limit: u64,
    /// Set in the command's environment (`CLUSTERCTL_NODE`, `CLUSTERCTL_JOB`).
    pub env: Vec<(String, String)>,
}

/// What a job reports back, in order: output chunks, then one `Done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    Output(JobOutput),
    Done(JobDone),
}

pub struct Runner {
    enabled: bool,
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Collects facts for `refresh_facts`; `None`: the job fails clearly.
    facts: Option<crate::facts_refresh::Refresher>,
}

impl Runner {
    pub fn new(enabled: bool) -> Arc<Runner> {
        Arc::new(Runner {
            enabled,
            running: Mutex::new(HashMap::new()),
            facts: None,
        })
    }

    /// A runner that also does the built-in jobs.
    pub fn with_facts(enabled: bool, facts: crate::facts_refresh::Refresher) -> Arc<Runner> {
        Arc::new(Runner {
            enabled,
            running: Mutex::new(HashMap::new()),
            facts: Some(facts),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `job`; its events go to `events`.
    pub fn start(self: &Arc<Self>, job: Job, events: mpsc::Sender<JobEvent>) {
        let token = CancellationToken::new();
        self.running().insert(job.id.clone(), token.clone());
        let runner = self.clone();
        tokio::spawn(async move {
            let id = job.id.clone();
            let outcome = if let Some(b) = job.builtin {
                // Runs no program: allowed where remote execution is off.
                builtin(runner.facts.as_ref(), b, &job, &events, token).await
            } else if runner.enabled {
                run(job, &events, token).await
            } else {
                JobDone {
                    job_id: id.clone(),
                    exit_code: -1,
                    error: "remote execution is disabled on this node (remote_exec = false)".into(),
                    ..JobDone::default()
                }
            };
            runner.running().remove(&id);
            let _ = events.send(JobEvent::Done(outcome)).await;
        });
    }

    pub fn cancel(&self, job_id: &str) {
        if let Some(t) = self.running().get(job_id) {
            t.cancel();
        }
    }

    pub fn cancel_all(&self) {
        for t in self.running().values() {
            t.cancel();
        }
    }
}

/// A built-in job: its line on stdout, exit 0; or its error. The session
/// sends the facts it published before its result.
async fn builtin(
    facts: Option<&crate::facts_refresh::Refresher>,
    b: Builtin,
    job: &Job,
    events: &mpsc::Sender<JobEvent>,
    token: CancellationToken,
) -> JobDone {
    let started = Instant::now();
    let mut outcome = JobDone {
        job_id: job.id.clone(),
        ..JobDone::default()
    };
    let said = match (b, facts) {
        (Builtin::RefreshFacts, Some(f)) => {
            let timeout = async {
                match job.timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                said = f.refresh() => said,
                _ = timeout => {
                    outcome.timed_out = true;
                    Err("collecting facts took longer than the job's timeout".into())
                }
                _ = token.cancelled() => {
                    outcome.cancelled = true;
                    Err("cancelled".into())
                }
            }
        }
        (Builtin::RefreshFacts, None) => Err("this agent collects no facts".into()),
    };
    match said {
        Ok(line) => {
            let data = format!("{line}\n").into_bytes();
            let out = JobOutput {
                job_id: job.id.clone(),
                stream: OutputStream::Stdout,
                data,
            };
            let _ = events.send(JobEvent::Output(out)).await;
        }
        Err(_) if outcome.timed_out || outcome.cancelled => outcome.exit_code = -1,
        Err(e) => {
            outcome.exit_code = 1;
            outcome.error = e;
        }
    }
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    outcome
}

fn kill_group(pgid: Option<u32>, signal: i32) {
    if let Some(pgid) = pgid {
        // The group's id is the leader's pid (process_group(0) below).
        unsafe {
            libc::kill(-(pgid as i32), signal);
        }
    }
}

async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    stream: OutputStream,
    job_id: String,
    events: mpsc::Sender<JobEvent>,
    budget: Arc<Mutex<(u64, u64)>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let send = {
            let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
            let (left, dropped) = &mut *b;
            let take = (*left).min(n as u64) as usize;
            *left -= take as u64;
            *dropped += (n - take) as u64;
            take
        };
        if send > 0 {
            let ev = JobEvent::Output(JobOutput {
                job_id: job_id.clone(),
                stream,
                data: buf[..send].to_vec(),
            });
            if events.send(ev).await.is_err() {
                return;
            }
        }
    }
}

async fn run(job: Job, events: &mpsc::Sender<JobEvent>, token: CancellationToken) -> JobDone {
    let started = Instant::now();
    let mut outcome = JobDone {
        job_id: job.id.clone(),
        ..JobDone::default()
    };
    let Some((program, args)) = job.argv.split_first() else {
        outcome.exit_code = -1;
        outcome.error = "no command given".into();
        return outcome;
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            outcome.exit_code = 127;
            outcome.error = format!("cannot run {program:?}: {e}");
            return outcome;
        }
    };
    let pgid = child.id();
    let budget = Arc::new(Mutex::new((job.output_limit, 0u64)));
    let pumps = [
        tokio::spawn(pump(
            child.stdout.take().expect("piped"),
            OutputStream::Stdout,
            job.id.clone(),
            events.clone(),
            budget.clone(),
        )),
        tokio::spawn(pump(
            child.stderr.take().expect("piped"),
            OutputStream::Stderr,
            job.id.clone(),
            events.clone(),
            budget.clone(),
        )),
    ];
    let timeout = async {
        match job.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let status = tokio::select! {
        status = child.wait() => status,
        _ = timeout => {
            outcome.timed_out = true;
            stop(&mut child, pgid).await
        }
        _ = token.cancelled() => {
            outcome.cancelled = true;
            stop(&mut child, pgid).await
        }
    };
    for p in pumps {
        let abort = p.abort_handle();
        if tokio::time::timeout(DRAIN, p).await.is_err() {
            abort.abort();
        }
    }
    outcome.exit_code = match &status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => -1,
    };
    if let Err(e) = status {
        outcome.error = format!("cannot wait for the command: {e}");
    }
    outcome.dropped_bytes = budget.lock().unwrap_or_else(|e| e.into_inner()).1;
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    outcome
}

/// SIGTERM to the group, SIGKILL after the grace, then reap.
async fn stop(
    child: &mut tokio::process::Child,
    pgid: Option<u32>,
) -> std::io::Result<std::process::ExitStatus> {
    kill_group(pgid, libc::SIGTERM);
    match tokio::time::timeout(KILL_GRACE, child.wait()).await {
        Ok(status) => {
            // The leader is gone; make sure nothing it started outlives it.
            kill_group(pgid, libc::SIGKILL);
            status
        }
        Err(_) => {
            kill_group(pgid, libc::SIGKILL);
            child.wait().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(runner: &Arc<Runner>, job: Job) -> (Vec<u8>, Vec<u8>, JobDone) {
        let (tx, mut rx) = mpsc::channel(64);
        runner.start(job, tx);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(ev) = rx.recv().await {
            match ev {
                JobEvent::Output(JobOutput {
                    stream: OutputStream::Stdout,
                    data,
                    ..
                }) => out.extend(data),
                JobEvent::Output(JobOutput {
                    stream: OutputStream::Stderr,
                    data,
                    ..
                }) => err.extend(data),
                JobEvent::Done(o) => return (out, err, o),
            }
        }
        panic!("no outcome");
    }

    fn job(argv: &[&str]) -> Job {
        Job {
            id: "j1".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            builtin: None,
            timeout: None,
            output_limit: 1 << 20,
            env: Vec::new(),
        }
    }

    #[tokio::test]
    async fn output_and_exit_codes_come_back() {
        let r = Runner::new(true);
        let (out, err, o) = collect(&r, job(&["sh", "-c", "echo hi; echo oops >&2; exit 3"])).await;
        assert_eq!(
            (out.as_slice(), err.as_slice(), o.exit_code),
            (&b"hi\n"[..], &b"oops\n"[..], 3)
        );
        assert!(o.error.is_empty());
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_not_a_panic() {
        let (_, _, o) = collect(&Runner::new(true), job(&["/nonexistent/prog"])).await;
        assert_eq!(o.exit_code, 127);
        assert!(
            o.error.contains("cannot run \"/nonexistent/prog\""),
            "{}",
            o.error
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The command starts a grandchild in the background and waits.
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let mut j = job(&["sh", "-c", &script]);
        j.timeout = Some(Duration::from_millis(300));
        let (_, _, o) = collect(&Runner::new(true), j).await;
        assert!(o.timed_out);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is gone (or a zombie awaiting its reaper). A
        // signal is delivered before the process finishes dying, so allow
        // it a bounded moment; `sleep 30` outliving it means no signal.
        let alive = || {
            (unsafe { libc::kill(pid, 0) }) == 0
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ")
        };
        let patience = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < patience {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!alive(), "grandchild {pid} survived 5 s after the timeout");
    }

    #[tokio::test]
    async fn output_beyond_the_limit_is_dropped_and_counted() {
        let mut j = job(&["sh", "-c", "head -c 10000 /dev/zero"]);
        j.output_limit = 4096;
        let (out, _, o) = collect(&Runner::new(true), j).await;
        assert_eq!(out.len(), 4096);
        assert_eq!(o.dropped_bytes, 10000 - 4096);
    }

    #[tokio::test]
    async fn disabled_remote_execution_refuses_clearly() {
        let (_, _, o) = collect(&Runner::new(false), job(&["true"])).await;
        assert!(
            o.error.contains("remote execution is disabled"),
            "{}",
            o.error
        );
    }

    #[tokio::test]
    async fn cancel_stops_a_running_job() {
        let r = Runner::new(true);
        let (tx, mut rx) = mpsc::channel(64);
        r.start(job(&["sleep", "30"]), tx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        r.cancel("j1");
        let o = loop {
            if let Some(JobEvent::Done(o)) = rx.recv().await {
                break o;
            }
        };
        assert!(o.cancelled);
        assert_eq!(o.exit_code, 128 + libc::SIGTERM);
    }
}
