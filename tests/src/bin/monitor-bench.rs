//! Figures for the monitor: what the master's usage history costs.
//!
//!   monitor-bench history --nodes 10000 --minutes 60 --every 5s
//!
//! Fills the history as the master's monitor does (one push per node
//! and report, in time order, a fleet of reports at a time) and prints
//! what it holds: the rings' own accounting and the process's resident
//! memory before and after, and how long a fleet's round of pushes takes.

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("history") => history(&args),
        _ => {
            eprintln!("usage: monitor-bench history [--nodes N] [--minutes M] [--every 5s]");
            std::process::exit(2);
        }
    }
}
