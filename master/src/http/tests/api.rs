//! The REST API and bethel's calls: auth, every endpoint, its refusals.

use super::*;

#[tokio::test]
async fn health_and_metrics_are_open_and_everything_else_needs_a_token() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let (status, body) = f.call("GET", "/health?node=web-1", None, None).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("online"))
    );
    let resp = f.app.clone().oneshot(get("/metrics", None)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    for uri in [
        "/api/v1/nodes",
        "/api/v1/nodes/web-1",
        "/api/v1/events",
        "/api/v1/jobs",
        "/api/v1/upstreams",
        "/api/v1/routes",
        "/++rest++nodestatus",
        "/silva/varnish_node_is_up/++rest++nodestatus",
    ] {
        let (status, code, body) = problem(&f, get(uri, None)).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{uri}: {body}"
        );
    }
    let (_, headers, _) = f.send(get("/api/v1/nodes", None)).await;
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("Basic"),
        "{headers:?}"
    );
}

#[tokio::test]
async fn bad_and_withdrawn_tokens_are_refused_at_once_and_audited_once() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let token = f.token("deploy", Role::Read).await;
    let (status, body) = f.call("GET", "/api/v1/nodes", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let id = token.split('.').next().unwrap();
    let wrong = format!("{id}.{}", "0".repeat(32));
    let from: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    for bad in [wrong.as_str(), "no-dot", "abc.def"] {
        let mut req = get("/api/v1/nodes", Some(bad));
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(from));
        let (status, code, body) = problem(&f, req).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid-token"),
            "{body}"
        );
        assert_eq!(
            body["detail"], "invalid API token",
            "the same words for every bad token"
        );
    }
    let (_, events) = f.call("GET", "/api/v1/events", Some(&token), None).await;
    let refused: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "denied")
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one event per source and minute: {events:#}"
    );
    assert!(
        refused[0]["detail"].as_str().unwrap().contains("192.0.2.7"),
        "{events:#}"
    );
    // A join token opens nothing here.
    let join = f
        .cluster
        .create_token(
            "admin",
            Some(Duration::from_secs(60)),
            None,
            Vec::new(),
            None,
        )
        .await
        .unwrap()
        .token;
    let (_, code, body) = problem(&f, get("/api/v1/nodes", Some(&join))).await;
    assert_eq!(code, "invalid-token");
    assert!(
        body["detail"].as_str().unwrap().contains("join token"),
        "{body}"
    );
    // Nor does an API token enroll a node.
    let (_, csr) = crate::pki::new_key_and_csr("intruder").unwrap();
    let outcome = f
        .cluster
        .join("intruder", &csr, Some(&token), None, &Default::default())
        .await;
    assert!(
        !matches!(
            outcome,
            Ok(crate::state::plan::JoinOutcome::Accepted { .. })
        ),
        "{outcome:?}"
    );

    // Deleted: refused on the very next request.
    f.cluster
        .delete_tokens(&[id.to_owned()], "admin")
        .await
        .unwrap();
    let (status, code, _) = problem(&f, get("/api/v1/nodes", Some(&token))).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid-token")
    );

    // Malformed headers are refused, with no event.
    for value in ["Token abc", "Basic !!!", "Bearer"] {
        let req = Request::get("/api/v1/nodes")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap();
        let (status, code, body) = problem(&f, req).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "malformed-credentials"),
            "{value}: {body}"
        );
    }
}

#[tokio::test]
async fn basic_auth_takes_the_token_as_its_password() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let token = f.token("fabric", Role::Read).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{token}"));
    let req = Request::get("/api/v1/nodes")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = f.send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["nodes"][0]["name"], "web-1");
}

