//! The node's health endpoint, what load balancers probe.
//!
//! - `GET /health` — `200 {"status":"online","node":…}` in service;
//!   `503` with `"status":"offline"` (drained) or `"maintenance"`, and the
//!   reason and since; `503 {"status":"failing","check":"db","reason":
//!   "check db failing"}` when a local check fails — its name, never its
//!   output, which may hold secrets (authenticated callers of the master
//!   see it, redacted). A drain wins over a failing check. With checks
//!   configured, every answer lists them: `"checks":{"app":"passing"}`.
//! - `GET /health?node=NAME` — the same when NAME is this node (bethel's probe
//!   URL); 404 naming the node that answered otherwise, so a miswired probe
//!   is caught instead of trusted.
//! - `GET /metrics` — OpenMetrics text: state, checks, usage (the usage
//!   gauges are written by the `usage` submodule), and the proxy's
//!   requests when the node runs it ([`crate::proxy::Metrics`]).
//!
//! The decision is [`verdict`], pure; [`answer`] is the whole `/health`
//! answer, cheap and synchronous, so the proxy serves the same on its
//! traffic port. Read-only and unauthenticated: it reveals status and
//! reason, nothing else. A drain flips the answer for the next request;
//! requests in flight complete normally.

use crate::checks::CheckStatus;
use crate::state::{Desired, Shared};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cluster_model::HealthStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

mod usage;

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// What `/health` answers, before it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// 200 online, else 503.
    pub code: u16,
    /// [`status`].
    pub status: HealthStatus,
    pub body: Value,
}

/// Online, offline (drained), maintenance or failing (a local check
/// fails; a drain or maintenance wins over it).
pub fn status(desired: &Desired, checks: &CheckStatus) -> HealthStatus {
    HealthStatus::of(desired.offline.as_ref(), checks.failing().is_some())
}

pub fn verdict(desired: &Desired, checks: &CheckStatus) -> Verdict {
    let status = status(desired, checks);
    let mut body = Map::new();
    body.insert("status".into(), status.as_str().into());
    body.insert("node".into(), desired.name.clone().into());
    if let Some(off) = &desired.offline {
        let since = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(off.since_ms),
        );
        body.insert("reason".into(), off.reason.clone().into());
        body.insert("since".into(), since.to_string().into());
    } else if let Some(failing) = checks.failing() {
        body.insert("check".into(), failing.name.clone().into());
        body.insert(
            "reason".into(),
            format!("check {} failing", failing.name).into(),
        );
    }
    if !checks.checks.is_empty() {
        let states = checks
            .checks
            .iter()
            .map(|c| {
                let state = match (c.ran, c.passing) {
                    (false, _) => "pending",
                    (true, true) => "passing",
                    (true, false) => "failing",
                };
                (c.name.clone(), Value::from(state))
            })
            .collect::<Map<_, _>>();
        body.insert("checks".into(), states.into());
    }
    Verdict {
        code: if status == HealthStatus::Online {
            200
        } else {
            503
        },
        status,
        body: body.into(),
    }
}

