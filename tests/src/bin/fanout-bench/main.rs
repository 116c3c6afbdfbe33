//! Fan-out benchmark: how long a `run` takes to reach N agents and bring all
//! their results back, and how much memory the master holds while N agent
//! sessions are open. It prints figures; it judges none of them.
//!
//! One process plays every agent: it enrolls `sim-00000`, `sim-00001`, … with
//! a join token (re-enrolling the few whose certificate the master would
//! refuse, see [`refused_certificates`]), then opens one real agent session
//! per node (its own TCP connection, mutual TLS with the node's
//! certificate), acknowledges snapshots and deltas (reading only their
//! generations: the hosts lines are stepped over, see [`light`]), reports usage every 5 s
//! as a real agent does (so the master does not mark the node down), and
//! answers every `RunJob` at once with exit code 0 (a simulated agent runs
//! nothing). The figure is the time from the `Control.Run` call for
//! `sim-*` until the `Finished` event, with every node's result "ok"; the
//! master's RSS is read from `/proc` after the sessions are open and, every
//! 10 ms, during the runs. Enrolling and connecting are setup, timed
//! separately.
//!
//! ```text
//! cargo build --release -p cluster-master -p cluster-tests --bins && target/release/fanout-bench --agents 1000
//! ```
//!
//! Flags: `--agents N` (default 1000), `--runs R` (default 5),
//! `--dashboard yes` (the dashboard's and the REST API's figures too, see
//! [`dashboard`]); and where
//! the sessions go ([`deploy`]): `--store sled|etcd` (default sled: one
//! master), `--masters N` (etcd only, default 1), `--sessions one|spread`
//! (all on the called master, or round-robin over every master; default
//! spread), `--via leader|standby` (the master called; default leader).
//! The `etcd` store needs the master built with `--features
//! cluster-cli/etcd` and Debian's etcd on the PATH. Both this
//! process and the master hold one file descriptor per agent, so the open
//! files limit (raised to its hard limit here, and inherited by the master)
//! must exceed N by some headroom; when it does not, the bench says so and
//! exits with status 2.

use cluster_proto as pb;
use cluster_tests::MasterProc;
use pb::agent_message::Msg as Out;
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
    store: Store,
    masters: usize,
    sessions: Sessions,
    via: Via,
    dashboard: bool,
}

/// Whether the simulated agents keep a hosts file (`--hosts yes`): then
/// every session is sent every node's line, and each join a delta to all.
pub(crate) static WANTS_HOSTS: AtomicBool = AtomicBool::new(false);

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
    let word = |name: &str, default: &'static str, choices: &[&'static str]| -> &'static str {
        let Some(i) = args.iter().position(|a| a == name) else {
            return default;
        };
        let given = args.get(i + 1).map(String::as_str).unwrap_or_default();
        choices
            .iter()
            .copied()
            .find(|c| *c == given)
            .unwrap_or_else(|| usage(&format!("{name} takes one of {}", choices.join(", "))))
    };
    let known = [
        "--agents",
        "--runs",
        "--store",
        "--masters",
        "--sessions",
        "--via",
        "--hosts",
        "--dashboard",
    ];
    if let Some(unknown) = args
        .iter()
        .step_by(2)
        .find(|a| !known.contains(&a.as_str()))
    {
        usage(&format!("unknown argument {unknown:?}"));
    }
    WANTS_HOSTS.store(
        word("--hosts", "no", &["no", "yes"]) == "yes",
        Ordering::Relaxed,
    );
    Args {
        agents: value("--agents", 1000),
        runs: value("--runs", 5),
        store: match word("--store", "sled", &["sled", "etcd"]) {
            "etcd" => Store::Etcd,
            _ => Store::Sled,
        },
        masters: value("--masters", 1),
        sessions: match word("--sessions", "spread", &["one", "spread"]) {
            "one" => Sessions::One,
            _ => Sessions::Spread,
        },
        via: match word("--via", "leader", &["leader", "standby"]) {
            "standby" => Via::Standby,
            _ => Via::Leader,
        },
        dashboard: word("--dashboard", "no", &["no", "yes"]) == "yes",
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "fanout-bench: {problem}\nusage: fanout-bench [--agents N] [--runs R] [--store sled|etcd] \
         [--masters N] [--sessions one|spread] [--via leader|standby] [--hosts no|yes] \
         [--dashboard no|yes]"
    );
    std::process::exit(2);
}

