//! The dashboard: sessions, CSRF, the preview's refusal, roles, gzip, a
//! running job's live output.

use super::*;

/// Logs in with `token`: the session cookie.
async fn dashboard_login(f: &Fixture, token: &str) -> String {
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}&next=/")))
        .unwrap();
    let (status, headers, _) = f.send(req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_owned()
}

fn page(uri: &str, cookie: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, cookie)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

fn form(uri: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// The CSRF token a page carries.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_dashboard_needs_a_login_and_a_deleted_token_ends_the_session() {
    let f = fixture(&[("web-1", "10.0.0.1")]).await;
    let (status, headers, _) = f.send(page("/", "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login?next=/");
    // A bad token: the form again, saying why.
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=abc.def"))
        .unwrap();
    let (status, _, body) = f.send(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body.as_str().unwrap().contains("invalid API token"),
        "{body}"
    );

    let token = f.token("olga", Role::Operator).await;
    let cookie = dashboard_login(&f, &token).await;
    assert!(
        !cookie.contains(token.split('.').nth(1).unwrap()),
        "no secret in the cookie"
    );
    let (status, _, body) = f.send(page("/", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let html = body.as_str().unwrap();
    assert!(
        html.contains("id=\"node-web-1\"") && html.contains("olga"),
        "{html}"
    );
    for uri in [
        "/nodes/web-1",
        "/events",
        "/jobs",
        "/rollouts",
        "/balancing",
    ] {
        let (status, _, body) = f.send(page(uri, &cookie)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    // A forged cookie opens nothing.
    let forged = cookie.replacen(token.split('.').next().unwrap(), "000000", 1);
    assert_eq!(f.send(page("/", &forged)).await.0, StatusCode::SEE_OTHER);

    f.cluster
        .delete_tokens(&[token.split('.').next().unwrap().to_owned()], "admin")
        .await
        .unwrap();
    let (status, headers, _) = f.send(page("/", &cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "refused at once");
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let live = Request::get("/live?view=nodes")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let (status, code, _) = problem(&f, live).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
}

#[tokio::test]
async fn dashboard_forms_need_their_csrf_token_and_this_site() {
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let token = f.token("olga", Role::Operator).await;
    let cookie = dashboard_login(&f, &token).await;
    let (_, _, body) = f.send(page("/", &cookie)).await;
    let csrf = csrf_of(body.as_str().unwrap());
    let drain = |csrf: &str| format!("csrf={csrf}&node=web-1&action=drain&reason=r&fragment=1");

    let (status, code, _) = problem(&f, form("/nodes/apply", &cookie, &drain("nope"))).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "csrf"));
    let (status, code, _) = problem(
        &f,
        form("/nodes/apply", &cookie, "node=web-1&action=drain&reason=r"),
    )
    .await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "csrf"));
    // Another site's form, even with the right token.
    let mut req = form("/nodes/apply", &cookie, &drain(&csrf));
    req.headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    req.headers_mut()
        .insert(header::HOST, "127.0.0.1:7441".parse().unwrap());
    let (status, code, _) = problem(&f, req).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "cross-site")
    );
    let mut req = form("/nodes/apply", &cookie, &drain(&csrf));
    req.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let (status, code, _) = problem(&f, req).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "cross-site")
    );
    // A browser's navigation gets a page, not problem JSON.
    let mut req = form("/nodes/apply", &cookie, &drain("nope"));
    req.headers_mut()
        .insert(header::ACCEPT, "text/html".parse().unwrap());
    let (status, headers, body) = f.send(req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(body.as_str().unwrap().contains("CSRF"), "{body}");
    assert_eq!(f.offline("web-1"), None, "nothing changed");

    let (status, _, body) = f.send(form("/nodes/apply", &cookie, &drain(&csrf))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(f.offline("web-1").as_deref(), Some("r"));
    let n = f.cluster.nodes(&["web-1".into()]).unwrap().remove(0);
    assert_eq!(n.node.offline.unwrap().by, "olga");
}

#[tokio::test]
async fn the_preview_counts_each_role_and_the_last_online_node_needs_an_override() {
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let token = f.token("olga", Role::Operator).await;
    let cookie = dashboard_login(&f, &token).await;
    let (_, _, body) = f.send(page("/", &cookie)).await;
    let csrf = csrf_of(body.as_str().unwrap());
    let both = format!("csrf={csrf}&node=web-1&node=web-2&action=drain&reason=r&fragment=1");

    let (status, _, body) = f.send(form("/nodes/preview", &cookie, &both)).await;
    assert_eq!(status, StatusCode::OK);
    let html = body.as_str().unwrap();
    assert!(
        html.contains("<th scope=\"row\">web</th><td>2</td><td>0</td>"),
        "{html}"
    );
    assert!(
        html.contains("last online node of <strong>web</strong>"),
        "{html}"
    );
    assert!(
        html.contains("clusterctl drain web-1 web-2 --reason r"),
        "{html}"
    );
    assert!(html.contains("/api/v1/nodes/$n/drain"), "{html}");

    let (status, _, body) = f.send(form("/nodes/apply", &cookie, &both)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        (f.offline("web-1"), f.offline("web-2")),
        (None, None),
        "nothing changed"
    );
    let (status, _, body) = f
        .send(form(
            "/nodes/apply",
            &cookie,
            &format!("{both}&allow_last=1"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(f.offline("web-1").is_some() && f.offline("web-2").is_some());

    // No reason, no node: precise refusals.
    for (body, code) in [
        (
            format!("csrf={csrf}&node=web-1&action=drain&reason=&fragment=1"),
            "reason-required",
        ),
        (format!("csrf={csrf}&action=drain&reason=r"), "no-nodes"),
        (
            format!("csrf={csrf}&node=ghost&action=drain&reason=r"),
            "unknown-node",
        ),
    ] {
        let (status, got, _) = problem(&f, form("/nodes/preview", &cookie, &body)).await;
        assert_eq!((status.as_u16() / 100, got.as_str()), (4, code), "{body}");
    }
}

#[tokio::test]
async fn a_read_token_sees_the_actions_disabled_and_is_refused_them() {
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let token = f.token("grafana", Role::Read).await;
    let cookie = dashboard_login(&f, &token).await;
    let (_, _, body) = f.send(page("/", &cookie)).await;
    let html = body.as_str().unwrap();
    assert!(html.contains("<fieldset disabled>"), "{html}");
    let csrf = csrf_of(html);
    let (status, code, body) = problem(
        &f,
        form(
            "/nodes/apply",
            &cookie,
            &format!("csrf={csrf}&node=web-1&action=drain&reason=r"),
        ),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    assert_eq!(f.offline("web-1"), None);
}

#[tokio::test]
async fn pages_are_gzipped_for_those_who_ask_and_the_live_stream_never_is() {
    let nodes: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                format!("web-{i:03}"),
                format!("10.0.{}.{}", i / 200, i % 200 + 1),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let f = fixture(&refs).await;
    let token = f.token("olga", Role::Read).await;
    let cookie = dashboard_login(&f, &token).await;
    let mut req = page("/", &cookie);
    req.headers_mut()
        .insert(header::ACCEPT_ENCODING, "gzip".parse().unwrap());
    let resp = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
    let zipped = resp.into_body().collect().await.unwrap().to_bytes().len();
    let (_, _, plain) = f.send(page("/", &cookie)).await;
    let plain = plain.as_str().unwrap().len();
    assert!(zipped * 5 < plain, "{zipped} bytes gzipped of {plain}");

    let live = Request::get("/live?view=nodes")
        .header(header::COOKIE, &cookie)
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let resp = f.app.clone().oneshot(live).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get(header::CONTENT_ENCODING).is_none(),
        "{:?}",
        resp.headers()
    );
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
}

/// The next message of an event stream: its kind, id and data.
async fn next_event(body: &mut Body, buf: &mut String) -> (String, String, String) {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let msg: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                msg.lines()
                    .filter_map(|l| l.strip_prefix(name))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            if msg.starts_with(':') {
                continue; // a keep-alive
            }
            return (field("event: "), field("id: "), field("data: "));
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a message within 5 s")
            .expect("the stream goes on")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buf.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

fn done(node: &str) -> cluster_model::JobNodeResult {
    cluster_model::JobNodeResult {
        node: node.into(),
        status: cluster_model::JobStatus::Ok,
        exit_code: 0,
        duration_ms: 12,
        error: String::new(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        truncated: false,
    }
}

#[tokio::test]
async fn a_running_jobs_page_shows_its_output_as_it_comes_and_resumes_without_loss() {
    use cluster_model::job::OutputStream::{Stderr, Stdout};
    let f = fixture(&[("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]).await;
    let token = f.token("olga", Role::Read).await;
    let cookie = dashboard_login(&f, &token).await;
    let id = "20261201000000000042";
    let record = cluster_model::JobRecord {
        id: id.into(),
        argv: vec!["./deploy.sh".into()],
        builtin: None,
        target: "web-*".into(),
        by: "olga".into(),
        started_ms: 1,
        finished_ms: 0,
        results: Vec::new(),
    };
    f.cluster.record_job(&record, None).await.unwrap();
    let live = Arc::new(crate::jobs::LiveJob::new(
        ["web-1".to_string(), "web-2".to_string()],
        64 * 1024,
    ));
    f.jobs.show(id, live.clone());
    live.started("web-1");
    live.output("web-1", Stdout, b"pulling\n");

    // The page shows what there is so far, and follows the job from there.
    let (_, _, body) = f.send(page(&format!("/jobs/{id}"), &cookie)).await;
    let html = body.as_str().unwrap();
    assert!(
        html.contains(&format!(
            "data-live=\"/live?view=job&amp;job={id}&amp;v=2\""
        )),
        "{html}"
    );
    let web1 = &html[html.find("id=\"jobnode-web-1\"").unwrap()..];
    assert!(
        web1.contains("running") && web1.contains("pulling\n"),
        "{web1}"
    );
    let web2 = &html[html.find("id=\"jobnode-web-2\"").unwrap()..];
    assert!(web2.contains("waiting"), "{web2}");

    let resp = f
        .app
        .clone()
        .oneshot(page(&format!("/live?view=job&job={id}&v=2"), &cookie))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut buf = String::new();
    // A node new to the stream comes whole; then only what it adds, a
    // character split across two chunks sent whole with the second.
    live.output("web-1", Stdout, "building ".as_bytes());
    let (kind, _, data) = next_event(&mut body, &mut buf).await;
    assert_eq!(kind, "output");
    let msg: Value = serde_json::from_str(&data).unwrap();
    let html = msg[0]["html"].as_str().unwrap();
    assert!(html.contains("pulling\nbuilding "), "{html}");
    let n = "ñ".as_bytes();
    live.output("web-1", Stdout, &[b"ma", &n[..1]].concat());
    let (_, _, data) = next_event(&mut body, &mut buf).await;
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap(),
        json!([{"node": "web-1", "out": "ma", "err": ""}])
    );
    live.output("web-1", Stdout, &[&n[1..], b"ana\n"].concat());
    live.output("web-1", Stderr, b"warning: <b>no</b>\n");
    let (_, id_at, data) = next_event(&mut body, &mut buf).await;
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap(),
        json!([{"node": "web-1", "out": "ñana\n", "err": "warning: <b>no</b>\n"}])
    );
    drop(body);

    // The stream broke; it resumes from its last id: what changed since
    // comes whole, nothing is lost, nothing sent twice.
    live.output("web-1", Stdout, b"done\n");
    live.finish(done("web-1"));
    live.started("web-2");
    let mut req = page(&format!("/live?view=job&job={id}&v=2"), &cookie);
    req.headers_mut()
        .insert("last-event-id", id_at.parse().unwrap());
    let resp = f.app.clone().oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    let (_, _, data) = next_event(&mut body, &mut buf).await;
    let msg: Value = serde_json::from_str(&data).unwrap();
    let nodes: Vec<&str> = msg
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["web-1", "web-2"], "{msg}");
    let web1 = msg[0]["html"].as_str().unwrap();
    assert!(
        web1.contains("badge ok") && web1.contains("exit 0"),
        "{web1}"
    );
    assert!(web1.contains("pulling\nbuilding mañana\ndone\n"), "{web1}");
    assert!(
        web1.contains("warning: &lt;b&gt;no&lt;/b&gt;"),
        "escaped: {web1}"
    );
    assert!(
        msg[1]["html"].as_str().unwrap().contains("running"),
        "{msg}"
    );

    // Once the record is stored the page reads it from there.
    let mut stored = record.clone();
    stored.results = live.results();
    stored.finished_ms = 2;
    f.cluster.record_job(&stored, None).await.unwrap();
    live.finished();
    f.jobs.unshow(id);
    let (kind, _, data) = next_event(&mut body, &mut buf).await;
    assert_eq!(kind, "refresh");
    assert!(!data.is_empty(), "a browser drops a message with no data");
    let (_, _, body) = f.send(page(&format!("/jobs/{id}"), &cookie)).await;
    let html = body.as_str().unwrap();
    assert!(html.contains("data-live=\"/live?view=records\""), "{html}");
    assert!(html.contains("pulling\nbuilding mañana\ndone\n"), "{html}");
}
