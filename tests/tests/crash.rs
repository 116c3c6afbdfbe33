//! A master killed with SIGKILL at random points while changes stream in,
//! 20 times over: after each restart every change it acknowledged is
//! there, and no change it did not acknowledge is there by halves.
//!
//! Each change is one call that writes two records at once — an upstream
//! `u<i>` and a domain `d<i>.example` routed to it — so half of one would
//! show as an upstream without its domain or a domain without its
//! upstream. Node groups `g<i>` (one record each) stream beside them.

use cluster_proto as pb;
use cluster_tests::{MasterProc, crypto};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUNDS: usize = 20;

fn change(i: u64) -> pb::SetRoutesRequest {
    pb::SetRoutesRequest {
        set: vec![pb::Route {
            domain: format!("d{i}.example"),
            chain_json: format!(
                r#"{{"init":"b","rules":{{"b":{{"type":"backend","args":{{"servername":"u{i}"}}}}}}}}"#
            ),
        }],
        remove: vec![],
        upstreams: vec![pb::UpstreamDef {
            name: format!("u{i}"),
            servers: vec![pb::UpstreamServer {
                addr: format!("10.0.{}.{}:80", i / 250, i % 250 + 1),
                weight: 1,
                max_fails: 1,
                fail_timeout_ms: 10_000,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[derive(Default)]
struct Acked {
    routes: BTreeSet<u64>,
    groups: BTreeSet<u64>,
}

/// Sends changes `from..` until a call fails (the master died); records
/// every acknowledged one.
async fn write(
    mut control: pb::control_client::ControlClient<tonic::transport::Channel>,
    from: u64,
    acked: Arc<Mutex<Acked>>,
) {
    for i in from.. {
        if control.set_routes(change(i)).await.is_err() {
            return;
        }
        acked.lock().unwrap().routes.insert(i);
        let group = pb::SetNodeGroupRequest {
            name: format!("g{i}"),
            expr: "web-*".into(),
        };
        if control.set_node_group(group).await.is_err() {
            return;
        }
        acked.lock().unwrap().groups.insert(i);
    }
}

fn number(s: &str, prefix: &str, suffix: &str) -> Option<u64> {
    s.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_killed_mid_write_keeps_every_acknowledged_change_whole() {
    crypto();
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut master = MasterProc::builder().spawn();
    let admin = master.admin();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut next = 0u64;
    // Changes that landed without their answer, round by round.
    let mut unacknowledged: BTreeSet<u64> = BTreeSet::new();
    for round in 0..ROUNDS {
        let control = pb::control_client::ControlClient::new(admin.channel().await);
        let writer = tokio::spawn(write(control, next, acked.clone()));
        // Let some changes land, then kill it wherever it is.
        tokio::time::sleep(Duration::from_millis(rng.u64(5..80))).await;
        master.kill();
        writer.await.unwrap();
        master.restart();

        let mut control = pb::control_client::ControlClient::new(admin.channel().await);
        let balancing = control
            .list_balancing(pb::ListBalancingRequest {})
            .await
            .unwrap()
            .into_inner();
        let upstreams: BTreeSet<u64> = balancing
            .upstreams
            .iter()
            .filter_map(|u| number(&u.name, "u", ""))
            .collect();
        let domains: BTreeSet<u64> = balancing
            .routes
            .iter()
            .filter_map(|r| number(&r.domain, "d", ".example"))
            .collect();
        let groups: BTreeSet<u64> = control
            .list_node_groups(pb::ListNodeGroupsRequest {})
            .await
            .unwrap()
            .into_inner()
            .groups
            .keys()
            .filter_map(|g| number(g, "g", ""))
            .collect();
        let acked = acked.lock().unwrap();
        let context = format!("round {round} (seed {seed})");
        assert_eq!(upstreams, domains, "a change applied by halves, {context}");
        assert!(
            acked.routes.is_subset(&upstreams),
            "acknowledged changes lost, {context}: {:?}",
            acked.routes.difference(&upstreams).collect::<Vec<_>>()
        );
        assert!(
            acked.groups.is_subset(&groups),
            "acknowledged node groups lost, {context}: {:?}",
            acked.groups.difference(&groups).collect::<Vec<_>>()
        );
        // At most the one call in flight when it died may have landed
        // unacknowledged (its answer was lost with the process) — one per
        // round: earlier rounds' are known.
        let landed: BTreeSet<u64> = upstreams
            .difference(&acked.routes)
            .filter(|i| !unacknowledged.contains(*i))
            .copied()
            .collect();
        assert!(
            landed.len() <= 1,
            "{context}: {landed:?} landed unacknowledged ({upstreams:?} vs {:?})",
            acked.routes
        );
        unacknowledged.extend(landed);
        next = upstreams
            .iter()
            .chain(groups.iter())
            .chain(acked.routes.iter())
            .max()
            .map_or(next, |m| m + 1);
    }
    assert!(
        acked.lock().unwrap().routes.len() >= ROUNDS,
        "every round should land a few changes (seed {seed})"
    );
}
