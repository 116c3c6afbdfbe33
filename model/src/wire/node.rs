//! Nodes on the wire: records with their live state (`NodeInfo`), specs,
//! offline flags, hosts lines, health, usage, checks, balancer reports.

use super::{WireError, enum_of, node_id, node_name, required};
use crate::alerts::{Notice, NoticeStatus, Severity};
use crate::node::{
    Applied, CheckResult, Grains, HealthStatus, HostEntry, LbBackend, LbReport, LbSource, Node,
    NodeSpec, NodeState, NodeStatus, OfflineFlag,
};
use crate::usage::{DiskIo, DiskUsage, InterfaceUsage, Usage};
use cluster_proto as pb;

impl From<&Usage> for pb::Usage {
    fn from(u: &Usage) -> pb::Usage {
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
            cpu_core_percent: u.cpu_core_percent.clone(),
            mem_available_bytes: u.mem_available_bytes,
            swap_free_bytes: u.swap_free_bytes,
            interfaces: u
                .interfaces
                .iter()
                .map(|i| pb::InterfaceUsage {
                    name: i.name.clone(),
                    rx_bytes_per_sec: i.rx_bytes_per_sec,
                    tx_bytes_per_sec: i.tx_bytes_per_sec,
                    rx_packets_per_sec: i.rx_packets_per_sec,
                    tx_packets_per_sec: i.tx_packets_per_sec,
                    rx_errors_per_sec: i.rx_errors_per_sec,
                    tx_errors_per_sec: i.tx_errors_per_sec,
                })
                .collect(),
            disk_io: u
                .disk_io
                .iter()
                .map(|d| pb::DiskIo {
                    device: d.device.clone(),
                    read_bytes_per_sec: d.read_bytes_per_sec,
                    write_bytes_per_sec: d.write_bytes_per_sec,
                    reads_per_sec: d.reads_per_sec,
                    writes_per_sec: d.writes_per_sec,
                })
                .collect(),
            processes: u.processes,
            uptime_secs: u.uptime_secs,
        }
    }
}

/// Bounded ([`Usage::bound`]): an agent's report cannot make the master
/// keep more than the limits allow.
impl From<pb::Usage> for Usage {
    fn from(u: pb::Usage) -> Usage {
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
                .map(|d| DiskUsage {
                    mount: d.mount,
                    total_bytes: d.total_bytes,
                    available_bytes: d.available_bytes,
                })
                .collect(),
            net_rx_bytes_per_sec: u.net_rx_bytes_per_sec,
            net_tx_bytes_per_sec: u.net_tx_bytes_per_sec,
            cpu_core_percent: u.cpu_core_percent,
            mem_available_bytes: u.mem_available_bytes,
            swap_free_bytes: u.swap_free_bytes,
            interfaces: u
                .interfaces
                .into_iter()
                .map(|i| InterfaceUsage {
                    name: i.name,
                    rx_bytes_per_sec: i.rx_bytes_per_sec,
                    tx_bytes_per_sec: i.tx_bytes_per_sec,
                    rx_packets_per_sec: i.rx_packets_per_sec,
                    tx_packets_per_sec: i.tx_packets_per_sec,
                    rx_errors_per_sec: i.rx_errors_per_sec,
                    tx_errors_per_sec: i.tx_errors_per_sec,
                })
                .collect(),
            disk_io: u
                .disk_io
                .into_iter()
                .map(|d| DiskIo {
                    device: d.device,
                    read_bytes_per_sec: d.read_bytes_per_sec,
                    write_bytes_per_sec: d.write_bytes_per_sec,
                    reads_per_sec: d.reads_per_sec,
                    writes_per_sec: d.writes_per_sec,
                })
                .collect(),
            processes: u.processes,
            uptime_secs: u.uptime_secs,
        }
        .bound()
    }
}

impl From<&OfflineFlag> for pb::OfflineFlag {
    fn from(f: &OfflineFlag) -> pb::OfflineFlag {
        pb::OfflineFlag {
            reason: f.reason.clone(),
            since_ms: f.since_ms,
            by: f.by.clone(),
            maintenance: f.maintenance,
        }
    }
}

