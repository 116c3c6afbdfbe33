//! Usage thresholds and alerts: the metrics watched, glances-style levels
//! (careful / warning / critical), and what an alert's change of state
//! says to the places it is delivered ([`Notice`]).
//!
//! - [`levels`] — one metric's levels, its clear margin and its `for`;
//!   the whole set with per-role and per-node overrides, from the
//!   master's config.
//! - [`rules`] — the pure state machine: samples in, `firing` and
//!   `resolved` transitions out.

pub mod levels;
pub mod rules;

pub use levels::{Levels, MetricLevels, RawAlerts, Thresholds};
pub use rules::{AlertKey, Alerting, Phase, Transition, TransitionKind};

use serde::{Deserialize, Serialize};

/// What is watched. A node's usage gives all but [`Metric::Silent`],
/// which is the agent not reporting at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// CPU, % of all cores.
    Cpu,
    /// Memory used, % of total.
    Memory,
    /// Swap used, % of total (nothing when the node has no swap).
    Swap,
    /// A mount point's space used, % of its size (per mount).
    Disk,
    /// The 1-minute load average per core.
    Load,
    /// Bytes received per second, all interfaces but loopback.
    NetRx,
    /// Bytes sent per second.
    NetTx,
    /// The agent stopped reporting (the node is `down`).
    Silent,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Cpu,
        Metric::Memory,
        Metric::Swap,
        Metric::Disk,
        Metric::Load,
        Metric::NetRx,
        Metric::NetTx,
        Metric::Silent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Swap => "swap",
            Metric::Disk => "disk",
            Metric::Load => "load",
            Metric::NetRx => "net_rx",
            Metric::NetTx => "net_tx",
            Metric::Silent => "silent",
        }
    }

    /// How a value of it reads: `93.0%`, `1.25 per core`, `12.0 MB/s`.
    pub fn show(self, value: f64) -> String {
        match self {
            Metric::Cpu | Metric::Memory | Metric::Swap | Metric::Disk => format!("{value:.1}%"),
            Metric::Load => format!("{value:.2} per core"),
            Metric::NetRx | Metric::NetTx => format!("{:.1} MB/s", value / 1e6),
            Metric::Silent => format!("silent for {}s", value.round()),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown metric {s:?}; the metrics are {}",
                    Metric::ALL.map(Metric::as_str).join(", ")
                )
            })
    }
}

/// Where a value stands against its metric's levels. `Careful` is a
/// colour only (as in glances); `Warning` and `Critical` are alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Careful,
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Careful => "careful",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The severity of an alert: one rule per level that alerts, each with
/// its own `for` and clear line, as two Prometheus rules would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 2] = [Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a notice opens or closes an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeStatus {
    Firing,
    Resolved,
}

impl NoticeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeStatus::Firing => "firing",
            NoticeStatus::Resolved => "resolved",
        }
    }
}

/// One alert as it is delivered (Alertmanager, email, a webhook): its
/// identity (`node`, `metric`, `device`, `severity`), what it saw and
/// against which line, and when it started and ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub status: NoticeStatus,
    /// The node's name when the alert changed state.
    pub node: String,
    /// The node's roles (comma-separated in labels; empty: none).
    pub roles: Vec<String>,
    pub metric: Metric,
    /// The mount point for `disk`; empty otherwise.
    pub device: String,
    pub severity: Severity,
    /// The value that fired it (or, resolved, the value that cleared it).
    pub value: f64,
    /// The level it crossed.
    pub threshold: f64,
    /// When it started firing.
    pub starts_at_ms: u64,
    /// When it resolved (`None` while firing).
    pub ends_at_ms: Option<u64>,
    /// Why it resolved without clearing (`"node drained"`, `"node removed"`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

impl Notice {
    /// The alert's name, as Alertmanager's `alertname` label:
    /// `NodeCpuCritical`, `NodeSilent`.
    pub fn alertname(&self) -> String {
        let metric: String = self
            .metric
            .as_str()
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        match self.metric {
            Metric::Silent => format!("Node{metric}"),
            _ => format!(
                "Node{metric}{}",
                match self.severity {
                    Severity::Warning => "Warning",
                    Severity::Critical => "Critical",
                }
            ),
        }
    }

    /// One line for people: `web-1 cpu critical: 97.0% ≥ 90.0%`.
    pub fn summary(&self) -> String {
        let what = match self.device.as_str() {
            "" => self.metric.as_str().to_owned(),
            d => format!("{} {d}", self.metric),
        };
        match (self.metric, self.status) {
            (Metric::Silent, NoticeStatus::Firing) => {
                format!("{} stopped reporting", self.node)
            }
            (Metric::Silent, NoticeStatus::Resolved) => format!("{} reports again", self.node),
            (_, NoticeStatus::Firing) => format!(
                "{} {what} {}: {} ≥ {}",
                self.node,
                self.severity,
                self.metric.show(self.value),
                self.metric.show(self.threshold)
            ),
            (_, NoticeStatus::Resolved) => format!(
                "{} {what} {} resolved: {}",
                self.node,
                self.severity,
                self.metric.show(self.value)
            ),
        }
    }
}

#[cfg(test)]
mod rule_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(metric: Metric, severity: Severity) -> Notice {
        Notice {
            status: NoticeStatus::Firing,
            node: "web-1".into(),
            roles: vec!["web".into()],
            metric,
            device: String::new(),
            severity,
            value: 97.0,
            threshold: 90.0,
            starts_at_ms: 1,
            ends_at_ms: None,
            why: String::new(),
        }
    }

    #[test]
    fn alert_names_read_as_prometheus_rules_do() {
        assert_eq!(
            notice(Metric::Cpu, Severity::Critical).alertname(),
            "NodeCpuCritical"
        );
        assert_eq!(
            notice(Metric::NetRx, Severity::Warning).alertname(),
            "NodeNetRxWarning"
        );
        assert_eq!(
            notice(Metric::Silent, Severity::Critical).alertname(),
            "NodeSilent"
        );
    }

    #[test]
    fn a_summary_says_the_value_and_the_line() {
        assert_eq!(
            notice(Metric::Cpu, Severity::Critical).summary(),
            "web-1 cpu critical: 97.0% ≥ 90.0%"
        );
        let mut n = notice(Metric::Disk, Severity::Warning);
        n.device = "/var".into();
        assert_eq!(n.summary(), "web-1 disk /var warning: 97.0% ≥ 90.0%");
    }

    #[test]
    fn metrics_parse_by_their_names() {
        for m in Metric::ALL {
            assert_eq!(m.as_str().parse::<Metric>(), Ok(m));
        }
        assert!("cpus".parse::<Metric>().unwrap_err().contains("net_rx"));
    }
}