#[tokio::test]
async fn nodes_are_read_whole_by_target_and_in_parts() {
    let f = fixture(&[
        ("web-1", "10.0.0.1"),
        ("web-2", "10.0.0.2"),
        ("db-1", "10.0.0.3"),
    ])
    .await;
    let token = f.token("reader", Role::Read).await;
    let (status, body) = f.call("GET", "/api/v1/nodes", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-1", "web-1", "web-2"]);

    let (status, body) = f
        .call(
            "GET",
            "/api/v1/nodes?target=web-*%20and%20not%20web-2",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(body["nodes"][0]["name"], "web-1");

    let (status, code, body) = problem(
        &f,
        get("/api/v1/nodes?target=web-1%20and%20(", Some(&token)),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid-target"),
        "{body}"
    );

    let (_, headers, body) = f.send(get("/api/v1/nodes/web-2", Some(&token))).await;
    assert_eq!(body["name"], "web-2");
    assert_eq!(body["state"], "online");
    assert_eq!(headers[header::ETAG], format!("\"{}\"", body["generation"]));
    for part in ["grains", "facts", "usage", "checks", "events"] {
        let (status, body) = f
            .call(
                "GET",
                &format!("/api/v1/nodes/web-2/{part}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{part}: {body}");
    }
    let (status, code, body) = problem(&f, get("/api/v1/nodes/nope", Some(&token))).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "unknown-node"),
        "{body}"
    );
    let (status, code, _) = problem(&f, get("/api/v1/nope", Some(&token))).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "no-such-endpoint")
    );
}

