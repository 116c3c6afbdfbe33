//! The cluster file read, checked and written back.

use super::*;

const SHOP: &str = r#"
[cluster]
name = "shop"
base_domain = "shop.internal"

[roles.web]
service = "web"
naming = "iterative"
ports = { http = 8080 }
aliases = ["www"]

[roles.balancer]
aliases = ["lb"]

[upstreams.app]
role = "web"
port = "http"
max_fails = 2
fail_timeout = "5s"

[upstreams.legacy]
servers = [{ addr = "10.0.0.9:80", weight = 5 }, { addr = "10.0.0.10:80", backup = true }]

[routes."example.com"]
init = "r1"
rules.r1 = { type = "ua", pattern = "httpie", succ = "r4", fail = "r3" }
rules.r4 = { type = "path", pattern = "^/blog/(\\S+)$", regex = true, rewrite = true, succ = "r2", fail = "r3" }
rules.r2 = { type = "backend", upstream = "app" }
rules.r3 = { type = "backend", upstream = "legacy" }

[nodegroups]
front = "G@roles:web or G@roles:balancer"

[labels.web-0]
tier = "gold"
"#;

#[test]
fn a_full_file_reads_into_the_masters_description() {
    let d = parse(SHOP).unwrap();
    assert_eq!(d.settings.base_domain.as_deref(), Some("shop.internal"));
    assert_eq!(d.settings.roles["web"].ports["http"], 8080);
    assert_eq!(d.settings.role_aliases()["balancer"], ["lb"]);
    assert_eq!(
        d.upstreams["app"],
        cluster_balancer::UpstreamSource::Role {
            role: "web".into(),
            port: 8080,
            weight: 1,
            max_fails: 2,
            fail_timeout_ms: 5000,
        }
    );
    let cluster_balancer::UpstreamSource::Servers(legacy) = &d.upstreams["legacy"] else {
        panic!("listed")
    };
    assert_eq!((legacy[0].weight, legacy[1].backup), (5, true));
    assert_eq!(d.routes["example.com"].rules.len(), 4);
    assert_eq!(d.nodegroups["front"], "G@roles:web or G@roles:balancer");
    assert_eq!(d.labels["web-0"]["tier"], "gold");
}

#[test]
fn export_reads_back_to_the_same_description() {
    let d = parse(SHOP).unwrap();
    let text = to_toml(&d);
    assert_eq!(parse(&text).unwrap(), d, "{text}");
    assert_eq!(diff(&d, &parse(&text).unwrap()), vec![]);
}

#[test]
fn every_problem_is_listed_with_its_line() {
    let bad = r#"[cluster]
base_domain = "shop..internal"

[roles.web]
ports = { http = 8080 }

[upstreams.app]
role = "wbe"
port = 8080

[upstreams.legacy]
servers = [{ addr = "10.0.0.9" }]

[upstreams.named]
role = "web"
port = "https"

[routes."example.com"]
init = "r1"
rules.r1 = { type = "ua", pattern = "(", succ = "r2" }
rules.r2 = { type = "path", pattern = "/a", succ = "r1" }

[routes."other.com"]
init = "x"
rules.x = { type = "backend", upstream = "nope" }
rules.y = { type = "teleport" }

[nodegroups]
loop = "N@loop"
"#;
    let errors = parse(bad).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    for want in [
        "line 1: base_domain \"shop..internal\"",
        "line 7: unknown role \"wbe\"",
        "line 11: upstream \"legacy\", server 1 (\"10.0.0.9\")",
        "line 14: role \"web\" has no port named \"https\"",
        "line 20: domain \"example.com\", rule \"r1\", field \"pattern\": invalid regex",
        "cycle: r1 → r2 → r1",
        "line 25: domain \"other.com\", rule \"x\", field \"servername\": unknown upstream \"nope\"",
        "line 26: domain \"other.com\", rule \"y\": unknown rule type \"teleport\"",
        "line 29: node group loop",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

#[test]
fn a_toml_mistake_names_its_line() {
    let errors = parse("[cluster]\nname = \"shop\"\n\n[upstreams.app]\nrole = \n").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, Some(5), "{}", errors[0]);
    let errors = parse("[clusterr]\nname = 1\n").unwrap_err();
    assert!(
        errors[0].to_string().contains("unknown field `clusterr`"),
        "{}",
        errors[0]
    );
}

#[test]
fn locate_finds_every_table() {
    let lines = locate(SHOP);
    // SHOP starts with an empty line: `[labels.web-0]` is on line 34.
    assert_eq!(lines["labels.web-0"], 34);
    assert_eq!(lines["routes.\"example.com\".rules.r4"], 27);
    assert_eq!(lines["upstreams.legacy"], 21);
}

mod generated {
    //! Generated files: the shop file with lines dropped, repeated,
    //! swapped or mangled. Reading ends without a panic; a refusal names
    //! a line of the file (or none) with a message; an accepted file is
    //! checked without a panic, and written back it reads the same.

    use super::*;
    use proptest::prelude::*;

    fn mangled() -> impl Strategy<Value = String> {
        let lines: Vec<String> = SHOP.lines().map(str::to_owned).collect();
        let n = lines.len();
        prop::collection::vec(prop_oneof![(0..n).prop_map(Some), Just(None),], 0..n + 8)
            .prop_flat_map(move |picks| {
                let lines = lines.clone();
                let garbage = prop::collection::vec("[ -~]{0,24}", picks.len());
                garbage.prop_map(move |g| {
                    picks
                        .iter()
                        .zip(g)
                        .map(|(p, junk)| match p {
                            Some(i) => lines[*i].clone(),
                            None => junk,
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_file_reads_or_is_refused_with_its_lines(text in mangled()) {
            match parse(&text) {
                Ok(d) => {
                    let _ = check(&d);
                    let again = parse(&to_toml(&d));
                    prop_assert!(again.as_ref() == Ok(&d), "written back: {again:?}");
                    prop_assert!(diff(&d, &d).is_empty());
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    let lines = text.lines().count().max(1);
                    for e in &errors {
                        prop_assert!(!e.message.is_empty(), "{errors:?}");
                        prop_assert!(e.line.is_none_or(|l| l >= 1 && l <= lines + 1), "{e:?} in {lines} lines");
                    }
                }
            }
        }
    }
}
