//! Alert delivery against real receivers: Alertmanager (Debian's
//! `prometheus-alertmanager`; `tests/run` installs it) holds a firing
//! alert with its labels, hears it again every `resend`, and lets it go
//! when it resolves; a master taking over restores the firing set to it
//! without a mail; aiosmtpd (PyPI) gets one mail per change of state over
//! STARTTLS with AUTH, over implicit TLS, and in plain; a webhook gets
//! Alertmanager's version-4 message; and a destination that is down is
//! reported, retried, and caught up once it is started. Addresses
//! 127.0.0.180–186.

use cluster_master::notify::{DeliveryReport, GiveUp, Notifier, NotifyConfig, SinkKind};
use cluster_model::alerts::{Metric, Notice, NoticeStatus, Severity};
use cluster_tests::eventually;
use cluster_tests::notify::{Alertmanager, Hook, Smtp, SmtpTls, certificates};
use cluster_tests::process::free_port;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(30);
/// A virtual environment with aiosmtpd, made once per target directory.
fn python() -> PathBuf {
    cluster_tests::notify::aiosmtpd(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn cpu(node: &str) -> Notice {
    Notice {
        status: NoticeStatus::Firing,
        node: node.into(),
        roles: vec!["web".into()],
        metric: Metric::Cpu,
        device: String::new(),
        severity: Severity::Critical,
        value: 97.0,
        threshold: 90.0,
        starts_at_ms: now_ms() - 60_000,
        ends_at_ms: None,
        why: String::new(),
    }
}

fn resolved(mut n: Notice) -> Notice {
    n.status = NoticeStatus::Resolved;
    n.value = 42.0;
    n.ends_at_ms = Some(now_ms());
    n
}

/// `[notify]` as the master's configuration reads it.
fn config(notify: &str) -> NotifyConfig {
    let raw = toml::from_str(notify).expect("TOML");
    cluster_master::Config::validate(raw, None, "box")
        .expect("a valid configuration")
        .notify
}

struct Rig {
    notifier: Notifier,
    reports: mpsc::UnboundedReceiver<DeliveryReport>,
    shutdown: CancellationToken,
}

fn start(notify: &str) -> Rig {
    cluster_tests::crypto();
    let (tx, reports) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let notifier = Notifier::start(
        &config(notify),
        "prod",
        Some("http://127.0.0.180:7441"),
        tx,
        shutdown.clone(),
    )
    .expect("delivery starts");
    Rig {
        notifier,
        reports,
        shutdown,
    }
}

impl Rig {
    async fn report(&mut self) -> DeliveryReport {
        tokio::time::timeout(PATIENCE, self.reports.recv())
            .await
            .expect("a delivery report in time")
            .expect("the report channel is open")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.notifier.stopped())
            .await
            .expect("the workers stop");
    }
}

#[tokio::test]
async fn alertmanager_holds_a_firing_alert_hears_it_again_and_lets_it_go_when_resolved() {
    let ip = "127.0.0.180";
    let am = Alertmanager::start(ip, free_port(ip.parse().unwrap())).await;
    let mut rig = start(&format!(
        "[notify]\nresend = \"1s\"\n[[notify.alertmanager]]\nurl = \"{}\"\n",
        am.url
    ));
    let n = cpu("web-1");
    rig.notifier.notify(n.clone());
    let node = [("node", "web-1"), ("alertname", "NodeCpuCritical")];
    eventually("Alertmanager holds the alert", PATIENCE, || async {
        am.alert(&node)
            .await
            .is_some_and(|a| a["status"]["state"] == "active")
    })
    .await;
    let alert = am.alert(&node).await.expect("the alert");
    let labels = &alert["labels"];
    assert_eq!(labels["role"], "web");
    assert_eq!(labels["metric"], "cpu");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["cluster"], "prod");
    assert!(labels.get("device").is_none(), "{alert}");
    assert_eq!(
        alert["annotations"]["summary"],
        "web-1 cpu critical: 97.0% ≥ 90.0%"
    );
    assert_eq!(alert["annotations"]["value"], "97.0%");
    assert_eq!(alert["generatorURL"], "http://127.0.0.180:7441/nodes/web-1");
    // Alertmanager's own fingerprint is the one webhooks are sent.
    let ours = cluster_master::notify::shape::fingerprint(&cluster_master::notify::shape::labels(
        &n,
        &cluster_master::notify::shape::Origin::new("prod", None),
    ));
    assert_eq!(alert["fingerprint"], ours.as_str());

    // Re-sent every second: Alertmanager's updatedAt and endsAt move on.
    let (updated, ends) = (alert["updatedAt"].clone(), alert["endsAt"].clone());
    eventually("a re-send reaches Alertmanager", PATIENCE, || async {
        let a = am.alert(&node).await.unwrap_or_default();
        a["updatedAt"] != updated && a["endsAt"] != ends && a["status"]["state"] == "active"
    })
    .await;

    rig.notifier.notify(resolved(n));
    eventually("the alert is no longer active", PATIENCE, || async {
        am.alert(&node)
            .await
            .is_none_or(|a| a["status"]["state"] != "active")
    })
    .await;
    assert!(rig.notifier.firing().is_empty());
    assert!(rig.reports.try_recv().is_err(), "a delivery failed");
    rig.stop().await;
}

