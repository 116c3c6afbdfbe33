//! The planners and `apply`, without tokio or a store: what a command
//! plans (records, events, preconditions), what it refuses, and what
//! applying it derives.
//!
//! - `prop` — random command sequences: the live state equals the state
//!   reloaded from what was committed.
//! - `remote` — sessions other masters hold, as they publish them.

mod prop;
mod remote;

use super::plan::testing::{NOW, connect, hello, role, run, state, to, web};
use super::plan::*;
use super::*;
use crate::store::{Expect, Key, Precondition};
use cluster_model::clusterfile::{self, DesiredCluster};
use cluster_model::naming::Naming;
use cluster_model::{NodeState, TargetSpec};

fn names(v: &[&str]) -> TargetSpec {
    TargetSpec::Names(v.iter().map(|s| s.to_string()).collect())
}

fn drain(nodes: &[&str], reason: &str) -> SetOut {
    SetOut {
        target: names(nodes),
        reason: Some(reason.into()),
        maintenance: false,
        by: "alice".into(),
        note: String::new(),
    }
}

fn plan<C: Command>(st: &State, cmd: &C) -> Result<Planned<C::Out>, crate::cluster::ClusterError> {
    let issuer = super::plan::testing::FakeIssuer::default();
    cmd.plan(
        st,
        &Env {
            now_ms: NOW,
            issuer: &issuer,
        },
    )
}

#[test]
fn a_drain_plans_exactly_its_records_events_and_preconditions() {
    let mut st = state();
    connect(&mut st, hello("a"), 1, NOW);
    connect(&mut st, hello("b"), 2, NOW);
    let rev_a = st.node("a").unwrap().revision;
    let next_seq = st.next_event_seq();
    let p = plan(&st, &drain(&["a", "b"], "deploy")).unwrap();
    assert_eq!(p.change.puts.len(), 2);
    assert_eq!(
        p.change.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [next_seq, next_seq + 1],
        "numbered from the state, not taken from a counter"
    );
    assert!(p.change.preconditions.contains(&Precondition {
        key: Key::Node("a".try_into().unwrap()),
        expect: Expect::At(rev_a),
    }));
    assert!(p.out.iter().all(|c| c.changed));
    // Planning changed nothing.
    assert!(st.node("a").unwrap().value.offline.is_none());
    assert_eq!(st.next_event_seq(), next_seq);
}

#[test]
fn what_a_drain_refuses_or_finds_already_done() {
    let mut st = state();
    connect(&mut st, hello("a"), 1, NOW);
    let cases: &[(&[&str], Result<&str, &str>)] = &[
        (&["a", "x", "y"], Err("unknown nodes: x, y")),
        (&[], Err("no node names given")),
        (&["a", " "], Err("empty node name at position 2")),
        (&["z*"], Err("no nodes matched z*")),
        (&["a"], Ok("changed")),
    ];
    for (nodes, want) in cases {
        let got = plan(&st, &drain(nodes, "r")).map(|p| {
            if p.out.iter().all(|c| c.changed) {
                "changed"
            } else {
                "unchanged"
            }
        });
        assert_eq!(
            got.map_err(|e| e.to_string()),
            want.map_err(str::to_owned),
            "{nodes:?}"
        );
    }
    run(&mut st, &drain(&["a"], "r"), NOW).unwrap();
    let again = plan(&st, &drain(&["a"], "r")).unwrap();
    assert!(
        again.change.is_empty(),
        "the same drain twice changes nothing"
    );
    assert!(!again.out[0].changed);
}

#[test]
fn registration_names_from_services_fills_gaps_and_writes_only_what_changed() {
    let mut st = state();
    let svc = |id: &str| cluster_model::session::Hello {
        service: "mysql".into(),
        naming: Naming::Masterful,
        ..hello(id)
    };
    for id in ["x1", "x2", "x3"] {
        connect(&mut st, svc(id), 0, NOW);
    }
    let name = |st: &State, id: &str| st.node(id).unwrap().value.name.to_string();
    assert_eq!(
        [name(&st, "x1"), name(&st, "x2"), name(&st, "x3")],
        ["mysql-master", "mysql-slave-1", "mysql-slave-2"]
    );
    // The same hello again: nothing to write.
    assert!(
        plan(&st, &Register { hello: svc("x2") })
            .unwrap()
            .change
            .is_empty()
    );
    // A new address is written, and moves the hosts line.
    let before = st.hosts_revision();
    let moved = cluster_model::session::Hello {
        addresses: vec!["10.0.0.9".into()],
        ..svc("x2")
    };
    run(&mut st, &Register { hello: moved }, NOW).unwrap();
    assert!(st.hosts_revision() > before);
}

