//! Names from services and the managed hosts block, end to end: every
//! agent keeps its own hosts file (never the real /etc/hosts).

use cluster_tests::{Admin, AgentProc, MasterProc, ctl, eventually};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(15);
const BEGIN: &str = "# BEGIN clusterctl — managed, do not edit";

async fn names(admin: &Admin) -> Vec<String> {
    let out = ctl(admin, &["nodes", "-o", "json"]).await;
    if out.code != 0 {
        return Vec::new();
    }
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

fn hosts(a: &AgentProc) -> String {
    std::fs::read_to_string(a.hosts_file()).unwrap_or_default()
}

/// The names in an agent's managed block, sorted.
fn block_names(a: &AgentProc) -> Vec<String> {
    let text = hosts(a);
    let Some(start) = text.find(BEGIN) else {
        return Vec::new();
    };
    let mut out: Vec<String> = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("# END"))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn agent(master: &MasterProc, id: &str, ip: &str, extra: &str) -> AgentProc {
    AgentProc::builder(id, master)
        .addr(ip)
        .config(extra)
        .spawn()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_come_from_the_service_and_every_hosts_file_follows() {
    let master = MasterProc::builder()
        .config("base_domain = \"example.test\"")
        .spawn();
    let admin = master.admin();
    // One agent's hosts file has content of its own, kept as it is.
    let a = agent(&master, "node-a", "127.0.0.2", "service = \"web\"");
    let own = "127.0.0.1\tlocalhost\n# the operator's own line\n10.9.9.9 legacy-box\n";
    std::fs::write(a.hosts_file(), own).unwrap();
    let b = agent(&master, "node-b", "127.0.0.3", "service = \"web\"");
    let c = agent(&master, "node-c", "127.0.0.4", "service = \"web\"");
    eventually("three web names", PATIENCE, || async {
        names(&admin).await == ["web-0", "web-1", "web-2"]
    })
    .await;
    let three = vec![
        "web-0.example.test",
        "web-1.example.test",
        "web-2.example.test",
    ];
    for x in [&a, &b, &c] {
        eventually("every file lists all three", PATIENCE, || async {
            block_names(x) == three
        })
        .await;
    }
    let text = hosts(&a);
    assert!(
        text.starts_with(own),
        "unmanaged content kept byte for byte:\n{text}"
    );
    assert!(
        text.contains("\tweb-1.example.test web-1\n")
            || text.contains(" web-1.example.test web-1\n"),
        "{text}"
    );

    // A fourth joins: its line appears in every file.
    let d = agent(
        &master,
        "node-d",
        "127.0.0.5",
        "service = \"web\"\naliases = [\"cache\"]",
    );
    for x in [&a, &b, &c, &d] {
        eventually("web-3 everywhere", PATIENCE, || async {
            block_names(x).contains(&"web-3.example.test".to_owned())
        })
        .await;
    }
    assert!(hosts(&a).contains("web-3 cache"), "{}", hosts(&a));
    let hosts_cmd = ctl(&admin, &["hosts", "web-0"]).await.ok().stdout;
    assert_eq!(hosts_cmd.lines().count(), 4, "{hosts_cmd}");

    // One is removed: its line goes everywhere, and its name is free again.
    let b_name = ctl(&admin, &["nodes", "node-b", "-o", "json"])
        .await
        .ok()
        .json()[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_fqdn = format!("{b_name}.example.test");
    let mut b = b;
    b.kill();
    eventually("node-b disconnected", PATIENCE, || async {
        let out = ctl(&admin, &["nodes", "node-b", "-o", "json"]).await;
        out.code == 0 && out.json()[0]["connected"] == false
    })
    .await;
    ctl(&admin, &["nodes", "remove", "node-b"]).await.ok();
    for x in [&a, &c, &d] {
        eventually("node-b's line gone everywhere", PATIENCE, || async {
            !block_names(x).contains(&b_fqdn)
        })
        .await;
    }
    let e = agent(&master, "node-e", "127.0.0.6", "service = \"web\"");
    eventually("the gap is filled", PATIENCE, || async {
        let out = ctl(&admin, &["nodes", "node-e", "-o", "json"]).await;
        out.code == 0 && out.json()[0]["name"] == b_name.as_str()
    })
    .await;
    drop(e);

    // Writing again with the same lines leaves the file alone (once the
    // newcomer's line, gathered for a moment, has arrived).
    eventually("node-e's line in a's file", PATIENCE, || async {
        block_names(&a).contains(&b_fqdn)
    })
    .await;
    let before = std::fs::metadata(a.hosts_file()).unwrap();
    let _ = ctl(&admin, &["drain", "node-a", "--wait"]).await.ok();
    let after = std::fs::metadata(a.hosts_file()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec()),
        "an unrelated change rewrote the hosts file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_swaps_master_and_slave_in_every_hosts_file() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let m = agent(
        &master,
        "db-a",
        "127.0.0.2",
        "service = \"db\"\nnaming = \"masterful\"",
    );
    eventually("db-master", PATIENCE, || async {
        names(&admin).await == ["db-master"]
    })
    .await;
    let s = agent(
        &master,
        "db-b",
        "127.0.0.3",
        "service = \"db\"\nnaming = \"masterful\"",
    );
    eventually("a slave", PATIENCE, || async {
        names(&admin).await == ["db-master", "db-slave-1"]
    })
    .await;
    let line_of = |a: &AgentProc, name: &str| {
        hosts(a)
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
    };
    eventually("both lines in db-a's file", PATIENCE, || async {
        line_of(&m, "db-slave-1").is_some()
    })
    .await;
    assert_eq!(line_of(&m, "db-master").as_deref(), Some("127.0.0.2"));

    let out = ctl(&admin, &["promote", "db-slave-1"]).await.ok();
    assert!(
        out.stdout.contains("db-slave-1 → db-master"),
        "{}",
        out.stdout
    );
    for x in [&m, &s] {
        eventually("swapped everywhere", PATIENCE, || async {
            line_of(x, "db-master").as_deref() == Some("127.0.0.3")
                && line_of(x, "db-slave-1").as_deref() == Some("127.0.0.2")
        })
        .await;
    }
    let nodes = ctl(&admin, &["nodes", "-o", "json"]).await.ok().json();
    let by_id = |id: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()["name"]
            .clone()
    };
    assert_eq!(
        (by_id("db-a"), by_id("db-b")),
        ("db-slave-1".into(), "db-master".into())
    );
    // The health endpoint answers for the new name.
    let (code, body) = cluster_tests::get(&format!("{}?node=db-master", s.health_url)).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_and_hosts_files_are_clear_errors_that_change_nothing() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let a = agent(&master, "node-a", "127.0.0.2", "service = \"web\"");
    eventually("web-0", PATIENCE, || async {
        names(&admin).await == ["web-0"]
    })
    .await;

    for (args, want) in [
        (&["rename", "web-0", "not a name"][..], "is not a hostname"),
        (&["rename", "nope", "x"], "unknown node: nope"),
        (&["promote", "web-0"], "not named from a masterful service"),
        (&["nodes", "remove", "web-0"], "is connected"),
    ] {
        let out = ctl(&admin, args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
    assert_eq!(names(&admin).await, ["web-0"]);

    // An invalid service name is refused at start.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "service = \"my_sql\"\nnaming = \"chaotic\"\n").unwrap();
    let out = std::process::Command::new(cluster_tests::bin("cluster-agent"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("service = \"my_sql\"") && err.contains("naming = \"chaotic\""),
        "{err}"
    );

    // A hosts file that is a directory: the agent says so, keeps serving,
    // and the directory is left alone.
    let bad = agent(&master, "node-b", "127.0.0.3", "service = \"web\"");
    let _ = std::fs::remove_file(bad.hosts_file());
    std::fs::create_dir(bad.hosts_file()).unwrap();
    ctl(&admin, &["rename", "web-0", "edge-0"]).await.ok();
    eventually("a's file follows the rename", PATIENCE, || async {
        hosts(&a).contains("edge-0")
    })
    .await;
    assert!(bad.hosts_file().is_dir());
    assert_eq!(bad.health().await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_the_change_and_writes_nothing() {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let a = agent(&master, "node-a", "127.0.0.2", "service = \"web\"");
    eventually("web-0", PATIENCE, || async {
        names(&admin).await == ["web-0"]
    })
    .await;
    // A second agent, run once with --dry-run against an empty hosts file.
    let dir = tempfile::tempdir().unwrap();
    let hosts_file = dir.path().join("hosts");
    std::fs::write(&hosts_file, "127.0.0.1 localhost\n").unwrap();
    let (token, fp) = master.join_token();
    let out = std::process::Command::new(cluster_tests::bin("cluster-agent"))
        .args([
            "--id",
            "node-z",
            "--master",
            &admin.url,
            "--token",
            &token,
            "--ca-fingerprint",
            &fp,
            "--dry-run",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--health-listen", "127.0.0.9:0"])
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .env("CLUSTERCTL_HOSTS_FILE", &hosts_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("+127.0.0.2\tweb-0") || stdout.contains("+127.0.0.2 web-0"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&hosts_file).unwrap(),
        "127.0.0.1 localhost\n"
    );
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_down_past_the_expiry_is_forgotten_and_its_name_reused() {
    let master = MasterProc::builder()
        .down_after(Duration::from_millis(300))
        .config("name_expiry = \"1s\"")
        .spawn();
    let admin = master.admin();
    let keep = agent(&master, "node-a", "127.0.0.2", "service = \"web\"");
    eventually("web-0", PATIENCE, || async {
        names(&admin).await == ["web-0"]
    })
    .await;
    let mut gone = agent(&master, "node-b", "127.0.0.3", "service = \"web\"");
    eventually("web-1", PATIENCE, || async {
        names(&admin).await == ["web-0", "web-1"]
    })
    .await;
    gone.kill();
    eventually("web-1 forgotten", PATIENCE, || async {
        names(&admin).await == ["web-0"]
    })
    .await;
    eventually("its line gone from node-a's file", PATIENCE, || async {
        !block_names(&keep).contains(&"web-1".to_owned())
    })
    .await;
    let events = ctl(&admin, &["events", "-o", "json"]).await.ok().json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "name"
                && e["by"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("master (down longer than 1s)")),
        "{events}"
    );
    let _c = agent(&master, "node-c", "127.0.0.4", "service = \"web\"");
    eventually("the name web-1 reused", PATIENCE, || async {
        names(&admin).await == ["web-0", "web-1"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn role_aliases_name_the_nodes_of_a_role_in_every_hosts_file() {
    let master = MasterProc::builder()
        .config("[role_aliases]\nbalancer = [\"lb\", \"www\"]")
        .spawn();
    let admin = master.admin();
    let web = agent(&master, "node-a", "127.0.0.2", "service = \"web\"");
    let _lb = AgentProc::builder("node-b", &master)
        .addr("127.0.0.3")
        .role("balancer")
        .config("service = \"edge\"")
        .spawn();
    eventually("both named", PATIENCE, || async {
        names(&admin).await == ["edge-0", "web-0"]
    })
    .await;
    eventually(
        "the balancer's line carries its role aliases",
        PATIENCE,
        || async {
            hosts(&web)
                .lines()
                .any(|l| l.starts_with("127.0.0.3") && l.ends_with("edge-0 lb www"))
        },
    )
    .await;
    assert!(
        !hosts(&web)
            .lines()
            .any(|l| l.starts_with("127.0.0.2") && l.contains(" lb")),
        "{}",
        hosts(&web)
    );
}

/// A write killed before its rename leaves `.hosts.XXXXXX.tmp` beside the
/// hosts file; the agent's next start removes it, and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_starting_removes_what_an_interrupted_hosts_write_left() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let mut a = agent(&master, "leftover-1", "127.0.0.81", "");
    eventually("the hosts file is written", PATIENCE, || async {
        hosts(&a).contains(BEGIN)
    })
    .await;
    a.kill();
    let dir = a.hosts_file().parent().unwrap().to_owned();
    let leftover = dir.join(".hosts.Ab12Cd.tmp");
    let unrelated = dir.join(".hosts.notours");
    std::fs::write(&leftover, "127.0.0.1 half a").unwrap();
    std::fs::write(&unrelated, "kept").unwrap();
    a.restart();
    eventually("the leftover is removed", PATIENCE, || async {
        !leftover.exists()
    })
    .await;
    assert!(
        a.log()
            .contains("removed a temporary file an interrupted hosts write left"),
        "{}",
        a.log()
    );
    assert_eq!(std::fs::read_to_string(&unrelated).unwrap(), "kept");
    assert!(hosts(&a).contains(BEGIN));
}