#[tokio::test]
async fn a_master_taking_over_restores_the_firing_set_to_alertmanager_without_mail() {
    let ip = "127.0.0.181";
    let am = Alertmanager::start(ip, free_port(ip.parse().unwrap())).await;
    let python = python();
    let smtp_port = free_port(ip.parse().unwrap());
    let smtp = Smtp::start(&python, ip, smtp_port, SmtpTls::None, None, None);
    let mut rig = start(&format!(
        "[[notify.alertmanager]]\nurl = \"{}\"\n[notify.email]\nserver = \"{ip}\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"alerts@example.com\"\nto = [\"ops@example.com\"]\n",
        am.url
    ));
    let mut disk = cpu("db-1");
    disk.metric = Metric::Disk;
    disk.device = "/var".into();
    disk.severity = Severity::Warning;
    rig.notifier.restore(vec![disk.clone()]);
    eventually(
        "Alertmanager holds the restored alert",
        PATIENCE,
        || async {
            am.alert(&[
                ("node", "db-1"),
                ("device", "/var"),
                ("alertname", "NodeDiskWarning"),
            ])
            .await
            .is_some_and(|a| a["status"]["state"] == "active")
        },
    )
    .await;
    // The mail queue is first in, first out: a mail for the restored
    // alert would come before the one for its resolution.
    rig.notifier.notify(resolved(disk));
    eventually("the resolution's mail", PATIENCE, || async {
        !smtp.mails().is_empty()
    })
    .await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(
        mails[0]["subject"],
        "[RESOLVED] db-1 disk /var warning resolved: 42.0%"
    );
    eventually("Alertmanager lets it go", PATIENCE, || async {
        am.alert(&[("node", "db-1")])
            .await
            .is_none_or(|a| a["status"]["state"] != "active")
    })
    .await;
    assert!(rig.reports.try_recv().is_err(), "a delivery failed");
    rig.stop().await;
}

