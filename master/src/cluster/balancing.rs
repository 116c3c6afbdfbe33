//! Load balancing: upstreams and routes (stored), what every proxy is sent
//! (resolved from the nodes as they are now), and what the balancers report
//! back (read by `rotation`: is a node really out, or back in).
//!
//! The proxies' view is versioned and always sent whole. It is recomputed
//! after anything that can move a server in or out (a drain, a node going
//! down or failing a check, a role upstream's node registering) and only
//! bumps its version when the result differs, so an unrelated change wakes
//! no proxy.

use super::{Cluster, ClusterError, State};
use crate::model::{CheckResult, EventKind, LbReport, Node, now_ms};
use crate::store::Write;
use cluster_balancer::{Domain, RouteTable, Server, UpstreamSource};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One server of an upstream as the proxies are sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedServer {
    pub server: Server,
    /// The node it is, for servers derived from a role.
    pub node: Option<String>,
}

/// What the proxies route with: whole and versioned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyView {
    pub version: u64,
    pub upstreams: BTreeMap<String, Vec<ResolvedServer>>,
    pub routes: BTreeMap<String, Domain>,
}

#[derive(Default)]
pub(super) struct Balancing {
    pub upstreams: BTreeMap<String, UpstreamSource>,
    pub routes: BTreeMap<String, Domain>,
    pub view: Arc<ProxyView>,
    /// What each balancer node last reported, by node id.
    pub reports: HashMap<String, LbReport>,
}

/// Everything `clusterctl upstream list` / `route list` show.
#[derive(Debug, Clone)]
pub struct BalancingState {
    pub upstreams: BTreeMap<String, UpstreamSource>,
    pub routes: BTreeMap<String, Domain>,
    pub view: Arc<ProxyView>,
    /// Reports by balancer node name.
    pub reports: BTreeMap<String, LbReport>,
}

fn join_addr(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The host part of `host:port` / `[v6]:port`.
pub(super) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl State {
    /// Whether `node` should receive traffic now: in service, heard from
    /// recently (with a grace from the master's start, so a restarted master
    /// does not empty every upstream before the agents are back) and passing
    /// its local checks.
    fn serving(&self, node: &Node, now: u64, down_after_ms: u64, started_ms: u64) -> bool {
        let heard = node.last_seen_ms.max(started_ms);
        node.offline.is_none()
            && (node.connected || now.saturating_sub(heard) <= down_after_ms)
            && node.checks.iter().all(|c| c.passing)
    }

    fn resolve_upstreams(
        &self,
        now: u64,
        down_after_ms: u64,
        started_ms: u64,
    ) -> BTreeMap<String, Vec<ResolvedServer>> {
        let mut out = BTreeMap::new();
        for (name, source) in &self.balancing.upstreams {
            let servers = match source {
                UpstreamSource::Servers(list) => list
                    .iter()
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
                        .filter(|n| n.roles.iter().any(|r| r == role))
                        .filter(|n| self.serving(n, now, down_after_ms, started_ms))
                        .filter(|n| !n.addresses.is_empty())
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
                            },
                            node: Some(n.name.clone()),
                        })
                        .collect()
                }
            };
            out.insert(name.clone(), servers);
        }
        out
    }

    /// Checks a whole set of upstreams and routes; every problem listed.
    fn check_balancing(
        upstreams: &BTreeMap<String, UpstreamSource>,
        routes: &BTreeMap<String, Domain>,
    ) -> Result<(), ClusterError> {
        let mut problems = Vec::new();
        for (name, source) in upstreams {
            problems.extend(check_upstream(name, source));
        }
        if let Err(errors) = RouteTable::compile(routes, &|u| upstreams.contains_key(u)) {
            problems.extend(errors.iter().map(ToString::to_string));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::Invalid(problems.join("\n")))
        }
    }
}

