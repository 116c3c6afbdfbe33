//! The README's first command: `clusterctl dev` starts a live cluster that a
//! second clusterctl finds through the context it wrote; and its
//! several-masters form, `clusterctl dev --masters 3`.

use cluster_cli::Env;
use cluster_tests::{ctl::ctl_env, eventually, get};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `clusterctl dev`: a test that fails stops it (Ctrl-C, so it
/// stops what it started; SIGKILL if it has not within 10 s).
struct Dev(Option<Child>);

impl Dev {
    fn take(mut self) -> Child {
        self.0.take().expect("taken once")
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `clusterctl dev ARGS` with every port left to the system, its stdout
/// lines on a channel, its log in `home/dev.log`.
fn spawn_dev(home: &std::path::Path, args: &[&str]) -> (Dev, mpsc::Receiver<String>) {
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
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("CLUSTERCTL_MASTER")
        .env_remove("CLUSTERCTL_CONTEXT")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(home.join("dev.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Dev(Some(child)), rx)
}

/// The banner, up to the line containing `last`.
fn banner(rx: &mpsc::Receiver<String>, last: &str, home: &std::path::Path) -> String {
    let mut banner = Vec::new();
    while !banner.iter().any(|l: &String| l.contains(last)) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => banner.push(line),
            Err(_) => panic!(
                "no banner from clusterctl dev; got:\n{}\nits log:\n{}",
                banner.join("\n"),
                std::fs::read_to_string(home.join("dev.log")).unwrap_or_default()
            ),
        }
    }
    banner.join("\n")
}

/// node1's health URL, from its banner line `  node1  http://…/health  (role …)`.
fn node1_health(banner: &str) -> String {
    banner
        .lines()
        .find(|l| l.trim_start().starts_with("node1"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no node1 line in:\n{banner}"))
        .to_owned()
}

/// The dashboard's URL and the token to log in with, from the banner's
/// `Dashboard: http://…/ — log in with the API token` and the next line.
fn dashboard(banner: &str) -> (String, String) {
    let mut lines = banner.lines().skip_while(|l| !l.starts_with("Dashboard: "));
    let url = lines
        .next()
        .and_then(|l| l.strip_prefix("Dashboard: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no dashboard line in:\n{banner}"))
        .to_owned();
    let token = lines.next().unwrap_or_default().trim().to_owned();
    assert!(
        token.contains('.'),
        "the token on the line after:\n{banner}"
    );
    (url, token)
}

/// Ctrl-C: it exits 0 and says so.
async fn interrupt(dev: Dev, rx: &mpsc::Receiver<String>) {
    let mut child = dev.take();
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
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_starts_a_cluster_a_newcomer_can_drain_and_stops_on_ctrl_c() {
    let home = tempfile::tempdir().unwrap();
    let (child, rx) = spawn_dev(home.path(), &[]);
    let banner = banner(&rx, "clusterctl events", home.path());
    let health_url = node1_health(&banner);
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

    // `top` for scripts: a row a node, each with its state.
    let rows = ctl_env(&env, &["top", "--once", "-o", "json"])
        .await
        .ok()
        .json();
    let mut rows: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("node1", "online"),
            ("node2", "online"),
            ("node3", "online")
        ]
    );

    ctl_env(&env, &["drain", "node1", "--reason", "deploy", "--wait"])
        .await
        .ok();
    assert_eq!(get(&health_url).await.0, 503);
    ctl_env(&env, &["undrain", "node1", "--wait"]).await.ok();
    assert_eq!(get(&health_url).await.0, 200);

    // The dashboard it names, with the token it prints.
    let (dashboard, token) = dashboard(&banner);
    let (code, body) =
        cluster_tests::http::send("GET", &format!("{dashboard}api/v1/nodes"), &token, None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("node3"), "{body}");
    let (code, body) = get(&dashboard).await;
    assert!(
        code == 303 || body.contains("Log in"),
        "the dashboard asks for a login: {code} {body}"
    );

    interrupt(child, &rx).await;
    eventually("the health port closed", Duration::from_secs(5), || async {
        get(&health_url).await.0 == 0
    })
    .await;
}

/// The README's several-masters command: `clusterctl dev --masters 3`
/// starts a real etcd cluster and three masters; the leader killed with
/// SIGKILL, another leads and a drain still goes through; Ctrl-C stops
/// every process it started.
#[tokio::test(flavor = "multi_thread")]
async fn dev_with_three_masters_survives_a_kill_of_the_leader() {
    let home = tempfile::tempdir().unwrap();
    let (child, rx) = spawn_dev(home.path(), &["--masters", "3"]);
    let banner = banner(&rx, "kill -9", home.path());
    // "  master m1   https://127.0.0.1:…  (HTTP: …/metrics)  pid 123"
    let pids: Vec<(String, i32)> = banner
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                ["master", name, .., "pid", pid] | ["etcd", name, .., "pid", pid] => {
                    Some((name.to_string(), pid.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect();
    assert_eq!(pids.len(), 6, "3 masters and 3 etcd members:\n{banner}");
    let env = Env {
        config_home: home.path().to_owned(),
        ..Env::for_tests()
    };
    let leader = || async {
        let view = ctl_env(&env, &["masters", "-o", "json"]).await;
        (view.code == 0).then(|| view.json()).and_then(|v| {
            v["masters"]
                .as_array()?
                .iter()
                .find(|m| m["leader"] == true)
                .and_then(|m| m["name"].as_str().map(str::to_owned))
        })
    };
    // Once the banner is out, all three masters answer, and one leads.
    let all_up = || async {
        let view = ctl_env(&env, &["masters", "-o", "json"]).await;
        view.code == 0
            && view.json()["masters"]
                .as_array()
                .is_some_and(|m| m.iter().filter(|m| m.get("error").is_none()).count() == 3)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !all_up().await {
        if std::time::Instant::now() > deadline {
            let view = ctl_env(&env, &["masters"]).await;
            panic!(
                "not all three masters answer 30 s after the banner:\n{}{}\nclusterctl dev's log:\n{}",
                view.stdout,
                view.stderr,
                std::fs::read_to_string(home.path().join("dev.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("a master leads", Duration::from_secs(30), || async {
        leader().await.is_some()
    })
    .await;
    let first = leader().await.expect("a leader a moment ago");
    let pid = pids
        .iter()
        .find(|(name, _)| *name == first)
        .map(|(_, pid)| *pid)
        .unwrap_or_else(|| panic!("no pid for {first} in:\n{banner}"));
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while leader().await.is_none_or(|l| l == first) {
        if std::time::Instant::now() > deadline {
            let view = ctl_env(&env, &["masters"]).await;
            panic!(
                "30 s after {first} (pid {pid}) was killed, no other master leads:\n{}{}\nclusterctl dev's log:\n{}",
                view.stdout,
                view.stderr,
                std::fs::read_to_string(home.path().join("dev.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health_url = node1_health(&banner);
    ctl_env(&env, &["drain", "node1", "--reason", "deploy", "--wait"])
        .await
        .ok();
    assert_eq!(get(&health_url).await.0, 503);

    interrupt(child, &rx).await;
    // Nothing it started is left running.
    for (name, pid) in &pids {
        eventually(
            &format!("{name} (pid {pid}) gone"),
            Duration::from_secs(10),
            || async {
                (unsafe { libc::kill(*pid, 0) }) != 0
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .unwrap_or_default()
                        .contains(") Z ")
            },
        )
        .await;
    }
}
