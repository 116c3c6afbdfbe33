//! Importing ELB's JSON: both upstream shapes, nginx parameters, and the
//! place named by every refusal.

use super::*;
use serde_json::json;

/// ELB's README domain example, as its API takes it.
const README_DOMAINS: &str = r#"{
  "example.com": {
    "init": "r1",
    "rules": {
      "r1": {"type": "ua", "args": {"pattern": "httpie(\\S+)$", "succ": "r4", "fail": "r3"}},
      "r2": {"type": "backend", "args": {"servername": "upstream1"}},
      "r3": {"type": "backend", "args": {"servername": "upstream2"}},
      "r4": {"type": "path", "args": {"regex": true, "pattern": "^\\/blog\\/(\\S+)$", "succ": "r2", "fail": "r3", "rewrite": false}}
    }
  }
}"#;

/// `json` is refused with exactly the `expected` domain errors, in order.
#[track_caller]
fn check_domain_errors(json: &str, expected: &[&str]) {
    let errors: Vec<String> = match parse_domains(json) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(errors, expected, "{json}");
}

/// `json` is refused with exactly the `expected` upstream errors, in order.
#[track_caller]
fn check_upstream_errors(json: &str, expected: &[&str]) {
    let errors: Vec<String> = match parse_upstreams(json) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(errors, expected, "{json}");
}

/// The one server of upstream `up1` given as `"10.0.0.1:80": params`.
#[track_caller]
fn with_params(params: &str) -> Result<Server, Vec<String>> {
    let json = json!({"up1": {"10.0.0.1:80": params}}).to_string();
    match parse_upstreams(&json) {
        Ok(mut upstreams) => Ok(upstreams.remove("up1").unwrap().remove(0)),
        Err(errors) => Err(errors.into_iter().map(|e| e.message).collect()),
    }
}

#[test]
fn readme_domains() {
    let domains = parse_domains(README_DOMAINS).unwrap();
    let rule = |pattern: &str, succ: &str, fail: &str| Rule::Ua {
        pattern: pattern.into(),
        succ: Some(succ.into()),
        fail: Some(fail.into()),
    };
    let backend = |name: &str| Rule::Backend {
        servername: name.into(),
    };
    let expected = Domain {
        init: "r1".into(),
        rules: BTreeMap::from([
            ("r1".into(), rule(r"httpie(\S+)$", "r4", "r3")),
            ("r2".into(), backend("upstream1")),
            ("r3".into(), backend("upstream2")),
            (
                "r4".into(),
                Rule::Path {
                    pattern: r"^\/blog\/(\S+)$".into(),
                    regex: true,
                    rewrite: false,
                    succ: Some("r2".into()),
                    fail: Some("r3".into()),
                },
            ),
        ]),
    };
    assert_eq!(domains, BTreeMap::from([("example.com".into(), expected)]));

    // Serialising gives ELB's JSON back.
    let original: Value = serde_json::from_str(README_DOMAINS).unwrap();
    assert_eq!(serde_json::to_value(&domains).unwrap(), original);
}