/// The `/health` answer, JSON: for `?node=NAME` naming another node, 404
/// naming the node that answered; else the [`verdict`].
pub fn answer(shared: &Shared, node_query: Option<&str>) -> (StatusCode, String) {
    let desired = shared.desired.borrow();
    if let Some(asked) = node_query.filter(|n| !n.is_empty() && *n != desired.name) {
        let body = json!({
            "error": format!("this is node {:?}, not {:?}", desired.name, asked),
            "node": desired.name,
        });
        return (StatusCode::NOT_FOUND, body.to_string());
    }
    let v = verdict(&desired, &shared.checks.borrow());
    let code = StatusCode::from_u16(v.code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (code, v.body.to_string())
}

#[derive(Deserialize)]
struct HealthQuery {
    node: Option<String>,
}

async fn health(State(shared): State<Arc<Shared>>, Query(q): Query<HealthQuery>) -> Response {
    let (code, body) = answer(&shared, q.node.as_deref());
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = cluster_model::metrics::negotiate(accept, metrics_text(&shared));
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `/metrics`: OpenMetrics text through `prometheus-client`, read from
/// the agent's state at each scrape.
pub fn metrics_text(shared: &Shared) -> String {
    let figures = Figures {
        desired: shared.current(),
        connected: shared.is_connected(),
        checks: shared.checks.borrow().clone(),
        usage: shared.usage.borrow().clone(),
        proxy: shared.proxy.get().cloned(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(figures));
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// What one scrape shows.
#[derive(Debug)]
struct Figures {
    desired: Desired,
    connected: bool,
    checks: CheckStatus,
    usage: Option<cluster_model::Usage>,
    proxy: Option<Arc<crate::proxy::Metrics>>,
}

fn gauge(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: impl EncodeGaugeValue,
) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

impl Collector for Figures {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let offline = self.desired.offline.as_ref();
        gauge(
            &mut e,
            "cluster_agent_offline",
            "1 while the node is drained.",
            None,
            i64::from(offline.is_some()),
        )?;
        gauge(
            &mut e,
            "cluster_agent_connected",
            "1 while a session with the master is open.",
            None,
            i64::from(self.connected),
        )?;
        gauge(
            &mut e,
            "cluster_agent_generation",
            "Generation of the desired state applied.",
            None,
            self.desired.generation as i64,
        )?;
        let state = match offline {
            Some(f) if f.maintenance => "maintenance",
            Some(_) => "drained",
            None if self.checks.checks.iter().any(|c| !c.passing) => "failing",
            None => "online",
        };
        let mut m = e.encode_descriptor(
            "cluster_agent_state",
            "1 for the state the node's /health answers with, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for s in ["online", "drained", "maintenance", "failing"] {
            ConstGauge::new(i64::from(s == state)).encode(m.encode_family(&[("state", s)])?)?;
        }
        if !self.checks.checks.is_empty() {
            let mut m = e.encode_descriptor(
                "cluster_agent_check_passing",
                "1 while a local check passes (and before its first result).",
                None,
                MetricType::Gauge,
            )?;
            for c in &self.checks.checks {
                ConstGauge::new(i64::from(c.passing))
                    .encode(m.encode_family(&[("check", c.name.as_str())])?)?;
            }
        }
        if let Some(u) = &self.usage {
            usage::encode(&mut e, u)?;
        }
        match &self.proxy {
            Some(p) => p.encode(&mut e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckState;
    use crate::state::OfflineFlag;

    /// `offline`: "", "drained" or "maintenance"; `checks`: one letter per
    /// check, `+` passing, `-` failing, `?` not run yet.
    fn check(offline: &str, checks: &str, code: u16, want: Value) {
        let mut desired = Desired::initial("web-1");
        desired.offline = (!offline.is_empty()).then(|| OfflineFlag {
            reason: "deploy".into(),
            since_ms: 1_700_000_000_000,
            by: "alice".into(),
            maintenance: offline == "maintenance",
        });
        let checks = CheckStatus {
            checks: checks
                .chars()
                .zip(["app", "db", "disk"])
                .map(|(c, name)| CheckState {
                    name: name.into(),
                    kind: "http",
                    passing: c != '-',
                    ran: c != '?',
                    output: format!("{name}: 500"),
                    since_ms: 0,
                })
                .collect(),
        };
        let v = verdict(&desired, &checks);
        let case = format!("{offline:?} {checks:?}");
        assert_eq!((v.code, &v.body), (code, &want), "{case}");
        assert_eq!(v.status.as_str(), want["status"], "{case}");
        assert_eq!(status(&desired, &checks), v.status, "{case}");
    }

    /// One line per case; rustfmt would spread each over five.
    #[rustfmt::skip]
    #[test]
    fn verdicts() {
        let d = r#""reason": "deploy", "since": "2023-11-14T22:13:20.000Z""#;
        for (offline, checks, code, want) in [
            ("", "", 200, r#"{"status": "online"}"#.to_owned()),
            ("", "?", 200, r#"{"status": "online", "checks": {"app": "pending"}}"#.to_owned()),
            ("", "+?", 200, r#"{"status": "online", "checks": {"app": "passing", "db": "pending"}}"#.to_owned()),
            ("", "+-", 503, r#"{"status": "failing", "check": "db", "reason": "check db failing", "checks": {"app": "passing", "db": "failing"}}"#.to_owned()),
            ("", "?--", 503, r#"{"status": "failing", "check": "db", "reason": "check db failing", "checks": {"app": "pending", "db": "failing", "disk": "failing"}}"#.to_owned()),
            ("drained", "", 503, format!(r#"{{"status": "offline", {d}}}"#)),
            ("drained", "+", 503, format!(r#"{{"status": "offline", {d}, "checks": {{"app": "passing"}}}}"#)),
            ("drained", "?", 503, format!(r#"{{"status": "offline", {d}, "checks": {{"app": "pending"}}}}"#)),
            ("drained", "-", 503, format!(r#"{{"status": "offline", {d}, "checks": {{"app": "failing"}}}}"#)),
            ("maintenance", "", 503, format!(r#"{{"status": "maintenance", {d}}}"#)),
            ("maintenance", "+", 503, format!(r#"{{"status": "maintenance", {d}, "checks": {{"app": "passing"}}}}"#)),
            ("maintenance", "-?", 503, format!(r#"{{"status": "maintenance", {d}, "checks": {{"app": "failing", "db": "pending"}}}}"#)),
        ] {
            let mut want: Value = serde_json::from_str(&want).unwrap();
            want["node"] = "web-1".into();
            check(offline, checks, code, want);
        }
    }

    #[test]
    fn the_answer_names_the_node_that_answered_a_probe_for_another() {
        let shared = Shared::new(Desired::initial("web-1"));
        let (code, body) = answer(&shared, Some("web-2"));
        assert_eq!(code, StatusCode::NOT_FOUND);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["node"], "web-1");
        assert_eq!(body["error"], "this is node \"web-1\", not \"web-2\"");
        for asked in [None, Some(""), Some("web-1")] {
            let (code, body) = answer(&shared, asked);
            assert_eq!(
                (code, body.as_str()),
                (StatusCode::OK, r#"{"node":"web-1","status":"online"}"#)
            );
        }
    }

    #[test]
    fn metrics_show_the_complete_usage() {
        use cluster_model::{DiskIo, InterfaceUsage, Usage};
        let shared = Shared::new(Desired::initial("web-1"));
        shared.usage.send_replace(Some(Usage {
            cpu_core_percent: vec![25.0, 50.0],
            mem_available_bytes: Some(600),
            swap_free_bytes: Some(7),
            interfaces: vec![InterfaceUsage {
                name: "eth0".into(),
                rx_bytes_per_sec: 1500,
                tx_errors_per_sec: 0.2,
                ..InterfaceUsage::default()
            }],
            disk_io: vec![DiskIo {
                device: "nvme0n1".into(),
                write_bytes_per_sec: 4096,
                reads_per_sec: 2.5,
                ..DiskIo::default()
            }],
            processes: Some(123),
            uptime_secs: Some(3600),
            ..Usage::default()
        }));
        let text = metrics_text(&shared);
        for line in [
            "cluster_agent_cpu_core_usage_ratio{core=\"1\"} 0.5\n",
            "cluster_agent_memory_bytes{kind=\"available\"} 600\n",
            "cluster_agent_swap_bytes{kind=\"free\"} 7\n",
            "cluster_agent_network_interface_bytes_per_second{interface=\"eth0\",direction=\"rx\"} 1500\n",
            "cluster_agent_network_interface_errors_per_second{interface=\"eth0\",direction=\"tx\"} 0.2\n",
            "cluster_agent_disk_io_bytes_per_second{device=\"nvme0n1\",direction=\"write\"} 4096\n",
            "cluster_agent_disk_io_operations_per_second{device=\"nvme0n1\",direction=\"read\"} 2.5\n",
            "cluster_agent_processes 123\n",
            "cluster_agent_uptime_seconds 3600\n",
            "cluster_agent_cpu_usage_ratio 0.0\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn metrics_leave_out_what_an_older_sample_lacks() {
        let shared = Shared::new(Desired::initial("web-1"));
        shared
            .usage
            .send_replace(Some(cluster_model::Usage::default()));
        let text = metrics_text(&shared);
        assert!(
            text.contains("cluster_agent_memory_bytes{kind=\"used\"} 0\n"),
            "{text}"
        );
        for absent in [
            "kind=\"available\"",
            "core=",
            "interface=",
            "device=",
            "processes",
            "uptime",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }

    #[test]
    fn metrics_show_each_check() {
        let shared = Shared::new(Desired::initial("web-1"));
        assert!(!metrics_text(&shared).contains("check"));
        let mut status = CheckStatus::default();
        for (name, passing) in [("app", true), ("db", false)] {
            status.checks.push(CheckState {
                name: name.into(),
                kind: "tcp",
                passing,
                ran: true,
                output: String::new(),
                since_ms: 0,
            });
        }
        shared.checks.send_replace(status);
        let text = metrics_text(&shared);
        assert!(
            text.contains("# TYPE cluster_agent_check_passing gauge\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "cluster_agent_check_passing{check=\"app\"} 1\ncluster_agent_check_passing{check=\"db\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("cluster_agent_state{state=\"failing\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
