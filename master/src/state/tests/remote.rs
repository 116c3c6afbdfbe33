//! Sessions other masters hold, as they publish them: a node connected
//! to any master is connected; the newest session of a node wins.

use super::super::plan::testing::{NOW, connect, hello, run, state};
use super::super::*;
use crate::store::LiveRecord;
use cluster_model::{Applied, HealthStatus};

fn record(master: &str, since_ms: u64, generation: u64) -> LiveRecord {
    LiveRecord {
        master: master.into(),
        address: format!("https://{master}:7440"),
        since_ms,
        last_seen_ms: since_ms,
        wants_hosts: true,
        wants_proxy: false,
        usage: None,
        applied: Applied {
            generation,
            health: HealthStatus::Online,
            cache_error: None,
        },
        checks: vec![],
        lb: None,
    }
}

fn remote(st: &mut State, node: &str, r: Option<LiveRecord>) -> Observed {
    st.observe(Observation::Remote {
        node: node.try_into().unwrap(),
        record: r,
        now_ms: NOW,
    })
}

#[test]
fn a_node_on_another_master_is_connected_with_what_it_acknowledged() {
    let mut st = state();
    connect(&mut st, hello("n1"), 1, NOW);
    st.observe(Observation::Disconnected {
        node: "n1".try_into().unwrap(),
        session: 1,
        now_ms: NOW,
    });
    let id: NodeId = "n1".try_into().unwrap();
    assert!(!st.status(&id, NOW).unwrap().connected);

    assert!(remote(&mut st, "n1", Some(record("m2", NOW + 10, 7))).accepted);
    let status = st.status(&id, NOW + 10).unwrap();
    assert!(status.connected, "connected through m2");
    assert_eq!(status.applied.generation, 7);
    assert_eq!(st.sessions(), 0, "not a session of this master");
    let live = st.live("n1").unwrap();
    assert_eq!(
        live.master,
        Some(("m2".to_owned(), "https://m2:7440".to_owned()))
    );
    // This master publishes nothing for a session it does not hold.
    assert_eq!(st.live_record(&id, "m1", "https://m1:7440"), None);

    // The record goes with the session.
    assert!(remote(&mut st, "n1", None).accepted);
    assert!(!st.status(&id, NOW + 20).unwrap().connected);
}

#[test]
fn a_newer_session_elsewhere_ends_this_masters_and_an_older_one_does_not() {
    let mut st = state();
    connect(&mut st, hello("n1"), 1, NOW);
    let id: NodeId = "n1".try_into().unwrap();

    // Stale: opened before this master's session (its end is on its way).
    let stale = remote(&mut st, "n1", Some(record("m2", NOW - 5, 3)));
    assert!(!stale.accepted);
    assert!(stale.effects.close.is_empty());
    assert_eq!(st.sessions(), 1);
    assert!(st.live_record(&id, "m1", "a").is_some());
    // Nor does another master's session ending touch this master's own.
    assert!(!remote(&mut st, "n1", None).accepted);
    assert_eq!(st.sessions(), 1);

    // The agent moved to m2 after connecting here: this session is over.
    let moved = remote(&mut st, "n1", Some(record("m2", NOW + 5, 3)));
    assert!(moved.accepted);
    assert_eq!(moved.effects.close, vec![id.clone()]);
    assert_eq!(st.sessions(), 0);
    assert!(st.status(&id, NOW + 5).unwrap().connected);
    // Reports of the ended session are not taken in any more.
    let late = st.observe(Observation::Acked {
        node: id.clone(),
        session: 1,
        ack: cluster_model::session::Ack {
            generation: 99,
            health: HealthStatus::Online,
            cache_error: None,
        },
        now_ms: NOW + 6,
    });
    assert!(!late.accepted);
    assert_eq!(st.status(&id, NOW + 6).unwrap().applied.generation, 3);
}

#[test]
fn a_reload_keeps_this_masters_sessions_and_takes_the_others_again() {
    let mut st = state();
    connect(&mut st, hello("n1"), 1, NOW);
    connect(&mut st, hello("n2"), 2, NOW);
    st.observe(Observation::Disconnected {
        node: "n2".try_into().unwrap(),
        session: 2,
        now_ms: NOW,
    });
    remote(&mut st, "n2", Some(record("m2", NOW + 1, 1)));
    let loaded = Loaded {
        revision: st.revision() + 10,
        records: st.records(),
        next_event_seq: st.next_event_seq(),
        live: vec![("n2".try_into().unwrap(), record("m3", NOW + 2, 4))],
    };
    let effects = st.reload(loaded, NOW + 3);
    let n1: NodeId = "n1".try_into().unwrap();
    let n2: NodeId = "n2".try_into().unwrap();
    // This master's own session is ended so its agent gets a snapshot.
    assert_eq!(effects.close, vec![n1.clone()]);
    assert_eq!(
        st.live("n2").unwrap().master.as_ref().map(|m| m.0.as_str()),
        Some("m3")
    );
    assert_eq!(st.status(&n2, NOW + 3).unwrap().applied.generation, 4);
}

#[test]
fn a_master_starting_counts_a_node_heard_from_through_another_as_up() {
    let mut st = state();
    connect(&mut st, hello("n1"), 1, NOW);
    // Stored when it registered, a minute ago; m2 heard from it just now.
    let now = NOW + 60_000;
    let mut heard = record("m2", NOW + 1, 1);
    heard.last_seen_ms = now - 1_000;
    let loaded = Loaded {
        revision: st.revision(),
        records: st.records(),
        next_event_seq: st.next_event_seq(),
        live: vec![("n1".try_into().unwrap(), heard)],
    };
    let mut st = State::load(st.config.clone(), loaded, now);
    let n1: NodeId = "n1".try_into().unwrap();
    let status = st.status(&n1, now).unwrap();
    assert!(status.connected, "connected through m2");
    assert_eq!(status.state, cluster_model::NodeState::Online);
    // Neither a `down` nor a `back up` for a node that never went away.
    let events = run(&mut st, &crate::state::plan::SweepLiveness, now).unwrap();
    assert!(events.is_empty(), "{events:?}");
    let revision = st.revision();
    run(
        &mut st,
        &crate::state::plan::Register { hello: hello("n1") },
        now,
    )
    .unwrap();
    assert_eq!(
        st.revision(),
        revision,
        "its agent reconnecting changes nothing"
    );
}