#[test]
fn a_node_group_in_use_cannot_be_removed_or_broken() {
    let mut st = state();
    connect(&mut st, hello("node1"), 1, NOW);
    let set = |name: &str, expr: &str| SetGroup {
        name: name.into(),
        expr: expr.into(),
        by: "t".into(),
    };
    run(&mut st, &set("a", "node*"), NOW).unwrap();
    run(&mut st, &set("b", "N@a and not node1"), NOW).unwrap();
    run(&mut st, &set("c", "N@b"), NOW).unwrap();
    let err = plan(&st, &set("a", "")).unwrap_err().to_string();
    assert_eq!(
        err,
        "node group \"a\" is still used by node group \"b\", node group \"c\"; change or remove those groups first"
    );
    let err = plan(&st, &set("a", "N@c")).unwrap_err().to_string();
    assert!(err.contains("cycle"), "{err}");
    // Once nothing uses it, it goes.
    run(&mut st, &set("c", ""), NOW).unwrap();
    run(&mut st, &set("b", ""), NOW).unwrap();
    run(&mut st, &set("a", ""), NOW).unwrap();
    assert!(st.groups().is_empty());
}

#[test]
fn an_export_applies_back_to_no_change_and_plan_refuses_what_apply_refuses() {
    let mut st = state();
    connect(&mut st, web("w1", "10.0.0.1"), 1, NOW);
    // Set the way `clusterctl upstream set --role web` does: no cluster
    // file, no [roles.web] anywhere.
    run(
        &mut st,
        &SetBalancing {
            upstreams: vec![("app".into(), role("web", 8080))],
            routes: vec![("example.com".into(), to("app"))],
            remove_routes: vec![],
            by: "t".into(),
        },
        NOW,
    )
    .unwrap();
    run(
        &mut st,
        &SetLabels {
            target: names(&["w1"]),
            labels: [("rack".to_owned(), "a1".to_owned())].into(),
            by: "t".into(),
        },
        NOW,
    )
    .unwrap();
    let exported = desired(&st);
    // Through the file as people see it, and back.
    let text = clusterfile::to_toml(&exported);
    let read: DesiredCluster = clusterfile::parse(&text).unwrap();
    let apply = |wanted| ApplyClusterFile {
        wanted,
        by: "t".into(),
    };
    let p = plan(&st, &apply(read.clone())).unwrap();
    assert!(
        p.out.is_empty(),
        "a fresh export plans no change: {:?}",
        p.out
    );
    assert!(p.change.is_empty());
    // Labels for a node that does not exist: refused by the plan as by
    // the apply, naming the place.
    let mut wrong = read;
    wrong
        .labels
        .insert("web-0".into(), [("k".to_owned(), "v".to_owned())].into());
    let err = plan(&st, &apply(wrong.clone())).unwrap_err().to_string();
    assert_eq!(err, "labels.web-0: no node named \"web-0\"");
    assert!(run(&mut st, &apply(wrong), NOW).is_err());
}

#[test]
fn events_follow_a_node_by_its_id_and_keep_the_name_it_had() {
    let mut st = state();
    let db = |id: &str| cluster_model::session::Hello {
        service: "db".into(),
        naming: Naming::Masterful,
        ..hello(id)
    };
    connect(&mut st, db("m"), 1, NOW);
    connect(&mut st, db("s"), 2, NOW);
    let p = plan(
        &st,
        &Rename::Promote {
            node: "db-slave-1".into(),
            by: "t".into(),
        },
    )
    .unwrap();
    let by_node: Vec<(String, String)> = p
        .change
        .events
        .iter()
        .map(|e| (e.node_id.as_ref().unwrap().to_string(), e.node.clone()))
        .collect();
    // Each event is keyed by the id of the node it is about, and shows
    // the name that node has from this change on.
    assert_eq!(
        by_node,
        [
            ("m".to_owned(), "db-slave-1".to_owned()),
            ("s".to_owned(), "db-master".to_owned())
        ]
    );
}

