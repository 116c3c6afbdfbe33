//! What every proxy is sent: upstreams resolved from the nodes as they
//! are now (a role's nodes in service, heard from, passing their checks;
//! or the listed servers) and the route chains, versioned and always sent
//! whole. Recomputed by `apply` and `observe` after anything that can move
//! a server in or out; the version moves only when the result differs, so
//! an unrelated change wakes no proxy.

use super::{Effects, State};
use cluster_balancer::{Server, UpstreamSource};
use cluster_model::{Node, ProxyView, ResolvedServer};
use std::collections::BTreeMap;
use std::sync::Arc;

fn join_addr(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

impl State {
    /// Whether `node` should receive traffic at `now_ms`: in service, heard
    /// from recently (counting from this master's start at the earliest)
    /// and passing its local checks.
    fn serving(&self, node: &Node, now_ms: u64) -> bool {
        let live = self.live.get(&node.id);
        let heard = node
            .last_seen_ms
            .max(live.map_or(0, |l| l.last_seen_ms))
            .max(self.config.started_ms);
        let connected = live.is_some_and(|l| l.session.is_some());
        let passing = live.is_none_or(|l| l.checks.iter().all(|c| c.passing));
        node.offline.is_none()
            && (connected || now_ms.saturating_sub(heard) <= self.config.down_after_ms)
            && passing
    }

    fn resolve_upstreams(&self, now_ms: u64) -> BTreeMap<String, Vec<ResolvedServer>> {
        let mut out = BTreeMap::new();
        for (name, source) in &self.upstreams {
            let servers = match &source.value {
                UpstreamSource::Servers(list) => list
                    .iter()
                    .filter(|s| !s.down)
                    .map(|s| ResolvedServer {
                        server: s.clone(),
                        node: None,
                    })
                    .collect(),
                UpstreamSource::Role {
                    role,
                    port,
                    weight,
                    max_fails,
                    fail_timeout_ms,
                } => {
                    let mut nodes: Vec<&Node> = self
                        .nodes
                        .values()
                        .map(|s| &s.value)
                        .filter(|n| n.roles.iter().any(|r| r == role))
                        .filter(|n| !n.addresses.is_empty())
                        .filter(|n| self.serving(n, now_ms))
                        .collect();
                    nodes.sort_by(|a, b| a.name.cmp(&b.name));
                    nodes
                        .into_iter()
                        .map(|n| ResolvedServer {
                            server: Server {
                                addr: join_addr(&n.addresses[0], *port),
                                weight: *weight,
                                max_fails: *max_fails,
                                fail_timeout_ms: *fail_timeout_ms,
                                backup: false,
                                down: false,
                            },
                            node: Some(n.name.to_string()),
                        })
                        .collect()
                }
            };
            out.insert(name.clone(), servers);
        }
        // A backend that names an address (as ELB's may) is an upstream of
        // that one server.
        for chain in self.routes.values() {
            for rule in chain.value.rules.values() {
                if let cluster_balancer::Rule::Backend { servername } = rule
                    && !out.contains_key(servername)
                    && cluster_balancer::upstream::is_address(servername)
                {
                    let server = ResolvedServer {
                        server: Server::new(servername.clone()),
                        node: None,
                    };
                    out.insert(servername.clone(), vec![server]);
                }
            }
        }
        out
    }

    /// Recomputes the proxies' view; when it changed, moves its version.
    pub(super) fn refresh_proxy(&mut self, now_ms: u64, effects: &mut Effects) {
        let upstreams = self.resolve_upstreams(now_ms);
        let same_routes = self.routes.len() == self.proxy.routes.len()
            && self
                .routes
                .iter()
                .zip(&self.proxy.routes)
                .all(|((d, c), (vd, vc))| d == vd && c.value == *vc);
        if same_routes && upstreams == self.proxy.upstreams {
            return;
        }
        let version = self.proxy.version + 1;
        self.proxy = Arc::new(ProxyView {
            version,
            upstreams,
            routes: self
                .routes
                .iter()
                .map(|(d, c)| (d.clone(), c.value.clone()))
                .collect(),
        });
        effects.proxy = Some(version);
        effects.waiters = true;
    }
}
