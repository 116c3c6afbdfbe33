//! For the planners' table tests: a state built by applying commands one
//! after another (as the shell would, without a store or tokio), and a CA
//! that signs nothing.

use super::{Command, Env, Issuer};
use crate::cluster::ClusterError;
use crate::pki::Subject;
use crate::state::{Config, Observation, Session, State};
use cluster_model::session::Hello;
use std::sync::atomic::{AtomicU64, Ordering};

/// Issues "certificates" that name their subject, with increasing serials.
#[derive(Default)]
pub struct FakeIssuer(AtomicU64);

impl Issuer for FakeIssuer {
    fn issue(
        &self,
        _csr_pem: &str,
        subject: &Subject,
        _now_ms: u64,
    ) -> Result<(String, String), ClusterError> {
        let serial = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((format!("cert of {subject:?}"), format!("{serial:04x}")))
    }
}

pub const NOW: u64 = 1_700_000_000_000;

pub fn state() -> State {
    State::new(Config {
        down_after_ms: 15_000,
        started_ms: NOW,
        ..Config::default()
    })
}

/// Plans `cmd` at `now` and, unless it changes nothing, applies it at the
/// next revision: what the shell does, with a store that always agrees.
pub fn run<C: Command>(st: &mut State, cmd: &C, now: u64) -> Result<C::Out, ClusterError> {
    let issuer = FakeIssuer::default();
    let env = Env {
        now_ms: now,
        issuer: &issuer,
    };
    let planned = cmd.plan(st, &env)?;
    if !planned.change.is_empty() {
        let revision = st.revision() + 1;
        st.apply(&planned.change, revision);
    }
    Ok(planned.out)
}

pub fn hello(id: &str) -> Hello {
    Hello {
        node_id: id.try_into().unwrap(),
        grains: Default::default(),
        roles: vec![],
        addresses: vec![],
        health_url: String::new(),
        service: String::new(),
        naming: Default::default(),
        aliases: vec![],
        cached_generation: 0,
        agent_version: String::new(),
        report_interval_ms: 0,
        wants_hosts: true,
        wants_proxy: false,
        takes_hosts_in_parts: false,
        facts: Default::default(),
        fact_problems: vec![],
    }
}

/// Registers `hello` and opens session `session` for it.
pub fn connect(st: &mut State, hello: Hello, session: u64, now: u64) {
    let node = hello.node_id.clone();
    let wants_proxy = hello.wants_proxy;
    run(st, &super::Register { hello }, now).unwrap();
    st.observe(Observation::Connected {
        node,
        session: Session {
            id: session,
            remote: false,
            wants_hosts: true,
            wants_proxy,
        },
        now_ms: now,
    });
}

/// A node with role `web` at `ip`.
pub fn web(id: &str, ip: &str) -> Hello {
    Hello {
        roles: vec!["web".into()],
        addresses: vec![ip.into()],
        ..hello(id)
    }
}

/// An upstream of `role`'s nodes at `port`, with nginx's defaults.
pub fn role(role: &str, port: u16) -> cluster_balancer::UpstreamSource {
    cluster_balancer::UpstreamSource::Role {
        role: role.into(),
        port,
        weight: 1,
        max_fails: 1,
        fail_timeout_ms: 10_000,
    }
}

/// A domain routed whole to `upstream`.
pub fn to(upstream: &str) -> cluster_balancer::Domain {
    cluster_balancer::Domain {
        init: "b".into(),
        rules: [(
            "b".to_owned(),
            cluster_balancer::Rule::Backend {
                servername: upstream.into(),
            },
        )]
        .into(),
    }
}
