//! Table-style tests of the cluster core against an in-memory store that
//! can be told to fail.

use super::*;
use crate::store::Loaded;
use std::sync::atomic::{AtomicBool, Ordering};

/// A store in memory that can be told to fail.
#[derive(Default)]
struct MemStore {
    writes: Mutex<Vec<Write>>,
    fail: AtomicBool,
}

impl Store for Arc<MemStore> {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            next_event_seq: 1,
            ..Loaded::default()
        })
    }
    fn write(&self, write: &Write) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                key: "test".into(),
                reason: "disk on fire".into(),
            });
        }
        self.writes.lock().unwrap().push(write.clone());
        Ok(())
    }
    fn events(&self, _: &EventQuery) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .writes
            .lock()
            .unwrap()
            .iter()
            .flat_map(|w| w.events.clone())
            .collect())
    }
}

fn hello(id: &str) -> Hello {
    Hello {
        node_id: id.into(),
        grains: Grains::new(),
        roles: vec![],
        addresses: vec![],
        health_url: String::new(),
    }
}

async fn cluster(ids: &[&str]) -> (Arc<MemStore>, Cluster, Vec<SessionHandle>) {
    let store = Arc::new(MemStore::default());
    let c = Cluster::open(Arc::new(store.clone()), Duration::from_secs(15)).unwrap();
    let mut handles = Vec::new();
    for id in ids {
        handles.push(c.connect(hello(id)).await.unwrap());
    }
    (store, c, handles)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn an_unknown_name_fails_the_whole_drain() {
    let (_, c, _) = cluster(&["a", "b"]).await;
    let err = c
        .set_offline(&names(&["a", "x", "y"]), Some("r".into()), "t")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown nodes: x, y");
    assert!(
        c.nodes(&[])
            .unwrap()
            .iter()
            .all(|(n, _)| n.offline.is_none())
    );
    assert_eq!(c.generation(), 0);
}

#[tokio::test]
async fn a_failed_store_write_changes_nothing() {
    let (store, c, _) = cluster(&["a"]).await;
    store.fail.store(true, Ordering::SeqCst);
    assert!(
        c.set_offline(&names(&["a"]), Some("r".into()), "t")
            .await
            .is_err()
    );
    assert!(c.nodes(&[]).unwrap()[0].0.offline.is_none());
    assert_eq!(c.generation(), 0);
    // Once the store works again, event numbers carry on without a gap.
    store.fail.store(false, Ordering::SeqCst);
    c.set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let seqs: Vec<u64> = c
        .events(&EventQuery::default())
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2], "registered, then drain");
}

#[tokio::test]
async fn only_the_drained_nodes_session_is_woken_and_changes_coalesce() {
    let (_, c, mut h) = cluster(&["a", "b"]).await;
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
    h[0].spec_changed.borrow_and_update();
    let (generation, spec) = c.spec("a").unwrap();
    assert_eq!(
        (generation, spec.offline.unwrap().reason.as_str()),
        (3, "three")
    );
}

#[tokio::test]
async fn draining_an_already_drained_node_with_the_same_reason_is_unchanged() {
    let (_, c, _) = cluster(&["a"]).await;
    c.set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let (g, changes) = c
        .set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    assert_eq!(g, 1);
    assert!(!changes[0].changed);
}

#[tokio::test]
async fn waiting_ends_on_the_acknowledgement_or_reports_who_is_missing() {
    let (_, c, h) = cluster(&["a", "b"]).await;
    let (_, changes) = c
        .set_offline(&names(&["a", "b"]), Some("r".into()), "t")
        .await
        .unwrap();
    let targets: Vec<_> = changes
        .iter()
        .map(|x| (x.id.clone(), x.spec_generation))
        .collect();
    c.acknowledge(&h[0], changes[0].spec_generation, "offline".into());
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
    let t = [(changes[0].id.clone(), changes[0].spec_generation)];
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
    assert!(c.nodes(&[]).unwrap()[0].0.connected);
    c.disconnect(&newer);
    assert!(!c.nodes(&[]).unwrap()[0].0.connected);
}

#[tokio::test]
async fn an_unchanged_hello_writes_nothing() {
    let (store, c, _) = cluster(&["a"]).await;
    let before = store.writes.lock().unwrap().len();
    c.connect(hello("a")).await.unwrap();
    assert_eq!(store.writes.lock().unwrap().len(), before);
    let mut changed = hello("a");
    changed.roles = vec!["web".into()];
    c.connect(changed).await.unwrap();
    assert_eq!(store.writes.lock().unwrap().len(), before + 1);
}
