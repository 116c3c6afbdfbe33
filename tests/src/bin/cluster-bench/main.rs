//! Benchmarks that print figures (never assertions): run from `bench/run.sh`
//! in a release build, results recorded in `bench/RESULTS.md`.
//!
//! - `drain [--cycles N] [--agents N]` — time from a drain request to the
//!   agent's `/health` answering 503 (and undrain → 200), p50/p90/p99/max.
//! - `idle [--seconds N] [--agents N]` — an agent's RSS and CPU share at
//!   the default report interval.
//! - `enroll [--runs N]` — time from starting `cluster-agent` with a join
//!   token (fresh key, fresh data directory) to the node being listed as
//!   connected by the master.
//! - `hosts [--runs N]` — render + write of a 10,000-node hosts block; and
//!   the time from a new agent's start (with a token) until its line is in
//!   the hosts files of 3 other agents.
//! - `cluster [--agents N]` — start a cluster, print the master URL and keep
//!   it running until stdin closes, for timing whole clusterctl commands.
//! - `limits [--seconds N]` — the master's RSS and drain latency while it
//!   is flooded, in turn, with handshakes with a foreign certificate
//!   (refused) and joins without a token (1,000 a second each), then by 4
//!   callers with the largest target expression allowed (1,000 regex
//!   terms, ~52 KiB) and 2 MB ones (refused); against the same master idle.
//!   The floods run on their own runtime, apart from the timed drains.
//! - `plan [--upstreams N] [--routes N] [--runs N]` — `clusterctl plan` of
//!   a cluster file with N upstreams (default 10,000; two servers each) and
//!   routes to some of them (default none): against an empty cluster
//!   (every line an add), and, once applied, against itself (no change);
//!   with the file's size and the part clusterctl spends reading it.

mod limits;

use cluster_proto as pb;
use cluster_tests::{AgentProc, MasterProc, eventually};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

