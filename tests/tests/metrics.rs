//! `/metrics` on the master and on an agent, checked by Prometheus's own
//! tools from Debian's `prometheus` package (`tests/run` installs it):
//! `promtool check metrics` passes on both (Prometheus's text format for
//! clients that do not ask for OpenMetrics), a node failing a check is
//! counted as failing, drains, undrains and jobs' results are counted, the
//! agent's usage has each core and the process count, and a real
//! Prometheus server scrapes both and answers a query for the node's CPU
//! usage. Addresses 127.0.0.141–143.
use cluster_tests::lb::free_port;
use cluster_tests::prom::{promtool, sample};
use cluster_tests::{AgentProc, MasterProc, Proc, ctl, eventually};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_reads_the_master_and_an_agent() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let dead = free_port("127.0.0.141");
    let failing = AgentProc::builder("web-1", &master)
        .addr("127.0.0.141")
        .role("web")
        .config(&format!(
            "[[check]]\nname = \"app\"\nhttp = \"http://127.0.0.141:{dead}/ping\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n"
        ))
        .report_interval(Duration::from_millis(500))
        .spawn();
    let agent = AgentProc::builder("web-2", &master)
        .addr("127.0.0.142")
        .role("web")
        .report_interval(Duration::from_millis(500))
        .spawn();
    let master_metrics = format!("{}/metrics", master.http_url());
    let agent_metrics = agent.health_url.replace("/health", "/metrics");

    // The master counts the node failing its check as failing.
    eventually("web-1 counted as failing", PATIENCE, || async {
        let text = cluster_tests::get(&master_metrics).await.1;
        sample(&text, r#"cluster_nodes{state="failing"}"#) == Some(1.0)
            && sample(&text, r#"cluster_nodes{state="online"}"#) == Some(1.0)
    })
    .await;
    eventually("the agent reports its usage", PATIENCE, || async {
        let text = cluster_tests::get(&agent_metrics).await.1;
        sample(&text, "cluster_agent_cpu_usage_ratio").is_some()
    })
    .await;
    // The same sample has the complete report: each core, processes.
    let text = cluster_tests::get(&agent_metrics).await.1;
    let core0 = sample(&text, r#"cluster_agent_cpu_core_usage_ratio{core="0"}"#);
    assert!(core0.is_some_and(|r| (0.0..=1.0).contains(&r)), "{text}");
    assert!(
        sample(&text, "cluster_agent_processes").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // What was done through the master is counted.
    let admin = master.admin();
    ctl(&admin, &["drain", "web-2", "--reason", "kernel"])
        .await
        .ok();
    ctl(&admin, &["undrain", "web-2"]).await.ok();
    ctl(&admin, &["run", "web-2", "--", "true"]).await.ok();
    let text = cluster_tests::get(&master_metrics).await.1;
    for (series, want) in [
        (r#"cluster_drains_total{kind="drain"}"#, 1.0),
        ("cluster_undrains_total", 1.0),
        (r#"cluster_job_node_results_total{result="ok"}"#, 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    // Every gRPC call is counted by method and code, and timed.
    assert!(
        sample(
            &text,
            r#"cluster_grpc_calls_total{method="Control/Drain",code="OK"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"cluster_grpc_calls_total{method="AgentService/Session",code="OK"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"cluster_grpc_call_seconds_count{method="Control/Run"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // Prometheus asks for OpenMetrics, and gets it.
    let (_, open) = cluster_tests::http::get_accepting(
        &master_metrics,
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )
    .await;
    assert!(
        open.contains("# TYPE cluster_drains counter\n") && open.ends_with("# EOF\n"),
        "{open}"
    );
    for url in [
        &master_metrics,
        &agent_metrics,
        &failing.health_url.replace("/health", "/metrics"),
    ] {
        let text = cluster_tests::get(url).await.1;
        let (ok, said) = promtool(&text);
        assert!(ok, "promtool check metrics on {url}:\n{said}\n{text}");
    }

    // A real Prometheus scrapes both.
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.143:{}", free_port("127.0.0.143"));
    let hostport = |url: &str| {
        url.trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_owned()
    };
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: master\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: agent\n    static_configs: [{{targets: ['{}']}}]\n",
            hostport(&master_metrics),
            hostport(&agent_metrics)
        ),
    )
    .unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        dir.path().join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.path().join("data").display()
    ))
    .arg(format!("--web.listen-address={listen}"));
    let _prometheus = Proc::spawn(cmd).expect("prometheus runs");
    let query = |q: &str| {
        let url = format!("http://{listen}/api/v1/query?query={q}");
        async move {
            let (status, body) = cluster_tests::get(&url).await;
            if status != 200 {
                return Vec::new();
            }
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            v["data"]["result"].as_array().cloned().unwrap_or_default()
        }
    };
    eventually("Prometheus has web-2's CPU usage", PATIENCE, || async {
        query("cluster_agent_cpu_usage_ratio")
            .await
            .iter()
            .any(|r| {
                r["metric"]["job"] == "agent"
                    && r["value"][1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| (0.0..=1.0).contains(&v))
            })
    })
    .await;
    eventually(
        "Prometheus has the master's node counts",
        PATIENCE,
        || async {
            query("cluster_nodes%7Bstate%3D%22failing%22%7D")
                .await
                .iter()
                .any(|r| r["metric"]["job"] == "master" && r["value"][1] == "1")
        },
    )
    .await;
}
