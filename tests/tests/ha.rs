//! Failover of several masters on a real three-member etcd cluster, end to
//! end: the leading master killed or frozen, etcd losing its leader and
//! then its quorum. (What every master serves is `ha_serving.rs`.) Agents
//! live on 127.0.0.50–127.0.0.64, each test on its own addresses; the
//! masters' lease is 2 s.

use cluster_tests::ha::{LEASE_TTL, events, nodes, session_master};
use cluster_tests::{
    Admin, AgentProc, EtcdCluster, Expect, HealthWatch, Masters, connected, crypto, ctl, eventually,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(20);

/// Each node's labels, by name.
async fn labels(admin: &Admin) -> BTreeMap<String, Value> {
    nodes(admin)
        .await
        .into_iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or_default().to_owned(),
                n["labels"].clone(),
            )
        })
        .collect()
}

/// How many `label` events set exactly `detail` (`KEY=VALUE`).
fn label_events(events: &[Value], detail: &str) -> usize {
    events
        .iter()
        .filter(|e| e["kind"] == "label" && e["detail"] == detail)
        .count()
}

fn label_of(labels: &BTreeMap<String, Value>, node: &str, key: &str) -> Option<String> {
    labels.get(node)?[key].as_str().map(str::to_owned)
}

/// One `clusterctl label` of the stream, and what it answered.
#[derive(Debug, Clone)]
struct Mutation {
    /// The label's key, unique to this mutation.
    key: String,
    node: String,
    ok: bool,
    stderr: String,
    /// When it answered.
    at: Instant,
    /// How long it took, retries included.
    took: Duration,
}

/// `clusterctl label web-N PREFIX<I>=v` for I = 0, 1, …, one after
/// another over every node in turn, until `stop` (on a thread of its own:
/// clusterctl's future is not `Send`).
fn stream_labels(
    admin: Admin,
    prefix: &'static str,
    nodes: Vec<String>,
    stop: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<Mutation>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let node = nodes[i as usize % nodes.len()].clone();
                let sent = Instant::now();
                let key = format!("{prefix}{i}");
                let out = ctl(&admin, &["label", &node, &format!("{key}=v")]).await;
                done.lock().unwrap().push(Mutation {
                    key,
                    node,
                    ok: out.code == 0,
                    stderr: out.stderr,
                    at: Instant::now(),
                    took: sent.elapsed(),
                });
            }
        })
    })
}

