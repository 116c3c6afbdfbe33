//! Tables for key paths: globs on grain keys (`G@a:*:c:v`), lists of
//! objects, objects matched by their keys, and `F@` on Facter-shaped facts.

use super::{check, check_err, parse};
use crate::limits::{TARGET_MAX_KEY_DEPTH, TARGET_MAX_READINGS};
use crate::targets::Kind::*;
use crate::targets::{Candidate, Target};

const UNCLOSED: &str = "unclosed `[` in glob (`[[]` matches a literal `[`)";

#[test]
fn a_glob_key_matches_any_key_at_its_level() {
    check(Grain, "datacenter:*:ams1", &["web-1", "web-2"]);
    check(Grain, "datacenter:*:*", &["web-1", "web-2", "db-1", "lb-1"]);
    check(Grain, "data*:name:fra1", &["db-1", "lb-1"]);
    check(Grain, "ip_interfaces:*:127.0.0.1", &["web-1"]);
    check(Grain, "ip_interfaces:eth*:10.0.3.*", &["db-1"]);
    check(Grain, "ip_interfaces:eth?:10.0.*", &["web-1", "db-1"]);
    check(Grain, "ip_interfaces:[!l]*:10.*", &["web-1", "db-1"]);
    // Salt's top-level `*:`: any grain.
    check(Grain, "*:Debian", &["web-1", "web-2", "lb-1"]);
    check(Grain, "*:FreeBSD", &["mail-1"]);
    check(Grain, "*:name:ams1", &["web-1", "web-2"]);
    // Keys are case-sensitive, glob or not.
    check(Grain, "DATACENTER:*:ams1", &[]);
    check(Grain, "Data*:name:ams1", &[]);
}

#[test]
fn a_glob_key_is_exactly_one_level() {
    // Salt's `*` also matches no level: its `datacenter:*:name:ams1` matches
    // where `datacenter:name:ams1` does.
    check(Grain, "datacenter:*:name:ams1", &[]);
    check(Grain, "*:ams1", &[]);
    check(Grain, "*:*:ams1", &["web-1", "web-2"]);
}

#[test]
fn lists_are_looked_through_and_indexed() {
    // Into every object of the list, for any key of it.
    check(Grain, "disks:*:sdb", &["db-1"]);
    // A glob picks elements by index too.
    check(Grain, "disks:*:name:sdb", &["db-1"]);
    check(Grain, "disks:[01]:size_gb:2000", &["db-1"]);
    check(Grain, "disks:[!1]:name:sdb", &[]);
    check(Grain, "disks:2:name:*", &[]);
    check(Grain, "disks:*:size_gb:5??", &["db-1"]);
    check(Grain, "ipv4:*:127.*", &["web-1"]);
    // lb-1's `ipv4` is a string: there are no keys below it.
    check(Grain, "ipv4:*:192.*", &[]);
}

#[test]
fn an_object_is_matched_by_its_keys() {
    check(Grain, "ip_interfaces:lo", &["web-1"]);
    check(Grain, "ip_interfaces:eth1", &["db-1"]);
    check(Grain, "ip_interfaces:eth[01]", &["web-1", "db-1"]);
    check(Grain, "datacenter:r*", &["web-1", "web-2", "db-1", "lb-1"]);
    // Case-insensitive, as values are (Salt compares the key exactly).
    check(
        Grain,
        "datacenter:RACK",
        &["web-1", "web-2", "db-1", "lb-1"],
    );
    // Through lists and nesting.
    check(Grain, "disks:name", &["db-1"]);
    check(Grain, "*:eth1", &["db-1"]);
    // A regex is compared with the key exactly, as in Salt.
    check(GrainRegex, "ip_interfaces:eth1", &["db-1"]);
    check(GrainRegex, "ip_interfaces:eth[1-9]", &[]);
    // Not even `.*`: in Salt, only a glob's `*` asks whether the key exists.
    check(GrainRegex, "ip_interfaces:.*", &[]);
    check(Grain, "ip_interfaces:*", &["web-1", "db-1"]);
}

#[test]
fn glob_key_errors() {
    check_err(Grain, "os[:Debian", 2, UNCLOSED);
    check_err(Compound, "G@disks:[0:name", 8, UNCLOSED);
    // A later reading with a broken key (`[h]ello[`) is skipped, as one
    // with a broken value is.
    check(Grain, "motd:[h]ello[:] world", &["mail-1"]);
}

#[test]
fn facts_by_dotted_path() {
    check(Fact, "os.family:Debian", &["web-1", "web-2", "lb-1"]);
    check(Fact, "os.family:debian", &["web-1", "web-2", "lb-1"]);
    check(Fact, "os.release.major:12", &["web-1"]);
    check(Fact, "os.release.major:1?", &["web-1", "lb-1"]);
    check(Fact, "os.release.full:7.*", &["db-1"]);
    check(Fact, "networking.hostname:web-*", &["web-1", "web-2"]);
    check(
        Fact,
        "networking.interfaces.eth0.ip:10.0.*",
        &["web-1", "db-1"],
    );
    check(Fact, "virtual:kvm", &["web-1"]);
    // Facts are not grains, and grains not facts.
    check(Fact, "num_cpus:2", &[]);
    check(Fact, "os:Debian", &[]);
    check(Grain, "os.family:Debian", &[]);
    check(Fact, "nosuch:*", &[]);
}

#[test]
fn facts_numbers_and_booleans_match_as_text() {
    check(Fact, "processors.count:16", &["db-1"]);
    check(Fact, "processors.count:[24]", &["web-1", "web-2"]);
    check(Fact, "is_virtual:true", &["web-1", "lb-1"]);
    check(Fact, "is_virtual:FALSE", &["web-2", "db-1"]);
    check(Fact, "memory.system.total_bytes:3758096384", &["web-1"]);
    check(Fact, "uptime_seconds:86400", &["lb-1"]);
}

