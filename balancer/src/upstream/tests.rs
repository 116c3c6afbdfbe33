//! Table tests for server, upstream and name validation: each case is a
//! value and the message it is refused with, or `None`.

use super::*;

/// `server` validates, or is refused with exactly `expected`.
#[track_caller]
fn check(server: &Server, expected: Option<&str>) {
    let got = server.validate().err().map(|err| err.message);
    assert_eq!(got.as_deref(), expected, "{server:?}");
}

#[test]
fn addresses() {
    let cases = [
        ("127.0.0.1:8088", None),
        ("10.0.0.1:1", None),
        ("10.0.0.1:65535", None),
        ("[::1]:80", None),
        ("[fe80::1:2]:8443", None),
        ("web-1:80", None),
        ("web-1.internal.example.com:8080", None),
        ("WEB1.Example.COM:80", None),
        (
            "10.0.0.1",
            Some(r#"address "10.0.0.1" has no port (expected host:port)"#),
        ),
        (
            "10.0.0.1:",
            Some(r#"address "10.0.0.1:" has no port (expected host:port)"#),
        ),
        (
            "[::1]",
            Some(r#"address "[::1]" has no port (expected host:port)"#),
        ),
        (
            "[::1]:",
            Some(r#"address "[::1]:" has no port (expected host:port)"#),
        ),
        (
            "web",
            Some(r#"address "web" has no port (expected host:port)"#),
        ),
        (
            ":80",
            Some(r#"address ":80" has no host (expected host:port)"#),
        ),
        (
            "10.0.0.1:0",
            Some(r#"address "10.0.0.1:0": port 0 is out of range (1–65535)"#),
        ),
        (
            "10.0.0.1:65536",
            Some(r#"address "10.0.0.1:65536": port 65536 is out of range (1–65535)"#),
        ),
        (
            "10.0.0.1:99999999999999999999",
            Some(
                r#"address "10.0.0.1:99999999999999999999": port 99999999999999999999 is out of range (1–65535)"#,
            ),
        ),
        (
            "10.0.0.1:http",
            Some(r#"address "10.0.0.1:http": port "http" is not a number"#),
        ),
        (
            "10.0.0.1:-1",
            Some(r#"address "10.0.0.1:-1": port "-1" is not a number"#),
        ),
        (
            "10.0.0.256:80",
            Some(r#"address "10.0.0.256:80": "10.0.0.256" is not an IPv4 address"#),
        ),
        (
            "10.0.0:80",
            Some(r#"address "10.0.0:80": "10.0.0" is not an IPv4 address"#),
        ),
        (
            "::1:80",
            Some(r#"address "::1:80": an IPv6 address goes in brackets, as in "[::1]:80""#),
        ),
        (
            "[::1:80",
            Some(r#"address "[::1:80" has no "]" after its IPv6 address"#),
        ),
        (
            "[10.0.0.1]:80",
            Some(r#"address "[10.0.0.1]:80": "10.0.0.1" is not an IPv6 address"#),
        ),
        (
            "[::1]80",
            Some(r#"address "[::1]80": expected ":port" after "]", found "80""#),
        ),
        (
            "web_1:80",
            Some(r#"address "web_1:80": host "web_1" has an invalid character '_'"#),
        ),
        (
            "web..lan:80",
            Some(r#"address "web..lan:80": host "web..lan" has an empty label"#),
        ),
        (
            "web.lan.:80",
            Some(r#"address "web.lan.:80": host "web.lan." has an empty label"#),
        ),
        (
            "-web:80",
            Some(r#"address "-web:80": host "-web" has a label that starts or ends with "-""#),
        ),
        (
            "web-:80",
            Some(r#"address "web-:80": host "web-" has a label that starts or ends with "-""#),
        ),
    ];
    for (addr, expected) in cases {
        check(&Server::new(addr), expected);
    }

    let label = "a".repeat(64);
    check(
        &Server::new(format!("{label}.lan:80")),
        Some(&format!(
            r#"address "{label}.lan:80": host "{label}.lan" has a label longer than 63 characters"#
        )),
    );
    let name = vec!["a".repeat(63); 4].join(".");
    check(
        &Server::new(format!("{name}:80")),
        Some(&format!(
            r#"address "{name}:80": host "{name}" is longer than 253 characters"#
        )),
    );
}

#[test]
fn parameters() {
    let server = |weight, fail_timeout_ms| Server {
        weight,
        fail_timeout_ms,
        ..Server::new("10.0.0.1:80")
    };
    let cases = [
        (1, 10_000, None),
        (1000, 0, None),
        (1, 3_600_000, None),
        (0, 10_000, Some("weight must be at least 1")),
        (1001, 10_000, Some("weight must be at most 1000 (got 1001)")),
        (
            1,
            3_600_001,
            Some("fail_timeout must be at most 1 hour (got 3600001 ms)"),
        ),
    ];
    for (weight, fail_timeout_ms, expected) in cases {
        check(&server(weight, fail_timeout_ms), expected);
    }
}

#[test]
fn every_problem_is_in_the_message() {
    let server = Server {
        weight: 0,
        fail_timeout_ms: u64::MAX,
        ..Server::new("10.0.0.1")
    };
    check(
        &server,
        Some(&format!(
            r#"address "10.0.0.1" has no port (expected host:port); weight must be at least 1; fail_timeout must be at most 1 hour (got {} ms)"#,
            u64::MAX
        )),
    );
}

#[test]
fn upstream_names() {
    let long = "u".repeat(64);
    let cases = [
        ("up1", None),
        ("web_pool.v2-a", None),
        (&long[..63], None),
        ("", Some("upstream name is empty".to_owned())),
        (&long, Some(format!("upstream name {long:?} is longer than 63 characters"))),
        (
            "up 1",
            Some(
                r#"upstream name "up 1" has an invalid character ' ' (allowed: A-Z, a-z, 0-9, "_", "." and "-")"#
                    .to_owned(),
            ),
        ),
        (
            "up/1",
            Some(
                r#"upstream name "up/1" has an invalid character '/' (allowed: A-Z, a-z, 0-9, "_", "." and "-")"#
                    .to_owned(),
            ),
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(
            validate_name(name).err().map(|e| e.message),
            expected,
            "{name:?}"
        );
    }
}

#[test]
fn sources() {
    let check = |source: UpstreamSource, expected: Option<&str>| {
        let got = source.validate().err().map(|err| err.message);
        assert_eq!(got.as_deref(), expected, "{source:?}");
    };
    check(UpstreamSource::Servers(vec![]), None);
    check(
        UpstreamSource::Servers(vec![Server::new("10.0.0.1:80"), Server::new("[::1]:80")]),
        None,
    );
    check(
        UpstreamSource::Servers(vec![
            Server::new("10.0.0.1"),
            Server::new("10.0.0.2:80"),
            Server {
                weight: 0,
                ..Server::new("10.0.0.3:80")
            },
        ]),
        Some(
            r#"server "10.0.0.1": address "10.0.0.1" has no port (expected host:port); server "10.0.0.3:80": weight must be at least 1"#,
        ),
    );
    let role = |port, weight| UpstreamSource::Role {
        role: "web".into(),
        port,
        weight,
        max_fails: 1,
        fail_timeout_ms: 10_000,
    };
    check(role(8080, 1), None);
    check(
        role(0, 0),
        Some("port must be 1–65535 (got 0); weight must be at least 1"),
    );
}
