//! The nodes and node groups every table test runs against: six nodes with
//! different OSes, roles, labels, nested and list grains, a `url` grain full
//! of colons, numbers, booleans and a null; groups that nest, groups that
//! form cycles, and broken ones.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::targets::Candidate;

pub(super) struct Node {
    pub(super) name: &'static str,
    grains: Map<String, Value>,
    /// Facter-shaped facts: empty unless a table sets them.
    pub(super) facts: Map<String, Value>,
    labels: BTreeMap<String, String>,
    roles: Vec<String>,
    addresses: Vec<String>,
}

impl Node {
    pub(super) fn candidate(&self) -> Candidate<'_> {
        Candidate {
            name: self.name,
            grains: &self.grains,
            facts: &self.facts,
            labels: &self.labels,
            roles: &self.roles,
            addresses: &self.addresses,
        }
    }
}

fn node(
    name: &'static str,
    grains: Value,
    labels: &[(&str, &str)],
    roles: &[&str],
    addresses: &[&str],
) -> Node {
    let Value::Object(grains) = grains else {
        panic!("grains of {name} must be an object");
    };
    Node {
        name,
        grains,
        facts: Map::new(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
    }
}

pub(super) fn nodes() -> Vec<Node> {
    vec![
        node(
            "web-1",
            json!({
                "os": "Debian", "os_family": "Debian", "num_cpus": 2, "mem_gb": 3.5,
                "virtual": true, "ipv4": ["10.0.1.11", "127.0.0.1"], "ipv6": ["fd00::11"],
                "datacenter": {"name": "ams1", "rack": 4}, "roles": ["web", "frontend"],
                "url": "http://web-1.ams1:8080/health",
            }),
            &[("env", "prod"), ("team", "blue"), ("app:tier", "front")],
            &["web"],
            &["10.0.1.11"],
        ),
        node(
            "web-2",
            json!({
                "os": "Ubuntu", "os_family": "Debian", "num_cpus": 4, "virtual": false,
                "ipv4": ["10.0.1.12"], "datacenter": {"name": "ams1", "rack": 5},
                "roles": ["web"], "url": "http://web-2.ams1:9090/health",
            }),
            &[("env", "staging"), ("team", "Blue")],
            &["web", "canary"],
            &["10.0.1.12", "fd00::12"],
        ),
        node(
            "db-1",
            json!({
                "os": "CentOS", "os_family": "RedHat", "num_cpus": 16, "virtual": false,
                "ipv4": ["10.0.2.21"], "datacenter": {"name": "fra1", "rack": 1},
                "disks": [{"name": "sda", "size_gb": 500}, {"name": "sdb", "size_gb": 2000}],
            }),
            &[("env", "prod")],
            &["db", "backup"],
            &["10.0.2.21/24"],
        ),
        node(
            "lb-1",
            json!({
                "os": "Debian", "os_family": "Debian", "num_cpus": 2, "ipv4": "192.168.0.2",
                "datacenter": {"name": "fra1", "rack": 1},
            }),
            &[],
            &["balancer"],
            &["192.168.0.2", "2001:db8::2"],
        ),
        node(
            "mail-1",
            json!({
                "os": "FreeBSD", "os_family": "FreeBSD", "num_cpus": 1, "virtual": "bhyve",
                "ipv6": ["fe80::1%em0"], "location": null, "city": "München",
                "motd": "Hello: World",
            }),
            &[("env", "prod")],
            &["mail"],
            &[],
        ),
        node("bare-1", json!({}), &[], &[], &[]),
    ]
}

pub(super) fn groups() -> BTreeMap<String, String> {
    [
        ("web", "web-*"),
        ("debian", "G@os_family:Debian"),
        ("debian_web", "N@web and N@debian"),
        ("prod", "I@env:prod"),
        ("prod_or_ams", "N@prod or G@datacenter:name:ams1"),
        ("nested", "N@debian_web and not N@prod"),
        ("cycle_a", "N@cycle_b"),
        ("cycle_b", "web-1 or N@cycle_a"),
        ("self", "mail-1 or N@self"),
        ("broken", "web-1 and"),
        ("uses_broken", "db-1 or N@broken"),
        ("dangling", "N@nowhere"),
        ("empty", "  "),
    ]
    .into_iter()
    .map(|(name, definition)| (name.to_owned(), definition.to_owned()))
    .collect()
}

pub(super) const KNOWN: &str = "known: broken, cycle_a, cycle_b, dangling, debian, debian_web, empty, \
                     nested, prod, prod_or_ams, self, uses_broken, web";

pub(super) const ALL: &[&str] = &["web-1", "web-2", "db-1", "lb-1", "mail-1", "bare-1"];
