//! Salt's documented targeting examples, each quoted from its page (the
//! targeting topics `grains`, `pillar`, `compound`, `nodegroups`, the CLI's
//! target-selection options and the `match` execution module), run against
//! the minions those examples name ([`salt_nodes`]). Where this project
//! means something else by a form (`R@`, `J@`), the case says so.

use super::fixture::{salt_groups, salt_nodes};
use super::{check_in, check_refusal_in};
use crate::targets::Kind::{self, *};

/// `expr` matches exactly `expected` of Salt's example minions.
#[track_caller]
fn salt(kind: Kind, expr: &str, expected: &[&str]) {
    check_in(&salt_nodes(), &salt_groups(), kind, expr, ':', expected);
}

/// The same with `delimiter`, as `match.grain(tgt, delimiter=…)`.
#[track_caller]
fn salt_with(kind: Kind, expr: &str, delimiter: char, expected: &[&str]) {
    check_in(
        &salt_nodes(),
        &salt_groups(),
        kind,
        expr,
        delimiter,
        expected,
    );
}

/// Every example minion but `except`.
fn all_but(except: &str) -> Vec<&'static str> {
    every().into_iter().filter(|n| *n != except).collect()
}

fn every() -> Vec<&'static str> {
    salt_nodes().iter().map(|n| n.name).collect()
}

#[test]
fn grains_topic() {
    // "Match all CentOS minions: salt -G 'os:CentOS' test.ping"
    salt(Grain, "os:CentOS", &["web-dc1-srv"]);
    // "Match all minions with 64-bit CPUs …: salt -G 'cpuarch:x86_64' grains.item num_cpus"
    salt(Grain, "cpuarch:x86_64", &["webserv1", "web-dc1-srv"]);
    // "the following will match hosts that have a grain called ec2_tags, which
    // itself is a dict with a key named environment, which has a value that
    // contains the word production: salt -G 'ec2_tags:environment:*production*'"
    salt(
        Grain,
        "ec2_tags:environment:*production*",
        &["webserv1", "web-dc1-srv"],
    );
    // "Grains resolve to lowercase letters. For example, FOO, and foo target
    // the same grain." (values: the glob is case-insensitive)
    salt(Grain, "os:centos", &["web-dc1-srv"]);
}

#[test]
fn target_selection_options() {
    // "-G, --grain … in the format of '<grain value>:<glob expression>';
    // example: 'os:Arch*'"
    salt(Grain, "os:Arch*", &["ms-3", "minion1.example.com"]);
    // "--grain-pcre … in the format of '<grain value>:< regular expression>';
    // example: 'os:Arch.*'"
    salt(GrainRegex, "os:Arch.*", &["ms-3", "minion1.example.com"]);
    // "-I, --pillar … the pillar key followed by a glob expression:
    // "role:production*""
    salt(Label, "role:production*", &["webserv1"]);
    // "-L, --list … a comma-delimited list; example:
    // server1.foo.bar,server2.foo.bar,example7.quo.qux"
    salt(
        List,
        "server1.foo.bar,server2.foo.bar,example7.quo.qux",
        &[],
    );
    salt(List, "ms-1,ms-3,ms-2", &["ms-1", "ms-3"]);
}

#[test]
fn pillar_topic_with_labels_for_pillar() {
    // "salt -I 'somekey:specialvalue' test.version"
    salt(Label, "somekey:specialvalue", &["webserv1"]);
    // "match minions with a pillar named foo, which is a dict containing a
    // key bar, with a value beginning with baz: salt -I 'foo:bar:baz*'"
    // Labels are flat: the key `foo:bar` is read the same way.
    salt(Label, "foo:bar:baz*", &["webserv2"]);
}

#[test]
fn compound_topic() {
    // "the following string matches all Debian minions with a hostname that
    // begins with webserv, as well as any minions that have a hostname which
    // matches the regular expression web-dc1-srv.*:
    // salt -C 'webserv* and G@os:Debian or E@web-dc1-srv.*' test.version"
    salt(
        Compound,
        "webserv* and G@os:Debian or E@web-dc1-srv.*",
        &["webserv1", "web-dc1-srv"],
    );
    // "Excluding a minion based on its ID is also possible:
    // salt -C 'not web-dc1-srv' test.version"
    salt(Compound, "not web-dc1-srv", &all_but("web-dc1-srv"));
    // "salt -C '* and not G@kernel:Darwin' test.version"
    salt(Compound, "* and not G@kernel:Darwin", &all_but("mac-1"));
    // "salt -C '* and not web-dc1-srv' test.version"
    salt(Compound, "* and not web-dc1-srv", &all_but("web-dc1-srv"));
    // "Matchers can be grouped together with parentheses …
    // salt -C '( ms-1 or G@id:ms-3 ) and G@id:ms-3' test.version"
    salt(Compound, "( ms-1 or G@id:ms-3 ) and G@id:ms-3", &["ms-3"]);
    // Spaces around parentheses are optional here.
    salt(Compound, "(ms-1 or G@id:ms-3)and G@id:ms-3", &["ms-3"]);
}

