//! Table-style tests of the cluster core against an in-memory store that
//! can be told to fail.

use super::*;
use crate::store::Loaded;
use std::sync::atomic::{AtomicBool, Ordering};

/// A store in memory that can be told to fail.
#[derive(Default)]
struct MemStore {
    writes: Mutex<Vec<Write>>,
    fail: AtomicBool,
}

impl Store for Arc<MemStore> {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            next_event_seq: 1,
            ..Loaded::default()
        })
    }
    fn write(&self, write: &Write) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                key: "test".into(),
                reason: "disk on fire".into(),
            });
        }
        self.writes.lock().unwrap().push(write.clone());
        Ok(())
    }
    fn jobs(&self, _: usize) -> Result<Vec<crate::model::JobRecord>, StoreError> {
        Ok(Vec::new())
    }
    fn job(&self, _: &str) -> Result<Option<crate::model::JobRecord>, StoreError> {
        Ok(None)
    }
    fn rollouts(&self, _: usize) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError> {
        Ok(Vec::new())
    }
    fn rollout(&self, _: &str) -> Result<Option<crate::rollout::RolloutRecord>, StoreError> {
        Ok(None)
    }
    fn events(&self, _: &EventQuery) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .writes
            .lock()
            .unwrap()
            .iter()
            .flat_map(|w| w.events.clone())
            .collect())
    }
}

fn hello(id: &str) -> Hello {
    Hello {
        node_id: id.into(),
        grains: Grains::new(),
        roles: vec![],
        addresses: vec![],
        health_url: String::new(),
        service: String::new(),
        naming: Default::default(),
        aliases: vec![],
        wants_hosts: true,
        wants_proxy: false,
    }
}

async fn cluster(ids: &[&str]) -> (Arc<MemStore>, Cluster, Vec<SessionHandle>) {
    let store = Arc::new(MemStore::default());
    let (ca, _) = crate::pki::Ca::generate("test", std::time::SystemTime::now()).unwrap();
    let c = Cluster::open(
        Arc::new(store.clone()),
        Arc::new(ca),
        Duration::from_secs(15),
    )
    .unwrap();
    let mut handles = Vec::new();
    for id in ids {
        handles.push(c.connect(hello(id)).await.unwrap());
    }
    (store, c, handles)
}

fn names(v: &[&str]) -> crate::cluster::TargetSpec {
    crate::cluster::TargetSpec::Names(v.iter().map(|s| s.to_string()).collect())
}

#[tokio::test]
async fn an_unknown_name_fails_the_whole_drain() {
    let (_, c, _) = cluster(&["a", "b"]).await;
    let g0 = c.generation();
    let err = c
        .set_offline(&names(&["a", "x", "y"]), Some("r".into()), "t")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown nodes: x, y");
    assert!(
        c.nodes(&[])
            .unwrap()
            .iter()
            .all(|(n, _)| n.offline.is_none())
    );
    assert_eq!(c.generation(), g0);
}

#[tokio::test]
async fn a_failed_store_write_changes_nothing() {
    let (store, c, _) = cluster(&["a"]).await;
    let g0 = c.generation();
    store.fail.store(true, Ordering::SeqCst);
    assert!(
        c.set_offline(&names(&["a"]), Some("r".into()), "t")
            .await
            .is_err()
    );
    assert!(c.nodes(&[]).unwrap()[0].0.offline.is_none());
    assert_eq!(c.generation(), g0);
    // Once the store works again, event numbers carry on without a gap.
    store.fail.store(false, Ordering::SeqCst);
    c.set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let seqs: Vec<u64> = c
        .events(&EventQuery::default())
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2], "registered, then drain");
}

#[tokio::test]
async fn only_the_drained_nodes_session_is_woken_and_changes_coalesce() {
    let (_, c, mut h) = cluster(&["a", "b"]).await;
    let g0 = c.generation();
    for reason in ["one", "two", "three"] {
        c.set_offline(&names(&["a"]), Some(reason.into()), "t")
            .await
            .unwrap();
    }
    assert!(h[0].spec_changed.has_changed().unwrap());
    assert!(
        !h[1].spec_changed.has_changed().unwrap(),
        "b was not concerned"
    );
    // Level-triggered: one wake-up, and the spec read then is the latest.
    h[0].spec_changed.borrow_and_update();
    let (generation, spec) = c.spec("a").unwrap();
    assert_eq!(
        (generation, spec.offline.unwrap().reason.as_str()),
        (g0 + 3, "three")
    );
}

#[tokio::test]
async fn draining_an_already_drained_node_with_the_same_reason_is_unchanged() {
    let (_, c, _) = cluster(&["a"]).await;
    let g0 = c.generation();
    c.set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let (g, changes) = c
        .set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    assert_eq!(g, g0 + 1);
    assert!(!changes[0].changed);
}

