//! The README's REST API block (and ELB's admin API block below it), as written, with `curl` against a real
//! master and agents. What cannot be run as written is substituted or left
//! out here, and said so: `M` is the test master's HTTP address; `TOKEN` is
//! an admin's API token made the README's way; the job id is a real job's;
//! the upstreams and routes the lines read, replace or remove (`app`,
//! `old`, `example.com`, `old.example.com`, `example.com.json`) are set up
//! first. The rollout lines are left out — they start a real rollout of
//! `systemctl restart app`, which these agents cannot run — and are covered
//! through the router (`master/src/http/tests.rs`) and by the rollout
//! tests. Every line must answer with a 2xx (curl's `--fail`, from a
//! `.curlrc` in the test's own `HOME`).

use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use std::process::Command;
use std::time::Duration;

const README: &str = include_str!("../../README.md");

/// Runs one of the README's lines with `sh`, after its block's `M=…`, with
/// the token in `TOKEN` and `home` as `HOME` and the working directory;
/// it must succeed.
fn run_line(assign: &str, line: &str, token: &str, home: &std::path::Path) -> std::process::Output {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{assign}; {line}"))
        .env("TOKEN", token)
        .env("HOME", home)
        .current_dir(home)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{line}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rest_apis_curl_lines_work_as_written() {
    cluster_tests::crypto();
    // The block after the token commands.
    let lines = cluster_tests::readme::commands_under(README, "### The REST API", 1);
    assert!(
        lines[0].starts_with("M=http://127.0.0.1:7441 "),
        "{}",
        lines[0]
    );
    assert!(lines.len() > 20, "{lines:#?}");

    let master = MasterProc::builder().spawn();
    let _web1 = AgentProc::builder("web-1", &master)
        .addr("127.0.0.106")
        .role("web")
        .spawn();
    let _web2 = AgentProc::builder("web-2", &master)
        .addr("127.0.0.107")
        .role("web")
        .spawn();
    let admin = master.admin();
    let token = cluster_tests::api_token(&admin, "admin", "readme").await;
    eventually("both agents connected", Duration::from_secs(10), || async {
        ctl(&admin, &["nodes", "-o", "json"])
            .await
            .ok()
            .json()
            .as_array()
            .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["connected"] == true))
    })
    .await;

    // What the lines read, replace and remove.
    for args in [
        &["upstream", "set", "app", "--role", "web", "--port", "8080"][..],
        &["upstream", "set", "old", "--server", "10.9.9.9:80"],
        &["route", "set", "example.com", "--backend", "app"],
        &["route", "set", "old.example.com", "--backend", "app"],
    ] {
        ctl(&admin, args).await.ok();
    }
    ctl(&admin, &["run", "web-1", "--", "true"]).await.ok();
    let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.ok().json();
    let job = jobs[0]["id"].as_str().expect("a job id").to_owned();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".curlrc"),
        "fail\nsilent\nshow-error\noutput = /dev/null\n",
    )
    .unwrap();
    let chain = cluster_tests::http::send(
        "GET",
        &format!("{}/api/v1/routes/example.com", master.http_url()),
        &token,
        None,
    )
    .await;
    assert_eq!(chain.0, 200, "{}", chain.1);
    let chain: serde_json::Value = serde_json::from_str(&chain.1).unwrap();
    std::fs::write(
        home.path().join("example.com.json"),
        chain["chain"].to_string(),
    )
    .unwrap();

    let assign = lines[0].replace("http://127.0.0.1:7441", &master.http_url());
    let mut ran = 0;
    for line in &lines[1..] {
        if line.contains("/rollouts/") || (line.contains("/rollouts") && line.contains("POST")) {
            continue;
        }
        let line = line.replace("20261201213400123456", &job);
        run_line(&assign, &line, &token, home.path());
        ran += 1;
    }
    assert!(ran >= 20, "{ran} lines ran");
    // The drain and the undrain ran in that order: web-1 is back.
    let nodes = ctl(&admin, &["nodes", "-o", "json"]).await.ok().json();
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "online"),
        "{nodes:#}"
    );
}

/// The README's block of ELB's admin API, as written, with `curl`: `M` is
/// the test master's HTTP address, `TOKEN` an admin's API token, and
/// `elb.json` ELB's README example naming the block's `up1` and `up2`.
#[tokio::test(flavor = "multi_thread")]
async fn the_elb_admin_apis_curl_lines_work_as_written() {
    cluster_tests::crypto();
    let lines = cluster_tests::readme::commands_under(README, "### ELB's admin API", 0);
    assert_eq!(lines[0], "M=http://127.0.0.1:7441", "{lines:#?}");
    assert_eq!(lines.len(), 8, "{lines:#?}");
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let token = cluster_tests::api_token(&admin, "admin", "ops").await;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".curlrc"), "fail\nsilent\nshow-error\n").unwrap();
    std::fs::write(
        home.path().join("elb.json"),
        r#"{"example.com": {"init": "r1", "rules": {
            "r1": {"type": "ua", "args": {"fail": "r3", "pattern": "httpie(\\S+)$", "succ": "r4"}},
            "r2": {"type": "backend", "args": {"servername": "up1"}},
            "r3": {"type": "backend", "args": {"servername": "up2"}},
            "r4": {"type": "path", "args": {"regex": true, "pattern": "^\\/blog\\/(\\S+)$", "succ": "r2", "fail": "r3", "rewrite": false}}}}}"#,
    )
    .unwrap();
    let assign = lines[0].replace("http://127.0.0.1:7441", &master.http_url());
    let mut answers = Vec::new();
    for line in &lines[1..] {
        let out = run_line(&assign, line, &token, home.path());
        answers.push(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap());
    }
    // What the comments say each answers.
    assert_eq!(answers[0], serde_json::json!({"msg": "OK"}));
    assert_eq!(answers[2]["example.com"]["init"], "r1");
    assert_eq!(
        answers[3]["up1"]["10.0.0.5:8088"],
        "weight=10 max_fails=2 fail_timeout=10s"
    );
    assert_eq!(answers[4], serde_json::json!({"msg": "OK"}));
    assert_eq!(answers[6], serde_json::json!({"up1": true, "up2": true}));
    let b = ctl(&admin, &["route", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(b, serde_json::json!({}), "every route gone");
}
