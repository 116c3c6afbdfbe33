//! Fan-out benchmark: how long a `run` takes to reach N agents and bring all
//! their results back, and how much memory the master holds while N agent
//! sessions are open. It prints figures; it judges none of them.
//!
//! One process plays every agent: it enrolls `sim-00000`, `sim-00001`, … with
//! a join token (re-enrolling the few whose certificate the master would
//! refuse, see [`refused_certificates`]), then opens one real agent session
//! per node (its own TCP connection, mutual TLS with the node's
//! certificate), acknowledges snapshots and deltas, reports usage every 5 s
//! as a real agent does (so the master does not mark the node down), and
//! answers every `RunJob` at once with exit code 0 (a simulated agent runs
//! nothing). The figure is the time from the `Control.Run` call for
//! `sim-*` until the `Finished` event, with every node's result "ok"; the
//! master's RSS is read from `/proc` after the sessions are open and, every
//! 10 ms, during the runs. Enrolling and connecting are setup, timed
//! separately.
//!
//! ```text
//! cargo build --release -p cluster-tests --bins && target/release/fanout-bench --agents 1000
//! ```
//!
//! Flags: `--agents N` (default 1000), `--runs R` (default 5). Both this
//! process and the master hold one file descriptor per agent, so the open
//! files limit (raised to its hard limit here, and inherited by the master)
//! must exceed N by some headroom; when it does not, the bench says so and
//! exits with status 2.

use cluster_proto as pb;
use cluster_tests::MasterProc;
use pb::agent_message::Msg as Out;
use pb::master_message::Msg as In;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Join calls in flight during enrollment (setup, not measured).
const JOINS_IN_FLIGHT: usize = 16;
/// Connections the joins share, multiplexed over HTTP/2.
const JOIN_CHANNELS: usize = 4;
/// Session handshakes in flight: well under the master's cap of 64
/// concurrent TLS handshakes from one source address.
const HANDSHAKES_IN_FLIGHT: usize = 32;
/// Rounds of re-enrolling nodes whose certificate the master refuses.
const REENROLL_ROUNDS: usize = 5;
/// Attempts to open one session before the bench gives up.
const OPEN_ATTEMPTS: u32 = 3;
/// File descriptors either process needs beyond one per agent connection
/// (listeners, the store's files, the admin and join channels, epoll).
const FD_HEADROOM: u64 = 256;
/// How often a simulated agent reports usage: the real agent's default.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Per-node timeout sent with each run; far above the expected figures.
const RUN_TIMEOUT_MS: u64 = 10_000;
/// Largest response accepted from `Control` (node lists and job records of
/// 10,000 nodes run to a few MB; tonic's default cap is 4 MB).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

type Control = pb::control_client::ControlClient<Channel>;

struct Args {
    agents: usize,
    runs: usize,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .map(|i| {
                args.get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .filter(|v| *v > 0)
                    .unwrap_or_else(|| usage(&format!("{name} takes a positive number")))
            })
            .unwrap_or(default)
    };
    let known = ["--agents", "--runs"];
    if let Some(unknown) = args
        .iter()
        .step_by(2)
        .find(|a| !known.contains(&a.as_str()))
    {
        usage(&format!("unknown argument {unknown:?}"));
    }
    Args {
        agents: value("--agents", 1000),
        runs: value("--runs", 5),
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("fanout-bench: {problem}\nusage: fanout-bench [--agents N] [--runs R]");
    std::process::exit(2);
}

