//! Walks down rule chains: each rule type matching and not, rewrites, 403s.

use super::*;

const HOST: &str = "example.com";

/// `kind` rule `r` with `args`, going on to `yes` (upstream1) when it
/// matches and to `no` (upstream2) when it does not.
fn filter(kind: &str, args: Value) -> RouteTable {
    let mut args = args;
    args["succ"] = json!("yes");
    args["fail"] = json!("no");
    chain(json!({
        "init": "r",
        "rules": {
            "r": {"type": kind, "args": args},
            "yes": backend("upstream1"),
            "no": backend("upstream2"),
        }
    }))
}

#[test]
fn readme_example() {
    let t = chain(readme());
    let cases = [
        (
            get("/blog/x").ua("HTTPie/0.9.9"),
            "r1 (ua: match) → r4 (path: match) → r2 → backend upstream1",
        ),
        (
            get("/blog/x").ua("curl/8.5.0"),
            "r1 (ua: no match) → r3 → backend upstream2",
        ),
        (
            get("/about").ua("HTTPie/0.9.9"),
            "r1 (ua: match) → r4 (path: no match) → r3 → backend upstream2",
        ),
    ];
    for (req, expected) in &cases {
        check(&t, HOST, req, expected);
    }
}

#[test]
fn ua_is_searched_lower_cased() {
    let t = filter("ua", json!({"pattern": "httpie"}));
    check(
        &t,
        HOST,
        &get("/").ua("HTTPie/3.2"),
        "r (ua: match) → yes → backend upstream1",
    );
    check(
        &t,
        HOST,
        &get("/").ua("python-httpie"),
        "r (ua: match) → yes → backend upstream1",
    );
    check(
        &t,
        HOST,
        &get("/").ua("curl/8.5.0"),
        "r (ua: no match) → no → backend upstream2",
    );
    check(
        &t,
        HOST,
        &get("/"),
        "r (ua: no match) → no → backend upstream2",
    );

    // The pattern is not lower-cased: upper-case letters in it never match.
    let t = filter("ua", json!({"pattern": "HTTPie"}));
    check(
        &t,
        HOST,
        &get("/").ua("HTTPie/3.2"),
        "r (ua: no match) → no → backend upstream2",
    );
}

#[test]
fn path_prefix() {
    let t = filter("path", json!({"pattern": "/blog"}));
    check(
        &t,
        HOST,
        &get("/blog"),
        "r (path: match) → yes → backend upstream1",
    );
    check(
        &t,
        HOST,
        &get("/blog/x"),
        "r (path: match) → yes → backend upstream1",
    );
    check(
        &t,
        HOST,
        &get("/blogs"),
        "r (path: match) → yes → backend upstream1",
    );
    check(
        &t,
        HOST,
        &get("/blo"),
        "r (path: no match) → no → backend upstream2",
    );
    check(
        &t,
        HOST,
        &get("/about/blog"),
        "r (path: no match) → no → backend upstream2",
    );

    // The empty prefix matches every path.
    let t = filter("path", json!({"pattern": ""}));
    check(
        &t,
        HOST,
        &get("/anything"),
        "r (path: match) → yes → backend upstream1",
    );
}

#[test]
fn path_regex_is_searched() {
    let t = filter("path", json!({"regex": true, "pattern": "\\.(png|jpg)$"}));
    check(
        &t,
        HOST,
        &get("/img/a.png"),
        "r (path: match) → yes → backend upstream1",
    );
    check(
        &t,
        HOST,
        &get("/a.jpg"),
        "r (path: match) → yes → backend upstream1",
    );
    check(
        &t,
        HOST,
        &get("/a.png.html"),
        "r (path: no match) → no → backend upstream2",
    );
}

#[test]
fn path_rewrite_with_a_regex_takes_the_first_capture() {
    let t = filter(
        "path",
        json!({"regex": true, "rewrite": true, "pattern": "^/api(/.*)?$"}),
    );
    let rewritten =
        |path| format!("r (path: match, rewritten) → yes → backend upstream1, path {path}");
    check(&t, HOST, &get("/api/users"), &rewritten("/users"));
    // The group takes no part: the path is `/`.
    check(&t, HOST, &get("/api"), &rewritten("/"));
    check(
        &t,
        HOST,
        &get("/apis"),
        "r (path: no match) → no → backend upstream2",
    );

    // A capture without a leading `/` gains one.
    let t = filter(
        "path",
        json!({"regex": true, "rewrite": true, "pattern": "^/v1/(\\S+)$"}),
    );
    check(&t, HOST, &get("/v1/users/7"), &rewritten("/users/7"));
}

