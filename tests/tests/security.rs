//! Mutual TLS, enrollment, roles and revocation against real processes.

use cluster_proto as pb;
use cluster_tests::access::*;
use cluster_tests::{AgentProc, MasterProc, ctl, eventually};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_a_valid_identity_are_refused_audited_and_change_nothing() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    let ca = read(&admin.ca);

    // No client certificate: the TLS handshake succeeds (enrollment needs
    // that), the call does not.
    let anon = channel(&admin.url, &ca, None).await.unwrap();
    let mut control = pb::control_client::ControlClient::new(anon);
    let err = control
        .drain(pb::DrainRequest {
            names: vec!["web-1".into()],
            offline: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(err.message(), "a client certificate is required to drain");
    assert!(denied_with(&admin, "a client certificate is required to drain").await);
    assert_eq!(node_json(&admin, "web-1").await.unwrap()["state"], "online");

    // A certificate from another CA: refused in the handshake, and audited.
    let (cert, key, _) = foreign_identity(cluster_master::pki::Subject::User {
        name: "mallory".into(),
        role: cluster_master::pki::Role::Admin,
    });
    let refused = match channel(&admin.url, &ca, Some((&cert, &key))).await {
        Err(e) => e,
        // TLS 1.3 may report the refusal on the first call instead.
        Ok(ch) => format!(
            "{:?}",
            pb::control_client::ControlClient::new(ch)
                .list_nodes(pb::ListNodesRequest::default())
                .await
                .unwrap_err()
        ),
    };
    assert!(!refused.is_empty());
    eventually("the handshake refusal in the event log", PATIENCE, || {
        denied_with(
            &admin,
            "refused: a client certificate (subject \"O=clusterctl-admin, CN=mallory\"",
        )
    })
    .await;

    // An operator may read and drain, not administer.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    ctl(
        &admin,
        &["user", "add", "olga", "--role", "operator", "--out", out],
    )
    .await
    .ok();
    let olga = admin.with_identity(dir.path().join("olga.crt"), dir.path().join("olga.key"));
    ctl(&olga, &["nodes"]).await.ok();
    ctl(&olga, &["drain", "web-1", "--reason", "patching", "--wait"])
        .await
        .ok();
    ctl(&olga, &["undrain", "web-1", "--wait"]).await.ok();
    let drain_by = events(&admin)
        .await
        .into_iter()
        .find(|e| e["kind"] == "drain")
        .unwrap();
    assert!(
        drain_by["by"].as_str().unwrap().starts_with("olga"),
        "{drain_by}"
    );
    for args in [
        &["token", "create"][..],
        &["keys", "list"],
        &["keys", "delete", "web-1"],
        &["user", "add", "x", "--role", "admin", "--out", out],
    ] {
        let refused = ctl(&olga, args).await;
        assert_eq!(refused.code, 4, "{args:?}: {refused:?}");
        assert!(
            refused.stderr.contains("refused: olga is an operator;"),
            "{}",
            refused.stderr
        );
    }
    assert!(
        denied_with(
            &admin,
            "olga is an operator; create join tokens needs an admin"
        )
        .await
    );
    assert_eq!(
        key_state(&admin, "web-1").await.as_deref(),
        Some("accepted")
    );
    assert!(connected(&admin, "web-1").await);

    // The written config file works on its own.
    let olga_config = dir.path().join("olga.toml");
    let env = cluster_cli::Env {
        config_file: Some(olga_config),
        ..cluster_cli::Env::for_tests()
    };
    cluster_tests::ctl::ctl_env(&env, &["nodes"]).await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_used_up_tokens_are_refused_and_record_nothing() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();

    let once = ctl(&admin, &["token", "create", "--uses", "1", "-o", "json"])
        .await
        .ok()
        .json();
    let once = once["token"].as_str().unwrap();
    assert_eq!(
        join(&admin, "a-1", once).await.status,
        pb::JoinStatus::Accepted as i32
    );
    let again = join(&admin, "a-2", once).await;
    assert_eq!(again.status, pb::JoinStatus::Rejected as i32);
    assert!(
        again.message.contains("has been used up"),
        "{}",
        again.message
    );

    let short = ctl(&admin, &["token", "create", "--ttl", "1ms", "-o", "json"])
        .await
        .ok()
        .json();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = join(&admin, "a-3", short["token"].as_str().unwrap()).await;
    assert_eq!(late.status, pb::JoinStatus::Rejected as i32);
    assert!(late.message.contains("expired at"), "{}", late.message);

    let forged = join(&admin, "a-4", "abcdef.00000000000000000000000000000000").await;
    assert!(
        forged.message.contains("invalid join token"),
        "{}",
        forged.message
    );

    for id in ["a-2", "a-3", "a-4"] {
        assert_eq!(
            key_state(&admin, id).await,
            None,
            "a refused join left a key for {id}"
        );
    }
    assert!(denied_with(&admin, "has been used up (node a-2)").await);
    assert!(denied_with(&admin, "expired at").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_certificate_speaks_only_for_its_own_node() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .spawn();
    let _b = AgentProc::builder("web-2", &master)
        .addr("127.0.0.3")
        .spawn();
    eventually("both connected", PATIENCE, || async {
        connected(&admin, "web-1").await && connected(&admin, "web-2").await
    })
    .await;
    let pki = a.data_dir().join("pki");
    let (cert, key) = (read(&pki.join("node.crt")), read(&pki.join("node.key")));
    let ch = channel(&admin.url, &read(&admin.ca), Some((&cert, &key)))
        .await
        .unwrap();

    // Reporting as web-2 with web-1's certificate.
    let hello = pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Hello(pb::Hello {
            node_id: "web-2".into(),
            grains_json: r#"{"os":"Evil"}"#.into(),
            ..Default::default()
        })),
    };
    let err = pb::agent_service_client::AgentServiceClient::new(ch.clone())
        .session(tokio_stream::iter(vec![hello]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message()
            .contains("this certificate is node web-1's; it cannot speak as node web-2"),
        "{}",
        err.message()
    );
    assert_ne!(
        node_json(&admin, "web-2").await.unwrap()["grains"]["os"],
        "Evil"
    );
    assert!(
        connected(&admin, "web-2").await,
        "the real web-2 keeps its session"
    );

    // Nor may a node certificate drive the cluster.
    let err = pb::control_client::ControlClient::new(ch)
        .drain(pb::DrainRequest {
            names: vec!["web-2".into()],
            offline: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(node_json(&admin, "web-2").await.unwrap()["state"], "online");
    assert!(denied_with(&admin, "cannot speak as node web-2").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_key_closes_the_session_at_once_and_the_node_waits_as_pending() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    ctl(
        &admin,
        &["drain", "web-1", "--reason", "before revocation", "--wait"],
    )
    .await
    .ok();

    ctl(&admin, &["keys", "delete", "web-1"]).await.ok();
    // "At once": the master closed the session as part of the decision.
    assert!(!connected(&admin, "web-1").await);
    // The agent asks again, without its token: pending, not back in.
    eventually("web-1 pending again", PATIENCE, || async {
        key_state(&admin, "web-1").await.as_deref() == Some("pending")
    })
    .await;
    assert!(!connected(&admin, "web-1").await);
    assert_eq!(a.health().await.0, 503, "it keeps serving its last state");
    let keys = events(&admin).await;
    assert!(
        keys.iter()
            .any(|e| e["kind"] == "key" && e["detail"].as_str().unwrap().contains("revoked")),
        "{keys:?}"
    );

    // An admin lets it back in.
    ctl(&admin, &["keys", "accept", "web-1"]).await.ok();
    eventually("web-1 back", PATIENCE, || connected(&admin, "web-1")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_a_node_is_pending_until_accepted_and_rejected_stays_out() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let _a = AgentProc::builder("db-1", &master)
        .addr("127.0.0.2")
        .without_token()
        .spawn();
    let _b = AgentProc::builder("db-2", &master)
        .addr("127.0.0.3")
        .without_token()
        .spawn();
    eventually("two pending keys", PATIENCE, || async {
        key_state(&admin, "db-1").await.as_deref() == Some("pending")
            && key_state(&admin, "db-2").await.as_deref() == Some("pending")
    })
    .await;
    assert!(
        node_json(&admin, "db-1").await.is_none(),
        "not a node before acceptance"
    );

    ctl(&admin, &["keys", "accept", "db-1"]).await.ok();
    ctl(&admin, &["keys", "reject", "db-2"]).await.ok();
    eventually("db-1 connected", PATIENCE, || connected(&admin, "db-1")).await;
    ctl(&admin, &["drain", "db-1", "--wait"]).await.ok();
    assert_eq!(key_state(&admin, "db-2").await.as_deref(), Some("rejected"));
    assert!(node_json(&admin, "db-2").await.is_none());

    let unknown = ctl(&admin, &["keys", "accept", "db-9"]).await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("unknown key: db-9"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_with_a_token_is_listed_and_drainable_within_a_second_or_so() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    master.join_token(); // made before the clock starts
    let started = Instant::now();
    let a = AgentProc::builder("api-1", &master)
        .addr("127.0.0.5")
        .role("api")
        .spawn();
    eventually("api-1 listed and connected", PATIENCE, || {
        connected(&admin, "api-1")
    })
    .await;
    let listed_after = started.elapsed();
    ctl(&admin, &["drain", "api-1", "--wait"]).await.ok();
    assert_eq!(a.health().await.0, 503);
    // The figure itself is measured by the benchmark; this only reports it.
    eprintln!("api-1 listed {listed_after:?} after the agent was started");
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_from_one_host_do_not_starve_the_others() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    // Far more connections than one address may hold in handshake, none of
    // which ever says a word.
    let mut silent = Vec::new();
    for _ in 0..200 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.9:0".parse().unwrap()).unwrap();
        silent.push(sock.connect(master.grpc).await.unwrap());
    }
    // Everyone else is served at once.
    let started = Instant::now();
    ctl(&admin, &["nodes"]).await.ok();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served after {:?}",
        started.elapsed()
    );
    // Those over the per-address cap were closed by the master.
    let mut closed = 0;
    for s in &mut silent {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(
            Duration::from_millis(20),
            tokio::io::AsyncReadExt::read(s, &mut buf),
        )
        .await
        {
            closed += 1;
        }
    }
    assert!(closed >= 200 - 64, "only {closed} closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_is_refused_and_the_master_carries_on() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let admin = master.admin();
    let a = AgentProc::builder("web-1", &master)
        .addr("127.0.0.2")
        .spawn();
    eventually("web-1 connected", PATIENCE, || connected(&admin, "web-1")).await;
    let pki = a.data_dir().join("pki");
    let (cert, key) = (read(&pki.join("node.crt")), read(&pki.join("node.key")));
    let ch = channel(&admin.url, &read(&admin.ca), Some((&cert, &key)))
        .await
        .unwrap();
    let huge = format!(r#"{{"blob":"{}"}}"#, "x".repeat(5 * 1024 * 1024));
    let hello = pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Hello(pb::Hello {
            node_id: "web-1".into(),
            grains_json: huge,
            ..Default::default()
        })),
    };
    let result = pb::agent_service_client::AgentServiceClient::new(ch)
        .session(tokio_stream::iter(vec![hello]))
        .await;
    let err = match result {
        Err(status) => status,
        Ok(resp) => resp.into_inner().message().await.unwrap_err(),
    };
    assert!(
        matches!(
            err.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted | tonic::Code::Internal
        ),
        "{err:?}"
    );
    assert!(
        node_json(&admin, "web-1").await.unwrap()["grains"]
            .get("blob")
            .is_none()
    );
    ctl(&admin, &["nodes"]).await.ok();
}