#[test]
fn fact_paths_take_globs_lists_and_objects() {
    check(
        Fact,
        "networking.interfaces.*.ip:10.*",
        &["web-1", "web-2", "db-1"],
    );
    // A key holding a dot: a `?` (or `*`) stands for it.
    check(
        Fact,
        "networking.interfaces.ens3?100.ip:10.100.*",
        &["web-2"],
    );
    check(Fact, "networking.interfaces.ens3.100.ip:*", &[]);
    // Lists of objects and lists of strings, by index or not.
    check(
        Fact,
        "networking.interfaces.eth0.bindings.address:10.0.2.22",
        &["db-1"],
    );
    check(
        Fact,
        "networking.interfaces.eth0.bindings.1.address:10.0.2.22",
        &["db-1"],
    );
    check(
        Fact,
        "networking.interfaces.eth0.bindings.0.address:10.0.2.22",
        &[],
    );
    check(Fact, "processors.models:*Xeon*", &["web-1"]);
    check(Fact, "processors.models.1:intel*", &["web-1"]);
    check(Fact, "mountpoints./.options:relatime", &["lb-1"]);
    // Objects by their keys; `*` holds even for an empty one, as in Salt.
    check(Fact, "disks:sdb", &["db-1"]);
    check(Fact, "disks.*.type:ssd", &["db-1"]);
    check(
        Fact,
        "networking.interfaces:*",
        &["web-1", "web-2", "db-1", "lb-1"],
    );
    check(
        Fact,
        "networking.interfaces:?*",
        &["web-1", "web-2", "db-1"],
    );
    check(Fact, "*.family:RedHat", &["db-1"]);
}

#[test]
fn facts_in_compound_expressions() {
    check(Compound, "F@os.family:Debian", &["web-1", "web-2", "lb-1"]);
    check(
        Compound,
        "F@os.family:RedHat or F@is_virtual:true",
        &["web-1", "db-1", "lb-1"],
    );
    check(
        Compound,
        "F@os.family:Debian and not G@os:Ubuntu",
        &["web-1", "lb-1"],
    );
    check(Compound, "not F@os.family:*", &["mail-1", "bare-1"]);
    check(Compound, "(F@processors.count:16)", &["db-1"]);
    check(Compound, "* and not F@is_virtual:*", &["mail-1", "bare-1"]);
}

#[test]
fn fact_errors() {
    let wanted = "expected PATH:VALUE with a dotted path (os.family:Debian)";
    check_err(
        Fact,
        "os.family",
        0,
        &format!("{wanted}, found `os.family`"),
    );
    check_err(Fact, ":Debian", 0, "expected PATH:VALUE, the path is empty");
    let empty = "empty key in the fact path (two dots, or a dot at an end)";
    check_err(Fact, "os..family:Debian", 3, empty);
    check_err(Fact, ".os:Debian", 0, empty);
    check_err(Fact, "os.:Debian", 3, empty);
    check_err(Fact, "os.fam[ily:x", 6, UNCLOSED);
    check_err(Fact, "os.family:[Deb", 10, UNCLOSED);
    check_err(Fact, "  ", 0, "empty expression");
    check_err(Compound, "F@", 2, "expected a value after `F@`");
    check_err(
        Compound,
        "web-1 or F@os",
        11,
        "expected PATH:VALUE with a dotted path (os.family:Debian), found `os`",
    );
    check_err(Compound, "F@os.family:Deb[", 15, UNCLOSED);
    check_err(
        Compound,
        "f@os.family:Debian",
        0,
        "unknown prefix `f@`: prefixes are case-sensitive, did you mean `F@`?",
    );
}

#[test]
fn readings_and_paths_are_bounded() {
    // `G@a:b:c:d` compiles two readings beyond its first.
    let word = "G@a:b:c:d";
    let at_bound = vec![word; TARGET_MAX_READINGS / 2].join(" or ");
    assert!(parse(Compound, &at_bound).is_ok());
    let over = vec![word; TARGET_MAX_READINGS / 2 + 1].join(" or ");
    check_err(
        Compound,
        &over,
        (TARGET_MAX_READINGS / 2) * (word.len() + 4),
        &format!(
            "the key:value words of this expression can be read more than {TARGET_MAX_READINGS} ways \
             (each delimiter after a word's first adds one)"
        ),
    );
    // Grain text is read as deep as JSON nests, no deeper: the deepest
    // reading still matches.
    let mut deep = serde_json::json!("v");
    for _ in 0..TARGET_MAX_KEY_DEPTH {
        deep = serde_json::json!({ "k": deep });
    }
    let serde_json::Value::Object(grains) = deep else {
        unreachable!("built as an object");
    };
    let text = format!("{}v", "k:".repeat(TARGET_MAX_KEY_DEPTH + 50));
    let target = Target::parse(Grain, &text, &Default::default()).unwrap();
    let node = Candidate {
        name: "deep",
        grains: &grains,
        facts: &Default::default(),
        labels: &Default::default(),
        roles: &[],
        addresses: &[],
    };
    assert!(!target.matches(&node), "`v` is 128 keys deep, not 178");
    let text = format!("{}v", "k:".repeat(TARGET_MAX_KEY_DEPTH));
    let target = Target::parse(Grain, &text, &Default::default()).unwrap();
    assert!(target.matches(&node));
    let long = format!("{}:v", vec!["k"; TARGET_MAX_KEY_DEPTH + 1].join("."));
    check_err(
        Fact,
        &long,
        2 * TARGET_MAX_KEY_DEPTH,
        &format!("a fact path of more than {TARGET_MAX_KEY_DEPTH} keys"),
    );
}