#[test]
fn applying_derives_names_hosts_lines_and_the_proxies_view() {
    let mut st = state();
    connect(&mut st, web("a", "10.0.0.1"), 1, NOW);
    connect(&mut st, web("b", "10.0.0.2"), 2, NOW);
    run(
        &mut st,
        &SetBalancing {
            upstreams: vec![("app".into(), role("web", 80))],
            routes: vec![],
            remove_routes: vec![],
            by: "t".into(),
        },
        NOW,
    )
    .unwrap();
    let servers = |st: &State| -> Vec<String> {
        st.proxy_view().upstreams["app"]
            .iter()
            .map(|s| s.server.addr.clone())
            .collect()
    };
    assert_eq!(servers(&st), ["10.0.0.1:80", "10.0.0.2:80"]);
    let version = st.proxy_view().version;
    run(&mut st, &drain(&["b"], "r"), NOW).unwrap();
    assert_eq!(servers(&st), ["10.0.0.1:80"]);
    assert_eq!(st.proxy_view().version, version + 1);
    run(
        &mut st,
        &Rename::To {
            node: "a".into(),
            new_name: "edge-1".into(),
            by: "t".into(),
        },
        NOW,
    )
    .unwrap();
    assert_eq!(st.id_of("edge-1").map(|i| i.as_str()), Some("a"));
    assert!(st.id_of("a").is_none());
    let lines = st.host_entries();
    assert!(lines.iter().any(|l| l.names == ["edge-1"]), "{lines:?}");
}

#[test]
fn liveness_is_derived_and_its_transitions_are_planned_once() {
    let mut st = state();
    connect(&mut st, hello("a"), 1, NOW);
    st.observe(Observation::Disconnected {
        node: "a".try_into().unwrap(),
        session: 1,
        now_ms: NOW,
    });
    let later = NOW + 20_000;
    assert_eq!(
        st.status(&"a".try_into().unwrap(), later).unwrap().state,
        NodeState::Down
    );
    let events = run(&mut st, &SweepLiveness, later).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].detail, "not heard from for 20s");
    assert!(run(&mut st, &SweepLiveness, later + 1).unwrap().is_empty());
}

#[test]
fn a_revoked_key_ends_the_nodes_session_when_applied() {
    let mut st = state();
    let t = run(
        &mut st,
        &CreateToken {
            id: "abc".into(),
            secret: "s3cret".into(),
            ttl: Some(std::time::Duration::from_secs(60)),
            api: None,
            uses: Some(1),
            roles: vec![],
            by: "t".into(),
        },
        NOW,
    )
    .unwrap();
    assert_eq!(t.uses_left, Some(1));
    let join = Join {
        node_id: "a".try_into().unwrap(),
        csr_pem: "csr".into(),
        fingerprint: "fp".into(),
        token: Some("abc.s3cret".into()),
        source: "10.0.0.1".into(),
    };
    assert!(matches!(
        run(&mut st, &join, NOW).unwrap(),
        JoinOutcome::Accepted { .. }
    ));
    assert_eq!(st.token("abc").unwrap().value.uses_left, Some(0));
    connect(&mut st, hello("a"), 7, NOW);
    let p = plan(
        &st,
        &DecideKeys {
            ids: vec!["a".into()],
            decision: KeyDecision::Delete,
            fingerprint: None,
            by: "t".into(),
        },
    )
    .unwrap();
    let serial = st.key("a").unwrap().value.serial.clone();
    let effects = st.apply(&p.change, st.revision() + 1);
    assert_eq!(effects.close, ["a"]);
    assert!(st.session("a").is_none());
    assert!(st.is_revoked(&serial));
}

#[test]
fn targets_reach_facts_and_keep_their_delimiter() {
    use cluster_model::session::Hello;
    use cluster_model::targets::{Delimiter, Kind};
    let object = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("an object"),
    };
    let mut st = state();
    let debian = Hello {
        grains: object(serde_json::json!({"ipv6": ["fe80::1"]})),
        facts: object(serde_json::json!({"os": {"family": "Debian"}})),
        ..hello("node1")
    };
    let redhat = Hello {
        facts: object(serde_json::json!({"os": {"family": "RedHat"}})),
        ..hello("node2")
    };
    connect(&mut st, debian, 1, NOW);
    connect(&mut st, redhat, 2, NOW);
    let id = |s: &str| -> NodeId { s.try_into().unwrap() };
    let percent = Delimiter::new('%').unwrap();
    let select = |spec: TargetSpec| st.select(&spec).map_err(|e| e.to_string());
    assert_eq!(
        select(TargetSpec::expr(Kind::Compound, "F@os.family:Debian")),
        Ok(vec![id("node1")])
    );
    assert_eq!(
        select(TargetSpec::Expr(
            Kind::Fact,
            "os.family%RedHat".into(),
            percent
        )),
        Ok(vec![id("node2")])
    );
    assert_eq!(
        select(TargetSpec::Expr(
            Kind::Grain,
            "ipv6%fe80::*".into(),
            percent
        )),
        Ok(vec![id("node1")])
    );
    let refused = select(TargetSpec::Expr(Kind::Compound, "G%@os%x".into(), percent));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("applies to -G, -P, -I and -F")),
        "{refused:?}"
    );
}
