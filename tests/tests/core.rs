//! The master's core end to end, as a new user met it: what an agent that
//! cannot make its state durable says, node groups other groups need, a
//! node's history across a promotion, the states `nodes` shows, and a
//! master stopped in the middle of a rollout.

use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(20);

async fn node_json(admin: &cluster_tests::Admin, name: &str) -> Option<serde_json::Value> {
    let out = ctl(admin, &["nodes", name, "-o", "json"]).await;
    (out.code == 0).then(|| out.json()[0].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_cannot_cache_its_state_says_so_and_the_master_shows_it() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let agent = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .spawn();
    let cache = agent.data_dir().join("desired.json");
    eventually("the first state cached", PATIENCE, || async {
        cache.is_file()
    })
    .await;
    // The cache can no longer be written: a directory stands where it goes.
    std::fs::remove_file(&cache).unwrap();
    std::fs::create_dir(&cache).unwrap();

    // The drain still takes effect at once…
    let out = ctl(&admin, &["drain", "web-1", "--reason", "disk", "--wait"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let health = cluster_tests::get(&agent.health_url).await;
    assert_eq!(health.0, 503);
    // …but the master knows it would not survive a restart of the agent.
    eventually("the cache failure shown", PATIENCE, || async {
        node_json(&admin, "web-1").await.is_some_and(|n| {
            n["cache_error"]
                .as_str()
                .is_some_and(|e| e.contains("desired.json"))
        })
    })
    .await;
    let table = ctl(&admin, &["nodes"]).await.ok().stdout;
    assert!(table.contains("agent cannot cache its state"), "{table}");
    let events = ctl(&admin, &["events", "--node", "web-1", "-o", "json"])
        .await
        .ok()
        .json();
    let agent_events: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "agent")
        .collect();
    assert_eq!(agent_events.len(), 1, "one event for the failure: {events}");
    assert!(
        agent_events[0]["detail"]
            .as_str()
            .unwrap()
            .contains("cannot make its desired state durable"),
        "{events}"
    );

    // The disk recovers: the agent writes the state again by itself (no
    // new change needed), and the master hears it.
    std::fs::remove_dir(&cache).unwrap();
    eventually("the cache failure cleared", PATIENCE, || async {
        node_json(&admin, "web-1")
            .await
            .is_some_and(|n| n.get("cache_error").is_none())
    })
    .await;
    let cached: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(
        cached["offline"]["reason"], "disk",
        "the drain is durable: {cached}"
    );
    ctl(&admin, &["undrain", "web-1", "--wait"]).await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_group_another_group_uses_cannot_be_removed() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    ctl(&admin, &["nodegroup", "set", "a", "node*"]).await.ok();
    ctl(&admin, &["nodegroup", "set", "b", "N@a and not node1"])
        .await
        .ok();
    let out = ctl(&admin, &["nodegroup", "rm", "a"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("node group \"a\" is still used by node group \"b\""),
        "{}",
        out.stderr
    );
    let groups = ctl(&admin, &["nodegroup", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(groups["a"], "node*", "nothing changed: {groups}");
    ctl(&admin, &["nodegroup", "rm", "b"]).await.ok();
    ctl(&admin, &["nodegroup", "rm", "a"]).await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_promotion_a_nodes_events_are_its_own_shown_by_the_names_it_had() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let db = |id: &str, ip: &str| {
        AgentProc::builder(id, &master)
            .addr(ip)
            .config("service = \"db\"\nnaming = \"masterful\"")
            .spawn()
    };
    let _m = db("m4", "127.0.0.2");
    eventually("m4 is db-master", PATIENCE, || async {
        node_json(&admin, "db-master")
            .await
            .is_some_and(|n| n["id"] == "m4")
    })
    .await;
    let _s = db("m5", "127.0.0.3");
    eventually("m5 is db-slave-1", PATIENCE, || async {
        node_json(&admin, "db-slave-1")
            .await
            .is_some_and(|n| n["id"] == "m5")
    })
    .await;
    ctl(&admin, &["drain", "db-master", "--reason", "old master"])
        .await
        .ok();
    ctl(&admin, &["promote", "db-slave-1"]).await.ok();

    // m5 is db-master now: its own history, under the names it had (its
    // key was accepted before it had a name).
    let events = ctl(&admin, &["events", "--node", "m5", "-o", "json"])
        .await
        .ok()
        .json();
    let shown: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("m5".to_owned(), "key".to_owned()),
            ("db-slave-1".to_owned(), "registered".to_owned()),
            ("db-master".to_owned(), "name".to_owned())
        ],
        "{events}"
    );
    assert!(
        !events.to_string().contains("old master"),
        "m4's drain is not m5's history: {events}"
    );
    let by_name = ctl(&admin, &["events", "--node", "db-master", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(by_name, events, "by name or by id, the same node");
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_shows_a_failing_check_as_failing_and_maintenance_as_maintenance() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _failing = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .config("[[check]]\nname = \"app\"\ncommand = [\"false\"]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n")
        .spawn();
    let _maint = AgentProc::builder("web-2", &master)
        .addr("127.0.0.3")
        .spawn();
    eventually("web-1 failing", PATIENCE, || async {
        node_json(&admin, "web-1")
            .await
            .is_some_and(|n| n["state"] == "failing")
    })
    .await;
    // web-2 may enroll after web-1 fails its check: it is drained once known.
    eventually("web-2 enrolled", PATIENCE, || async {
        node_json(&admin, "web-2").await.is_some()
    })
    .await;
    ctl(&admin, &["drain", "web-2", "--maint", "--reason", "disk"])
        .await
        .ok();
    assert_eq!(
        node_json(&admin, "web-2").await.unwrap()["state"],
        "maintenance"
    );
    let table = ctl(&admin, &["nodes"]).await.ok().stdout;
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{table}"))
            .to_owned()
    };
    assert!(row("web-1").contains("failing"), "{table}");
    assert!(row("web-2").contains("maintenance"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_stopped_mid_rollout_stops_cleanly_and_holds_the_rollout() {
    let mut master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .role("web")
        .spawn();
    let _b = AgentProc::builder("web-2", &master)
        .addr("127.0.0.3")
        .role("web")
        .spawn();
    cluster_tests::connected(&admin, 2).await;
    let started = ctl(
        &admin,
        &[
            "rollout", "-R", "web", "--detach", "-o", "json", "--", "sleep", "30",
        ],
    )
    .await
    .ok()
    .json();
    let id = started["id"].as_str().unwrap().to_owned();
    eventually("a node running the command", PATIENCE, || async {
        let out = ctl(&admin, &["rollout", "status", &id, "-o", "json"]).await;
        out.code == 0 && out.json().to_string().contains("\"running\"")
    })
    .await;

    // SIGTERM with a job running, its session about to end, the record
    // about to be written: a clean stop, no panic.
    assert_eq!(master.stop(), Some(0), "exit code; log:\n{}", master.log());
    let log = master.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("master stopped"), "{log}");

    // The rollout is held, whole, for someone to resume or abort.
    master.restart();
    let rec = ctl(&admin, &["rollout", "status", &id, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(rec["state"], "interrupted", "{rec}");
    assert_eq!(rec["nodes"].as_object().unwrap().len(), 2, "{rec}");
}
