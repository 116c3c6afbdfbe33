//! Targeting and remote execution against real master and agent processes.

use cluster_tests::{Admin, AgentProc, MasterProc, ctl, eventually};
use serde_json::Value;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(15);

async fn connected(admin: &Admin, n: usize) -> bool {
    let out = ctl(admin, &["nodes", "-o", "json"]).await;
    out.code == 0
        && out
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["connected"] == true)
            .count()
            == n
}

/// Processes whose command line is exactly `argv` (joined by NULs).
fn processes_running(argv: &[&str]) -> usize {
    let want = argv.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'));
            !zombie && std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes())
        })
        .count()
}

/// A master and agents web-1, web-2 (role web) and db-1 (role db), each
/// with a `job.sh` in its working directory.
async fn cluster(scripts: [&str; 3]) -> (MasterProc, Vec<AgentProc>, Admin) {
    let master = MasterProc::builder()
        .config("job_output_limit = 64")
        .spawn();
    let admin = master.admin();
    let agents: Vec<AgentProc> = [
        ("web-1", "127.0.0.2", "web"),
        ("web-2", "127.0.0.3", "web"),
        ("db-1", "127.0.0.4", "db"),
    ]
    .iter()
    .zip(scripts)
    .map(|((id, ip, role), script)| {
        let a = AgentProc::builder(id, &master).addr(ip).role(role).spawn();
        std::fs::write(a.work_dir().join("job.sh"), script).unwrap();
        a
    })
    .collect();
    eventually("three agents connected", PATIENCE, || connected(&admin, 3)).await;
    (master, agents, admin)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_reports_every_node_and_exits_non_zero_when_any_failed() {
    let (master, _agents, admin) = cluster([
        "echo hello from web-1",
        "echo oops >&2; exit 3",
        "exec sleep 31.5",
    ])
    .await;
    // A fourth node that is registered but gone: reported at once.
    let mut gone = AgentProc::builder("db-2", &master)
        .addr("127.0.0.5")
        .role("db")
        .spawn();
    eventually("db-2 connected", PATIENCE, || connected(&admin, 4)).await;
    gone.kill();
    eventually("db-2 disconnected", PATIENCE, || connected(&admin, 3)).await;

    let started = Instant::now();
    let out = ctl(
        &admin,
        &["run", "*", "--timeout", "1s", "--", "sh", "job.sh"],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let text = &out.stdout;
    assert!(text.contains("[web-1] out: hello from web-1"), "{text}");
    assert!(text.contains("[web-2] err: oops"), "{text}");
    assert!(text.contains("[web-2] exit 3"), "{text}");
    assert!(text.contains("[db-1] timed out after"), "{text}");
    // Not connected comes first, not after anyone's timeout.
    let nc = text.find("[db-2] not connected").expect(text);
    assert!(nc < text.find("[web-1] exit 0").expect(text), "{text}");
    assert!(
        out.stderr.contains("3 of 4 nodes did not succeed"),
        "{}",
        out.stderr
    );
    // The timed-out command was killed on its node.
    eventually("the sleep on db-1 is gone", PATIENCE, || async {
        processes_running(&["sleep", "31.5"]) == 0
    })
    .await;

    // The job is stored, with output (cut at the configured 64 bytes).
    let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.ok().json();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    let job = ctl(&admin, &["job", &id, "-o", "json"]).await.ok().json();
    let results = job["results"].as_array().unwrap();
    let by_node = |n: &str| results.iter().find(|r| r["node"] == n).unwrap().clone();
    assert_eq!(by_node("web-1")["status"], "ok");
    assert_eq!(by_node("web-1")["stdout"], "hello from web-1\n");
    assert_eq!(by_node("web-2")["status"], "failed");
    assert_eq!(by_node("web-2")["exit_code"], 3);
    assert_eq!(by_node("db-1")["status"], "timed out");
    assert_eq!(by_node("db-2")["status"], "not connected");
    let text = ctl(&admin, &["job", &id]).await.ok().stdout;
    assert!(text.contains("[web-2] err: oops"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn output_over_the_stored_limit_is_cut_with_a_note() {
    let (_master, _agents, admin) =
        cluster(["head -c 1000 /dev/zero | tr '\\0' x", "true", "true"]).await;
    let out = ctl(
        &admin,
        &["run", "web-1", "-o", "json", "--", "sh", "job.sh"],
    )
    .await
    .ok()
    .json();
    let r = &out["results"][0];
    assert_eq!(r["truncated"], true, "{out}");
    let id = out["id"].as_str().unwrap();
    let stored = ctl(&admin, &["job", id, "-o", "json"]).await.ok().json();
    assert_eq!(stored["results"][0]["stdout"].as_str().unwrap().len(), 64);
    let text = ctl(&admin, &["job", id]).await.ok().stdout;
    assert!(text.contains("output cut"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_1_never_runs_two_nodes_at_once() {
    let script = "echo start $(date +%s%N); sleep 0.3; echo end $(date +%s%N)";
    let (_master, _agents, admin) = cluster([script, script, script]).await;
    let out = ctl(
        &admin,
        &[
            "run", "*", "--batch", "1", "-o", "json", "--", "sh", "job.sh",
        ],
    )
    .await
    .ok()
    .json();
    let mut spans: Vec<(u128, u128)> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let words: Vec<&str> = r["stdout"].as_str().unwrap().split_whitespace().collect();
            (words[1].parse().unwrap(), words[3].parse().unwrap())
        })
        .collect();
    assert_eq!(spans.len(), 3);
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlap: {spans:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_the_job_everywhere_and_leaves_no_process() {
    let (_master, _agents, admin) =
        cluster(["exec sleep 41.5", "exec sleep 41.5", "exec sleep 41.5"]).await;
    let child = std::process::Command::new(cluster_tests::bin("clusterctl"))
        .args(["run", "*", "--", "sh", "job.sh"])
        .env("CLUSTERCTL_MASTER", &admin.url)
        .env("CLUSTERCTL_CA", &admin.ca)
        .env("CLUSTERCTL_CERT", &admin.cert)
        .env("CLUSTERCTL_KEY", &admin.key)
        .env("XDG_CONFIG_HOME", admin.ca.parent().unwrap())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("three sleeps running", PATIENCE, || async {
        processes_running(&["sleep", "41.5"]) == 3
    })
    .await;
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is being cancelled on every node"));
    eventually("no sleep left on any node", PATIENCE, || async {
        processes_running(&["sleep", "41.5"]) == 0
    })
    .await;
    // The stored job says so.
    eventually("the job recorded as cancelled", PATIENCE, || async {
        let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.json();
        jobs[0]["finished"] != ""
            && jobs[0]["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "cancelled")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_select_nodes_everywhere_and_bad_ones_say_where() {
    let (_master, agents, admin) = cluster(["true", "true", "true"]).await;
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let nodes = |args: &'static [&'static str]| {
        let admin = admin.clone();
        async move {
            let mut a = vec!["nodes", "-o", "json"];
            a.extend_from_slice(args);
            names(ctl(&admin, &a).await.ok().json())
        }
    };
    assert_eq!(nodes(&["web-*"]).await, ["web-1", "web-2"]);
    assert_eq!(nodes(&["-R", "db"]).await, ["db-1"]);
    assert_eq!(nodes(&["-G", "roles:web"]).await, ["web-1", "web-2"]);
    assert_eq!(nodes(&["-C", "G@roles:web and not web-2"]).await, ["web-1"]);
    assert_eq!(nodes(&["-S", "127.0.0.3/32"]).await, ["web-2"]);
    assert_eq!(nodes(&["-E", "db"]).await, ["db-1"]);
    assert_eq!(nodes(&["-L", "web-2,db-1"]).await, ["db-1", "web-2"]);

    // Labels and node groups live on the master.
    ctl(&admin, &["label", "-R", "web", "tier=gold"]).await.ok();
    ctl(&admin, &["label", "web-2", "tier-"]).await.ok();
    assert_eq!(nodes(&["-I", "tier:gold"]).await, ["web-1"]);
    ctl(&admin, &["nodegroup", "set", "gold", "I@tier:gold or R@db"])
        .await
        .ok();
    assert_eq!(nodes(&["-N", "gold"]).await, ["db-1", "web-1"]);
    assert_eq!(nodes(&["-C", "N@gold and not db-1"]).await, ["web-1"]);
    let cycle = ctl(&admin, &["nodegroup", "set", "loop", "N@loop"]).await;
    assert_eq!(cycle.code, 2, "{cycle:?}");

    // Drain by grain, as in `clusterctl drain -G role:web --reason deploy`.
    ctl(
        &admin,
        &["drain", "-G", "roles:web", "--reason", "deploy", "--wait"],
    )
    .await
    .ok();
    assert_eq!(agents[0].health().await.0, 503);
    assert_eq!(agents[1].health().await.0, 503);
    assert_eq!(agents[2].health().await.0, 200);
    ctl(&admin, &["undrain", "-R", "web", "--wait"]).await.ok();
    assert_eq!(agents[0].health().await.0, 200);
    let grains = ctl(&admin, &["grains", "-R", "web", "id", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        grains,
        serde_json::json!({"web-1": "web-1", "web-2": "web-2"})
    );

    // Bad expressions and empty matches: exit 2, a precise message, nothing run.
    let bad = ctl(&admin, &["nodes", "-C", "web-1 and"]).await;
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("invalid target expression at column"),
        "{}",
        bad.stderr
    );
    let none = ctl(&admin, &["run", "-G", "os:Plan9", "--", "true"]).await;
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains("no nodes matched -G os:Plan9"),
        "{}",
        none.stderr
    );
    let none = ctl(&admin, &["drain", "zz-*"]).await;
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains("no nodes matched zz-*"),
        "{}",
        none.stderr
    );
    let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.ok().json();
    assert_eq!(
        jobs.as_array().unwrap().len(),
        0,
        "a refused run left a job behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_execution_can_be_switched_off_on_a_node_and_is_for_admins_only() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .config("remote_exec = false")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, 1)).await;
    let out = ctl(&admin, &["run", "web-1", "--", "true"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("[web-1] error: remote execution is disabled on this node"),
        "{}",
        out.stdout
    );

    let dir = tempfile::tempdir().unwrap();
    ctl(
        &admin,
        &[
            "user",
            "add",
            "olga",
            "--role",
            "operator",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let olga = admin.with_identity(dir.path().join("olga.crt"), dir.path().join("olga.key"));
    let out = ctl(&olga, &["run", "web-1", "--", "true"]).await;
    assert_eq!(out.code, 4);
    assert!(
        out.stderr
            .contains("olga is an operator; run commands needs an admin"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn target_evaluates_an_expression_offline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nodes.json");
    std::fs::write(
        &file,
        r#"{"web-1": {"os": "Debian", "roles": ["web"], "ipv4": ["10.0.0.11"]},
            "web-2": {"os": "Ubuntu", "roles": ["web"], "ipv4": ["10.0.0.12"]},
            "db-1": {"os": "Debian", "roles": ["db"], "ipv4": ["10.0.1.5"]}}"#,
    )
    .unwrap();
    let env = cluster_cli::Env::for_tests();
    let run = |args: Vec<&str>| {
        let env = env.clone();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            cluster_tests::ctl::ctl_env(&env, &a).await
        }
    };
    let f = file.to_str().unwrap();
    let out = run(vec![
        "target",
        "-C",
        "G@os:debian and not R@db",
        "--nodes",
        f,
    ])
    .await
    .ok();
    assert_eq!(out.stdout, "web-1\n");
    let out = run(vec![
        "target",
        "-S",
        "10.0.0.0/24",
        "--nodes",
        f,
        "-o",
        "json",
    ])
    .await
    .ok();
    assert_eq!(out.json(), serde_json::json!(["web-1", "web-2"]));
    let out = run(vec!["target", "-G", "os:Plan9", "--nodes", f]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no nodes matched"), "{}", out.stderr);
    let out = run(vec!["target", "-C", "(web-1", "--nodes", f]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("column 1"), "{}", out.stderr);
}