async fn start(agents: u64, report_interval: Duration) -> (MasterProc, Vec<AgentProc>) {
    let master = MasterProc::builder().spawn();
    let procs: Vec<AgentProc> = (0..agents)
        .map(|i| {
            AgentProc::builder(&format!("node{}", i + 1), &master)
                .addr(&format!("127.0.0.{}", i + 2))
                .report_interval(report_interval)
                .spawn()
        })
        .collect();
    let url = master.admin();
    eventually("all agents connected", Duration::from_secs(30), || async {
        let out = cluster_tests::ctl(&url, &["nodes", "-o", "json"]).await;
        out.code == 0
            && out.json().as_array().is_some_and(|a| {
                a.len() as u64 == agents && a.iter().all(|n| n["connected"] == true)
            })
    })
    .await;
    (master, procs)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        v.len(),
        ms(percentile(&v, 0.50)),
        ms(percentile(&v, 0.90)),
        ms(percentile(&v, 0.99)),
        ms(*v.last().unwrap()),
    );
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// Drains `agent` and undrains it: the time from each request to its
/// `/health` answering 503, then 200.
async fn drain_cycle(
    control: &mut pb::control_client::ControlClient<tonic::transport::Channel>,
    http: &Http,
    agent: &AgentProc,
) -> (Duration, Duration) {
    let mut took = [Duration::ZERO; 2];
    for (i, (offline, want)) in [(true, 503), (false, 200)].into_iter().enumerate() {
        let started = Instant::now();
        control
            .drain(pb::DrainRequest {
                names: vec![agent.id.clone()],
                offline,
                reason: "bench".into(),
                by: "bench".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let deadline = started + Duration::from_secs(5);
        loop {
            let resp = http.get(agent.health_url.parse().unwrap()).await.unwrap();
            let code = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            if code == want {
                break;
            }
            assert!(Instant::now() < deadline, "health never answered {want}");
        }
        took[i] = started.elapsed();
    }
    (took[0], took[1])
}

/// [`drain_cycle`] `cycles` times on one agent: every drain and undrain.
async fn drain_cycles(
    control: &mut pb::control_client::ControlClient<tonic::transport::Channel>,
    agent: &AgentProc,
    cycles: u64,
) -> Vec<Duration> {
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let mut out = Vec::new();
    for _ in 0..cycles {
        let (drained, undrained) = drain_cycle(control, &http, agent).await;
        out.extend([drained, undrained]);
    }
    out
}

async fn drain(args: &[String]) {
    let cycles = arg(args, "--cycles", 500);
    let agents = arg(args, "--agents", 3);
    let (master, procs) = start(agents, Duration::from_secs(5)).await;
    let mut control = pb::control_client::ControlClient::new(master.admin().channel().await);
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let mut drains = Vec::new();
    let mut undrains = Vec::new();
    for cycle in 0..cycles {
        let agent = &procs[(cycle % agents) as usize];
        let (drained, undrained) = drain_cycle(&mut control, &http, agent).await;
        drains.push(drained);
        undrains.push(undrained);
    }
    println!(
        "drain propagation, {agents} agents, {cycles} cycles (request sent → /health answers):"
    );
    summary("  drain → 503", drains);
    summary("  undrain → 200", undrains);
}

/// (RSS in KiB, CPU ticks) of a process, from /proc.
fn proc_sample(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    (rss, ticks)
}

async fn idle(args: &[String]) {
    let seconds = arg(args, "--seconds", 60);
    let agents = arg(args, "--agents", 1);
    let (_master, procs) = start(agents, Duration::from_secs(5)).await;
    // Let start-up settle (first reports, allocator warm-up).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let pids: Vec<u32> = procs.iter().map(|p| p.pid().unwrap()).collect();
    let before: Vec<_> = pids.iter().map(|p| proc_sample(*p)).collect();
    let started = Instant::now();
    let mut max_rss = vec![0u64; pids.len()];
    while started.elapsed() < Duration::from_secs(seconds) {
        for (i, p) in pids.iter().enumerate() {
            max_rss[i] = max_rss[i].max(proc_sample(*p).0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    for (i, p) in pids.iter().enumerate() {
        let (rss, ticks) = proc_sample(*p);
        let cpu = (ticks - before[i].1) as f64 / ticks_per_sec / wall * 100.0;
        println!(
            "agent idle ({}s, report every 5s): rss_kb_max={} rss_kb_end={} cpu_percent={:.3}",
            seconds, max_rss[i], rss, cpu
        );
    }
}

async fn enroll(args: &[String]) {
    let runs = arg(args, "--runs", 20);
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    master.join_token();
    let mut control = pb::control_client::ControlClient::new(admin.channel().await);
    let mut times = Vec::new();
    for i in 0..runs {
        let id = format!("new-{i}");
        let started = Instant::now();
        let agent = AgentProc::builder(&id, &master)
            .addr(&format!("127.0.1.{}", i % 250 + 1))
            .spawn();
        loop {
            let nodes = control
                .list_nodes(pb::ListNodesRequest::default())
                .await
                .unwrap()
                .into_inner()
                .nodes;
            if nodes.iter().any(|n| n.name == id && n.connected) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} never listed"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(started.elapsed());
        drop(agent);
    }
    println!("enrollment with a token, {runs} fresh agents (process start → listed as connected):");
    summary("  start → listed", times);
}

async fn hosts(args: &[String]) {
    use cluster_agent::hosts::{HostEntry, HostsFile};
    let runs = arg(args, "--runs", 20);
    // Render + atomic write of a 10,000-line block; each run changes one
    // line so every write is real.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    std::fs::write(
        &path,
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n",
    )
    .unwrap();
    let file = HostsFile::new(&path);
    let mut entries: Vec<HostEntry> = (0..10_000u32)
        .map(|i| HostEntry {
            address: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
            names: vec![format!("web-{i}.example.com"), format!("web-{i}")],
        })
        .collect();
    let mut writes = Vec::new();
    for run in 0..runs {
        entries[0].names[1] = format!("web-first-{run}");
        let started = Instant::now();
        file.apply(&entries).unwrap();
        writes.push(started.elapsed());
    }
    println!(
        "hosts block of 10,000 nodes, {runs} changes (render + temp file + fsync + rename + fsync dir):"
    );
    summary("  render + write", writes);

    // Enrollment → the new node's line in every other agent's file.
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    master.join_token();
    let others: Vec<AgentProc> = (0..3)
        .map(|i| {
            AgentProc::builder(&format!("base-{i}"), &master)
                .addr(&format!("127.0.0.{}", i + 2))
                .config("service = \"base\"")
                .spawn()
        })
        .collect();
    eventually("3 agents connected", Duration::from_secs(30), || async {
        let out = cluster_tests::ctl(&admin, &["nodes", "-o", "json"]).await;
        out.code == 0
            && out
                .json()
                .as_array()
                .is_some_and(|a| a.iter().filter(|n| n["connected"] == true).count() == 3)
    })
    .await;
    let mut times = Vec::new();
    for i in 0..runs {
        let id = format!("new-{i}");
        let started = Instant::now();
        let mut agent = AgentProc::builder(&id, &master)
            .addr(&format!("127.0.1.{}", i % 250 + 1))
            .config("service = \"joiner\"")
            .spawn();
        // Its name is joiner-0 each time (the previous one is removed).
        loop {
            let everywhere = others.iter().all(|o| {
                std::fs::read_to_string(o.hosts_file())
                    .is_ok_and(|t| t.contains("\tjoiner-0\n") || t.contains(" joiner-0\n"))
            });
            if everywhere {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id}'s line never arrived"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
        agent.kill();
        eventually(
            "the joiner disconnected",
            Duration::from_secs(30),
            || async {
                let out = cluster_tests::ctl(&admin, &["nodes", &id, "-o", "json"]).await;
                out.code == 0 && out.json()[0]["connected"] == false
            },
        )
        .await;
        cluster_tests::ctl(&admin, &["nodes", "remove", &id])
            .await
            .ok();
    }
    println!(
        "a new agent started with a token → its line in the hosts files of 3 agents, {runs} joins:"
    );
    summary("  start → line everywhere", times);
}

async fn cluster(args: &[String]) {
    let agents = arg(args, "--agents", 3);
    let (master, _procs) = start(agents, Duration::from_secs(5)).await;
    // The URL, then the files clusterctl needs (CLUSTERCTL_CA, _CERT, _KEY).
    let admin = master.admin();
    println!("{}", admin.url);
    println!("{}", admin.ca.display());
    println!("{}", admin.cert.display());
    println!("{}", admin.key.display());
    // Until stdin closes.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await;
}

/// A cluster file with `n` upstreams of two servers each, and routes to
/// the first `routes` of them.
fn cluster_file(n: u64, routes: u64) -> String {
    let mut text = String::from("[cluster]\nname = \"bench\"\n\n");
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        text.push_str(&format!(
            "[upstreams.u{i}]\nservers = [{{ addr = \"10.{a}.{b}.1:80\" }}, {{ addr = \"10.{a}.{b}.2:80\", backup = true }}]\n\n"
        ));
    }
    for i in 0..routes.min(n) {
        text.push_str(&format!(
            "[routes.\"d{i}.example\"]\ninit = \"b\"\nrules.b = {{ type = \"backend\", upstream = \"u{i}\" }}\n\n"
        ));
    }
    text
}

async fn plan(args: &[String]) {
    let n = arg(args, "--upstreams", 10_000);
    let routes = arg(args, "--routes", 0);
    let runs = arg(args, "--runs", 5) as usize;
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    let text = cluster_file(n, routes);
    std::fs::write(&path, &text).unwrap();
    let file = path.to_str().unwrap();
    println!(
        "cluster file: {n} upstreams and {routes} routes, {:.2} MB",
        text.len() as f64 / 1e6
    );
    let timed = |what: &'static str, command: &'static str| {
        let admin = admin.clone();
        async move {
            let mut times = Vec::new();
            for _ in 0..runs {
                let started = Instant::now();
                let out = cluster_tests::ctl(&admin, &[command, file]).await;
                times.push(started.elapsed());
                assert_eq!(out.code, 0, "{what}: {}", out.stderr);
            }
            summary(what, times);
        }
    };
    let mut reads = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let desired = cluster_model::clusterfile::parse(&text).expect("the file reads");
        let _json = serde_json::to_string(&desired).unwrap();
        reads.push(started.elapsed());
    }
    summary(
        "of which clusterctl reading the file and encoding it",
        reads,
    );
    timed("plan, every line an add", "plan").await;
    let started = Instant::now();
    cluster_tests::ctl(&admin, &["apply", file]).await.ok();
    println!("apply: {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    timed("plan, no change", "plan").await;
}

#[tokio::main]
async fn main() {
    cluster_tests::crypto();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("drain") => drain(&args).await,
        Some("idle") => idle(&args).await,
        Some("enroll") => enroll(&args).await,
        Some("hosts") => hosts(&args).await,
        Some("cluster") => cluster(&args).await,
        Some("limits") => limits::limits(&args).await,
        Some("plan") => plan(&args).await,
        _ => {
            eprintln!(
                "usage: cluster-bench drain|idle|enroll|hosts|cluster|limits|plan [--cycles N] [--agents N] [--seconds N] [--upstreams N]"
            );
            std::process::exit(2);
        }
    }
}
