//! Tables for each leaf matcher on its own (`Kind::Glob` to `Kind::Role`):
//! what matches, case rules, and where a bad value is refused.

use super::fixture::ALL;
use super::{check, check_err};
use crate::targets::Kind::*;
use crate::targets::glob::{Case, Glob};

#[test]
fn globs_match_whole_names_case_sensitively() {
    check(Glob, "*", ALL);
    check(Glob, "web-1", &["web-1"]);
    check(Glob, "web-*", &["web-1", "web-2"]);
    check(Glob, "web-?", &["web-1", "web-2"]);
    check(Glob, "*-1", &["web-1", "db-1", "lb-1", "mail-1", "bare-1"]);
    check(Glob, "web-[12]", &["web-1", "web-2"]);
    check(Glob, "web-[!1]", &["web-2"]);
    check(Glob, "[a-d]*", &["db-1", "bare-1"]);
    check(Glob, "web", &[]);
    check(Glob, "WEB-*", &[]);
    check(Glob, "web-{1,2}", &[]);
    check_err(Glob, "", 0, "empty expression");
    check_err(
        Glob,
        "web-[1",
        4,
        "unclosed `[` in glob (`[[]` matches a literal `[`)",
    );
    check_err(
        Glob,
        "web-[9-0]",
        5,
        "invalid range `9-0` in glob: its start is after its end",
    );
}

#[track_caller]
fn check_glob(pattern: &str, case: Case, text: &str, expected: bool) {
    let glob = Glob::new(pattern, case).unwrap_or_else(|f| panic!("{pattern:?}: {f:?}"));
    assert_eq!(glob.is_match(text), expected, "{pattern:?} on {text:?}");
}

#[test]
fn globs_follow_fnmatch() {
    use Case::*;
    check_glob("[*]", Sensitive, "*", true);
    check_glob("[*]", Sensitive, "a", false);
    check_glob("a*b", Sensitive, "a/x/b", true);
    check_glob("a**b", Sensitive, "ab", true);
    check_glob("*", Sensitive, "", true);
    check_glob("?", Sensitive, "", false);
    check_glob("?", Sensitive, "ü", true);
    check_glob("*x", Sensitive, "line\nx", true);
    check_glob("[]]", Sensitive, "]", true);
    check_glob("[!]]", Sensitive, "]", false);
    check_glob("[!]]", Sensitive, "a", true);
    check_glob("[a-]", Sensitive, "-", true);
    check_glob("[-a]", Sensitive, "-", true);
    check_glob("[^a]", Sensitive, "^", true);
    check_glob("[[]", Sensitive, "[", true);
    check_glob("a\\b", Sensitive, "a\\b", true);
    check_glob("{a,b}", Sensitive, "{a,b}", true);
    check_glob("a.b+", Sensitive, "a.b+", true);
    check_glob("a.b+", Sensitive, "axbb", false);
    check_glob("MÜNCHEN", Insensitive, "München", true);
    check_glob("MÜNCHEN", Sensitive, "München", false);
}

#[test]
fn regexes_on_names_are_anchored_at_the_start_only() {
    check(Regex, "web", &["web-1", "web-2"]);
    check(Regex, r"web-\d$", &["web-1", "web-2"]);
    check(
        Regex,
        ".*-1",
        &["web-1", "db-1", "lb-1", "mail-1", "bare-1"],
    );
    check(Regex, "1", &[]);
    check(Regex, "(web|db)-1", &["web-1", "db-1"]);
    check(Regex, "WEB", &[]);
    check(Regex, "(?i)WEB", &["web-1", "web-2"]);
    check_err(Regex, "(web", 0, "invalid regex: unclosed group");
    // Wrapped in `^(?:…)` unchecked, this would match `b…` anywhere.
    check_err(Regex, "a)|(b", 1, "invalid regex: unopened group");
    check_err(
        Regex,
        "web(?=-1)",
        3,
        "invalid regex: look-around, including look-ahead and look-behind, is not supported",
    );
}

