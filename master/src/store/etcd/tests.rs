//! The etcd backend against a real etcd (one member, on ports picked
//! here): commits and their limits, the fence, following another master's
//! commits, a watch that finds its history compacted.

use super::*;
use crate::store::{Expect, Precondition, Record};
use cluster_model::{EventKind, Node};
use std::process::{Child, Command, Stdio};

/// One etcd member in a temporary directory, killed when dropped.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "t", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("t={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd on PATH (Debian's etcd-server; tests/run installs it)");
    let etcd = Etcd {
        child,
        url,
        _dir: dir,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Client::connect([etcd.url.as_str()], None).await
            && c.status().await.is_ok()
        {
            return etcd;
        }
        assert!(std::time::Instant::now() < deadline, "etcd did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(url: &str, name: &str) -> EtcdConfig {
    EtcdConfig {
        endpoints: vec![url.to_owned()],
        prefix: "/t/".into(),
        lease_ttl: Duration::from_secs(2),
        name: name.into(),
        advertise: format!("https://{name}:7440"),
    }
}

async fn leading(url: &str, name: &str) -> EtcdStore {
    leading_with(config(url, name)).await
}

async fn leading_with(config: EtcdConfig) -> EtcdStore {
    let store = EtcdStore::connect(config).await.unwrap();
    store.campaign();
    let mut role = store.role();
    tokio::time::timeout(
        Duration::from_secs(10),
        role.wait_for(|r| matches!(r, Role::Leader { .. })),
    )
    .await
    .expect("leads within 10 s")
    .unwrap();
    store
}

fn node(id: &str) -> Node {
    let hello = crate::state::plan::testing::hello(id);
    Node {
        id: hello.node_id,
        name: id.try_into().unwrap(),
        roles: vec![],
        addresses: vec![],
        health_url: String::new(),
        grains: Default::default(),
        offline: None,
        registered_ms: 1,
        last_seen_ms: 1,
        labels: Default::default(),
        service: String::new(),
        naming: Default::default(),
        aliases: vec![],
        facts: Default::default(),
        fact_problems: vec![],
    }
}

fn put(n: Node, expect: Expect) -> Change {
    Change {
        preconditions: vec![Precondition {
            key: Key::Node(n.id.clone()),
            expect,
        }],
        puts: vec![Record::Node(n)],
        ..Change::default()
    }
}

#[tokio::test]
async fn commits_check_preconditions_and_load_back_at_their_revisions() {
    let e = etcd().await;
    let store = leading(&e.url, "m1").await;
    let r1 = store
        .commit(&put(node("n1"), Expect::Absent))
        .await
        .unwrap();
    // The same precondition again: the record is there now.
    let err = store
        .commit(&put(node("n1"), Expect::Absent))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found: Some(r), .. } if r == r1),
        "{err}"
    );
    let r2 = store
        .commit(&put(node("n1"), Expect::At(r1)))
        .await
        .unwrap();
    assert!(r2 > r1);
    let loaded = store.load().await.unwrap();
    assert!(loaded.revision >= r2);
    let revs: Vec<Revision> = loaded.records.iter().map(|(_, r)| *r).collect();
    assert_eq!(revs, vec![r2]);
}

#[tokio::test]
async fn big_changes_split_within_etcds_limits_and_oversized_ones_are_refused() {
    let e = etcd().await;
    let store = leading(&e.url, "m1").await;
    // 300 records and 300 preconditions: over 128 operations and 128
    // compares, still one atomic commit.
    let mut change = Change::default();
    for i in 0..300 {
        let n = node(&format!("n{i}"));
        change.preconditions.push(Precondition {
            key: Key::Node(n.id.clone()),
            expect: Expect::Absent,
        });
        change.puts.push(Record::Node(n));
    }
    let r = store.commit(&change).await.unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.records.len(), 300);
    assert!(
        loaded.records.iter().all(|(_, rev)| *rev == r),
        "one revision"
    );

    // Over 1.5 MiB: refused whole, nothing written.
    let mut big = node("big");
    big.grains
        .insert("blob".into(), "x".repeat(2 * 1024 * 1024).into());
    let err = store.commit(&put(big, Expect::Absent)).await.unwrap_err();
    match &err {
        StoreError::TooLarge { bytes, limit } => {
            assert!(*bytes > 2 * 1024 * 1024 && *limit < MAX_REQUEST_BYTES)
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("bytes"), "{err}");
    assert_eq!(store.load().await.unwrap().records.len(), 300);
}