#[test]
fn path_rewrite_with_a_prefix_takes_the_rest() {
    let t = filter("path", json!({"rewrite": true, "pattern": "/static"}));
    let rewritten =
        |path| format!("r (path: match, rewritten) → yes → backend upstream1, path {path}");
    check(&t, HOST, &get("/static/app.js"), &rewritten("/app.js"));
    check(&t, HOST, &get("/static"), &rewritten("/"));
    check(&t, HOST, &get("/staticfile"), &rewritten("/file"));
    check(
        &t,
        HOST,
        &get("/about"),
        "r (path: no match) → no → backend upstream2",
    );
}

#[test]
fn rewrites_accumulate() {
    let t = chain(json!({
        "init": "api",
        "rules": {
            "api": {"type": "path", "args": {"pattern": "/api", "rewrite": true, "succ": "v2", "fail": "other"}},
            "v2": {"type": "path", "args": {"regex": true, "pattern": "^/v2(/.*)$", "rewrite": true, "succ": "new", "fail": "old"}},
            "new": backend("upstream1"),
            "old": backend("upstream2"),
            "other": backend("upstream2"),
        }
    }));
    // `v2` sees the path `api` rewrote.
    check(
        &t,
        HOST,
        &get("/api/v2/users"),
        "api (path: match, rewritten) → v2 (path: match, rewritten) → new → backend upstream1, path /users",
    );
    // A rewrite stays when a later rule does not match.
    check(
        &t,
        HOST,
        &get("/api/v1/users"),
        "api (path: match, rewritten) → v2 (path: no match) → old → backend upstream2, path /v1/users",
    );
    check(
        &t,
        HOST,
        &get("/v2/users"),
        "api (path: no match) → other → backend upstream2",
    );
}

#[test]
fn outcome_carries_the_path_only_when_rewritten() {
    let t = filter("path", json!({"rewrite": true, "pattern": "/static"}));
    let outcome = |path| route(&t, HOST, &get(path)).unwrap().outcome;
    assert_eq!(
        outcome("/static/a.css"),
        Outcome::Backend {
            upstream: "upstream1".into(),
            path: Some("/a.css".into()),
        }
    );
    assert_eq!(
        outcome("/index.html"),
        Outcome::Backend {
            upstream: "upstream2".into(),
            path: None,
        }
    );
}

#[test]
fn header() {
    let t = filter(
        "header",
        json!({"name": "X-Canary", "pattern": "^(yes|1)$"}),
    );
    let yes = "r (header: match) → yes → backend upstream1";
    let no = "r (header: no match) → no → backend upstream2";
    check(&t, HOST, &get("/").header("x-canary", "yes"), yes);
    check(&t, HOST, &get("/").header("X-CANARY", "1"), yes);
    check(&t, HOST, &get("/").header("x-canary", "no"), no);
    check(&t, HOST, &get("/").header("x-other", "yes"), no);
    check(&t, HOST, &get("/"), no);
    // Any of a repeated header's values.
    check(
        &t,
        HOST,
        &get("/").header("x-canary", "no").header("x-canary", "yes"),
        yes,
    );
}

#[test]
fn missing_next_rule_is_forbidden() {
    let t = chain(json!({
        "init": "r",
        "rules": {
            "r": {"type": "ua", "args": {"pattern": "curl", "succ": "s"}},
            "s": {"type": "path", "args": {"pattern": "/admin", "fail": "b"}},
            "b": backend("upstream1"),
        }
    }));
    check(
        &t,
        HOST,
        &get("/").ua("Firefox"),
        r#"r (ua: no match) → 403: rule r has no "fail""#,
    );
    check(
        &t,
        HOST,
        &get("/admin").ua("curl/8"),
        r#"r (ua: match) → s (path: match) → 403: rule s has no "succ""#,
    );
    check(
        &t,
        HOST,
        &get("/").ua("curl/8"),
        "r (ua: match) → s (path: no match) → b → backend upstream1",
    );

    let decision = route(&t, HOST, &get("/admin").ua("curl/8")).unwrap();
    assert_eq!(
        decision,
        Decision {
            trace: vec!["r".into(), "s".into()],
            steps: vec![
                Step::Ua { matched: true },
                Step::Path {
                    matched: true,
                    rewrote: false
                },
            ],
            outcome: Outcome::Forbidden { rule: "s".into() },
        }
    );
}

#[test]
fn trace_names_every_rule_in_order() {
    let t = chain(readme());
    let decision = route(&t, HOST, &get("/blog/post").ua("HTTPie/3.2")).unwrap();
    assert_eq!(decision.trace, ["r1", "r4", "r2"]);
    assert_eq!(
        decision.steps,
        [
            Step::Ua { matched: true },
            Step::Path {
                matched: true,
                rewrote: false
            },
            Step::Backend,
        ]
    );
}
