//! Every master serves, on a real three-member etcd cluster: history
//! compacted under an agent that was away, a node revoked through another
//! master than the one it enrolled with, a master started while the agents
//! are on the others, an agent coming back to a standby while a write
//! there waits for a leader, and `run`, `drain --wait` and `rollout`
//! through a master that holds neither agent. (Failover is `ha.rs`.)
//! Agents live on 127.0.0.65–127.0.0.79, each test on its own addresses;
//! the masters' lease is 2 s.

use cluster_tests::ha::{events, node, session_master};
use cluster_tests::{AgentProc, EtcdCluster, Masters, connected, crypto, ctl, eventually};
use serde_json::Value;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);

fn hosts_names(a: &AgentProc) -> Vec<String> {
    const BEGIN: &str = "# BEGIN clusterctl";
    let text = std::fs::read_to_string(a.hosts_file()).unwrap_or_default();
    let Some(start) = text.find(BEGIN) else {
        return Vec::new();
    };
    let mut names: Vec<String> = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("# END"))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_away_while_history_is_compacted_catches_up_through_a_master_that_missed_it() {
    crypto();
    let began = Instant::now();
    let mut etcd = EtcdCluster::start(3).await;
    // m1 reaches etcd through member 2 alone.
    let member = 2;
    let only = vec![etcd.client_url(member)];
    let mut masters = Masters::build_with(2, &etcd, |i, b| if i == 1 { b.etcd(&only) } else { b });
    masters.start(0);
    masters.wait_for_leader(PATIENCE, |l| l == 0).await;
    masters.start(1);
    // web-1 knows only m1.
    let mut away = AgentProc::builder("web-1", &masters[0])
        .masters(&[masters[1].url()])
        .addr("127.0.0.65")
        .spawn();
    let stays = AgentProc::builder("web-2", &masters[0])
        .addr("127.0.0.66")
        .spawn();
    let admin = masters.admin_of(0);
    connected(&admin, 2).await;
    eventually("web-1's hosts file lists both", PATIENCE, || async {
        hosts_names(&away) == ["web-1", "web-2"]
    })
    .await;
    assert_eq!(away.health().await.0, 200);

    // web-1 goes away, and m1 loses its etcd member: both miss what follows.
    away.kill();
    etcd.stop(member);
    ctl(&admin, &["drain", "web-1", "--reason", "while away"])
        .await
        .ok();
    ctl(&admin, &["rename", "web-2", "edge-2"]).await.ok();
    ctl(&admin, &["label", "edge-2", "tier=edge"]).await.ok();
    ctl(&admin, &["nodegroup", "set", "edges", "edge-*"])
        .await
        .ok();
    let revision = etcd.compact_to_latest().await;
    eprintln!("[ha] compacted to revision {revision}");

    etcd.start_member(member).await;
    away.restart();
    eventually(
        "web-1 drained, as decided while it was away",
        PATIENCE,
        || async { away.health().await.0 == 503 },
    )
    .await;
    eventually("web-1's hosts file has the new name", PATIENCE, || async {
        hosts_names(&away) == ["edge-2", "web-1"]
    })
    .await;
    assert_eq!(session_master(&away), Some(masters[1].url()));
    // m1 shows the latest state too.
    let m1 = masters.admin_of(1);
    eventually("m1 shows the changes", PATIENCE, || async {
        node(&m1, "edge-2")
            .await
            .is_some_and(|n| n["labels"]["tier"] == "edge")
            && node(&m1, "web-1")
                .await
                .is_some_and(|n| n["state"] == "drained")
    })
    .await;
    let groups = ctl(&m1, &["nodegroup", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(groups["edges"], "edge-*", "{groups}");
    assert!(
        masters[1].log().contains("compacted"),
        "m1 resumed a watch its history was compacted under:\n{}",
        masters[1].log()
    );
    assert_eq!(stays.health().await.0, 200);
    eprintln!("[ha] {:?} in all", began.elapsed());
}

/// "Within a second or two".
const BRIEFLY: Duration = Duration::from_millis(2500);

/// How many sessions the agent has logged as ended (refused or broken).
fn ended(agent: &AgentProc) -> usize {
    let log = agent.log();
    log.matches("session with the master ended").count()
        + log
            .matches("no longer accepts this node's certificate")
            .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_revoked_through_another_master_loses_its_session_at_once() {
    crypto();
    let began = Instant::now();
    let etcd = EtcdCluster::start(3).await;
    let masters = Masters::spawn(2, &etcd);
    masters.wait_for_leader(PATIENCE, |_| true).await;
    // Enrolled through A (its token, only A in its list); a neighbour on B.
    let (a, b) = (masters.admin_of(0), masters.admin_of(1));
    let revoked = AgentProc::builder("web-1", &masters[0])
        .masters(&[masters[0].url()])
        .addr("127.0.0.70")
        .spawn();
    let neighbour = AgentProc::builder("web-2", &masters[0])
        .masters(&[masters[1].url()])
        .addr("127.0.0.71")
        .spawn();
    for admin in [&a, &b] {
        connected(admin, 2).await;
    }
    assert_eq!(session_master(&revoked), Some(masters[0].url()));
    let ended_before = ended(&revoked);

    // Revoked through B: within a second or two the agent hears its
    // session end, and both masters show it disconnected.
    let t = Instant::now();
    ctl(&b, &["keys", "reject", "web-1"]).await.ok();
    let deadline = t + BRIEFLY;
    let left = || deadline.saturating_duration_since(Instant::now());
    eventually("web-1's agent hears its session end", left(), || async {
        ended(&revoked) > ended_before
    })
    .await;
    let heard = t.elapsed();
    for (admin, which) in [(&a, "A"), (&b, "B")] {
        eventually(
            &format!("{which} shows web-1 disconnected"),
            left(),
            || async {
                node(admin, "web-1")
                    .await
                    .is_some_and(|n| n["connected"] == false)
            },
        )
        .await;
    }
    eprintln!(
        "[ha] the agent heard it {heard:?} after the revocation; both masters showed it {:?} after",
        t.elapsed()
    );
    // It stays out, and the neighbour stays in.
    for admin in [&a, &b] {
        assert_eq!(node(admin, "web-1").await.unwrap()["connected"], false);
        assert_eq!(node(admin, "web-2").await.unwrap()["connected"], true);
    }
    let keys = ctl(&a, &["keys", "list", "-o", "json"]).await.ok().json();
    let state = keys
        .as_array()
        .and_then(|k| k.iter().find(|k| k["node_id"] == "web-1"))
        .map(|k| k["state"].clone());
    assert_eq!(state, Some(Value::from("rejected")), "{keys}");
    assert_eq!(neighbour.health().await.0, 200);
    eprintln!("[ha] {:?} in all", began.elapsed());
}

/// A master started while the agents are on the others knows where each
/// session is from its first answer: it loads the others' session records
/// with the state, rather than counting every node down until its agent
/// next reports (a master that then led would log them `down`).
#[tokio::test(flavor = "multi_thread")]
async fn a_master_started_while_the_agents_are_elsewhere_lists_them_connected_at_once() {
    crypto();
    let etcd = EtcdCluster::start(3).await;
    let mut masters = Masters::spawn(3, &etcd);
    masters.wait_for_leader(PATIENCE, |_| true).await;
    // One master made the cluster's CA; the others say they adopted it.
    let said = |what: &str| (0..3).filter(|&i| masters[i].log().contains(what)).count();
    assert_eq!(
        (
            said("created the cluster CA"),
            said("adopted the cluster's CA")
        ),
        (1, 2)
    );
    let urls = masters.urls();
    // Both agents know m0 and m1 only: m2 holds no session.
    let _agents: Vec<AgentProc> = (1..=2)
        .map(|i| {
            masters
                .agent(&format!("far-{i}"))
                .addr(&format!("127.0.0.{}", 72 + i))
                .masters(&urls[..2])
                .spawn()
        })
        .collect();
    connected(&masters.admin_of(2), 2).await;

    masters[2].kill();
    masters.start(2);
    let admin = masters.admin_of(2);
    let first = tokio::time::timeout(PATIENCE, async {
        loop {
            let out = ctl(&admin, &["nodes", "-o", "json"]).await;
            if out.code == 0 {
                break out.json();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the restarted master answers");
    let listed = first.as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 2, "{first:#}");
    for n in &listed {
        assert_eq!(n["connected"], true, "its first answer: {n:#}");
        assert_eq!(n["state"], "online", "its first answer: {n:#}");
    }
    let log = events(&admin).await;
    assert!(
        !log.iter().any(|e| e["kind"] == "down" || e["kind"] == "up"),
        "{log:#?}"
    );
}

/// An agent that comes back unchanged is served by a standby at once,
/// even while a write sent there waits for the next leader: it needs no
/// commit, so it does not queue behind one (nor for the election).
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_back_unchanged_is_served_by_a_standby_while_a_write_waits_for_a_leader() {
    crypto();
    let etcd = EtcdCluster::start(3).await;
    let mut masters = Masters::spawn(3, &etcd);
    let (leader, _) = masters.wait_for_leader(PATIENCE, |_| true).await;
    let standby = (0..3).find(|&i| i != leader).expect("three masters");
    let urls = masters.urls();
    let mut agent = masters
        .agent("back-1")
        .addr("127.0.0.75")
        .masters(&urls[standby..=standby])
        .spawn();
    connected(&masters.admin_of(standby), 1).await;
    let led: Vec<usize> = (0..3).map(|i| masters.times_led(i)).collect();

    // The leader freezes; a write through the standby waits for the next.
    masters[leader].pause();
    let admin = masters.admin_of(standby);
    // clusterctl's future is not Send: on a thread with its own runtime.
    let write = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(ctl(&admin, &["label", "back-1", "k=v"]))
    });
    agent.restart();
    eventually("the agent has a session again", PATIENCE, || async {
        agent.log().contains("session open")
    })
    .await;
    let elected: Vec<usize> = (0..3)
        .filter(|&i| i != leader && masters.times_led(i) > led[i])
        .collect();
    assert!(
        elected.is_empty(),
        "the session opened only once m{elected:?} led:\n{}",
        agent.log()
    );
    let written = tokio::task::spawn_blocking(move || write.join())
        .await
        .expect("joined")
        .expect("the write's thread");
    assert_eq!(written.code, 0, "{written:?}");
    masters[leader].resume();
}

/// Jobs, drains and rollouts reach an agent whichever master it is on:
/// `run` through one master is relayed to the others' agents and their
/// output comes back; `drain --wait` through one returns on the
/// acknowledgement of an agent on another; the job is stored once,
/// readable on every master; a rollout driven by a third goes through.
#[tokio::test(flavor = "multi_thread")]
async fn run_drain_wait_and_rollout_reach_agents_on_other_masters() {
    crypto();
    let etcd = EtcdCluster::start(3).await;
    let masters = Masters::spawn(3, &etcd);
    masters.wait_for_leader(PATIENCE, |_| true).await;
    let urls = masters.urls();
    // relay-a on m0, relay-b on m1; clusterctl calls m2, which holds neither.
    let agents: Vec<AgentProc> = [("relay-a", 0), ("relay-b", 1)]
        .iter()
        .enumerate()
        .map(|(k, (id, m))| {
            masters
                .agent(id)
                .addr(&format!("127.0.0.{}", 76 + k))
                .role("web")
                .masters(&urls[*m..=*m])
                .spawn()
        })
        .collect();
    let admin = masters.admin_of(2);
    connected(&admin, 2).await;
    for (a, m) in agents.iter().zip([0, 1]) {
        assert_eq!(session_master(a).as_deref(), Some(urls[m].as_str()));
    }

    let out = ctl(
        &admin,
        &[
            "run",
            "*",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            "echo ok; exit 4",
        ],
    )
    .await;
    let job = out.json();
    let results = job["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "{job:#}\n{}", out.stderr);
    for r in &results {
        assert_eq!(r["exit_code"], 4, "{r:#}");
        assert!(
            r["stdout"].as_str().unwrap_or_default().ends_with("ok\n"),
            "{r:#}"
        );
    }
    // Stored once, the same on the master each agent is on.
    let id = job["id"].as_str().expect("a job id");
    for m in 0..3 {
        let stored = ctl(&masters.admin_of(m), &["job", id, "-o", "json"])
            .await
            .ok()
            .json();
        assert_eq!(
            stored["results"].as_array().map(Vec::len),
            Some(2),
            "m{m}: {stored:#}"
        );
    }

    // A drain through m2 waits for relay-b, on m1.
    let out = ctl(
        &admin,
        &[
            "drain",
            "relay-b",
            "--reason",
            "elsewhere",
            "--wait",
            "--timeout",
            "15s",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    // --wait returned once relay-b applied it: its /health says so now.
    let (status, _) = agents[1].health().await;
    assert_eq!(status, 503);
    ctl(&admin, &["undrain", "relay-b", "--wait"]).await.ok();

    // A rollout driven by m2 drains, runs on and restores each in turn.
    let out = ctl(
        &admin,
        &["rollout", "-R", "web", "--batch", "1", "--", "true"],
    )
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("succeeded — 2 of 2 done, 1 at a time"),
        "{}",
        out.stdout
    );
    for a in &agents {
        assert_eq!(a.health().await.0, 200, "{} back in service", a.id);
    }
}
