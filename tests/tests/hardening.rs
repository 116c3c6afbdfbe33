//! Hardening against real processes: what an unauthenticated caller, a
//! copied key, a node lying about its address, a leaky check or a flood
//! can and cannot do; TLS failures and lost masters that say what failed.
//! (Credentials listed, withdrawn and renewed: `credentials.rs`.)

use cluster_proto as pb;
use cluster_tests::access::*;
use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use serde_json::Value;
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const PATIENCE: Duration = Duration::from_secs(10);

/// The client's own note on who it is (`USER@host`) cannot forge a line of
/// the event log: the author is the certificate's identity alone; the note
/// is a field of its own, its control characters escaped, its length
/// bounded.
#[tokio::test(flavor = "multi_thread")]
async fn a_newline_in_the_callers_user_cannot_forge_an_audit_line() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let _agent = AgentProc::builder("forge-1", &master)
        .addr("127.0.0.82")
        .spawn();
    let admin = master.admin();
    cluster_tests::connected(&admin, 1).await;
    let forged = "olga\n2026-12-01T00:00:00.000Z  drain  web-9  root  forged\x1b[2J";
    let env = cluster_cli::Env {
        user: forged.into(),
        ..admin.env()
    };
    let out = cluster_tests::ctl::ctl_env(&env, &["drain", "forge-1", "--reason", "r"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let drain = events(&admin)
        .await
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "drain")
        .expect("the drain's event");
    assert_eq!(drain["by"], "admin", "the certificate's identity alone");
    let note = drain["note"].as_str().unwrap();
    assert!(!note.contains('\n') && !note.contains('\x1b'), "{note:?}");
    assert!(
        note.starts_with("olga\\n2026"),
        "the note, escaped: {note:?}"
    );
    // Nor does the node's flag, which every health probe serves.
    let flag = node_json(&admin, "forge-1").await.unwrap();
    assert_eq!(flag["offline"]["by"], "admin", "{flag}");
    let text = ctl(&admin, &["events"]).await.ok().stdout;
    assert!(
        !text.contains("forged\n") && !text.lines().any(|l| l.starts_with("2026-12-01T00:00:00")),
        "{text}"
    );
}

/// A failing check's output can hold secrets (a connection string with
/// its password, an API key in a URL). The unauthenticated endpoints —
/// the agent's `/health` and HAProxy agent-check port, the master's
/// `/health?node=` — name the check and its state only, and the REST API
/// answers nothing without a token; authenticated callers see the output,
/// credentials and query values redacted.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_in_a_checks_output_are_never_served_unauthenticated() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let check = r#"
[[check]]
name = "db"
command = ["sh", "-c", "echo 'cannot reach postgres://app:S3cretPassw0rd@db:5432/app via http://h/q?apikey=K3yK3y&x=1'; exit 1"]
interval = "200ms"
timeout = "200ms"
rise = 1
fall = 1
"#;
    let agent = AgentProc::builder("leaky-1", &master)
        .addr("127.0.0.83")
        .config(check)
        .spawn();
    let admin = master.admin();
    eventually("leaky-1 failing", PATIENCE, || async {
        node_json(&admin, "leaky-1")
            .await
            .is_some_and(|n| n["state"] == "failing")
    })
    .await;
    let secret = |text: &str| text.contains("S3cret") || text.contains("K3yK3y");

    let (code, body) = agent.health().await;
    assert_eq!(code, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&body["status"], &body["check"]),
        (&"failing".into(), &"db".into())
    );
    assert!(!secret(&body.to_string()), "agent /health: {body}");
    assert!(
        !body.to_string().contains("postgres"),
        "no output at all: {body}"
    );

    let base = master.http_url();
    let (_, body) = cluster_tests::get(&format!("{base}/health?node=leaky-1")).await;
    assert!(body.contains("leaky-1"), "{body}");
    assert!(!secret(&body) && !body.contains("postgres"), "{body}");
    for url in [
        format!("{base}/api/v1/nodes"),
        format!("{base}/api/v1/nodes/leaky-1/checks"),
        format!("{base}/++rest++nodestatus"),
    ] {
        let (code, body) = cluster_tests::get(&url).await;
        assert_eq!(code, 401, "{url}: {body}");
        assert!(
            !body.contains("leaky-1") && !body.contains("postgres"),
            "{url}: {body}"
        );
    }
    // With a token: the output, redacted.
    let token = cluster_tests::api_token(&admin, "read", "reader").await;
    let (code, body) = cluster_tests::http::send(
        "GET",
        &format!("{base}/api/v1/nodes/leaky-1/checks"),
        &token,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("postgres://app:***@db:5432/app"), "{body}");
    assert!(!secret(&body), "{body}");

    // Authenticated: the output, redacted.
    let node = node_json(&admin, "leaky-1").await.unwrap();
    let output = node["checks"][0]["output"].as_str().unwrap().to_owned();
    assert!(
        output.contains("postgres://app:***@db:5432/app"),
        "{output}"
    );
    assert!(output.contains("?apikey=***&x=***"), "{output}");
    assert!(!secret(&node.to_string()), "{node:#}");
    let table = ctl(&admin, &["nodes"]).await.ok().stdout;
    assert!(table.contains("db failing") && !secret(&table), "{table}");
    assert!(!secret(&agent.log()), "the agent's log:\n{}", agent.log());
}

