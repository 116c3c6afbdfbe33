//! Real load balancers obey a drain: HAProxy 2.6 (agent-check and httpchk)
//! and Varnish 7 (a probe on the proxy's traffic port), from the Debian
//! packages, in front of two web nodes, with steady client traffic that
//! must see no failure. The configurations here are the ones the README
//! shows.

use cluster_agent::haproxy;
use cluster_tests::lb::{App, Daemon, Load, free_port, listening, same_port_on, web_node};
use cluster_tests::{Admin, AgentProc, MasterProc, ctl, eventually};
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(20);
const WEB: [(&str, &str); 2] = [("web-1", "127.0.0.2"), ("web-2", "127.0.0.3")];

/// HAProxy's view of one server: (status, current sessions).
async fn server_state(socket: &Path, server: &str) -> Option<(String, u64)> {
    haproxy::servers(socket)
        .await
        .ok()?
        .into_iter()
        .find(|s| s.server == server)
        .map(|s| (s.status, s.scur))
}

async fn wait_status(socket: &Path, server: &str, want: &str) {
    eventually(
        &format!("HAProxy shows {server} {want}"),
        PATIENCE,
        || async {
            server_state(socket, server)
                .await
                .is_some_and(|(s, _)| s == want || s.starts_with(&format!("{want} ")))
        },
    )
    .await;
}

fn haproxy_config(frontend: &str, servers: &str, options: &str) -> String {
    format!(
        "global\n\
         \x20 stats socket {{dir}}/admin.sock mode 600 level admin\n\
         defaults\n\
         \x20 mode http\n\
         \x20 timeout connect 2s\n\
         \x20 timeout client 30s\n\
         \x20 timeout server 30s\n\
         frontend www\n\
         \x20 bind {frontend}\n\
         \x20 default_backend app\n\
         backend app\n\
         \x20 balance roundrobin\n\
         {options}{servers}"
    )
}

