//! The sled backend against its promises: durable across reopening,
//! revisions per record, preconditions checked atomically, layout 1
//! migrated.

use super::*;
use crate::store::Precondition;
use cluster_model::{EventKind, Node, NodeId, OfflineFlag};

fn node(id: &str) -> Node {
    Node {
        id: id.try_into().unwrap(),
        name: id.try_into().unwrap(),
        roles: vec!["web".into()],
        addresses: vec!["127.0.0.2".into()],
        health_url: String::new(),
        grains: Default::default(),
        offline: None,
        registered_ms: 1,
        last_seen_ms: 1,
        labels: Default::default(),
        service: String::new(),
        naming: Default::default(),
        aliases: Vec::new(),
        facts: Default::default(),
        fact_problems: Vec::new(),
    }
}

fn event(seq: u64, node: &str) -> Event {
    Event {
        seq,
        time_ms: seq,
        kind: EventKind::Drain,
        node_id: Some(node.try_into().unwrap()),
        node: node.into(),
        by: "test".into(),
        note: String::new(),
        detail: String::new(),
    }
}

fn put(records: Vec<Record>) -> Change {
    Change {
        puts: records,
        ..Change::default()
    }
}

#[test]
fn a_commit_survives_reopening_with_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let mut a = node("a");
        a.offline = Some(OfflineFlag {
            reason: "deploy".into(),
            since_ms: 5,
            by: "alice".into(),
            maintenance: false,
        });
        let change = Change {
            events: vec![event(1, "a"), event(2, "b")],
            ..put(vec![Record::Node(a), Record::Revoked("0abc".into())])
        };
        assert_eq!(store.commit_now(&change).unwrap(), 1);
        assert_eq!(
            store
                .commit_now(&put(vec![Record::Node(node("b"))]))
                .unwrap(),
            2
        );
    }
    let store = SledStore::open(dir.path()).unwrap();
    let loaded = store.load_now().unwrap();
    assert_eq!(loaded.revision, 2);
    assert_eq!(loaded.next_event_seq, 3);
    let revs: Vec<(String, Revision)> = loaded
        .records
        .iter()
        .map(|(r, rev)| (r.key().to_string(), *rev))
        .collect();
    assert_eq!(
        revs,
        [
            ("node/a".to_owned(), 1),
            ("node/b".to_owned(), 2),
            ("revoked/0abc".to_owned(), 1)
        ]
    );
    let Record::Node(a) = &loaded.records[0].0 else {
        panic!()
    };
    assert_eq!(a.offline.as_ref().unwrap().reason, "deploy");
}

#[test]
fn a_failed_precondition_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store
        .commit_now(&put(vec![Record::Node(node("a"))]))
        .unwrap();
    let key = Key::Node(NodeId::new("a").unwrap());
    let stale = Change {
        preconditions: vec![Precondition {
            key: key.clone(),
            expect: Expect::At(7),
        }],
        events: vec![event(1, "a")],
        ..put(vec![Record::Node(node("b"))])
    };
    let err = store.commit_now(&stale).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found: Some(1), .. }),
        "{err}"
    );
    let must_be_new = Change {
        preconditions: vec![Precondition {
            key,
            expect: Expect::Absent,
        }],
        ..put(vec![Record::Node(node("a"))])
    };
    assert!(matches!(
        store.commit_now(&must_be_new),
        Err(StoreError::Conflict { .. })
    ));
    let loaded = store.load_now().unwrap();
    assert_eq!((loaded.revision, loaded.records.len()), (1, 1));
    assert_eq!(loaded.next_event_seq, 1, "no event was written");
    // An event number taken twice is a conflict too.
    let one = Change {
        events: vec![event(1, "a")],
        ..Change::default()
    };
    store.commit_now(&one).unwrap();
    assert!(matches!(
        store.commit_now(&one),
        Err(StoreError::Conflict {
            key: Key::Event(1),
            ..
        })
    ));
}

#[test]
fn events_filter_by_node_id_and_keep_the_newest_under_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut events: Vec<Event> = (1..=10)
        .map(|i| event(i, if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    // Stored before ids were: matched by name.
    events[9].node_id = None;
    store
        .commit_now(&Change {
            events,
            ..Change::default()
        })
        .unwrap();
    let q = |after_seq, limit, node: Option<&str>| EventQuery {
        after_seq,
        limit,
        node: node.map(|n| (NodeId::new(n).unwrap(), n.to_owned())),
    };
    let seqs = |v: Vec<Event>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.events_now(&q(0, 3, None)).unwrap()), [8, 9, 10]);
    assert_eq!(
        seqs(store.events_now(&q(6, 0, None)).unwrap()),
        [7, 8, 9, 10]
    );
    assert_eq!(
        seqs(store.events_now(&q(0, 2, Some("a"))).unwrap()),
        [8, 10]
    );
}

#[test]
fn an_empty_store_starts_at_revision_zero() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = SledStore::open(dir.path()).unwrap().load_now().unwrap();
    assert_eq!((loaded.revision, loaded.next_event_seq), (0, 1));
    assert!(loaded.records.is_empty());
}

#[test]
fn a_layout_1_store_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What the previous layout wrote: bare JSON, a raw group
        // expression, an empty revoked marker, the generation counter.
        let db = sled::open(dir.path()).unwrap();
        let legacy_node = serde_json::json!({
            "id": "a", "name": "web-0", "roles": [], "addresses": [],
            "health_url": "", "grains": {}, "offline": null,
            "spec_generation": 4, "registered_ms": 1, "last_seen_ms": 2,
        });
        db.insert(b"node/a", serde_json::to_vec(&legacy_node).unwrap())
            .unwrap();
        db.insert(b"group/web", &b"G@role:web"[..]).unwrap();
        db.insert(b"revoked/0abc", &b""[..]).unwrap();
        db.insert(GENERATION, &7u64.to_be_bytes()).unwrap();
        let legacy_event = serde_json::json!({
            "seq": 1, "time_ms": 1, "kind": "drain", "node": "web-0", "by": "t", "detail": ""
        });
        db.insert(
            join(EVENT, &1u64.to_be_bytes()),
            serde_json::to_vec(&legacy_event).unwrap(),
        )
        .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let loaded = store.load_now().unwrap();
    assert_eq!(loaded.revision, 7);
    assert_eq!(loaded.next_event_seq, 2);
    let mut records = loaded.records;
    records.sort_by_key(|(r, _)| r.key());
    assert!(records.iter().all(|(_, rev)| *rev == 7));
    assert!(matches!(&records[0].0, Record::Node(n) if n.name == "web-0"));
    assert!(matches!(&records[1].0, Record::Revoked(s) if s == "0abc"));
    assert!(
        matches!(&records[2].0, Record::Group { name, expr } if name == "web" && expr == "G@role:web")
    );
    let events = store.events_now(&EventQuery::default()).unwrap();
    assert_eq!(events[0].node_id, None);
    // And the next commit carries on from the old generation.
    assert_eq!(
        store
            .commit_now(&put(vec![Record::Node(node("b"))]))
            .unwrap(),
        8
    );
}
