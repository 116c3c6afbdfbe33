//! Usage alerts end to end, alone in their test binary (they read the
//! machine's CPU, which other tests would move): a busy loop started
//! through `clusterctl run` takes a node's CPU past its critical level;
//! the alert fires after its `for`, shows in `clusterctl alerts`, in
//! `nodes` and in the event log, while a drained node seeing the same
//! CPU stays silent; the critical one resolves once the loop stops, saying how long it
//! lasted. An agent that stops reporting fires `silent`. The usage
//! history is served to `clusterctl usage` and the REST API. Every
//! change reaches a real Alertmanager (Debian's), a real SMTP server
//! (aiosmtpd from PyPI: one mail per change) and a webhook receiver
//! (Alertmanager's version-4 message). Addresses 127.0.0.151–153.

use cluster_tests::notify::{Alertmanager, Hook, Smtp, SmtpTls};
use cluster_tests::process::free_port;
use cluster_tests::{AgentProc, Ctl, MasterProc, ctl, eventually};
use serde_json::Value;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

/// One test at a time: the first reads the machine's CPU, which the
/// other's processes would move.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn alerts(admin: &cluster_tests::Admin) -> Vec<Value> {
    match ctl(admin, &["-o", "json", "alerts"]).await {
        Ctl {
            code: 0, stdout, ..
        } => serde_json::from_str(&stdout).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn has(alerts: &[Value], node: &str, metric: &str, severity: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["node"] == node && a["metric"] == metric && a["severity"] == severity)
}