/// Raises the open files limit to the hard limit (the master, started
/// later, inherits it) and checks that `agents` connections fit, on both
/// ends, in it and in the ephemeral port range; if not, says why.
fn ensure_room_for(agents: usize) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the call to fill in and read.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "cannot read the open files limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(lim.rlim_max);
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max.min(nr_open),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the
    // hard one needs no privilege.
    let limit = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        lim.rlim_cur
    };
    let needed = agents as u64 + FD_HEADROOM;
    if needed > limit {
        return Err(format!(
            "{agents} agents need about {needed} open files in this process and as many in the master, \
             but the limit is {limit} (hard limit {}). Raise the hard limit (ulimit -Hn, or LimitNOFILE for a unit) \
             or run with --agents {} or fewer.",
            lim.rlim_max,
            limit.saturating_sub(FD_HEADROOM)
        ));
    }
    if let Some(ports) = ephemeral_ports()
        && needed > ports
    {
        return Err(format!(
            "{agents} agents need as many local ports toward the master, but \
             net.ipv4.ip_local_port_range holds only {ports}; widen it or run with fewer agents."
        ));
    }
    Ok(())
}

/// How many ports the kernel picks source ports from.
fn ephemeral_ports() -> Option<u64> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (low, high) = (bounds.next()??, bounds.next()??);
    Some(high.saturating_sub(low) + 1)
}

/// A simulated node's enrolled identity.
struct SimNode {
    index: usize,
    id: String,
    cert_pem: String,
    key_pem: String,
}

fn node_id(index: usize) -> String {
    format!("sim-{index:05}")
}

/// A TLS endpoint to the master trusting its CA, with `identity` if given.
fn endpoint(url: &str, ca_pem: &str, identity: Option<Identity>) -> Endpoint {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("127.0.0.1");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(url.to_owned())
        .expect("the master's URL is a valid URI")
        .tls_config(tls)
        .expect("the CA and node certificates make a valid TLS configuration")
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
}

/// Enrolls `count` nodes with `token`, then re-enrolls (fresh key) those
/// whose certificate the master would refuse, until none is left; returns
/// the nodes and how many were re-enrolled.
async fn enroll(
    url: &str,
    ca_pem: &str,
    token: &str,
    control: &mut Control,
    count: usize,
) -> Result<(Vec<SimNode>, usize), String> {
    let mut nodes = join_all(url, ca_pem, token, (0..count).collect()).await?;
    let mut reenrolled = 0;
    for _ in 0..REENROLL_ROUNDS {
        let refused = refused_certificates(control, &nodes).await?;
        if refused.is_empty() {
            return Ok((nodes, reenrolled));
        }
        reenrolled += refused.len();
        let request = pb::DecideKeysRequest {
            node_ids: refused.iter().map(|i| node_id(*i)).collect(),
            decision: pb::KeyDecision::Delete as i32,
        };
        control
            .decide_keys(request)
            .await
            .map_err(|e| format!("cannot delete the refused keys: {e}"))?;
        for node in join_all(url, ca_pem, token, refused).await? {
            let index = node.index;
            nodes[index] = node;
        }
    }
    Err(format!(
        "still refused certificates after {REENROLL_ROUNDS} rounds of re-enrollment"
    ))
}

/// The indexes of nodes whose certificate carries another serial than the
/// one the master recorded for their key, which it therefore refuses ("no
/// longer accepted"). The master draws 16 random bytes per serial and
/// records them all as hex, but DER drops a leading zero byte, so about one
/// certificate in 256 reads back with a shorter serial.
async fn refused_certificates(
    control: &mut Control,
    nodes: &[SimNode],
) -> Result<Vec<usize>, String> {
    let keys = control
        .list_keys(pb::ListKeysRequest {})
        .await
        .map_err(|e| format!("ListKeys failed: {e}"))?
        .into_inner()
        .keys;
    let recorded: HashMap<String, String> =
        keys.into_iter().map(|k| (k.node_id, k.serial)).collect();
    let mut refused = Vec::new();
    for node in nodes {
        let serial = certificate_serial(&node.cert_pem)
            .map_err(|e| format!("the certificate of {} is unreadable: {e}", node.id))?;
        if recorded.get(&node.id) != Some(&serial) {
            refused.push(node.index);
        }
    }
    Ok(refused)
}

