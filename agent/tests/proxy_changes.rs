//! The agent's proxy while its configuration changes and its backends
//! fail: servers removed under load drain without a failed request, a
//! hundred changes fail nothing, a killed backend is ejected and comes
//! back, a POST is retried only when it was never sent.

#![allow(dead_code)] // not every shared helper is used here

include!("support/proxy.rs");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_server_under_load_fails_nothing_and_drains() {
    let b1 = Backend::spawn("b1", "127.0.0.2").await;
    let b2 = Backend::spawn("b2", "127.0.0.3").await;
    let b3 = Backend::spawn("b3", "127.0.0.4").await;
    let domains = || straight(&[("shop.test", "web"), ("slow.test", "slow")]);
    let p = start_default(config(
        1,
        domains(),
        vec![
            ("web", vec![b1.server(), b2.server(), b3.server()]),
            ("slow", vec![b3.server()]),
        ],
    ))
    .await;
    const CLIENTS: usize = 8;
    let load = Load::start(p.addr, "shop.test", CLIENTS);
    load.progress(300).await;

    // A response from b3 whose body is still on its way.
    let held = {
        let req = Request::builder()
            .uri(format!("http://{}/hold", p.addr))
            .header("host", "slow.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client().request(req).await.unwrap()
    };
    assert_eq!(held.status(), StatusCode::OK);
    let mut changes = p.proxy.changes();
    changes.borrow_and_update();

    p.proxy.update(config(
        2,
        domains(),
        vec![
            ("web", vec![b1.server(), b2.server()]),
            ("slow", vec![b1.server()]),
        ],
    ));
    let b3_at_update = b3.hits();
    assert!(
        changes.has_changed().unwrap(),
        "applying a configuration bumps changes()"
    );
    changes.borrow_and_update();
    let draining = p.proxy.draining();
    assert_eq!(draining.len(), 1, "{draining:?}");
    assert_eq!(draining[0].0, b3.addr.to_string());
    assert!(
        draining[0].1 >= 1,
        "the held response counts until its body ends"
    );

    load.progress(300).await;
    let b3_after_load = b3.hits();
    assert!(
        b3_after_load - b3_at_update <= CLIENTS as u64,
        "only requests already in flight may reach b3 after the update: {} did",
        b3_after_load - b3_at_update
    );
    assert_eq!(p.proxy.draining().len(), 1, "still held");

    b3.release();
    let body = held.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"released");
    // No polling: changes() fires when b3's last request ends.
    while !p.proxy.draining().is_empty() {
        tokio::time::timeout(PATIENCE, changes.changed())
            .await
            .expect("changes() fires when a draining server empties")
            .unwrap();
    }
    load.progress(300).await;
    assert_eq!(
        b3.hits(),
        b3_after_load,
        "nothing new reaches a removed server"
    );

    let (by_backend, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(by_backend["b3"] > 0 && by_backend["b1"] > 0 && by_backend["b2"] > 0);
    let stats = p.proxy.stats();
    let names: Vec<_> = stats.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["slow", "web"]);
    assert_eq!(stats[1].servers.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_config_changes_under_load_fail_nothing() {
    let b = [
        Backend::spawn("b1", "127.0.0.2").await,
        Backend::spawn("b2", "127.0.0.3").await,
        Backend::spawn("b3", "127.0.0.4").await,
    ];
    let make = |i: u64| {
        // Upstreams change on even generations, routes on odd ones.
        let members = |k: u64| -> Vec<UpstreamServer> {
            let first = (k as usize / 2) % 3;
            vec![
                with(b[first].server(), |s| s.weight = 1 + (k % 4) as u32),
                b[(first + 1) % 3].server(),
            ]
        };
        let target = if (i / 2).is_multiple_of(2) {
            "web"
        } else {
            "alt"
        };
        let mut upstreams = vec![("web", members(i)), ("alt", members(i + 2))];
        if (i / 4).is_multiple_of(2) {
            upstreams.push(("spare", vec![b[2].server()]));
        }
        config(i, straight(&[("shop.test", target)]), upstreams)
    };
    let p = start_default(make(0)).await;
    let load = Load::start(p.addr, "shop.test", 6);
    load.progress(100).await;
    for i in 1..=100 {
        p.proxy.update(make(i));
        assert_eq!(p.proxy.generation(), i);
        load.progress(10).await;
    }
    let (by_backend, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(by_backend.len(), 3, "{by_backend:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_is_ejected_then_used_again_once_back() {
    let b1 = Backend::spawn("b1", "127.0.0.2").await;
    let mut b2 = Backend::spawn("b2", "127.0.0.3").await;
    let b3 = Backend::spawn("b3", "127.0.0.4").await;
    let fail_timeout = |s: &mut Server| {
        s.max_fails = 2;
        s.fail_timeout_ms = 1000;
    };
    let servers = vec![
        with(b1.server(), fail_timeout),
        with(b2.server(), fail_timeout),
        with(b3.server(), fail_timeout),
    ];
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", servers)],
    ))
    .await;
    let load = Load::start(p.addr, "shop.test", 4);
    load.progress(200).await;

    b2.kill().await;
    let b2_addr = b2.addr.to_string();
    let b2_stats = |p: &Running| {
        p.proxy.stats()[0]
            .servers
            .iter()
            .find(|s| s.addr == b2_addr)
            .cloned()
            .unwrap()
    };
    eventually!(
        b2_stats(&p).ejected_for.is_some(),
        "b2 was never ejected: {:?}",
        b2_stats(&p)
    );
    assert!(b2_stats(&p).failures >= 2);
    load.progress(200).await;

    b2.restart().await;
    let before = b2.hits();
    eventually!(b2.hits() > before + 10, "b2 is not used again once back");
    assert_eq!(b2_stats(&p).ejected_for, None);

    let (_, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_retried_only_when_the_connection_was_never_made() {
    let alive = Backend::spawn("alive", "127.0.0.2").await;
    let dropper = Broken::spawn("127.0.0.3", false).await;
    let dead = refusing("127.0.0.4").await;
    // max_fails 0: the broken servers stay first in line for each upstream.
    let never = |s: &mut Server| s.max_fails = 0;
    let first_broken = |addr: SocketAddr| {
        vec![
            with(upstream_server(addr), never),
            with(alive.server(), never),
        ]
    };
    let p = start_default(config(
        1,
        straight(&[
            ("refused.test", "u1"),
            ("dropped.test", "u2"),
            ("dropped-get.test", "u3"),
        ]),
        vec![
            ("u1", first_broken(dead)),
            ("u2", first_broken(dropper.addr)),
            ("u3", first_broken(dropper.addr)),
        ],
    ))
    .await;
    let c = client();

    let a = send(&c, p.addr, "POST", "refused.test", "/", &[], "hello")
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "alive:hello"),
        "never connected: retried"
    );

    let a = send(&c, p.addr, "POST", "dropped.test", "/", &[], "again")
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);
    assert!(a.body.starts_with("upstream \"u2\": "), "{}", a.body);
    assert_eq!(dropper.requests(), 1);
    assert_eq!(
        *alive.seen.posts.lock().unwrap(),
        ["hello"],
        "a sent POST is not sent twice"
    );

    let a = get(&c, p.addr, "dropped-get.test", "/").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "alive"),
        "a GET moves on"
    );
    assert_eq!(dropper.requests(), 2);
}
