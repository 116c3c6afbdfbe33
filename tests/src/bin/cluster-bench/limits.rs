//! `cluster-bench limits`: the master's RSS and drain latency while it is
//! flooded, against the same master idle.

use super::{arg, drain_cycles, proc_sample, start, summary};
use cluster_proto as pb;
use std::time::{Duration, Instant};

/// What one flooding caller sends, over and over.
#[derive(Clone)]
enum Flood {
    ListNodes(String),
    /// A client certificate from another CA: refused in the handshake.
    ForeignHandshake {
        cert: String,
        key: String,
    },
    /// A join without a token for a new node name each time.
    TokenlessJoin,
}

async fn flood_once(
    flood: &Flood,
    admin: &cluster_tests::Admin,
    n: u64,
    client: &mut Option<pb::control_client::ControlClient<tonic::transport::Channel>>,
) {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let ca = std::fs::read_to_string(&admin.ca).unwrap();
    match flood {
        Flood::ListNodes(expr) => {
            if client.is_none() {
                *client = Some(pb::control_client::ControlClient::new(
                    admin.channel().await,
                ));
            }
            let _ = client
                .as_mut()
                .unwrap()
                .list_nodes(pb::ListNodesRequest {
                    names: vec![],
                    target: Some(pb::Target {
                        kind: pb::TargetKind::Compound as i32,
                        expr: expr.clone(),
                        names: vec![],
                        ..Default::default()
                    }),
                })
                .await;
        }
        Flood::ForeignHandshake { cert, key } => {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca))
                .identity(Identity::from_pem(cert, key))
                .domain_name("127.0.0.1");
            let ch = Endpoint::from_shared(admin.url.clone())
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await;
            if let Ok(ch) = ch {
                let _ = pb::control_client::ControlClient::new(ch)
                    .list_nodes(pb::ListNodesRequest::default())
                    .await;
            }
        }
        Flood::TokenlessJoin => {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca))
                .domain_name("127.0.0.1");
            let Ok(ch) = Endpoint::from_shared(admin.url.clone())
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
            else {
                return;
            };
            let name = format!("flood-{n}");
            let (_, csr) = cluster_master::pki::new_key_and_csr(&name).unwrap();
            let _ = pb::enrollment_client::EnrollmentClient::new(ch)
                .join(pb::JoinRequest {
                    node_id: name,
                    csr_pem: csr,
                    token: String::new(),
                })
                .await;
        }
    }
}

/// The rate of the unauthenticated floods (the issue's figure).
const FLOOD_RATE: u64 = 1_000;
/// Paced calls in flight at once, at most: a master that stalls slows
/// the flood instead of piling up connections in the bench.
const FLOOD_IN_FLIGHT: usize = 256;
/// Callers of the unpaced floods, each sending its next call once the
/// last was answered.
const FLOOD_CALLERS: usize = 4;

/// Sends `flood` until `stop`: `rate` calls a second (each on its own
/// task, at most [`FLOOD_IN_FLIGHT`] at once; a tick that finds none free
/// is skipped, and the printed rate shows it), or, without a rate, from
/// [`FLOOD_CALLERS`] callers back to back. Counts the calls answered.
async fn run_flood(
    flood: Flood,
    rate: Option<u64>,
    admin: cluster_tests::Admin,
    stop: tokio_util::sync::CancellationToken,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut calls = tokio::task::JoinSet::new();
    match rate {
        Some(rate) => {
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(FLOOD_IN_FLIGHT));
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0;
            while !stop.is_cancelled() {
                tick.tick().await;
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue;
                };
                n += 1;
                let (flood, admin, sent) = (flood.clone(), admin.clone(), sent.clone());
                calls.spawn(async move {
                    flood_once(&flood, &admin, n, &mut None).await;
                    sent.fetch_add(1, Relaxed);
                    drop(slot);
                });
                // Reap what has finished, so the set stays small.
                while calls.try_join_next().is_some() {}
            }
        }
        None => {
            for caller in 0..FLOOD_CALLERS as u64 {
                let (flood, admin, sent, stop) =
                    (flood.clone(), admin.clone(), sent.clone(), stop.clone());
                calls.spawn(async move {
                    let mut client = None;
                    let mut n = caller << 32;
                    while !stop.is_cancelled() {
                        flood_once(&flood, &admin, n, &mut client).await;
                        sent.fetch_add(1, Relaxed);
                        n += 1;
                    }
                });
            }
        }
    }
    while calls.join_next().await.is_some() {}
}