/// A flood of refused handshakes is not a durable write each: the first
/// from a source is an event at once, the rest one event with their count
/// when the window ends; the master goes on draining meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn refused_handshakes_are_counted_per_source_not_written_each() {
    cluster_tests::crypto();
    let master = MasterProc::builder()
        .config("refused_handshakes_window = \"2s\"\n")
        .spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.84")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    let ca = read(&admin.ca);
    let (cert, key, _) = foreign_identity(cluster_master::pki::Subject::Node("mallory".into()));
    let tls_refusals = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["kind"] == "denied" && e["by"] == "tls")
            .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let before = tls_refusals(&events(&admin).await).len();
    let started = Instant::now();
    const FLOOD: usize = 200;
    for _ in 0..FLOOD {
        one_handshake(&admin.url, &ca, &cert, &key).await;
    }
    // The master drains meanwhile.
    ctl(&admin, &["drain", "web-1", "--reason", "r", "--wait"])
        .await
        .ok();
    let during = tls_refusals(&events(&admin).await);
    if started.elapsed() < Duration::from_secs(2) {
        assert_eq!(during.len() - before, 1, "{during:#?}");
    }
    assert!(
        during[before].starts_with("TLS handshake from 127.0.0.1 refused: a client certificate"),
        "{during:#?}"
    );
    // Every refusal is accounted for: each window's first, recorded, and
    // the rest counted when the window ends.
    let accounted = |details: &[String]| -> usize {
        details[before..]
            .iter()
            .map(|d| {
                match d.split_once(" more TLS handshakes from 127.0.0.1 refused in the last 2s") {
                    Some((n, _)) => n.parse::<usize>().unwrap_or(0),
                    None => usize::from(d.starts_with("TLS handshake from 127.0.0.1 refused")),
                }
            })
            .sum()
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        // Each attempt is one refused handshake, on its own connection.
        let details = tls_refusals(&events(&admin).await);
        if accounted(&details) == FLOOD {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} refusals accounted for after {FLOOD} attempts: {details:#?}",
            accounted(&details)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = tls_refusals(&events(&admin).await);
    let windows = 1 + started.elapsed().as_secs() as usize / 2;
    assert!(
        all.len() - before <= 2 * windows,
        "{windows} windows: {all:#?}"
    );
}

/// Enrollment without a token cannot squat a name (the node's tokened
/// request wins and the pending one is dropped, with an event), nor flood
/// the master with pending keys; `keys list` says where each came from,
/// and `keys delete` takes globs.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_a_token_cannot_squat_a_name_or_flood_the_keys() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    // Squatting: a token-less request for node8 first.
    let squat = join(&admin, "node8", "").await;
    assert_eq!(squat.status, pb::JoinStatus::Pending as i32, "{squat:?}");
    let _real = AgentProc::builder("node8", &master)
        .addr("127.0.0.85")
        .spawn();
    eventually(
        "node8 enrolled with its token and connected",
        PATIENCE,
        || connected(&admin, "node8"),
    )
    .await;
    assert_eq!(
        key_state(&admin, "node8").await.as_deref(),
        Some("accepted")
    );
    let dropped = events(&admin).await.into_iter().any(|e| {
        e["kind"] == "key"
            && e["node"] == "node8"
            && e["detail"]
                .as_str()
                .unwrap_or("")
                .contains("dropped the pending key")
    });
    assert!(dropped, "{:#?}", events(&admin).await);

    // A flood of token-less requests from one address: a few become
    // pending, the rest are refused without a write each.
    let events_before = events(&admin).await.len();
    let mut refused = 0;
    for i in 0..100 {
        let r = join(&admin, &format!("spam-{i}"), "").await;
        if r.status == pb::JoinStatus::Rejected as i32 {
            assert!(
                r.message
                    .contains("too many enrollment requests without a token from 127.0.0.1"),
                "{r:?}"
            );
            refused += 1;
        }
    }
    assert!(refused >= 80, "only {refused} of 100 refused");
    let keys = ctl(&admin, &["keys", "list", "-o", "json"])
        .await
        .ok()
        .json();
    let pending: Vec<&Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 100 - refused, "{keys:#}");
    assert!(
        pending.iter().all(|k| k["source"] == "127.0.0.1"),
        "{keys:#}"
    );
    assert!(events(&admin).await.len() <= events_before + pending.len() + 1);
    let table = ctl(&admin, &["keys", "list"]).await.ok().stdout;
    assert!(
        table.contains("FROM") && table.contains("127.0.0.1"),
        "{table}"
    );

    // Globs.
    ctl(&admin, &["keys", "delete", "spam-*"]).await.ok();
    let keys = ctl(&admin, &["keys", "list", "-o", "json"])
        .await
        .ok()
        .json();
    let ids: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node8"], "{keys:#}");
    assert!(connected(&admin, "node8").await);
}

