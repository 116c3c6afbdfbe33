//! Wire types ⇄ the agent's own types; the only agent module (with its
//! parent) that names `cluster_proto` types.

use crate::jobs::{Job, JobEvent, Stream};
use crate::state::{Desired, HostLine, Offline, ProxyDesired, ProxyServer};
use crate::usage::Usage;
use cluster_proto as pb;
use pb::agent_message::Msg;

#[derive(Debug, thiserror::Error)]
#[error("invalid message from the master: field `{0}` is missing or unreadable")]
pub struct Missing(pub &'static str);

fn host_line(h: pb::HostEntry) -> (String, HostLine) {
    (
        h.node_id,
        HostLine {
            address: h.address,
            names: h.names,
        },
    )
}

fn offline(o: Option<pb::OfflineFlag>) -> Option<Offline> {
    o.map(|o| Offline {
        reason: o.reason,
        since_ms: o.since_ms,
        by: o.by,
        maintenance: o.maintenance,
    })
}

/// Everything, from a snapshot.
pub fn snapshot(s: pb::Snapshot) -> Result<Desired, Missing> {
    let node = s.node.ok_or(Missing("snapshot.node"))?;
    Ok(Desired {
        generation: s.generation,
        name: node.name,
        offline: offline(node.offline),
        hosts: s.hosts.into_iter().map(host_line).collect(),
        proxy: s.proxy.map(proxy).transpose()?,
    })
}

/// The proxy's configuration. A route the agent cannot read is refused
/// here (the master validated it; this guards against a mismatch of
/// versions) and the last good configuration stays.
fn proxy(p: pb::ProxyConfig) -> Result<ProxyDesired, Missing> {
    let upstreams = p
        .upstreams
        .into_iter()
        .map(|u| {
            let servers = u
                .servers
                .into_iter()
                .map(|s| ProxyServer {
                    server: cluster_balancer::Server {
                        addr: s.addr,
                        weight: s.weight,
                        max_fails: s.max_fails,
                        fail_timeout_ms: s.fail_timeout_ms,
                        backup: s.backup,
                    },
                    node: (!s.node.is_empty()).then_some(s.node),
                })
                .collect();
            (u.name, servers)
        })
        .collect();
    let mut routes = std::collections::BTreeMap::new();
    for r in p.routes {
        let chain =
            serde_json::from_str(&r.chain_json).map_err(|_| Missing("proxy.routes.chain_json"))?;
        routes.insert(r.domain, chain);
    }
    Ok(ProxyDesired {
        version: p.version,
        upstreams,
        routes,
    })
}

/// `current` with a delta's changes.
pub fn patch(current: &Desired, d: pb::Delta) -> Result<Desired, Missing> {
    let mut next = current.clone();
    if let Some(p) = d.proxy {
        next.proxy = Some(proxy(p)?);
    }
    next.generation = d.generation;
    if let Some(node) = d.node {
        next.name = node.name;
        next.offline = offline(node.offline);
    }
    for id in d.hosts_removed {
        next.hosts.remove(&id);
    }
    next.hosts.extend(d.hosts_upsert.into_iter().map(host_line));
    Ok(next)
}

pub fn usage(u: Usage) -> pb::Usage {
    pb::Usage {
        sampled_at_ms: u.sampled_at_ms,
        cpu_percent: u.cpu_percent,
        load1: u.load[0],
        load5: u.load[1],
        load15: u.load[2],
        mem_total_bytes: u.mem_total_bytes,
        mem_used_bytes: u.mem_used_bytes,
        swap_total_bytes: u.swap_total_bytes,
        swap_used_bytes: u.swap_used_bytes,
        disks: u
            .disks
            .into_iter()
            .map(|(mount, total_bytes, available_bytes)| pb::DiskUsage {
                mount,
                total_bytes,
                available_bytes,
            })
            .collect(),
        net_rx_bytes_per_sec: u.net_rx_bytes_per_sec,
        net_tx_bytes_per_sec: u.net_tx_bytes_per_sec,
    }
}

/// A job to run; `node` is this node's name, given to the command as
/// `CLUSTERCTL_NODE` (with the job id as `CLUSTERCTL_JOB`).
pub fn job(r: pb::RunJob, node: &str) -> Job {
    Job {
        env: vec![
            ("CLUSTERCTL_NODE".into(), node.to_owned()),
            ("CLUSTERCTL_JOB".into(), r.job_id.clone()),
        ],
        id: r.job_id,
        argv: r.argv,
        timeout: (r.timeout_ms > 0).then(|| std::time::Duration::from_millis(r.timeout_ms)),
        output_limit: r.output_limit_bytes,
    }
}

pub fn job_event(ev: JobEvent) -> Msg {
    match ev {
        JobEvent::Output {
            job_id,
            stream,
            data,
        } => Msg::Output(pb::JobOutput {
            job_id,
            stream: match stream {
                Stream::Stdout => pb::OutputStream::Stdout,
                Stream::Stderr => pb::OutputStream::Stderr,
            } as i32,
            data,
        }),
        JobEvent::Done(o) => Msg::Done(pb::JobDone {
            job_id: o.job_id,
            exit_code: o.exit_code,
            timed_out: o.timed_out,
            cancelled: o.cancelled,
            error: o.error,
            duration_ms: o.duration_ms,
            output_dropped_bytes: o.dropped_bytes,
        }),
    }
}

pub fn checks(status: &crate::checks::CheckStatus) -> Msg {
    Msg::Checks(pb::Checks {
        checks: status
            .checks
            .iter()
            .filter(|c| c.ran)
            .map(|c| pb::CheckResult {
                name: c.name.clone(),
                kind: c.kind.into(),
                passing: c.passing,
                output: c.output.clone(),
                since_ms: c.since_ms,
            })
            .collect(),
    })
}

pub fn lb_report(r: &crate::balancing::Report) -> Msg {
    Msg::Lb(pb::LbReport {
        proxy_version: r.proxy_version,
        backends: r
            .backends
            .iter()
            .map(|b| pb::LbBackend {
                source: b.source.into(),
                name: b.name.clone(),
                addr: b.addr.clone(),
                in_rotation: b.in_rotation,
                inflight: b.inflight,
                status: b.status.clone(),
            })
            .collect(),
    })
}