#[test]
fn lists_are_exact_names() {
    check(List, "web-1,db-1", &["web-1", "db-1"]);
    check(List, " web-1 , db-1 ", &["web-1", "db-1"]);
    check(List, "web-1,web-1", &["web-1"]);
    check(List, "web", &[]);
    check(List, "WEB-1", &[]);
    check(List, "web-*", &[]);
    check_err(List, "web-1,,web-2", 6, "empty name in the list");
    check_err(List, "web-1, ,web-2", 7, "empty name in the list");
    check_err(List, "web-1,", 6, "empty name in the list");
    check_err(List, ",web-1", 0, "empty name in the list");
}

#[test]
fn grains_match_values_as_case_insensitive_globs() {
    check(Grain, "os:Debian", &["web-1", "lb-1"]);
    check(Grain, "os:debian", &["web-1", "lb-1"]);
    check(Grain, "os:DEB*", &["web-1", "lb-1"]);
    check(Grain, "os_family:Debian", &["web-1", "web-2", "lb-1"]);
    check(Grain, "os:*", &["web-1", "web-2", "db-1", "lb-1", "mail-1"]);
    check(Grain, "nosuch:*", &[]);
    check(Grain, "city:münchen", &["mail-1"]);
    check(Grain, "city:M?NCHEN", &["mail-1"]);
    check(Grain, "motd:hello: world", &["mail-1"]);
}

#[test]
fn grains_numbers_booleans_and_null_match_as_json_text() {
    check(Grain, "num_cpus:2", &["web-1", "lb-1"]);
    check(Grain, "num_cpus:1?", &["db-1"]);
    check(Grain, "mem_gb:3.5", &["web-1"]);
    check(Grain, "virtual:true", &["web-1"]);
    check(Grain, "virtual:false", &["web-2", "db-1"]);
    check(Grain, "virtual:TRUE", &["web-1"]);
    check(Grain, "virtual:*", &["web-1", "web-2", "db-1", "mail-1"]);
    check(Grain, "location:null", &["mail-1"]);
}

#[test]
fn grains_lists_match_any_element() {
    check(Grain, "ipv4:10.0.*", &["web-1", "web-2", "db-1"]);
    check(Grain, "ipv4:127.0.0.1", &["web-1"]);
    check(Grain, "ipv4:192.168.*", &["lb-1"]);
    check(Grain, "roles:web", &["web-1", "web-2"]);
    check(Grain, "roles:frontend", &["web-1"]);
}

#[test]
fn grains_nest_through_objects_and_lists() {
    check(Grain, "datacenter:name:ams1", &["web-1", "web-2"]);
    check(Grain, "datacenter:rack:1", &["db-1", "lb-1"]);
    check(Grain, "datacenter:rack:4", &["web-1"]);
    check(Grain, "datacenter:ams1", &[]);
    // An object asked for `*` or one of its keys: does the key exist.
    check(Grain, "datacenter:*", &["web-1", "web-2", "db-1", "lb-1"]);
    check(
        Grain,
        "datacenter:rack",
        &["web-1", "web-2", "db-1", "lb-1"],
    );
    check(Grain, "disks:name:sdb", &["db-1"]);
    check(Grain, "disks:1:size_gb:2000", &["db-1"]);
    check(Grain, "disks:0:name:sdb", &[]);
    check(Grain, "ipv4:1:127.*", &["web-1"]);
    check(Grain, "os:Debian:extra", &[]);
}

#[test]
fn grains_values_may_contain_colons() {
    check(Grain, "url:http://web-1.ams1:8080/health", &["web-1"]);
    check(Grain, "url:*:8080/*", &["web-1"]);
    check(Grain, "url:http://*", &["web-1", "web-2"]);
    check(GrainRegex, r"url:http://web-\d\.ams1:9090", &["web-2"]);
    check(Label, "app:tier:front", &["web-1"]);
}

#[test]
fn grain_errors() {
    check_err(Grain, "os", 0, "expected KEY:VALUE, found `os`");
    check_err(Grain, ":Debian", 0, "expected KEY:VALUE, the key is empty");
    check_err(Grain, "  ", 0, "empty expression");
    check_err(
        Grain,
        "os:[Deb",
        3,
        "unclosed `[` in glob (`[[]` matches a literal `[`)",
    );
    check_err(
        Grain,
        "os:[z-a]",
        4,
        "invalid range `z-a` in glob: its start is after its end",
    );
}

