//! Rolling deploys end to end: four web nodes behind the agent's proxy with
//! steady client traffic; the master drives drain → command → healthy →
//! undrain → back in rotation, batch by batch.

use cluster_proto as pb;
use cluster_tests::lb::{App, Load, free_port, listening, same_port_on, web_node};
use cluster_tests::{Admin, AgentProc, MasterProc, ctl, eventually};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);
const WEB: [(&str, &str); 4] = [
    ("web-1", "127.0.0.2"),
    ("web-2", "127.0.0.3"),
    ("web-3", "127.0.0.4"),
    ("web-4", "127.0.0.5"),
];

struct Setup {
    _master: MasterProc,
    admin: Admin,
    _web: Vec<AgentProc>,
    _lb: AgentProc,
    _apps: Vec<App>,
    url: String,
    marks: tempfile::TempDir,
}

async fn setup() -> Setup {
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let app_port = same_port_on(&WEB.map(|(_, ip)| ip));
    let mut apps = Vec::new();
    let mut web = Vec::new();
    for (name, ip) in WEB {
        let (app, agent) = web_node(&master, name, ip, app_port, "").await;
        apps.push(app);
        web.push(agent);
    }
    let proxy = format!("127.0.0.6:{}", free_port("127.0.0.6"));
    let lb = AgentProc::builder("lb-1", &master)
        .addr("127.0.0.6")
        .config(&format!("[proxy]\nlisten = [\"{proxy}\"]\n"))
        .spawn();
    cluster_tests::connected(&admin, 5).await;
    cluster_tests::lb::balance_role(&admin, "web", app_port, "*").await;
    listening(&proxy).await;
    let url = format!("http://{proxy}/");
    eventually("the proxy routes", PATIENCE, || async {
        cluster_tests::get(&url).await.0 == 200
    })
    .await;
    Setup {
        _master: master,
        admin,
        _web: web,
        _lb: lb,
        _apps: apps,
        url,
        marks: tempfile::tempdir().unwrap(),
    }
}

/// Samples how many nodes are drained, every few milliseconds, until
/// stopped; returns the most seen at once.
struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    async fn start(admin: &Admin) -> Sampler {
        let mut control = pb::control_client::ControlClient::new(admin.channel().await);
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicUsize::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                if let Ok(resp) = control.list_nodes(pb::ListNodesRequest::default()).await {
                    let drained = resp
                        .into_inner()
                        .nodes
                        .iter()
                        .filter(|n| n.offline.is_some())
                        .count();
                    m.fetch_max(drained, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Sampler { stop, max, task }
    }

    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        self.max.load(Ordering::SeqCst)
    }
}

fn marker_cmd(dir: &std::path::Path) -> String {
    format!("touch {}/$CLUSTERCTL_NODE", dir.display())
}

