//! Bounded inputs against a real master: oversized and deeply nested
//! targets, huge names, reasons and labels, control characters. Each is a
//! precise error (exit 2, the limit named), changes nothing, and costs the
//! master no memory to speak of.

use cluster_proto as pb;
use cluster_tests::{Admin, AgentProc, MasterProc, ctl};
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The admin's own gRPC client, for what clusterctl's argv cannot carry.
async fn control(admin: &Admin) -> pb::control_client::ControlClient<tonic::transport::Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&admin.ca)))
        .identity(Identity::from_pem(read(&admin.cert), read(&admin.key)))
        .domain_name("127.0.0.1");
    let channel = Endpoint::from_shared(admin.url.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::control_client::ControlClient::new(channel).max_decoding_message_size(64 * 1024 * 1024)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// `clusterctl ARGS` exits 2 with an error containing each of `says`, a
/// few lines long whatever the input's size.
async fn refused(admin: &Admin, args: &[&str], says: &[&str]) {
    let out = ctl(admin, args).await;
    let what = format!(
        "clusterctl {}",
        args.join(" ").chars().take(80).collect::<String>()
    );
    assert_eq!(out.code, 2, "{what}: {out:?}");
    for s in says {
        assert!(
            out.stderr.contains(s),
            "{what}: no {s:?} in\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.len() < 4096,
        "{what}: {} bytes of error",
        out.stderr.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_malformed_inputs_are_precise_errors_that_change_nothing() {
    cluster_tests::crypto();
    let master = MasterProc::builder().spawn();
    let _agent = AgentProc::builder("web-1", &master)
        .addr("127.0.0.91")
        .spawn();
    let admin = master.admin();
    cluster_tests::connected(&admin, 1).await;
    let events_before = ctl(&admin, &["events", "-o", "json"]).await.ok().stdout;

    // A long invalid expression: the error shows where, not all of it.
    let long_invalid = format!("{} and", vec!["web-1"; 900].join(" or "));
    refused(
        &admin,
        &["nodes", "-C", &long_invalid],
        &[
            "invalid target expression at column",
            "expected an expression after `and`",
        ],
    )
    .await;
    let deep = format!("{}web-1{}", "(".repeat(10_000), ")".repeat(10_000));
    refused(
        &admin,
        &["nodes", "-C", &deep],
        &["nested more than 100 levels deep"],
    )
    .await;
    let many = vec!["web-1"; 1001].join(" or ");
    refused(&admin, &["nodes", "-C", &many], &["more than 1000 terms"]).await;
    let name = "n".repeat(100_000);
    refused(
        &admin,
        &["nodes", &name],
        &["100000 bytes long, at most 253"],
    )
    .await;
    let reason = "r".repeat(100_000);
    refused(
        &admin,
        &["drain", "web-1", "--reason", &reason],
        &["the reason is 100000 bytes long; at most 1024 are allowed"],
    )
    .await;
    refused(
        &admin,
        &[
            "drain",
            "web-1",
            "--reason",
            "deploy\n2026-12-01 forged line",
        ],
        &["the reason contains the control character '\\n'"],
    )
    .await;
    refused(
        &admin,
        &["label", "web-1", "team=ops\u{1b}[2J"],
        &["label team's value contains the control character '\\u{1b}'"],
    )
    .await;
    let value = format!("team={}", "v".repeat(2000));
    refused(
        &admin,
        &["label", "web-1", &value],
        &["label team's value is 2000 bytes long; at most 1024"],
    )
    .await;
    let key = format!("{}=x", "k".repeat(100_000));
    refused(&admin, &["label", "web-1", &key], &["label key"]).await;
    // Nothing changed.
    let node = ctl(&admin, &["nodes", "-o", "json"]).await.ok().json();
    assert_eq!(node[0]["state"], "online", "{node:#}");
    assert!(
        node[0]["labels"].as_object().is_none_or(|l| l.is_empty()),
        "{node:#}"
    );
    assert_eq!(
        ctl(&admin, &["events", "-o", "json"]).await.ok().stdout,
        events_before
    );

    // A 2 MB expression (more than argv carries): refused before it is
    // parsed, and the master's memory barely moves.
    let pid = master.pid().expect("running");
    let before = rss_kib(pid);
    let mut client = control(&admin).await;
    let huge = "node2 or ".repeat(2 * 1024 * 1024 / 9);
    for _ in 0..5 {
        let refused = client
            .list_nodes(pb::ListNodesRequest {
                names: vec![],
                target: Some(pb::Target {
                    kind: pb::TargetKind::Compound as i32,
                    expr: huge.clone(),
                    names: vec![],
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("at most 65536 are allowed"),
            "{}",
            refused.message().chars().take(300).collect::<String>()
        );
        assert!(refused.message().len() < 2200);
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "master RSS {before} KiB → {after} KiB"
    );
}
