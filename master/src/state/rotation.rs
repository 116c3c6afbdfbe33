//! Whether nodes are out of rotation, or back in: what every balancer
//! reports (the proxies' applied configuration and what they still have in
//! flight, HAProxy's servers), read against the nodes. Drains wait on it
//! (`drain --wait`) and so do rollouts, never on a sleep. The answer is a
//! list of typed [`Pending`] reasons; whoever shows them renders them.

use super::State;
use cluster_model::rotation::Pending;
use cluster_model::{LbBackend, LbReport, LbSource, Node, NodeId, NodeName};

/// The host part of `host:port` / `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Whether a balancer's backend is `node`: by address, or by HAProxy's
/// server name.
fn is_node(b: &LbBackend, node: &Node) -> bool {
    let server = b.name.rsplit('/').next().unwrap_or_default();
    node.addresses.iter().any(|ip| ip == host_of(&b.addr)) || server == node.name.as_str()
}

impl State {
    fn name_of(&self, id: &NodeId) -> NodeName {
        self.nodes
            .get(id)
            .map_or_else(|| NodeName::of_id(id), |n| n.value.name.clone())
    }

    /// Whether the node's connected agent has yet to apply `generation`.
    fn not_applied(&self, id: &NodeId, generation: u64) -> bool {
        self.live
            .get(id)
            .is_some_and(|l| l.session.is_some() && l.applied.generation < generation)
    }

    /// Every balancer's report, by node id.
    fn reports(&self) -> Vec<(&NodeId, &LbReport)> {
        let mut out: Vec<_> = self
            .live
            .iter()
            .filter_map(|(id, l)| l.lb.as_ref().map(|r| (id, r)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Why the nodes (by id, with the spec generation their drain is at)
    /// are not yet out of rotation; empty when they are out everywhere.
    pub fn out_pending(&self, targets: &[(NodeId, u64)]) -> Vec<Pending> {
        let wanted = self.proxy.version;
        let mut pending = Vec::new();
        // Balancers whose proxy has not caught up hold every node.
        let mut proxies: Vec<(NodeName, u64)> = self
            .live
            .iter()
            .filter(|(_, l)| l.session.is_some_and(|s| s.wants_proxy))
            .map(|(id, l)| {
                (
                    self.name_of(id),
                    l.lb.as_ref().map_or(0, |r| r.proxy_version),
                )
            })
            .collect();
        proxies.sort();
        for (balancer, applied) in proxies {
            if applied < wanted {
                pending.push(Pending::ProxyBehind {
                    balancer,
                    applied,
                    wanted,
                });
            }
        }
        let reports = self.reports();
        for (id, spec_generation) in targets {
            let Some(node) = self.nodes.get(id).map(|s| &s.value) else {
                continue;
            };
            if self.not_applied(id, *spec_generation) {
                pending.push(Pending::NotApplied {
                    node: node.name.clone(),
                });
            }
            for (lb_id, report) in &reports {
                let balancer = self.name_of(lb_id);
                for b in report.backends.iter().filter(|b| is_node(b, node)) {
                    if b.in_rotation {
                        pending.push(Pending::InRotation {
                            balancer: balancer.clone(),
                            node: node.name.clone(),
                            source: b.source,
                            server: b.name.clone(),
                            addr: b.addr.clone(),
                            status: b.status.clone(),
                        });
                    } else if b.inflight > 0 {
                        pending.push(Pending::InFlight {
                            balancer: balancer.clone(),
                            node: node.name.clone(),
                            source: b.source,
                            server: b.name.clone(),
                            addr: b.addr.clone(),
                            count: b.inflight,
                        });
                    }
                }
            }
        }
        pending
    }

    /// Why the nodes (by id, with the spec generation their undrain is at)
    /// are not yet back in rotation; empty when every balancer sends to
    /// them again.
    pub fn in_pending(&self, targets: &[(NodeId, u64)]) -> Vec<Pending> {
        let view = &self.proxy;
        let mut pending = Vec::new();
        let reports = self.reports();
        for (id, spec_generation) in targets {
            let Some(node) = self.nodes.get(id).map(|s| &s.value) else {
                continue;
            };
            if self.not_applied(id, *spec_generation) {
                pending.push(Pending::NotApplied {
                    node: node.name.clone(),
                });
            }
            if node.offline.is_some() {
                pending.push(Pending::DrainedAgain {
                    node: node.name.clone(),
                });
                continue;
            }
            let in_view = view
                .upstreams
                .values()
                .flatten()
                .any(|s| s.node.as_deref() == Some(node.name.as_str()));
            for (lb_id, report) in &reports {
                let balancer = self.name_of(lb_id);
                let proxy_here = self
                    .live
                    .get(*lb_id)
                    .and_then(|l| l.session)
                    .is_some_and(|s| s.wants_proxy);
                if in_view && proxy_here && report.proxy_version < view.version {
                    pending.push(Pending::ProxyBehind {
                        balancer: balancer.clone(),
                        applied: report.proxy_version,
                        wanted: view.version,
                    });
                }
                for b in report
                    .backends
                    .iter()
                    .filter(|b| b.source == LbSource::Haproxy && is_node(b, node))
                {
                    if !b.in_rotation {
                        pending.push(Pending::OutOfRotation {
                            balancer: balancer.clone(),
                            node: node.name.clone(),
                            source: b.source,
                            server: b.name.clone(),
                            status: b.status.clone(),
                        });
                    }
                }
            }
        }
        pending.dedup();
        pending
    }
}