fn marked(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("web-"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_updates_every_node_with_no_failed_request_and_never_more_than_the_batch_out() {
    let s = setup().await;
    let load = Load::start(&s.url, "example.com", 8);
    load.advance(200).await;
    let sampler = Sampler::start(&s.admin).await;
    let cmd = marker_cmd(s.marks.path());
    let out = ctl(
        &s.admin,
        &[
            "rollout", "-R", "web", "--batch", "2", "--", "sh", "-c", &cmd,
        ],
    )
    .await;
    let max_drained = sampler.stop().await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(marked(s.marks.path()), ["web-1", "web-2", "web-3", "web-4"]);
    assert!(
        out.stdout.contains("succeeded — 4 of 4 done, 2 at a time"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("web-3: out of rotation"),
        "{}",
        out.stdout
    );
    assert!(
        (1..=2).contains(&max_drained),
        "{max_drained} nodes drained at once"
    );
    load.advance(100).await;
    let report = load.stop().await;
    report.assert_no_failures("");
    // Every node is back in service.
    let nodes = ctl(&s.admin, &["nodes", "-o", "json"]).await.ok().json();
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "online"),
        "{nodes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_command_halts_the_rollout_with_the_node_drained_and_resume_goes_on() {
    let s = setup().await;
    let dir = s.marks.path().display().to_string();
    let cmd = format!(
        "if [ \"$CLUSTERCTL_NODE\" = web-2 ] && [ ! -e {dir}/fixed ]; then echo 'migration 42 failed' >&2; exit 3; fi; touch {dir}/$CLUSTERCTL_NODE"
    );
    let out = ctl(&s.admin, &["rollout", "-R", "web", "--", "sh", "-c", &cmd]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("rollout resume"), "{}", out.stderr);
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("rollout ").and_then(|r| r.split(':').next()))
        .unwrap()
        .to_owned();
    assert_eq!(marked(s.marks.path()), ["web-1"]);
    let nodes = ctl(&s.admin, &["nodes", "-o", "json"]).await.ok().json();
    let state = |name: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(state("web-2")["state"], "drained");
    let reason = state("web-2")["offline"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("failed: command failed with exit code 3: migration 42 failed"),
        "{reason}"
    );
    for n in ["web-1", "web-3", "web-4"] {
        assert_eq!(state(n)["state"], "online", "{n}");
    }
    let status = ctl(&s.admin, &["rollout", "status", &id]).await.ok().stdout;
    assert!(
        status.contains("failed") && status.contains("web-3  pending"),
        "{status}"
    );

    std::fs::write(s.marks.path().join("fixed"), "").unwrap();
    let out = ctl(&s.admin, &["rollout", "resume", &id]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(marked(s.marks.path()), ["web-1", "web-2", "web-3", "web-4"]);
    let nodes = ctl(&s.admin, &["nodes", "-o", "json"]).await.ok().json();
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "online"),
        "{nodes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clusterctl_killed_mid_rollout_leaves_the_master_to_finish_it() {
    let s = setup().await;
    let dir = s.marks.path().display().to_string();
    let cmd = format!("sleep 0.3; touch {dir}/$CLUSTERCTL_NODE");
    let mut child = std::process::Command::new(cluster_tests::bin("clusterctl"))
        .args(["rollout", "-R", "web", "--", "sh", "-c", &cmd])
        .envs([
            ("CLUSTERCTL_MASTER", s.admin.url.clone()),
            ("CLUSTERCTL_CA", s.admin.ca.display().to_string()),
            ("CLUSTERCTL_CERT", s.admin.cert.display().to_string()),
            ("CLUSTERCTL_KEY", s.admin.key.display().to_string()),
            ("CLUSTERCTL_CONFIG", "/nonexistent/config.toml".into()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the first node deployed", PATIENCE, || async {
        !marked(s.marks.path()).is_empty()
    })
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    let list = ctl(&s.admin, &["rollout", "list", "-o", "json"])
        .await
        .ok()
        .json();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let status = ctl(&s.admin, &["rollout", "status", &id]).await.ok().stdout;
    assert!(
        status.contains(&format!("rollout {id}: running")),
        "{status}"
    );
    eventually("the master finished the rollout", PATIENCE, || async {
        let out = ctl(&s.admin, &["rollout", "status", &id, "-o", "json"]).await;
        out.code == 0 && out.json()["state"] == "succeeded"
    })
    .await;
    assert_eq!(marked(s.marks.path()), ["web-1", "web-2", "web-3", "web-4"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_that_would_empty_a_role_is_refused_and_abort_leaves_nodes_drained() {
    let s = setup().await;
    let out = ctl(
        &s.admin,
        &["rollout", "-R", "web", "--batch", "100%", "--", "true"],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("a batch of 4 would take out every online node with role web"),
        "{}",
        out.stderr
    );
    let list = ctl(&s.admin, &["rollout", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(list.as_array().unwrap().is_empty(), "{list}");

    // A long command, aborted: the node it had out stays drained.
    let started = ctl(
        &s.admin,
        &[
            "rollout", "-R", "web", "--detach", "-o", "json", "--", "sleep", "30",
        ],
    )
    .await
    .ok()
    .json();
    let id = started["id"].as_str().unwrap().to_owned();
    eventually("web-1 running the command", PATIENCE, || async {
        let out = ctl(&s.admin, &["rollout", "status", &id, "-o", "json"]).await;
        out.code == 0 && out.json()["nodes"]["web-1"] == "running"
    })
    .await;
    let out = ctl(&s.admin, &["rollout", "abort", &id]).await.ok().stdout;
    assert!(out.contains("aborted"), "{out}");
    let rec = ctl(&s.admin, &["rollout", "status", &id, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(rec["state"], "aborted");
    let log = rec["log"].to_string();
    assert!(log.contains("left drained: web-1"), "{log}");
}
