//! The reverse proxy end to end: real backends on 127.0.0.2–4 that answer
//! with their name and a keep-alive client — routing, weights, timeouts,
//! idle connections, health on the traffic port, shutdown (changes under
//! load are in `proxy_changes.rs`). Every wait is on a condition with a
//! bounded patience.

#![allow(dead_code)] // not every shared helper is used here

include!("support/proxy.rs");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_with_404_403_rewrite_and_forwarded_headers() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let domains = serde_json::json!({
        "shop.test": {
            "init": "api",
            "rules": {
                "api": {"type": "path", "args": {"pattern": "/api", "rewrite": true, "succ": "to", "fail": "curl"}},
                "curl": {"type": "ua", "args": {"pattern": "^curl/", "succ": "to"}},
                "to": {"type": "backend", "args": {"servername": "web"}}
            }
        }
    });
    let p = start_default(config(1, domains, vec![("web", vec![web.server()])])).await;
    let c = client();

    let a = send(
        &c,
        p.addr,
        "GET",
        "shop.test",
        "/api/items?x=1",
        &[
            ("x-forwarded-for", "10.1.2.3"),
            ("connection", "x-drop"),
            ("x-drop", "1"),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "web"));
    assert_eq!(
        a.header("x-seen-uri"),
        "/items?x=1",
        "rewritten, query kept"
    );
    assert_eq!(a.header("x-seen-xff"), "10.1.2.3, 127.0.0.1");
    assert_eq!(a.header("x-seen-proto"), "http");
    assert_eq!(a.header("x-seen-host"), "shop.test");
    assert_eq!(a.header("x-seen-xfh"), "shop.test");
    assert_eq!(
        a.header("x-seen-drop"),
        "",
        "named in Connection: hop-by-hop"
    );

    let a = send(
        &c,
        p.addr,
        "GET",
        "SHOP.test:8080",
        "/other",
        &[("user-agent", "curl/8.5")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-seen-uri"), "/other");
    assert_eq!(
        a.header("x-seen-host"),
        "SHOP.test:8080",
        "Host passed on as sent"
    );
    assert_eq!(a.header("x-seen-xff"), "127.0.0.1");

    let a = send(
        &c,
        p.addr,
        "GET",
        "shop.test",
        "/other",
        &[("user-agent", "Mozilla/5.0")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("\"curl\""), "{}", a.body);

    let a = get(&c, p.addr, "nope.test", "/").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "no route for host \"nope.test\"\n");
    assert_eq!(web.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_follows_weights() {
    let a = Backend::spawn("a", "127.0.0.2").await;
    let b = Backend::spawn("b", "127.0.0.3").await;
    let cc = Backend::spawn("c", "127.0.0.4").await;
    let servers = vec![with(a.server(), |s| s.weight = 5), b.server(), cc.server()];
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", servers)],
    ))
    .await;
    let c = client();
    let mut seq = Vec::new();
    for _ in 0..70 {
        seq.push(get(&c, p.addr, "shop.test", "/").await.body);
    }
    assert_eq!(
        seq[..7].join(" "),
        "a a b a c a a",
        "nginx's smooth sequence"
    );
    let count = |n: &str| seq.iter().filter(|s| *s == n).count();
    assert_eq!((count("a"), count("b"), count("c")), (50, 10, 10));
    for backend in [&a, &b, &cc] {
        let conns = backend.seen.conns.load(Ordering::SeqCst);
        assert!(
            conns <= 2,
            "{}: {conns} connections for sequential requests; kept-alive ones are reused (one pool per worker, two workers)",
            backend.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_backend_connections_are_closed() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let timeouts = Timeouts {
        idle: Duration::from_millis(200),
        ..Timeouts::default()
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web")]),
            vec![("web", vec![web.server()])],
        ),
        None,
        timeouts,
    )
    .await;
    let c = client();
    assert_eq!(get(&c, p.addr, "shop.test", "/").await.body, "web");
    eventually!(
        web.seen.closed.load(Ordering::SeqCst) == 1,
        "the idle backend connection is still open"
    );
    assert_eq!(get(&c, p.addr, "shop.test", "/").await.body, "web");
    assert_eq!(web.seen.conns.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_connections_are_closed_waiting_ones_are_not() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let silent = Broken::spawn("127.0.0.3", true).await;
    let timeouts = Timeouts {
        client_idle: Duration::from_millis(200),
        response_head: Duration::from_millis(1000),
        ..Timeouts::default()
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web"), ("silent.test", "silent")]),
            vec![
                ("web", vec![web.server()]),
                ("silent", vec![upstream_server(silent.addr)]),
            ],
        ),
        None,
        timeouts,
    )
    .await;

    // Silent, and then half a request head: closed either way.
    for sent in [&b""[..], b"GET / HTTP/1.1\r\nHost: shop"] {
        let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, sent)
            .await
            .unwrap();
        let mut buf = [0; 64];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("an idle connection is closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }

    // Waiting for a response head longer than client_idle is not idling.
    let a = get(&client(), p.addr, "silent.test", "/").await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);

    // A response body that stalls for client_idle is cut, as nginx's
    // proxy_read_timeout / send_timeout would.
    let req = Request::builder()
        .uri(format!("http://{}/hold", p.addr))
        .header("host", "shop.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let held = client().request(req).await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let cut = tokio::time::timeout(PATIENCE, held.into_body().collect())
        .await
        .expect("a stalled body is cut");
    assert!(cut.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_head_in_time_is_a_504() {
    let silent = Broken::spawn("127.0.0.3", true).await;
    let timeouts = Timeouts {
        response_head: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web")]),
            vec![("web", vec![upstream_server(silent.addr)])],
        ),
        None,
        timeouts,
    )
    .await;
    let a = get(&client(), p.addr, "shop.test", "/").await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    assert_eq!(
        a.body,
        format!(
            "upstream \"web\": {}: no response head within 300ms\n",
            silent.addr
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_upstream_is_a_502_naming_it() {
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", vec![])],
    ))
    .await;
    let a = get(&client(), p.addr, "shop.test", "/").await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.body, "no server available in upstream \"web\"\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_answered_on_the_traffic_port() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let health = HealthEndpoint {
        path: "/health".into(),
        answer: Arc::new(|node: Option<&str>| match node {
            None | Some("lb-1") => (
                StatusCode::OK,
                r#"{"status":"online","node":"lb-1"}"#.into(),
            ),
            Some(other) => (
                StatusCode::NOT_FOUND,
                format!(r#"{{"error":"not {other}"}}"#),
            ),
        }),
    };
    let p = start(
        config(
            1,
            straight(&[("shop.test", "web")]),
            vec![("web", vec![web.server()])],
        ),
        Some(health),
        Timeouts::default(),
    )
    .await;
    let c = client();
    for host in ["shop.test", "unknown.test"] {
        let a = get(&c, p.addr, host, "/health").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, r#"{"status":"online","node":"lb-1"}"#);
        assert_eq!(a.header("content-type"), "application/json");
    }
    let a = get(&c, p.addr, "shop.test", "/health?node=lb-1").await;
    assert_eq!(a.status, StatusCode::OK);
    let a = get(&c, p.addr, "shop.test", "/health?node=web-9").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::NOT_FOUND, r#"{"error":"not web-9"}"#)
    );
    assert_eq!(get(&c, p.addr, "shop.test", "/healthz").await.body, "web");
    assert_eq!(web.hits(), 1, "only /healthz went upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish() {
    let web = Backend::spawn("web", "127.0.0.2").await;
    let p = start_default(config(
        1,
        straight(&[("shop.test", "web")]),
        vec![("web", vec![web.server()])],
    ))
    .await;
    let req = Request::builder()
        .uri(format!("http://{}/hold", p.addr))
        .header("host", "shop.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let held = client().request(req).await.unwrap();
    p.shutdown.cancel();
    eventually!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "the listener is still open after shutdown"
    );
    assert!(
        !p.task.is_finished(),
        "serve waits for the request in flight"
    );
    web.release();
    let body = held.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"released");
    tokio::time::timeout(PATIENCE, p.task)
        .await
        .expect("serve returns")
        .unwrap();
}
