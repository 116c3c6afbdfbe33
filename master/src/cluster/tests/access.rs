//! Enrollment, tokens and keys through the shell.

use super::*;
use crate::cluster::{Caller, JoinOutcome, KeyDecision};
use crate::pki::{self, csr_fingerprint, new_key_and_csr};

fn der(cert_pem: &str) -> Vec<u8> {
    pki::pem_certs(cert_pem).unwrap().remove(0).to_vec()
}

#[tokio::test]
async fn a_token_admits_at_once_and_a_single_use_token_only_once() {
    let (_, c, _) = cluster(&[]).await;
    let grant = c
        .create_token(
            "admin",
            Some(Duration::from_secs(60)),
            Some(1),
            vec!["web".into()],
            None,
        )
        .await
        .unwrap();
    let (_, csr) = new_key_and_csr("a").unwrap();
    let JoinOutcome::Accepted { cert_pem, .. } = c
        .join("a", &csr, Some(&grant.token), None, &Default::default())
        .await
        .unwrap()
    else {
        panic!("not accepted")
    };
    let caller = c.authenticate(Some(&der(&cert_pem))).unwrap();
    assert!(matches!(caller, Caller::Node { ref id, .. } if id == "a"));
    assert_eq!(
        c.read(|st| st.key("a").unwrap().value.roles.clone()),
        ["web"]
    );
    // Asking again with the same key returns the same certificate.
    assert_eq!(
        c.join("a", &csr, None, None, &Default::default())
            .await
            .unwrap(),
        JoinOutcome::Accepted { cert_pem }
    );
    // The token is used up for anyone else.
    let (_, csr_b) = new_key_and_csr("b").unwrap();
    let out = c
        .join("b", &csr_b, Some(&grant.token), None, &Default::default())
        .await
        .unwrap();
    assert!(
        matches!(out, JoinOutcome::Rejected(ref why) if why.contains("has been used up")),
        "{out:?}"
    );
    assert!(
        c.keys().iter().all(|k| k.node_id != "b"),
        "a refused join records no key"
    );
    let denied = c
        .events(0, 0, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Denied)
        .count();
    assert_eq!(denied, 1);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_reason() {
    let (_, c, _) = cluster(&[]).await;
    let grant = c
        .create_token("admin", Some(Duration::from_millis(1)), None, vec![], None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, csr) = new_key_and_csr("a").unwrap();
    let reason = |out| match out {
        JoinOutcome::Rejected(why) => why,
        other => panic!("{other:?}"),
    };
    assert!(
        reason(
            c.join("a", &csr, Some(&grant.token), None, &Default::default())
                .await
                .unwrap()
        )
        .contains("expired at")
    );
    assert!(
        reason(
            c.join("a", &csr, Some("nodot"), None, &Default::default())
                .await
                .unwrap()
        )
        .contains("malformed join token")
    );
    let forged = format!(
        "{}.{}",
        grant.token.split('.').next().unwrap(),
        "0".repeat(32)
    );
    assert!(
        reason(
            c.join("a", &csr, Some(&forged), None, &Default::default())
                .await
                .unwrap()
        )
        .contains("invalid join token")
    );
}

#[tokio::test]
async fn without_a_token_a_key_waits_until_accepted() {
    let (_, c, _) = cluster(&[]).await;
    let (_, csr) = new_key_and_csr("a").unwrap();
    assert_eq!(
        c.join("a", &csr, None, None, &Default::default())
            .await
            .unwrap(),
        JoinOutcome::Pending
    );
    assert_eq!(
        c.join("a", &csr, None, None, &Default::default())
            .await
            .unwrap(),
        JoinOutcome::Pending
    );
    // Another key for the same id waits beside it, never in its place.
    let (_, other) = new_key_and_csr("a").unwrap();
    assert_eq!(
        c.join("a", &other, None, None, &Default::default())
            .await
            .unwrap(),
        JoinOutcome::Pending
    );
    let key = c.keys().into_iter().find(|k| k.node_id == "a").unwrap();
    assert_eq!(key.fingerprint, csr_fingerprint(&csr).unwrap());
    assert_eq!(key.also_pending.len(), 1);
    // Accepting the name alone would admit either: refused, nothing changed.
    let refused = c
        .decide_keys(&["a".into()], KeyDecision::Accept, None, "admin")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("2 requests wait for node a"), "{refused}");
    assert_eq!(c.keys()[0], key);
    let fp = csr_fingerprint(&csr).unwrap();
    let hex = fp.trim_start_matches("sha256:");
    c.decide_keys(
        &["a".into()],
        KeyDecision::Accept,
        Some(&hex[..10]),
        "admin",
    )
    .await
    .unwrap();
    assert!(matches!(
        c.join("a", &other, None, None, &Default::default())
            .await
            .unwrap(),
        JoinOutcome::Rejected(_)
    ));
    assert!(matches!(
        c.join("a", &csr, None, None, &Default::default())
            .await
            .unwrap(),
        JoinOutcome::Accepted { .. }
    ));
}