#[tokio::test]
async fn a_master_that_lost_its_leadership_cannot_commit() {
    let e = etcd().await;
    let m1 = leading(&e.url, "m1").await;
    let m2 = EtcdStore::connect(config(&e.url, "m2")).await.unwrap();
    m2.campaign();
    // m2 cannot commit while m1 leads.
    let err = m2
        .commit(&put(node("a"), Expect::Absent))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotLeader { .. }), "{err}");
    let fence = m1.fence.borrow().clone().unwrap();
    // m1's leader key goes (as when its lease expires while it is stopped).
    m1.client
        .kv_client()
        .delete(fence.key.clone(), None)
        .await
        .unwrap();
    // m1 still believes it leads for a moment, but its commit is fenced.
    let err = m1
        .commit(&put(node("b"), Expect::Absent))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced), "{err}");
    assert!(!matches!(*m1.role().borrow(), Role::Leader { .. }));
    // m2 takes over and commits; m1's write is nowhere.
    let mut role = m2.role();
    tokio::time::timeout(
        Duration::from_secs(10),
        role.wait_for(|r| matches!(r, Role::Leader { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    m2.commit(&put(node("c"), Expect::Absent)).await.unwrap();
    let names: Vec<String> = m2
        .load()
        .await
        .unwrap()
        .records
        .iter()
        .map(|(r, _)| r.key().to_string())
        .collect();
    assert_eq!(names, vec!["node/c"]);
}

#[tokio::test]
async fn a_follower_sees_each_commit_whole_and_reloads_after_a_compaction() {
    let e = etcd().await;
    let leader = leading(&e.url, "m1").await;
    let follower = EtcdStore::connect(config(&e.url, "m2")).await.unwrap();
    let start = follower.load().await.unwrap().revision;
    let mut followed = follower.follow(start).await.unwrap();
    let mut change = put(node("n1"), Expect::Absent);
    change.events.push(cluster_model::Event {
        seq: 1,
        time_ms: 1,
        kind: EventKind::Registered,
        node: "n1".into(),
        by: "t".into(),
        note: String::new(),
        detail: String::new(),
        node_id: None,
    });
    let r = leader.commit(&change).await.unwrap();
    let got = loop {
        match tokio::time::timeout(Duration::from_secs(5), followed.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Followed::Change { revision, change } => break (revision, change),
            _ => continue,
        }
    };
    assert_eq!(got.0, r);
    assert_eq!(got.1.puts.len(), 1, "the record");
    assert_eq!(got.1.events.len(), 1, "and its event, in one change");
    drop(followed);

    // A follower that was away while the history was compacted past it
    // loads the state again, whole.
    let r2 = leader
        .commit(&put(node("n2"), Expect::Absent))
        .await
        .unwrap();
    leader
        .client
        .kv_client()
        .compact(r2 as i64, None)
        .await
        .unwrap();
    let mut followed = follower.follow(start).await.unwrap();
    let reloaded = loop {
        match tokio::time::timeout(Duration::from_secs(5), followed.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Followed::Reload(l) => break l,
            Followed::Change { .. } => panic!("a change from a compacted history"),
            _ => continue,
        }
    };
    assert!(reloaded.revision >= r2);
    assert_eq!(reloaded.records.len(), 2);
}

#[tokio::test]
async fn a_starting_master_loads_the_others_session_records_and_not_its_own_old_ones() {
    let e = etcd().await;
    let m1 = EtcdStore::connect(config(&e.url, "m1")).await.unwrap();
    let n1: NodeId = "n1".to_owned().try_into().unwrap();
    m1.publish(
        &n1,
        Some(LiveRecord {
            master: "m1".into(),
            address: "https://m1:7440".into(),
            since_ms: 10,
            last_seen_ms: 20,
            wants_hosts: true,
            wants_proxy: false,
            usage: None,
            applied: Default::default(),
            checks: vec![],
            lb: None,
        }),
    );
    // Another master started now is told where n1's session is.
    let m2 = EtcdStore::connect(config(&e.url, "m2")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let live = loop {
        let loaded = m2.load().await.unwrap();
        if !loaded.live.is_empty() {
            break loaded.live;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "m1's record of n1 never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0, n1);
    assert_eq!(
        (live[0].1.master.as_str(), live[0].1.last_seen_ms),
        ("m1", 20)
    );
    // m1 started again (its old lease not yet lapsed) does not take its
    // own old records for another master's sessions.
    let again = EtcdStore::connect(config(&e.url, "m1")).await.unwrap();
    assert!(again.load().await.unwrap().live.is_empty());
}

/// A master given several endpoints, one of them refusing (a member not
/// started yet, or dead), still reads and commits: a request the client
/// sent to the refusing one is sent again, to another.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_refuses_does_not_fail_reads_or_commits() {
    let e = etcd().await;
    let refusing = format!("http://127.0.0.1:{}", free_port());
    let mut config = config(&e.url, "m1");
    config.endpoints = vec![refusing.clone(), e.url.clone(), refusing];
    let store = leading_with(config).await;
    for i in 0..40 {
        store
            .load()
            .await
            .unwrap_or_else(|e| panic!("load {i}: {e}"));
        store
            .events(&EventQuery::default())
            .await
            .unwrap_or_else(|e| panic!("events {i}: {e}"));
    }
    store
        .commit(&put(node("n1"), Expect::Absent))
        .await
        .unwrap();
}
