//! Names through the shell: registration, promotion, removal, renames.

use super::*;
use cluster_model::naming::Naming;

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
        .map(|n| n.node.name.to_string())
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
            .map(|n| (n.node.id.to_string(), n.node.name.to_string()))
            .collect::<Vec<(String, String)>>()
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
        c.nodes(&[again.node_id.to_string()]).unwrap()[0].node.name,
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

#[tokio::test]
async fn after_a_promotion_a_nodes_events_are_its_own_under_every_name() {
    let (_, c, _) = cluster(&[]).await;
    c.connect(hello_for("m5", "db", Naming::Masterful))
        .await
        .unwrap();
    c.connect(hello_for("s5", "db", Naming::Masterful))
        .await
        .unwrap();
    c.set_offline(&names(&["db-master"]), Some("old master's".into()), "t")
        .await
        .unwrap();
    c.promote("db-slave-1", "admin").await.unwrap();
    // `db-master` is s5 now: its history, not m5's.
    let events = c.events(0, 0, Some("db-master")).await.unwrap();
    assert!(
        events.iter().all(|e| e.node_id.as_deref() == Some("s5")),
        "{events:?}"
    );
    let shown: Vec<(&str, EventKind)> = events.iter().map(|e| (e.node.as_str(), e.kind)).collect();
    assert_eq!(
        shown,
        [
            ("db-slave-1", EventKind::Registered),
            ("db-master", EventKind::Name)
        ],
        "each event shows the name the node had then"
    );
    // And m5's history follows m5, by id or by its new name.
    let m5 = c.events(0, 0, Some("m5")).await.unwrap();
    assert_eq!(m5, c.events(0, 0, Some("db-slave-1")).await.unwrap());
    assert!(m5.iter().any(|e| e.detail == "old master's"), "{m5:?}");
}
