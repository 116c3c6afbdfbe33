//! Planners for load balancing: upstreams and route chains, checked whole
//! (every route's backend names an upstream, no cycles, valid regexes and
//! addresses) so that nothing is stored unless all of it is right.

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::state::State;
use crate::store::{Key, Record};
use cluster_balancer::{Domain, RouteTable, Rule, UpstreamSource};
use cluster_model::EventKind;
use std::collections::BTreeMap;

/// Every problem with a whole set of upstreams and routes.
pub(crate) fn problems(
    upstreams: &BTreeMap<String, UpstreamSource>,
    routes: &BTreeMap<String, Domain>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, source) in upstreams {
        problems.extend(cluster_balancer::upstream::problems(name, source));
    }
    if let Err(errors) = RouteTable::compile(routes, &|u| upstreams.contains_key(u)) {
        problems.extend(errors.iter().map(ToString::to_string));
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

fn current(st: &State) -> (BTreeMap<String, UpstreamSource>, BTreeMap<String, Domain>) {
    (
        st.upstreams()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        st.routes().map(|(k, v)| (k.clone(), v.clone())).collect(),
    )
}

/// Sets upstreams and route chains, and removes domains, as one change.
pub struct SetBalancing {
    pub upstreams: Vec<(String, UpstreamSource)>,
    pub routes: Vec<(String, Domain)>,
    pub remove_routes: Vec<String>,
    pub by: String,
}

impl Command for SetBalancing {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let (mut upstreams, mut routes) = current(st);
        let unknown: Vec<String> = self
            .remove_routes
            .iter()
            .filter(|d| routes.remove(*d).is_none())
            .map(|d| format!("domain {d:?} has no routes to remove"))
            .collect();
        if !unknown.is_empty() {
            return Err(ClusterError::Balancing { problems: unknown });
        }
        upstreams.extend(self.upstreams.iter().cloned());
        routes.extend(self.routes.iter().cloned());
        let found = problems(&upstreams, &routes);
        if !found.is_empty() {
            return Err(ClusterError::Balancing { problems: found });
        }
        let mut d = Draft::new(st, env);
        for (name, source) in &self.upstreams {
            if st.upstreams().any(|(n, s)| n == name && s == source) {
                continue;
            }
            let detail = format!("upstream {name}: {}", describe(source));
            d.event(EventKind::Balancing, About::Cluster, &self.by, detail);
            d.put(Record::Upstream {
                name: name.clone(),
                source: source.clone(),
            });
        }
        for (domain, chain) in &self.routes {
            if st.routes().any(|(n, c)| n == domain && c == chain) {
                continue;
            }
            let detail = format!(
                "routes for {domain}: {} rules from {}",
                chain.rules.len(),
                chain.init
            );
            d.event(EventKind::Balancing, About::Cluster, &self.by, detail);
            d.put(Record::Route {
                domain: domain.clone(),
                chain: chain.clone(),
            });
        }
        for domain in &self.remove_routes {
            let detail = format!("routes for {domain} removed");
            d.event(EventKind::Balancing, About::Cluster, &self.by, detail);
            d.delete(Key::Route(domain.clone()));
        }
        Ok(d.finish(()))
    }
}

/// Removes upstreams no route uses, all of them or none; with
/// `missing_ok`, names there is no upstream of are skipped (ELB's DELETE).
/// Its result: the names removed.
pub struct RemoveUpstream {
    pub names: Vec<String>,
    pub missing_ok: bool,
    pub by: String,
}

impl Command for RemoveUpstream {
    type Out = Vec<String>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<String>>, ClusterError> {
        let (present, unknown): (Vec<&String>, Vec<&String>) = self
            .names
            .iter()
            .partition(|name| st.upstreams().any(|(n, _)| n == *name));
        match unknown.as_slice() {
            _ if self.missing_ok => {}
            [] => {}
            [name] => return Err(ClusterError::Invalid(format!("no upstream named {name:?}"))),
            names => {
                return Err(ClusterError::Invalid(format!(
                    "no upstreams named {names:?}"
                )));
            }
        }
        let present = &present;
        let users: Vec<String> = st
            .routes()
            .flat_map(|(domain, chain)| {
                chain.rules.iter().filter_map(move |(rule, r)| match r {
                    Rule::Backend { servername } if present.contains(&servername) => {
                        Some(format!("domain {domain:?} rule {rule:?} ({servername})"))
                    }
                    _ => None,
                })
            })
            .collect();
        if !users.is_empty() {
            let what = match present.as_slice() {
                [name] => format!("upstream {name:?}"),
                names => format!("upstreams {names:?}"),
            };
            return Err(ClusterError::InUse {
                what,
                users,
                fix: "change those routes first",
            });
        }
        let mut d = Draft::new(st, env);
        let mut removed = Vec::new();
        for &name in present {
            if removed.contains(name) {
                continue;
            }
            d.event(
                EventKind::Balancing,
                About::Cluster,
                &self.by,
                format!("upstream {name} removed"),
            );
            d.delete(Key::Upstream(name.clone()));
            removed.push(name.clone());
        }
        Ok(d.finish(removed))
    }
}

/// Removes the route chains of the domains that have one (ELB's DELETE:
/// a domain with none is gone already). Its result: the domains removed.
pub struct RemoveRoutes {
    pub domains: Vec<String>,
    pub by: String,
}

impl Command for RemoveRoutes {
    type Out = Vec<String>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<String>>, ClusterError> {
        let mut d = Draft::new(st, env);
        let mut removed = Vec::new();
        for domain in &self.domains {
            if removed.contains(domain) || !st.routes().any(|(n, _)| n == domain) {
                continue;
            }
            let detail = format!("routes for {domain} removed");
            d.event(EventKind::Balancing, About::Cluster, &self.by, detail);
            d.delete(Key::Route(domain.clone()));
            removed.push(domain.clone());
        }
        Ok(d.finish(removed))
    }
}