fn acknowledged_since(done: &Mutex<Vec<Mutation>>, since: Instant) -> usize {
    done.lock()
        .unwrap()
        .iter()
        .filter(|m| m.ok && m.at > since)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_killed_mid_stream_loses_no_acknowledged_write_and_its_agents_move_on() {
    crypto();
    let began = Instant::now();
    let etcd = EtcdCluster::start(3).await;
    let mut masters = Masters::build(3, &etcd);
    // m0 runs alone at first: it leads, and agents given all three land
    // on it (the others refuse connections).
    masters.start(0);
    masters.wait_for_leader(PATIENCE, |l| l == 0).await;
    let on_leader: Vec<AgentProc> = (1..=3)
        .map(|i| {
            masters
                .agent(&format!("web-{i}"))
                .addr(&format!("127.0.0.{}", 49 + i))
                .spawn()
        })
        .collect();
    // Each has its session on m0 before the others start (or it could land
    // on one of them).
    eventually("web-1..3 on m0", PATIENCE, || async {
        on_leader
            .iter()
            .all(|a| session_master(a) == Some(masters[0].url()))
    })
    .await;
    masters.start(1);
    masters.start(2);
    // web-4 knows only the standbys.
    let on_standby = masters
        .agent("web-4")
        .masters(&masters.urls()[1..])
        .addr("127.0.0.53")
        .spawn();
    let admin = masters.admin();
    connected(&admin, 4).await;
    masters.wait_for_leader(PATIENCE, |l| l == 0).await;
    for a in &on_leader {
        assert_eq!(session_master(a), Some(masters[0].url()), "{}", a.id);
    }
    let standby_session = session_master(&on_standby);
    assert!(
        standby_session
            .as_deref()
            .is_some_and(|m| m != masters[0].url()),
        "{standby_session:?}"
    );

    let agents: Vec<&AgentProc> = on_leader.iter().chain([&on_standby]).collect();
    let watch = HealthWatch::start(&agents);
    let done = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let names: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    // One client given every master, one given only the standbys (its
    // writes are all forwarded to the leader).
    let writers = [
        stream_labels(
            admin.clone(),
            "k",
            names.clone(),
            stop.clone(),
            done.clone(),
        ),
        stream_labels(
            Admin {
                url: masters.urls()[1..].join(","),
                ..admin.clone()
            },
            "s",
            names,
            stop.clone(),
            done.clone(),
        ),
    ];
    eventually(
        "20 labels acknowledged before the kill",
        PATIENCE,
        || async { acknowledged_since(&done, began) >= 20 },
    )
    .await;

    let killed = Instant::now();
    masters[0].kill();
    let (leader, failover) = masters
        .wait_for_leader(Duration::from_secs(15), |l| l != 0)
        .await;
    eprintln!("[ha] m{leader} leads {failover:?} after m0 was killed");
    assert!(masters.times_led(leader) >= 1, "{}", masters[leader].log());
    assert!(
        failover <= LEASE_TTL * 3,
        "m{leader} took {failover:?} to lead (lease {LEASE_TTL:?})"
    );
    let led = Instant::now();
    eventually(
        "20 labels acknowledged after the failover",
        PATIENCE,
        || async { acknowledged_since(&done, led) >= 20 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap()
            .unwrap();
    }

    // The agents that were on m0 are on another master now.
    for a in &on_leader {
        eventually(&format!("{} on another master", a.id), PATIENCE, || async {
            session_master(a).is_some_and(|m| m != masters[0].url())
        })
        .await;
    }
    connected(&admin, 4).await;
    // A drain made now reaches them.
    watch.expect("web-1", Expect::Either);
    watch.expect("web-2", Expect::Either);
    ctl(
        &admin,
        &[
            "drain",
            "web-1",
            "web-2",
            "--reason",
            "after failover",
            "--wait",
        ],
    )
    .await
    .ok();
    for a in &on_leader[..2] {
        assert_eq!(a.health().await.0, 503, "{} drained", a.id);
        watch.expect(&a.id, Expect::Down);
    }
    assert_eq!(on_leader[2].health().await.0, 200);

    // Every acknowledged label is there exactly once, read from the new
    // leader; one that failed is there at most once.
    let leader_admin = masters.admin_of(leader);
    let log = events(&leader_admin).await;
    let now = labels(&leader_admin).await;
    let done = done.lock().unwrap().clone();
    let mut wrong = Vec::new();
    for m in &done {
        let detail = format!("{}=v", m.key);
        let count = label_events(&log, &detail);
        let present = label_of(&now, &m.node, &m.key).is_some();
        if (m.ok && (count != 1 || !present)) || (!m.ok && count > 1) {
            let sent = m.at - m.took;
            let when = match sent.checked_duration_since(killed) {
                Some(d) => format!("sent {d:?} after the kill"),
                None => format!("sent {:?} before the kill", killed - sent),
            };
            let seen: Vec<&Value> = log
                .iter()
                .filter(|e| e["kind"] == "label" && e["detail"] == detail.as_str())
                .collect();
            wrong.push(format!(
                "{detail} on {} ({}, {when}, took {:?}): {count} events, label present: {present}; {seen:?}",
                m.node,
                if m.ok { "acknowledged" } else { m.stderr.trim() },
                m.took,
            ));
        }
    }
    let failed: Vec<String> = done
        .iter()
        .filter(|m| !m.ok)
        .map(|m| format!("{}: {}", m.key, m.stderr.trim()))
        .collect();
    eprintln!(
        "[ha] {} labels sent, {} failed: {failed:?}; the slowest took {:?}",
        done.len(),
        failed.len(),
        done.iter().map(|m| m.took).max().unwrap_or_default()
    );
    if !wrong.is_empty() {
        let requests = etcd.get_prefix("/clusterctl/v1/request/").await;
        panic!(
            "{wrong:#?}\nthe masters said:\n{}\nrequest records in etcd:\n{requests:#?}",
            warnings(&masters)
        );
    }
    // The standby that is left sees the same.
    let other = if leader == 1 { 2 } else { 1 };
    eventually(
        "the other master shows the same labels",
        PATIENCE,
        || async { labels(&masters.admin_of(other)).await == now },
    )
    .await;

    let (polls, flaps) = watch.finish().await;
    assert!(
        flaps.is_empty(),
        "health answered against its drain state:\n{flaps:#?}"
    );
    assert!(polls >= 20, "only {polls} rounds of health polls");
    eprintln!(
        "[ha] {polls} rounds of health polls; {:?} in all",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_frozen_past_its_lease_is_replaced_and_writes_nothing_of_its_own_when_it_wakes() {
    crypto();
    let began = Instant::now();
    let etcd = EtcdCluster::start(3).await;
    let mut masters = Masters::spawn(3, &etcd);
    let (old, _) = masters.wait_for_leader(PATIENCE, |_| true).await;
    let _agents: Vec<AgentProc> = (1..=2)
        .map(|i| {
            masters
                .agent(&format!("web-{i}"))
                .addr(&format!("127.0.0.{}", 54 + i))
                .spawn()
        })
        .collect();
    let admin = masters.admin();
    connected(&admin, 2).await;
    ctl(&admin, &["label", "web-1", "before=1"]).await.ok();
    let led_before = masters.times_led(old);

    masters[old].pause();
    let (new, took) = masters
        .wait_for_leader(Duration::from_secs(15), |l| l != old)
        .await;
    eprintln!("[ha] m{new} leads {took:?} after m{old} froze");
    assert!(
        took >= LEASE_TTL / 2,
        "m{new} led {took:?} after m{old} froze: before its lease ({LEASE_TTL:?}) could have run out"
    );

    // It wakes, and is sent a write at once; the new leader is sent one too.
    masters[old].resume();
    let (old_admin, new_admin) = (masters.admin_of(old), masters.admin_of(new));
    let (stale, fresh) = tokio::join!(
        ctl(&old_admin, &["label", "web-1", "stale=from-old"]),
        ctl(&new_admin, &["label", "web-2", "fresh=from-new"]),
    );
    eprintln!(
        "[ha] write to the old leader: code {} {}",
        stale.code,
        stale.stderr.trim()
    );
    assert_eq!(fresh.code, 0, "{fresh:?}");
    eventually("the old leader says it stepped down", PATIENCE, || async {
        let log = masters[old].log();
        log.contains("stepping down") || log.contains("fenced")
    })
    .await;
    for line in masters[old].log().lines() {
        if line.contains("stepping down") || line.contains("fenced") || line.contains("leads") {
            eprintln!("[ha] m{old}: {line}");
        }
    }
    assert_eq!(
        masters.times_led(old),
        led_before,
        "m{old} led again:\n{}",
        masters[old].log()
    );
    let (leader, _) = masters.wait_for_leader(PATIENCE, |_| true).await;
    assert_eq!(leader, new, "every master names m{new} the leader");
    // Stepped down, it serves as a standby: a write sent through it alone
    // goes to the new leader.
    let t = Instant::now();
    let via_old = ctl(&old_admin, &["label", "web-2", "after=via-old"]).await;
    eprintln!(
        "[ha] write through m{old} after it stepped down: {:?}, code {} {}",
        t.elapsed(),
        via_old.code,
        via_old.stderr.trim()
    );
    assert_eq!(
        via_old.code, 0,
        "m{old}, stepped down, does not pass writes on to m{new}:\n{}",
        via_old.stderr
    );

    // Read from the new leader: the write to the old one is there once if
    // it was acknowledged (the new leader committed it), at most once if not.
    let log = events(&new_admin).await;
    let now = labels(&new_admin).await;
    let count = label_events(&log, "stale=from-old");
    let present = label_of(&now, "web-1", "stale");
    if stale.code == 0 {
        assert_eq!(count, 1, "acknowledged write: {log:#?}");
        assert_eq!(present.as_deref(), Some("from-old"));
    } else {
        assert!(count <= 1, "failed write applied {count} times");
        assert_eq!(present.is_some(), count == 1, "{now:?} vs {count} events");
    }
    assert_eq!(label_events(&log, "fresh=from-new"), 1);
    assert_eq!(label_events(&log, "after=via-old"), 1);
    assert_eq!(label_of(&now, "web-2", "after").as_deref(), Some("via-old"));
    assert_eq!(label_of(&now, "web-1", "before").as_deref(), Some("1"));
    // The old master holds exactly what the new leader holds.
    eventually(
        "the old leader shows the new leader's state",
        PATIENCE,
        || async { labels(&old_admin).await == now },
    )
    .await;
    let old_log = events(&old_admin).await;
    for detail in [
        "before=1",
        "stale=from-old",
        "fresh=from-new",
        "after=via-old",
    ] {
        assert_eq!(
            label_events(&old_log, detail),
            label_events(&log, detail),
            "{detail}"
        );
    }
    eprintln!("[ha] {:?} in all", began.elapsed());
}

/// How long a write may wait for etcd to elect a new leader.
const ETCD_FAILOVER: Duration = Duration::from_secs(5);

/// Every master's warnings, errors and turns as leader, for a failing
/// assertion to show.
fn warnings(masters: &Masters) -> String {
    let mut out = String::new();
    for i in 0..masters.len() {
        for line in masters[i].log().lines() {
            if line.contains(" WARN ")
                || line.contains(" ERROR ")
                || line.contains(cluster_tests::ha::LEADS)
            {
                out.push_str(&format!("m{i}: {line}\n"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_survive_etcd_losing_its_leader_and_fail_clearly_without_a_quorum() {
    crypto();
    let began = Instant::now();
    let mut etcd = EtcdCluster::start(3).await;
    let masters = Masters::spawn(2, &etcd);
    masters.wait_for_leader(PATIENCE, |_| true).await;
    let agents: Vec<AgentProc> = (1..=2)
        .map(|i| {
            masters
                .agent(&format!("web-{i}"))
                .addr(&format!("127.0.0.{}", 59 + i))
                .spawn()
        })
        .collect();
    let admin = masters.admin();
    connected(&admin, 2).await;
    let watch = HealthWatch::start(&agents.iter().collect::<Vec<_>>());

    // etcd's leader dies: a write goes through after a short election.
    let etcd_leader = etcd.leader().await;
    etcd.kill(etcd_leader);
    let t = Instant::now();
    let out = ctl(&admin, &["label", "web-1", "c1=etcd-leader-died"]).await;
    let took = t.elapsed();
    eprintln!(
        "[ha] write after etcd's leader died: {took:?}, code {}",
        out.code
    );
    assert_eq!(out.code, 0, "{out:?}");
    // etcd elects a new leader within about a second (its election
    // timeout); the write waits for that, not much more (checked at the
    // end, so the rest is seen either way).
    let first_write = (took, warnings(&masters));
    etcd.start_member(etcd_leader).await;

    // Two of three stop: a write fails, in bounded time, saying why.
    let (x, y) = ((etcd_leader + 1) % 3, (etcd_leader + 2) % 3);
    etcd.stop(x);
    etcd.stop(y);
    let t = Instant::now();
    let failed = ctl(&admin, &["label", "web-1", "c2=no-quorum"]).await;
    let took = t.elapsed();
    eprintln!(
        "[ha] write without a quorum: {took:?}, code {}: {}",
        failed.code,
        failed.stderr.trim()
    );
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    let said = failed.stderr.to_lowercase();
    assert!(
        said.contains("etcd") || said.contains("store") || said.contains("quorum"),
        "the error names what is missing: {}",
        failed.stderr
    );
    // Reads and the agents' health go on.
    let t = Instant::now();
    let listed = ctl(&admin, &["nodes", "-o", "json"]).await;
    eprintln!(
        "[ha] nodes without a quorum: {:?}, code {}",
        t.elapsed(),
        listed.code
    );
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(listed.json().as_array().map(Vec::len), Some(2));
    for a in &agents {
        assert_eq!(a.health().await.0, 200, "{}", a.id);
    }

    // Back: writes work again.
    etcd.start_member(x).await;
    etcd.start_member(y).await;
    let t = Instant::now();
    eventually(
        "a write goes through again",
        Duration::from_secs(30),
        || async {
            ctl(&admin, &["label", "web-2", "c3=quorum-back"])
                .await
                .code
                == 0
        },
    )
    .await;
    eprintln!(
        "[ha] a write went through {:?} after the quorum was back",
        t.elapsed()
    );
    // Nothing acknowledged that was not committed: the failed write is
    // absent, or at most once if the error said its outcome is unknown.
    let log = events(&admin).await;
    let now = labels(&admin).await;
    let count = label_events(&log, "c2=no-quorum");
    // clusterctl says so when it gave up on a write.
    let outcome_unknown =
        said.contains("may or may not have been made") || said.contains("unknown");
    eprintln!("[ha] the write that failed is in the log {count} times");
    if outcome_unknown {
        assert!(count <= 1, "{count} events of a write that failed");
        // Whole or not at all: its event and its label go together.
        assert_eq!(
            label_of(&now, "web-1", "c2").is_some(),
            count == 1,
            "{now:?}"
        );
    } else {
        assert_eq!(
            count,
            0,
            "a write that failed ({}) is in the log",
            failed.stderr.trim()
        );
        assert_eq!(label_of(&now, "web-1", "c2"), None);
    }
    assert_eq!(
        label_of(&now, "web-1", "c1").as_deref(),
        Some("etcd-leader-died")
    );
    assert_eq!(label_events(&log, "c1=etcd-leader-died"), 1);

    let (polls, flaps) = watch.finish().await;
    assert!(flaps.is_empty(), "{flaps:#?}");
    assert!(polls >= 20, "only {polls} rounds of health polls");
    eprintln!("[ha] {:?} in all", began.elapsed());
    let (took, said) = first_write;
    assert!(
        took < ETCD_FAILOVER,
        "the write took {took:?} after etcd's leader died; the masters said:\n{said}"
    );
}
