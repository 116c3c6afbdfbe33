//! One measured run, and reading the master's memory and CPU from /proc.

use super::*;

/// When each stage of one run was seen, from the `Run` call.
pub(crate) struct RunTiming {
    /// `JobStarted` arrived: the job is stored and its driver running.
    pub(crate) started: Duration,
    /// The last `NodeDone`: every result is in.
    pub(crate) last_result: Duration,
    /// `Finished`: the job record is stored; the figure.
    pub(crate) finished: Duration,
}

/// One `run 'sim-*' -- true`, read to its end; checks that all `count`
/// nodes answered "ok".
pub(crate) async fn run_once(control: &mut Control, count: usize) -> Result<RunTiming, String> {
    use pb::run_event::Event;
    let request = pb::RunRequest {
        target: Some(pb::Target {
            kind: pb::TargetKind::Glob as i32,
            expr: "sim-*".into(),
            names: vec![],
            ..Default::default()
        }),
        argv: vec!["true".into()],
        timeout_ms: RUN_TIMEOUT_MS,
        batch: String::new(),
        builtin: String::new(),
    };
    let t0 = Instant::now();
    let mut events = control
        .run(request)
        .await
        .map_err(|e| format!("Run failed: {e}"))?
        .into_inner();
    let zero = Duration::ZERO;
    let (mut started, mut last_result) = (zero, zero);
    let mut results = 0;
    while let Some(event) = events
        .message()
        .await
        .map_err(|e| format!("the run's event stream broke: {e}"))?
    {
        match event.event {
            Some(Event::Started(s)) => {
                started = t0.elapsed();
                if !s.not_connected.is_empty() {
                    return Err(format!("{} nodes not connected", s.not_connected.len()));
                }
            }
            // The master no longer sends per-node start events.
            Some(Event::NodeStarted(_)) => {}
            Some(Event::NodeDone(_)) => {
                results += 1;
                last_result = t0.elapsed();
            }
            Some(Event::Finished(summary)) => {
                let finished = t0.elapsed();
                let job = summary.job.ok_or("`finished` without its job")?;
                let ok = job
                    .results
                    .iter()
                    .filter(|r| r.status == pb::JobStatus::Ok as i32)
                    .count();
                if ok != count || results != count {
                    let other = job
                        .results
                        .iter()
                        .find(|r| r.status != pb::JobStatus::Ok as i32);
                    return Err(format!(
                        "{ok} of {count} nodes ok ({results} results streamed); e.g. {other:?}"
                    ));
                }
                return Ok(RunTiming {
                    started,
                    last_result,
                    finished,
                });
            }
            Some(Event::Output(_)) | None => {}
        }
    }
    Err("the run's event stream ended without `finished`".into())
}

/// The pid of the master serving `data_dir`: the process whose program is
/// `cluster-master` and whose arguments name that directory.
pub(crate) fn master_pid(data_dir: &Path) -> Option<u32> {
    let dir = data_dir.as_os_str().as_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut args = cmdline.split(|b| *b == 0);
            let is_master = args.next()?.ends_with(b"cluster-master");
            (is_master && args.any(|a| a == dir)).then_some(pid)
        })
}

/// A line of `/proc/<pid>/status` in KiB, e.g. `VmRSS`.
pub(crate) fn status_kib(pid: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time a process has used (user + system, all threads), from
/// `/proc/<pid>/stat`; clock-tick resolution (10 ms here).
pub(crate) fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th.
    let mut fields = stat[stat.rfind(')')? + 2..].split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64(ticks as f64 / per_sec))
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples a process's RSS every 10 ms on its own thread (so a busy
/// runtime does not skip samples) until [`RssSampler::peak`].
pub(crate) struct RssSampler {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    pub(crate) fn start(pid: String) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(status_kib(&pid, "VmRSS").unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(10));
                }
                peak
            })
        };
        RssSampler { stop, thread }
    }

    /// Stops sampling; the highest RSS seen, in KiB.
    pub(crate) fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler does not panic")
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
