//! Figures for the monitor: what the master's usage history costs.
//!
//!   monitor-bench history --nodes 10000 --minutes 60 --every 5s
//!   monitor-bench alert --runs 10
//!
//! `history` fills the history as the master's monitor does (one push per
//! node and report, in time order, a fleet of reports at a time) and
//! prints what it holds: the rings' own accounting and the process's
//! resident memory before and after, and how long a fleet's round of
//! pushes takes.
//!
//! `alert`: a real master, agent and Alertmanager (its webhook receiver
//! too) on loopback; a busy loop per core started through `clusterctl
//! run` takes the node's CPU past its critical line (`for = "0s"`), then
//! stops. Per run: from the agent's sample that crossed the line (its
//! time, as the master's history keeps it) to the alert at Alertmanager
//! and at the webhook; and to the resolution's arrival after the sample
//! under the clear line. The agent reports every second.

use cluster_master::monitor::UsageHistory;
use cluster_model::{DiskUsage, NodeId, Usage};
use std::time::{Duration, Instant};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn history(args: &[String]) {
    let nodes: usize = arg(args, "--nodes", 10_000);
    let minutes: u64 = arg(args, "--minutes", 60);
    let every = humantime::parse_duration(&arg(args, "--every", "5s".to_owned()))
        .expect("--every is a duration");
    let ids: Vec<NodeId> = (0..nodes)
        .map(|i| NodeId::new(format!("node-{i:05}")).expect("an id"))
        .collect();
    let before = rss_kib();
    let mut h = UsageHistory::new(Duration::from_secs(minutes * 60));
    let rounds = (minutes * 60 * 1000 / every.as_millis() as u64) as usize + 1;
    let mut usage = Usage {
        mem_total_bytes: 8 << 30,
        swap_total_bytes: 1 << 30,
        disks: vec![DiskUsage {
            mount: "/".into(),
            total_bytes: 100 << 30,
            available_bytes: 40 << 30,
        }],
        ..Usage::default()
    };
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for r in 0..rounds {
        let round = Instant::now();
        usage.sampled_at_ms = 1_700_000_000_000 + r as u64 * every.as_millis() as u64;
        for (i, id) in ids.iter().enumerate() {
            usage.cpu_percent = ((r + i) % 100) as f64;
            usage.mem_used_bytes = ((r * 7 + i) % 100) as u64 * (80 << 20);
            usage.load = [((r + i) % 400) as f64 / 100.0, 0.0, 0.0];
            usage.net_rx_bytes_per_sec = (r * 1000 + i) as u64;
            h.push(id, &usage);
        }
        slowest = slowest.max(round.elapsed());
    }
    let took = start.elapsed();
    let after = rss_kib();
    let samples: usize = ids.iter().take(1).map(|id| h.of(id, 0).len()).sum();
    println!(
        "history: {nodes} nodes × {samples} samples ({minutes} min every {}): {:.1} MiB held by the rings, process RSS +{:.1} MiB ({:.1} → {:.1} MiB)",
        humantime::format_duration(every),
        h.bytes() as f64 / (1 << 20) as f64,
        after.saturating_sub(before) as f64 / 1024.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
    );
    println!(
        "history: {} pushes in {:.2} s ({:.0} ns each); one round of {nodes} reports at most {:.1} ms",
        nodes * rounds,
        took.as_secs_f64(),
        took.as_nanos() as f64 / (nodes * rounds) as f64,
        slowest.as_secs_f64() * 1000.0
    );
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Waits for a sample under 50 % CPU (the loop of the run before is over).
async fn started_calm(admin: &cluster_tests::Admin, patience: Duration) {
    let since = now_ms();
    cluster_tests::eventually("a calm sample", patience, || async {
        let out =
            cluster_tests::ctl(admin, &["-o", "json", "usage", "busy-1", "--since", "1m"]).await;
        out.code == 0
            && out.json()["samples"].as_array().is_some_and(|s| {
                s.iter().any(|s| {
                    s["at_ms"].as_u64().unwrap_or(0) >= since
                        && s["cpu_percent"].as_f64().unwrap_or(100.0) < 50.0
                })
            })
    })
    .await;
}

async fn alert(args: &[String]) {
    use cluster_tests::notify::{Alertmanager, Hook};
    use cluster_tests::process::free_port;
    use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
    cluster_tests::crypto();
    let runs: usize = arg(args, "--runs", 10);
    let ip = "127.0.0.155";
    let am = Alertmanager::start(ip, free_port(ip.parse().unwrap())).await;
    let hook = Hook::start(ip).await;
    let master = MasterProc::builder()
        .config(&format!(
            "[alerts]\nfor = \"0s\"\ncpu = {{ warning = 60, critical = 80, clear = 30 }}\n\
             [[notify.alertmanager]]\nurl = \"{}\"\n[[notify.webhook]]\nurl = \"{}\"\n",
            am.url, hook.url
        ))
        .spawn();
    let _agent = AgentProc::builder("busy-1", &master)
        .addr(ip)
        .report_interval(Duration::from_secs(1))
        .spawn();
    let admin = master.admin();
    let patience = Duration::from_secs(60);
    eventually("the agent reports", patience, || async {
        let out = ctl(&admin, &["-o", "json", "usage", "busy-1", "--since", "1m"]).await;
        out.code == 0
            && out.json()["samples"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut to_am, mut to_hook, mut resolved) = (Vec::new(), Vec::new(), Vec::new());
    let labels = [("alertname", "NodeCpuCritical"), ("node", "busy-1")];
    for run in 0..runs {
        // Calm first: nothing firing.
        started_calm(&admin, patience).await;
        eventually("calm", patience, || async {
            am.alert(&labels)
                .await
                .is_none_or(|a| a["status"]["state"] != "active")
        })
        .await;
        let flag = dir.path().join(format!("busy-{run}"));
        let started = now_ms();
        let job = cluster_tests::busy_loop(&admin, "busy-1", &flag);
        let firing_hooks = || {
            hook.bodies()
                .iter()
                .filter(|b| {
                    b["status"] == "firing"
                        && b["alerts"][0]["labels"]["alertname"] == "NodeCpuCritical"
                })
                .count()
        };
        let hooks_before = firing_hooks();
        let (mut at_am, mut at_hook) = (None, None);
        let deadline = std::time::Instant::now() + patience;
        while (at_am.is_none() || at_hook.is_none()) && std::time::Instant::now() < deadline {
            if at_hook.is_none() && firing_hooks() > hooks_before {
                at_hook = Some(now_ms());
            }
            if at_am.is_none()
                && am
                    .alert(&labels)
                    .await
                    .is_some_and(|a| a["status"]["state"] == "active")
            {
                at_am = Some(now_ms());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (Some(at_am), Some(at_hook)) = (at_am, at_hook) else {
            panic!("run {run}: the alert did not arrive within {patience:?}");
        };
        let history = ctl(&admin, &["-o", "json", "usage", "busy-1", "--since", "2m"])
            .await
            .json();
        // The crossing: the first sample over the line after the last one
        // under it (the machine may have been busy before the loop).
        let samples: Vec<(u64, f64)> = history["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["at_ms"].as_u64().unwrap(),
                    s["cpu_percent"].as_f64().unwrap(),
                )
            })
            .filter(|(at, _)| *at <= at_am.max(at_hook))
            .collect();
        let under = samples.iter().rposition(|(_, cpu)| *cpu < 80.0);
        match under.and_then(|i| samples.get(i + 1)) {
            Some((crossed, _)) if *crossed + 5_000 >= started => {
                to_am.push(at_am.saturating_sub(*crossed) as f64);
                to_hook.push(at_hook.saturating_sub(*crossed) as f64);
            }
            _ => eprintln!("run {run}: the CPU was over the line before the loop; not counted"),
        }
        std::fs::remove_file(&flag).unwrap();
        let _ = job.join();
        let stopped = now_ms();
        eventually("resolved at Alertmanager", patience, || async {
            am.alert(&labels)
                .await
                .is_none_or(|a| a["status"]["state"] != "active")
        })
        .await;
        let arrived = now_ms();
        let history = ctl(&admin, &["-o", "json", "usage", "busy-1", "--since", "2m"])
            .await
            .json();
        if let Some(under) = history["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["at_ms"].as_u64().unwrap() >= stopped)
            .find(|s| s["cpu_percent"].as_f64().unwrap() < 50.0)
            .and_then(|s| s["at_ms"].as_u64())
        {
            resolved.push(arrived.saturating_sub(under) as f64);
        }
    }
    for (what, v) in [
        ("firing, sample → Alertmanager", &mut to_am),
        ("firing, sample → webhook", &mut to_hook),
        ("resolved, sample → Alertmanager", &mut resolved),
    ] {
        if v.is_empty() {
            continue;
        }
        println!(
            "alert: {what}: p50 {:.0} ms, max {:.0} ms over {} runs (agent reports every 1 s; for = 0s)",
            percentile(v, 0.5),
            percentile(v, 1.0),
            v.len()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("history") => history(&args),
        Some("alert") => tokio::runtime::Runtime::new()
            .expect("a runtime")
            .block_on(alert(&args)),
        _ => {
            eprintln!(
                "usage: monitor-bench history [--nodes N] [--minutes M] [--every 5s]\n       monitor-bench alert [--runs N]"
            );
            std::process::exit(2);
        }
    }
}
