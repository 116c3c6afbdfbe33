//! What a pushed state does to the agent: applied and acknowledged, a gap
//! answered with a resync, an older epoch refused with nothing changed.

use super::*;
use crate::enroll::Enrollment;
use cluster_model::node::NodeSpec;
use cluster_model::{NodeId, NodeName, OfflineFlag};

fn context(dir: &std::path::Path) -> Context {
    let id = NodeId::new("web-1").unwrap();
    Context {
        masters: vec!["https://m1:7440".into()],
        hello: Hello {
            node_id: id,
            grains: Default::default(),
            roles: Vec::new(),
            addresses: Vec::new(),
            health_url: String::new(),
            service: String::new(),
            naming: Default::default(),
            aliases: Vec::new(),
            cached_generation: 0,
            agent_version: String::new(),
            report_interval_ms: 1000,
            wants_hosts: false,
            wants_proxy: false,
            takes_hosts_in_parts: false,
            facts: Default::default(),
            fact_problems: Vec::new(),
        },
        report_interval: Duration::from_secs(1),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(5),
        shared: Arc::new(Shared::new(Desired::initial("web-1"))),
        cache: Cache::new(dir),
        enrollment: Enrollment {
            dir: dir.join("pki"),
            node_id: "web-1".into(),
            ca_file: None,
            ca_fingerprint: None,
            token: None,
            source: None,
        },
        runner: crate::jobs::Runner::new(false),
        hosts_file: None,
        set_hostname: false,
        dry_run: None,
        balancers: Default::default(),
    }
}

fn snapshot(generation: u64, epoch: u64, reason: Option<&str>) -> Push {
    Push::Snapshot(Snapshot {
        generation,
        epoch,
        node: NodeSpec {
            name: NodeName::new("web-1").unwrap(),
            offline: reason.map(|r| OfflineFlag {
                reason: r.into(),
                since_ms: 1,
                by: "alice".into(),
                maintenance: false,
            }),
        },
        hosts: Vec::new(),
        proxy: None,
    })
}

fn delta(prev: u64, generation: u64, epoch: u64, reason: Option<&str>) -> Push {
    let Push::Snapshot(s) = snapshot(generation, epoch, reason) else {
        unreachable!()
    };
    Push::Delta(Delta {
        generation,
        prev_generation: prev,
        epoch,
        node: Some(s.node),
        hosts_upsert: Vec::new(),
        hosts_removed: Vec::new(),
        proxy: None,
    })
}

/// The generation acknowledged, or the generation a resync says it has,
/// or the error's text.
fn push(ctx: &Context, p: Push) -> String {
    match receive(ctx, "https://m2:7440", p) {
        Ok(Received::Reply(reply)) => match *reply {
            Out::Ack(a) => format!("ack {}", a.generation),
            Out::Resync(r) => format!("resync from {}", r.have_generation),
            other => format!("{other:?}"),
        },
        Ok(other) => format!("{other:?}"),
        Err(e) => e.to_string(),
    }
}

/// (generation, epoch, drained) of what the agent holds.
fn held(ctx: &Context) -> (u64, u64, bool) {
    let d = ctx.shared.current();
    (d.generation, d.epoch, d.offline.is_some())
}

#[test]
fn an_older_epoch_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    assert_eq!(push(&ctx, snapshot(10, 5, None)), "ack 10");
    assert_eq!(held(&ctx), (10, 5, false));

    // A deposed leader's push: neither a snapshot nor a delta applies.
    let refused = push(&ctx, snapshot(12, 4, Some("stale")));
    assert!(
        refused.starts_with(
            "the master at https://m2:7440 served epoch 4, older than epoch 5 this agent has seen"
        ),
        "{refused}"
    );
    assert!(refused.contains("desired.json"), "{refused}");
    assert!(
        push(&ctx, delta(10, 11, 3, Some("stale"))).contains("served epoch 3"),
        "a delta too"
    );
    assert_eq!(held(&ctx), (10, 5, false));

    // The same epoch applies as ever; a newer one applies and is kept.
    assert_eq!(push(&ctx, delta(10, 11, 5, Some("deploy"))), "ack 11");
    assert_eq!(held(&ctx), (11, 5, true));
    assert_eq!(push(&ctx, snapshot(11, 9, None)), "ack 11");
    assert_eq!(held(&ctx), (11, 9, false));
    assert!(push(&ctx, snapshot(20, 5, None)).contains("older than epoch 9"));

    // It survives a restart: the cache holds it.
    let reloaded = Cache::new(dir.path()).load().unwrap().unwrap();
    assert_eq!((reloaded.generation, reloaded.epoch), (11, 9));
}

#[test]
fn epoch_0_is_one_master_and_applies_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    assert_eq!(push(&ctx, snapshot(3, 0, None)), "ack 3");
    assert_eq!(push(&ctx, delta(3, 4, 0, Some("deploy"))), "ack 4");
    assert_eq!(held(&ctx), (4, 0, true));
    // A master restored from scratch counts generations again: its
    // snapshot still replaces the state.
    assert_eq!(push(&ctx, snapshot(1, 0, None)), "ack 1");
    assert_eq!(held(&ctx), (1, 0, false));
}

#[test]
fn a_delta_that_does_not_follow_on_asks_for_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    assert_eq!(push(&ctx, snapshot(10, 2, None)), "ack 10");
    assert_eq!(
        push(&ctx, delta(8, 12, 2, Some("deploy"))),
        "resync from 10"
    );
    assert_eq!(held(&ctx), (10, 2, false));
}