#[test]
fn domain_shape_errors_name_their_place() {
    check_domain_errors(
        "{\n  \"example.com\": {\"init\": \"r1\",}\n}",
        &["invalid JSON: trailing comma at line 2 column 32"],
    );
    check_domain_errors(
        r#"["example.com"]"#,
        &[
            "expected an object of domains: invalid type: sequence, expected a map at line 1 column 0",
        ],
    );
    check_domain_errors(
        r#"{"example.com": []}"#,
        &[r#"domain "example.com": expected {"init": …, "rules": {…}}, found a list"#],
    );
    check_domain_errors(
        r#"{"example.com": {}}"#,
        &[
            r#"domain "example.com", field "init": missing"#,
            r#"domain "example.com", field "rules": missing"#,
        ],
    );
    check_domain_errors(
        r#"{"example.com": {"init": 1, "rules": []}}"#,
        &[
            r#"domain "example.com", field "init": expected a rule name, found a number"#,
            r#"domain "example.com", field "rules": expected an object of rules, found a list"#,
        ],
    );
}

#[test]
fn rule_errors_name_domain_and_rule() {
    let rules = |rules: Value| json!({"example.com": {"init": "r1", "rules": rules}}).to_string();
    check_domain_errors(
        &rules(json!({"r1": {"type": "cookie", "args": {}}})),
        &[
            r#"domain "example.com", rule "r1", field "type": unknown rule type "cookie" (expected ua, path, header or backend)"#,
        ],
    );
    check_domain_errors(
        &rules(json!({"r1": {"type": 3, "args": {}}})),
        &[r#"domain "example.com", rule "r1", field "type": expected a string, found a number"#],
    );
    check_domain_errors(
        &rules(json!({"r1": {"args": {}}})),
        &[r#"domain "example.com", rule "r1", field "type": missing"#],
    );
    check_domain_errors(
        &rules(json!({"r1": "backend"})),
        &[r#"domain "example.com", rule "r1": expected {"type": …, "args": {…}}, found a string"#],
    );
    check_domain_errors(
        &rules(json!({"r1": {"type": "ua", "args": {"succ": "r2"}}})),
        &[r#"domain "example.com", rule "r1", field "args": missing field `pattern`"#],
    );
    check_domain_errors(
        &rules(json!({"r1": {"type": "path", "args": {"pattern": "/", "regex": "yes"}}})),
        &[
            r#"domain "example.com", rule "r1", field "args": invalid type: string "yes", expected a boolean"#,
        ],
    );
    // Every rule of every domain is reported.
    check_domain_errors(
        &json!({
            "a.com": {"init": "r1", "rules": {"r1": {"type": "cookie"}, "r2": {"type": "ua", "args": {}}}},
            "b.com": {"init": "r1"},
        })
        .to_string(),
        &[
            r#"domain "a.com", rule "r1", field "type": unknown rule type "cookie" (expected ua, path, header or backend)"#,
            r#"domain "a.com", rule "r2", field "args": missing field `pattern`"#,
            r#"domain "b.com", field "rules": missing"#,
        ],
    );
}

#[test]
fn domains_are_not_checked_beyond_their_shape() {
    // Unknown upstreams, dangling names and bad regexes are compile's.
    let json = json!({"Example.com": {"init": "nope", "rules": {
        "r1": {"type": "ua", "args": {"pattern": "(", "succ": "gone"}},
        "r2": {"type": "backend", "args": {"servername": "ghost"}},
    }}});
    assert!(parse_domains(&json.to_string()).is_ok());
}

#[test]
fn upstreams_in_the_put_shape() {
    let json = r#"{"up1": {"127.0.0.1:8088": "", "127.0.0.1:8089": "max_fails=2 weight=10"}}"#;
    let servers = |addr, weight, max_fails| Server {
        weight,
        max_fails,
        ..Server::new(addr)
    };
    assert_eq!(
        parse_upstreams(json).unwrap(),
        BTreeMap::from([(
            "up1".into(),
            vec![
                servers("127.0.0.1:8088", 1, 1),
                servers("127.0.0.1:8089", 10, 2)
            ],
        )])
    );
}

#[test]
fn upstreams_in_the_get_shape() {
    let json = r#"{
        "up1": [
            {"addr": "127.0.0.1:8089", "fail_timeout": 10, "max_fails": 1, "name": "127.0.0.1:8089", "weight": 1},
            {"addr": "10.0.0.2:80", "fail_timeout": 3, "max_fails": 0, "name": "10.0.0.2:80", "weight": 5, "backup": true}
        ],
        "up2": [{"addr": "[::1]:80"}]
    }"#;
    let expected = BTreeMap::from([
        (
            "up1".into(),
            vec![
                Server::new("127.0.0.1:8089"),
                Server {
                    weight: 5,
                    max_fails: 0,
                    fail_timeout_ms: 3_000,
                    backup: true,
                    ..Server::new("10.0.0.2:80")
                },
            ],
        ),
        ("up2".into(), vec![Server::new("[::1]:80")]),
    ]);
    assert_eq!(parse_upstreams(json).unwrap(), expected);
}

#[test]
fn nginx_parameters() {
    let server = |f: fn(&mut Server)| {
        let mut server = Server::new("10.0.0.1:80");
        f(&mut server);
        Ok(server)
    };
    let cases: [(&str, Result<Server, Vec<String>>); 14] = [
        ("", server(|_| {})),
        ("weight=5", server(|s| s.weight = 5)),
        ("max_fails=0", server(|s| s.max_fails = 0)),
        ("fail_timeout=30", server(|s| s.fail_timeout_ms = 30_000)),
        ("fail_timeout=30s", server(|s| s.fail_timeout_ms = 30_000)),
        ("fail_timeout=500ms", server(|s| s.fail_timeout_ms = 500)),
        ("fail_timeout=2m", server(|s| s.fail_timeout_ms = 120_000)),
        ("fail_timeout=1h", server(|s| s.fail_timeout_ms = 3_600_000)),
        ("backup", server(|s| s.backup = true)),
        (
            "  weight=3   max_fails=4 fail_timeout=1s backup ",
            server(|s| {
                s.weight = 3;
                s.max_fails = 4;
                s.fail_timeout_ms = 1_000;
                s.backup = true;
            }),
        ),
        ("weight=1000", server(|s| s.weight = 1000)),
        ("down", server(|s| s.down = true)),
        // A comment, as nginx's files have them (the GET writes one).
        (
            "weight=2 max_fails=1 fail_timeout=10s # role web: node web-1",
            server(|s| s.weight = 2),
        ),
        ("# only a comment", server(|_| {})),
    ];
    for (params, expected) in cases {
        assert_eq!(with_params(params), expected, "{params:?}");
    }
}

#[test]
fn bad_nginx_parameters() {
    let place = r#"upstream "up1", server "10.0.0.1:80": "#;
    let cases = [
        ("down=1", vec!["down takes no value"]),
        (
            "max_conns=10",
            vec![
                r#"unknown parameter "max_conns=10" (expected weight=N, max_fails=N, fail_timeout=TIME, backup or down)"#,
            ],
        ),
        ("weight=abc", vec![r#"weight "abc" is not a number"#]),
        ("weight=", vec![r#"weight "" is not a number"#]),
        ("weight=-1", vec![r#"weight "-1" is not a number"#]),
        (
            "max_fails=99999999999",
            vec![r#"max_fails "99999999999" is too large"#],
        ),
        ("weight", vec!["weight needs a value (weight=…)"]),
        ("backup=1", vec!["backup takes no value"]),
        ("weight=2 weight=3", vec!["weight is given twice"]),
        ("weight=0", vec!["weight must be at least 1"]),
        (
            "weight=1001",
            vec!["weight must be at most 1000 (got 1001)"],
        ),
        (
            "fail_timeout=10x",
            vec![r#"fail_timeout "10x" is not a time (e.g. 10, 10s, 500ms, 1m or 1h)"#],
        ),
        (
            "fail_timeout=s",
            vec![r#"fail_timeout "s" is not a time (e.g. 10, 10s, 500ms, 1m or 1h)"#],
        ),
        (
            "fail_timeout=2h",
            vec!["fail_timeout must be at most 1 hour (got 7200000 ms)"],
        ),
        (
            "weight=x slow_start=1 fail_timeout=1d",
            vec![
                r#"weight "x" is not a number"#,
                r#"unknown parameter "slow_start=1" (expected weight=N, max_fails=N, fail_timeout=TIME, backup or down)"#,
                r#"fail_timeout "1d" is not a time (e.g. 10, 10s, 500ms, 1m or 1h)"#,
            ],
        ),
    ];
    for (params, expected) in cases {
        let expected: Vec<String> = expected.iter().map(|e| format!("{place}{e}")).collect();
        assert_eq!(with_params(params), Err(expected), "{params:?}");
    }
}

#[test]
fn bad_upstreams_name_upstream_and_server() {
    check_upstream_errors(
        r#"{"up1": {"10.0.0.1": "", "10.0.0.2:80": "weight=0", "10.0.0.3:80": ""}, "up2": [{"addr": "web_1:80", "weight": 0}]}"#,
        &[
            r#"upstream "up1", server "10.0.0.1": address "10.0.0.1" has no port (expected host:port)"#,
            r#"upstream "up1", server "10.0.0.2:80": weight must be at least 1"#,
            r#"upstream "up2", server "web_1:80": address "web_1:80": host "web_1" has an invalid character '_'"#,
            r#"upstream "up2", server "web_1:80": weight must be at least 1"#,
        ],
    );
    check_upstream_errors(
        r#"{"up 1": {"10.0.0.1:80": ""}}"#,
        &[
            r#"upstream name "up 1" has an invalid character ' ' (allowed: A-Z, a-z, 0-9, "_", "." and "-")"#,
        ],
    );
    check_upstream_errors(
        r#"{"up1": {"10.0.0.1:80": 10}}"#,
        &[
            r#"upstream "up1", server "10.0.0.1:80": expected a string of parameters, found a number"#,
        ],
    );
    check_upstream_errors(
        r#"{"up1": [{"weight": 1}, {"addr": "10.0.0.1:80", "fail_timeout": "10s"}]}"#,
        &[
            "upstream \"up1\", server #1: missing field `addr`",
            r#"upstream "up1", server #2: invalid type: string "10s", expected u64"#,
        ],
    );
    check_upstream_errors(
        r#"{"up1": "10.0.0.1:80"}"#,
        &[
            r#"upstream "up1", servers: expected {"host:port": "parameters", …} or a list of servers, found a string"#,
        ],
    );
    check_upstream_errors(
        r#"{"up1": "#,
        &["invalid JSON: EOF while parsing a value at line 1 column 8"],
    );
    check_upstream_errors(
        "[]",
        &[
            "expected an object of upstreams: invalid type: sequence, expected a map at line 1 column 0",
        ],
    );
}

mod generated {
    //! Generated rule chains: rules of every type pointing at one another
    //! (cycles, dangling names, bad regexes included). Import and compile
    //! end without a panic; a refusal names its domain; a chain that
    //! compiles routes any request to a decision without a panic.

    use super::*;
    use crate::RouteTable;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("r1"),
            Just("r2"),
            Just("r3"),
            Just("r4"),
            Just("nowhere")
        ]
        .prop_map(str::to_owned)
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("httpie".to_owned()),
            Just("^/blog/(\\S+)$".to_owned()),
            Just("(".to_owned()),
            "[ -~]{0,12}",
        ]
    }

    fn rule() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            (pattern(), name(), name()).prop_map(|(p, s, f)| json!(
                {"type": "ua", "args": {"pattern": p, "succ": s, "fail": f}}
            )),
            (pattern(), any::<bool>(), any::<bool>(), name(), name()).prop_map(
                |(p, regex, rewrite, s, f)| json!({"type": "path", "args": {
                    "pattern": p, "regex": regex, "rewrite": rewrite, "succ": s, "fail": f
                }})
            ),
            prop_oneof![Just("app"), Just("missing"), Just("")]
                .prop_map(|u| json!({"type": "backend", "args": {"servername": u}})),
            "[a-z]{0,6}".prop_map(|t| json!({"type": t, "args": {}})),
        ]
    }

    fn domains() -> impl Strategy<Value = String> {
        (name(), prop::collection::btree_map(name(), rule(), 0..5)).prop_map(|(init, rules)| {
            json!({"example.com": {"init": init, "rules": rules}}).to_string()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_chain_imports_and_compiles_or_is_refused_by_place(
            json in domains(),
            path in "/[ -~]{0,16}",
            ua in "[ -~]{0,16}",
        ) {
            let parsed = match parse_domains(&json) {
                Ok(d) => d,
                Err(errors) => {
                    prop_assert!(errors.iter().all(|e| !e.message.is_empty()), "{errors:?}");
                    return Ok(());
                }
            };
            match RouteTable::compile(&parsed, &|u| u == "app") {
                Ok(table) => {
                    let headers = http::HeaderMap::new();
                    let request = crate::Request { path: &path, user_agent: &ua, headers: &headers };
                    prop_assert!(table.route("example.com", &request).is_some());
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    prop_assert!(
                        errors.iter().all(|e| e.domain == "example.com" && !e.message.is_empty()),
                        "{errors:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn parameters_are_written_as_they_are_read() {
    let mut s = Server::new("10.0.0.1:80");
    assert_eq!(s.parameters(), "weight=1 max_fails=1 fail_timeout=10s");
    s.weight = 10;
    s.max_fails = 2;
    s.fail_timeout_ms = 1500;
    s.backup = true;
    s.down = true;
    let text = s.parameters();
    assert_eq!(
        text,
        "weight=10 max_fails=2 fail_timeout=1500ms backup down"
    );
    let mut back = Server::new("10.0.0.1:80");
    assert!(super::parameters(&text, &mut back).is_empty());
    assert_eq!(back, s);
    for (ms, text) in [
        (0, "0s"),
        (60_000, "1m"),
        (3_600_000, "1h"),
        (90_000, "90s"),
    ] {
        s.fail_timeout_ms = ms;
        assert!(
            s.parameters().contains(&format!("fail_timeout={text} ")),
            "{ms}"
        );
    }
}

#[test]
fn a_path_rule_elb_py_sent_without_its_regex_flag_is_read_as_a_regex() {
    let chain = |args: Value| {
        json!({"example.com": {"init": "p", "rules": {
            "p": {"type": "path", "args": args},
            "b": {"type": "backend", "args": {"servername": "up1"}}}}})
        .to_string()
    };
    let rule = |args: Value| parse_domains(&chain(args)).unwrap()["example.com"].rules["p"].clone();
    // What `PathRule('p', '^\/blog\/(\S+)$', True, False, 'b', 'b').dump()` sends.
    let sent = rule(json!({"pattern": "^\\/blog\\/(\\S+)$", "succ": "b", "fail": "b"}));
    assert!(matches!(sent, Rule::Path { regex: true, .. }), "{sent:?}");
    // A prefix stays a prefix; an explicit flag is kept as it is.
    let prefix = rule(json!({"pattern": "/blog", "succ": "b", "fail": "b"}));
    assert!(
        matches!(prefix, Rule::Path { regex: false, .. }),
        "{prefix:?}"
    );
    let explicit = rule(json!({"pattern": "^/x", "regex": false, "succ": "b", "fail": "b"}));
    assert!(
        matches!(explicit, Rule::Path { regex: false, .. }),
        "{explicit:?}"
    );
}
