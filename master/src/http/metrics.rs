//! `GET /metrics`: the master's figures in OpenMetrics text, through the
//! `prometheus-client` crate, read from the cluster at each scrape (a
//! collector: nothing is kept twice), with the counters of what was done
//! through this master; Prometheus's 0.0.4 text for a client that does not
//! ask for OpenMetrics. Names, types and units pass `promtool check
//! metrics`.

use super::Http;
use crate::cluster::Cluster;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cluster_model::time::now_ms;
use cluster_model::{NodeState, metrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::fmt;
use std::sync::Arc;

pub async fn metrics(State(http): State<Http>, headers: axum::http::HeaderMap) -> Response {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures(http.cluster.clone())));
    http.cluster.counters.register(&mut registry);
    if let Some(n) = &http.notifier {
        n.register(&mut registry);
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let (content_type, body) = metrics::negotiate(accept, text);
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        )
            .into_response(),
    }
}

/// The cluster as it is at the scrape.
struct Figures(Arc<Cluster>);

impl fmt::Debug for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Figures")
    }
}

/// Prometheus's unit for a fraction (0–1): `_ratio`.
pub fn ratio() -> Unit {
    Unit::Other("ratio".to_owned())
}

/// One gauge without labels.
fn gauge(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: impl prometheus_client::encoding::EncodeGaugeValue,
) -> fmt::Result {
    let m = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

impl Collector for Figures {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let cluster = &self.0;
        let nodes = cluster.nodes(&[]).unwrap_or_default();
        let mut m = e.encode_descriptor(
            "cluster_nodes",
            "Nodes by state (a node failing a local check is failing, not online).",
            None,
            MetricType::Gauge,
        )?;
        for s in NodeState::ALL {
            let n = nodes.iter().filter(|n| n.state == s).count() as i64;
            ConstGauge::new(n).encode(m.encode_family(&[("state", s.as_str())])?)?;
        }
        let mut m = e.encode_descriptor(
            "cluster_alerts_firing",
            "Alerts firing now, by metric and severity (every master shows the stored ones).",
            None,
            MetricType::Gauge,
        )?;
        let mut firing: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
        for a in nodes.iter().flat_map(|n| &n.alerts) {
            *firing
                .entry((a.metric.as_str(), a.severity.as_str()))
                .or_default() += 1;
        }
        for ((metric, severity), n) in firing {
            ConstGauge::new(n)
                .encode(m.encode_family(&[("metric", metric), ("severity", severity)])?)?;
        }
        let connected = nodes.iter().filter(|n| n.connected).count() as i64;
        gauge(
            &mut e,
            "cluster_sessions",
            "Agents connected now.",
            None,
            connected,
        )?;
        gauge(
            &mut e,
            "cluster_generation",
            "Generation of the desired state.",
            None,
            cluster.generation() as i64,
        )?;
        let role = cluster.role().borrow().clone();
        let leads = matches!(role, crate::store::Role::Leader { .. });
        let mut m = e.encode_descriptor(
            "cluster_master_leader",
            "Whether this master leads (makes every commit).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(leads))
            .encode(m.encode_family(&[("master", cluster.name())])?)?;
        gauge(
            &mut e,
            "cluster_master_epoch",
            "The leadership served under (the leader's fence revision).",
            None,
            role.epoch() as i64,
        )?;
        gauge(
            &mut e,
            "cluster_store_followed_revision",
            "The store revision this master has followed.",
            None,
            cluster.followed() as i64,
        )?;
        let mut m = e.encode_descriptor(
            "cluster_commit",
            "How long commits take: in the store (via=\"store\"), or a standby's through the leader (via=\"leader\").",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        let latency = cluster.commit_latency();
        for (via, h) in [("store", &latency.store), ("leader", &latency.leader)] {
            let (buckets, total, sum) = h.snapshot();
            // The encoder sums the buckets itself (+Inf among them); it wants each bucket's
            // own count, not the running total.
            let mut own = Vec::with_capacity(buckets.len() + 1);
            let mut before = 0;
            for (bound, cumulative) in buckets {
                own.push((bound, cumulative - before));
                before = cumulative;
            }
            own.push((f64::INFINITY, total - before));
            m.encode_family(&[("via", via)])?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum, total, &own, None,
                )?;
        }
        let now = now_ms();
        let mut m = e.encode_descriptor(
            "cluster_node_last_seen_age",
            "How long ago the node's agent was last heard from.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for n in &nodes {
            let age = now.saturating_sub(n.last_seen_ms) as f64 / 1000.0;
            ConstGauge::new(age).encode(m.encode_family(&[("node", n.node.name.as_str())])?)?;
        }
        let ratio = ratio();
        let mut m = e.encode_descriptor(
            "cluster_node_cpu_usage",
            "The node's CPU use, of all its cores, at its last report.",
            Some(&ratio),
            MetricType::Gauge,
        )?;
        for n in &nodes {
            if let Some(u) = &n.usage {
                ConstGauge::new(u.cpu_percent / 100.0)
                    .encode(m.encode_family(&[("node", n.node.name.as_str())])?)?;
            }
        }
        // A gauge of 1, not OpenMetrics' info type, which promtool's
        // parser does not know.
        let mut m = e.encode_descriptor(
            "cluster_master_build_info",
            "The master's build: its version.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1).encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        Ok(())
    }
}
