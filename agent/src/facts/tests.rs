//! Whole machines: one built by hand, an empty tree, and the machine these
//! tests run on. Fixture machines are in `scenarios.rs`.

use super::root::Tree;
use super::*;
use serde_json::{Map, Value, json};

const MIB: u64 = 1024 * 1024;

fn debian() -> Machine {
    Machine {
        host_name: "web-1.example.com".into(),
        os: os::Os {
            release: Some(os::parse_os_release(
                "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
            )),
            ..os::Os::default()
        },
        kernel: kernel::Kernel {
            name: Some("Linux".into()),
            release: Some("6.1.0-18-amd64".into()),
            arch: Some("x86_64".into()),
            ..kernel::Kernel::default()
        },
        cpu: cpu::Cpu {
            count: Some(2),
            model: Some("Some CPU".into()),
            ..cpu::Cpu::default()
        },
        memory: cpu::Memory {
            total_bytes: Some(2048 * MIB),
            swap_bytes: Some(0),
        },
        addresses: vec![
            "127.0.0.1".parse().unwrap(),
            "10.0.0.5".parse().unwrap(),
            "::1".parse().unwrap(),
        ],
        ..Machine::default()
    }
}

#[test]
fn grains_use_salts_names_and_shapes() {
    let g = grains("web-1", &debian(), &["web".into()], &Map::new());
    assert_eq!(g["id"], "web-1");
    assert_eq!(g["host"], "web-1");
    assert_eq!(g["fqdn"], "web-1.example.com");
    assert_eq!(g["domain"], "example.com");
    assert_eq!(g["os"], "Debian");
    assert_eq!(g["os_family"], "Debian");
    assert_eq!(g["osmajorrelease"], 12);
    assert_eq!(g["osfinger"], "Debian-12");
    assert_eq!(g["osarch"], "amd64");
    assert_eq!(g["kernel"], "Linux");
    assert_eq!(g["mem_total"], 2048);
    assert_eq!(g["swap_total"], 0);
    assert_eq!(g["num_cpus"], 2);
    assert_eq!(g["ipv4"], json!(["127.0.0.1", "10.0.0.5"]));
    assert_eq!(g["ipv6"], json!(["::1"]));
    assert_eq!(g["roles"], json!(["web"]));
    assert_eq!(g["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(g["virtual"], "physical");
}

#[test]
fn static_grains_from_config_win() {
    let mut extra = Map::new();
    extra.insert("os".into(), "Custom".into());
    extra.insert("datacenter".into(), json!({"name": "ams1", "rack": 4}));
    let g = grains("web-1", &debian(), &[], &extra);
    assert_eq!(g["os"], "Custom");
    assert_eq!(g["datacenter"]["rack"], 4);
}

#[test]
fn nothing_readable_leaves_only_what_needs_no_reading() {
    let m = collect_at(&Tree::new().root());
    let g = grains("n1", &m, &[], &Map::new());
    let keys: Vec<&str> = g.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "agent_version",
            "id",
            "locale_info",
            "roles",
            "shell",
            "virtual"
        ]
    );
    assert_eq!(g["locale_info"], json!({"detectedencoding": "utf-8"}));
    assert_eq!(g["virtual"], "physical");
    assert_eq!(g["shell"], "/bin/sh");
}

/// No string anywhere in the tree is empty (the `dns` domain excepted:
/// Salt's shape has it).
fn no_empty_strings(path: &str, v: &Value) {
    match v {
        Value::String(s) => assert!(
            !s.is_empty() || path == "dns.domain" || path == "kernelparams",
            "{path} is empty"
        ),
        Value::Array(a) => a.iter().for_each(|x| no_empty_strings(path, x)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            no_empty_strings(
                &format!("{path}{}{k}", if path.is_empty() { "" } else { "." }),
                x,
            )
        }),
        _ => {}
    }
}

#[test]
fn this_machine() {
    let started = std::time::Instant::now();
    let m = collect();
    let took = started.elapsed();
    let g = grains("here", &m, &[], &Map::new());
    assert_eq!(g["kernel"], "Linux");
    assert!(
        g["num_cpus"].as_u64().is_some_and(|n| n >= 1),
        "{:?}",
        g.get("num_cpus")
    );
    assert!(g["init"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        g["ip_interfaces"].get("lo").is_some(),
        "{:?}",
        g.get("ip_interfaces")
    );
    assert!(g["mem_total"].as_u64().is_some_and(|n| n > 0));
    assert!(
        g["ipv4"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("127.0.0.1")))
    );
    assert!(g.get("pid").is_none());
    assert!(g.contains_key("virtual") && g.contains_key("os") && g.contains_key("cpuarch"));
    no_empty_strings("", &Value::Object(g));
    // The target is 20 ms in a release build; generous for debug builds on
    // a shared machine.
    assert!(
        took < std::time::Duration::from_millis(500),
        "collect took {took:?}"
    );
}
