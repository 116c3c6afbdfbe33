//! Random sequences of commands, each planned against the live state,
//! committed to a store and applied; then the store is loaded into a fresh
//! state. The two must agree on every record (with its revision), on the
//! revision and event numbering, and on every derived view: names, node
//! groups, hosts lines, the proxies' upstreams and routes. (The hosts
//! change log is history, not state: a reloaded master sends every line in
//! its first snapshots.)

use super::*;
use crate::state::plan::testing::FakeIssuer;
use crate::store::mem::MemStore;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Register {
        id: u8,
        web: bool,
        ip: u8,
        service: bool,
    },
    Drain {
        id: u8,
        maintenance: bool,
    },
    Undrain {
        id: u8,
    },
    Label {
        id: u8,
        value: u8,
    },
    Group {
        name: u8,
        expr: u8,
    },
    Upstream {
        name: u8,
        role_web: bool,
        port: u16,
    },
    Route {
        domain: u8,
        upstream: u8,
    },
    Unroute {
        domain: u8,
    },
    Rename {
        id: u8,
        to: u8,
    },
    Remove {
        id: u8,
    },
    Token {
        n: u8,
    },
    Promote {
        id: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..6u8, any::<bool>(), 0..4u8, any::<bool>())
            .prop_map(|(id, web, ip, service)| Op::Register { id, web, ip, service }),
        2 => (0..6u8, any::<bool>()).prop_map(|(id, maintenance)| Op::Drain { id, maintenance }),
        1 => (0..6u8).prop_map(|id| Op::Undrain { id }),
        1 => (0..6u8, 0..3u8).prop_map(|(id, value)| Op::Label { id, value }),
        1 => (0..3u8, 0..4u8).prop_map(|(name, expr)| Op::Group { name, expr }),
        1 => (0..2u8, any::<bool>(), 1..3u16)
            .prop_map(|(name, role_web, port)| Op::Upstream { name, role_web, port }),
        1 => (0..2u8, 0..3u8).prop_map(|(domain, upstream)| Op::Route { domain, upstream }),
        1 => (0..2u8).prop_map(|domain| Op::Unroute { domain }),
        1 => (0..6u8, 0..6u8).prop_map(|(id, to)| Op::Rename { id, to }),
        1 => (0..6u8).prop_map(|id| Op::Remove { id }),
        1 => (0..3u8).prop_map(|n| Op::Token { n }),
        1 => (0..6u8).prop_map(|id| Op::Promote { id }),
    ]
}

/// Plans, commits, applies; a refusal changes nothing (and is fine: the
/// sequences are random).
fn step<C: Command>(st: &mut State, store: &MemStore, cmd: &C) {
    let issuer = FakeIssuer::default();
    let env = Env {
        now_ms: NOW,
        issuer: &issuer,
    };
    let Ok(planned) = cmd.plan(st, &env) else {
        return;
    };
    if planned.change.is_empty() {
        return;
    }
    let revision = store
        .commit_now(&planned.change)
        .expect("the plan's preconditions hold against the store it read");
    st.apply(&planned.change, revision);
}

fn node(id: u8) -> String {
    format!("n{id}")
}

