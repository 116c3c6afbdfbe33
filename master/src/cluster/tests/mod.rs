//! The shell around the state machine, against an in-memory store that
//! can be told to fail: refusals and failed commits change nothing, only
//! the sessions a change concerns are woken, waits end on what they wait
//! for.

use super::*;
pub(super) use crate::state::plan::testing::{hello, role, to, web};
use crate::store::mem::MemStore;
use cluster_model::rotation::ApplyStatus;
use cluster_model::session::{Ack, Hello};
use cluster_model::{EventKind, HealthStatus, NodeStatus, TargetSpec};
use std::sync::atomic::Ordering;

mod access;
mod balancing;
mod naming;

pub(super) fn ca() -> Arc<Ca> {
    let (ca, _) = Ca::generate("test", std::time::SystemTime::now()).unwrap();
    Arc::new(ca)
}

pub(super) async fn cluster(ids: &[&str]) -> (Arc<MemStore>, Cluster, Vec<SessionHandle>) {
    let store = Arc::new(MemStore::default());
    let c = Cluster::open(
        store.clone(),
        ca(),
        Duration::from_secs(15),
        HostsNaming::default(),
    )
    .await
    .unwrap();
    let mut handles = Vec::new();
    for id in ids {
        handles.push(c.connect(hello(id)).await.unwrap());
    }
    (store, c, handles)
}

pub(super) fn names(v: &[&str]) -> TargetSpec {
    TargetSpec::Names(v.iter().map(|s| s.to_string()).collect())
}

pub(super) fn ack(generation: u64, health: HealthStatus) -> Ack {
    Ack {
        generation,
        health,
        cache_error: None,
    }
}

fn all(c: &Cluster) -> Vec<NodeStatus> {
    c.nodes(&[]).unwrap()
}

#[tokio::test]
async fn an_unknown_name_fails_the_whole_drain() {
    let (_, c, _) = cluster(&["a", "b"]).await;
    let g0 = c.generation();
    let err = c
        .set_offline(&names(&["a", "x", "y"]), Some("r".into()), "t")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown nodes: x, y");
    assert!(all(&c).iter().all(|n| n.node.offline.is_none()));
    assert_eq!(c.generation(), g0);
}

#[tokio::test]
async fn a_failed_store_write_changes_nothing() {
    let (store, c, _) = cluster(&["a"]).await;
    let g0 = c.generation();
    store.fail.store(true, Ordering::SeqCst);
    assert!(
        c.set_offline(&names(&["a"]), Some("r".into()), "t")
            .await
            .is_err()
    );
    assert!(all(&c)[0].node.offline.is_none());
    assert_eq!(c.generation(), g0);
    // Once the store works again, event numbers carry on without a gap.
    store.fail.store(false, Ordering::SeqCst);
    c.set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let seqs: Vec<u64> = c
        .events(0, 0, None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2], "registered, then drain");
}

#[tokio::test]
async fn a_change_that_keeps_losing_the_race_is_planned_again_until_it_lands_once() {
    let (store, c, _) = cluster(&["a"]).await;
    // More lost races in a row than the quick replans (several masters
    // writing at once).
    store.outraced.store(REPLANS * 3, Ordering::SeqCst);
    c.set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    assert_eq!(store.outraced.load(Ordering::SeqCst), 0, "every race lost");
    assert_eq!(
        all(&c)[0].node.offline.as_ref().map(|o| o.reason.as_str()),
        Some("r")
    );
    let drains = c
        .events(0, 0, None)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == cluster_model::EventKind::Drain)
        .count();
    assert_eq!(drains, 1);
}

#[tokio::test]
async fn only_the_drained_nodes_session_is_woken_and_changes_coalesce() {
    let (_, c, mut h) = cluster(&["a", "b"]).await;
    let g0 = c.generation();
    for reason in ["one", "two", "three"] {
        c.set_offline(&names(&["a"]), Some(reason.into()), "t")
            .await
            .unwrap();
    }
    assert!(h[0].spec_changed.has_changed().unwrap());
    assert!(
        !h[1].spec_changed.has_changed().unwrap(),
        "b was not concerned"
    );
    // Level-triggered: one wake-up, and the spec read then is the latest.
    let woken = *h[0].spec_changed.borrow_and_update();
    let (generation, spec) = c.read(|st| {
        let n = st.node("a").unwrap();
        (n.revision, n.value.spec())
    });
    assert_eq!(woken, generation);
    assert_eq!(
        (generation, spec.offline.unwrap().reason.as_str()),
        (g0 + 3, "three")
    );
}

