//! Usage alerts end to end, alone in their test binary (they read the
//! machine's CPU, which other tests would move): a busy loop started
//! through `clusterctl run` takes a node's CPU past its critical level;
//! the alert fires after its `for`, shows in `clusterctl alerts`, in
//! `nodes` and in the event log, while a drained node seeing the same
//! CPU stays silent; the critical one resolves once the loop stops, saying how long it
//! lasted. An agent that stops reporting fires `silent`. The usage
//! history is served to `clusterctl usage`. Addresses 127.0.0.151–152.

use cluster_tests::{AgentProc, Ctl, MasterProc, ctl, eventually};
use serde_json::Value;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

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
    cluster_tests::crypto();
    let master = MasterProc::builder()
        .down_after(Duration::from_secs(2))
        .config(
            "[alerts]\nfor = \"1s\"\ncpu = { warning = 50, critical = 75, clear = 15 }\nsilent = { for = \"1s\" }\n",
        )
        .spawn();
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
    std::fs::write(&flag, "").unwrap();
    let script = format!(
        "for i in $(seq $(nproc)); do (while [ -e {f} ]; do :; done) & done; wait",
        f = flag.display()
    );
    let loop_admin = admin.clone();
    // clusterctl runs in-process and its future stays on one thread.
    let job = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(ctl(
            &loop_admin,
            &[
                "run",
                "web-1",
                "--timeout",
                "120s",
                "--",
                "sh",
                "-c",
                &script,
            ],
        ))
    });
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
    assert!(body.contains("history=\"soon\""), "{body}");

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
