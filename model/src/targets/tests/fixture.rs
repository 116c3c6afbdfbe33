//! The nodes and node groups every table test runs against: six nodes with
//! different OSes, roles, labels, nested and list grains, a `url` grain full
//! of colons, numbers, booleans and a null, Facter-shaped facts on four of
//! them; groups that nest, groups that form cycles, and broken ones. The
//! nodes Salt's documentation names in its examples (`webserv*`, `ms-1`, …)
//! are a set of their own, [`salt_nodes`].

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::targets::Candidate;

pub(super) struct Node {
    pub(super) name: &'static str,
    grains: Map<String, Value>,
    /// Facter-shaped facts (what `F@` looks at).
    facts: Map<String, Value>,
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

fn object(name: &str, value: Value) -> Map<String, Value> {
    let Value::Object(object) = value else {
        panic!("grains and facts of {name} must be an object");
    };
    object
}

fn node(
    name: &'static str,
    grains: Value,
    labels: &[(&str, &str)],
    roles: &[&str],
    addresses: &[&str],
) -> Node {
    Node {
        name,
        grains: object(name, grains),
        facts: Map::new(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
    }
}

impl Node {
    fn facts(mut self, facts: Value) -> Node {
        self.facts = object(self.name, facts);
        self
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
                "ip_interfaces": {"eth0": ["10.0.1.11"], "lo": ["127.0.0.1"]},
            }),
            &[("env", "prod"), ("team", "blue"), ("app:tier", "front")],
            &["web"],
            &["10.0.1.11"],
        )
        .facts(json!({
            "os": {"name": "Debian", "family": "Debian",
                   "release": {"full": "12.5", "major": "12", "minor": "5"}},
            "processors": {"count": 2, "models": ["Intel(R) Xeon(R) Gold 6230", "Intel(R) Xeon(R) Gold 6230"]},
            "networking": {"hostname": "web-1", "interfaces": {
                "eth0": {"ip": "10.0.1.11", "bindings": [{"address": "10.0.1.11", "netmask": "255.255.255.0"}]},
                "lo": {"ip": "127.0.0.1"},
            }},
            "is_virtual": true, "virtual": "kvm",
            "memory": {"system": {"total_bytes": 3758096384_u64}},
        })),
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
        )
        .facts(json!({
            "os": {"name": "Ubuntu", "family": "Debian",
                   "release": {"full": "22.04", "major": "22.04"}},
            "processors": {"count": 4},
            "networking": {"hostname": "web-2", "interfaces": {
                "ens3": {"ip": "10.0.1.12"},
                "ens3.100": {"ip": "10.100.0.12"},
            }},
            "is_virtual": false, "virtual": "physical",
        })),
        node(
            "db-1",
            json!({
                "os": "CentOS", "os_family": "RedHat", "num_cpus": 16, "virtual": false,
                "ipv4": ["10.0.2.21"], "datacenter": {"name": "fra1", "rack": 1},
                "disks": [{"name": "sda", "size_gb": 500}, {"name": "sdb", "size_gb": 2000}],
                "ip_interfaces": {"eth0": ["10.0.2.21"], "eth1": ["10.0.3.21"]},
            }),
            &[("env", "prod")],
            &["db", "backup"],
            &["10.0.2.21/24"],
        )
        .facts(json!({
            "os": {"name": "CentOS", "family": "RedHat",
                   "release": {"full": "7.9.2009", "major": "7", "minor": "9"}},
            "processors": {"count": 16},
            "networking": {"hostname": "db-1", "interfaces": {
                "eth0": {"ip": "10.0.2.21", "bindings": [
                    {"address": "10.0.2.21", "netmask": "255.255.255.0"},
                    {"address": "10.0.2.22", "netmask": "255.255.255.0"},
                ]},
            }},
            "disks": {"sda": {"size": "500.00 GiB", "type": "hdd"}, "sdb": {"size": "2.00 TiB", "type": "ssd"}},
            "is_virtual": false, "virtual": "physical",
        })),
        node(
            "lb-1",
            json!({
                "os": "Debian", "os_family": "Debian", "num_cpus": 2, "ipv4": "192.168.0.2",
                "datacenter": {"name": "fra1", "rack": 1},
            }),
            &[],
            &["balancer"],
            &["192.168.0.2", "2001:db8::2"],
        )
        .facts(json!({
            "os": {"name": "Debian", "family": "Debian",
                   "release": {"full": "11.9", "major": "11", "minor": "9"}},
            "networking": {"hostname": "lb-1", "interfaces": {}},
            "is_virtual": true, "virtual": "xen", "uptime_seconds": 86400,
            "mountpoints": {"/": {"device": "/dev/xvda1", "options": ["rw", "relatime"]}},
        })),
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

