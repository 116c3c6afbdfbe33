//! Several masters on a real 3-member etcd cluster against one master on
//! sled, side by side in one run: benchmarks that print figures (never
//! assertions), run from `bench/run.sh` in a release build built with
//! `--features cluster-cli/etcd`, results recorded in `bench/RESULTS.md`.
//!
//! - `failover [--kills N] [--agents N] [--quiet-kills N]` — the leading
//!   master killed with SIGKILL, N times: the time to the next write
//!   acknowledged through a surviving master, and to every agent of the
//!   killed master having a session on a live master again; against one
//!   master on sled killed and restarted at once ([`failover`]).
//! - `drain [--agents N] [--cycles N] [--runs N]` — drain propagation (the
//!   `Drain` call sent → the agent's `/health` answering 503) and the wall
//!   time of a whole `clusterctl run '*' -- true`, on sled and on etcd
//!   through the leader and through a standby ([`drain`]).
//!
//! Each mode keeps both deployments up at once and alternates between
//! them, so drift in the machine's load falls on both alike.
//!
//! - `deploy` — the two deployments: one master on sled, three on etcd.
//! - `failover` — the kill cycles and what is watched during each.
//! - `drain` — the drain cycles and the whole-process `run` timings.
//! - `probe` — what the cycles ask: who leads, whose session is where,
//!   whether every node is listed as connected.

mod deploy;
mod drain;
mod failover;
mod probe;

use std::time::Duration;

/// The agents' report interval: the real agent's default, so 20 agents'
/// usage reports stay as light as they are in production.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// The value of `--name N`, or `default`.
fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name} takes a number")))
        })
        .unwrap_or(default)
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "ha-bench: {problem}\nusage: ha-bench failover [--kills N] [--quiet-kills N] [--agents N]\n       ha-bench drain [--agents N] [--cycles N] [--runs N]"
    );
    std::process::exit(2);
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50/p90/p99/max of `v`, sorted in place.
pub(crate) struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(mut v: Vec<Duration>) -> Option<Summary> {
        if v.is_empty() {
            return None;
        }
        v.sort();
        Some(Summary {
            n: v.len(),
            p50: percentile(&v, 0.50),
            p90: percentile(&v, 0.90),
            p99: percentile(&v, 0.99),
            max: *v.last().expect("not empty"),
        })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
            self.n,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// Prints `name: summary` of `v` (or that there was nothing to measure),
/// and returns the summary.
pub(crate) fn report(name: &str, v: Vec<Duration>) -> Option<Summary> {
    let s = Summary::of(v);
    match &s {
        Some(s) => println!("{name}: {s}"),
        None => println!("{name}: nothing measured"),
    }
    s
}

/// Prints the etcd/sled ratio of two summaries' p50 and p99.
pub(crate) fn ratio(name: &str, etcd: &Option<Summary>, sled: &Option<Summary>) {
    if let (Some(e), Some(s)) = (etcd, sled) {
        let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        println!(
            "{name} etcd/sled: p50 {:.2}x, p99 {:.2}x",
            r(e.p50, s.p50),
            r(e.p99, s.p99)
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    cluster_tests::crypto();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("failover") => {
            failover::run(
                arg(&args, "--kills", 20),
                arg(&args, "--quiet-kills", 10),
                arg(&args, "--agents", 10),
            )
            .await
        }
        Some("drain") => {
            drain::run(
                arg(&args, "--agents", 20),
                arg(&args, "--cycles", 300),
                arg(&args, "--runs", 15),
            )
            .await
        }
        _ => usage("which benchmark?"),
    }
}