#[tokio::test]
async fn draining_an_already_drained_node_with_the_same_reason_is_unchanged() {
    let (store, c, _) = cluster(&["a"]).await;
    let g0 = c.generation();
    c.set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let commits = store.commits();
    let (g, changes) = c
        .set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    assert_eq!(g, g0 + 1);
    assert!(!changes[0].changed);
    assert_eq!(store.commits(), commits, "nothing to commit");
}

#[tokio::test]
async fn waiting_ends_on_the_acknowledgement_or_reports_who_is_missing() {
    let (_, c, h) = cluster(&["a", "b"]).await;
    let (_, changes) = c
        .set_offline(&names(&["a", "b"]), Some("r".into()), "t")
        .await
        .unwrap();
    let targets = c.spec_generations(&changes);
    c.acknowledge(&h[0], ack(targets[0].1, HealthStatus::Offline))
        .await;
    c.disconnect(&h[1]);
    let statuses = c.wait_applied(&targets, Duration::from_secs(5)).await;
    assert_eq!(
        statuses,
        [ApplyStatus::Acknowledged, ApplyStatus::NotConnected]
    );

    let (_, c, _h) = cluster(&["a"]).await;
    let (_, changes) = c
        .set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let t = c.spec_generations(&changes);
    let statuses = c.wait_applied(&t, Duration::from_millis(50)).await;
    assert_eq!(statuses, [ApplyStatus::TimedOut]);
}

#[tokio::test]
async fn a_newer_session_replaces_the_old_one() {
    let (_, c, mut h) = cluster(&["a"]).await;
    let newer = c.connect(hello("a")).await.unwrap();
    // The old session's watch closes, so its loop ends.
    assert!(h[0].spec_changed.changed().await.is_err());
    // Its late disconnect does not close the newer session.
    c.disconnect(&h[0]);
    assert!(all(&c)[0].connected);
    c.disconnect(&newer);
    assert!(!all(&c)[0].connected);
}

#[tokio::test]
async fn an_unchanged_hello_writes_nothing() {
    let (store, c, _) = cluster(&["a"]).await;
    let before = store.commits();
    c.connect(hello("a")).await.unwrap();
    assert_eq!(store.commits(), before);
    let mut changed = hello("a");
    changed.roles = vec!["web".into()];
    c.connect(changed).await.unwrap();
    assert_eq!(store.commits(), before + 1);
}

#[tokio::test]
async fn a_failing_check_shows_as_failing_and_maintenance_as_maintenance() {
    let (_, c, h) = cluster(&["a", "b"]).await;
    let state = |c: &Cluster, id: &str| c.nodes(&[id.to_owned()]).unwrap()[0].state;
    c.report_checks(
        &h[0],
        vec![cluster_model::CheckResult {
            name: "app".into(),
            kind: "http".into(),
            passing: false,
            output: "500".into(),
            since_ms: 1,
        }],
    )
    .await;
    assert_eq!(state(&c, "a"), cluster_model::NodeState::Failing);
    c.set_out(&names(&["b"]), Some("disk".into()), true, "t", "")
        .await
        .unwrap();
    assert_eq!(state(&c, "b"), cluster_model::NodeState::Maintenance);
    let events = c.events(0, 0, Some("a")).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Check && e.detail == "check app failing: 500"),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_agent_that_cannot_cache_its_state_is_shown_and_recorded_once() {
    let (_, c, h) = cluster(&["a"]).await;
    let broken = Ack {
        cache_error: Some("No space left on device".into()),
        ..ack(c.generation(), HealthStatus::Online)
    };
    c.acknowledge(&h[0], broken.clone()).await;
    c.acknowledge(&h[0], broken).await;
    assert_eq!(
        all(&c)[0].applied.cache_error.as_deref(),
        Some("No space left on device")
    );
    c.acknowledge(&h[0], ack(c.generation(), HealthStatus::Online))
        .await;
    assert_eq!(all(&c)[0].applied.cache_error, None);
    let agent: Vec<String> = c
        .events(0, 0, Some("a"))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Agent)
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        agent.len(),
        2,
        "one when it broke, one when it healed: {agent:?}"
    );
    assert!(agent[0].contains("No space left on device"), "{agent:?}");
    assert!(agent[1].contains("durable again"), "{agent:?}");
}

