//! The agent: runs on every node, tells the master what the node is and how
//! loaded it is, and makes the node match the desired state it is given.
//!
//! # Layout
//!
//! - [`run`] — what `cluster-agent` and the tests call.
//! - [`config`] — file → raw → validated configuration.
//! - [`enroll`] — the node's key and certificate; joining the cluster.
//! - [`facts`] — grains, with Salt's names.
//! - [`usage`] — CPU, load, memory, disks, network rates.
//! - [`state`] — the desired state held in memory and cached on disk.
//! - [`session`] — the stream with a master; the next master when it ends.
//! - [`jobs`] — running the commands the master sends.
//! - [`hosts`] — the managed block of the hosts file: render, write safely.
//! - [`hosts_sync`] — the hosts file and hostname following the desired state.
//! - [`health`] — the HTTP health endpoint load balancers probe.
//! - [`checks`] — local health checks with rise/fall.
//! - [`agent_check`] — HAProxy's agent-check responder.
//! - [`haproxy`] — HAProxy's stats socket.
//! - [`proxy`] — the reverse proxy of `balancer` nodes.
//! - [`balancing`] — the proxy following the master; what balancers report.

pub mod agent_check;
pub mod balancing;
pub mod checks;
pub mod config;
pub mod enroll;
pub mod facts;
pub mod facts_refresh;
pub mod haproxy;
pub mod health;
pub mod hosts;
pub mod hosts_sync;
pub mod jobs;
pub mod proxy;
pub mod renewal;
pub mod session;
pub mod state;
pub mod usage;

pub use config::Config;