#[tokio::test]
async fn waiting_ends_on_the_acknowledgement_or_reports_who_is_missing() {
    let (_, c, h) = cluster(&["a", "b"]).await;
    let (_, changes) = c
        .set_offline(&names(&["a", "b"]), Some("r".into()), "t")
        .await
        .unwrap();
    let targets: Vec<_> = changes
        .iter()
        .map(|x| (x.id.clone(), x.spec_generation))
        .collect();
    c.acknowledge(&h[0], changes[0].spec_generation, "offline".into());
    c.disconnect(&h[1]);
    let statuses = c.wait_applied(&targets, Duration::from_secs(5)).await;
    assert_eq!(
        statuses,
        [ApplyStatus::Acknowledged, ApplyStatus::NotConnected]
    );

    let (_, c, _h) = cluster(&["a"]).await;
    let (_, changes) = c
        .set_offline(&names(&["a"]), Some("r".into()), "t")
        .await
        .unwrap();
    let t = [(changes[0].id.clone(), changes[0].spec_generation)];
    let statuses = c.wait_applied(&t, Duration::from_millis(50)).await;
    assert_eq!(statuses, [ApplyStatus::TimedOut]);
}

#[tokio::test]
async fn a_newer_session_replaces_the_old_one() {
    let (_, c, mut h) = cluster(&["a"]).await;
    let newer = c.connect(hello("a")).await.unwrap();
    // The old session's watch closes, so its loop ends.
    assert!(h[0].spec_changed.changed().await.is_err());
    // Its late disconnect does not close the newer session.
    c.disconnect(&h[0]);
    assert!(c.nodes(&[]).unwrap()[0].0.connected);
    c.disconnect(&newer);
    assert!(!c.nodes(&[]).unwrap()[0].0.connected);
}

#[tokio::test]
async fn an_unchanged_hello_writes_nothing() {
    let (store, c, _) = cluster(&["a"]).await;
    let before = store.writes.lock().unwrap().len();
    c.connect(hello("a")).await.unwrap();
    assert_eq!(store.writes.lock().unwrap().len(), before);
    let mut changed = hello("a");
    changed.roles = vec!["web".into()];
    c.connect(changed).await.unwrap();
    assert_eq!(store.writes.lock().unwrap().len(), before + 1);
}

mod access {
    use super::*;
    use crate::cluster::{Caller, JoinOutcome, KeyDecision};
    use crate::pki::{self, new_key_and_csr};

    fn der(cert_pem: &str) -> Vec<u8> {
        pki::pem_certs(cert_pem).unwrap().remove(0).to_vec()
    }

    #[tokio::test]
    async fn a_token_admits_at_once_and_a_single_use_token_only_once() {
        let (_, c, _) = cluster(&[]).await;
        let grant = c
            .create_token(
                "admin",
                Duration::from_secs(60),
                Some(1),
                vec!["web".into()],
            )
            .await
            .unwrap();
        let (_, csr) = new_key_and_csr("a").unwrap();
        let JoinOutcome::Accepted { cert_pem, .. } =
            c.join("a", &csr, Some(&grant.token)).await.unwrap()
        else {
            panic!("not accepted")
        };
        let caller = c.authenticate(Some(&der(&cert_pem))).unwrap();
        assert!(matches!(caller, Caller::Node { ref id, .. } if id == "a"));
        assert_eq!(c.assigned_roles("a"), ["web"]);
        // Asking again with the same key returns the same certificate.
        assert_eq!(
            c.join("a", &csr, None).await.unwrap(),
            JoinOutcome::Accepted {
                cert_pem,
                ca_pem: c.ca_pem().to_owned()
            }
        );
        // The token is used up for anyone else.
        let (_, csr_b) = new_key_and_csr("b").unwrap();
        let out = c.join("b", &csr_b, Some(&grant.token)).await.unwrap();
        assert!(
            matches!(out, JoinOutcome::Rejected(ref why) if why.contains("has been used up")),
            "{out:?}"
        );
        assert!(
            c.keys().iter().all(|k| k.node_id != "b"),
            "a refused join records no key"
        );
        let denied = c
            .events(&EventQuery::default())
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
            .create_token("admin", Duration::from_millis(1), None, vec![])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (_, csr) = new_key_and_csr("a").unwrap();
        let reason = |out| match out {
            JoinOutcome::Rejected(why) => why,
            other => panic!("{other:?}"),
        };
        assert!(
            reason(c.join("a", &csr, Some(&grant.token)).await.unwrap()).contains("expired at")
        );
        assert!(
            reason(c.join("a", &csr, Some("nodot")).await.unwrap())
                .contains("malformed join token")
        );
        let forged = format!(
            "{}.{}",
            grant.token.split('.').next().unwrap(),
            "0".repeat(32)
        );
        assert!(
            reason(c.join("a", &csr, Some(&forged)).await.unwrap()).contains("invalid join token")
        );
    }

