//! The first loop of the system, end to end: a master and agents as real
//! processes on distinct loopback addresses, clusterctl driving them.

use cluster_tests::{Admin, AgentProc, MasterProc, ctl, eventually, get};
use serde_json::Value;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

/// A master and three agents on 127.0.0.2–4, all registered.
async fn cluster() -> (MasterProc, Vec<AgentProc>) {
    let master = MasterProc::builder().spawn();
    let agents: Vec<AgentProc> = [
        ("web-1", "127.0.0.2", "web"),
        ("web-2", "127.0.0.3", "web"),
        ("db-1", "127.0.0.4", "db"),
    ]
    .iter()
    .map(|(id, ip, role)| AgentProc::builder(id, &master).addr(ip).role(role).spawn())
    .collect();
    let url = master.admin();
    eventually("three agents connected", PATIENCE, || async {
        let nodes = ctl(&url, &["nodes", "-o", "json"]).await;
        nodes.code == 0
            && nodes
                .json()
                .as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|n| n["connected"] == true))
    })
    .await;
    (master, agents)
}

fn node<'a>(nodes: &'a Value, name: &str) -> &'a Value {
    nodes
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {nodes}"))
}

async fn state_of(master: &Admin, name: &str) -> String {
    let nodes = ctl(master, &["nodes", "-o", "json"]).await.ok().json();
    node(&nodes, name)["state"].as_str().unwrap().to_owned()
}