fn execute(st: &mut State, store: &MemStore, op: &Op) {
    let by = "prop".to_owned();
    match op {
        Op::Register {
            id,
            web,
            ip,
            service,
        } => {
            let hello = cluster_model::session::Hello {
                roles: if *web {
                    vec!["web".into()]
                } else {
                    vec!["db".into()]
                },
                addresses: vec![format!("10.0.0.{ip}")],
                service: if *service { "db".into() } else { String::new() },
                naming: Naming::Masterful,
                ..hello(&node(*id))
            };
            step(st, store, &Register { hello })
        }
        Op::Drain { id, maintenance } => step(
            st,
            store,
            &SetOut {
                target: names(&[&node(*id)]),
                reason: Some("r".into()),
                maintenance: *maintenance,
                by,
                note: String::new(),
            },
        ),
        Op::Undrain { id } => step(
            st,
            store,
            &SetOut {
                target: names(&[&node(*id)]),
                reason: None,
                maintenance: false,
                by,
                note: String::new(),
            },
        ),
        Op::Label { id, value } => step(
            st,
            store,
            &SetLabels {
                target: names(&[&node(*id)]),
                labels: [("k".to_owned(), ["", "a", "b"][*value as usize].to_owned())].into(),
                by,
            },
        ),
        Op::Group { name, expr } => step(
            st,
            store,
            &SetGroup {
                name: format!("g{name}"),
                expr: ["", "n*", "N@g0 or n1", "G@os:x"][*expr as usize].into(),
                by,
            },
        ),
        Op::Upstream {
            name,
            role_web,
            port,
        } => step(
            st,
            store,
            &SetBalancing {
                upstreams: vec![(
                    format!("up{name}"),
                    role(if *role_web { "web" } else { "db" }, *port),
                )],
                routes: vec![],
                remove_routes: vec![],
                by,
            },
        ),
        Op::Route { domain, upstream } => step(
            st,
            store,
            &SetBalancing {
                upstreams: vec![],
                routes: vec![(format!("d{domain}.example"), to(&format!("up{upstream}")))],
                remove_routes: vec![],
                by,
            },
        ),
        Op::Unroute { domain } => step(
            st,
            store,
            &SetBalancing {
                upstreams: vec![],
                routes: vec![],
                remove_routes: vec![format!("d{domain}.example")],
                by,
            },
        ),
        Op::Rename { id, to } => step(
            st,
            store,
            &Rename::To {
                node: node(*id),
                new_name: format!("r{to}"),
                by,
            },
        ),
        Op::Remove { id } => step(
            st,
            store,
            &RemoveNode {
                node: node(*id),
                by,
            },
        ),
        Op::Token { n } => step(
            st,
            store,
            &CreateToken {
                id: format!("t{n}"),
                secret: "s".into(),
                ttl: Some(std::time::Duration::from_secs(60)),
                api: None,
                uses: Some(u32::from(*n)),
                roles: vec!["web".into()],
                by,
            },
        ),
        Op::Promote { id } => step(
            st,
            store,
            &Rename::Promote {
                node: node(*id),
                by,
            },
        ),
    }
}

fn sorted<T: std::fmt::Debug>(v: impl IntoIterator<Item = T>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(|x| format!("{x:?}")).collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_reloaded_state_is_the_live_state(ops in proptest::collection::vec(op(), 1..60)) {
        let store = MemStore::default();
        let mut live = state();
        for op in &ops {
            execute(&mut live, &store, op);
        }
        let reloaded = State::load(live.config().clone(), store.load_now().unwrap(), NOW);
        prop_assert_eq!(reloaded.revision(), live.revision());
        prop_assert_eq!(reloaded.next_event_seq(), live.next_event_seq());
        prop_assert_eq!(sorted(reloaded.records()), sorted(live.records()));
        prop_assert_eq!(sorted(&reloaded.names), sorted(&live.names));
        prop_assert_eq!(reloaded.groups(), live.groups());
        prop_assert_eq!(reloaded.hosts_naming(), live.hosts_naming());
        prop_assert_eq!(reloaded.host_entries(), live.host_entries());
        prop_assert_eq!(&reloaded.proxy_view().upstreams, &live.proxy_view().upstreams);
        prop_assert_eq!(&reloaded.proxy_view().routes, &live.proxy_view().routes);
        prop_assert_eq!(sorted(&reloaded.down), sorted(&live.down));
        for n in live.nodes() {
            let id = &n.value.id;
            prop_assert_eq!(reloaded.status(id, NOW), live.status(id, NOW));
        }
    }

    /// The shared hosts table, brought up to date at random moments, holds
    /// exactly the state's lines.
    #[test]
    fn the_shared_hosts_table_follows_the_state(
        ops in proptest::collection::vec((op(), proptest::bool::ANY), 1..60)
    ) {
        let store = MemStore::default();
        let mut live = state();
        let mut table = crate::cluster::hosts_table::HostsTable::default();
        let lines = |parts: Vec<crate::cluster::HostsPart>| {
            sorted(parts.iter().flat_map(|p| p.iter().cloned()).collect::<Vec<_>>())
        };
        let want = |st: &State| {
            sorted(st.host_entries().iter().map(cluster_proto::HostEntry::from).collect::<Vec<_>>())
        };
        for (op, look) in &ops {
            execute(&mut live, &store, op);
            if *look {
                prop_assert_eq!(lines(table.parts(&live)), want(&live));
            }
        }
        prop_assert_eq!(lines(table.parts(&live)), want(&live));
    }
}
