//! What the master sends, made into the agent's own desired state; the
//! wire types themselves convert in `cluster_model::wire`.

use crate::jobs::Job;
use crate::state::{Desired, HostLine};
use cluster_model::HostEntry;
use cluster_model::job::JobCommand;
use cluster_model::session::{Delta, Snapshot};

fn host_line(h: HostEntry) -> (String, HostLine) {
    (
        h.node_id.into_string(),
        HostLine {
            address: h.address,
            names: h.names,
        },
    )
}

/// Everything, from a snapshot (with the epoch it was served under).
pub fn snapshot(s: Snapshot) -> Desired {
    Desired {
        generation: s.generation,
        epoch: s.epoch,
        name: s.node.name.into_string(),
        offline: s.node.offline,
        hosts: s.hosts.into_iter().map(host_line).collect(),
        proxy: s.proxy,
    }
}

/// `current` with a delta's changes (and the epoch it was served under).
pub fn patch(current: &Desired, d: Delta) -> Desired {
    let mut next = current.clone();
    if let Some(p) = d.proxy {
        next.proxy = Some(p);
    }
    next.generation = d.generation;
    next.epoch = d.epoch;
    if let Some(node) = d.node {
        next.name = node.name.into_string();
        next.offline = node.offline;
    }
    for id in d.hosts_removed {
        next.hosts.remove(id.as_str());
    }
    next.hosts.extend(d.hosts_upsert.into_iter().map(host_line));
    next
}

/// A job to run; `node` is this node's name, given to the command as
/// `CLUSTERCTL_NODE` (with the job id as `CLUSTERCTL_JOB`).
pub fn job(cmd: JobCommand, node: &str) -> Option<Job> {
    let JobCommand::Run {
        job_id,
        argv,
        builtin,
        timeout,
        output_limit,
    } = cmd
    else {
        return None;
    };
    Some(Job {
        env: vec![
            ("CLUSTERCTL_NODE".into(), node.to_owned()),
            ("CLUSTERCTL_JOB".into(), job_id.clone()),
        ],
        id: job_id,
        argv,
        builtin,
        timeout,
        output_limit,
    })
}

/// The local checks that have a result, as the master is told them.
pub fn checks(status: &crate::checks::CheckStatus) -> Vec<cluster_model::CheckResult> {
    status
        .checks
        .iter()
        .filter(|c| c.ran)
        .map(|c| cluster_model::CheckResult {
            name: c.name.clone(),
            kind: c.kind.into(),
            passing: c.passing,
            output: c.output.clone(),
            since_ms: c.since_ms,
        })
        .collect()
}
