//! `clusterctl target` as a process, offline against a nodes file: the
//! `--delimiter` flag (with -G, -P, -I and -F only), `-F` and `F@` on the
//! nodes' facts, and the help that names them.

use std::process::Command;

/// Runs clusterctl with `args`; its exit code, stdout and stderr.
fn clusterctl(args: &[&str]) -> (Option<i32>, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clusterctl"))
        .args(args)
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("CLUSTERCTL_MASTER")
        .env_remove("CLUSTERCTL_CONTEXT")
        .output()
        .expect("run clusterctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Three nodes' grains, each with Facter-shaped facts under `facts`.
fn nodes_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let nodes = serde_json::json!({
        "web-1": {
            "os": "Debian", "ipv6": ["fe80::1"], "ip_interfaces": {"eth0": ["10.0.1.11"]},
            "facts": {"os": {"family": "Debian", "release": {"major": "12"}}, "is_virtual": true},
        },
        "web-2": {
            "os": "Ubuntu", "ipv6": ["fd00::2"], "ip_interfaces": {"ens3": ["10.0.1.12"]},
            "facts": {"os": {"family": "Debian", "release": {"major": "22.04"}}, "is_virtual": false},
        },
        "db-1": {
            "os": "CentOS", "ip_interfaces": {"eth0": ["10.0.2.21"]},
            "facts": {"os": {"family": "RedHat", "release": {"major": "7"}}},
        },
    });
    std::fs::write(file.path(), nodes.to_string()).unwrap();
    file
}

/// `clusterctl target ARGS --nodes FILE`: exit code, stdout, stderr.
fn target(args: &[&str]) -> (Option<i32>, String, String) {
    let file = nodes_file();
    let path = file.path().to_str().unwrap().to_owned();
    let mut all = vec!["target"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--nodes", &path]);
    clusterctl(&all)
}

#[track_caller]
fn matches(args: &[&str], expected: &str) {
    let (code, out, err) = target(args);
    assert_eq!((code, out.as_str()), (Some(0), expected), "{args:?}: {err}");
}

#[track_caller]
fn refused(args: &[&str], message: &str) {
    let (code, _, err) = target(args);
    assert_eq!(code, Some(2), "{args:?}: {err}");
    assert!(err.contains(message), "{args:?}:\n{err}");
}

#[test]
fn a_delimiter_goes_with_grains_labels_and_facts() {
    matches(&["-G", "--delimiter", "%", "ipv6%fe80::*"], "web-1\n");
    matches(&["--delimiter=|", "-P", "ipv6|f[de]"], "web-1\nweb-2\n");
    matches(&["-G", "ip_interfaces:*:10.0.1.*"], "web-1\nweb-2\n");
    matches(
        &["-F", "--delimiter", "%", "os.family%Debian"],
        "web-1\nweb-2\n",
    );
    matches(
        &["-C", "G%@ipv6%fd00::* or F@os.family:RedHat"],
        "db-1\nweb-2\n",
    );
    refused(
        &["-C", "--delimiter", "%", "G%@os%Debian"],
        "error: --delimiter goes with -G, -P, -I or -F; in -C, write it after the prefix: `G%@key%value`",
    );
    refused(
        &["-E", "--delimiter", "%", "web"],
        "error: --delimiter goes with -G, -P, -I or -F, not with -E",
    );
    refused(
        &["--delimiter", "%", "web-*"],
        "error: --delimiter goes with -G, -P, -I or -F, not with names",
    );
    refused(
        &["-F", "--delimiter", ".", "os.family.Debian"],
        "`.` cannot be F@'s delimiter",
    );
}

#[test]
fn a_delimiter_is_one_usable_character() {
    refused(
        &["-G", "--delimiter", "%%", "os%%Debian"],
        "a delimiter is one character, not 2 (`%%`)",
    );
    refused(
        &["-G", "--delimiter", "", "os:Debian"],
        "a delimiter is one character; none was given",
    );
    refused(
        &["-G", "--delimiter", "*", "os*Debian"],
        "`*` cannot be a delimiter: it is a glob metacharacter",
    );
    refused(
        &["-G", "--delimiter", " ", "os Debian"],
        "a delimiter cannot be whitespace",
    );
}

#[test]
fn facts_are_targeted_by_their_dotted_path() {
    matches(&["-F", "os.release.major:1?"], "web-1\n");
    matches(&["-F", "is_virtual:*"], "web-1\nweb-2\n");
    matches(&["-C", "F@os.family:Debian and not G@os:Ubuntu"], "web-1\n");
    refused(
        &["-F", "os.family"],
        "expected PATH:VALUE with a dotted path (os.family:Debian), found `os.family`",
    );
}

#[test]
fn help_names_the_new_forms() {
    let (code, out, _) = clusterctl(&["nodes", "--help"]);
    assert_eq!(code, Some(0));
    for wanted in ["--delimiter <CHAR>", "-F, --fact", "F@", "G%@key%value"] {
        assert!(
            out.contains(wanted),
            "`nodes --help` names {wanted}:\n{out}"
        );
    }
}
