//! Load-balancing benchmarks that print figures (never assertions): run
//! from `bench/run.sh` in a release build, results in `bench/RESULTS.md`.
//!
//! - `proxy [--rounds N] [--seconds S]` — wrk through the agent's proxy and
//!   through nginx as a reverse proxy (keep-alive upstream), in front of the
//!   same nginx backend, alternating rounds; and wrk straight to the backend
//!   for the latency the proxies add. Prints requests/s, p99 and the ratio.
//! - `drain [--cycles N]` — time from the drain request to the last request
//!   reaching the drained node under steady load: through the agent's proxy,
//!   and through HAProxy with agent-check (agent-inter 500ms).
//! - `rollout [--nodes N]` — a rollout over N nodes behind the agent's
//!   proxy with a no-op command and `--healthy-for 0`, one node per batch:
//!   each batch's time beyond the waits the load balancer needs (out of
//!   rotation, back in rotation).
//! - `elb [--changes N]` — ELB's own client (`elb.py` in a virtual
//!   environment) against the master's ELB admin API: the time from
//!   `set_domain_rules` returning to the agent's proxy routing by the new
//!   rules (`bench/elb/bench.py`), p50/p99 over N changes.

use cluster_proto as pb;
use cluster_tests::lb::{App, Daemon, Load, free_port, listening, web_node};
use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use std::process::Command;
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// One wrk run with `connections` over 2 threads (1 when fewer than 2):
/// (requests/s, p99 latency in ms).
fn wrk(url: &str, seconds: u64, connections: u32) -> (f64, f64) {
    let threads = connections.clamp(1, 2);
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk (apt-get install -y wrk): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| ms(v.trim()))
        .unwrap_or_else(|| panic!("no 99% line in wrk's output:\n{text}"));
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if let Some(e) = errors {
        eprintln!("wrk {url}: {}", e.trim());
    }
    (rps, p99)
}

/// wrk's "1.23ms" / "450.00us" / "1.02s" in ms.
fn ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

async fn proxy(args: &[String]) {
    let rounds = arg(args, "--rounds", 5);
    let seconds = arg(args, "--seconds", 10);
    let backend_port = free_port("127.0.0.2");
    let backend = format!("127.0.0.2:{backend_port}");
    let _backend = Daemon::nginx(&format!(
        "server {{ listen {backend}; keepalive_requests 100000; location / {{ return 200 \"ok\\n\"; }} }}"
    ));
    let nginx_port = free_port("127.0.0.1");
    let _nginx = Daemon::nginx(&format!(
        "upstream app {{ server {backend}; keepalive 64; }}\n\
         server {{ listen 127.0.0.1:{nginx_port}; keepalive_requests 100000;\n\
           location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
             proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }}"
    ));
    let master = MasterProc::builder().spawn();
    let proxy_port = free_port("127.0.0.1");
    let _lb = AgentProc::builder("lb-1", &master)
        .addr("127.0.0.1")
        .config(&format!("[proxy]\nlisten = [\"127.0.0.1:{proxy_port}\"]\n"))
        .spawn();
    cluster_tests::connected(&master.admin(), 1).await;
    let admin = master.admin();
    ctl(&admin, &["upstream", "set", "app", "--server", &backend])
        .await
        .ok();
    ctl(&admin, &["route", "set", "*", "--backend", "app"])
        .await
        .ok();
    for addr in [
        backend.clone(),
        format!("127.0.0.1:{nginx_port}"),
        format!("127.0.0.1:{proxy_port}"),
    ] {
        listening(&addr).await;
    }
    let own_url = format!("http://127.0.0.1:{proxy_port}/");
    eventually("the proxy routes", Duration::from_secs(10), || async {
        cluster_tests::get(&own_url).await.0 == 200
    })
    .await;
    let nginx_url = format!("http://127.0.0.1:{nginx_port}/");
    let direct_url = format!("http://{backend}/");
    // Warm both up.
    wrk(&own_url, 2, 50);
    wrk(&nginx_url, 2, 50);
    // Throughput with the machine saturated (-c50), and latency under a
    // light load (-c4) where queueing does not hide what a proxy adds.
    let (mut own, mut ngx) = (Vec::new(), Vec::new());
    let (mut own_lat, mut ngx_lat, mut direct_lat) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        own.push(wrk(&own_url, seconds, 50));
        ngx.push(wrk(&nginx_url, seconds, 50));
        own_lat.push(wrk(&own_url, seconds, 4));
        ngx_lat.push(wrk(&nginx_url, seconds, 4));
        direct_lat.push(wrk(&direct_url, seconds, 4));
    }
    let rps = |v: &[(f64, f64)]| median(v.iter().map(|x| x.0).collect());
    let p99 = |v: &[(f64, f64)]| median(v.iter().map(|x| x.1).collect());
    println!(
        "wrk, {rounds} alternating rounds of {seconds}s each, medians; the same backend (nginx returning 3 bytes)"
    );
    println!(
        "  -c50 (saturated): agent proxy {:.0} req/s, nginx proxy {:.0} req/s; ratio agent/nginx {:.2}x",
        rps(&own),
        rps(&ngx),
        rps(&own) / rps(&ngx)
    );
    println!(
        "  -c4 p99: backend direct {:.3} ms, agent proxy {:.3} ms (+{:.3} ms), nginx proxy {:.3} ms (+{:.3} ms)",
        p99(&direct_lat),
        p99(&own_lat),
        p99(&own_lat) - p99(&direct_lat),
        p99(&ngx_lat),
        p99(&ngx_lat) - p99(&direct_lat),
    );
}