#[tokio::test]
async fn a_drain_is_idempotent_returns_the_node_and_names_the_tokens_holder() {
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let op = f.token("deploy-bot", Role::Operator).await;
    let body = json!({ "reason": "kernel upgrade" });
    for _ in 0..2 {
        let (status, node) = f
            .call(
                "PUT",
                "/api/v1/nodes/web-1/drain",
                Some(&op),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{node}");
        assert_eq!(node["state"], "drained");
        assert_eq!(node["offline"]["reason"], "kernel upgrade");
        assert_eq!(node["offline"]["by"], "deploy-bot");
    }
    assert_eq!(f.offline("web-1").as_deref(), Some("kernel upgrade"));
    let (_, events) = f.call("GET", "/api/v1/events", Some(&op), None).await;
    let drains: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("kernel upgrade")
        })
        .collect();
    assert_eq!(drains.len(), 1, "one change, one event: {events:#}");
    assert_eq!(drains[0]["by"], "deploy-bot");

    // Events resume after a sequence number.
    let last = events["last_seq"].as_u64().unwrap();
    let (_, later) = f
        .call(
            "GET",
            &format!("/api/v1/events?since={last}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(later["events"].as_array().unwrap().len(), 0, "{later}");

    for _ in 0..2 {
        let (status, node) = f
            .call("DELETE", "/api/v1/nodes/web-1/drain", Some(&op), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{node}");
        assert_eq!(node["state"], "online");
    }
    assert_eq!(f.offline("web-1"), None);
}

#[tokio::test]
async fn a_drain_that_waits_returns_once_the_agent_has_applied_it() {
    let mut f = fixture(&[("web-1", "10.0.0.1")]).await;
    let op = f.token("deploy", Role::Operator).await;
    let handle = f._sessions.remove(0);
    let cluster = f.cluster.clone();
    let acking = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // The agent: acknowledges whatever it is sent, while `acking`.
    let agent = {
        let acking = acking.clone();
        tokio::spawn(async move {
            let mut changes = cluster.changes();
            loop {
                if acking.load(std::sync::atomic::Ordering::SeqCst) {
                    let generation = cluster.generation();
                    let ack = Ack {
                        generation,
                        health: HealthStatus::Offline,
                        cache_error: None,
                    };
                    cluster.acknowledge(&handle, ack).await;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let (status, node) = f
        .call(
            "PUT",
            "/api/v1/nodes/web-1/drain?wait=out&timeout=10s",
            Some(&op),
            Some(json!({ "reason": "deploy" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");
    assert!(node["waited_ms"].is_u64(), "{node}");
    acking.store(false, std::sync::atomic::Ordering::SeqCst);

    // Nobody acknowledges an undrain: the wait times out, the change stands.
    let (status, code, body) = problem(
        &f,
        Request::delete("/api/v1/nodes/web-1/drain?wait=in&timeout=200ms")
            .header(header::AUTHORIZATION, format!("Bearer {op}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "wait-timed-out"),
        "{body}"
    );
    assert_eq!(f.offline("web-1"), None);

    for (uri, code) in [
        ("/api/v1/nodes/web-1/drain?wait=in", "invalid-wait"),
        (
            "/api/v1/nodes/web-1/drain?wait=out&timeout=soon",
            "invalid-timeout",
        ),
        (
            "/api/v1/nodes/web-1/drain?wait=out&timeout=2h",
            "invalid-timeout",
        ),
    ] {
        let (status, got, body) = problem(&f, put_json(uri, &op, r#"{"reason": "x"}"#)).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{uri}: {body}"
        );
    }
    assert_eq!(f.offline("web-1"), None, "nothing changed");
    agent.abort();
}

#[tokio::test]
async fn bad_drains_are_precise_problems_and_change_nothing() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let op = f.token("deploy", Role::Operator).await;
    let uri = "/api/v1/nodes/web-1/drain";
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            put_json(uri, &op, "{not json"),
            StatusCode::BAD_REQUEST,
            "bad-json",
        ),
        (
            put_json(uri, &op, "{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            put_json(uri, &op, r#"{"reason": 7}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            put_json(uri, &op, r#"{"reason": "x", "colour": 1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        ),
        (
            put_json(uri, &op, r#"{"reason": "  "}"#),
            StatusCode::BAD_REQUEST,
            "reason-required",
        ),
        (
            put_json(uri, &op, r#"{"reason": "two\nlines"}"#),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            put_json(uri, &op, &json!({ "reason": "x".repeat(5000) }).to_string()),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            put_json(
                uri,
                &op,
                &json!({ "reason": "x".repeat(300 * 1024) }).to_string(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
        ),
        (
            put_json("/api/v1/nodes/nope/drain", &op, r#"{"reason": "x"}"#),
            StatusCode::NOT_FOUND,
            "unknown-node",
        ),
        (
            Request::put(uri)
                .header(header::AUTHORIZATION, format!("Bearer {op}"))
                .body(Body::from(r#"{"reason": "x"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-json",
        ),
    ];
    for (req, status, code) in cases {
        let (got, got_code, body) = problem(&f, req).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{body}");
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    assert_eq!(f.offline("web-1"), None, "nothing changed");
    let (_, body) = f.call("GET", "/api/v1/nodes/web-1", Some(&op), None).await;
    assert_eq!(body["state"], "online");
}

#[tokio::test]
async fn a_stale_if_match_gets_412_and_a_fresh_one_goes_through() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let op = f.token("deploy", Role::Operator).await;
    let (_, headers, _) = f.send(get("/api/v1/nodes/web-1", Some(&op))).await;
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    // Someone else drains and undrains meanwhile.
    f.call(
        "PUT",
        "/api/v1/nodes/web-1/drain",
        Some(&op),
        Some(json!({"reason": "a"})),
    )
    .await;
    f.call("DELETE", "/api/v1/nodes/web-1/drain", Some(&op), None)
        .await;

    let mut req = put_json("/api/v1/nodes/web-1/drain", &op, r#"{"reason": "b"}"#);
    req.headers_mut()
        .insert(header::IF_MATCH, etag.parse().unwrap());
    let (status, code, body) = problem(&f, req).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PRECONDITION_FAILED, "stale"),
        "{body}"
    );
    assert_eq!(f.offline("web-1"), None);

    let (_, headers, _) = f.send(get("/api/v1/nodes/web-1", Some(&op))).await;
    let mut req = put_json("/api/v1/nodes/web-1/drain", &op, r#"{"reason": "b"}"#);
    req.headers_mut()
        .insert(header::IF_MATCH, headers[header::ETAG].clone());
    let (status, _, body) = f.send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(f.offline("web-1").as_deref(), Some("b"));
}

#[tokio::test]
async fn roles_are_enforced_and_refusals_audited() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let reader = f.token("watcher", Role::Read).await;
    let op = f.token("deploy", Role::Operator).await;
    let (status, code, body) = problem(
        &f,
        put_json("/api/v1/nodes/web-1/drain", &reader, r#"{"reason": "x"}"#),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("watcher may only read"),
        "{body}"
    );
    assert_eq!(f.offline("web-1"), None);

    let upstream = json!({ "role": { "role": "web", "port": 8080, "weight": 1, "max_fails": 1, "fail_timeout_ms": 10000 } });
    let (status, code, _) = problem(
        &f,
        put_json("/api/v1/upstreams/web", &op, &upstream.to_string()),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (_, events) = f.call("GET", "/api/v1/events", Some(&reader), None).await;
    let denied: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "denied")
        .collect();
    assert_eq!(denied.len(), 2, "{events:#}");
    assert_eq!(denied[0]["by"], "watcher");
    assert_eq!(denied[1]["by"], "deploy");
}

#[tokio::test]
async fn upstreams_and_routes_are_read_written_by_admins_and_tested() {
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let admin = f.token("root", Role::Admin).await;
    let upstream = serde_json::to_value(role("web", 8080)).unwrap();
    let (status, body) = f
        .call("PUT", "/api/v1/upstreams/web", Some(&admin), Some(upstream))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["servers"].as_array().unwrap().len(), 2, "{body}");
    let chain = serde_json::to_value(to("web")).unwrap();
    let (status, body) = f
        .call(
            "PUT",
            "/api/v1/routes/example.com",
            Some(&admin),
            Some(chain),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, body) = f.call("GET", "/api/v1/upstreams", Some(&admin), None).await;
    assert!(body["upstreams"]["web"]["source"].is_object(), "{body}");
    let (_, body) = f
        .call("GET", "/api/v1/routes/example.com", Some(&admin), None)
        .await;
    assert!(body["chain"].is_object(), "{body}");

    let (status, body) = f
        .call(
            "POST",
            "/api/v1/route-test",
            Some(&admin),
            Some(json!({ "host": "example.com", "path": "/x" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["status"].as_u64(), body["upstream"].as_str()),
        (Some(200), Some("web")),
        "{body}"
    );
    let (_, body) = f
        .call(
            "POST",
            "/api/v1/route-test",
            Some(&admin),
            Some(json!({ "host": "other.org" })),
        )
        .await;
    assert_eq!(body["status"], 404, "{body}");

    // A route to an upstream that does not exist: refused whole.
    let (status, code, body) = problem(
        &f,
        put_json(
            "/api/v1/routes/b.example",
            &admin,
            &serde_json::to_value(to("nope")).unwrap().to_string(),
        ),
    )
    .await;
    assert_eq!(status.as_u16() / 100, 4, "{body}");
    assert!(!code.is_empty());
    // In use: not removed.
    let (status, code, _) = problem(
        &f,
        Request::delete("/api/v1/upstreams/web")
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "in-use"));
    // A stale version.
    let mut req = put_json(
        "/api/v1/upstreams/web",
        &admin,
        &serde_json::to_value(role("web", 9090)).unwrap().to_string(),
    );
    req.headers_mut()
        .insert(header::IF_MATCH, "\"0\"".parse().unwrap());
    let (status, code, _) = problem(&f, req).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PRECONDITION_FAILED, "stale")
    );
}

#[tokio::test]
async fn bethel_nodestatus_and_setstatus_at_any_path() {
    let f = fixture(&[("node1", "10.0.0.1"), ("node2", "10.0.0.2")]).await;
    let op = f.token("fabric", Role::Operator).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("rest:{op}"));
    let form = |change: &str| {
        let body = format!(
            "change={}&skip-bethel-auth=1",
            change
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        );
        Request::post("/silva/varnish_node_is_up/++rest++setstatus")
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _, body) = f.send(form(r#"{"node1": {"status": "offline"}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["node1"]["status"], "offline");
    assert_eq!(body["node2"]["status"], "online");
    assert!(f.offline("node1").is_some());

    let req = Request::get("/++rest++nodestatus")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::empty())
        .unwrap();
    let (_, _, body) = f.send(req).await;
    assert_eq!(body["node1"]["status"], "offline", "{body}");

    // An unknown node or status: refused whole.
    for change in [
        r#"{"node2": {"status": "offline"}, "ghost": {"status": "offline"}}"#,
        r#"{"node2": {"status": "sleepy"}}"#,
        "not json",
    ] {
        let (status, _, body) = problem(&f, form(change)).await;
        assert_eq!(status.as_u16() / 100, 4, "{change}: {body}");
    }
    assert_eq!(f.offline("node2"), None);
    let (_, _, body) = f.send(form(r#"{"node1": {"status": "online"}}"#)).await;
    assert_eq!(body["node1"]["status"], "online");
}