#[tokio::test]
async fn a_retried_request_takes_effect_once_and_is_answered_the_same() {
    let (store, c, _) = cluster(&["a", "b"]).await;
    let drain = |id: &'static str| {
        let c = &c;
        with_request(Some(id.to_owned()), async move {
            c.set_offline(&names(&["a"]), Some("deploy".into()), "alice")
                .await
                .unwrap()
        })
    };
    let (_, first) = drain("req-1").await;
    assert!(first[0].changed);
    let commits = store.commits();
    let (_, again) = drain("req-1").await;
    assert_eq!(again, first, "answered as the first time: changed");
    assert_eq!(store.commits(), commits, "no second commit");
    // Without the id, the same drain is a no-op that says so.
    let (_, plain) = c
        .set_offline(&names(&["a"]), Some("deploy".into()), "alice")
        .await
        .unwrap();
    assert!(!plain[0].changed);

    // A token's secret is shown once: a replay says so rather than
    // answering with a secret that was never stored.
    let token = with_request(Some("req-2".into()), async {
        c.create_token("admin", Some(Duration::from_secs(60)), None, vec![], None)
            .await
    })
    .await
    .unwrap();
    let replay = with_request(Some("req-2".into()), async {
        c.create_token("admin", Some(Duration::from_secs(60)), None, vec![], None)
            .await
    })
    .await
    .unwrap_err()
    .to_string();
    let id = token.token.split('.').next().unwrap();
    assert!(
        replay.contains(id) && replay.contains("shown only once"),
        "{replay}"
    );
    let tokens = c.events(0, 100, None).await.unwrap();
    assert_eq!(
        tokens.iter().filter(|e| e.kind == EventKind::Token).count(),
        1,
        "one token made"
    );

    // The record survives a restart: the answer comes from the store.
    let reopened = Cluster::open(
        store.clone(),
        ca(),
        Duration::from_secs(15),
        HostsNaming::default(),
    )
    .await
    .unwrap();
    let (_, after) = with_request(Some("req-1".into()), async {
        reopened
            .set_offline(&names(&["a"]), Some("deploy".into()), "alice")
            .await
            .unwrap()
    })
    .await;
    assert_eq!(after, first);
}

#[tokio::test]
async fn retention_keeps_the_newest_history_and_forgets_old_requests() {
    let (_, c, _) = cluster(&["a"]).await;
    for i in 0..7 {
        with_request(Some(format!("r{i}")), async {
            c.set_offline(&names(&["a"]), Some(format!("reason {i}")), "alice")
                .await
                .unwrap();
            c.set_offline(&names(&["a"]), None, "alice").await.unwrap();
        })
        .await;
    }
    let before = c.events(0, 1000, None).await.unwrap();
    assert!(before.len() > 5, "{} events", before.len());
    let keep = Retention {
        events: 5,
        jobs: 10,
        rollouts: 10,
        requests: Duration::from_secs(3600),
        pending_keys: Duration::from_secs(3600),
        events_for: None,
    };
    let gone = c.retain(&keep).await.unwrap();
    assert_eq!(gone, before.len() - 5);
    let after = c.events(0, 1000, None).await.unwrap();
    assert_eq!(
        after,
        before[before.len() - 5..].to_vec(),
        "the newest five"
    );
    // Requests are remembered for their time, then forgotten.
    assert!(c.read(|st| st.request("r0").is_some()));
    let gone = c
        .retain(&Retention {
            requests: Duration::ZERO,
            ..keep
        })
        .await
        .unwrap();
    assert_eq!(gone, 7, "seven answered requests");
    assert!(c.read(|st| st.request("r0").is_none()));
    // Nothing more to do.
    assert_eq!(c.retain(&keep).await.unwrap(), 0);
    // By age: once the clock has passed the newest, an age of zero takes
    // every event, however few.
    let newest = c
        .events(0, 1000, None)
        .await
        .unwrap()
        .last()
        .unwrap()
        .time_ms;
    while cluster_model::time::now_ms() <= newest {
        tokio::task::yield_now().await;
    }
    let gone = c
        .retain(&Retention {
            events_for: Some(Duration::ZERO),
            ..keep
        })
        .await
        .unwrap();
    assert_eq!(gone, 5, "the five kept by count, all older than zero");
    assert!(c.events(0, 1000, None).await.unwrap().is_empty());
}
