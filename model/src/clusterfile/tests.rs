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