/// The minions Salt's targeting documentation names in its examples, with
/// the grains, pillar (here: labels) and addresses those look at.
pub(super) fn salt_nodes() -> Vec<Node> {
    vec![
        node(
            "webserv1",
            json!({
                "id": "webserv1", "os": "Debian", "kernel": "Linux", "cpuarch": "x86_64",
                "num_cpus": 4, "ec2_tags": {"environment": "production-eu"},
                "ipv6": ["::1", "2001:db8::ff00:42:8329"],
            }),
            &[
                ("pdata", "foobar"),
                ("somekey", "specialvalue"),
                ("role", "production-web"),
            ],
            &[],
            &["192.168.1.100"],
        ),
        node(
            "webserv2",
            json!({
                "id": "webserv2", "os": "Ubuntu", "kernel": "Linux", "cpuarch": "aarch64",
                "ec2_tags": {"environment": "staging"},
            }),
            &[
                ("pdata", "foobaz"),
                ("foo:bar", "bazooka"),
                ("clone_url", "https://github.com/saltstack/salt.git"),
            ],
            &[],
            &["192.168.1.7"],
        ),
        node(
            "web-dc1-srv",
            json!({
                "id": "web-dc1-srv", "os": "CentOS", "kernel": "Linux", "cpuarch": "x86_64",
                "ec2_tags": {"environment": "preproduction"}, "ipv6": ["2001:db8::1"],
            }),
            &[("gitrepo", "https://github.com:example/project.git")],
            &[],
            &["192.168.2.10"],
        ),
        node(
            "web1.prod.loc",
            json!({"id": "web1.prod.loc", "os": "Fedora", "kernel": "Linux"}),
            &[],
            &[],
            &[],
        ),
        node(
            "ms-1",
            json!({"id": "ms-1", "os": "RedHat", "kernel": "Linux", "foo": "bar:baz"}),
            &[],
            &[],
            &[],
        ),
        node(
            "ms-3",
            json!({"id": "ms-3", "os": "Arch", "kernel": "Linux", "foo": {"bar": "baz"}}),
            &[],
            &[],
            &[],
        ),
        node(
            "foo.domain.com",
            json!({"id": "foo.domain.com", "os": "Debian", "kernel": "Linux", "foo": "baz"}),
            &[],
            &[],
            &[],
        ),
        node(
            "bl1.domain.com",
            json!({"id": "bl1.domain.com", "os": "FreeBSD", "kernel": "FreeBSD", "foo": "bar"}),
            &[],
            &[],
            &[],
        ),
        node(
            "minion1.example.com",
            json!({"id": "minion1.example.com", "os": "Arch", "kernel": "Linux"}),
            &[],
            &[],
            &[],
        ),
        node(
            "mac-1",
            json!({"id": "mac-1", "os": "MacOS", "kernel": "Darwin"}),
            &[("cheese", "foo")],
            &[],
            &[],
        ),
    ]
}

/// Salt's example node groups (its `group4`, a list there, as one string).
pub(super) fn salt_groups() -> BTreeMap<String, String> {
    [
        (
            "group1",
            "L@foo.domain.com,bar.domain.com,baz.domain.com or bl*.domain.com",
        ),
        ("group2", "G@os:Debian and foo.domain.com"),
        ("group3", "G@os:Debian and N@group1"),
        ("group4", "G@foo:bar or G@foo:baz"),
    ]
    .into_iter()
    .map(|(name, definition)| (name.to_owned(), definition.to_owned()))
    .collect()
}
