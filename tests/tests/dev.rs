//! The README's first command: `clusterctl dev` starts a live cluster that a
//! second clusterctl finds through the context it wrote.

use cluster_cli::Env;
use cluster_tests::{ctl::ctl_env, eventually, get};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn dev_starts_a_cluster_a_newcomer_can_drain_and_stops_on_ctrl_c() {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(cluster_tests::bin("clusterctl"))
        .args([
            "dev",
            "--port",
            "0",
            "--http-port",
            "0",
            "--health-port",
            "0",
        ])
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("CLUSTERCTL_MASTER")
        .env_remove("CLUSTERCTL_CONTEXT")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(home.path().join("dev.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(home.path().join("dev.log")).unwrap_or_default();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    while !banner
        .iter()
        .any(|l: &String| l.contains("clusterctl events"))
    {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => banner.push(line),
            Err(_) => panic!(
                "no banner from clusterctl dev; got:\n{}\nits log:\n{}",
                banner.join("\n"),
                log()
            ),
        }
    }
    let banner = banner.join("\n");
    let health_url = banner
        .lines()
        .find(|l| l.trim_start().starts_with("node1"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no node1 line in:\n{banner}"))
        .to_owned();
    assert!(health_url.starts_with("http://127.0.0.2:"), "{health_url}");
    assert!(banner.contains("clusterctl drain node1"), "{banner}");

    // Another terminal: no flags, the dev context is current.
    let env = Env {
        config_home: home.path().to_owned(),
        ..Env::for_tests()
    };
    let nodes = ctl_env(&env, &["nodes", "-o", "json"]).await.ok().json();
    let names: Vec<_> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"]);

    ctl_env(&env, &["drain", "node1", "--reason", "deploy", "--wait"])
        .await
        .ok();
    assert_eq!(get(&health_url).await.0, 503);
    ctl_env(&env, &["undrain", "node1", "--wait"]).await.ok();
    assert_eq!(get(&health_url).await.0, 200);

    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l == "stopped."), "{rest:?}");
    eventually("the health port closed", Duration::from_secs(5), || async {
        get(&health_url).await.0 == 0
    })
    .await;
}