#[tokio::test]
async fn deleting_a_key_revokes_its_certificate_and_closes_the_session() {
    let (_, c, _) = cluster(&[]).await;
    let grant = c
        .create_token("admin", Some(Duration::from_secs(60)), None, vec![], None)
        .await
        .unwrap();
    let (_, csr) = new_key_and_csr("a").unwrap();
    let JoinOutcome::Accepted { cert_pem, .. } = c
        .join("a", &csr, Some(&grant.token), None, &Default::default())
        .await
        .unwrap()
    else {
        panic!()
    };
    let mut session = c.connect(hello("a")).await.unwrap();
    c.decide_keys(&["a".into()], KeyDecision::Delete, None, "admin")
        .await
        .unwrap();
    assert!(
        session.spec_changed.changed().await.is_err(),
        "the session's loop ends"
    );
    let err = c
        .authenticate(Some(&der(&cert_pem)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("revoked"), "{err}");
    // Unknown ids fail the whole decision.
    let err = c
        .decide_keys(
            &["a".into(), "zz".into()],
            KeyDecision::Accept,
            None,
            "admin",
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown keys: a, zz");
}

#[tokio::test]
async fn a_key_left_pending_past_its_time_is_deleted_with_an_event() {
    let (_, c, _) = cluster(&[]).await;
    let (_, csr) = new_key_and_csr("a").unwrap();
    assert_eq!(
        c.join("a", &csr, None, None, &Default::default())
            .await
            .unwrap(),
        JoinOutcome::Pending
    );
    let keep = crate::cluster::Retention::default();
    assert_eq!(c.retain(&keep).await.unwrap(), 0, "a day is not up");
    let gone = c
        .retain(&crate::cluster::Retention {
            pending_keys: Duration::ZERO,
            ..keep
        })
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert!(c.keys().is_empty());
    let events = c.events(0, 100, None).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.by.starts_with("retention (pending longer than") && e.detail == "deleted"),
        "{events:#?}"
    );
}

/// Node `a`'s certificate, enrolled with a token and `csr`.
async fn enrolled(c: &Cluster, csr: &str) -> String {
    let grant = c
        .create_token("admin", Some(Duration::from_secs(60)), None, vec![], None)
        .await
        .unwrap();
    match c
        .join("a", csr, Some(&grant.token), None, &Default::default())
        .await
        .unwrap()
    {
        JoinOutcome::Accepted { cert_pem, .. } => cert_pem,
        other => panic!("not accepted: {other:?}"),
    }
}

/// A node renews with its certificate and key: early is refused; once due,
/// a new certificate, the old one still accepted (so a lost answer can be
/// asked for again, and is answered the same); another key, never.
#[tokio::test]
async fn a_node_renews_its_certificate_when_due_and_only_for_its_own_key() {
    let (_, c, _) = cluster(&[]).await;
    let (_, csr) = new_key_and_csr("a").unwrap();
    let cert_pem = enrolled(&c, &csr).await;
    let serial = pki::serial_of(&der(&cert_pem)).unwrap();
    let id = NodeId::new("a").unwrap();
    // A year's certificate, a minute old: not due.
    let early = c.renew(&id, &serial, &csr).await.unwrap_err().to_string();
    assert!(early.contains("may be renewed from"), "{early}");

    // Due at once: certificates that expire as they are issued.
    let (store, _, _) = cluster(&[]).await;
    let ca = Arc::new(
        Ca::generate("t", std::time::SystemTime::now())
            .unwrap()
            .0
            .with_node_validity(Duration::ZERO),
    );
    let c = Cluster::open(store, ca, Duration::from_secs(15), HostsNaming::default())
        .await
        .unwrap();
    let cert_pem = enrolled(&c, &csr).await;
    let old = pki::serial_of(&der(&cert_pem)).unwrap();
    let renewed = c.renew(&id, &old, &csr).await.unwrap();
    let new = pki::serial_of(&der(&renewed.cert_pem)).unwrap();
    assert_ne!(new, old);
    // The answer was lost: asked again with the old one, the same answer.
    assert_eq!(c.renew(&id, &old, &csr).await.unwrap(), renewed);
    assert!(matches!(
        c.authenticate(Some(&der(&cert_pem))),
        Ok(Caller::Node { .. })
    ));
    let (_, other) = new_key_and_csr("a").unwrap();
    let refused = c.renew(&id, &new, &other).await.unwrap_err().to_string();
    assert!(
        refused.contains("a renewal keeps the node's key"),
        "{refused}"
    );
    // Deleting the key revokes both.
    c.decide_keys(&["a".into()], KeyDecision::Delete, None, "admin")
        .await
        .unwrap();
    for pem in [&cert_pem, &renewed.cert_pem] {
        assert!(c.authenticate(Some(&der(pem))).is_err());
    }
}
