//! ELB's admin API through the router: `elb.py`'s calls with its shapes,
//! Basic credentials in the URL, every refusal in its place and nothing
//! changed.

use super::*;

/// `elb.py` sends its credentials as Basic, from the URL's user part.
fn elb(method: &str, path: &str, token: &str, body: Option<&str>) -> Request<Body> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{token}"));
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Basic {basic}"));
    match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap()
}

/// ELB's README example, as `RuleSet.dump()` writes it for example.com
/// (`PathRule.dump()` leaves its `regex` flag out).
const README: &str = r#"{"example.com": {"init": "r1", "rules": {
    "r1": {"type": "ua", "args": {"succ": "r4", "fail": "r3", "pattern": "httpie(\\S+)$"}},
    "r4": {"type": "path", "args": {"succ": "r2", "fail": "r3", "pattern": "^\\/blog\\/(\\S+)$"}},
    "r2": {"type": "backend", "args": {"servername": "up1"}},
    "r3": {"type": "backend", "args": {"servername": "up2"}}}}}"#;

const UPSTREAMS: &str = r#"{"up1": {"10.0.0.5:8088": "weight=10 max_fails=2"},
                           "up2": {"10.0.0.6:8088": "", "10.0.0.7:8088": "backup"}}"#;

#[tokio::test]
async fn elbs_calls_set_and_read_the_routes_in_elbs_shapes() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let admin = f.token("ops", Role::Admin).await;
    let (status, _, body) = f
        .send(elb("PUT", "/__erulb__/upstream", &admin, Some(UPSTREAMS)))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"msg": "OK"})));
    let (status, _, body) = f
        .send(elb("PUT", "/__erulb__/domain", &admin, Some(README)))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"msg": "OK"})));

    let (_, _, domains) = f.send(elb("GET", "/__erulb__/domain", &admin, None)).await;
    let sent: Value = serde_json::from_str(README).unwrap();
    assert_eq!(domains["example.com"]["init"], "r1");
    for rule in ["r1", "r2", "r3", "r4"] {
        for (k, v) in sent["example.com"]["rules"][rule]["args"]
            .as_object()
            .unwrap()
        {
            assert_eq!(
                &domains["example.com"]["rules"][rule]["args"][k], v,
                "{domains}"
            );
        }
    }
    let (_, _, ups) = f
        .send(elb("GET", "/__erulb__/upstream", &admin, None))
        .await;
    assert_eq!(
        ups,
        json!({
            "up1": {"10.0.0.5:8088": "weight=10 max_fails=2 fail_timeout=10s"},
            "up2": {"10.0.0.6:8088": "weight=1 max_fails=1 fail_timeout=10s",
                    "10.0.0.7:8088": "weight=1 max_fails=1 fail_timeout=10s backup"},
        })
    );
    // What GET answers, PUT takes back unchanged.
    let (status, _, _) = f
        .send(elb(
            "PUT",
            "/__erulb__/upstream",
            &admin,
            Some(&ups.to_string()),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The changes went through the one checked path, audited as the holder.
    let events = f.cluster.events(0, 100, None).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.by == "ops" && e.detail.starts_with("routes for example.com")),
        "{events:?}"
    );
    let b = f.cluster.balancing();
    assert_eq!(b.view.upstreams["up1"][0].server.weight, 10);

    let (status, _, body) = f.send(elb("PUT", "/__erulb__/dump", &admin, None)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"msg": "OK"})));
}