use state::{Cache, Desired, Shared};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("health server failed: {0}")]
    Health(#[source] std::io::Error),
    #[error(transparent)]
    Enroll(#[from] enroll::EnrollError),
    #[error("cannot listen on {addr} for {what}: {source}")]
    Listen {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The message names the file and why.
    #[error("{0}")]
    AccessLog(#[source] std::io::Error),
}

/// The address this node is reached on: the configured one, else the health
/// listener's if it is specific, else the first non-loopback IPv4 grain.
fn advertised(config: &Config, listen_ip: IpAddr, machine: &facts::Machine) -> IpAddr {
    config
        .advertise
        .or((!listen_ip.is_unspecified()).then_some(listen_ip))
        .or_else(|| {
            machine
                .addresses
                .iter()
                .find(|a| a.is_ipv4() && !a.is_loopback())
                .copied()
        })
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Serves health on `health` and keeps a session with the master until
/// `shutdown` completes; then stops both, letting requests in flight finish.
pub async fn run(
    config: Config,
    health: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    cluster_model::fs::private_dir(&config.data_dir).map_err(|source| RunError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let cache = Cache::new(&config.data_dir);
    let initial = match cache.load() {
        Ok(Some(d)) => {
            tracing::info!(
                generation = d.generation,
                status = %d.flag_status(),
                "serving the cached desired state until the master answers"
            );
            d
        }
        Ok(None) => Desired::initial(&config.id),
        Err(e) => {
            tracing::error!(error = %e, "ignoring the state cache; serving online until the master answers");
            Desired::initial(&config.id)
        }
    };
    let shared = Arc::new(Shared::new(initial));
    let local = health.local_addr().map_err(RunError::Health)?;
    let machine = facts::collect();
    let address = advertised(&config, local.ip(), &machine);
    let enrollment = enroll::Enrollment {
        dir: config.data_dir.join("pki"),
        node_id: config.id.to_string(),
        ca_file: config.ca_file.clone(),
        ca_fingerprint: config.ca_fingerprint.clone(),
        token: config.join_token.clone(),
        // Connections to the masters leave from the address advertised
        // when it is this machine's: the masters check a session comes
        // from where its node says it is reached.
        source: (address.is_loopback() || machine.addresses.contains(&address)).then_some(address),
    };
    if !enrollment.can_find_ca() {
        return Err(enroll::EnrollError::NoCa.into());
    }
    let health_url = match address {
        IpAddr::V4(a) => format!("http://{a}:{}/health", local.port()),
        IpAddr::V6(a) => format!("http://[{a}]:{}/health", local.port()),
    };
    // A node that runs the proxy is a balancer, whatever else it is.
    let collector = facts_refresh::Collector::new(&config);
    let roles = collector.roles();
    // The first hello says every fact: the facts directory is read before
    // any session opens (at most `facts_timeout` for a script that hangs).
    let external = collector.external().await;
    facts_refresh::publish(&shared, collector.shape(&machine, external));
    let token = CancellationToken::new();
    // Bind everything before anything runs: a busy port is an error now,
    // not a warning later.
    let bind = |what: &'static str, addr: std::net::SocketAddr| {
        let std = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| RunError::Listen { what, addr, source })?;
        TcpListener::from_std(std).map_err(|source| RunError::Listen { what, addr, source })
    };
    let agent_check = match &config.agent_check {
        Some(a) => Some((bind("HAProxy's agent-check", a.listen)?, a.weight_from_load)),
        None => None,
    };
    let proxy_listeners = match &config.proxy {
        Some(p) => p
            .listen
            .iter()
            .map(|a| bind("the proxy", *a))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let mut balancers = balancing::Balancers::default();
    if let Some(p) = &config.proxy {
        let health = p.health_path.clone().map(|path| {
            let shared = shared.clone();
            proxy::HealthEndpoint {
                path,
                answer: Arc::new(move |node: Option<&str>| health::answer(&shared, node)),
            }
        });
        let proxy = proxy::Proxy::new(proxy::ProxyConfig::default(), health);
        if let Some((target, format)) = &p.access_log {
            let log =
                proxy::AccessLog::open(target.clone(), *format).map_err(RunError::AccessLog)?;
            let _ = proxy.set_access_log(log);
        }
        let _ = shared.proxy.set(proxy.metrics());
        balancers.proxy = Some(proxy);
        // The cached configuration holds until the master says otherwise.
        balancers.apply(shared.current().proxy.as_ref());
    }
    if let Some(socket) = &config.haproxy_stats_socket {
        let (tx, rx) = tokio::sync::watch::channel(Vec::new());
        haproxy::watch(
            socket.clone(),
            std::time::Duration::from_millis(100),
            tx,
            token.clone(),
        );
        balancers.haproxy = Some(rx);
    }
    if !config.checks.is_empty() {
        checks::spawn(
            config.checks.clone(),
            config.redact.clone(),
            shared.checks.clone(),
            token.clone(),
        );
    }
    if let Some((listener, weight_from_load)) = agent_check {
        tokio::spawn(agent_check::serve(
            listener,
            shared.clone(),
            weight_from_load,
            token.clone(),
        ));
    }
    let mut proxies = Vec::new();
    if let Some(proxy) = &balancers.proxy {
        for listener in proxy_listeners {
            proxies.push(tokio::spawn(proxy.clone().serve(listener, token.clone())));
        }
    }
    {
        let token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            token.cancel();
        });
    }
    let dry_run = config.dry_run.then(|| token.clone());
    let refresher = facts_refresh::Refresher {
        collector: collector.clone(),
        shared: shared.clone(),
    };
    tokio::spawn(facts_refresh::run(
        collector,
        shared.clone(),
        facts_refresh::When {
            every: config.facts_interval,
            on_sighup: config.facts_on_sighup,
        },
        token.clone(),
    ));
    // Grains and facts are the session's own: the latest at each hello.
    let hello = cluster_model::session::Hello {
        node_id: config.id.clone(),
        grains: Default::default(),
        facts: Default::default(),
        fact_problems: vec![],
        roles,
        addresses: vec![address.to_string()],
        health_url: health_url.clone(),
        service: config.service.clone().unwrap_or_default(),
        naming: config.naming,
        aliases: config.aliases.clone(),
        cached_generation: 0,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        report_interval_ms: config.report_interval.as_millis() as u32,
        wants_hosts: config.manage_hosts,
        wants_proxy: balancers.proxy.is_some(),
        takes_hosts_in_parts: true,
    };
    let ctx = Arc::new(session::Context {
        masters: config.masters.clone(),
        hello,
        report_interval: config.report_interval,
        reconnect_min: config.reconnect_min,
        reconnect_max: config.reconnect_max,
        shared: shared.clone(),
        cache,
        enrollment,
        runner: jobs::Runner::with_facts(config.remote_exec, refresher),
        hosts_file: config.manage_hosts.then(|| {
            let f = hosts::HostsFile::new(&config.hosts_file);
            // What a write killed before its rename left behind.
            match f.remove_leftovers() {
                Ok(removed) => {
                    for path in removed {
                        tracing::info!(path = %path.display(), "removed a temporary file an interrupted hosts write left");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot look for temporary files beside the hosts file"),
            }
            match &config.hosts_legacy_file {
                Some(l) => f.with_legacy(l),
                None => f,
            }
        }),
        set_hostname: config.set_hostname,
        dry_run: dry_run.clone(),
        balancers,
    });

    if ctx.shared.current().generation > 0 && dry_run.is_none() {
        // The cached state holds until the master says otherwise.
        hosts_sync::sync(&ctx, &ctx.shared.current());
    }
    tracing::info!(id = %config.id, %health_url, masters = %config.masters.join(","), "agent ready");
    if dry_run.is_none() {
        tokio::spawn(renewal::keep_renewed(ctx.clone(), token.clone()));
    }
    let session = tokio::spawn(session::maintain(ctx, token.clone()));
    let served = axum::serve(health, health::router(shared))
        .with_graceful_shutdown({
            let token = token.clone();
            async move { token.cancelled().await }
        })
        .await;
    token.cancel();
    let _ = session.await;
    for p in proxies {
        let _ = p.await;
    }
    served.map_err(RunError::Health)?;
    tracing::info!("agent stopped");
    Ok(())
}