#[tokio::test]
async fn mail_is_one_per_change_of_state_over_starttls_with_auth() {
    let ip = "127.0.0.182";
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path(), ip);
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let port = free_port(ip.parse().unwrap());
    let smtp = Smtp::start(
        &python(),
        ip,
        port,
        SmtpTls::Starttls,
        Some((&cert, &key)),
        Some(("alerts", "s3cret")),
    );
    let mut rig = start(&format!(
        r#"[notify.email]
server = "{ip}"
port = {port}
tls = "starttls"
username = "alerts"
password_file = "{}"
ca_file = "{}"
from = "clusterctl <alerts@example.com>"
to = ["ops@example.com", "pager@example.com"]
"#,
        password.display(),
        ca.display()
    ));
    let n = cpu("web-1");
    rig.notifier.notify(n.clone());
    eventually("the firing mail", PATIENCE, || async {
        smtp.mails().len() == 1
    })
    .await;
    rig.notifier.notify(resolved(n));
    eventually("the resolved mail", PATIENCE, || async {
        smtp.mails().len() == 2
    })
    .await;
    let mails = smtp.mails();
    let firing = &mails[0];
    assert_eq!(
        firing["subject"],
        "[FIRING] web-1 cpu critical: 97.0% ≥ 90.0%"
    );
    assert_eq!(firing["tls"], true);
    assert_eq!(firing["user"], "alerts");
    assert_eq!(firing["mail_from"], "alerts@example.com");
    assert_eq!(
        firing["rcpt_tos"],
        serde_json::json!(["ops@example.com", "pager@example.com"])
    );
    assert_eq!(firing["content_type"], "text/plain");
    let text = firing["text"].as_str().unwrap();
    for line in [
        "  alertname = NodeCpuCritical",
        "  node = web-1",
        "  role = web",
        "  cluster = prod",
        "Value:     97.0%",
        "Threshold: 90.0%",
        "Ended:     still firing",
        "Duration:  1m",
        "Node:      http://127.0.0.180:7441/nodes/web-1",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert_eq!(
        mails[1]["subject"],
        "[RESOLVED] web-1 cpu critical resolved: 42.0%"
    );
    let text = mails[1]["text"].as_str().unwrap();
    assert!(text.contains("Status:    resolved"), "{text}");
    assert!(!text.contains("still firing"), "{text}");
    assert!(rig.reports.try_recv().is_err(), "a delivery failed");
    rig.stop().await;
}

#[tokio::test]
async fn mail_goes_over_implicit_tls_and_plain_smtp_too() {
    let ip = "127.0.0.183";
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path(), ip);
    let python = python();
    for (mode, tls) in [("tls", SmtpTls::Implicit), ("none", SmtpTls::None)] {
        let port = free_port(ip.parse().unwrap());
        let encrypted = !matches!(tls, SmtpTls::None);
        let smtp = Smtp::start(&python, ip, port, tls, Some((&cert, &key)), None);
        let mut rig = start(&format!(
            "[notify.email]\nserver = \"{ip}\"\nport = {port}\ntls = \"{mode}\"\nca_file = \"{}\"\nfrom = \"alerts@example.com\"\nto = [\"ops@example.com\"]\n",
            ca.display()
        ));
        rig.notifier.notify(cpu("web-2"));
        eventually(&format!("a mail over {mode}"), PATIENCE, || async {
            smtp.mails().len() == 1
        })
        .await;
        let mail = &smtp.mails()[0];
        assert_eq!(
            mail["subject"],
            "[FIRING] web-2 cpu critical: 97.0% ≥ 90.0%"
        );
        assert_eq!(mail["tls"], encrypted, "{mode}");
        assert_eq!(mail["user"], Value::Null);
        assert!(
            rig.reports.try_recv().is_err(),
            "a delivery over {mode} failed"
        );
        rig.stop().await;
    }
}

