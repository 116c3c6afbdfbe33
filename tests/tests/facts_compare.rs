//! The agent's grains and facts against the real tools on this machine:
//! Salt's `salt-call --local grains.items` (Salt from PyPI, in a venv) and
//! Facter's `facter --json` (Debian's package; tests/run installs it).
//!
//! Every key either tool reports, and every key the agent reports, is
//! compared (nested facts leaf by leaf, by dotted path). A key that differs
//! must be in [`SALT`] or [`FACTER`] with the kind of difference and the
//! reason, one line each; any other difference fails the test, naming the
//! key and both values. Figures that move by themselves (free memory, load,
//! uptime, a mount's free space, Salt's `pid`) are never compared.

use serde_json::{Map, Value};
use std::path::Path;
use std::process::Command;

/// How a key differs, on purpose.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The agent has it, the tool does not.
    Added,
    /// The tool has it, the agent does not.
    Absent,
    /// Both have it, with other values.
    Value,
}
use Kind::*;

/// One intended difference: a dotted path (`*` is any one segment), how it
/// differs, and why.
type Intended = (&'static str, Kind, &'static str);

/// Where the grains differ from Salt's, and why.
const SALT: &[Intended] = &[
    ("agent_version", Added, "in place of saltversion"),
    ("roles", Added, "the agent's roles from its config"),
    ("timezone", Added, "Salt has it on Windows only"),
    (
        "locale_info.defaultlanguage",
        Value,
        "Python 3.11 normalises C.UTF-8 to en_US.UTF-8 (3.12 does not): the agent says C",
    ),
    (
        "domain",
        Absent,
        "absent rather than \"\" when the host has no domain",
    ),
    (
        "systemd.features",
        Absent,
        "from `systemctl --version`, which is not run",
    ),
    (
        "pid",
        Absent,
        "changes at every start: an agent back unchanged costs no write",
    ),
    (
        "cwd",
        Absent,
        "the process's working directory, not the machine's",
    ),
    ("ps", Absent, "a command line for Salt's ps module"),
    ("master", Absent, "Salt's minion setting"),
    ("server_id", Absent, "a hash of Salt's minion id"),
    ("efi", Absent, "not provided"),
    ("efi-secure-boot", Absent, "not provided"),
    ("fibre_channel_host", Absent, "not provided"),
    (
        "transactional",
        Absent,
        "Salt's transactional-update support",
    ),
    ("package", Absent, "how Salt was installed"),
    ("ca_truststore", Absent, "Salt's HTTP client's CA bundle"),
    ("saltpath", Absent, "Salt's own"),
    ("saltversion", Absent, "Salt's own"),
    ("saltversioninfo", Absent, "Salt's own"),
    ("pythonexecutable", Absent, "Salt's own"),
    ("pythonpath", Absent, "Salt's own"),
    ("pythonversion", Absent, "Salt's own"),
    ("zmqversion", Absent, "Salt's own"),
];

/// Where the facts differ from Facter's, and why.
const FACTER: &[Intended] = &[
    (
        "virtual",
        Added,
        "Facter's resolver fails here (see FACTER_ERRORS); Salt's agrees",
    ),
    (
        "is_virtual",
        Added,
        "Facter's resolver fails here (see FACTER_ERRORS)",
    ),
    ("os.selinux", Absent, "not provided"),
    (
        "processors.speed",
        Absent,
        "cpuinfo's `cpu MHz` moves with frequency scaling",
    ),
    (
        "processors.isa",
        Value,
        "the kernel's architecture, not `uname -p` (`unknown`)",
    ),
    ("facterversion", Absent, "Facter's own"),
    ("ruby.*", Absent, "Facter's own"),
];

/// Errors Facter may log here, and why they are not the agent's business.
const FACTER_ERRORS: &[(&str, &str)] = &[(
    "Permission denied @ rb_sysopen - /proc/1/environ",
    "pid 1's environment is closed even to root in this VM: Facter's container check fails, and with it `virtual`, `is_virtual`, `dmi`, `hypervisors`",
)];

/// Never compared: figures that move by themselves.
const LIVE: &[&str] = &[
    "load_averages.*",
    "system_uptime.*",
    "memory.*.available",
    "memory.*.available_bytes",
    "memory.*.used",
    "memory.*.used_bytes",
    "memory.*.capacity",
    "mountpoints.*.available",
    "mountpoints.*.available_bytes",
    "mountpoints.*.used",
    "mountpoints.*.used_bytes",
    "mountpoints.*.capacity",
];

#[test]
fn grains_agree_with_salt_call() {
    let m = cluster_agent::facts::collect();
    let ours = cluster_agent::facts::grains(&m.host_name, &m, &[], &Map::new());
    let theirs = salt_grains();
    assert_eq!(
        theirs.get("id").and_then(Value::as_str),
        Some(m.host_name.as_str()),
        "salt-call names the minion by the hostname, as the agent's grains were made"
    );
    let problems = compare(&ours, &theirs, SALT, 1);
    assert!(
        problems.is_empty(),
        "grains against salt-call:\n{}",
        problems.join("\n")
    );
}

#[test]
fn facts_agree_with_facter() {
    let m = cluster_agent::facts::collect();
    let ours = cluster_agent::facts::facts(&m);
    let theirs = facter_facts();
    let problems = compare(&ours, &theirs, FACTER, usize::MAX);
    assert!(
        problems.is_empty(),
        "facts against facter --json:\n{}",
        problems.join("\n")
    );
}

