//! The agent's own reverse proxy, end to end: a balancer node routes to
//! three web nodes' apps through the master's routes and upstreams, under
//! steady client load; drains, route and upstream changes and a dead
//! backend fail no client request; the balancer's `/metrics` counts and
//! times the requests by upstream and code.

use cluster_tests::lb::{App, Load, free_port, get_as, listening, same_port_on, web_node};
use cluster_tests::prom::{promtool, sample};
use cluster_tests::{Admin, AgentProc, MasterProc, ctl, eventually};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(20);
const WEB: [(&str, &str); 3] = [
    ("web-1", "127.0.0.2"),
    ("web-2", "127.0.0.3"),
    ("web-3", "127.0.0.4"),
];

struct Setup {
    master: MasterProc,
    admin: Admin,
    _web: Vec<AgentProc>,
    lb: AgentProc,
    apps: Vec<App>,
    app_port: u16,
    proxy: String,
}

async fn setup() -> Setup {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let app_port = same_port_on(&WEB.map(|(_, ip)| ip));
    let mut apps = Vec::new();
    let mut web = Vec::new();
    for (name, ip) in WEB {
        let (app, agent) = web_node(&master, name, ip, app_port, "").await;
        apps.push(app);
        web.push(agent);
    }
    let proxy_port = free_port("127.0.0.5");
    let proxy = format!("127.0.0.5:{proxy_port}");
    let lb = AgentProc::builder("lb-1", &master)
        .addr("127.0.0.5")
        .config(&format!("[proxy]\nlisten = [\"{proxy}\"]\n"))
        .spawn();
    cluster_tests::connected(&admin, 4).await;
    cluster_tests::lb::balance_role(&admin, "web", app_port, "example.com").await;
    listening(&proxy).await;
    let url = format!("http://{proxy}/");
    eventually(
        "the proxy routes example.com to the apps",
        PATIENCE,
        || async {
            let load = Load::start(&url, "example.com", 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
            load.stop().await.ok > 0
        },
    )
    .await;
    Setup {
        master,
        admin,
        _web: web,
        lb,
        apps,
        app_port,
        proxy: url,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_under_load_moves_traffic_and_fails_no_request() {
    let s = setup().await;
    let load = Load::start(&s.proxy, "example.com", 8);
    load.advance(300).await;
    let seen = load.snapshot();
    assert!(
        WEB.iter()
            .all(|(n, _)| seen.by_backend.get(*n).copied().unwrap_or(0) > 0),
        "{seen:?}"
    );

    // --wait returns once the proxy dropped web-2 with nothing in flight.
    let out = ctl(&s.admin, &["drain", "web-2", "--wait", "--timeout", "10s"])
        .await
        .ok();
    assert!(
        out.stdout.contains("out of rotation: web-2"),
        "{}",
        out.stdout
    );
    let hits = s.apps[1].hits();
    load.advance(500).await;
    assert_eq!(
        s.apps[1].hits(),
        hits,
        "web-2 got requests after the drain returned"
    );

    ctl(&s.admin, &["undrain", "web-2"]).await.ok();
    eventually("web-2 back in rotation", PATIENCE, || async {
        s.apps[1].hits() > hits
    })
    .await;
    let report = load.stop().await;
    report.assert_no_failures("");
    let _ = &s.master;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_route_and_upstream_changes_under_load_fail_no_request() {
    let s = setup().await;
    let listed: Vec<String> = WEB
        .iter()
        .flat_map(|(_, ip)| {
            [
                "--server".to_owned(),
                format!("{ip}:{},weight=2", s.app_port),
            ]
        })
        .collect();
    let mut args = vec!["upstream", "set", "listed"];
    args.extend(listed.iter().map(String::as_str));
    ctl(&s.admin, &args).await.ok();
    let load = Load::start(&s.proxy, "example.com", 8);
    load.advance(100).await;
    for i in 0..100 {
        if i % 2 == 0 {
            let to = if i % 4 == 0 { "listed" } else { "app" };
            ctl(&s.admin, &["route", "set", "example.com", "--backend", to])
                .await
                .ok();
        } else {
            // Shrink and grow the listed upstream.
            let keep = 1 + i % 3;
            let mut args = vec!["upstream".to_owned(), "set".into(), "listed".into()];
            for (_, ip) in &WEB[..keep] {
                args.push("--server".into());
                args.push(format!("{ip}:{}", s.app_port));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ctl(&s.admin, &args).await.ok();
        }
    }
    load.advance(200).await;
    let report = load.stop().await;
    assert!(report.ok > 300, "{report:?}");
    report.assert_no_failures("");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_backend_is_ejected_by_max_fails_and_used_again_after_fail_timeout() {
    let mut s = setup().await;
    let servers: Vec<String> = WEB
        .iter()
        .map(|(_, ip)| format!("{ip}:{},max_fails=1,fail_timeout=1s", s.app_port))
        .collect();
    let mut args = vec!["upstream", "set", "listed"];
    for sv in &servers {
        args.push("--server");
        args.push(sv);
    }
    ctl(&s.admin, &args).await.ok();
    ctl(
        &s.admin,
        &["route", "set", "example.com", "--backend", "listed"],
    )
    .await
    .ok();
    let load = Load::start(&s.proxy, "example.com", 4);
    load.advance(100).await;
    // web-3's app goes away: connects fail, requests retry elsewhere.
    s.apps[2].kill();
    s.apps.pop();
    load.advance(300).await;
    let back = App::start_on("web-3", "127.0.0.4", s.app_port).await;
    eventually("web-3 used again after fail_timeout", PATIENCE, || async {
        back.hits() > 0
    })
    .await;
    let report = load.stop().await;
    report.assert_no_failures("");
    // The connects that failed are counted against the upstream.
    let text = cluster_tests::get(&s.metrics()).await.1;
    let refused = r#"cluster_agent_proxy_upstream_errors_total{upstream="listed",kind="connect"}"#;
    assert!(sample(&text, refused).is_some_and(|n| n >= 1.0), "{text}");
}

impl Setup {
    /// The balancer's `/metrics`.
    fn metrics(&self) -> String {
        self.lb.health_url.replace("/health", "/metrics")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_balancers_metrics_count_and_time_requests_by_upstream_and_code() {
    let s = setup().await;
    let url = s.metrics();
    let ok = r#"cluster_agent_proxy_requests_total{upstream="app",code="200"}"#;
    let no_route = r#"cluster_agent_proxy_requests_total{upstream="",code="404"}"#;
    let timed = r#"cluster_agent_proxy_request_seconds_count{upstream="app"}"#;
    let slowest = r#"cluster_agent_proxy_request_seconds_bucket{le="+Inf",upstream="app"}"#;
    // The setup's own requests are there already.
    let text = cluster_tests::get(&url).await.1;
    let before = |series| sample(&text, series).unwrap_or(0.0);
    let (ok0, no_route0, timed0) = (before(ok), before(no_route), before(timed));
    assert!(ok0 >= 1.0 && timed0 >= ok0, "{text}");
    for _ in 0..5 {
        assert_eq!(get_as(&s.proxy, "example.com", "t").await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(get_as(&s.proxy, "elsewhere.example", "t").await.0, 404);
    }
    eventually("the requests counted and timed", PATIENCE, || async {
        let text = cluster_tests::get(&url).await.1;
        sample(&text, ok) == Some(ok0 + 5.0)
            && sample(&text, no_route) == Some(no_route0 + 2.0)
            && sample(&text, timed) == Some(timed0 + 5.0)
            && sample(&text, slowest) == Some(timed0 + 5.0)
    })
    .await;
    let text = cluster_tests::get(&url).await.1;
    let sum = sample(
        &text,
        r#"cluster_agent_proxy_request_seconds_sum{upstream="app"}"#,
    );
    assert!(sum.is_some_and(|s| s > 0.0), "{text}");
    let (passes, said) = promtool(&text);
    assert!(passes, "promtool check metrics:\n{said}\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_routes_are_refused_with_their_place_and_the_proxy_keeps_routing() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"init": "r1", "rules": {
            "r1": {"type": "ua", "args": {"pattern": "(", "succ": "r2", "fail": "r3"}},
            "r2": {"type": "backend", "args": {"servername": "nope"}},
            "r3": {"type": "path", "args": {"pattern": "/a", "succ": "r1"}}}}"#,
    )
    .unwrap();
    let out = ctl(
        &s.admin,
        &["route", "set", "example.com", bad.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    for want in [
        "domain \"example.com\", rule \"r1\", field \"pattern\": invalid regex",
        "rule \"r2\", field \"servername\": unknown upstream \"nope\"",
        "cycle: r1 → r3 → r1",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in:\n{}",
            out.stderr
        );
    }
    let out = ctl(&s.admin, &["upstream", "set", "x", "--server", "10.0.0.1"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("has no port"), "{}", out.stderr);
    // Nothing changed: the proxy still routes as before.
    let listed = ctl(&s.admin, &["route", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        listed["example.com"]["rules"]["backend"]["args"]["servername"],
        "app"
    );
    let load = Load::start(&s.proxy, "example.com", 2);
    load.advance(50).await;
    load.stop().await.assert_no_failures("");
    // route test shows the decision.
    let out = ctl(&s.admin, &["route", "test", "example.com", "/x"])
        .await
        .ok();
    assert!(out.stdout.contains("backend app"), "{}", out.stdout);
    let out = ctl(&s.admin, &["route", "test", "unknown.org", "/"])
        .await
        .ok();
    assert!(out.stdout.contains("404"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_local_check_takes_a_node_out_of_its_upstreams_and_shows_in_nodes() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let port = free_port("127.0.0.2");
    let app = App::start_on("web-1", "127.0.0.2", port).await;
    let agent = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .role("web")
        .config(&format!(
            "[[check]]\nname = \"app\"\nhttp = \"http://127.0.0.2:{port}/ping\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n"
        ))
        .spawn();
    ctl(
        &admin,
        &[
            "upstream",
            "set",
            "app",
            "--role",
            "web",
            "--port",
            &port.to_string(),
        ],
    )
    .await
    .ok();
    let servers = || async {
        let out = ctl(&admin, &["upstream", "list", "-o", "json"]).await.ok();
        out.json()["resolved"]["app"].as_array().map_or(0, Vec::len)
    };
    let check = || async {
        let out = ctl(&admin, &["nodes", "web-1", "-o", "json"]).await;
        (out.code == 0).then(|| out.json()[0]["checks"][0]["passing"].as_bool())?
    };
    eventually("web-1 serving with its check passing", PATIENCE, || async {
        check().await == Some(true) && servers().await == 1
    })
    .await;
    app.kill();
    eventually(
        "the failing check reported and web-1 out of app",
        PATIENCE,
        || async { check().await == Some(false) && servers().await == 0 },
    )
    .await;
    let (code, body) = agent.health().await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("\"status\":\"failing\"") && body.contains("\"check\":\"app\""),
        "{body}"
    );
    // The master's central endpoint says the same.
    let (code, body) =
        cluster_tests::get(&format!("{}/health?node=web-1", master.http_url())).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"status\":\"failing\""), "{body}");
    let table = ctl(&admin, &["nodes"]).await.ok().stdout;
    assert!(table.contains("app failing:"), "{table}");
    let events = ctl(&admin, &["events"]).await.ok().stdout;
    assert!(events.contains("check app failing"), "{events}");
    let _back = App::start_on("web-1", "127.0.0.2", port).await;
    eventually("web-1 back once its check passes", PATIENCE, || async {
        check().await == Some(true) && servers().await == 1
    })
    .await;
    assert_eq!(agent.health().await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn elbs_json_imports_and_routes_as_its_readme_says() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (WEB[0].1, WEB[1].1);
    let upstreams = dir.path().join("upstreams.json");
    std::fs::write(
        &upstreams,
        format!(
            r#"{{"up1": {{"{a}:{p}": ""}}, "up2": {{"{b}:{p}": "max_fails=2 weight=10"}}}}"#,
            p = s.app_port
        ),
    )
    .unwrap();
    // ELB's README example, as is.
    let domains = dir.path().join("elb.json");
    std::fs::write(
        &domains,
        r#"{"example.com": {
            "init": "r1",
            "rules": {
                "r1": {"type": "ua", "args": {"fail": "r3", "pattern": "httpie(\\S+)$", "succ": "r4"}},
                "r2": {"type": "backend", "args": {"servername": "up1"}},
                "r3": {"type": "backend", "args": {"servername": "up2"}},
                "r4": {"type": "path", "args": {"regex": true, "pattern": "^\\/blog\\/(\\S+)$", "succ": "r2", "fail": "r3", "rewrite": false}}
            }}}"#,
    )
    .unwrap();
    let out = ctl(
        &s.admin,
        &[
            "route",
            "import",
            domains.to_str().unwrap(),
            "--upstreams",
            upstreams.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    assert!(
        out.stdout.contains("imported 1 domain and 2 upstreams"),
        "{}",
        out.stdout
    );
    let test = ctl(
        &s.admin,
        &[
            "route",
            "test",
            "example.com",
            "/blog/x",
            "--ua",
            "HTTPie/0.9.9",
        ],
    )
    .await
    .ok()
    .stdout;
    assert!(
        test.contains("r1 (ua: match) → r4 (path: match) → r2 → backend up1"),
        "{test}"
    );
    assert!(
        test.contains(&format!("upstream up1: {a}:{}", s.app_port)),
        "{test}"
    );
    // The running proxy routes the same way.
    eventually(
        "the proxy routes httpie /blog/ to up1 (web-1)",
        PATIENCE,
        || async {
            get_as(&s.proxy, "example.com", "HTTPie/0.9.9")
                .await
                .1
                .starts_with("web-2")
                && get_as(&format!("{}blog/x", s.proxy), "example.com", "HTTPie/0.9.9")
                    .await
                    .1
                    == "web-1 /blog/x"
        },
    )
    .await;
    assert!(
        get_as(&format!("{}blog/x", s.proxy), "example.com", "curl/8")
            .await
            .1
            .starts_with("web-2")
    );
    assert_eq!(get_as(&s.proxy, "unknown.org", "curl/8").await.0, 404);
}