/// Drain web-1 under load, check HAProxy stops sending to it and no
/// request fails; undrain, check traffic returns.
async fn drain_cycle(admin: &Admin, apps: &[App], load: &Load, socket: &Path, out_status: &str) {
    load.advance(200).await;
    assert!(apps.iter().all(|a| a.hits() > 0), "both backends serve");
    ctl(admin, &["drain", "web-1", "--reason", "deploy"])
        .await
        .ok();
    wait_status(socket, "web-1", out_status).await;
    eventually("no session left to web-1", PATIENCE, || async {
        server_state(socket, "web-1")
            .await
            .is_some_and(|(_, scur)| scur == 0)
    })
    .await;
    let hits = apps[0].hits();
    load.advance(300).await;
    assert_eq!(
        apps[0].hits(),
        hits,
        "web-1 got requests while out of rotation"
    );
    ctl(admin, &["undrain", "web-1"]).await.ok();
    wait_status(socket, "web-1", "UP").await;
    eventually("traffic back on web-1", PATIENCE, || async {
        apps[0].hits() > hits
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn haproxy_agent_check_takes_a_drained_node_out_and_back_with_no_failed_request() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let app_port = same_port_on(&WEB.map(|(_, ip)| ip));
    let mut apps = Vec::new();
    let mut agents = Vec::new();
    let mut servers = String::new();
    for (name, ip) in WEB {
        let port = free_port(ip);
        let config = format!("[agent_check]\nlisten = \"{ip}:{port}\"\n");
        let (app, agent) = web_node(&master, name, ip, app_port, &config).await;
        apps.push(app);
        agents.push(agent);
        servers.push_str(&format!(
            "  server {name} {ip}:{app_port} weight 100 check inter 500ms agent-check agent-addr {ip} agent-port {port} agent-inter 500ms\n"
        ));
    }
    let frontend = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let lb = Daemon::haproxy(&haproxy_config(&frontend, &servers, ""));
    listening(&frontend).await;
    let socket = lb.haproxy_socket();
    // The agent beside HAProxy reads its stats: drains wait on them.
    let _lb_agent = AgentProc::builder("lb-1", &master)
        .addr("127.0.0.5")
        .config(&format!("haproxy_stats_socket = {:?}\n", socket))
        .spawn();
    cluster_tests::connected(&admin, 3).await;
    for (name, _) in WEB {
        wait_status(&socket, name, "UP").await;
    }
    let load = Load::start(&format!("http://{frontend}/"), "example.com", 8);
    drain_cycle(&admin, &apps, &load, &socket, "DRAIN").await;

    // --wait returns only once HAProxy has it DRAIN with no session open.
    let out = ctl(&admin, &["drain", "web-2", "--wait", "--timeout", "15s"])
        .await
        .ok();
    assert!(
        out.stdout.contains("out of rotation: web-2"),
        "{}",
        out.stdout
    );
    let (status, scur) = server_state(&socket, "web-2").await.unwrap();
    assert!(status.starts_with("DRAIN") && scur == 0, "{status} {scur}");
    ctl(&admin, &["undrain", "web-2"]).await.ok();
    wait_status(&socket, "web-2", "UP").await;

    // Maintenance is MAINT, not DRAIN.
    ctl(&admin, &["drain", "web-1", "--maint"]).await.ok();
    wait_status(&socket, "web-1", "MAINT").await;
    ctl(&admin, &["undrain", "web-1"]).await.ok();
    wait_status(&socket, "web-1", "UP").await;
    let report = load.stop().await;
    report.assert_no_failures(&lb.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn haproxy_httpchk_on_health_takes_a_drained_node_out_with_no_failed_request() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let app_port = same_port_on(&WEB.map(|(_, ip)| ip));
    let mut apps = Vec::new();
    let mut agents = Vec::new();
    let mut servers = String::new();
    for (name, ip) in WEB {
        let (app, agent) = web_node(&master, name, ip, app_port, "").await;
        apps.push(app);
        let health_port = agent
            .health_url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .unwrap()
            .to_owned();
        servers.push_str(&format!(
            "  server {name} {ip}:{app_port} check port {health_port} inter 200ms fall 1 rise 1\n"
        ));
        agents.push(agent);
    }
    let frontend = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let lb = Daemon::haproxy(&haproxy_config(
        &frontend,
        &servers,
        "  option httpchk GET /health\n  http-check expect status 200\n",
    ));
    listening(&frontend).await;
    let socket = lb.haproxy_socket();
    cluster_tests::connected(&admin, 2).await;
    for (name, _) in WEB {
        wait_status(&socket, name, "UP").await;
    }
    let load = Load::start(&format!("http://{frontend}/"), "example.com", 8);
    drain_cycle(&admin, &apps, &load, &socket, "DOWN").await;
    let report = load.stop().await;
    report.assert_no_failures(&lb.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn varnish_probing_the_proxy_port_sees_a_drained_node_sick_with_no_failed_request() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let app_port = same_port_on(&WEB.map(|(_, ip)| ip));
    let proxy_port = free_port("127.0.0.2");
    let mut apps = Vec::new();
    let mut agents = Vec::new();
    let mut backends = String::new();
    for (i, (name, ip)) in WEB.iter().enumerate() {
        let config = format!("[proxy]\nlisten = [\"{ip}:{proxy_port}\"]\n");
        let (app, agent) = web_node(&master, name, ip, app_port, &config).await;
        apps.push(app);
        agents.push(agent);
        backends.push_str(&format!(
            "backend web{i} {{\n  .host = \"{ip}\";\n  .port = \"{proxy_port}\";\n  .probe = health;\n}}\n"
        ));
    }
    cluster_tests::connected(&admin, 2).await;
    cluster_tests::lb::balance_role(&admin, "web", app_port, "*").await;
    let vcl = format!(
        "vcl 4.1;\nimport directors;\n\
         probe health {{\n  .url = \"/health\";\n  .interval = 200ms;\n  .timeout = 150ms;\n  .window = 2;\n  .threshold = 2;\n}}\n\
         {backends}\
         sub vcl_init {{\n  new web = directors.round_robin();\n  web.add_backend(web0);\n  web.add_backend(web1);\n}}\n\
         sub vcl_recv {{\n  set req.backend_hint = web.backend();\n  return (pass);\n}}\n"
    );
    let listen = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let varnish = Daemon::varnish(&listen, &vcl);
    listening(&listen).await;
    let healthy = |name: &'static str, want: &'static str| {
        let v = &varnish;
        async move {
            v.varnish_backends()
                .lines()
                .any(|l| l.contains(&format!(".{name} ")) && l.contains(want))
        }
    };
    for b in ["web0", "web1"] {
        eventually(&format!("Varnish sees {b} healthy"), PATIENCE, || {
            healthy(b, "healthy")
        })
        .await;
    }
    let load = Load::start(&format!("http://{listen}/"), "example.com", 8);
    load.advance(200).await;
    ctl(&admin, &["drain", "web-1"]).await.ok();
    eventually("Varnish sees web-1 sick", PATIENCE, || {
        healthy("web0", "sick")
    })
    .await;
    let hits = apps[0].hits();
    load.advance(300).await;
    assert_eq!(
        apps[0].hits(),
        hits,
        "web-1's app got requests while drained"
    );
    ctl(&admin, &["undrain", "web-1"]).await.ok();
    eventually("Varnish sees web-1 healthy again", PATIENCE, || {
        healthy("web0", "healthy")
    })
    .await;
    let report = load.stop().await;
    report.assert_no_failures(&varnish.log());
}