async fn events(master: &Admin) -> Vec<(String, String)> {
    let out = ctl(master, &["events", "-o", "json"]).await.ok().json();
    out.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["node"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_lists_every_agent_with_its_facts() {
    let (master, agents) = cluster().await;
    let nodes = ctl(&master.admin(), &["nodes", "-o", "json"])
        .await
        .ok()
        .json();
    let web2 = node(&nodes, "web-2");
    for key in ["name", "id", "state", "roles", "addresses", "health_url"] {
        assert!(!web2[key].is_null(), "missing {key} in {web2}");
    }
    assert_eq!(web2["state"], "online");
    assert_eq!(web2["roles"], serde_json::json!(["web"]));
    assert_eq!(web2["addresses"], serde_json::json!(["127.0.0.3"]));
    assert_eq!(web2["health_url"], agents[1].health_url.as_str());
    assert!(
        web2["health_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.3:")
    );
    // Facts under Salt's names.
    let grains = &web2["grains"];
    assert_eq!(grains["id"], "web-2");
    for key in [
        "os",
        "os_family",
        "kernel",
        "cpuarch",
        "num_cpus",
        "mem_total",
        "ipv4",
    ] {
        assert!(!grains[key].is_null(), "missing grain {key}: {grains}");
    }
    // Usage arrives with the first report.
    let url = master.admin();
    eventually("usage reported", PATIENCE, || async {
        let nodes = ctl(&url, &["nodes", "-o", "json"]).await.json();
        node(&nodes, "web-2")["usage"]["mem_total_bytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    })
    .await;

    // The table names every node with its state.
    let table = ctl(&url, &["nodes"]).await.ok().stdout;
    assert!(table.starts_with("NAME"), "{table}");
    for name in ["web-1", "web-2", "db-1"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(name) && l.contains("online")),
            "{table}"
        );
    }

    // One grain, nested lookup, and a missing one.
    let os = ctl(&url, &["grains", "web-1", "os_family"])
        .await
        .ok()
        .stdout;
    assert_eq!(os.trim(), grains["os_family"].as_str().unwrap());
    let missing = ctl(&url, &["grains", "web-1", "os_family:nope"]).await;
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("node web-1 has no grain \"os_family:nope\""),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_flips_only_that_nodes_health_and_undrain_flips_it_back() {
    let (master, agents) = cluster().await;
    let url = master.admin();
    for a in &agents {
        assert_eq!(a.health().await.0, 200, "{} before the drain", a.id);
    }

    let drained = ctl(
        &url,
        &[
            "drain",
            "web-1",
            "--reason",
            "deploy",
            "--wait",
            "--timeout",
            "5s",
        ],
    )
    .await
    .ok();
    assert!(
        drained.stdout.contains("web-1") && drained.stdout.contains("acknowledged"),
        "{}",
        drained.stdout
    );
    // --wait returned after the acknowledgement: the endpoint already says so.
    let (code, body) = agents[0].health().await;
    assert_eq!(code, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "offline");
    assert_eq!(body["reason"], "deploy");
    // bethel's probe URL answers the same; the others stay in service.
    assert_eq!(
        get(&format!("{}?node=web-1", agents[0].health_url)).await.0,
        503
    );
    assert_eq!(agents[1].health().await.0, 200);
    assert_eq!(agents[2].health().await.0, 200);
    // The master's central health agrees.
    assert_eq!(
        get(&format!("{}/health?node=web-1", master.http_url()))
            .await
            .0,
        503
    );
    assert_eq!(
        get(&format!("{}/health?node=web-2", master.http_url()))
            .await
            .0,
        200
    );
    assert_eq!(state_of(&url, "web-1").await, "drained");

    ctl(&url, &["undrain", "web-1", "--wait"]).await.ok();
    let (code, body) = agents[0].health().await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(state_of(&url, "web-1").await, "online");

    let log = events(&url).await;
    let mine: Vec<_> = log
        .iter()
        .filter(|(k, n)| n == "web-1" && (k == "drain" || k == "undrain"))
        .collect();
    assert_eq!(
        mine,
        [
            &("drain".to_owned(), "web-1".to_owned()),
            &("undrain".to_owned(), "web-1".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_crash_keeps_drains_and_events_and_agents_reconnect_by_themselves() {
    let (mut master, agents) = cluster().await;
    let url = master.admin();
    ctl(&url, &["drain", "db-1", "--reason", "disk swap", "--wait"])
        .await
        .ok();

    master.kill(); // SIGKILL: only what was flushed before acknowledging survives
    master.restart();

    eventually("agents reconnected after the restart", PATIENCE, || async {
        let out = ctl(&url, &["nodes", "-o", "json"]).await;
        out.code == 0
            && out
                .json()
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["connected"] == true)
    })
    .await;
    let nodes = ctl(&url, &["nodes", "-o", "json"]).await.ok().json();
    assert_eq!(node(&nodes, "db-1")["state"], "drained");
    assert_eq!(node(&nodes, "db-1")["offline"]["reason"], "disk swap");
    assert!(
        events(&url)
            .await
            .contains(&("drain".into(), "db-1".into()))
    );
    // The reconnected agent still serves the drain, and new changes flow.
    assert_eq!(agents[2].health().await.0, 503);
    ctl(&url, &["drain", "web-2", "--wait"]).await.ok();
    assert_eq!(agents[1].health().await.0, 503);
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_keep_serving_the_last_state_while_the_master_is_away() {
    let (mut master, mut agents) = cluster().await;
    let url = master.admin();
    ctl(
        &url,
        &["drain", "web-1", "--reason", "maintenance", "--wait"],
    )
    .await
    .ok();

    master.kill();
    assert_eq!(agents[0].health().await.0, 503);
    assert_eq!(agents[1].health().await.0, 200);

    // An agent restarted while the master is down serves its cached state.
    agents[0].restart();
    let (code, body) = agents[0].health().await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("maintenance"), "{body}");
    agents[1].restart();
    assert_eq!(agents[1].health().await.0, 200);

    // When the master returns, an undrain reaches the restarted agent.
    master.restart();
    eventually("web-1 reconnected", PATIENCE, || async {
        let out = ctl(&url, &["nodes", "web-1", "-o", "json"]).await;
        out.code == 0 && out.json()[0]["connected"] == true
    })
    .await;
    ctl(&url, &["undrain", "web-1", "--wait"]).await.ok();
    assert_eq!(agents[0].health().await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_is_shown_down_after_the_grace() {
    let grace = Duration::from_millis(1500);
    let master = MasterProc::builder().down_after(grace).spawn();
    let url = master.admin();
    let mut a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .spawn();
    let _b = AgentProc::builder("web-2", &master)
        .addr("127.0.0.3")
        .spawn();
    eventually("both registered", PATIENCE, || async {
        let out = ctl(&url, &["nodes", "-o", "json"]).await;
        out.code == 0 && out.json().as_array().unwrap().len() == 2
    })
    .await;

    let killed_at = std::time::Instant::now();
    a.kill();
    // Not down at once: a node is down only after the grace.
    let right_after = state_of(&url, "web-1").await;
    if killed_at.elapsed() < grace / 2 {
        assert_eq!(right_after, "online");
    }
    eventually("web-1 shown down", PATIENCE, || async {
        state_of(&url, "web-1").await == "down"
    })
    .await;
    assert!(
        killed_at.elapsed() >= grace - Duration::from_millis(250),
        "down too early: {:?}",
        killed_at.elapsed()
    );
    assert_eq!(state_of(&url, "web-2").await, "online");
    eventually("a down event", PATIENCE, || async {
        events(&url)
            .await
            .contains(&("down".into(), "web-1".into()))
    })
    .await;

    // A drain --wait on it fails at once, naming it, with exit code 1.
    let started = std::time::Instant::now();
    let out = ctl(&url, &["drain", "web-1", "--wait", "--timeout", "20s"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("web-1 (not connected)"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait out the timeout"
    );

    // Without --wait the drain is stored (exit 0) and says the agent is away.
    let out = ctl(&url, &["undrain", "web-1"]).await.ok();
    assert!(
        out.stdout
            .contains("agent not connected; it applies the change when it reconnects"),
        "{}",
        out.stdout
    );
    ctl(&url, &["drain", "web-1"]).await.ok();

    // It comes back up when the agent returns.
    a.restart();
    eventually("web-1 back", PATIENCE, || async {
        state_of(&url, "web-1").await == "drained"
    })
    .await;
    assert!(events(&url).await.contains(&("up".into(), "web-1".into())));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let (master, agents) = cluster().await;
    let url = master.admin();
    let before_events = events(&url).await;
    let before = ctl(&url, &["nodes", "-o", "json"]).await.ok().json();

    // An unknown name among known ones: nothing is drained.
    let out = ctl(&url, &["drain", "web-1", "nope", "ghost"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("unknown nodes: nope, ghost"),
        "{}",
        out.stderr
    );
    assert_eq!(agents[0].health().await.0, 200);

    let out = ctl(&url, &["drain", "web-1", ""]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("empty node name at position 2"),
        "{}",
        out.stderr
    );

    let out = ctl(&url, &["undrain", "nope"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unknown node: nope"), "{}", out.stderr);

    let out = ctl(&url, &["grains", "nope"]).await;
    assert_eq!(out.code, 2);

    let out = ctl(&url, &["drain"]).await;
    assert_eq!(out.code, 2, "clap refuses a drain without names");

    let out = ctl(&url, &["drain", "web-1", "--wait", "--timeout", "soon"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--timeout"), "{}", out.stderr);

    let after = ctl(&url, &["nodes", "-o", "json"]).await.ok().json();
    let states = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n["state"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&before), states(&after));
    assert_eq!(
        before_events,
        events(&url).await,
        "bad input left events behind"
    );

    // No master there: exit 3 with the address and where it came from.
    let nowhere = Admin {
        url: "https://127.0.0.1:1".into(),
        ..url.clone()
    };
    let out = ctl(&nowhere, &["nodes"]).await;
    assert_eq!(out.code, 3);
    assert!(
        out.stderr
            .contains("cannot reach the master at https://127.0.0.1:1 (from CLUSTERCTL_MASTER)"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_master_on_a_busy_port_fails_clearly() {
    let master = MasterProc::builder().spawn();
    let out = std::process::Command::new(cluster_tests::bin("cluster-master"))
        .args(["--listen", &master.grpc.to_string(), "--http-listen", "off"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for gRPC on {}", master.grpc))
            && err.contains("in use"),
        "{err}"
    );
    // The first master is unaffected.
    assert_eq!(ctl(&master.admin(), &["nodes"]).await.code, 0);

    // A second master on the same data directory is refused too.
    let out = std::process::Command::new(cluster_tests::bin("cluster-master"))
        .args(["--listen", "127.0.0.1:0", "--http-listen", "off"])
        .arg("--data-dir")
        .arg(master.data_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another master process is using it"), "{err}");
}
