//! The agent's load-balancing parts together: the proxy following the
//! routes and upstreams the master sends, HAProxy's stats read from its
//! socket, and what both report back so a drain can wait until a node is
//! really out of rotation.

use crate::haproxy::ServerStat;
use crate::proxy::{Proxy, ProxyConfig, UpstreamServer};
use crate::state::ProxyView;
use cluster_balancer::RouteTable;
use cluster_model::{LbBackend, LbReport, LbSource};
use std::sync::Arc;
use tokio::sync::watch;

/// The balancers on this node (either may be absent).
#[derive(Clone, Default)]
pub struct Balancers {
    pub proxy: Option<Arc<Proxy>>,
    pub haproxy: Option<watch::Receiver<Vec<ServerStat>>>,
}

impl Balancers {
    pub fn any(&self) -> bool {
        self.proxy.is_some() || self.haproxy.is_some()
    }

    /// Makes the proxy route with `desired`, unless it already does. A
    /// configuration that does not compile is refused and the last good one
    /// stays (the master validated it; this guards against version skew).
    pub fn apply(&self, desired: Option<&ProxyView>) {
        let (Some(proxy), Some(desired)) = (&self.proxy, desired) else {
            return;
        };
        if proxy.generation() == desired.version {
            return;
        }
        match config(desired) {
            Ok(c) => {
                proxy.update(c);
                tracing::info!(version = desired.version, "proxy configuration applied");
            }
            Err(e) => tracing::error!(
                version = desired.version,
                error = %e,
                "refusing a proxy configuration; keeping the last good one"
            ),
        }
    }

    pub fn report(&self) -> LbReport {
        let mut backends = Vec::new();
        let mut proxy_version = 0;
        if let Some(proxy) = &self.proxy {
            proxy_version = proxy.generation();
            for (addr, inflight) in proxy.draining() {
                backends.push(LbBackend {
                    source: LbSource::Proxy,
                    name: String::new(),
                    addr,
                    in_rotation: false,
                    inflight,
                    status: String::new(),
                });
            }
        }
        if let Some(haproxy) = &self.haproxy {
            for s in haproxy.borrow().iter() {
                backends.push(LbBackend {
                    source: LbSource::Haproxy,
                    name: format!("{}/{}", s.backend, s.server),
                    addr: s.addr.clone().unwrap_or_default(),
                    in_rotation: s.in_rotation(),
                    inflight: s.scur,
                    status: s.status.clone(),
                });
            }
        }
        LbReport {
            proxy_version,
            backends,
        }
    }
}

/// The proxy's configuration from what the master sent.
pub fn config(desired: &ProxyView) -> Result<ProxyConfig, String> {
    let routes = RouteTable::compile(&desired.routes, &|u| desired.upstreams.contains_key(u))
        .map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    Ok(ProxyConfig {
        generation: desired.version,
        routes: Arc::new(routes),
        upstreams: desired
            .upstreams
            .iter()
            .map(|(name, servers)| {
                let servers = servers
                    .iter()
                    .map(|s| UpstreamServer {
                        server: s.server.clone(),
                        node: s.node.clone(),
                    })
                    .collect();
                (name.clone(), servers)
            })
            .collect(),
    })
}