#[tokio::test]
async fn a_webhook_gets_alertmanagers_version_4_message_per_change_of_state() {
    cluster_tests::crypto();
    let hook = Hook::start("127.0.0.184").await;
    let mut rig = start(&format!("[[notify.webhook]]\nurl = \"{}\"\n", hook.url));
    let mut n = cpu("web-3");
    n.metric = Metric::Memory;
    n.severity = Severity::Warning;
    rig.notifier.notify(n.clone());
    rig.notifier.notify(resolved(n));
    eventually("two webhook posts", PATIENCE, || async {
        hook.bodies().len() == 2
    })
    .await;
    let bodies = hook.bodies();
    for (body, status) in bodies.iter().zip(["firing", "resolved"]) {
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], status);
        assert_eq!(body["receiver"], "clusterctl");
        assert_eq!(body["truncatedAlerts"], 0);
        assert_eq!(body["externalURL"], "http://127.0.0.180:7441");
        assert_eq!(
            body["groupKey"],
            "{}:{alertname=\"NodeMemoryWarning\", node=\"web-3\"}"
        );
        assert_eq!(body["commonLabels"]["node"], "web-3");
        let alerts = body["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a["status"], status);
        assert_eq!(a["labels"]["alertname"], "NodeMemoryWarning");
        assert_eq!(a["labels"]["node"], "web-3");
        assert_eq!(a["labels"]["cluster"], "prod");
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    }
    assert_eq!(bodies[0]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_ne!(bodies[1]["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert!(rig.reports.try_recv().is_err(), "a delivery failed");
    rig.stop().await;
}

/// `notify` while the destination is down returns at once, however many.
fn notify_without_waiting(rig: &Rig, notice: &Notice) {
    let started = Instant::now();
    for _ in 0..100 {
        rig.notifier.notify(notice.clone());
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "100 notices took {:?} to enqueue",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_alertmanager_that_is_down_is_reported_and_caught_up_when_it_starts() {
    let ip = "127.0.0.185";
    let port = free_port(ip.parse().unwrap());
    let mut rig = start(&format!(
        "[notify]\nqueue = 10\n[[notify.alertmanager]]\nurl = \"http://{ip}:{port}\"\n"
    ));
    let n = cpu("web-4");
    rig.notifier.notify(n.clone());
    let DeliveryReport::Failure(first) = rig.report().await else {
        panic!("a failure first")
    };
    assert_eq!(first.sink.kind, SinkKind::Alertmanager);
    assert_eq!(first.notice, "web-4 cpu critical: 97.0% ≥ 90.0%");
    assert_eq!((first.attempt, first.given_up), (1, None));
    // More of them while it is down: the queue of 10 keeps the newest.
    notify_without_waiting(&rig, &n);
    let am = Alertmanager::start(ip, port).await;
    let mut dropped = 0;
    loop {
        match rig.report().await {
            DeliveryReport::Recovered {
                sink,
                failed_attempts,
            } => {
                assert_eq!(sink.kind, SinkKind::Alertmanager);
                assert!(failed_attempts >= 1);
                break;
            }
            // Pushed out of the queue, or (retried before Alertmanager
            // listens) a queued notice's first failure.
            DeliveryReport::Failure(f) if f.given_up == Some(GiveUp::QueueFull) => dropped += 1,
            DeliveryReport::Failure(f) => assert_eq!((f.attempt, f.given_up), (1, None), "{f:?}"),
        }
    }
    assert_eq!(dropped, 91, "101 notices in a queue of 10");
    eventually("the alert reaches Alertmanager", PATIENCE, || async {
        am.alert(&[("node", "web-4")])
            .await
            .is_some_and(|a| a["status"]["state"] == "active")
    })
    .await;
    rig.stop().await;
}

#[tokio::test]
async fn a_mail_server_that_is_down_is_reported_and_caught_up_when_it_starts() {
    let ip = "127.0.0.186";
    let port = free_port(ip.parse().unwrap());
    let python = python();
    let mut rig = start(&format!(
        "[notify.email]\nserver = \"{ip}\"\nport = {port}\ntls = \"none\"\nfrom = \"alerts@example.com\"\nto = [\"ops@example.com\"]\n"
    ));
    rig.notifier.notify(cpu("web-5"));
    let DeliveryReport::Failure(first) = rig.report().await else {
        panic!("a failure first")
    };
    assert_eq!(first.sink.kind, SinkKind::Email);
    assert_eq!(first.sink.target, format!("{ip}:{port}"));
    assert_eq!((first.attempt, first.given_up), (1, None));
    assert!(!first.error.is_empty());
    let smtp = Smtp::start(&python, ip, port, SmtpTls::None, None, None);
    match rig.report().await {
        DeliveryReport::Recovered { sink, .. } => assert_eq!(sink.kind, SinkKind::Email),
        other => panic!("expected the recovery, got {other:?}"),
    }
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(
        mails[0]["subject"],
        "[FIRING] web-5 cpu critical: 97.0% ≥ 90.0%"
    );
    rig.stop().await;
}
