//! Wire types ⇄ the agent's own types; the only agent module (with its
//! parent) that names `cluster_proto` types.

use crate::jobs::{Job, JobEvent, Stream};
use crate::state::{Desired, HostLine, Offline};
use crate::usage::Usage;
use cluster_proto as pb;
use pb::agent_message::Msg;

#[derive(Debug, thiserror::Error)]
#[error("invalid message from the master: missing field `{0}`")]
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
    })
}

/// `current` with a delta's changes.
pub fn patch(current: &Desired, d: pb::Delta) -> Desired {
    let mut next = current.clone();
    next.generation = d.generation;
    if let Some(node) = d.node {
        next.name = node.name;
        next.offline = offline(node.offline);
    }
    for id in d.hosts_removed {
        next.hosts.remove(&id);
    }
    next.hosts.extend(d.hosts_upsert.into_iter().map(host_line));
    next
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

pub fn job(r: pb::RunJob) -> Job {
    Job {
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