/// The serial (hex) the master reads from a certificate, as it reads it.
fn certificate_serial(cert_pem: &str) -> Result<String, String> {
    let certs = cluster_master::pki::pem_certs(cert_pem).map_err(|e| e.to_string())?;
    let der = certs.first().ok_or("no certificate in the PEM")?;
    let (_, serial) = cluster_master::pki::identity(der).map_err(|e| e.to_string())?;
    Ok(serial)
}

/// Joins the nodes `indexes`: a fresh key each, `JOINS_IN_FLIGHT` joins at
/// a time over `JOIN_CHANNELS` shared connections; sorted by index.
async fn join_all(
    url: &str,
    ca_pem: &str,
    token: &str,
    indexes: Vec<usize>,
) -> Result<Vec<SimNode>, String> {
    let mut channels = Vec::new();
    for _ in 0..JOIN_CHANNELS {
        let channel = endpoint(url, ca_pem, None)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to the master to enroll: {e:?}"))?;
        channels.push(channel);
    }
    let slots = Arc::new(Semaphore::new(JOINS_IN_FLIGHT));
    let mut joins = JoinSet::new();
    for (i, index) in indexes.iter().copied().enumerate() {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let client =
            pb::enrollment_client::EnrollmentClient::new(channels[i % JOIN_CHANNELS].clone());
        let token = token.to_owned();
        joins.spawn(async move {
            let _permit = permit;
            join(client, index, token).await
        });
    }
    let mut nodes = Vec::with_capacity(indexes.len());
    while let Some(joined) = joins.join_next().await {
        nodes.push(joined.map_err(|e| format!("a join task failed: {e}"))??);
    }
    nodes.sort_by_key(|n| n.index);
    Ok(nodes)
}

/// `Enrollment.Join` for one node; its certificate when accepted.
async fn join(
    mut client: pb::enrollment_client::EnrollmentClient<Channel>,
    index: usize,
    token: String,
) -> Result<SimNode, String> {
    let id = node_id(index);
    let (key_pem, csr_pem) = cluster_master::pki::new_key_and_csr(&id)
        .map_err(|e| format!("cannot make a key and CSR for {id}: {e}"))?;
    let request = pb::JoinRequest {
        node_id: id.clone(),
        csr_pem,
        token,
    };
    let resp = client
        .join(request)
        .await
        .map_err(|e| format!("join of {id} failed: {e}"))?
        .into_inner();
    if resp.status != pb::JoinStatus::Accepted as i32 {
        return Err(format!(
            "join of {id} was not accepted (status {}): {}",
            resp.status, resp.message
        ));
    }
    Ok(SimNode {
        index,
        id,
        cert_pem: resp.cert_pem,
        key_pem,
    })
}

/// Sessions that ended before the bench did.
#[derive(Default)]
struct Ended {
    count: AtomicUsize,
    /// Set when the bench stops the master: sessions ending after that are
    /// expected.
    closing: AtomicBool,
}

/// Opens one agent session per node, `HANDSHAKES_IN_FLIGHT` at a time; each
/// then runs on its own task until the process exits.
async fn open_sessions(
    url: &str,
    ca_pem: &str,
    nodes: Vec<SimNode>,
    ended: Arc<Ended>,
) -> Result<(), String> {
    let slots = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT));
    let mut opening = JoinSet::new();
    for node in nodes {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let identity = Identity::from_pem(&node.cert_pem, &node.key_pem);
        let endpoint = endpoint(url, ca_pem, Some(identity));
        let ended = ended.clone();
        opening.spawn(async move {
            let session = open_session(&endpoint, &node).await;
            drop(permit);
            let (client, tx, inbound) = session?;
            tokio::spawn(async move {
                let why = serve(node.index, client, tx, inbound).await;
                if ended.closing.load(Ordering::Relaxed) {
                    return;
                }
                if ended.count.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("fanout-bench: session of {} ended: {why}", node.id);
                }
            });
            Ok::<(), String>(())
        });
    }
    while let Some(opened) = opening.join_next().await {
        opened.map_err(|e| format!("a session task failed: {e}"))??;
    }
    Ok(())
}

