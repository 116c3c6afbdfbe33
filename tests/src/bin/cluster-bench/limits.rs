//! `limits`: the master flooded by four callers in turn, its RSS sampled
//! and drain/undrain cycles timed meanwhile, against the same master idle.

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

/// Runs the calling thread on `cpu` alone.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; the call reads it only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            panic!(
                "cannot run on CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The runtime the flooding callers run on: its two threads on `cpu`
/// alone when one is given, else wherever the system puts them.
fn flood_runtime(cpu: Option<usize>) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2).enable_all();
    if let Some(cpu) = cpu {
        b.on_thread_start(move || pin(cpu));
    }
    b.build().expect("a runtime for the flood")
}

pub async fn limits(args: &[String]) {
    let seconds = arg(args, "--seconds", 10);
    let flood_cpu = args
        .iter()
        .position(|a| a == "--flood-cpu")
        .map(|_| arg(args, "--flood-cpu", 1) as usize);
    let flooders = flood_runtime(flood_cpu);
    match flood_cpu {
        Some(cpu) => println!("the flooding callers on CPU {cpu} alone"),
        None => println!("the flooding callers on the master's CPUs"),
    }
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
    // The unauthenticated floods first: RSS seldom falls back once the
    // allocator has grown, so each phase also says where it started.
    for (what, flood) in [
        (
            "TLS handshakes with a certificate from another CA (refused)".to_owned(),
            Flood::ForeignHandshake { cert, key },
        ),
        (
            "joins without a token, a new name each".to_owned(),
            Flood::TokenlessJoin,
        ),
        (
            format!(
                "ListNodes with the largest allowed expression ({} bytes, 1,000 regex terms)",
                largest.len()
            ),
            Flood::ListNodes(largest),
        ),
        (
            "ListNodes with 2 MB expressions (refused)".to_owned(),
            Flood::ListNodes(oversized),
        ),
    ] {
        let before = proc_sample(pid).0;
        let stop = tokio_util::sync::CancellationToken::new();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (flood, stop, sent, admin) =
                (flood.clone(), stop.clone(), sent.clone(), admin.clone());
            callers.spawn_on(
                async move {
                    let mut client = None;
                    while !stop.is_cancelled() {
                        let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        flood_once(&flood, &admin, n, &mut client).await;
                    }
                },
                flooders.handle(),
            );
        }
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
        while callers.join_next().await.is_some() {}
        let _ = sampler.await;
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        let calls = sent.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "{what}: {calls} in {seconds}s ({}/s) from 4 callers; master RSS idle {} MiB, {} MiB when the phase began, peak {} MiB (+{} MiB over idle)",
            calls / seconds.max(1),
            idle / 1024,
            before / 1024,
            peak / 1024,
            peak.saturating_sub(idle) / 1024
        );
        summary("  drain/undrain, idle", baseline.clone());
        summary("  drain/undrain, meanwhile", during);
    }
    let events_after = audit_events().await;
    println!(
        "denied and key events written by the floods: {}",
        events_after - events_before
    );
    // Dropped here it would block inside the bench's own runtime.
    flooders.shutdown_background();
}
