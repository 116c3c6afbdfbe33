//! Credentials against real processes: join tokens listed and withdrawn,
//! several requests for one node chosen between by fingerprint, people's
//! certificates listed, limited to a role and revoked (closing what they
//! have open), node certificates that renew themselves.

use cluster_proto as pb;
use cluster_tests::access::*;
use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use serde_json::Value;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

/// A person's certificate with `role`, and clusterctl as them (the
/// directory holds their files).
async fn user(
    admin: &cluster_tests::Admin,
    name: &str,
    role: &str,
) -> (tempfile::TempDir, cluster_tests::Admin) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    ctl(admin, &["user", "add", name, "--role", role, "--out", out])
        .await
        .ok();
    let as_them = admin.with_identity(
        dir.path().join(format!("{name}.crt")),
        dir.path().join(format!("{name}.key")),
    );
    (dir, as_them)
}
/// Join tokens can be listed (never their secret) and withdrawn; a
/// deleted token admits nobody; an agent reads its token from a file.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_listed_without_their_secret_and_can_be_withdrawn() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let created = ctl(
        &admin,
        &[
            "token", "create", "--uses", "2", "--roles", "web", "-o", "json",
        ],
    )
    .await
    .ok()
    .json();
    let token = created["token"].as_str().unwrap().to_owned();
    let (id, secret) = token.split_once('.').unwrap();
    let listed = ctl(&admin, &["token", "list", "-o", "json"]).await.ok();
    assert!(!listed.stdout.contains(secret), "{}", listed.stdout);
    let mine = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {}", listed.stdout));
    assert_eq!(
        (&mine["state"], &mine["uses_left"], &mine["roles"]),
        (&"valid".into(), &2.into(), &serde_json::json!(["web"]))
    );
    let table = ctl(&admin, &["token", "list"]).await.ok().stdout;
    assert!(table.contains(id) && !table.contains(secret), "{table}");

    // An agent given the token in a file joins with it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let (_, fingerprint) = master.join_token();
    let _a = AgentProc::builder("filed-1", &master)
        .addr("127.0.0.88")
        .without_token()
        .config(&format!(
            "join_token_file = {file:?}\nca_fingerprint = {fingerprint:?}\n"
        ))
        .spawn();
    eventually(
        "filed-1 joined with the token from its file",
        PATIENCE,
        || connected(&admin, "filed-1"),
    )
    .await;
    let after = ctl(&admin, &["token", "list", "-o", "json"])
        .await
        .ok()
        .json();
    let left = after
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .map(|t| t["uses_left"].clone());
    assert_eq!(left, Some(1.into()));

    // Withdrawn: nobody joins with it any more.
    let gone = ctl(&admin, &["token", "delete", id, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(gone[0]["id"], id);
    let refused = join(&admin, "late-1", &token).await;
    assert_eq!(
        refused.status,
        pb::JoinStatus::Rejected as i32,
        "{refused:?}"
    );
    assert!(
        refused.message.contains("invalid join token"),
        "{refused:?}"
    );
    let listed = ctl(&admin, &["token", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(
        !listed.as_array().unwrap().iter().any(|t| t["id"] == id),
        "{listed:#}"
    );
    let unknown = ctl(&admin, &["token", "delete", "nosuch"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no join token \"nosuch\""),
        "{}",
        unknown.stderr
    );
}

/// A user cannot be named as a node is: events and their authors would
/// not tell the two apart.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_take_a_nodes_name() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("node3", &master)
        .addr("127.0.0.89")
        .spawn();
    eventually("node3 connected", PATIENCE, || connected(&admin, "node3")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let refused = ctl(
        &admin,
        &["user", "add", "node3", "--role", "admin", "--out", out],
    )
    .await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("name \"node3\" already belongs to node \"node3\""),
        "{}",
        refused.stderr
    );
    assert!(!dir.path().join("node3.crt").exists());
}

/// People's certificates are listed and can be revoked: a revoked one is
/// refused at once and after a restart; a name is one person's at a time.
#[tokio::test(flavor = "multi_thread")]
async fn users_are_listed_and_a_revoked_one_is_refused_for_good() {
    cluster_tests::crypto();
    let mut master = MasterProc::builder().spawn();
    let admin = master.admin();
    let (dir, olga) = user(&admin, "olga", "operator").await;
    let out = dir.path().to_str().unwrap();
    ctl(&olga, &["nodes"]).await.ok();
    let users = ctl(&admin, &["user", "list", "-o", "json"])
        .await
        .ok()
        .json();
    let listed = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "olga")
        .cloned()
        .unwrap_or_else(|| panic!("{users:#}"));
    assert_eq!(
        (&listed["role"], &listed["revoked"]),
        (&"operator".into(), &Value::Null)
    );
    let serial = listed["serial"].as_str().unwrap().to_owned();

    // One olga at a time.
    let again = ctl(
        &admin,
        &["user", "add", "olga", "--role", "admin", "--out", out],
    )
    .await;
    assert_eq!(again.code, 2, "{again:?}");
    assert!(
        again.stderr.contains("user olga already has a certificate"),
        "{}",
        again.stderr
    );

    ctl(&admin, &["user", "revoke", "olga"]).await.ok();
    let refused = ctl(&olga, &["nodes"]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains(&format!("certificate {serial} has been revoked")),
        "{}",
        refused.stderr
    );
    master.restart();
    let refused = ctl(&olga, &["nodes"]).await;
    assert_eq!(refused.code, 4, "after a restart: {refused:?}");
    let table = ctl(&admin, &["user", "list"]).await.ok().stdout;
    assert!(table.contains("olga") && table.contains(&serial), "{table}");
    assert!(
        !table
            .lines()
            .any(|l| l.starts_with("olga") && l.trim_end().ends_with('-')),
        "{table}"
    );
}

/// A `read` certificate reads (nodes, events) and nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn a_reader_reads_and_may_not_drain() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.90")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    let (_dir, rita) = user(&admin, "rita", "read").await;
    ctl(&rita, &["nodes"]).await.ok();
    ctl(&rita, &["events"]).await.ok();
    let refused = ctl(&rita, &["drain", "web-1", "--reason", "r"]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("rita may only read; drain needs an operator or an admin"),
        "{}",
        refused.stderr
    );
    assert_eq!(node_json(&admin, "web-1").await.unwrap()["state"], "online");
    let users = ctl(&admin, &["user", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(users[0]["role"], "read", "{users:#}");
}

/// Revoking a certificate closes the calls open under it at once: a `run`
/// in flight ends with exit 4, saying why, and its job stops as if the
/// caller had pressed Ctrl-C.
#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_user_closes_the_calls_it_has_open() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.91")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    let (_dir, ada) = user(&admin, "ada", "admin").await;
    // The job would take 47 s; the call must end long before.
    let run = tokio::time::timeout(
        Duration::from_secs(30),
        ctl(&ada, &["run", "web-1", "--", "sleep", "47.25"]),
    );
    let revoke = async {
        eventually("ada's job running", PATIENCE, || async {
            let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.json();
            jobs[0]["by"].as_str().is_some_and(|b| b.starts_with("ada"))
        })
        .await;
        ctl(&admin, &["user", "revoke", "ada"]).await.ok();
    };
    let (closed, ()) = tokio::join!(run, revoke);
    let closed = closed.expect("the call closed at once, not at the job's end");
    assert_eq!(closed.code, 4, "{closed:?}");
    assert!(
        closed.stderr.contains("has been revoked"),
        "{}",
        closed.stderr
    );
    eventually("the job stopped", PATIENCE, || async {
        let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.json();
        jobs[0]["results"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["status"] == "cancelled"))
    })
    .await;
}