type Session = (
    pb::agent_service_client::AgentServiceClient<Channel>,
    mpsc::Sender<pb::AgentMessage>,
    Streaming<pb::MasterMessage>,
);

/// Connects (own TLS connection) and opens the session with `Hello`,
/// retrying a few times; returns once the master has answered.
async fn open_session(endpoint: &Endpoint, node: &SimNode) -> Result<Session, String> {
    let mut last_error = String::new();
    for attempt in 0..OPEN_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => {
                last_error = format!("cannot connect: {e:?}");
                continue;
            }
        };
        let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
        let (tx, rx) = mpsc::channel(16);
        tx.send(hello(&node.id))
            .await
            .expect("the receiver is still here");
        match client.session(ReceiverStream::new(rx)).await {
            Ok(resp) => return Ok((client, tx, resp.into_inner())),
            Err(status) => last_error = format!("session refused: {status}"),
        }
    }
    Err(format!(
        "cannot open the session of {} after {OPEN_ATTEMPTS} attempts: {last_error}",
        node.id
    ))
}

fn hello(id: &str) -> pb::AgentMessage {
    pb::AgentMessage {
        msg: Some(Out::Hello(pb::Hello {
            node_id: id.to_owned(),
            grains_json: "{}".into(),
            roles: vec!["sim".into()],
            health_url: String::new(),
            addresses: vec!["127.0.0.1".into()],
            agent_version: "fanout-bench".into(),
            report_interval_ms: REPORT_INTERVAL.as_millis() as u32,
            ..Default::default()
        })),
    }
}

/// What a simulated agent answers to a message from the master.
fn reply_to(msg: pb::MasterMessage) -> Option<pb::AgentMessage> {
    let ack = |generation| {
        Out::Ack(pb::Ack {
            generation,
            health_status: "online".into(),
        })
    };
    let reply = match msg.msg? {
        In::Snapshot(s) => ack(s.generation),
        In::Delta(d) => ack(d.generation),
        In::Run(job) => Out::Done(pb::JobDone {
            job_id: job.job_id,
            exit_code: 0,
            duration_ms: 0,
            ..Default::default()
        }),
        // Cancels, and anything the protocol adds: nothing to do here.
        _ => return None,
    };
    Some(pb::AgentMessage { msg: Some(reply) })
}

fn usage_report() -> pb::AgentMessage {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    pb::AgentMessage {
        msg: Some(Out::Usage(pb::Usage {
            sampled_at_ms: now_ms,
            ..Default::default()
        })),
    }
}

/// One open session: answers the master and reports usage until the
/// session ends; returns why it ended. Holds `_client` so the connection
/// lives as long as the session.
async fn serve(
    index: usize,
    _client: pb::agent_service_client::AgentServiceClient<Channel>,
    tx: mpsc::Sender<pb::AgentMessage>,
    mut inbound: Streaming<pb::MasterMessage>,
) -> String {
    // Spread the reports over the interval, as agents started at different
    // times would.
    let offset = REPORT_INTERVAL * (index % 1000) as u32 / 1000;
    let mut reports =
        tokio::time::interval_at(tokio::time::Instant::now() + offset, REPORT_INTERVAL);
    reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reply = tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(msg)) => reply_to(msg),
                Ok(None) => return "the master closed it".into(),
                Err(status) => return format!("stream error: {status}"),
            },
            _ = reports.tick() => Some(usage_report()),
        };
        if let Some(reply) = reply
            && tx.send(reply).await.is_err()
        {
            return "the outbound stream closed".into();
        }
    }
}