/// A copy of a node's key used from another address while the node's own
/// session is alive is refused, with an event naming both addresses —
/// never a takeover, nor two sessions replacing each other forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_of_a_nodes_key_elsewhere_cannot_take_over_its_session() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let real = AgentProc::builder("node4", &master)
        .addr("127.0.0.86")
        .spawn();
    eventually("node4 connected", PATIENCE, || connected(&admin, "node4")).await;
    let pki = real.data_dir().join("pki");
    let (cert, key) = (read(&pki.join("node.crt")), read(&pki.join("node.key")));
    // The copy connects from 127.0.0.87 (the real agent from its own 127.0.0.86).
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&admin.ca)))
        .identity(Identity::from_pem(&cert, &key))
        .domain_name("127.0.0.1");
    let ch = Endpoint::from_shared(admin.url.clone())
        .unwrap()
        .local_address(Some("127.0.0.87".parse().unwrap()))
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let hello = || pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Hello(pb::Hello {
            node_id: "node4".into(),
            grains_json: r#"{"os":"Impostor"}"#.into(),
            ..Default::default()
        })),
    };
    for _ in 0..5 {
        let err = pb::agent_service_client::AgentServiceClient::new(ch.clone())
            .session(tokio_stream::iter(vec![hello()]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message().contains(
                "node node4 already has a live session from 127.0.0.86; refused the one from 127.0.0.87"
            ),
            "{}",
            err.message()
        );
    }
    let node = node_json(&admin, "node4").await.unwrap();
    assert_eq!(node["connected"], true);
    assert_ne!(node["grains"]["os"], "Impostor", "{node:#}");
    let held: Vec<Value> = events(&admin)
        .await
        .into_iter()
        .filter(|e| {
            e["kind"] == "denied"
                && e["detail"].as_str().unwrap_or("").contains(
                    "already has a live session from 127.0.0.86; refused the one from 127.0.0.87",
                )
        })
        .collect();
    assert_eq!(
        held.len(),
        1,
        "one event a minute, however many tries: {held:#?}"
    );
    // The real agent's session was never replaced.
    assert_eq!(
        real.log().matches("session open").count(),
        1,
        "{}",
        real.log()
    );
}