pub(crate) async fn limits(args: &[String]) {
    let seconds = arg(args, "--seconds", 10);
    let (master, procs) = start(3, Duration::from_secs(5)).await;
    let pid = master.pid().expect("running");
    let admin = master.admin();
    let mut control = pb::control_client::ControlClient::new(admin.channel().await);
    let baseline = drain_cycles(&mut control, &procs[0], 100).await;
    let idle = proc_sample(pid).0;
    let largest = (0..cluster_model::limits::TARGET_MAX_TERMS)
        .map(|i| format!("E@(node|web|db)-{i:04}[0-9a-f]{{1,8}}(-(blue|green))?"))
        .collect::<Vec<_>>()
        .join(" or ");
    assert!(largest.len() <= cluster_model::limits::TARGET_MAX_BYTES);
    let oversized = "node2 or ".repeat(2 * 1024 * 1024 / 9);
    let now = std::time::SystemTime::now();
    let (other_ca, _) = cluster_master::pki::Ca::generate("elsewhere", now).unwrap();
    let (key, req) = cluster_master::pki::new_key_and_csr("mallory").unwrap();
    let (cert, _) = other_ca
        .issue_client(
            &req,
            &cluster_master::pki::Subject::Node("mallory".into()),
            now,
        )
        .unwrap();
    // Events about refusals and keys (drains write theirs too).
    let audit_events = || async {
        cluster_tests::ctl(&admin, &["events", "--limit", "100000", "-o", "json"])
            .await
            .json()
            .as_array()
            .map_or(0, |e| {
                e.iter()
                    .filter(|e| e["kind"] == "denied" || e["kind"] == "key")
                    .count()
            })
    };
    let events_before = audit_events().await;
    // The floods run on their own runtime and threads: the drain cycles
    // timed meanwhile must not wait behind a flooding task's handshake or
    // key generation on a shared worker (tokio does not preempt), which
    // would time the bench, not the master.
    let flood_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flood")
        .enable_all()
        .build()
        .expect("a runtime for the floods");
    // The unauthenticated floods first, at the issue's rate (1,000 a
    // second; the bench says if it fell short): RSS seldom falls back once
    // the allocator has grown, so each phase also says where it started.
    for (what, flood, rate) in [
        (
            "TLS handshakes with a certificate from another CA (refused)".to_owned(),
            Flood::ForeignHandshake { cert, key },
            Some(FLOOD_RATE),
        ),
        (
            "joins without a token, a new name each".to_owned(),
            Flood::TokenlessJoin,
            Some(FLOOD_RATE),
        ),
        (
            format!(
                "ListNodes with the largest allowed expression ({} bytes, 1,000 regex terms)",
                largest.len()
            ),
            Flood::ListNodes(largest),
            None,
        ),
        (
            "ListNodes with 2 MB expressions (refused)".to_owned(),
            Flood::ListNodes(oversized),
            None,
        ),
    ] {
        let before = proc_sample(pid).0;
        let stop = tokio_util::sync::CancellationToken::new();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let callers = flood_runtime.spawn(run_flood(
            flood,
            rate,
            admin.clone(),
            stop.clone(),
            sent.clone(),
        ));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    peak.fetch_max(proc_sample(pid).0, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let started = Instant::now();
        let mut during = Vec::new();
        while started.elapsed() < Duration::from_secs(seconds) {
            during.extend(drain_cycles(&mut control, &procs[1], 10).await);
        }
        stop.cancel();
        callers.await.expect("the flood ran to its end");
        let _ = sampler.await;
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        let calls = sent.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{what}: {calls} in {seconds}s ({}/s; {}); master RSS idle {} MiB, {} MiB when the phase began, peak {} MiB (+{} MiB over idle)",
            calls / seconds.max(1),
            match rate {
                Some(r) => format!("paced at {r}/s, up to {FLOOD_IN_FLIGHT} in flight"),
                None => format!("{FLOOD_CALLERS} callers, each waiting for its answer"),
            },
            idle / 1024,
            before / 1024,
            peak / 1024,
            peak.saturating_sub(idle) / 1024
        );
        summary("  drain/undrain, idle", baseline.clone());
        summary("  drain/undrain, meanwhile", during);
    }
    flood_runtime.shutdown_background();
    let events_after = audit_events().await;
    println!(
        "denied and key events written by the floods: {}",
        events_after - events_before
    );
}
