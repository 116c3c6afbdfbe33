//! From a `Host` header to a domain: exact names, wildcards, `*`.

use super::super::host::normalise;
use super::*;

fn hosts() -> RouteTable {
    table(json!({
        "example.com": only("exact"),
        "*.example.com": only("wild"),
        "*.a.example.com": only("deep"),
        "*": only("any"),
    }))
}

/// `host` is served by `domain`.
#[track_caller]
fn check_domain(table: &RouteTable, host: &str, domain: Option<&str>) {
    assert_eq!(table.domain_for(host), domain, "host {host:?}");
}

#[test]
fn host_is_normalised() {
    let cases = [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("Example.com.:443", "example.com"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("[FE80::1]:80", "[fe80::1]"),
        // A bare IPv6 address has no port to strip.
        ("::1", "::1"),
        ("", ""),
    ];
    for (host, expected) in cases {
        assert_eq!(normalise(host), expected, "host {host:?}");
    }
}

#[test]
fn exact_then_longest_wildcard_then_any() {
    let t = hosts();
    let cases = [
        ("example.com", "example.com"),
        ("EXAMPLE.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("www.example.com", "*.example.com"),
        ("x.y.example.com", "*.example.com"),
        // `*.a.example.com` is longer than `*.example.com`…
        ("b.a.example.com", "*.a.example.com"),
        ("c.b.a.example.com", "*.a.example.com"),
        // …but does not match `a.example.com` itself.
        ("a.example.com", "*.example.com"),
        ("example.org", "*"),
        ("notexample.com", "*"),
        ("10.0.0.1:80", "*"),
        ("[::1]:80", "*"),
        ("", "*"),
    ];
    for (host, domain) in cases {
        check_domain(&t, host, Some(domain));
    }
    check(&t, "www.example.com", &get("/"), "b → backend wild");
    check(&t, "elsewhere.net", &get("/"), "b → backend any");
}

#[test]
fn unknown_host_is_none() {
    let t = table(json!({
        "example.com": only("exact"),
        "*.example.com": only("wild"),
    }));
    check_domain(&t, "example.org", None);
    check_domain(&t, "com", None);
    check_domain(&t, "", None);
    check(&t, "example.org", &get("/"), "404");
    check(&t, "example.com:80", &get("/"), "b → backend exact");

    let empty = RouteTable::default();
    check(&empty, "example.com", &get("/"), "404");
}

#[test]
fn domains_are_listed_in_name_order() {
    let table = hosts();
    let domains: Vec<&str> = table.domains().collect();
    assert_eq!(
        domains,
        ["*", "*.a.example.com", "*.example.com", "example.com"]
    );
}
