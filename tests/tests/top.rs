//! The operator's live views end to end: `clusterctl top` (once, as JSON,
//! and full screen in a real terminal — tmux — driven by its keys),
//! `events --follow` across a master's restart, and `nodes --watch`.
//! Everything on 127.0.0.170–179.

use cluster_tests::{Admin, AgentProc, MasterProc, connected, ctl, eventually};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

fn master(ip: &str) -> MasterProc {
    let port = cluster_tests::lb::free_port(ip);
    MasterProc::builder()
        .listen(&format!("{ip}:{port}"))
        .spawn()
}

/// The environment a clusterctl process needs to reach `admin`'s master
/// (and nothing from the caller's own config).
fn ctl_env(cmd: &mut Command, admin: &Admin, home: &std::path::Path) {
    cmd.env("CLUSTERCTL_MASTER", &admin.url)
        .env("CLUSTERCTL_CA", &admin.ca)
        .env("CLUSTERCTL_CERT", &admin.cert)
        .env("CLUSTERCTL_KEY", &admin.key)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("CLUSTERCTL_CONTEXT")
        .env_remove("CLUSTERCTL_CONFIG");
}

/// A clusterctl process whose stdout lines are collected; killed when
/// dropped.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _home: tempfile::TempDir,
}

impl Follower {
    fn spawn(admin: &Admin, args: &[&str]) -> Follower {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(cluster_tests::bin("clusterctl"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        ctl_env(&mut cmd, admin, home.path());
        let mut child = cmd.spawn().expect("clusterctl starts");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Follower {
            child,
            lines,
            _home: home,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every line so far as JSON (each must be one object).
    fn json(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not one JSON object a line ({e}): {l:?}"));
                assert!(v.is_object(), "{l}");
                v
            })
            .collect()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn top_once_as_json_has_a_row_per_node_with_its_figures() {
    // The db role's memory lines are so low that any memory in use is
    // critical (alerts off): `top` colours by the node's own levels.
    let ip = "127.0.0.170";
    let master = MasterProc::builder()
        .listen(&format!("{ip}:{}", cluster_tests::lb::free_port(ip)))
        .config(
            "[alerts.roles.db]\n\
             memory = { careful = 0, warning = 0.001, critical = 0.002, clear = 0, enabled = false }",
        )
        .spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.171")
        .role("web")
        .spawn();
    let _b = AgentProc::builder("db-1", &master)
        .addr("127.0.0.172")
        .role("db")
        .spawn();
    connected(&admin, 2).await;
    // The second sample is the first with a true CPU figure.
    let rows = || async {
        ctl(&admin, &["top", "--once", "-o", "json"])
            .await
            .ok()
            .json()
    };
    eventually("every row with its figures", PATIENCE, || async {
        rows().await.as_array().is_some_and(|a| {
            a.len() == 2
                && a.iter()
                    .all(|r| r["cpu_percent"].is_number() && r["disk_percent"].is_number())
        })
    })
    .await;
    let rows = rows().await;
    let rows = rows.as_array().unwrap();
    let mut names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["db-1", "web-1"]);
    for r in rows {
        let pct = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert!((0.0..=100.0).contains(&pct("cpu_percent")), "{r}");
        assert!(
            pct("memory_percent") > 0.0 && pct("memory_percent") <= 100.0,
            "{r}"
        );
        assert!((0.0..=100.0).contains(&pct("disk_percent")), "{r}");
        assert!(r["disk_mount"].is_string(), "{r}");
        assert!(pct("load1") >= 0.0, "{r}");
        let cores = r["cores"].as_u64().expect("cores from num_cpus");
        assert!(cores >= 1, "{r}");
        let per_core = pct("load1_per_core");
        assert!((per_core - pct("load1") / cores as f64).abs() < 1e-9, "{r}");
        assert!(r["net_rx_bytes_per_sec"].is_u64(), "{r}");
        assert_eq!(r["state"], "online", "{r}");
        assert_eq!(r["connected"], true, "{r}");
        assert!(r["alerts"].is_u64(), "the firing alerts counted: {r}");
        for k in ["cpu", "memory", "load", "disk"] {
            assert!(
                matches!(
                    r["levels"][k].as_str(),
                    Some("ok" | "careful" | "warning" | "critical")
                ),
                "level of {k}: {r}"
            );
        }
    }
    let web = rows.iter().find(|r| r["name"] == "web-1").unwrap();
    assert_eq!(web["roles"], serde_json::json!(["web"]));
    // db-1 by its role's levels, web-1 by the cluster's (the defaults).
    let db = rows.iter().find(|r| r["name"] == "db-1").unwrap();
    assert_eq!(db["levels"]["memory"], "critical", "{db}");
    let web_memory = web["memory_percent"].as_f64().unwrap();
    let by_default = cluster_model::alerts::Levels::default()
        .memory
        .level(web_memory);
    assert_eq!(
        web["levels"]["memory"],
        serde_json::to_value(by_default).unwrap(),
        "{web}"
    );

    // Not on a terminal, plain `top` prints the table once and ends.
    let table = ctl(&admin, &["top"]).await.ok().stdout;
    assert!(
        table.starts_with("nodes 2  up 2  down 0  drained 0"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("web-1 ")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("db-1 ")), "{table}");
}

/// A tmux server of a test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    fn literally(&self, text: &str) {
        self.keys(&["-l", text]);
    }

    async fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) {
        eventually(what, PATIENCE, || async { check(&self.pane()) }).await;
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- the pane ---\n{}", self.pane());
        }
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The node names of the pane's rows, top to bottom.
fn row_order(pane: &str, names: &[&str]) -> Vec<String> {
    pane.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| names.contains(w))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn top_in_a_terminal_sorts_filters_by_a_target_and_quits_on_q() {
    let master = master("127.0.0.173");
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.174")
        .role("web")
        .spawn();
    let _b = AgentProc::builder("web-2", &master)
        .addr("127.0.0.175")
        .role("web")
        .spawn();
    let _c = AgentProc::builder("db-1", &master)
        .addr("127.0.0.176")
        .role("db")
        .spawn();
    connected(&admin, 3).await;

    let home = tempfile::tempdir().unwrap();
    let tmux = Tmux {
        socket: format!("clusterctl-top-{}", std::process::id()),
    };
    let mut start = Command::new("tmux");
    start.arg("-L").arg(&tmux.socket).args([
        "-f",
        "/dev/null",
        "start-server",
        ";",
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "200",
        "-y",
        "50",
    ]);
    // The pane's shell says how top ended and stays: what the terminal
    // shows after top is asserted on, whatever tmux does with dead panes.
    start.arg(format!(
        "{} top --interval 300ms; echo \"top exited $?\"; exec sleep 600",
        cluster_tests::bin("clusterctl").display()
    ));
    ctl_env(&mut start, &admin, home.path());
    start.env("TERM", "xterm-256color");
    let out = start.output().expect("tmux starts");
    assert!(out.status.success(), "tmux: {out:?}");

    let all = ["db-1", "web-1", "web-2"];
    tmux.wait_for("three rows and the header", |p| {
        p.contains("nodes 3  up 3  down 0  drained 0") && row_order(p, &all).len() == 3
    })
    .await;
    assert!(tmux.pane().contains(&admin.url), "the master in the header");

    // Sorted by name, then reversed.
    tmux.keys(&["a"]);
    tmux.wait_for("sorted by name", |p| {
        row_order(p, &all) == ["db-1", "web-1", "web-2"] && p.contains("sort name")
    })
    .await;
    tmux.keys(&["r"]);
    tmux.wait_for("by name, reversed", |p| {
        row_order(p, &all) == ["web-2", "web-1", "db-1"] && p.contains("(reversed)")
    })
    .await;

    // A drain shows at the next refresh.
    ctl(&admin, &["drain", "web-1", "--reason", "top"])
        .await
        .ok();
    tmux.wait_for("web-1 drained", |p| {
        p.contains("drained 1")
            && p.lines()
                .any(|l| l.starts_with("web-1") && l.contains("drained"))
    })
    .await;

    // A target, evaluated by the master.
    tmux.literally("/R@web");
    tmux.wait_for("the prompt", |p| p.contains("target: R@web_"))
        .await;
    tmux.keys(&["Enter"]);
    tmux.wait_for("only the web nodes", |p| {
        row_order(p, &all) == ["web-2", "web-1"] && p.contains("target R@web")
    })
    .await;

    // A bad expression: the master's error on the status line, the view
    // stays as it was, and top runs on.
    tmux.literally("/R@web and (");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the master's refusal", |p| {
        p.lines().any(|l| l.starts_with("target \"R@web and (\":"))
    })
    .await;
    let pane = tmux.pane();
    assert_eq!(row_order(&pane, &all), ["web-2", "web-1"], "{pane}");
    assert!(
        pane.lines().any(|l| l.trim_end().ends_with("target R@web")),
        "the old target kept: {pane}"
    );

    // Esc cancels a prompt without leaving top; q leaves.
    tmux.literally("/x");
    tmux.wait_for("the prompt with x", |p| p.contains("target: x_"))
        .await;
    tmux.keys(&["Escape"]);
    tmux.wait_for("the prompt closed", |p| !p.contains("target: x_"))
        .await;
    assert!(!tmux.pane().contains("top exited"), "top runs on");
    tmux.keys(&["q"]);
    tmux.wait_for("top ended, status 0", |p| p.contains("top exited 0"))
        .await;
    // The terminal is back: the table was on the alternate screen.
    let pane = tmux.pane();
    assert!(row_order(&pane, &all).is_empty(), "{pane}");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_follow_gets_a_drain_and_resumes_after_a_master_restart() {
    let mut master = master("127.0.0.177");
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.178")
        .spawn();
    connected(&admin, 1).await;

    let mut follow = Follower::spawn(
        &admin,
        &["events", "--follow", "-o", "json", "--limit", "3"],
    );
    eventually("the recent events", PATIENCE, || async {
        !follow.lines().is_empty()
    })
    .await;
    assert!(follow.json().len() <= 3, "{:?}", follow.lines());

    ctl(&admin, &["drain", "web-1", "--reason", "followed"])
        .await
        .ok();
    eventually("the drain's event", PATIENCE, || async {
        follow.json().iter().any(|e| {
            e["kind"] == "drain" && e["detail"].as_str().unwrap_or("").contains("followed")
        })
    })
    .await;

    // The master goes away (SIGKILL) and comes back on the same port;
    // events are written while the follow is away.
    master.restart();
    ctl(&admin, &["undrain", "web-1"]).await.ok();
    ctl(&admin, &["drain", "web-1", "--reason", "after-restart"])
        .await
        .ok();
    eventually("the events after the restart", PATIENCE, || async {
        follow.json().iter().any(|e| {
            e["kind"] == "drain" && e["detail"].as_str().unwrap_or("").contains("after-restart")
        })
    })
    .await;
    assert!(follow.running(), "the follow outlived the master");

    // Nothing twice, nothing lost: the followed sequence numbers are the
    // log's own from the first one printed on.
    let printed: Vec<u64> = follow
        .json()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let log = ctl(&admin, &["events", "-o", "json", "--limit", "10000"])
        .await
        .ok()
        .json();
    let first = printed[0];
    let last = *printed.last().unwrap();
    let want: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .filter(|s| (first..=last).contains(s))
        .collect();
    assert_eq!(printed, want, "followed vs the log");
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "undrain" && printed.contains(&e["seq"].as_u64().unwrap())),
        "the undrain written while the follow was away"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_watch_prints_the_line_of_a_node_drained() {
    let master = master("127.0.0.179");
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.171")
        .spawn();
    let _b = AgentProc::builder("web-2", &master)
        .addr("127.0.0.172")
        .spawn();
    connected(&admin, 2).await;

    let watch = Follower::spawn(&admin, &["nodes", "--watch"]);
    eventually("the table", PATIENCE, || async {
        let lines = watch.lines();
        lines.first().is_some_and(|h| h.starts_with("NAME"))
            && lines.iter().filter(|l| l.starts_with("web-")).count() == 2
    })
    .await;
    let table = watch.lines().len();

    ctl(&admin, &["drain", "web-2", "--reason", "watched"])
        .await
        .ok();
    eventually("web-2's line", PATIENCE, || async {
        watch.lines()[table..]
            .iter()
            .any(|l| l.starts_with("web-2 ") && l.contains("drained") && l.contains("watched"))
    })
    .await;
    // Usage reports (every 200 ms) are not news: web-1 printed nothing.
    let after = watch.lines()[table..].to_vec();
    assert!(after.iter().all(|l| !l.starts_with("web-1 ")), "{after:?}");

    // The same watch as NDJSON: the snapshot's nodes, then the change.
    let json = Follower::spawn(&admin, &["nodes", "--watch", "-o", "json"]);
    eventually("two nodes", PATIENCE, || async { json.lines().len() >= 2 }).await;
    ctl(&admin, &["undrain", "web-2"]).await.ok();
    eventually("web-2 online again", PATIENCE, || async {
        json.json()
            .iter()
            .skip(2)
            .any(|n| n["name"] == "web-2" && n["state"] == "online")
    })
    .await;
}