/// The problems with one upstream, each naming where it is.
pub fn check_upstream(name: &str, source: &UpstreamSource) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = cluster_balancer::upstream::validate_name(name) {
        problems.push(format!("upstream {name:?}: {e}"));
    }
    match source {
        UpstreamSource::Servers(list) => {
            if list.is_empty() {
                problems.push(format!(
                    "upstream {name:?}: no servers (list at least one, or derive it from a role)"
                ));
            }
            for (i, s) in list.iter().enumerate() {
                if let Err(e) = s.validate() {
                    problems.push(format!(
                        "upstream {name:?}, server {} ({:?}): {e}",
                        i + 1,
                        s.addr
                    ));
                }
            }
            if !list.is_empty() && list.iter().all(|s| s.backup) {
                problems.push(format!(
                    "upstream {name:?}: every server is a backup; at least one must not be"
                ));
            }
        }
        UpstreamSource::Role { role, .. } => {
            if role.is_empty() {
                problems.push(format!("upstream {name:?}: the role is empty"));
            }
            // Port, weight and fail_timeout, as the balancer checks them.
            if let Err(e) = source.validate() {
                problems.push(format!("upstream {name:?}: {e}"));
            }
        }
    }
    problems
}

fn describe(source: &UpstreamSource) -> String {
    match source {
        UpstreamSource::Servers(list) => {
            let addrs: Vec<&str> = list.iter().map(|s| s.addr.as_str()).collect();
            format!("servers {}", addrs.join(", "))
        }
        UpstreamSource::Role { role, port, .. } => format!("role {role} port {port}"),
    }
}

impl Cluster {
    /// Recomputes what the proxies are sent; when it changed, bumps the
    /// version and wakes the sessions of the nodes that run a proxy.
    pub(super) fn refresh_proxy(&self) {
        let now = now_ms();
        let mut st = self.state();
        let upstreams = st.resolve_upstreams(now, self.down_after_ms, self.started_ms);
        if upstreams == st.balancing.view.upstreams
            && st.balancing.routes == st.balancing.view.routes
        {
            return;
        }
        let version = st.balancing.view.version + 1;
        st.balancing.view = Arc::new(ProxyView {
            version,
            upstreams,
            routes: st.balancing.routes.clone(),
        });
        drop(st);
        self.proxy_changed.send_replace(version);
        self.acks.send_modify(|n| *n += 1);
    }

    /// What the proxies are sent now.
    pub fn proxy_view(&self) -> Arc<ProxyView> {
        self.state().balancing.view.clone()
    }

    pub fn balancing(&self) -> BalancingState {
        let st = self.state();
        let b = &st.balancing;
        BalancingState {
            upstreams: b.upstreams.clone(),
            routes: b.routes.clone(),
            view: b.view.clone(),
            reports: b
                .reports
                .iter()
                .map(|(id, r)| {
                    let name = st.nodes.get(id).map_or(id.clone(), |n| n.name.clone());
                    (name, r.clone())
                })
                .collect(),
        }
    }

    /// Sets upstreams and route chains, and removes domains, as one change:
    /// the result is checked whole (every route's backend must name an
    /// upstream, no cycles, valid regexes and addresses) and nothing is
    /// stored unless all of it is right.
    pub async fn set_balancing(
        &self,
        upstreams: Vec<(String, UpstreamSource)>,
        routes: Vec<(String, Domain)>,
        remove_routes: Vec<String>,
        by: &str,
    ) -> Result<u64, ClusterError> {
        let _w = self.writer.lock().await;
        let write = {
            let mut st = self.state();
            let mut next_upstreams = st.balancing.upstreams.clone();
            let mut next_routes = st.balancing.routes.clone();
            let mut unknown = Vec::new();
            for domain in &remove_routes {
                if next_routes.remove(domain).is_none() {
                    unknown.push(format!("domain {domain:?} has no routes to remove"));
                }
            }
            if !unknown.is_empty() {
                return Err(ClusterError::Invalid(unknown.join("\n")));
            }
            for (name, source) in &upstreams {
                next_upstreams.insert(name.clone(), source.clone());
            }
            for (domain, chain) in &routes {
                next_routes.insert(domain.clone(), chain.clone());
            }
            State::check_balancing(&next_upstreams, &next_routes)?;
            let mut write = Write::default();
            for (name, source) in upstreams {
                if st.balancing.upstreams.get(&name) == Some(&source) {
                    continue;
                }
                let e = st.event(
                    EventKind::Balancing,
                    "",
                    by,
                    format!("upstream {name}: {}", describe(&source)),
                );
                write.events.push(e);
                write.upstreams.push((name, Some(source)));
            }
            for (domain, chain) in routes {
                if st.balancing.routes.get(&domain) == Some(&chain) {
                    continue;
                }
                let e = st.event(
                    EventKind::Balancing,
                    "",
                    by,
                    format!(
                        "routes for {domain}: {} rules from {}",
                        chain.rules.len(),
                        chain.init
                    ),
                );
                write.events.push(e);
                write.routes.push((domain, Some(chain)));
            }
            for domain in remove_routes {
                let e = st.event(
                    EventKind::Balancing,
                    "",
                    by,
                    format!("routes for {domain} removed"),
                );
                write.events.push(e);
                write.routes.push((domain, None));
            }
            write
        };
        self.commit_balancing(write).await
    }

