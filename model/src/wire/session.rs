//! An agent's session on the wire: hello, snapshot, delta, the proxies'
//! view, acknowledgements, and jobs (commands to the agent, output and
//! outcomes back).

use super::node::{grains_of, health_of, spec_of};
use super::{WireError, node_id};
use crate::job::{Builtin, JobCommand, JobDone, JobOutput, OutputStream};
use crate::node::{FactProblem, Facts};
use crate::proxy::{ProxyView, ResolvedServer};
use crate::session::{Ack, Delta, Hello, Snapshot};
use cluster_balancer::Server;
use cluster_proto as pb;

impl From<&Hello> for pb::Hello {
    fn from(h: &Hello) -> pb::Hello {
        pb::Hello {
            node_id: h.node_id.to_string(),
            grains_json: serde_json::Value::Object(h.grains.clone()).to_string(),
            roles: h.roles.clone(),
            health_url: h.health_url.clone(),
            addresses: h.addresses.clone(),
            cached_generation: h.cached_generation,
            agent_version: h.agent_version.clone(),
            report_interval_ms: h.report_interval_ms,
            service: h.service.clone(),
            naming: h.naming.as_str().to_owned(),
            aliases: h.aliases.clone(),
            wants_hosts: h.wants_hosts,
            wants_proxy: h.wants_proxy,
            takes_hosts_in_parts: h.takes_hosts_in_parts,
            facts_json: serde_json::Value::Object(h.facts.clone()).to_string(),
            fact_problems: h.fact_problems.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::Hello> for Hello {
    type Error = WireError;

    fn try_from(h: pb::Hello) -> Result<Hello, WireError> {
        let node_id = node_id(h.node_id, "hello.node_id")?;
        let grains = grains_of(&h.grains_json, "hello.grains_json")?;
        let facts = grains_of(&h.facts_json, "hello.facts_json")?;
        if !h.service.is_empty() {
            crate::naming::check_service(&h.service)
                .map_err(|e| WireError::invalid("hello.service", e))?;
        }
        let naming = h
            .naming
            .parse()
            .map_err(|e: String| WireError::invalid("hello.naming", e))?;
        for a in &h.aliases {
            crate::naming::check_hostname(a).map_err(|e| WireError::invalid("hello.aliases", e))?;
        }
        Ok(Hello {
            node_id,
            grains,
            roles: h.roles,
            addresses: h.addresses,
            health_url: h.health_url,
            service: h.service,
            naming,
            aliases: h.aliases,
            cached_generation: h.cached_generation,
            agent_version: h.agent_version,
            report_interval_ms: h.report_interval_ms,
            wants_hosts: h.wants_hosts,
            wants_proxy: h.wants_proxy,
            takes_hosts_in_parts: h.takes_hosts_in_parts,
            facts,
            fact_problems: h.fact_problems.into_iter().map(Into::into).collect(),
        })
    }
}

impl From<&Facts> for pb::Facts {
    fn from(f: &Facts) -> pb::Facts {
        pb::Facts {
            grains_json: serde_json::Value::Object(f.grains.clone()).to_string(),
            facts_json: serde_json::Value::Object(f.facts.clone()).to_string(),
            fact_problems: f.problems.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::Facts> for Facts {
    type Error = WireError;

    fn try_from(f: pb::Facts) -> Result<Facts, WireError> {
        Ok(Facts {
            grains: grains_of(&f.grains_json, "facts.grains_json")?,
            facts: grains_of(&f.facts_json, "facts.facts_json")?,
            problems: f.fact_problems.into_iter().map(Into::into).collect(),
        })
    }
}

impl From<&FactProblem> for pb::FactProblem {
    fn from(p: &FactProblem) -> pb::FactProblem {
        pb::FactProblem {
            source: p.source.clone(),
            problem: p.problem.clone(),
        }
    }
}

impl From<pb::FactProblem> for FactProblem {
    fn from(p: pb::FactProblem) -> FactProblem {
        FactProblem {
            source: p.source,
            problem: p.problem,
        }
    }
}

pub(crate) fn server_to_pb(s: &Server, node: Option<&str>) -> pb::UpstreamServer {
    pb::UpstreamServer {
        addr: s.addr.clone(),
        weight: s.weight,
        max_fails: s.max_fails,
        fail_timeout_ms: s.fail_timeout_ms,
        backup: s.backup,
        node: node.unwrap_or_default().to_owned(),
        down: s.down,
    }
}

pub(crate) fn server_of(s: &pb::UpstreamServer) -> Server {
    Server {
        addr: s.addr.clone(),
        weight: s.weight,
        max_fails: s.max_fails,
        fail_timeout_ms: s.fail_timeout_ms,
        backup: s.backup,
        down: s.down,
    }
}

/// One upstream's servers as the proxies are sent them.
pub fn resolved_to_pb(name: &str, servers: &[ResolvedServer]) -> pb::ResolvedUpstream {
    pb::ResolvedUpstream {
        name: name.to_owned(),
        servers: servers
            .iter()
            .map(|s| server_to_pb(&s.server, s.node.as_deref()))
            .collect(),
    }
}

impl From<&ProxyView> for pb::ProxyConfig {
    fn from(view: &ProxyView) -> pb::ProxyConfig {
        pb::ProxyConfig {
            version: view.version,
            upstreams: view
                .upstreams
                .iter()
                .map(|(name, servers)| resolved_to_pb(name, servers))
                .collect(),
            routes: view
                .routes
                .iter()
                .map(|(d, c)| super::control::route_to_pb(d, c))
                .collect(),
        }
    }
}

/// A route the receiver cannot read is refused whole (the master validated
/// it; this guards against a mismatch of versions), so an agent keeps its
/// last good configuration.
impl TryFrom<pb::ProxyConfig> for ProxyView {
    type Error = WireError;
    fn try_from(p: pb::ProxyConfig) -> Result<ProxyView, WireError> {
        let upstreams = p
            .upstreams
            .into_iter()
            .map(|u| {
                let servers = u
                    .servers
                    .iter()
                    .map(|s| ResolvedServer {
                        server: server_of(s),
                        node: (!s.node.is_empty()).then(|| s.node.clone()),
                    })
                    .collect();
                (u.name, servers)
            })
            .collect();
        let routes = p
            .routes
            .into_iter()
            .map(super::control::route_of)
            .collect::<Result<_, _>>()?;
        Ok(ProxyView {
            version: p.version,
            upstreams,
            routes,
        })
    }
}

impl From<&Snapshot> for pb::Snapshot {
    fn from(s: &Snapshot) -> pb::Snapshot {
        pb::Snapshot {
            generation: s.generation,
            epoch: s.epoch,
            node: Some((&s.node).into()),
            hosts: s.hosts.iter().map(Into::into).collect(),
            proxy: s.proxy.as_ref().map(Into::into),
            hosts_more: false,
        }
    }
}

impl TryFrom<pb::Snapshot> for Snapshot {
    type Error = WireError;
    fn try_from(s: pb::Snapshot) -> Result<Snapshot, WireError> {
        Ok(Snapshot {
            generation: s.generation,
            epoch: s.epoch,
            node: spec_of(s.node, "snapshot.node")?,
            hosts: s
                .hosts
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            proxy: s.proxy.map(TryInto::try_into).transpose()?,
        })
    }
}

impl From<&Delta> for pb::Delta {
    fn from(d: &Delta) -> pb::Delta {
        pb::Delta {
            generation: d.generation,
            prev_generation: d.prev_generation,
            epoch: d.epoch,
            node: d.node.as_ref().map(Into::into),
            hosts_upsert: d.hosts_upsert.iter().map(Into::into).collect(),
            hosts_removed: d.hosts_removed.iter().map(ToString::to_string).collect(),
            proxy: d.proxy.as_ref().map(Into::into),
            hosts_more: false,
        }
    }
}

impl TryFrom<pb::Delta> for Delta {
    type Error = WireError;
    fn try_from(d: pb::Delta) -> Result<Delta, WireError> {
        Ok(Delta {
            generation: d.generation,
            prev_generation: d.prev_generation,
            epoch: d.epoch,
            node: d.node.map(TryInto::try_into).transpose()?,
            hosts_upsert: d
                .hosts_upsert
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            hosts_removed: d
                .hosts_removed
                .into_iter()
                .map(|id| node_id(id, "delta.hosts_removed"))
                .collect::<Result<_, _>>()?,
            proxy: d.proxy.map(TryInto::try_into).transpose()?,
        })
    }
}

impl From<&Ack> for pb::Ack {
    fn from(a: &Ack) -> pb::Ack {
        pb::Ack {
            generation: a.generation,
            health: pb::HealthStatus::from(a.health) as i32,
            cache_error: a.cache_error.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::Ack> for Ack {
    type Error = WireError;
    fn try_from(a: pb::Ack) -> Result<Ack, WireError> {
        Ok(Ack {
            generation: a.generation,
            health: health_of(a.health, "ack.health")?,
            cache_error: (!a.cache_error.is_empty()).then_some(a.cache_error),
        })
    }
}

impl From<OutputStream> for pb::OutputStream {
    fn from(s: OutputStream) -> pb::OutputStream {
        match s {
            OutputStream::Stdout => pb::OutputStream::Stdout,
            OutputStream::Stderr => pb::OutputStream::Stderr,
        }
    }
}

pub(crate) fn stream_of(v: i32) -> OutputStream {
    match pb::OutputStream::try_from(v) {
        Ok(pb::OutputStream::Stderr) => OutputStream::Stderr,
        _ => OutputStream::Stdout,
    }
}

impl From<&JobCommand> for pb::MasterMessage {
    fn from(cmd: &JobCommand) -> pb::MasterMessage {
        use pb::master_message::Msg;
        let msg = match cmd {
            JobCommand::Run {
                job_id,
                argv,
                builtin,
                timeout,
                output_limit,
            } => Msg::Run(pb::RunJob {
                job_id: job_id.clone(),
                argv: argv.clone(),
                timeout_ms: timeout.map_or(0, |t| t.as_millis() as u64),
                output_limit_bytes: *output_limit,
                builtin: builtin.map(|b| b.name().to_owned()).unwrap_or_default(),
            }),
            JobCommand::Cancel { job_id } => Msg::Cancel(pb::CancelJob {
                job_id: job_id.clone(),
            }),
        };
        pb::MasterMessage { msg: Some(msg) }
    }
}

/// A job command relayed between masters (a snapshot or delta is not one).
impl TryFrom<pb::MasterMessage> for JobCommand {
    type Error = WireError;
    fn try_from(m: pb::MasterMessage) -> Result<JobCommand, WireError> {
        use pb::master_message::Msg;
        match m.msg {
            Some(Msg::Run(r)) => JobCommand::try_from(r),
            Some(Msg::Cancel(c)) => Ok(JobCommand::Cancel { job_id: c.job_id }),
            Some(_) => Err(WireError::invalid("command", "not a job command")),
            None => Err(WireError::Missing("command")),
        }
    }
}

/// A job to run; an unknown built-in job is refused by name.
impl TryFrom<pb::RunJob> for JobCommand {
    type Error = WireError;
    fn try_from(r: pb::RunJob) -> Result<JobCommand, WireError> {
        let builtin = Builtin::parse(&r.builtin).map_err(|e| WireError::invalid("builtin", e))?;
        Ok(JobCommand::Run {
            job_id: r.job_id,
            argv: r.argv,
            builtin,
            timeout: (r.timeout_ms > 0).then(|| std::time::Duration::from_millis(r.timeout_ms)),
            output_limit: r.output_limit_bytes,
        })
    }
}

impl From<&JobOutput> for pb::JobOutput {
    fn from(o: &JobOutput) -> pb::JobOutput {
        pb::JobOutput {
            job_id: o.job_id.clone(),
            stream: pb::OutputStream::from(o.stream) as i32,
            data: o.data.clone(),
        }
    }
}

impl From<pb::JobOutput> for JobOutput {
    fn from(o: pb::JobOutput) -> JobOutput {
        JobOutput {
            job_id: o.job_id,
            stream: stream_of(o.stream),
            data: o.data,
        }
    }
}

impl From<&JobDone> for pb::JobDone {
    fn from(d: &JobDone) -> pb::JobDone {
        pb::JobDone {
            job_id: d.job_id.clone(),
            exit_code: d.exit_code,
            timed_out: d.timed_out,
            cancelled: d.cancelled,
            error: d.error.clone(),
            duration_ms: d.duration_ms,
            output_dropped_bytes: d.dropped_bytes,
        }
    }
}

impl From<pb::JobDone> for JobDone {
    fn from(d: pb::JobDone) -> JobDone {
        JobDone {
            job_id: d.job_id,
            exit_code: d.exit_code,
            timed_out: d.timed_out,
            cancelled: d.cancelled,
            error: d.error,
            duration_ms: d.duration_ms,
            dropped_bytes: d.output_dropped_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{HealthStatus, HostEntry, NodeSpec, OfflineFlag};

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

    #[test]
    fn snapshots_deltas_and_acks_round_trip() {
        let spec = NodeSpec {
            name: "web-0".try_into().unwrap(),
            offline: Some(OfflineFlag {
                reason: "r".into(),
                since_ms: 1,
                by: "b".into(),
                maintenance: false,
            }),
        };
        let host = HostEntry {
            node_id: "n1".try_into().unwrap(),
            address: "10.0.0.1".into(),
            names: vec!["web-0".into()],
        };
        let snap = Snapshot {
            generation: 4,
            epoch: 2,
            node: spec.clone(),
            hosts: vec![host.clone()],
            proxy: Some(ProxyView::default()),
        };
        assert_eq!(Snapshot::try_from(pb::Snapshot::from(&snap)).unwrap(), snap);
        let delta = Delta {
            generation: 5,
            prev_generation: 4,
            epoch: 2,
            node: Some(spec),
            hosts_upsert: vec![host],
            hosts_removed: vec!["n2".try_into().unwrap()],
            proxy: None,
        };
        assert_eq!(Delta::try_from(pb::Delta::from(&delta)).unwrap(), delta);
        let ack = Ack {
            generation: 5,
            health: HealthStatus::Offline,
            cache_error: Some("disk full".into()),
        };
        assert_eq!(Ack::try_from(pb::Ack::from(&ack)).unwrap(), ack);
        assert_eq!(
            Snapshot::try_from(pb::Snapshot::default())
                .unwrap_err()
                .to_string(),
            "missing field `snapshot.node`"
        );
    }
}