    #[tokio::test]
    async fn without_a_token_a_key_waits_until_accepted() {
        let (_, c, _) = cluster(&[]).await;
        let (_, csr) = new_key_and_csr("a").unwrap();
        assert_eq!(c.join("a", &csr, None).await.unwrap(), JoinOutcome::Pending);
        assert_eq!(c.join("a", &csr, None).await.unwrap(), JoinOutcome::Pending);
        // Another key for the same id is refused while one is pending.
        let (_, other) = new_key_and_csr("a").unwrap();
        assert!(matches!(
            c.join("a", &other, None).await.unwrap(),
            JoinOutcome::Rejected(_)
        ));
        c.decide_keys(&["a".into()], KeyDecision::Accept, "admin")
            .await
            .unwrap();
        assert!(matches!(
            c.join("a", &csr, None).await.unwrap(),
            JoinOutcome::Accepted { .. }
        ));
    }

    #[tokio::test]
    async fn deleting_a_key_revokes_its_certificate_and_closes_the_session() {
        let (_, c, _) = cluster(&[]).await;
        let grant = c
            .create_token("admin", Duration::from_secs(60), None, vec![])
            .await
            .unwrap();
        let (_, csr) = new_key_and_csr("a").unwrap();
        let JoinOutcome::Accepted { cert_pem, .. } =
            c.join("a", &csr, Some(&grant.token)).await.unwrap()
        else {
            panic!()
        };
        let mut session = c.connect(hello("a")).await.unwrap();
        c.decide_keys(&["a".into()], KeyDecision::Delete, "admin")
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
            .decide_keys(&["a".into(), "zz".into()], KeyDecision::Accept, "admin")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "unknown keys: a, zz");
    }
}

mod naming {
    use super::*;
    use crate::naming::Naming;

    fn hello_for(id: &str, service: &str, naming: Naming) -> Hello {
        Hello {
            service: service.into(),
            naming,
            addresses: vec![format!("10.0.0.{}", id.len())],
            ..hello(id)
        }
    }

    #[tokio::test]
    async fn ten_agents_registering_at_once_get_ten_names_without_gaps() {
        let (_, c, _) = cluster(&[]).await;
        let c = Arc::new(c);
        let joins: Vec<_> = (0..10)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    c.connect(hello_for(&format!("id-{i}"), "mysql", Naming::Iterative))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut handles = Vec::new();
        for j in joins {
            handles.push(j.await.unwrap());
        }
        let mut names: Vec<String> = c
            .nodes(&[])
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.name)
            .collect();
        names.sort_by_key(|n| n[6..].parse::<u32>().unwrap());
        let want: Vec<String> = (0..10).map(|i| format!("mysql-{i}")).collect();
        assert_eq!(names, want);
    }

    #[tokio::test]
    async fn promotion_swaps_names_and_every_session_hears_of_it() {
        let (_, c, _) = cluster(&[]).await;
        let mut master = c
            .connect(hello_for("a", "db", Naming::Masterful))
            .await
            .unwrap();
        let _slave = c
            .connect(hello_for("b", "db", Naming::Masterful))
            .await
            .unwrap();
        let names = |c: &Cluster| {
            c.nodes(&[])
                .unwrap()
                .into_iter()
                .map(|(n, _)| (n.id, n.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&c),
            [
                ("a".into(), "db-master".into()),
                ("b".into(), "db-slave-1".into())
            ]
        );
        let seen = *master.hosts_changed.borrow_and_update();
        c.promote("db-slave-1", "admin").await.unwrap();
        let mut after = names(&c);
        after.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            after,
            [
                ("a".into(), "db-slave-1".into()),
                ("b".into(), "db-master".into())
            ]
        );
        assert!(master.hosts_changed.has_changed().unwrap());
        let changes = c.hosts_since(seen);
        assert_eq!(changes.upsert.len(), 2, "both lines changed, nothing else");
        // An iterative node cannot be promoted.
        c.connect(hello_for("c", "web", Naming::Iterative))
            .await
            .unwrap();
        assert!(
            c.promote("web-0", "admin")
                .await
                .unwrap_err()
                .to_string()
                .contains("not named from a masterful service")
        );
    }

    #[tokio::test]
    async fn removing_a_node_frees_its_name_and_drops_its_line() {
        let (_, c, _) = cluster(&[]).await;
        let a = c
            .connect(hello_for("a", "web", Naming::Iterative))
            .await
            .unwrap();
        c.connect(hello_for("b", "web", Naming::Iterative))
            .await
            .unwrap();
        let err = c
            .remove_node("web-0", "admin")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is connected"), "{err}");
        c.disconnect(&a);
        let (seen, _) = c.hosts();
        c.remove_node("web-0", "admin").await.unwrap();
        assert_eq!(c.hosts_since(seen).removed, ["a"]);
        let again = c
            .connect(hello_for("z", "web", Naming::Iterative))
            .await
            .unwrap();
        assert_eq!(
            c.nodes(&[again.node_id.clone()]).unwrap()[0].0.name,
            "web-0",
            "the gap is filled"
        );
        // Renames are checked and unique.
        assert!(c.rename("web-0", "not a name", "admin").await.is_err());
        assert!(matches!(
            c.rename("web-0", "web-1", "admin").await,
            Err(ClusterError::NameTaken { .. })
        ));
        c.rename("web-0", "edge-1", "admin").await.unwrap();
    }
}

mod balancing;