async fn drain(args: &[String]) {
    let cycles = arg(args, "--cycles", 20);
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let app_port = free_port("127.0.0.2");
    let mut apps = Vec::new();
    let mut agents = Vec::new();
    let mut servers = String::new();
    for (name, ip) in [("web-1", "127.0.0.2"), ("web-2", "127.0.0.3")] {
        let port = free_port(ip);
        let config = format!("[agent_check]\nlisten = \"{ip}:{port}\"\n");
        let (app, agent) = web_node(&master, name, ip, app_port, &config).await;
        apps.push(app);
        agents.push(agent);
        servers.push_str(&format!(
            "  server {name} {ip}:{app_port} weight 100 check inter 500ms agent-check agent-addr {ip} agent-port {port} agent-inter 500ms\n"
        ));
    }
    let proxy_port = free_port("127.0.0.5");
    let _lb = AgentProc::builder("lb-1", &master)
        .addr("127.0.0.5")
        .config(&format!("[proxy]\nlisten = [\"127.0.0.5:{proxy_port}\"]\n"))
        .spawn();
    cluster_tests::connected(&master.admin(), 3).await;
    cluster_tests::lb::balance_role(&admin, "web", app_port, "*").await;
    let frontend = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let _haproxy = Daemon::haproxy(&format!(
        "global\n  stats socket {{dir}}/admin.sock mode 600 level admin\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         frontend www\n  bind {frontend}\n  default_backend app\n\
         backend app\n  balance roundrobin\n{servers}"
    ));
    listening(&frontend).await;
    listening(&format!("127.0.0.5:{proxy_port}")).await;
    let mut control = pb::control_client::ControlClient::new(admin.channel().await);
    for (what, url) in [
        ("agent proxy", format!("http://127.0.0.5:{proxy_port}/")),
        (
            "HAProxy agent-check (agent-inter 500ms)",
            format!("http://{frontend}/"),
        ),
    ] {
        let load = Load::start(&url, "example.com", 8);
        let mut gaps = Vec::new();
        let n = if what.starts_with("HAProxy") {
            cycles.min(10)
        } else {
            cycles
        };
        for _ in 0..n {
            load.advance(200).await;
            let t0 = Instant::now();
            control
                .drain(pb::DrainRequest {
                    names: vec!["web-1".into()],
                    offline: true,
                    reason: "bench".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            // Quiet: no request reached web-1 for a whole second.
            eventually("web-1 quiet", Duration::from_secs(20), || async {
                apps[0]
                    .last_hit
                    .lock()
                    .unwrap()
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(1))
            })
            .await;
            let last = apps[0].last_hit.lock().unwrap().unwrap();
            gaps.push(last.saturating_duration_since(t0).as_secs_f64() * 1000.0);
            control
                .drain(pb::DrainRequest {
                    names: vec!["web-1".into()],
                    offline: false,
                    ..Default::default()
                })
                .await
                .unwrap();
            let before = apps[0].hits();
            eventually("web-1 back", Duration::from_secs(20), || async {
                apps[0].hits() > before
            })
            .await;
        }
        let report = load.stop().await;
        gaps.sort_by(f64::total_cmp);
        println!(
            "drain → last request to the drained node, {what}: n={} p50={:.1}ms p99={:.1}ms max={:.1}ms; failed client requests: {}",
            gaps.len(),
            percentile(&gaps, 0.5),
            percentile(&gaps, 0.99),
            gaps.last().unwrap(),
            report.failures.len()
        );
    }
}

async fn rollout(args: &[String]) {
    let nodes = arg(args, "--nodes", 10);
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let app_port = free_port("127.0.0.2");
    let mut apps = Vec::new();
    let mut agents = Vec::new();
    for i in 0..nodes {
        let ip = format!("127.0.0.{}", i + 2);
        let name = format!("web-{i}");
        apps.push(App::start_on(&name, &ip, app_port).await);
        agents.push(
            AgentProc::builder(&name, &master)
                .addr(&ip)
                .role("web")
                .spawn(),
        );
    }
    let proxy = format!("127.0.1.1:{}", free_port("127.0.1.1"));
    let _lb = AgentProc::builder("lb-1", &master)
        .addr("127.0.1.1")
        .config(&format!("[proxy]\nlisten = [\"{proxy}\"]\n"))
        .spawn();
    cluster_tests::connected(&master.admin(), nodes as usize + 1).await;
    cluster_tests::lb::balance_role(&admin, "web", app_port, "*").await;
    listening(&proxy).await;
    let load = Load::start(&format!("http://{proxy}/"), "example.com", 4);
    load.advance(200).await;
    let started = Instant::now();
    let out = ctl(
        &admin,
        &[
            "rollout", "-R", "web", "--detach", "-o", "json", "--", "true",
        ],
    )
    .await
    .ok()
    .json();
    let id = out["id"].as_str().unwrap().to_owned();
    eventually("the rollout finished", Duration::from_secs(120), || async {
        let out = ctl(&admin, &["rollout", "status", &id, "-o", "json"]).await;
        out.json()["state"] != "running"
    })
    .await;
    let rec = ctl(&admin, &["rollout", "status", &id, "-o", "json"])
        .await
        .ok()
        .json();
    let total = started.elapsed();
    let report = load.stop().await;
    assert_eq!(rec["state"], "succeeded", "{rec}");
    // Per node (one per batch): from "draining" to "back in rotation",
    // minus the two load-balancer waits the log records.
    let mut overheads = Vec::new();
    let mut waits = Vec::new();
    let log = rec["log"].as_array().unwrap();
    for i in 0..nodes {
        let name = format!("web-{i}");
        let lines: Vec<&serde_json::Value> =
            log.iter().filter(|l| l["node"] == name.as_str()).collect();
        let at = |prefix: &str| {
            lines
                .iter()
                .find(|l| l["message"].as_str().unwrap().starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} line for {name}"))
        };
        let ms_in = |l: &serde_json::Value| -> f64 {
            let m = l["message"].as_str().unwrap();
            m.rsplit('(')
                .next()
                .unwrap()
                .trim_end_matches(" ms)")
                .parse()
                .unwrap()
        };
        let start = at("draining")["time_ms"].as_u64().unwrap();
        let back = at("back in rotation");
        let end = back["time_ms"].as_u64().unwrap();
        let wait = ms_in(at("out of rotation")) + ms_in(back);
        waits.push(wait);
        overheads.push((end - start) as f64 - wait);
    }
    overheads.sort_by(f64::total_cmp);
    waits.sort_by(f64::total_cmp);
    println!(
        "rollout of {nodes} nodes, batch 1, no-op command, --healthy-for 0, behind the agent's proxy under load: total {:.2}s; per batch beyond the LB waits: p50 {:.1} ms, max {:.1} ms (LB waits p50 {:.1} ms); failed client requests: {}",
        total.as_secs_f64(),
        percentile(&overheads, 0.5),
        overheads.last().unwrap(),
        percentile(&waits, 0.5),
        report.failures.len()
    );
}

async fn elb(args: &[String]) {
    let changes = arg(args, "--changes", 50);
    let python = tokio::task::spawn_blocking(|| {
        let dir = std::env::temp_dir().join("clusterctl-elb-bench-venv");
        cluster_tests::python::venv(&dir, "elb.py==0.0.6", "elb, requests")
    })
    .await
    .unwrap();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let up1 = App::start("up1", "127.0.1.2").await;
    let up2 = App::start("up2", "127.0.1.3").await;
    let proxy = format!("127.0.1.1:{}", free_port("127.0.1.1"));
    let _lb = AgentProc::builder("lb-1", &master)
        .addr("127.0.1.1")
        .config(&format!("[proxy]\nlisten = [\"{proxy}\"]\n"))
        .spawn();
    cluster_tests::connected(&admin, 1).await;
    listening(&proxy).await;
    let token = cluster_tests::api_token(&admin, "admin", "bench").await;
    let base = master
        .http_url()
        .replacen("http://", &format!("http://bench:{token}@"), 1);
    let set = format!(
        "from elb import ELB, UpStream\n\
         e = ELB({base:?})\n\
         e.set_upstream(UpStream('up1', {{'{}': ''}}))\n\
         e.set_upstream(UpStream('up2', {{'{}': ''}}))\n",
        up1.addr, up2.addr
    );
    let status = Command::new(&python).args(["-c", &set]).status().unwrap();
    assert!(status.success(), "set_upstream");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/elb/bench.py");
    let status = Command::new(&python)
        .arg(script)
        .args([&base, &proxy, &changes.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "bench/elb/bench.py");
}

#[tokio::main]
async fn main() {
    cluster_tests::crypto();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("proxy") => proxy(&args).await,
        Some("drain") => drain(&args).await,
        Some("rollout") => rollout(&args).await,
        Some("elb") => elb(&args).await,
        _ => {
            eprintln!(
                "usage: lb-bench proxy [--rounds N] [--seconds S] | drain [--cycles N] | rollout [--nodes N] | elb [--changes N]"
            );
            std::process::exit(2);
        }
    }
}