mod dashboard;
mod deploy;
mod enroll;
mod light;
mod limits;
mod measure;
mod sessions;

use deploy::*;
use enroll::*;
use limits::*;
use measure::*;
use sessions::*;

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
async fn bench(args: Args) -> Result<(), String> {
    let Args {
        agents,
        runs,
        sessions,
        ..
    } = args;
    let deployment = Deployment::start(args.store, args.masters, args.via).await?;
    let ended = Arc::new(Ended::default());
    let _closing = Closing(ended.clone());
    let master = deployment.called();
    let admin = master.admin();
    let pid = master_pid(master.data_dir()).ok_or("cannot find the master's process in /proc")?;
    let (token, _fingerprint) = master.join_token();
    let ca_pem = std::fs::read_to_string(&admin.ca)
        .map_err(|e| format!("cannot read {}: {e}", admin.ca.display()))?;
    let url = master.url();
    let session_urls = deployment.session_urls(sessions);
    if deployment.len() > 1 || args.store == Store::Etcd {
        println!("{}", deployment.describe(sessions, agents));
    }
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

    let pid = pid.to_string();
    let rss_before = status_kib(&pid, "VmRSS").unwrap_or(0);
    let storm = RssSampler::start(pid.clone());
    let storm_cpu = (cpu_time(&pid), cpu_time("self"));
    let started = Instant::now();
    open_sessions(&session_urls, &ca_pem, nodes, ended.clone())
        .await
        .map_err(|e| format!("opening the sessions failed: {e}"))?;
    let patience = Duration::from_secs(60) + Duration::from_millis(10) * agents as u32;
    wait_connected(&mut control, agents, patience).await?;
    let sessions_open = started.elapsed();
    let rss_storm = storm.peak();
    let rss_open = status_kib(&pid, "VmRSS").unwrap_or(0);
    let spent = |before: Option<Duration>, now: Option<Duration>| match (before, now) {
        (Some(b), Some(n)) => n.saturating_sub(b).as_secs_f64(),
        _ => f64::NAN,
    };
    let storm_cpu = (
        spent(storm_cpu.0, cpu_time(&pid)),
        spent(storm_cpu.1, cpu_time("self")),
    );
    eprintln!(
        "{agents} sessions open in {:.1}s; master RSS {:.1} MiB",
        sessions_open.as_secs_f64(),
        mib(rss_open)
    );
    println!(
        "join storm: {agents} sessions ({}) opened in {:.1}s ({HANDSHAKES_IN_FLIGHT} at a time); \
         master RSS before {:.1} MiB, peak while they opened {:.1} MiB, after {:.1} MiB; \
         CPU meanwhile: master {:.1}s, load generator {:.1}s",
        if WANTS_HOSTS.load(Ordering::Relaxed) {
            "each keeping a hosts file"
        } else {
            "no hosts files"
        },
        sessions_open.as_secs_f64(),
        mib(rss_before),
        mib(rss_storm),
        mib(rss_open),
        storm_cpu.0,
        storm_cpu.1
    );

    let sampler = RssSampler::start(pid.clone());
    let cpu_before = (cpu_time(&pid), cpu_time("self"));
    let mut times = Vec::with_capacity(runs);
    for run in 1..=runs {
        let t = run_once(&mut control, agents)
            .await
            .map_err(|e| format!("run {run}: {e}"))?;
        eprintln!(
            "  run {run}: {:.1}ms (job started +{:.1}ms, last result +{:.1}ms, finished +{:.1}ms)",
            ms(t.finished),
            ms(t.started),
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
    let others: Vec<String> = (0..deployment.len())
        .map(|i| deployment.master(i))
        .filter(|m| m.url() != url)
        .filter_map(|m| {
            let pid = master_pid(m.data_dir())?.to_string();
            Some(format!("{:.1}", mib(status_kib(&pid, "VmRSS")?)))
        })
        .collect();

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
    if !others.is_empty() {
        println!(
            "the other masters' RSS after the runs: {} MiB",
            others.join(" / ")
        );
    }
    if args.dashboard {
        dashboard::bench(&master.http_url(), &mut control, &pid, agents).await?;
    }
    match ended.count.load(Ordering::Relaxed) {
        0 => Ok(()),
        lost => Err(format!("{lost} sessions ended during the bench")),
    }
}