    /// Removes an upstream no route uses.
    pub async fn remove_upstream(&self, name: &str, by: &str) -> Result<u64, ClusterError> {
        let _w = self.writer.lock().await;
        let write = {
            let mut st = self.state();
            if !st.balancing.upstreams.contains_key(name) {
                return Err(ClusterError::Invalid(format!("no upstream named {name:?}")));
            }
            let users: Vec<String> = st
                .balancing
                .routes
                .iter()
                .flat_map(|(domain, chain)| {
                    chain.rules.iter().filter_map(move |(rule, r)| match r {
                        cluster_balancer::Rule::Backend { servername } if servername == name => {
                            Some(format!("domain {domain:?} rule {rule:?}"))
                        }
                        _ => None,
                    })
                })
                .collect();
            if !users.is_empty() {
                return Err(ClusterError::Invalid(format!(
                    "upstream {name:?} is still used by {}; change those routes first",
                    users.join(", ")
                )));
            }
            let e = st.event(
                EventKind::Balancing,
                "",
                by,
                format!("upstream {name} removed"),
            );
            Write {
                events: vec![e],
                upstreams: vec![(name.to_owned(), None)],
                ..Write::default()
            }
        };
        self.commit_balancing(write).await
    }

    async fn commit_balancing(&self, write: Write) -> Result<u64, ClusterError> {
        if write.upstreams.is_empty() && write.routes.is_empty() {
            return Ok(self.proxy_view().version);
        }
        if let Err(e) = self.persist(write.clone()).await {
            self.state().next_event_seq -= write.events.len() as u64;
            return Err(e.into());
        }
        {
            let mut st = self.state();
            for (name, source) in write.upstreams {
                match source {
                    Some(s) => st.balancing.upstreams.insert(name, s),
                    None => st.balancing.upstreams.remove(&name),
                };
            }
            for (domain, chain) in write.routes {
                match chain {
                    Some(c) => st.balancing.routes.insert(domain, c),
                    None => st.balancing.routes.remove(&domain),
                };
            }
        }
        self.refresh_proxy();
        Ok(self.proxy_view().version)
    }

    /// The agent's local checks changed; a flip is recorded in the event
    /// log and may move the node in or out of role upstreams.
    pub async fn report_checks(&self, h: &super::SessionHandle, checks: Vec<CheckResult>) {
        let mut flipped = Vec::new();
        let mut name = String::new();
        let known = self.with_session(&h.node_id, h.session_id, |n| {
            name = n.name.clone();
            for c in &checks {
                let before = n
                    .checks
                    .iter()
                    .find(|o| o.name == c.name)
                    .map(|o| o.passing);
                if before != Some(c.passing) {
                    flipped.push(c.clone());
                }
            }
            n.checks = checks.clone();
        });
        if !known {
            return;
        }
        self.acks.send_modify(|n| *n += 1);
        self.refresh_proxy();
        if flipped.is_empty() {
            return;
        }
        let _w = self.writer.lock().await;
        let events: Vec<_> = {
            let mut st = self.state();
            flipped
                .iter()
                .map(|c| {
                    let detail = if c.passing {
                        format!("check {} passing", c.name)
                    } else {
                        format!("check {} failing: {}", c.name, c.output)
                    };
                    st.event(EventKind::Check, &name, &h.node_id, detail)
                })
                .collect()
        };
        let n = events.len() as u64;
        if let Err(e) = self
            .persist(Write {
                events,
                ..Write::default()
            })
            .await
        {
            self.state().next_event_seq -= n;
            tracing::warn!(error = %e, "cannot record a check's change");
        }
    }

    /// What a balancer on this node now sees.
    pub fn report_lb(&self, h: &super::SessionHandle, report: LbReport) {
        let mut st = self.state();
        if st.sessions.get(&h.node_id).map(|s| s.id) != Some(h.session_id) {
            return;
        }
        st.balancing.reports.insert(h.node_id.clone(), report);
        drop(st);
        self.acks.send_modify(|n| *n += 1);
    }
}