#[tokio::test]
async fn a_backend_may_name_an_address_and_down_servers_get_no_traffic() {
    let f = fixture(&[]).await;
    let admin = f.token("ops", Role::Admin).await;
    let up = r#"{"up1": {"10.0.0.5:8088": "", "10.0.0.6:8088": "down"}}"#;
    assert_eq!(
        f.send(elb("PUT", "/__erulb__/upstream", &admin, Some(up)))
            .await
            .0,
        StatusCode::OK
    );
    let direct = r#"{"direct.example.com": {"init": "b", "rules": {
        "b": {"type": "backend", "args": {"servername": "10.0.0.9:8080"}}}}}"#;
    assert_eq!(
        f.send(elb("PUT", "/__erulb__/domain", &admin, Some(direct)))
            .await
            .0,
        StatusCode::OK
    );
    let view = f.cluster.proxy_view();
    let addrs = |name: &str| -> Vec<String> {
        view.upstreams[name]
            .iter()
            .map(|s| s.server.addr.clone())
            .collect()
    };
    assert_eq!(addrs("10.0.0.9:8080"), ["10.0.0.9:8080"]);
    assert_eq!(
        addrs("up1"),
        ["10.0.0.5:8088"],
        "the down server is left out"
    );
    let (_, _, ups) = f
        .send(elb("GET", "/__erulb__/upstream", &admin, None))
        .await;
    assert_eq!(
        ups["up1"]["10.0.0.6:8088"],
        "weight=1 max_fails=1 fail_timeout=10s down"
    );
    assert!(
        ups.get("10.0.0.9:8080").is_none(),
        "an address is no upstream: {ups}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_in_its_place_and_changes_nothing() {
    let f = fixture(&[]).await;
    let admin = f.token("ops", Role::Admin).await;
    f.send(elb("PUT", "/__erulb__/upstream", &admin, Some(UPSTREAMS)))
        .await;
    f.send(elb("PUT", "/__erulb__/domain", &admin, Some(README)))
        .await;
    let before = f.cluster.balancing();
    let cases = [
        (
            "/__erulb__/domain",
            README.replace(
                r#""fail": "r3", "pattern": "httpie"#,
                r#""fail": "r9", "pattern": "httpie"#,
            ),
            r#"domain "example.com", rule "r1", field "fail": no rule "r9""#,
        ),
        (
            "/__erulb__/domain",
            README.replace(r#"httpie(\\S+)$"#, r#"httpie(\\S+$"#),
            r#"domain "example.com", rule "r1", field "pattern": invalid regex"#,
        ),
        (
            "/__erulb__/domain",
            README.replace(r#""servername": "up2""#, r#""servername": "up3""#),
            r#"domain "example.com", rule "r3", field "servername": unknown upstream "up3""#,
        ),
        (
            "/__erulb__/domain",
            r#"{"example.com": {"init": "r1", "rules": {"r1": {"type": "cookie", "args": {}}}}}"#
                .to_owned(),
            r#"domain "example.com", rule "r1", field "type": unknown rule type "cookie""#,
        ),
        (
            "/__erulb__/upstream",
            r#"{"up1": {"10.0.0.5:8088": "weight=ten"}}"#.to_owned(),
            r#"upstream "up1", server "10.0.0.5:8088": weight "ten" is not a number"#,
        ),
        (
            "/__erulb__/upstream",
            r#"{"up1": {"10.0.0.5": ""}}"#.to_owned(),
            r#"has no port"#,
        ),
    ];
    for (path, body, expected) in cases {
        let (status, code, problem) = problem(&f, elb("PUT", path, &admin, Some(&body))).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-balancing"),
            "{problem}"
        );
        assert!(
            problem["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str().unwrap().contains(expected)),
            "{expected}: {problem}"
        );
        assert_eq!(
            f.cluster.balancing().view.version,
            before.view.version,
            "nothing changed"
        );
    }
    let (status, code, _) = problem(
        &f,
        elb("PUT", "/__erulb__/domain", &admin, Some("{not json")),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-balancing")
    );
    let (status, code, _) = problem(
        &f,
        elb("DELETE", "/__erulb__/domain", &admin, Some(r#"{"a": 1}"#)),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "bad-json")
    );

    // An upstream a route uses stays, and says which.
    let (status, code, body) = problem(
        &f,
        elb(
            "DELETE",
            "/__erulb__/upstream",
            &admin,
            Some(r#"["up1", "up2"]"#),
        ),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "in-use"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(r#"domain "example.com" rule "r2" (up1)"#),
        "{body}"
    );
    assert_eq!(f.cluster.balancing().upstreams.len(), 2);

    // The domain goes (a domain with no rules is gone already, as in ELB),
    // then its upstreams.
    let (status, _, body) = f
        .send(elb(
            "DELETE",
            "/__erulb__/domain",
            &admin,
            Some(r#"["example.com", "never.org"]"#),
        ))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"msg": "OK"})));
    let (status, _, body) = f
        .send(elb(
            "DELETE",
            "/__erulb__/upstream",
            &admin,
            Some(r#"["up1", "up2", "nope"]"#),
        ))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"up1": true, "up2": true, "nope": 404})
        )
    );
    let b = f.cluster.balancing();
    assert!(b.routes.is_empty() && b.upstreams.is_empty());
}

#[tokio::test]
async fn reads_need_a_token_writes_an_admin_and_a_roles_upstream_is_not_overwritten() {
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let admin = f.token("ops", Role::Admin).await;
    let reader = f.token("grafana", Role::Read).await;
    let (status, code, _) = problem(&f, get("/__erulb__/domain", None)).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert_eq!(
        f.send(elb("GET", "/__erulb__/upstream", &reader, None))
            .await
            .0,
        StatusCode::OK
    );
    for (method, path) in [
        ("PUT", "/__erulb__/upstream"),
        ("PUT", "/__erulb__/domain"),
        ("DELETE", "/__erulb__/domain"),
        ("PUT", "/__erulb__/dump"),
    ] {
        let (status, code, _) = problem(&f, elb(method, path, &reader, Some("[]"))).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {path}"
        );
    }

    f.cluster
        .set_balancing(
            vec![("web".into(), role("web", 8080))],
            Vec::new(),
            Vec::new(),
            "admin",
        )
        .await
        .unwrap();
    let (_, _, ups) = f
        .send(elb("GET", "/__erulb__/upstream", &reader, None))
        .await;
    assert_eq!(
        ups["web"],
        json!({
            "10.0.0.1:8080": "weight=1 max_fails=1 fail_timeout=10s # role web: node web-1",
            "10.0.0.2:8080": "weight=1 max_fails=1 fail_timeout=10s # role web: node web-2",
        })
    );
    // Putting that back would freeze the role's nodes as a list: refused.
    let (status, code, body) = problem(
        &f,
        elb(
            "PUT",
            "/__erulb__/upstream",
            &admin,
            Some(&json!({"web": ups["web"]}).to_string()),
        ),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "role-upstream"),
        "{body}"
    );
    assert!(matches!(
        f.cluster.balancing().upstreams["web"],
        cluster_balancer::UpstreamSource::Role { .. }
    ));
}
