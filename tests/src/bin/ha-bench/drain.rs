//! Drain propagation and `clusterctl run`, on sled and on etcd.
//!
//! Drain propagation is measured as `cluster-bench drain` measures it: a
//! `Drain` call (not waiting) on one gRPC channel, then the agent's
//! `/health` polled until it answers 503; undrain likewise until 200; the
//! agents taken in turn. Three ways are measured in rounds, one after
//! another: sled's master; etcd's leader; an etcd standby (which forwards
//! the commit to the leader, and answers once its own state has followed
//! it). The agent's session may be on any of the three masters.
//!
//! `clusterctl run '*' -- true` is timed as a whole process (handshake,
//! fan-out, every agent starting `true`, results, the job stored), the
//! three ways in turn, `--master` naming the one master called.

use crate::deploy::{Ha, Sled};
use crate::{ms, percentile, ratio, report};
use cluster_proto as pb;
use cluster_tests::{Admin, AgentProc};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// Rounds the cycles are split into, each way taking its turn per round.
const ROUNDS: usize = 6;
/// The longest a drain may take to show before the bench gives up.
const DRAIN_PATIENCE: Duration = Duration::from_secs(5);
/// Drain propagation p99 on etcd within this.
const DRAIN_TARGET: Duration = Duration::from_millis(20);

type Control = pb::control_client::ControlClient<tonic::transport::Channel>;

/// One way to reach the cluster.
struct Way {
    name: String,
    control: Control,
    admin: Admin,
    drains: Vec<Duration>,
    undrains: Vec<Duration>,
    runs: Vec<Duration>,
}

impl Way {
    async fn new(name: String, admin: Admin) -> Way {
        Way {
            name,
            control: Control::new(admin.channel().await),
            admin,
            drains: Vec::new(),
            undrains: Vec::new(),
            runs: Vec::new(),
        }
    }
}

pub async fn run(agents: usize, cycles: usize, runs: usize) {
    let sled = Sled::start(agents, 6, "sled").await;
    let ha = Ha::start(agents, 7, "etcd").await;
    let leader = ha.settle().await;
    let standby = (0..ha.masters.len())
        .find(|&i| i != leader)
        .expect("three masters");
    println!(
        "drain and run, {agents} agents each: sled (1 master) and etcd (3 masters, lease {}s; agents' sessions on m0/m1/m2: {:?}; m{leader} leads, m{standby} is the standby called)",
        cluster_tests::ha::LEASE_TTL.as_secs(),
        ha.spread()
    );
    let mut ways = [
        Way::new("sled".into(), sled.admin()).await,
        Way::new(
            format!("etcd via the leader m{leader}"),
            ha.masters.admin_of(leader),
        )
        .await,
        Way::new(
            format!("etcd via a standby m{standby}"),
            Admin {
                url: ha.masters[standby].url(),
                ..ha.masters.admin_of(leader)
            },
        )
        .await,
    ];
    let http: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let per_round = cycles.div_ceil(ROUNDS);
    for round in 0..ROUNDS {
        for (w, way) in ways.iter_mut().enumerate() {
            let procs = if w == 0 { &sled.agents } else { &ha.agents };
            for c in 0..per_round {
                let agent = &procs[(round * per_round + c) % procs.len()];
                drain_cycle(way, agent, &http).await;
            }
        }
    }
    println!(
        "drain propagation ({} cycles each, in {ROUNDS} rounds; Drain sent → agent /health answers):",
        per_round * ROUNDS
    );
    let mut drains = Vec::new();
    for way in &ways {
        let d = report(&format!("  {}: drain → 503", way.name), way.drains.clone());
        report(
            &format!("  {}: undrain → 200", way.name),
            way.undrains.clone(),
        );
        drains.push(d);
    }
    ratio("  drain, via the leader,", &drains[1], &drains[0]);
    ratio("  drain, via a standby,", &drains[2], &drains[0]);
    for (way, d) in ways.iter().zip(&drains).skip(1) {
        if let Some(d) = d {
            let verdict = if d.p99 <= DRAIN_TARGET {
                "met".to_owned()
            } else {
                format!("missed by {:.1}ms", ms(d.p99 - DRAIN_TARGET))
            };
            println!(
                "target drain p99 ≤ {}ms, {}: p99 {:.2}ms ({verdict})",
                DRAIN_TARGET.as_millis(),
                way.name,
                ms(d.p99)
            );
        }
    }

    for _ in 0..runs {
        for way in ways.iter_mut() {
            let t = run_once(&way.admin).await;
            way.runs.push(t);
        }
    }
    println!(
        "`clusterctl run '*' -- true`, {agents} agents, whole process, {runs} runs each, in turn:"
    );
    let mut medians = Vec::new();
    for way in &mut ways {
        way.runs.sort();
        let p50 = percentile(&way.runs, 0.5);
        println!(
            "  {}: median {:.1}ms, p90 {:.1}ms, min {:.1}ms, max {:.1}ms",
            way.name,
            ms(p50),
            ms(percentile(&way.runs, 0.9)),
            ms(way.runs[0]),
            ms(*way.runs.last().expect("runs"))
        );
        medians.push(p50);
    }
    for (way, m) in ways.iter().zip(&medians).skip(1) {
        println!(
            "  {} / sled: median {:.2}x",
            way.name,
            m.as_secs_f64() / medians[0].as_secs_f64()
        );
    }
}

/// One drain and one undrain of `agent` through `way`, each timed from
/// the call to `/health` answering.
async fn drain_cycle(
    way: &mut Way,
    agent: &AgentProc,
    http: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
) {
    for (offline, want) in [(true, 503), (false, 200)] {
        let started = Instant::now();
        way.control
            .drain(pb::DrainRequest {
                names: vec![agent.id.clone()],
                offline,
                reason: "bench".into(),
                by: "bench".into(),
                wait: false,
                timeout_ms: 0,
                target: None,
                maintenance: false,
            })
            .await
            .unwrap_or_else(|e| panic!("{}: drain of {}: {e}", way.name, agent.id));
        let deadline = started + DRAIN_PATIENCE;
        loop {
            let resp = http
                .get(agent.health_url.parse().expect("health url"))
                .await
                .unwrap_or_else(|e| panic!("{}: health of {}: {e}", way.name, agent.id));
            let code = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            if code == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {}'s health never answered {want}",
                way.name,
                agent.id
            );
        }
        let took = started.elapsed();
        if offline {
            way.drains.push(took);
        } else {
            way.undrains.push(took);
        }
    }
}

/// One whole `clusterctl --master URL run '*' -- true` process, timed.
async fn run_once(admin: &Admin) -> Duration {
    let mut cmd = tokio::process::Command::new(cluster_tests::bin("clusterctl"));
    cmd.args(["--master", &admin.url, "run", "*", "--", "true"])
        .env("CLUSTERCTL_CA", &admin.ca)
        .env("CLUSTERCTL_CERT", &admin.cert)
        .env("CLUSTERCTL_KEY", &admin.key)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    let started = Instant::now();
    let out = cmd.output().await.expect("run clusterctl");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "clusterctl run via {} failed: {}{}",
        admin.url,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}
