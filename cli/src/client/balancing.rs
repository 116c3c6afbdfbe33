//! Calls for load balancing: upstreams, routes, waiting for drains.

use super::Client;
use crate::Failure;
use cluster_balancer::{Domain, Server, UpstreamSource};
use cluster_proto as pb;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One server as the proxies are sent it now.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedServerView {
    #[serde(flatten)]
    pub server: Server,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendView {
    pub source: String,
    pub name: String,
    pub addr: String,
    pub in_rotation: bool,
    pub inflight: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    pub proxy_version: u64,
    pub backends: Vec<BackendView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BalancingView {
    pub upstreams: BTreeMap<String, UpstreamSource>,
    pub routes: BTreeMap<String, Domain>,
    pub version: u64,
    pub resolved: BTreeMap<String, Vec<ResolvedServerView>>,
    pub reports: BTreeMap<String, ReportView>,
}

/// What is still pending while waiting for nodes to leave rotation.
#[derive(Debug, Clone, Serialize)]
pub struct WaitOutView {
    pub pending: Vec<String>,
    pub done: bool,
    pub timed_out: bool,
    pub elapsed_ms: u64,
}

fn server_of(s: &pb::UpstreamServer) -> Server {
    Server {
        addr: s.addr.clone(),
        weight: s.weight,
        max_fails: s.max_fails,
        fail_timeout_ms: s.fail_timeout_ms,
        backup: s.backup,
    }
}

fn server_pb(s: &Server) -> pb::UpstreamServer {
    pb::UpstreamServer {
        addr: s.addr.clone(),
        weight: s.weight,
        max_fails: s.max_fails,
        fail_timeout_ms: s.fail_timeout_ms,
        backup: s.backup,
        node: String::new(),
    }
}

pub fn upstream_pb(name: &str, source: &UpstreamSource) -> pb::UpstreamDef {
    match source {
        UpstreamSource::Servers(list) => pb::UpstreamDef {
            name: name.to_owned(),
            servers: list.iter().map(server_pb).collect(),
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

fn upstream_of(def: &pb::UpstreamDef) -> UpstreamSource {
    if def.role.is_empty() {
        UpstreamSource::Servers(def.servers.iter().map(server_of).collect())
    } else {
        let p = def.role_server.clone().unwrap_or_default();
        UpstreamSource::Role {
            role: def.role.clone(),
            port: def.port as u16,
            weight: p.weight,
            max_fails: p.max_fails,
            fail_timeout_ms: p.fail_timeout_ms,
        }
    }
}

fn route_pb(domain: &str, chain: &Domain) -> pb::Route {
    pb::Route {
        domain: domain.to_owned(),
        chain_json: serde_json::to_string(chain).expect("a route always serialises"),
    }
}

impl Client {
    pub async fn balancing(&mut self) -> Result<BalancingView, Failure> {
        let resp = self
            .control
            .list_balancing(pb::ListBalancingRequest {})
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        let mut routes = BTreeMap::new();
        for r in &resp.routes {
            let chain: Domain = serde_json::from_str(&r.chain_json).map_err(|e| {
                Failure::partial(format!(
                    "the master sent an unreadable route for {}: {e}",
                    r.domain
                ))
            })?;
            routes.insert(r.domain.clone(), chain);
        }
        let resolved = resp.resolved.unwrap_or_default();
        Ok(BalancingView {
            upstreams: resp
                .upstreams
                .iter()
                .map(|u| (u.name.clone(), upstream_of(u)))
                .collect(),
            routes,
            version: resolved.version,
            resolved: resolved
                .upstreams
                .iter()
                .map(|u| {
                    let servers = u
                        .servers
                        .iter()
                        .map(|s| ResolvedServerView {
                            server: server_of(s),
                            node: (!s.node.is_empty()).then(|| s.node.clone()),
                        })
                        .collect();
                    (u.name.clone(), servers)
                })
                .collect(),
            reports: resp
                .reports
                .into_iter()
                .map(|(node, r)| {
                    let backends = r
                        .backends
                        .into_iter()
                        .map(|b| BackendView {
                            source: b.source,
                            name: b.name,
                            addr: b.addr,
                            in_rotation: b.in_rotation,
                            inflight: b.inflight,
                            status: b.status,
                        })
                        .collect();
                    let view = ReportView {
                        proxy_version: r.proxy_version,
                        backends,
                    };
                    (node, view)
                })
                .collect(),
        })
    }

    /// Sets one upstream; returns the servers it has now.
    pub async fn set_upstream(
        &mut self,
        name: &str,
        source: &UpstreamSource,
    ) -> Result<Vec<ResolvedServerView>, Failure> {
        let resp = self
            .control
            .set_upstream(pb::SetUpstreamRequest {
                upstream: Some(upstream_pb(name, source)),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp
            .resolved
            .unwrap_or_default()
            .servers
            .iter()
            .map(|s| ResolvedServerView {
                server: server_of(s),
                node: (!s.node.is_empty()).then(|| s.node.clone()),
            })
            .collect())
    }

    pub async fn remove_upstream(&mut self, name: &str) -> Result<(), Failure> {
        self.control
            .remove_upstream(pb::RemoveUpstreamRequest {
                name: name.to_owned(),
            })
            .await
            .map_err(Failure::from_status)?;
        Ok(())
    }

    /// Sets and removes domains' routes, with upstreams, as one change.
    pub async fn set_routes(
        &mut self,
        set: &BTreeMap<String, Domain>,
        remove: &[String],
        upstreams: &BTreeMap<String, UpstreamSource>,
    ) -> Result<u64, Failure> {
        let resp = self
            .control
            .set_routes(pb::SetRoutesRequest {
                set: set.iter().map(|(d, c)| route_pb(d, c)).collect(),
                remove: remove.to_vec(),
                upstreams: upstreams.iter().map(|(n, s)| upstream_pb(n, s)).collect(),
            })
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        Ok(resp.version)
    }

    /// Waits until the nodes are out of rotation everywhere, calling
    /// `progress` with what is pending as it changes; returns the last word.
    pub async fn wait_out(
        &mut self,
        names: &[String],
        timeout: Duration,
        mut progress: impl FnMut(&WaitOutView),
    ) -> Result<WaitOutView, Failure> {
        let mut request = tonic::Request::new(pb::WaitOutRequest {
            names: names.to_vec(),
            timeout_ms: timeout.as_millis() as u64,
        });
        request.set_timeout(timeout + Duration::from_secs(10));
        let mut stream = self
            .control
            .wait_out(request)
            .await
            .map_err(Failure::from_status)?
            .into_inner();
        while let Some(ev) = stream.message().await.map_err(Failure::from_status)? {
            let view = WaitOutView {
                pending: ev.pending,
                done: ev.done,
                timed_out: ev.timed_out,
                elapsed_ms: ev.elapsed_ms,
            };
            if view.done {
                return Ok(view);
            }
            progress(&view);
        }
        Err(Failure::partial(
            "the master ended the wait without an answer".to_owned(),
        ))
    }
}
