//! The README's own commands, as written: "Setting up a cluster" run line
//! by line against real processes. Only what cannot work on a test machine
//! is substituted, and said so here: the data directory (a temporary one),
//! the documented address 10.0.0.2 (a loopback address and a free port),
//! the token and fingerprint (the ones `token create` printed), and the
//! master's HTTP port (off: other tests may hold its default). The agent's
//! data directory, health port and hosts file — left at their defaults by
//! the README — are pointed elsewhere through their documented
//! `CLUSTERCTL_*` variables, so the test leaves the machine as it was.

use cluster_tests::{Proc, bin};
use std::path::Path;
use std::process::Command;

const README: &str = include_str!("../../README.md");

/// A free port on `ip`.
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An environment assignment before a command, as sh reads it
/// (`CLUSTERCTL_JOIN_TOKEN=… cluster-agent …`).
fn assignment(word: &str) -> Option<(&str, &str)> {
    word.split_once('=')
        .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

/// `line` without its leading environment assignments.
fn program(line: &str) -> String {
    line.split_whitespace()
        .skip_while(|w| assignment(w).is_some())
        .collect::<Vec<_>>()
        .join(" ")
}

fn command(line: &str, home: &Path) -> Command {
    let all: Vec<&str> = line.split_whitespace().collect();
    let env: Vec<(&str, &str)> = all.iter().map_while(|w| assignment(w)).collect();
    let words = &all[env.len()..];
    let mut cmd = Command::new(bin(words[0]));
    cmd.envs(env);
    cmd.args(&words[1..])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("NO_COLOR", "1");
    cmd
}

#[test]
fn setting_up_a_cluster_works_as_written() {
    let commands = cluster_tests::readme::commands_under(README, "### Setting up a cluster", 0);
    let firsts: Vec<&str> = commands
        .iter()
        .map(|c| {
            program(c)
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .map(|c| match c.as_str() {
            c if c.starts_with("cluster-master init") => "init",
            c if c.starts_with("cluster-master") => "serve",
            c if c.starts_with("clusterctl token create") => "token",
            c if c.starts_with("cluster-agent") => "agent",
            _ => "other",
        })
        .collect();
    assert_eq!(firsts, ["init", "serve", "token", "agent"], "{commands:#?}");

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let data = home.join("master");
    let ip = "127.0.0.41";
    let listen = format!("{ip}:{}", free_port(ip));
    let here = |c: &str| {
        c.replace("/var/lib/clusterctl/master", data.to_str().unwrap())
            .replace("10.0.0.2:7440", &listen)
            .replace("10.0.0.2", ip)
    };

    // init: the CA, an admin identity, a context in the user's config.
    let init = command(&here(&commands[0]), home).output().unwrap();
    assert!(
        init.status.success(),
        "{}\n{}",
        commands[0],
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(data.join("pki/ca.crt").exists());

    // Serve.
    let (_master, _) = Proc::start(serve_cmd(&here(&commands[1]), home), "master ready")
        .unwrap_or_else(|e| panic!("{}: {e}", commands[1]));

    // A token, from the context init wrote.
    let token = command(&here(&commands[2]), home).output().unwrap();
    let printed = String::from_utf8_lossy(&token.stdout).into_owned();
    assert!(
        token.status.success(),
        "{}\n{printed}\n{}",
        commands[2],
        String::from_utf8_lossy(&token.stderr)
    );
    let value = |label: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} in:\n{printed}"))
    };
    let (secret, fingerprint) = (value("token:"), value("ca fingerprint:"));

    // A node joins with them.
    let agent_line = here(&commands[3])
        .replace("3f9a1c.8e…", &secret)
        .replace("sha256:7b64…", &fingerprint);
    let mut agent = command(&agent_line, home);
    agent
        .env("CLUSTERCTL_DATA_DIR", home.join("agent"))
        .env("CLUSTERCTL_HEALTH_LISTEN", "127.0.0.42:0")
        .env("CLUSTERCTL_HOSTS_FILE", home.join("hosts"));
    let (_agent, _) =
        Proc::start(agent, "session open").unwrap_or_else(|e| panic!("{agent_line}: {e}"));

    // And the cluster knows it, as web.
    let nodes = command("clusterctl nodes -o json", home).output().unwrap();
    assert!(
        nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
    let nodes: serde_json::Value = serde_json::from_slice(&nodes.stdout).unwrap();
    let web1 = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "web-1")
        .unwrap_or_else(|| panic!("no web-1 in {nodes}"));
    assert_eq!(web1["roles"], serde_json::json!(["web"]));
}

/// The serving command, with the HTTP side moved off its default port
/// (which another test may hold).
fn serve_cmd(line: &str, home: &Path) -> Command {
    let mut cmd = command(line, home);
    cmd.arg("--http-listen").arg("off");
    cmd
}