/// TLS failures exit 4 and say what failed and which file was used: a
/// client certificate from another CA, an expired one; a CA file that is
/// not the master's.
#[tokio::test(flavor = "multi_thread")]
async fn tls_failures_exit_4_and_say_what_failed_with_which_file() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, other_ca) = foreign_identity(cluster_master::pki::Subject::User {
        name: "mallory".into(),
        role: cluster_master::pki::Role::Admin,
    });
    let (cert_file, key_file) = (dir.path().join("m.crt"), dir.path().join("m.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let foreign = admin.with_identity(cert_file.clone(), key_file);
    let out = ctl(&foreign, &["nodes"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("refused this client's certificate (it is not signed by the cluster's CA)")
            && out.stderr.contains(&cert_file.display().to_string()),
        "{}",
        out.stderr
    );

    // The master's certificate checked against a CA that is not its own.
    let other_ca_file = dir.path().join("other-ca.crt");
    std::fs::write(&other_ca_file, &other_ca.cert_pem).unwrap();
    let wrong_ca = cluster_tests::Admin {
        ca: other_ca_file.clone(),
        ..admin.clone()
    };
    let out = ctl(&wrong_ca, &["nodes"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("the master's certificate is not signed by the CA in")
            && out.stderr.contains(&other_ca_file.display().to_string()),
        "{}",
        out.stderr
    );
}

/// A call in flight when its master dies is exit 3, "master unreachable",
/// and says what may have happened and how to look: never exit 1, which
/// scripts read as "some node failed".
#[tokio::test(flavor = "multi_thread")]
async fn a_call_cut_off_by_its_master_dying_exits_3_and_says_how_to_check() {
    cluster_tests::crypto();
    let mut master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.92")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    let run = tokio::time::timeout(
        Duration::from_secs(30),
        ctl(&admin, &["run", "web-1", "--", "sleep", "47.5"]),
    );
    let kill = async {
        eventually("the job running", PATIENCE, || async {
            let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.json();
            jobs[0]["id"].is_string()
        })
        .await;
        let jobs = ctl(&admin, &["jobs", "-o", "json"]).await.json();
        master.kill();
        jobs[0]["id"].as_str().unwrap().to_owned()
    };
    let (cut, job) = tokio::join!(run, kill);
    let cut = cut.expect("the call ended when its master died");
    assert_eq!(cut.code, 3, "{cut:?}");
    assert!(cut.stderr.contains("lost the master"), "{}", cut.stderr);
    assert!(
        cut.stderr
            .contains(&format!("`clusterctl job {job}` shows what ran")),
        "{}",
        cut.stderr
    );
}

/// A node is sent traffic where it says it is reached, so a session from
/// another address than the one its node advertises is refused, with an
/// event — unless the masters allow NAT.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_advertising_an_address_it_does_not_connect_from_is_refused() {
    cluster_tests::crypto();
    for allow_nat in [false, true] {
        let master = MasterProc::builder()
            .config(&format!("allow_nat = {allow_nat}"))
            .spawn();
        let admin = master.admin();
        // 10.99.0.7 is not this machine's: the agent connects from 127.0.0.1.
        let _agent = AgentProc::builder("nat-1", &master)
            .addr("127.0.0.94")
            .config("advertise = \"10.99.0.7\"")
            .spawn();
        if allow_nat {
            eventually("nat-1 connected", PATIENCE, || connected(&admin, "nat-1")).await;
            let node = node_json(&admin, "nat-1").await.unwrap();
            assert_eq!(node["addresses"][0], "10.99.0.7", "{node:#}");
            continue;
        }
        eventually("the session refused, with an event", PATIENCE, || {
            denied_with(
                &admin,
                "node nat-1 says it is reached at 10.99.0.7, but its session comes from 127.0.0.1",
            )
        })
        .await;
        assert!(
            node_json(&admin, "nat-1").await.is_none(),
            "never registered"
        );
    }
}