async fn event_details(admin: &cluster_tests::Admin) -> Vec<String> {
    let events = ctl(admin, &["-o", "json", "events", "--limit", "200"])
        .await
        .json();
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "alert")
        .map(|e| {
            format!(
                "{} {}",
                e["node"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_node_fires_and_resolves_and_a_silent_one_is_an_alert() {
    let _alone = ONE_AT_A_TIME.lock().await;
    cluster_tests::crypto();
    let ip = "127.0.0.153";
    let am = Alertmanager::start(ip, free_port(ip.parse().unwrap())).await;
    let python = cluster_tests::notify::aiosmtpd(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")));
    let smtp_port = free_port(ip.parse().unwrap());
    let smtp = Smtp::start(&python, ip, smtp_port, SmtpTls::None, None, None);
    let hook = Hook::start(ip).await;
    // The critical line's clear margin is small: the alert resolves as soon
    // as the CPU is under 74 %, whatever else the machine runs.
    let master = MasterProc::builder()
        .down_after(Duration::from_secs(2))
        .config(&format!(
            "[alerts]\nfor = \"1s\"\ncpu = {{ warning = 50, critical = 75, clear = 1 }}\nsilent = {{ for = \"1s\" }}\n\
             [notify]\nresend = \"2s\"\n[[notify.alertmanager]]\nurl = \"{}\"\n[[notify.webhook]]\nurl = \"{}\"\n\
             [notify.email]\nserver = \"{ip}\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"alerts@example.com\"\nto = [\"ops@example.com\"]\n",
            am.url, hook.url
        ))
        .spawn();
    let critical_cpu = [("alertname", "NodeCpuCritical"), ("node", "web-1")];
    let mail = |subject: &'static str| {
        let mails = smtp.mails();
        move || {
            mails
                .iter()
                .filter(|m| {
                    m["subject"]
                        .as_str()
                        .is_some_and(|s| s.starts_with(subject))
                })
                .count()
        }
    };
    let mut busy = AgentProc::builder("web-1", &master)
        .addr("127.0.0.151")
        .role("web")
        .report_interval(Duration::from_millis(500))
        .spawn();
    let _calm = AgentProc::builder("web-2", &master)
        .addr("127.0.0.152")
        .role("web")
        .report_interval(Duration::from_millis(500))
        .spawn();
    let admin = master.admin();
    eventually("both agents report usage", PATIENCE, || async {
        let nodes = ctl(&admin, &["-o", "json", "nodes"]).await.json();
        nodes.as_array().unwrap().len() == 2
            && nodes
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["usage"].is_object())
    })
    .await;
    // web-2 sees the same machine's CPU, but is being worked on.
    ctl(&admin, &["drain", "web-2", "--reason", "kernel upgrade"])
        .await
        .ok();

    // One busy loop per core, for as long as the flag file exists.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("busy");
    let job = cluster_tests::busy_loop(&admin, "web-1", &flag);
    eventually("web-1's CPU alert fires", PATIENCE, || async {
        has(&alerts(&admin).await, "web-1", "cpu", "critical")
    })
    .await;
    let firing = alerts(&admin).await;
    assert!(
        !firing.iter().any(|a| a["node"] == "web-2"),
        "a drained node is silenced: {firing:?}"
    );
    let critical = firing
        .iter()
        .find(|a| a["node"] == "web-1" && a["severity"] == "critical")
        .unwrap();
    assert_eq!(critical["alertname"], "NodeCpuCritical");
    assert_eq!(critical["threshold"], 75.0);
    assert!(critical["value"].as_f64().unwrap() >= 75.0, "{critical}");
    let table = ctl(&admin, &["nodes"]).await.ok().stdout;
    let row = table.lines().find(|l| l.starts_with("web-1")).unwrap();
    assert!(row.contains("cpu critical"), "{table}");
    let said = event_details(&admin).await;
    assert!(
        said.iter()
            .any(|e| e.starts_with("web-1 alert firing: web-1 cpu critical: ")),
        "{said:?}"
    );
    // Delivered: Alertmanager holds it with its labels, one mail, one webhook post.
    eventually(
        "Alertmanager holds web-1's critical CPU alert",
        PATIENCE,
        || async {
            am.alert(&critical_cpu)
                .await
                .is_some_and(|a| a["status"]["state"] == "active")
        },
    )
    .await;
    let held = am.alert(&critical_cpu).await.unwrap();
    assert_eq!(held["labels"]["severity"], "critical", "{held}");
    assert_eq!(held["labels"]["metric"], "cpu", "{held}");
    assert_eq!(held["labels"]["role"], "web", "{held}");
    assert_eq!(held["annotations"]["threshold"], "75.0%", "{held}");
    eventually("the firing mail", PATIENCE, || async {
        mail("[FIRING] web-1 cpu critical: ")() == 1
    })
    .await;
    eventually("the firing webhook", PATIENCE, || async {
        hook.bodies().iter().any(|b| {
            b["version"] == "4"
                && b["status"] == "firing"
                && b["alerts"][0]["labels"]["alertname"] == "NodeCpuCritical"
        })
    })
    .await;
    // The history holds the busy samples.
    let history = ctl(&admin, &["-o", "json", "usage", "web-1", "--since", "5m"])
        .await
        .ok()
        .json();
    let samples = history["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{history}");
    assert!(
        samples
            .iter()
            .any(|s| s["cpu_percent"].as_f64().unwrap() >= 75.0)
    );
    assert_eq!(history["window_ms"], 3_600_000);
    // The REST API serves the same alerts and history.
    let token = cluster_tests::api_token(&admin, "read", "alerts-test").await;
    let api = |path: &str| format!("{}{path}", master.http_url());
    let (status, body) =
        cluster_tests::http::send("GET", &api("/api/v1/alerts"), &token, None).await;
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert!(
        listed["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alertname"] == "NodeCpuCritical" && a["node"] == "web-1"),
        "{listed}"
    );
    let (status, body) = cluster_tests::http::send(
        "GET",
        &api("/api/v1/nodes/web-1/usage?history=5m"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let usage: Value = serde_json::from_str(&body).unwrap();
    assert!(usage["history"].as_array().unwrap().len() >= 2, "{usage}");
    let (status, body) = cluster_tests::http::send(
        "GET",
        &api("/api/v1/nodes/web-1/usage?history=soon"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 400, "a bad duration is refused: {body}");
    let metrics = cluster_tests::get(&api("/metrics")).await.1;
    assert!(
        metrics.contains("cluster_alerts_firing{metric=\"cpu\",severity=\"critical\"} 1\n"),
        "{metrics}"
    );
    assert!(body.contains(r#"history=\"soon\""#), "{body}");

    // The loop stops: the alerts resolve, saying how long they lasted.
    std::fs::remove_file(&flag).unwrap();
    job.join().unwrap().ok();
    eventually("web-1's critical CPU alert resolves", PATIENCE, || async {
        !has(&alerts(&admin).await, "web-1", "cpu", "critical")
    })
    .await;
    let said = event_details(&admin).await;
    assert!(
        said.iter()
            .any(|e| e.starts_with("web-1 alert resolved after ")
                && e.contains("web-1 cpu critical resolved")),
        "{said:?}"
    );
    eventually("Alertmanager lets it go", PATIENCE, || async {
        am.alert(&critical_cpu)
            .await
            .is_none_or(|a| a["status"]["state"] != "active")
    })
    .await;
    eventually(
        "the resolved mail, after one firing mail",
        PATIENCE,
        || async { mail("[RESOLVED] web-1 cpu critical resolved")() == 1 },
    )
    .await;
    assert_eq!(
        mail("[FIRING] web-1 cpu critical: ")(),
        1,
        "one mail per change, not per re-send"
    );
    assert!(
        !said.iter().any(|e| e.contains("delivery")),
        "no delivery failed: {said:?}"
    );

    // An agent that stops reporting is an alert of its own.
    busy.stop();
    eventually("web-1 silent fires", PATIENCE, || async {
        has(&alerts(&admin).await, "web-1", "silent", "critical")
    })
    .await;
    busy.restart();
    eventually("web-1 silent resolves", PATIENCE, || async {
        !has(&alerts(&admin).await, "web-1", "silent", "critical")
    })
    .await;
    let said = event_details(&admin).await;
    assert!(
        said.iter().any(|e| e.contains("web-1 stopped reporting"))
            && said.iter().any(|e| e.contains("web-1 reports again")),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alertmanager_that_is_down_is_retried_and_its_failures_are_events() {
    let _alone = ONE_AT_A_TIME.lock().await;
    cluster_tests::crypto();
    let ip = "127.0.0.154";
    let am_port = free_port(ip.parse().unwrap());
    let am_url = format!("http://{ip}:{am_port}");
    // Memory past 0.01 % is always so: the alert fires at once.
    let master = MasterProc::builder()
        .config(&format!(
            "[alerts]\nfor = \"0s\"\nmemory = {{ careful = 0, warning = 0.01, critical = 100, clear = 0 }}\n\
             [notify]\nresend = \"1s\"\n[[notify.alertmanager]]\nurl = \"{am_url}\"\n"
        ))
        .spawn();
    let _agent = AgentProc::builder("db-1", &master)
        .addr(ip)
        .report_interval(Duration::from_millis(500))
        .spawn();
    let admin = master.admin();
    eventually("db-1's memory alert fires", PATIENCE, || async {
        has(&alerts(&admin).await, "db-1", "memory", "warning")
    })
    .await;
    eventually("the failed delivery is an event", PATIENCE, || async {
        event_details(&admin).await.iter().any(|e| {
            e.contains(&format!("alert delivery to alertmanager {am_url}/ failed"))
                && e.contains("db-1 memory warning")
        })
    })
    .await;
    // The master keeps working while delivery retries.
    ctl(&admin, &["drain", "db-1", "--reason", "swap disk"])
        .await
        .ok();
    ctl(&admin, &["undrain", "db-1"]).await.ok();
    eventually(
        "db-1's memory alert fires again once undrained",
        PATIENCE,
        || async { has(&alerts(&admin).await, "db-1", "memory", "warning") },
    )
    .await;
    // Alertmanager comes up: the alert reaches it, and that is said too.
    let am = Alertmanager::start(ip, am_port).await;
    eventually("Alertmanager holds the alert", PATIENCE, || async {
        am.alert(&[("alertname", "NodeMemoryWarning"), ("node", "db-1")])
            .await
            .is_some_and(|a| a["status"]["state"] == "active")
    })
    .await;
    eventually("the recovery is an event", PATIENCE, || async {
        event_details(&admin).await.iter().any(|e| {
            e.contains(&format!(
                "alert delivery to alertmanager {am_url}/ works again"
            ))
        })
    })
    .await;
}
