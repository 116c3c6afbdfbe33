//! Upstreams and routes on the master: what the proxies are sent as nodes
//! drain, fail checks and come back; refusals; "really out".

use super::*;
use cluster_balancer::{Rule, Server, UpstreamSource};
use cluster_model::{CheckResult, LbBackend, LbReport, LbSource};
use std::collections::BTreeMap;

fn servers(c: &Cluster, upstream: &str) -> Vec<String> {
    c.proxy_view().upstreams[upstream]
        .iter()
        .map(|s| s.server.addr.clone())
        .collect()
}

#[tokio::test]
async fn a_role_upstream_holds_the_online_nodes_and_a_drain_takes_one_out_at_once() {
    let (_, c, _) = cluster(&[]).await;
    let _a = c.connect(web("a", "10.0.0.1")).await.unwrap();
    let _b = c.connect(web("b", "10.0.0.2")).await.unwrap();
    c.set_balancing(vec![("app".into(), role("web", 8080))], vec![], vec![], "t")
        .await
        .unwrap();
    assert_eq!(servers(&c, "app"), ["10.0.0.1:8080", "10.0.0.2:8080"]);
    let before = c.proxy_view().version;
    c.set_offline(&names(&["b"]), Some("deploy".into()), "t")
        .await
        .unwrap();
    assert_eq!(servers(&c, "app"), ["10.0.0.1:8080"]);
    assert!(c.proxy_view().version > before);
    // An unrelated change moves nothing and wakes no proxy.
    let v = c.proxy_view().version;
    c.set_labels(
        &names(&["a"]),
        &BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        "t",
    )
    .await
    .ok();
    assert_eq!(c.proxy_view().version, v);
    c.set_offline(&names(&["b"]), None, "t").await.unwrap();
    assert_eq!(servers(&c, "app"), ["10.0.0.1:8080", "10.0.0.2:8080"]);
}

#[tokio::test]
async fn a_failing_check_takes_a_node_out_of_role_upstreams() {
    let (_, c, _) = cluster(&[]).await;
    let a = c.connect(web("a", "10.0.0.1")).await.unwrap();
    c.set_balancing(vec![("app".into(), role("web", 80))], vec![], vec![], "t")
        .await
        .unwrap();
    let check = |passing| CheckResult {
        name: "http".into(),
        kind: "http".into(),
        passing,
        output: if passing { String::new() } else { "500".into() },
        since_ms: 1,
    };
    c.report_checks(&a, vec![check(false)]).await;
    assert!(servers(&c, "app").is_empty());
    c.report_checks(&a, vec![check(true)]).await;
    assert_eq!(servers(&c, "app"), ["10.0.0.1:80"]);
}

#[tokio::test]
async fn bad_balancing_is_refused_whole_with_every_problem_and_changes_nothing() {
    let (store, c, _) = cluster(&[]).await;
    let writes = store.commits();
    let bad_server = UpstreamSource::Servers(vec![Server::new("10.0.0.1")]);
    let mut cycle = to("app");
    cycle.init = "x".into();
    cycle.rules.insert(
        "x".into(),
        Rule::Ua {
            pattern: "(".into(),
            succ: Some("x".into()),
            fail: None,
        },
    );
    let err = c
        .set_balancing(
            vec![("up".into(), bad_server)],
            vec![
                ("example.com".into(), cycle),
                ("b.example".into(), to("nope")),
            ],
            vec![],
            "t",
        )
        .await
        .unwrap_err()
        .to_string();
    for want in [
        "upstream \"up\", server 1 (\"10.0.0.1\")",
        "domain \"example.com\"",
        "unknown upstream \"nope\"",
        "cycle",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert_eq!(store.commits(), writes);
    assert!(c.balancing().upstreams.is_empty() && c.balancing().routes.is_empty());
}

#[tokio::test]
async fn an_upstream_in_use_cannot_be_removed() {
    let (_, c, _) = cluster(&[]).await;
    c.set_balancing(
        vec![("app".into(), role("web", 80))],
        vec![("example.com".into(), to("app"))],
        vec![],
        "t",
    )
    .await
    .unwrap();
    let err = c.remove_upstream("app", "t").await.unwrap_err().to_string();
    assert!(
        err.contains("still used by domain \"example.com\" rule \"b\""),
        "{err}"
    );
    c.set_balancing(vec![], vec![], vec!["example.com".into()], "t")
        .await
        .unwrap();
    c.remove_upstream("app", "t").await.unwrap();
    assert!(c.balancing().upstreams.is_empty());
}

#[tokio::test]
async fn a_node_is_out_only_when_every_balancer_says_so() {
    let (_, c, _) = cluster(&[]).await;
    let a = c.connect(web("a", "10.0.0.1")).await.unwrap();
    let lb = c
        .connect(Hello {
            wants_proxy: true,
            takes_hosts_in_parts: false,
            ..hello("lb")
        })
        .await
        .unwrap();
    c.set_balancing(vec![("app".into(), role("web", 80))], vec![], vec![], "t")
        .await
        .unwrap();
    let (_, changes) = c
        .set_offline(&names(&["a"]), Some("deploy".into()), "t")
        .await
        .unwrap();
    let targets = c.spec_generations(&changes);
    let out_pending = |c: &Cluster| -> Vec<String> {
        c.read(|st| st.out_pending(&targets))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let pending = out_pending(&c);
    assert!(
        pending
            .iter()
            .any(|p| p.contains("lb: the proxy has not reported yet")),
        "{pending:?}"
    );
    assert!(
        pending
            .iter()
            .any(|p| p.contains("a: the agent has not applied")),
        "{pending:?}"
    );
    c.acknowledge(&a, ack(targets[0].1, HealthStatus::Offline))
        .await;
    let version = c.proxy_view().version;
    let busy = LbBackend {
        source: LbSource::Proxy,
        name: "app".into(),
        addr: "10.0.0.1:80".into(),
        in_rotation: false,
        inflight: 2,
        status: String::new(),
    };
    c.report_lb(
        &lb,
        LbReport {
            proxy_version: version,
            backends: vec![busy.clone()],
        },
    );
    assert_eq!(
        out_pending(&c),
        ["lb: 2 requests in flight to a (10.0.0.1:80)"]
    );
    // HAProxy still sending to it holds the wait too.
    let haproxy = LbBackend {
        source: LbSource::Haproxy,
        name: "app/a".into(),
        addr: "10.0.0.1:80".into(),
        in_rotation: true,
        inflight: 0,
        status: "UP".into(),
    };
    c.report_lb(
        &lb,
        LbReport {
            proxy_version: version,
            backends: vec![haproxy.clone()],
        },
    );
    assert_eq!(out_pending(&c).len(), 1);
    assert!(out_pending(&c)[0].contains("HAProxy server app/a"));
    let drained = LbBackend {
        in_rotation: false,
        status: "DRAIN".into(),
        ..haproxy
    };
    let waiter = c.wait_rotation(Duration::from_secs(5), |st| st.out_pending(&targets));
    let report = async {
        tokio::task::yield_now().await;
        c.report_lb(
            &lb,
            LbReport {
                proxy_version: version,
                backends: vec![drained],
            },
        );
    };
    let (left, ()) = tokio::join!(waiter, report);
    assert!(left.is_empty(), "{left:?}");
}