/// Several requests for one node wait side by side, none in another's
/// place: accepting the name alone is refused, listing each; a fingerprint
/// drops one request or accepts one, the others then dropped with an event.
#[tokio::test(flavor = "multi_thread")]
async fn several_requests_for_one_node_wait_until_the_admin_chooses_by_fingerprint() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let (first, second) = (csr("node7"), csr("node7"));
    let fp = |csr: &str| cluster_master::pki::csr_fingerprint(csr).unwrap();
    let (squat, squat2) = (fp(&first), fp(&second));
    for csr in [first, second] {
        let r = join_with(&admin, "node7", "", csr).await;
        assert_eq!(r.status, pb::JoinStatus::Pending as i32, "{r:?}");
    }
    let _real = AgentProc::builder("node7", &master)
        .addr("127.0.0.86")
        .without_token()
        .spawn();
    let rows = || async {
        let keys = ctl(&admin, &["keys", "list", "-o", "json"])
            .await
            .ok()
            .json();
        keys.as_array()
            .unwrap()
            .iter()
            .filter(|k| k["node_id"] == "node7")
            .map(|k| {
                (
                    k["state"].as_str().unwrap().to_owned(),
                    k["fingerprint"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    eventually("three requests for node7", PATIENCE, || async {
        rows().await.len() == 3
    })
    .await;
    let real = rows()
        .await
        .into_iter()
        .map(|(_, f)| f)
        .find(|f| *f != squat && *f != squat2)
        .unwrap();

    // The name alone admits nobody, and says who asks.
    let refused = ctl(&admin, &["keys", "accept", "node7"]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    for (what, f) in [
        ("3 requests", "3 requests wait for node node7"),
        ("squatter", &squat),
        ("agent", &real),
    ] {
        assert!(refused.stderr.contains(f), "{what}: {}", refused.stderr);
    }
    assert!(rows().await.iter().all(|(s, _)| s == "pending"));

    // One request dropped by its fingerprint; the others still wait.
    let prefix = |f: &str| f.trim_start_matches("sha256:")[..16].to_owned();
    ctl(
        &admin,
        &["keys", "reject", "node7", "--fingerprint", &prefix(&squat2)],
    )
    .await
    .ok();
    let left: Vec<String> = rows().await.into_iter().map(|(_, f)| f).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&squat2), "{left:?}");

    // The agent's own key, chosen by its fingerprint.
    ctl(
        &admin,
        &["keys", "accept", "node7", "--fingerprint", &prefix(&real)],
    )
    .await
    .ok();
    eventually("node7 enrolled with its own key", PATIENCE, || {
        connected(&admin, "node7")
    })
    .await;
    assert_eq!(rows().await, [("accepted".to_owned(), real.clone())]);
    let dropped = events(&admin).await.into_iter().any(|e| {
        e["kind"] == "key"
            && e["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("dropped the pending request {squat}"))
    });
    assert!(dropped, "{:#?}", events(&admin).await);
}

/// A node's certificate renews itself after two thirds of its life, with
/// no interruption of the session; once the first one has expired the
/// agent still connects, with the renewed one.
#[tokio::test(flavor = "multi_thread")]
async fn node_certificates_renew_themselves_before_they_expire() {
    cluster_tests::crypto();
    let master = MasterProc::builder()
        .config("node_certificate_lifetime = \"6s\"")
        .spawn();
    let admin = master.admin();
    let mut agent = AgentProc::builder("web-1", &master)
        .addr("127.0.0.93")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    let serial = || async {
        let keys = ctl(&admin, &["keys", "list", "-o", "json"])
            .await
            .ok()
            .json();
        keys[0]["serial"].as_str().unwrap().to_owned()
    };
    let first = serial().await;
    let renewals = || async {
        events(&admin)
            .await
            .into_iter()
            .filter(|e| {
                e["kind"] == "key"
                    && e["detail"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("certificate renewed")
            })
            .count()
    };
    // Renewed at 4 s, then at 8 s: by then the first has expired (6 s).
    eventually("two renewals", Duration::from_secs(30), || async {
        renewals().await >= 2
    })
    .await;
    let now = serial().await;
    assert_ne!(now, first);
    // `ca status` says what expires when, and when the node renews.
    let _olga = user(&admin, "olga", "read").await;
    let status = ctl(&admin, &["ca", "status", "-o", "json"])
        .await
        .ok()
        .json();
    let rows = status.as_array().unwrap();
    let node = rows.iter().find(|c| c["kind"] == "node").unwrap();
    assert_eq!(
        (&node["name"], &node["serial"]),
        (&"web-1".into(), &now.clone().into())
    );
    assert!(node["renews_from"].is_string(), "{status:#}");
    assert!(
        rows.iter()
            .any(|c| c["kind"] == "ca" && c["fingerprint"].is_string())
    );
    assert!(
        rows.iter()
            .any(|c| c["kind"] == "user" && c["name"] == "olga")
    );
    assert_eq!(
        rows[0]["kind"], "node",
        "soonest to expire first: {status:#}"
    );
    let table = ctl(&admin, &["ca", "status"]).await.ok().stdout;
    assert!(
        table.starts_with("KIND") && table.contains("RENEWS FROM"),
        "{table}"
    );
    assert!(
        !agent.log().contains("session with the master ended"),
        "the session went on:\n{}",
        agent.log()
    );
    assert!(agent.log().contains("renewed the node's certificate"));
    agent.restart();
    eventually("web-1 back with its renewed certificate", PATIENCE, || {
        connected(&admin, "web-1")
    })
    .await;
    assert!(
        !agent.log().contains("no longer accepts"),
        "{}",
        agent.log()
    );
}