#[test]
fn grain_regexes_are_anchored_at_the_start_and_case_insensitive_like_salt() {
    check(GrainRegex, "os:Deb", &["web-1", "lb-1"]);
    check(GrainRegex, "os:ian", &[]);
    check(
        GrainRegex,
        "os:(Debian|Ubuntu)$",
        &["web-1", "web-2", "lb-1"],
    );
    check(GrainRegex, "os:debian", &["web-1", "lb-1"]);
    check(GrainRegex, "os:(?-i)debian", &[]);
    check(
        GrainRegex,
        r"num_cpus:\d$",
        &["web-1", "web-2", "lb-1", "mail-1"],
    );
    check(GrainRegex, r"ipv4:10\.0\.1\.", &["web-1", "web-2"]);
    check(GrainRegex, "datacenter:rack:[45]", &["web-1", "web-2"]);
    // The second reading (`a:(b` → `c)`) is invalid and skipped, as in Salt.
    check(GrainRegex, "motd:(hello: world)", &["mail-1"]);
    check_err(GrainRegex, "os:(Debian", 3, "invalid regex: unclosed group");
    check_err(GrainRegex, "os:Deb(", 6, "invalid regex: unclosed group");
    check_err(GrainRegex, "city:ü(", 6, "invalid regex: unclosed group");
    check_err(GrainRegex, "os", 0, "expected KEY:VALUE, found `os`");
}

#[test]
fn labels_are_flat_and_case_sensitive() {
    check(Label, "env:prod", &["web-1", "db-1", "mail-1"]);
    check(Label, "env:PROD", &[]);
    check(Label, "Env:prod", &[]);
    check(Label, "team:blue", &["web-1"]);
    check(Label, "team:[bB]lue", &["web-1", "web-2"]);
    check(Label, "env:*", &["web-1", "web-2", "db-1", "mail-1"]);
    check_err(Label, "env", 0, "expected KEY:VALUE, found `env`");
}

#[test]
fn subnets_match_addresses_and_ip_grains() {
    check(Subnet, "10.0.1.0/24", &["web-1", "web-2"]);
    check(Subnet, "10.0.0.0/16", &["web-1", "web-2", "db-1"]);
    check(Subnet, "10.0.2.21", &["db-1"]);
    check(Subnet, "127.0.0.1", &["web-1"]);
    check(Subnet, "192.168.0.0/16", &["lb-1"]);
    check(Subnet, "10.1.2.3/8", &["web-1", "web-2", "db-1"]);
    check(Subnet, "0.0.0.0/0", &["web-1", "web-2", "db-1", "lb-1"]);
    check(Subnet, "fd00::/64", &["web-1", "web-2"]);
    check(Subnet, "2001:db8::/32", &["lb-1"]);
    check(Subnet, "2001:0db8:0000::2", &["lb-1"]);
    check(Subnet, "fe80::/10", &["mail-1"]);
    check(Subnet, "::/0", &["web-1", "web-2", "lb-1", "mail-1"]);
    let wanted = "expected an IP address or a CIDR network (10.0.0.0/8, fd00::/8)";
    check_err(
        Subnet,
        "10.0.0.300",
        0,
        &format!("{wanted}, found `10.0.0.300`"),
    );
    check_err(Subnet, "web-1", 0, &format!("{wanted}, found `web-1`"));
    check_err(
        Subnet,
        "10.0.0.0/33",
        9,
        "invalid prefix length `33`: expected 0 to 32",
    );
    check_err(
        Subnet,
        "fd00::/129",
        7,
        "invalid prefix length `129`: expected 0 to 128",
    );
    check_err(
        Subnet,
        "10.0.0.0/",
        9,
        "expected a prefix length (0 to 32) after `/`",
    );
}

#[test]
fn roles_are_globs() {
    check(Role, "web", &["web-1", "web-2"]);
    check(Role, "canary", &["web-2"]);
    check(Role, "b*", &["db-1", "lb-1"]);
    check(Role, "*", &["web-1", "web-2", "db-1", "lb-1", "mail-1"]);
    check(Role, "WEB", &[]);
}
