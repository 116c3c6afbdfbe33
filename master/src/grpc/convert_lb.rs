//! Wire types ⇄ the master's types for load balancing: upstreams, routes,
//! the proxies' view, checks and balancer reports.

use super::convert::InvalidMessage;
use crate::cluster::{BalancingState, ProxyView};
use crate::model::{CheckResult, LbBackend, LbReport};
use cluster_balancer::{Domain, Server, UpstreamSource};
use cluster_proto as pb;

pub fn server_to_pb(s: &Server, node: Option<&str>) -> pb::UpstreamServer {
    pb::UpstreamServer {
        addr: s.addr.clone(),
        weight: s.weight,
        max_fails: s.max_fails,
        fail_timeout_ms: s.fail_timeout_ms,
        backup: s.backup,
        node: node.unwrap_or_default().to_owned(),
    }
}

pub fn server_of(s: &pb::UpstreamServer) -> Server {
    Server {
        addr: s.addr.clone(),
        weight: s.weight,
        max_fails: s.max_fails,
        fail_timeout_ms: s.fail_timeout_ms,
        backup: s.backup,
    }
}

pub fn upstream_to_pb(name: &str, source: &UpstreamSource) -> pb::UpstreamDef {
    match source {
        UpstreamSource::Servers(list) => pb::UpstreamDef {
            name: name.to_owned(),
            servers: list.iter().map(|s| server_to_pb(s, None)).collect(),
            ..Default::default()
        },
        UpstreamSource::Role {
            role,
            port,
            weight,
            max_fails,
            fail_timeout_ms,
        } => pb::UpstreamDef {
            name: name.to_owned(),
            role: role.clone(),
            port: u32::from(*port),
            role_server: Some(pb::UpstreamServer {
                weight: *weight,
                max_fails: *max_fails,
                fail_timeout_ms: *fail_timeout_ms,
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

pub fn upstream_of(def: pb::UpstreamDef) -> Result<(String, UpstreamSource), InvalidMessage> {
    if !def.role.is_empty() && !def.servers.is_empty() {
        return Err(InvalidMessage::Invalid {
            field: "upstream",
            reason: format!("upstream {:?}: give servers or a role, not both", def.name),
        });
    }
    let source = if def.role.is_empty() {
        UpstreamSource::Servers(def.servers.iter().map(server_of).collect())
    } else {
        let p = def.role_server.unwrap_or_default();
        UpstreamSource::Role {
            role: def.role,
            port: u16::try_from(def.port).map_err(|_| InvalidMessage::Invalid {
                field: "upstream.port",
                reason: format!("port {} is not 1-65535", def.port),
            })?,
            weight: p.weight.max(1),
            max_fails: p.max_fails,
            fail_timeout_ms: if p.fail_timeout_ms == 0 {
                10_000
            } else {
                p.fail_timeout_ms
            },
        }
    };
    Ok((def.name, source))
}

pub fn route_to_pb(domain: &str, chain: &Domain) -> pb::Route {
    pb::Route {
        domain: domain.to_owned(),
        chain_json: serde_json::to_string(chain).expect("a route always serialises"),
    }
}

pub fn route_of(r: pb::Route) -> Result<(String, Domain), InvalidMessage> {
    let chain = serde_json::from_str(&r.chain_json).map_err(|e| InvalidMessage::Invalid {
        field: "route.chain_json",
        reason: format!("domain {:?}: {e}", r.domain),
    })?;
    Ok((r.domain, chain))
}

pub fn view_to_pb(view: &ProxyView) -> pb::ProxyConfig {
    pb::ProxyConfig {
        version: view.version,
        upstreams: view
            .upstreams
            .iter()
            .map(|(name, servers)| pb::ResolvedUpstream {
                name: name.clone(),
                servers: servers
                    .iter()
                    .map(|s| server_to_pb(&s.server, s.node.as_deref()))
                    .collect(),
            })
            .collect(),
        routes: view.routes.iter().map(|(d, c)| route_to_pb(d, c)).collect(),
    }
}

pub fn report_to_pb(r: &LbReport) -> pb::LbReport {
    pb::LbReport {
        proxy_version: r.proxy_version,
        backends: r
            .backends
            .iter()
            .map(|b| pb::LbBackend {
                source: b.source.clone(),
                name: b.name.clone(),
                addr: b.addr.clone(),
                in_rotation: b.in_rotation,
                inflight: b.inflight,
                status: b.status.clone(),
            })
            .collect(),
    }
}

pub fn report_of(r: pb::LbReport) -> LbReport {
    LbReport {
        proxy_version: r.proxy_version,
        backends: r
            .backends
            .into_iter()
            .map(|b| LbBackend {
                source: b.source,
                name: b.name,
                addr: b.addr,
                in_rotation: b.in_rotation,
                inflight: b.inflight,
                status: b.status,
            })
            .collect(),
    }
}

pub fn checks_of(c: pb::Checks) -> Vec<CheckResult> {
    c.checks
        .into_iter()
        .map(|c| CheckResult {
            name: c.name,
            kind: c.kind,
            passing: c.passing,
            output: c.output,
            since_ms: c.since_ms,
        })
        .collect()
}

pub fn check_to_pb(c: &CheckResult) -> pb::CheckResult {
    pb::CheckResult {
        name: c.name.clone(),
        kind: c.kind.clone(),
        passing: c.passing,
        output: c.output.clone(),
        since_ms: c.since_ms,
    }
}

pub fn balancing_to_pb(b: &BalancingState) -> pb::ListBalancingResponse {
    pb::ListBalancingResponse {
        upstreams: b
            .upstreams
            .iter()
            .map(|(n, s)| upstream_to_pb(n, s))
            .collect(),
        routes: b.routes.iter().map(|(d, c)| route_to_pb(d, c)).collect(),
        resolved: Some(view_to_pb(&b.view)),
        reports: b
            .reports
            .iter()
            .map(|(n, r)| (n.clone(), report_to_pb(r)))
            .collect(),
    }
}