/// `salt-call --local grains.items --out json` with a config directory of
/// its own, so it writes nothing under /etc or /var.
fn salt_grains() -> Map<String, Value> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("salt-venv");
    let (mut salt_call, _conf) = cluster_tests::python::salt_grains_command(&venv);
    let out = salt_call
        .output()
        .unwrap_or_else(|e| panic!("{salt_call:?} runs: {e}"));
    assert!(
        out.status.success(),
        "salt-call grains.items: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Value = serde_json::from_slice(&out.stdout).expect("salt-call prints JSON");
    match v["local"].take() {
        Value::Object(g) => g,
        other => panic!("salt-call's JSON has no `local` object: {other}"),
    }
}

/// `facter --json`. Facter exits 1 when a resolver failed; the failures it
/// may have here are in [`FACTER_ERRORS`], any other fails the test.
fn facter_facts() -> Map<String, Value> {
    let out = Command::new("facter")
        .arg("--json")
        .output()
        .unwrap_or_else(|e| {
            panic!("facter does not run ({e}): run tests/run, which installs Debian's facter")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    let unknown: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR") && !FACTER_ERRORS.iter().any(|(e, _)| l.contains(e)))
        .collect();
    assert!(
        unknown.is_empty() && (out.status.success() || !stderr.is_empty()),
        "facter --json ({}): {stderr}",
        out.status
    );
    match serde_json::from_slice(&out.stdout).expect("facter prints JSON") {
        Value::Object(f) => f,
        other => panic!("facter --json is not an object: {other}"),
    }
}

/// Every difference between `ours` and `theirs` that `intended` does not
/// list, one line each. Values are compared whole below `depth` segments
/// (Salt's grains: 1, so an interface's address list is one value), leaf
/// by leaf above it, except where a path of `intended` ends deeper.
fn compare(
    ours: &Map<String, Value>,
    theirs: &Map<String, Value>,
    intended: &[Intended],
    depth: usize,
) -> Vec<String> {
    let (ours, theirs) = (
        flatten(ours, depth, intended),
        flatten(theirs, depth, intended),
    );
    let mut keys: Vec<&Vec<String>> = ours.keys().chain(theirs.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut problems = Vec::new();
    let mut used = vec![false; intended.len()];
    for key in keys {
        let shown = key.join(".");
        if LIVE.iter().any(|p| matches(p, key)) {
            continue;
        }
        let kind = match (ours.get(key), theirs.get(key)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => Value,
            (Some(_), None) => Added,
            (None, Some(_)) => Absent,
            (None, None) => unreachable!(),
        };
        let listed = intended.iter().position(|(p, _, _)| matches(p, key));
        let listed = listed.map(|i| {
            used[i] = true;
            intended[i]
        });
        match listed {
            Some((_, k, why)) if k == kind => eprintln!("{shown}: {kind:?}, intended: {why}"),
            _ => problems.push(format!(
                "{shown}: agent {}, the tool {}{}",
                shown_value(ours.get(key)),
                shown_value(theirs.get(key)),
                match listed {
                    Some((p, k, why)) => format!(" (listed as {k:?} at {p}: {why})"),
                    None => String::new(),
                }
            )),
        }
    }
    // Not a failure: another machine has other differences than this one.
    for ((p, _, _), used) in intended.iter().zip(used) {
        if !used {
            eprintln!("{p}: listed, but no difference on this machine");
        }
    }
    problems
}

fn shown_value(v: Option<&Value>) -> String {
    v.map_or("has none".into(), |v| format!("says {v}"))
}

/// `pattern` (dotted, `*` any one segment) matches `path` or a prefix of it.
fn matches(pattern: &str, path: &[String]) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    p.len() <= path.len() && p.iter().zip(path).all(|(p, s)| *p == "*" || p == s)
}

/// The leaves of `tree` by path; a value `depth` segments down is a leaf,
/// unless an intended path goes deeper.
fn flatten(
    tree: &Map<String, Value>,
    depth: usize,
    intended: &[Intended],
) -> std::collections::BTreeMap<Vec<String>, Value> {
    fn walk(
        at: Vec<String>,
        v: &Value,
        depth: usize,
        deeper: &dyn Fn(&[String]) -> bool,
        out: &mut std::collections::BTreeMap<Vec<String>, Value>,
    ) {
        let children: Vec<(String, &Value)> = match v {
            Value::Object(o) if !o.is_empty() => o.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Value::Array(a) if !a.is_empty() => a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
            _ => Vec::new(),
        };
        if children.is_empty() || (at.len() >= depth && !deeper(&at)) {
            out.insert(at, v.clone());
            return;
        }
        for (k, child) in children {
            let mut path = at.clone();
            path.push(k);
            walk(path, child, depth, deeper, out);
        }
    }
    let deeper = |at: &[String]| {
        intended.iter().any(|(p, _, _)| {
            let p: Vec<&str> = p.split('.').collect();
            p.len() > at.len() && p.iter().zip(at).all(|(p, s)| *p == "*" || p == s)
        })
    };
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in tree {
        walk(vec![k.clone()], v, depth, &deeper, &mut out);
    }
    out
}
