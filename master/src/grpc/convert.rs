//! Conversions between `cluster_proto` wire types and the master's own types.
//! The only place (with the service modules beside it) that names proto types.

use crate::cluster::{ApplyStatus, Hello, TargetSpec};
use crate::jobs::{Command, Done, Event as JobEvent, Stream};
use crate::model::{self, Event, Grains, Node, NodeSpec, NodeState, OfflineFlag, Usage};
use crate::model::{JobNodeResult, JobRecord};
use crate::targets::Kind;
use cluster_proto as pb;

/// A message from an agent that does not say what it must.
#[derive(Debug, thiserror::Error)]
pub enum InvalidMessage {
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Node ids and names: what a hostname label allows, plus dots.
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > 253 {
        return Err(format!(
            "is {} bytes long, at most 253 are allowed",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    Ok(())
}

impl TryFrom<pb::Hello> for Hello {
    type Error = InvalidMessage;

    fn try_from(h: pb::Hello) -> Result<Self, Self::Error> {
        check_node_id(&h.node_id).map_err(|reason| InvalidMessage::Invalid {
            field: "hello.node_id",
            reason,
        })?;
        let grains: Grains = if h.grains_json.is_empty() {
            Grains::new()
        } else {
            serde_json::from_str(&h.grains_json).map_err(|e| InvalidMessage::Invalid {
                field: "hello.grains_json",
                reason: format!("not a JSON object: {e}"),
            })?
        };
        if !h.service.is_empty() {
            crate::naming::check_service(&h.service).map_err(|reason| InvalidMessage::Invalid {
                field: "hello.service",
                reason,
            })?;
        }
        let naming = h.naming.parse().map_err(|reason| InvalidMessage::Invalid {
            field: "hello.naming",
            reason,
        })?;
        for a in &h.aliases {
            crate::naming::check_hostname(a).map_err(|reason| InvalidMessage::Invalid {
                field: "hello.aliases",
                reason,
            })?;
        }
        Ok(Hello {
            node_id: h.node_id,
            grains,
            roles: h.roles,
            addresses: h.addresses,
            health_url: h.health_url,
            service: h.service,
            naming,
            aliases: h.aliases,
            wants_hosts: h.wants_hosts,
            wants_proxy: h.wants_proxy,
        })
    }
}

impl From<pb::Usage> for Usage {
    fn from(u: pb::Usage) -> Self {
        Usage {
            sampled_at_ms: u.sampled_at_ms,
            cpu_percent: u.cpu_percent,
            load: [u.load1, u.load5, u.load15],
            mem_total_bytes: u.mem_total_bytes,
            mem_used_bytes: u.mem_used_bytes,
            swap_total_bytes: u.swap_total_bytes,
            swap_used_bytes: u.swap_used_bytes,
            disks: u
                .disks
                .into_iter()
                .map(|d| model::DiskUsage {
                    mount: d.mount,
                    total_bytes: d.total_bytes,
                    available_bytes: d.available_bytes,
                })
                .collect(),
            net_rx_bytes_per_sec: u.net_rx_bytes_per_sec,
            net_tx_bytes_per_sec: u.net_tx_bytes_per_sec,
        }
    }
}

fn usage_to_pb(u: &Usage) -> pb::Usage {
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
            .iter()
            .map(|d| pb::DiskUsage {
                mount: d.mount.clone(),
                total_bytes: d.total_bytes,
                available_bytes: d.available_bytes,
            })
            .collect(),
        net_rx_bytes_per_sec: u.net_rx_bytes_per_sec,
        net_tx_bytes_per_sec: u.net_tx_bytes_per_sec,
    }
}

fn flag_to_pb(f: &OfflineFlag) -> pb::OfflineFlag {
    pb::OfflineFlag {
        reason: f.reason.clone(),
        since_ms: f.since_ms,
        by: f.by.clone(),
        maintenance: f.maintenance,
    }
}

pub fn spec_to_pb(spec: &NodeSpec) -> pb::NodeSpec {
    pb::NodeSpec {
        name: spec.name.clone(),
        offline: spec.offline.as_ref().map(flag_to_pb),
    }
}

pub fn node_to_pb(node: &Node, state: NodeState) -> pb::NodeInfo {
    pb::NodeInfo {
        id: node.id.clone(),
        name: node.name.clone(),
        roles: node.roles.clone(),
        state: match state {
            NodeState::Online => pb::NodeState::Online,
            NodeState::Drained => pb::NodeState::Drained,
            NodeState::Down => pb::NodeState::Down,
        } as i32,
        addresses: node.addresses.clone(),
        health_url: node.health_url.clone(),
        grains_json: serde_json::Value::Object(node.grains.clone()).to_string(),
        usage: node.usage.as_ref().map(usage_to_pb),
        offline: node.offline.as_ref().map(flag_to_pb),
        last_seen_ms: node.last_seen_ms,
        connected: node.connected,
        acked_generation: node.applied.generation,
        health_status: node.applied.health_status.clone(),
        labels: node.labels.clone().into_iter().collect(),
        service: node.service.clone(),
        naming: node.naming.as_str().to_owned(),
        aliases: node.aliases.clone(),
        checks: node
            .checks
            .iter()
            .map(super::convert_lb::check_to_pb)
            .collect(),
    }
}

pub fn host_to_pb(h: &crate::model::HostEntry) -> pb::HostEntry {
    pb::HostEntry {
        node_id: h.node_id.clone(),
        address: h.address.clone(),
        names: h.names.clone(),
    }
}

/// The target of a request: `target` when set, else `names` (`None` when
/// both are empty: every node, where a request allows that).
pub fn target_of(
    target: Option<pb::Target>,
    names: Vec<String>,
) -> Result<Option<TargetSpec>, InvalidMessage> {
    let Some(t) = target.filter(|t| t.kind != 0 || !t.expr.is_empty() || !t.names.is_empty())
    else {
        return Ok((!names.is_empty()).then_some(TargetSpec::Names(names)));
    };
    let kind = match pb::TargetKind::try_from(t.kind) {
        Ok(pb::TargetKind::Unspecified) => return Ok(Some(TargetSpec::Names(t.names))),
        Ok(pb::TargetKind::Glob) => Kind::Glob,
        Ok(pb::TargetKind::Regex) => Kind::Regex,
        Ok(pb::TargetKind::List) => Kind::List,
        Ok(pb::TargetKind::Grain) => Kind::Grain,
        Ok(pb::TargetKind::GrainRegex) => Kind::GrainRegex,
        Ok(pb::TargetKind::Label) => Kind::Label,
        Ok(pb::TargetKind::Subnet) => Kind::Subnet,
        Ok(pb::TargetKind::Role) => Kind::Role,
        Ok(pb::TargetKind::NodeGroup) => Kind::NodeGroup,
        Ok(pb::TargetKind::Compound) => Kind::Compound,
        Err(_) => {
            return Err(InvalidMessage::Invalid {
                field: "target.kind",
                reason: format!("unknown kind {}", t.kind),
            });
        }
    };
    Ok(Some(TargetSpec::Expr(kind, t.expr)))
}

pub fn command_to_pb(cmd: Command) -> pb::MasterMessage {
    use pb::master_message::Msg;
    let msg = match cmd {
        Command::Run {
            job_id,
            argv,
            timeout,
            output_limit,
        } => Msg::Run(pb::RunJob {
            job_id,
            argv,
            timeout_ms: timeout.map_or(0, |t| t.as_millis() as u64),
            output_limit_bytes: output_limit,
        }),
        Command::Cancel { job_id } => Msg::Cancel(pb::CancelJob { job_id }),
    };
    pb::MasterMessage { msg: Some(msg) }
}

pub fn stream_of(s: i32) -> Stream {
    match pb::OutputStream::try_from(s) {
        Ok(pb::OutputStream::Stderr) => Stream::Stderr,
        _ => Stream::Stdout,
    }
}

fn stream_to_pb(s: Stream) -> i32 {
    match s {
        Stream::Stdout => pb::OutputStream::Stdout as i32,
        Stream::Stderr => pb::OutputStream::Stderr as i32,
    }
}

pub fn done_of(d: pb::JobDone) -> Done {
    Done {
        exit_code: d.exit_code,
        timed_out: d.timed_out,
        cancelled: d.cancelled,
        error: d.error,
        duration_ms: d.duration_ms,
        dropped_bytes: d.output_dropped_bytes,
    }
}

pub fn result_to_pb(r: &JobNodeResult) -> pb::JobNodeResult {
    pb::JobNodeResult {
        node: r.node.clone(),
        status: r.status.as_str().to_owned(),
        exit_code: r.exit_code,
        duration_ms: r.duration_ms,
        error: r.error.clone(),
        stdout: r.stdout.clone(),
        stderr: r.stderr.clone(),
        truncated: r.truncated,
    }
}

pub fn job_to_pb(j: &JobRecord, with_output: bool) -> pb::JobInfo {
    pb::JobInfo {
        id: j.id.clone(),
        argv: j.argv.clone(),
        target: j.target.clone(),
        by: j.by.clone(),
        started_ms: j.started_ms,
        finished_ms: j.finished_ms,
        results: j
            .results
            .iter()
            .map(|r| {
                let mut p = result_to_pb(r);
                if !with_output {
                    p.stdout.clear();
                    p.stderr.clear();
                }
                p
            })
            .collect(),
    }
}

pub fn job_event_to_pb(e: JobEvent) -> pb::RunEvent {
    use pb::run_event::Event;
    let event = match e {
        JobEvent::Started {
            job_id,
            matched,
            not_connected,
        } => Event::Started(pb::JobStarted {
            job_id,
            matched,
            not_connected,
        }),
        JobEvent::Output { node, stream, data } => Event::Output(pb::NodeOutput {
            node,
            stream: stream_to_pb(stream),
            data,
        }),
        JobEvent::NodeDone(r) => Event::NodeDone(result_to_pb(&r)),
        JobEvent::Finished(j) => Event::Finished(pb::JobSummary {
            job: Some(job_to_pb(&j, false)),
        }),
    };
    pb::RunEvent { event: Some(event) }
}

pub fn event_to_pb(e: &Event) -> pb::Event {
    pb::Event {
        seq: e.seq,
        time_ms: e.time_ms,
        kind: e.kind.as_str().to_owned(),
        node: e.node.clone(),
        by: e.by.clone(),
        detail: e.detail.clone(),
    }
}

pub fn apply_status_to_pb(s: ApplyStatus) -> pb::ApplyStatus {
    match s {
        ApplyStatus::Stored => pb::ApplyStatus::Stored,
        ApplyStatus::Acknowledged => pb::ApplyStatus::Acknowledged,
        ApplyStatus::TimedOut => pb::ApplyStatus::TimedOut,
        ApplyStatus::NotConnected => pb::ApplyStatus::NotConnected,
        ApplyStatus::Unchanged => pb::ApplyStatus::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str, grains: &str) -> pb::Hello {
        pb::Hello {
            node_id: id.into(),
            grains_json: grains.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_hello_must_name_a_valid_node_and_carry_a_json_object() {
        let err = |h: pb::Hello| Hello::try_from(h).unwrap_err().to_string();
        assert_eq!(err(hello("", "{}")), "field `hello.node_id`: is empty");
        assert_eq!(
            err(hello("web 1", "{}")),
            "field `hello.node_id`: contains ' '; only letters, digits, '-', '_' and '.' are allowed"
        );
        assert!(
            err(hello("web-1", "[1]")).starts_with("field `hello.grains_json`: not a JSON object")
        );
        let ok = Hello::try_from(hello("web-1", r#"{"os":"Debian"}"#)).unwrap();
        assert_eq!(ok.grains["os"], "Debian");
    }
}