#[test]
fn compound_letters_table() {
    // "G | Grains glob | G@os:Ubuntu"
    salt(Compound, "G@os:Ubuntu", &["webserv2"]);
    // "E | PCRE Minion ID | E@web\d+\.(dev|qa|prod)\.loc"
    salt(
        Compound,
        r"E@web\d+\.(dev|qa|prod)\.loc",
        &["web1.prod.loc"],
    );
    // "P | Grains PCRE | P@os:(RedHat|Fedora|CentOS)"
    salt(
        Compound,
        "P@os:(RedHat|Fedora|CentOS)",
        &["web-dc1-srv", "web1.prod.loc", "ms-1"],
    );
    // "L | List of minions | L@minion1.example.com,minion3.domain.com or bl*.domain.com"
    salt(
        Compound,
        "L@minion1.example.com,minion3.domain.com or bl*.domain.com",
        &["bl1.domain.com", "minion1.example.com"],
    );
    // "I | Pillar glob | I@pdata:foobar"
    salt(Compound, "I@pdata:foobar", &["webserv1"]);
    // "S | Subnet/IP address | S@192.168.1.0/24 or S@192.168.1.100"
    salt(
        Compound,
        "S@192.168.1.0/24 or S@192.168.1.100",
        &["webserv1", "webserv2"],
    );
    // "R | Range cluster | R@%foo.bar": here R@ is a glob on roles, and no
    // node has the role `%foo.bar`.
    salt(Compound, "R@%foo.bar", &[]);
    // "J | Pillar PCRE | J@pdata:^(foo|bar)$": not in this project.
    check_refusal_in(
        &salt_groups(),
        Compound,
        "J@pdata:^(foo|bar)$",
        ':',
        0,
        "unknown prefix `J@` (expected one of G@, P@, E@, L@, I@, F@, S@, R@, N@)",
    );
    // "N | Nodegroups | N@group1"
    salt(Compound, "N@group1", &["foo.domain.com", "bl1.domain.com"]);
}

#[test]
fn alternate_delimiters() {
    // "This is done by specifying an alternate delimiter character between
    // the leading matcher character and the @ pattern separator character …
    // salt -C 'J|@foo|bar|^foo:bar$ or J!@gitrepo!https://github.com:example/project.git'"
    // J@ (pillar regex) is absent; the same forms on I@ and P@:
    salt(
        Compound,
        "I!@gitrepo!https://github.com:example/project.git",
        &["web-dc1-srv"],
    );
    salt(
        Compound,
        "P|@ec2_tags|environment|^(pre)?production",
        &["webserv1", "web-dc1-srv"],
    );
    salt(
        Compound,
        "G|@ipv6|2001:db8::ff00:42:8329 or I!@clone_url!*/salt.git",
        &["webserv1", "webserv2"],
    );
}

#[test]
fn match_module() {
    // "salt '*' match.grain 'os:Ubuntu'"
    salt(Grain, "os:Ubuntu", &["webserv2"]);
    // "salt '*' match.grain 'ipv6|2001:db8::ff00:42:8329' delimiter='|'"
    salt_with(Grain, "ipv6|2001:db8::ff00:42:8329", '|', &["webserv1"]);
    // "salt '*' match.grain_pcre 'os:Fedo.*'"
    salt(GrainRegex, "os:Fedo.*", &["web1.prod.loc"]);
    // "salt '*' match.grain_pcre 'ipv6|2001:.*' delimiter='|'"
    salt_with(
        GrainRegex,
        "ipv6|2001:.*",
        '|',
        &["webserv1", "web-dc1-srv"],
    );
    // "salt '*' match.pillar 'cheese:foo'"
    salt(Label, "cheese:foo", &["mac-1"]);
    // "salt '*' match.pillar 'clone_url|https://github.com/saltstack/salt.git' delimiter='|'"
    salt_with(
        Label,
        "clone_url|https://github.com/saltstack/salt.git",
        '|',
        &["webserv2"],
    );
    // "salt '*' match.list 'server1,server2'"
    salt(List, "server1,server2", &[]);
    // "salt '*' match.pcre '.*'" and "salt '*' match.glob '*'"
    salt(Regex, ".*", &every());
    salt(Glob, "*", &every());
}

#[test]
fn subdict_match() {
    // salt.utils.data.subdict_match: "'foo:bar:baz' will match
    // data['foo'] == 'bar:baz' and data['foo']['bar'] == 'baz'."
    salt(Grain, "foo:bar:baz", &["ms-1", "ms-3"]);
    // A dict-valued grain is matched by its keys: `foo` of ms-3 holds `bar`.
    salt(Grain, "foo:bar", &["ms-3", "bl1.domain.com"]);
}

#[test]
fn nodegroups_topic() {
    // "nodegroups:
    //    group1: 'L@foo.domain.com,bar.domain.com,baz.domain.com or bl*.domain.com'
    //    group2: 'G@os:Debian and foo.domain.com'
    //    group3: 'G@os:Debian and N@group1'
    //    group4:
    //      - 'G@foo:bar'
    //      - 'or'
    //      - 'G@foo:baz'"
    // "To match a nodegroup on the CLI, use the -N command-line option:
    // salt -N group1 test.ping"
    salt(NodeGroup, "group1", &["foo.domain.com", "bl1.domain.com"]);
    salt(NodeGroup, "group2", &["foo.domain.com"]);
    salt(NodeGroup, "group3", &["foo.domain.com"]);
    salt(
        NodeGroup,
        "group4",
        &["ms-3", "foo.domain.com", "bl1.domain.com"],
    );
}