impl From<pb::OfflineFlag> for OfflineFlag {
    fn from(f: pb::OfflineFlag) -> OfflineFlag {
        OfflineFlag {
            reason: f.reason,
            since_ms: f.since_ms,
            by: f.by,
            maintenance: f.maintenance,
        }
    }
}

impl From<&NodeSpec> for pb::NodeSpec {
    fn from(s: &NodeSpec) -> pb::NodeSpec {
        pb::NodeSpec {
            name: s.name.to_string(),
            offline: s.offline.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::NodeSpec> for NodeSpec {
    type Error = WireError;
    fn try_from(s: pb::NodeSpec) -> Result<NodeSpec, WireError> {
        Ok(NodeSpec {
            name: node_name(s.name, "node.name")?,
            offline: s.offline.map(Into::into),
        })
    }
}

impl From<&HostEntry> for pb::HostEntry {
    fn from(h: &HostEntry) -> pb::HostEntry {
        pb::HostEntry {
            node_id: h.node_id.to_string(),
            address: h.address.clone(),
            names: h.names.clone(),
        }
    }
}

impl TryFrom<pb::HostEntry> for HostEntry {
    type Error = WireError;
    fn try_from(h: pb::HostEntry) -> Result<HostEntry, WireError> {
        Ok(HostEntry {
            node_id: node_id(h.node_id, "host.node_id")?,
            address: h.address,
            names: h.names,
        })
    }
}

impl From<HealthStatus> for pb::HealthStatus {
    fn from(h: HealthStatus) -> pb::HealthStatus {
        match h {
            HealthStatus::Online => pb::HealthStatus::Online,
            HealthStatus::Offline => pb::HealthStatus::Offline,
            HealthStatus::Maintenance => pb::HealthStatus::Maintenance,
            HealthStatus::Failing => pb::HealthStatus::Failing,
        }
    }
}

pub(crate) fn health_of(v: i32, field: &'static str) -> Result<HealthStatus, WireError> {
    Ok(match enum_of::<pb::HealthStatus>(v, field)? {
        pb::HealthStatus::Online => HealthStatus::Online,
        pb::HealthStatus::Offline => HealthStatus::Offline,
        pb::HealthStatus::Maintenance => HealthStatus::Maintenance,
        pb::HealthStatus::Failing | pb::HealthStatus::Unspecified => HealthStatus::Failing,
    })
}

impl From<NodeState> for pb::NodeState {
    fn from(s: NodeState) -> pb::NodeState {
        match s {
            NodeState::Online => pb::NodeState::Online,
            NodeState::Drained => pb::NodeState::Drained,
            NodeState::Maintenance => pb::NodeState::Maintenance,
            NodeState::Failing => pb::NodeState::Failing,
            NodeState::Down => pb::NodeState::Down,
        }
    }
}

fn state_of(v: i32) -> Result<NodeState, WireError> {
    Ok(match enum_of::<pb::NodeState>(v, "node.state")? {
        pb::NodeState::Online => NodeState::Online,
        pb::NodeState::Drained => NodeState::Drained,
        pb::NodeState::Maintenance => NodeState::Maintenance,
        pb::NodeState::Failing => NodeState::Failing,
        pb::NodeState::Down | pb::NodeState::Unspecified => NodeState::Down,
    })
}

impl From<&CheckResult> for pb::CheckResult {
    fn from(c: &CheckResult) -> pb::CheckResult {
        pb::CheckResult {
            name: c.name.clone(),
            kind: c.kind.clone(),
            passing: c.passing,
            output: c.output.clone(),
            since_ms: c.since_ms,
        }
    }
}

impl From<pb::CheckResult> for CheckResult {
    fn from(c: pb::CheckResult) -> CheckResult {
        CheckResult {
            name: c.name,
            kind: c.kind,
            passing: c.passing,
            output: c.output,
            since_ms: c.since_ms,
        }
    }
}

impl From<LbSource> for pb::LbSource {
    fn from(s: LbSource) -> pb::LbSource {
        match s {
            LbSource::Proxy => pb::LbSource::Proxy,
            LbSource::Haproxy => pb::LbSource::Haproxy,
        }
    }
}

pub(crate) fn source_of(v: i32, field: &'static str) -> Result<LbSource, WireError> {
    Ok(match enum_of::<pb::LbSource>(v, field)? {
        pb::LbSource::Haproxy => LbSource::Haproxy,
        pb::LbSource::Proxy | pb::LbSource::Unspecified => LbSource::Proxy,
    })
}

impl From<&LbReport> for pb::LbReport {
    fn from(r: &LbReport) -> pb::LbReport {
        pb::LbReport {
            proxy_version: r.proxy_version,
            backends: r
                .backends
                .iter()
                .map(|b| pb::LbBackend {
                    source: pb::LbSource::from(b.source) as i32,
                    name: b.name.clone(),
                    addr: b.addr.clone(),
                    in_rotation: b.in_rotation,
                    inflight: b.inflight,
                    status: b.status.clone(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::LbReport> for LbReport {
    type Error = WireError;
    fn try_from(r: pb::LbReport) -> Result<LbReport, WireError> {
        let backends = r
            .backends
            .into_iter()
            .map(|b| {
                Ok(LbBackend {
                    source: source_of(b.source, "lb.backends.source")?,
                    name: b.name,
                    addr: b.addr,
                    in_rotation: b.in_rotation,
                    inflight: b.inflight,
                    status: b.status,
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(LbReport {
            proxy_version: r.proxy_version,
            backends,
        })
    }
}

pub(crate) fn grains_of(json: &str, field: &'static str) -> Result<Grains, WireError> {
    if json.is_empty() {
        return Ok(Grains::new());
    }
    serde_json::from_str(json)
        .map_err(|e| WireError::invalid(field, format!("not a JSON object: {e}")))
}

impl From<&NodeStatus> for pb::NodeInfo {
    fn from(s: &NodeStatus) -> pb::NodeInfo {
        let n = &s.node;
        pb::NodeInfo {
            id: n.id.to_string(),
            name: n.name.to_string(),
            roles: n.roles.clone(),
            state: pb::NodeState::from(s.state) as i32,
            addresses: n.addresses.clone(),
            health_url: n.health_url.clone(),
            grains_json: serde_json::Value::Object(n.grains.clone()).to_string(),
            usage: s.usage.as_ref().map(Into::into),
            offline: n.offline.as_ref().map(Into::into),
            last_seen_ms: s.last_seen_ms,
            connected: s.connected,
            acked_generation: s.applied.generation,
            health: pb::HealthStatus::from(s.applied.health) as i32,
            cache_error: s.applied.cache_error.clone().unwrap_or_default(),
            spec_generation: s.spec_generation,
            labels: n.labels.clone().into_iter().collect(),
            service: n.service.clone(),
            naming: n.naming.as_str().to_owned(),
            aliases: n.aliases.clone(),
            checks: s.checks.iter().map(Into::into).collect(),
            registered_ms: n.registered_ms,
            alerts: s.alerts.iter().map(Into::into).collect(),
            levels: s
                .levels
                .as_ref()
                .map(super::levels::to_wire)
                .unwrap_or_default(),
            facts_json: serde_json::Value::Object(n.facts.clone()).to_string(),
            fact_problems: n.fact_problems.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::NodeInfo> for NodeStatus {
    type Error = WireError;
    fn try_from(n: pb::NodeInfo) -> Result<NodeStatus, WireError> {
        let applied = Applied {
            generation: n.acked_generation,
            // An agent that never acknowledged on this session says nothing.
            health: health_of(n.health, "node.health").unwrap_or_default(),
            cache_error: (!n.cache_error.is_empty()).then_some(n.cache_error),
        };
        Ok(NodeStatus {
            state: state_of(n.state)?,
            connected: n.connected,
            last_seen_ms: n.last_seen_ms,
            usage: n.usage.map(Into::into),
            applied,
            checks: n.checks.into_iter().map(Into::into).collect(),
            spec_generation: n.spec_generation,
            alerts: n
                .alerts
                .into_iter()
                .map(|a| alert_of(a, n.name.as_str(), &n.roles))
                .collect::<Result<_, _>>()?,
            levels: super::levels::of(n.levels)?,
            node: Node {
                id: node_id(n.id, "node.id")?,
                name: node_name(n.name, "node.name")?,
                roles: n.roles,
                addresses: n.addresses,
                health_url: n.health_url,
                grains: grains_of(&n.grains_json, "node.grains_json")?,
                offline: n.offline.map(Into::into),
                registered_ms: n.registered_ms,
                last_seen_ms: n.last_seen_ms,
                labels: n.labels.into_iter().collect(),
                service: n.service,
                naming: n
                    .naming
                    .parse()
                    .map_err(|e: String| WireError::invalid("node.naming", e))?,
                aliases: n.aliases,
                facts: grains_of(&n.facts_json, "node.facts_json")?,
                fact_problems: n.fact_problems.into_iter().map(Into::into).collect(),
            },
        })
    }
}

impl From<&Notice> for pb::FiringAlert {
    fn from(n: &Notice) -> pb::FiringAlert {
        pb::FiringAlert {
            metric: n.metric.as_str().to_owned(),
            device: n.device.clone(),
            severity: n.severity.as_str().to_owned(),
            value: n.value,
            threshold: n.threshold,
            since_ms: n.starts_at_ms,
        }
    }
}

/// A firing alert of the node `node` (with these roles).
fn alert_of(a: pb::FiringAlert, node: &str, roles: &[String]) -> Result<Notice, WireError> {
    Ok(Notice {
        status: NoticeStatus::Firing,
        node: node.to_owned(),
        roles: roles.to_vec(),
        metric: a
            .metric
            .parse()
            .map_err(|e: String| WireError::invalid("node.alerts.metric", e))?,
        device: a.device,
        severity: match a.severity.as_str() {
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            other => {
                return Err(WireError::invalid(
                    "node.alerts.severity",
                    format!("{other:?}: expected warning or critical"),
                ));
            }
        },
        value: a.value,
        threshold: a.threshold,
        starts_at_ms: a.since_ms,
        ends_at_ms: None,
        why: String::new(),
    })
}

/// A required nested message.
pub(crate) fn spec_of(s: Option<pb::NodeSpec>, field: &'static str) -> Result<NodeSpec, WireError> {
    required(s, field)?.try_into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_round_trips_with_its_live_state() {
        let status = NodeStatus {
            node: Node {
                id: "web-1".try_into().unwrap(),
                name: "web-0".try_into().unwrap(),
                roles: vec!["web".into()],
                addresses: vec!["10.0.0.5".into()],
                health_url: "http://10.0.0.5:7442/health".into(),
                grains: serde_json::from_str(r#"{"os":"Debian"}"#).unwrap(),
                offline: Some(OfflineFlag {
                    reason: "deploy".into(),
                    since_ms: 3,
                    by: "alice".into(),
                    maintenance: true,
                }),
                registered_ms: 1,
                last_seen_ms: 2,
                labels: [("rack".to_owned(), "a1".to_owned())].into(),
                service: "web".into(),
                naming: crate::naming::Naming::Masterful,
                aliases: vec!["www".into()],
                facts: serde_json::from_str(r#"{"os":{"release":{"full":"12.5"}}}"#).unwrap(),
                fact_problems: vec![crate::node::FactProblem {
                    source: "rack.sh".into(),
                    problem: "timed out after 10s".into(),
                }],
            },
            state: NodeState::Maintenance,
            connected: true,
            last_seen_ms: 2,
            usage: Some(Usage::default()),
            applied: Applied {
                generation: 9,
                health: HealthStatus::Maintenance,
                cache_error: Some("disk full".into()),
            },
            checks: vec![],
            spec_generation: 8,
            alerts: vec![Notice {
                status: NoticeStatus::Firing,
                node: "web-0".into(),
                roles: vec!["web".into()],
                metric: crate::alerts::Metric::Disk,
                device: "/var".into(),
                severity: Severity::Critical,
                value: 93.5,
                threshold: 90.0,
                starts_at_ms: 4,
                ends_at_ms: None,
                why: String::new(),
            }],
            levels: Some({
                let mut l = crate::alerts::Levels::default();
                l.disk.warning = 85.0;
                l.load.enabled = false;
                l
            }),
        };
        let wire = pb::NodeInfo::from(&status);
        assert_eq!(NodeStatus::try_from(wire.clone()).unwrap(), status);
        // A master that sends no levels: none, not the defaults.
        let older = pb::NodeInfo {
            levels: vec![],
            ..wire
        };
        assert_eq!(NodeStatus::try_from(older).unwrap().levels, None);
    }

    #[test]
    fn usage_round_trips_with_every_figure() {
        let usage = Usage {
            sampled_at_ms: 7,
            cpu_percent: 50.0,
            load: [1.0, 2.0, 3.0],
            mem_total_bytes: 100,
            mem_used_bytes: 40,
            swap_total_bytes: 10,
            swap_used_bytes: 1,
            disks: vec![DiskUsage {
                mount: "/".into(),
                total_bytes: 9,
                available_bytes: 3,
            }],
            net_rx_bytes_per_sec: 11,
            net_tx_bytes_per_sec: 12,
            cpu_core_percent: vec![25.0, 75.0],
            mem_available_bytes: Some(60),
            swap_free_bytes: Some(9),
            interfaces: vec![InterfaceUsage {
                name: "eth0".into(),
                rx_bytes_per_sec: 11,
                tx_bytes_per_sec: 12,
                rx_packets_per_sec: 1.5,
                tx_packets_per_sec: 2.5,
                rx_errors_per_sec: 0.2,
                tx_errors_per_sec: 0.4,
            }],
            disk_io: vec![DiskIo {
                device: "sda".into(),
                read_bytes_per_sec: 512,
                write_bytes_per_sec: 1024,
                reads_per_sec: 1.0,
                writes_per_sec: 2.0,
            }],
            processes: Some(80),
            uptime_secs: Some(3600),
        };
        assert_eq!(Usage::from(pb::Usage::from(&usage)), usage);
    }

    #[test]
    fn usage_from_an_older_agent_has_the_later_figures_unreported() {
        let old = pb::Usage {
            cpu_percent: 5.0,
            mem_total_bytes: 100,
            ..Default::default()
        };
        let u = Usage::from(old);
        assert_eq!((u.cpu_percent, u.mem_total_bytes), (5.0, 100));
        assert_eq!((u.mem_available_bytes, u.swap_free_bytes), (None, None));
        assert_eq!((u.processes, u.uptime_secs), (None, None));
        assert!(u.cpu_core_percent.is_empty() && u.interfaces.is_empty() && u.disk_io.is_empty());
    }

    #[test]
    fn usage_received_is_bounded() {
        let big = pb::Usage {
            cpu_core_percent: vec![1.0; 10_000],
            disk_io: vec![pb::DiskIo::default(); 1_000],
            ..Default::default()
        };
        let u = Usage::from(big);
        assert_eq!(u.cpu_core_percent.len(), crate::usage::CORES_MAX);
        assert_eq!(u.disk_io.len(), crate::usage::LIST_MAX);
    }

    #[test]
    fn bad_fields_are_named() {
        let err = NodeSpec::try_from(pb::NodeSpec {
            name: "a b".into(),
            offline: None,
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `node.name`: contains ' '; only letters, digits, '-', '_' and '.' are allowed"
        );
        assert_eq!(
            spec_of(None, "snapshot.node").unwrap_err().to_string(),
            "missing field `snapshot.node`"
        );
    }
}
