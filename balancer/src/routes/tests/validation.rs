//! What `RouteTable::compile` refuses, each problem with its place.

use super::super::validate_domain_name;
use super::*;

/// `{"example.com": {"init": "r1", "rules": {"r1": rule, "b":
/// backend("upstream1")}}}`: one rule to check, and a rule to point at.
fn one_rule(rule: Value) -> Value {
    json!({"example.com": {"init": "r1", "rules": {"r1": rule, "b": backend("upstream1")}}})
}

#[test]
fn domain_names() {
    let cases = [
        ("example.com", None),
        ("*.example.com", None),
        ("*", None),
        ("xn--bcher-kva.example", None),
        ("10.0.0.1", None),
        ("", Some("domain name is empty")),
        (
            "Example.com",
            Some(r#"domain "Example.com": domain names are lower-case"#),
        ),
        (
            "ex_ample.com",
            Some(
                r#"domain "ex_ample.com": invalid character '_' (domain names are a-z, 0-9, "-" and ".", with an optional leading "*.")"#,
            ),
        ),
        (
            "a.*.com",
            Some(r#"domain "a.*.com": "*" is allowed only as a leading "*." or as the whole name"#),
        ),
        (
            "*example.com",
            Some(
                r#"domain "*example.com": "*" is allowed only as a leading "*." or as the whole name"#,
            ),
        ),
        (
            "a..com",
            Some(r#"domain "a..com": empty label (a leading, trailing or doubled ".")"#),
        ),
        (
            "example.com.",
            Some(r#"domain "example.com.": empty label (a leading, trailing or doubled ".")"#),
        ),
        (
            "*.",
            Some(r#"domain "*.": empty label (a leading, trailing or doubled ".")"#),
        ),
    ];
    for (name, expected) in cases {
        let expected: &[&str] = expected.as_slice();
        check_errors(json!({ name: only("upstream1") }), expected);
        assert_eq!(
            validate_domain_name(name)
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            expected.first().copied(),
            "{name:?}"
        );
    }
}

#[test]
fn init() {
    check_errors(
        json!({"example.com": {"init": "", "rules": {"b": backend("upstream1")}}}),
        &[r#"domain "example.com", field "init": init is empty"#],
    );
    check_errors(
        json!({"example.com": {"init": "r9", "rules": {"b": backend("upstream1")}}}),
        &[r#"domain "example.com", field "init": no rule "r9""#],
    );
}

#[test]
fn rule_names() {
    let long = "r".repeat(65);
    check_errors(
        json!({"example.com": {"init": "b", "rules": {"b": backend("upstream1"), "bad name": backend("upstream1"), &long: backend("upstream1")}}}),
        &[
            r#"domain "example.com", rule "bad name": rule names are 1–64 of A-Z, a-z, 0-9, "_", "." and "-""#,
            &format!(
                r#"domain "example.com", rule "{long}": rule names are 1–64 of A-Z, a-z, 0-9, "_", "." and "-""#
            ),
        ],
    );
    let longest = "r".repeat(64);
    check_errors(
        json!({"example.com": {"init": "Rule_1.a-b", "rules": {"Rule_1.a-b": backend("upstream1"), &longest: backend("upstream1")}}}),
        &[],
    );
}

#[test]
fn dangling_succ_and_fail() {
    check_errors(
        one_rule(json!({"type": "ua", "args": {"pattern": "x", "succ": "nope", "fail": "gone"}})),
        &[
            r#"domain "example.com", rule "r1", field "succ": no rule "nope""#,
            r#"domain "example.com", rule "r1", field "fail": no rule "gone""#,
        ],
    );
}

#[test]
fn invalid_regexes() {
    check_errors(
        one_rule(json!({"type": "ua", "args": {"pattern": "(httpie", "succ": "b"}})),
        &[r#"domain "example.com", rule "r1", field "pattern": invalid regex: unclosed group"#],
    );
    check_errors(
        one_rule(json!({"type": "path", "args": {"regex": true, "pattern": "[a-", "succ": "b"}})),
        &[
            r#"domain "example.com", rule "r1", field "pattern": invalid regex: unclosed character class"#,
        ],
    );
    check_errors(
        one_rule(
            json!({"type": "header", "args": {"name": "x-a", "pattern": "a{2,1}", "succ": "b"}}),
        ),
        &[
            r#"domain "example.com", rule "r1", field "pattern": invalid regex: invalid repetition count range, the start must be <= the end"#,
        ],
    );
    // A prefix is not a regex.
    check_errors(
        one_rule(json!({"type": "path", "args": {"pattern": "/(", "succ": "b"}})),
        &[],
    );
}

#[test]
fn path_prefix_starts_with_a_slash() {
    check_errors(
        one_rule(json!({"type": "path", "args": {"pattern": "blog", "succ": "b"}})),
        &[
            r#"domain "example.com", rule "r1", field "pattern": a path prefix starts with "/" (got "blog")"#,
        ],
    );
}

#[test]
fn regex_rewrite_needs_a_capture_group() {
    check_errors(
        one_rule(
            json!({"type": "path", "args": {"regex": true, "rewrite": true, "pattern": "^/blog/", "succ": "b"}}),
        ),
        &[
            r#"domain "example.com", rule "r1", field "rewrite": the pattern has no capture group to rewrite the path to"#,
        ],
    );
    check_errors(
        one_rule(
            json!({"type": "path", "args": {"regex": true, "rewrite": false, "pattern": "^/blog/", "succ": "b"}}),
        ),
        &[],
    );
}

#[test]
fn header_name() {
    check_errors(
        one_rule(
            json!({"type": "header", "args": {"name": "x canary", "pattern": "1", "succ": "b"}}),
        ),
        &[r#"domain "example.com", rule "r1", field "name": invalid header name "x canary""#],
    );
    check_errors(
        one_rule(json!({"type": "header", "args": {"name": "", "pattern": "1", "succ": "b"}})),
        &[r#"domain "example.com", rule "r1", field "name": invalid header name """#],
    );
}

#[test]
fn backend_servername() {
    check_errors(
        json!({"example.com": only("")}),
        &[r#"domain "example.com", rule "b", field "servername": servername is empty"#],
    );
    check_errors(
        json!({"example.com": only("x")}),
        &[r#"domain "example.com", rule "b", field "servername": unknown upstream "x""#],
    );
    // ELB's backends may name an address instead.
    check_errors(json!({"example.com": only("10.0.0.5:8088")}), &[]);
    check_errors(json!({"example.com": only("[::1]:80")}), &[]);
    check_errors(json!({"example.com": only("app.internal:8080")}), &[]);
    check_errors(
        json!({"example.com": only("10.0.0.5:99999")}),
        &[
            r#"domain "example.com", rule "b", field "servername": unknown upstream "10.0.0.5:99999", nor an address (address "10.0.0.5:99999": port 99999 is out of range (1–65535))"#,
        ],
    );
}

#[test]
fn cycles() {
    check_errors(
        json!({"example.com": {"init": "r1", "rules": {
            "r1": {"type": "ua", "args": {"pattern": "a", "succ": "r4", "fail": "b"}},
            "r4": {"type": "path", "args": {"pattern": "/", "succ": "r1"}},
            "b": backend("upstream1"),
        }}}),
        &[r#"domain "example.com", rule "r1": cycle: r1 → r4 → r1"#],
    );
    // A rule that leads to itself, through `fail`.
    check_errors(
        one_rule(json!({"type": "ua", "args": {"pattern": "a", "succ": "b", "fail": "r1"}})),
        &[r#"domain "example.com", rule "r1": cycle: r1 → r1"#],
    );
    // Unreachable from `init`, still cycles: two through `x`, where the
    // search enters them.
    check_errors(
        json!({"example.com": {"init": "b", "rules": {
            "b": backend("upstream1"),
            "x": {"type": "ua", "args": {"pattern": "a", "succ": "y"}},
            "y": {"type": "ua", "args": {"pattern": "a", "succ": "z", "fail": "x"}},
            "z": {"type": "ua", "args": {"pattern": "a", "fail": "x"}},
        }}}),
        &[
            r#"domain "example.com", rule "x": cycle: x → y → z → x"#,
            r#"domain "example.com", rule "x": cycle: x → y → x"#,
        ],
    );
    // Entered at `w`, which is not in it: the cycle starts at `y`.
    check_errors(
        json!({"example.com": {"init": "b", "rules": {
            "b": backend("upstream1"),
            "w": {"type": "ua", "args": {"pattern": "a", "succ": "y"}},
            "y": {"type": "ua", "args": {"pattern": "a", "succ": "z", "fail": "z"}},
            "z": {"type": "ua", "args": {"pattern": "a", "fail": "y"}},
        }}}),
        &[r#"domain "example.com", rule "y": cycle: y → z → y"#],
    );
}

#[test]
fn unreachable_rules_are_fine() {
    check_errors(
        json!({"example.com": {"init": "b", "rules": {
            "b": backend("upstream1"),
            "lonely": {"type": "path", "args": {"pattern": "/x", "succ": "b"}},
        }}}),
        &[],
    );
}

#[test]
fn every_problem_is_listed_sorted_by_domain_then_rule() {
    check_errors(
        json!({
            "example.com": {"init": "missing", "rules": {
                "r2": {"type": "header", "args": {"name": "bad name", "pattern": "(", "succ": "nope"}},
                "r1": {"type": "path", "args": {"pattern": "blog", "fail": "r1"}},
                "b": backend("ghost"),
            }},
            "Bad.com": only("upstream1"),
            "fine.com": readme(),
        }),
        &[
            r#"domain "Bad.com": domain names are lower-case"#,
            r#"domain "example.com", field "init": no rule "missing""#,
            r#"domain "example.com", rule "b", field "servername": unknown upstream "ghost""#,
            r#"domain "example.com", rule "r1", field "pattern": a path prefix starts with "/" (got "blog")"#,
            r#"domain "example.com", rule "r1": cycle: r1 → r1"#,
            r#"domain "example.com", rule "r2", field "succ": no rule "nope""#,
            r#"domain "example.com", rule "r2", field "name": invalid header name "bad name""#,
            r#"domain "example.com", rule "r2", field "pattern": invalid regex: unclosed group"#,
        ],
    );
}

#[test]
fn errors_carry_their_place_as_fields() {
    let errors = RouteTable::compile(
        &domains(one_rule(
            json!({"type": "ua", "args": {"pattern": "(", "succ": "b"}}),
        )),
        &upstream_exists,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [RouteError {
            domain: "example.com".into(),
            rule: Some("r1".into()),
            field: Some("pattern".into()),
            message: "invalid regex: unclosed group".into(),
        }]
    );
}

#[test]
fn domain_validate_agrees_with_compile() {
    let broken = domains(json!({"example.com": {"init": "r9", "rules": {"b": backend("ghost")}}}));
    let domain = &broken["example.com"];
    let compiled = RouteTable::compile(&broken, &upstream_exists).unwrap_err();
    assert_eq!(
        domain
            .validate("example.com", &upstream_exists)
            .unwrap_err(),
        compiled
    );
    assert_eq!(compiled.len(), 2);

    let fine: Domain = serde_json::from_value(readme()).unwrap();
    assert_eq!(fine.validate("example.com", &upstream_exists), Ok(()));
    assert_eq!(
        fine.upstreams().collect::<Vec<_>>(),
        ["upstream1", "upstream2"]
    );
}