/// Waits until the master lists `count` connected `sim-` nodes.
async fn wait_connected(
    control: &mut Control,
    count: usize,
    patience: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    loop {
        let nodes = control
            .list_nodes(pb::ListNodesRequest::default())
            .await
            .map_err(|e| format!("ListNodes failed: {e}"))?
            .into_inner()
            .nodes;
        let connected = nodes
            .iter()
            .filter(|n| n.connected && n.name.starts_with("sim-"))
            .count();
        if connected == count {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {connected} of {count} nodes listed as connected after {patience:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// When each stage of one run was seen, from the `Run` call.
struct RunTiming {
    /// `JobStarted` arrived: the job is stored and its driver running.
    started: Duration,
    /// The last `NodeStarted`: every node's `RunJob` handed to its session.
    dispatched: Duration,
    /// The last `NodeDone`: every result is in.
    last_result: Duration,
    /// `Finished`: the job record is stored; the figure.
    finished: Duration,
}

/// One `run 'sim-*' -- true`, read to its end; checks that all `count`
/// nodes answered "ok".
async fn run_once(control: &mut Control, count: usize) -> Result<RunTiming, String> {
    use pb::run_event::Event;
    let request = pb::RunRequest {
        target: Some(pb::Target {
            kind: pb::TargetKind::Glob as i32,
            expr: "sim-*".into(),
            names: vec![],
        }),
        argv: vec!["true".into()],
        timeout_ms: RUN_TIMEOUT_MS,
        batch: String::new(),
    };
    let t0 = Instant::now();
    let mut events = control
        .run(request)
        .await
        .map_err(|e| format!("Run failed: {e}"))?
        .into_inner();
    let zero = Duration::ZERO;
    let (mut started, mut dispatched, mut last_result) = (zero, zero, zero);
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
            Some(Event::NodeStarted(_)) => dispatched = t0.elapsed(),
            Some(Event::NodeDone(_)) => {
                results += 1;
                last_result = t0.elapsed();
            }
            Some(Event::Finished(summary)) => {
                let finished = t0.elapsed();
                let job = summary.job.ok_or("`finished` without its job")?;
                let ok = job.results.iter().filter(|r| r.status == "ok").count();
                if ok != count || results != count {
                    let other = job.results.iter().find(|r| r.status != "ok");
                    return Err(format!(
                        "{ok} of {count} nodes ok ({results} results streamed); e.g. {other:?}"
                    ));
                }
                return Ok(RunTiming {
                    started,
                    dispatched,
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
fn master_pid(data_dir: &Path) -> Option<u32> {
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
fn status_kib(pid: &str, field: &str) -> Option<u64> {
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
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th.
    let mut fields = stat[stat.rfind(')')? + 2..].split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64(ticks as f64 / per_sec))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples a process's RSS every 10 ms on its own thread (so a busy
/// runtime does not skip samples) until [`RssSampler::peak`].
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: String) -> RssSampler {
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
    fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler does not panic")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Marks the sessions' end as expected when dropped. Declared after the
/// master in [`bench`], so it drops first: however the bench returns, the
/// sessions closing with the master are not reported as lost.
struct Closing(Arc<Ended>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.closing.store(true, Ordering::Relaxed);
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    cluster_tests::crypto();
    let args = parse_args();
    if let Err(e) = ensure_room_for(args.agents) {
        eprintln!("fanout-bench: {e}");
        std::process::exit(2);
    }
    if let Err(e) = bench(args).await {
        eprintln!("fanout-bench: {e}");
        std::process::exit(1);
    }
}

/// Sets up the master and the sessions, runs, prints the figures. Errors
/// return (never exit) so the master is dropped, hence killed, on the way.
async fn bench(Args { agents, runs }: Args) -> Result<(), String> {
    let master = MasterProc::builder().spawn();
    let ended = Arc::new(Ended::default());
    let _closing = Closing(ended.clone());
    let admin = master.admin();
    let pid = master_pid(master.data_dir()).ok_or("cannot find the master's process in /proc")?;
    let (token, _fingerprint) = master.join_token();
    let ca_pem = std::fs::read_to_string(&admin.ca)
        .map_err(|e| format!("cannot read {}: {e}", admin.ca.display()))?;
    let url = master.url();
    let mut control = pb::control_client::ControlClient::new(admin.channel().await)
        .max_decoding_message_size(MAX_RESPONSE);

    let started = Instant::now();
    let (nodes, reenrolled) = enroll(&url, &ca_pem, &token, &mut control, agents)
        .await
        .map_err(|e| format!("enrollment failed: {e}"))?;
    let enrollment = started.elapsed();
    eprintln!(
        "enrolled {agents} nodes in {:.1}s ({reenrolled} re-enrolled: their certificate's serial was not the one the master recorded)",
        enrollment.as_secs_f64()
    );

    let started = Instant::now();
    open_sessions(&url, &ca_pem, nodes, ended.clone())
        .await
        .map_err(|e| format!("opening the sessions failed: {e}"))?;
    let patience = Duration::from_secs(60) + Duration::from_millis(10) * agents as u32;
    wait_connected(&mut control, agents, patience).await?;
    let sessions_open = started.elapsed();
    let pid = pid.to_string();
    let rss_open = status_kib(&pid, "VmRSS").unwrap_or(0);
    eprintln!(
        "{agents} sessions open in {:.1}s; master RSS {:.1} MiB",
        sessions_open.as_secs_f64(),
        mib(rss_open)
    );

    let sampler = RssSampler::start(pid.clone());
    let cpu_before = (cpu_time(&pid), cpu_time("self"));
    let mut times = Vec::with_capacity(runs);
    for run in 1..=runs {
        let t = run_once(&mut control, agents)
            .await
            .map_err(|e| format!("run {run}: {e}"))?;
        eprintln!(
            "  run {run}: {:.1}ms (job started +{:.1}ms, all dispatched +{:.1}ms, last result +{:.1}ms, finished +{:.1}ms)",
            ms(t.finished),
            ms(t.started),
            ms(t.dispatched),
            ms(t.last_result),
            ms(t.finished)
        );
        times.push(t.finished);
    }
    let rss_peak = sampler.peak();
    let cpu_per_run = |before: Option<Duration>, now: Option<Duration>| match (before, now) {
        (Some(b), Some(n)) => ms(n.saturating_sub(b) / runs as u32),
        _ => f64::NAN,
    };
    let master_cpu = cpu_per_run(cpu_before.0, cpu_time(&pid));
    let own_cpu = cpu_per_run(cpu_before.1, cpu_time("self"));
    let own_rss = status_kib("self", "VmRSS").unwrap_or(0);
    let lifetime_peak = status_kib(&pid, "VmHWM").unwrap_or(0);

    times.sort();
    println!(
        "fan-out to {agents} simulated agents (mTLS sessions), {runs} runs of `run 'sim-*' -- true`: \
         p50={:.1}ms max={:.1}ms; master RSS after sessions open: {:.1} MiB, peak during runs: {:.1} MiB; \
         load generator RSS: {:.1} MiB",
        ms(percentile(&times, 0.5)),
        ms(*times.last().expect("at least one run")),
        mib(rss_open),
        mib(rss_peak),
        mib(own_rss)
    );
    println!(
        "setup: enrollment {:.1}s ({JOINS_IN_FLIGHT} joins in flight, {reenrolled} re-enrolled), \
         sessions open {:.1}s ({HANDSHAKES_IN_FLIGHT} handshakes in flight)",
        enrollment.as_secs_f64(),
        sessions_open.as_secs_f64(),
    );
    println!(
        "CPU per run: master {master_cpu:.0}ms, load generator {own_cpu:.0}ms (one machine, {} cores); \
         master peak RSS over its life (VmHWM): {:.1} MiB",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mib(lifetime_peak)
    );
    match ended.count.load(Ordering::Relaxed) {
        0 => Ok(()),
        lost => Err(format!("{lost} sessions ended during the bench")),
    }
}
