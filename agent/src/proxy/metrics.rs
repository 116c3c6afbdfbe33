//! The proxy's figures for the agent's `/metrics`: requests by upstream and
//! status code, how long they took, and the tries that failed.
//!
//! Kept with atomics: each [`super::upstream::Upstream`] owns its
//! [`UpstreamMetrics`] for its whole life (across configurations, like its
//! servers), so a request records into the upstream it routed to with a
//! couple of relaxed additions — no lock, no label lookup, no allocation.
//! A request the proxy answers before choosing an upstream (no route, a
//! forbidden path, `/health`, a head it cannot read) records into
//! [`Metrics::local`], shown with `upstream=""`, a name no configured
//! upstream has. A request routed to an upstream counts there whatever
//! answered it, the proxy's own 502 or 504 after failed tries included: an
//! upstream's error rate then shows its outage.
//!
//! The status label is the exact code, not its class: `429` and `404`, or
//! `502` and `503`, call for different people, and a class is one regex
//! away in a query (`code=~"5.."`). Cardinality stays bounded — upstream
//! names come from the master's configuration, codes from 100 to 599
//! (anything else a backend sends is counted as `other`) — and a code no
//! request got writes no series.
//!
//! The duration runs from the request's head read to its response's last
//! byte written (nginx's `$request_time`): a slow download or a slow client
//! shows in it.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Unit;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// Upper bounds of the duration buckets, in microseconds.
const BUCKETS_MICROS: [u64; 15] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Status codes counted one by one: 100 to 599; one more slot for the rest.
const FIRST_CODE: u16 = 100;
const CODES: usize = 500;

/// How a try on a server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TryError {
    /// Refused, unreachable: the request was not sent.
    Connect,
    /// No connection within `Timeouts::connect`.
    ConnectTimeout,
    /// Sent, and no usable response head came back.
    Response,
    /// Sent, and no response head within `Timeouts::response_head`.
    ResponseTimeout,
}

impl TryError {
    const ALL: [TryError; 4] = [
        TryError::Connect,
        TryError::ConnectTimeout,
        TryError::Response,
        TryError::ResponseTimeout,
    ];

    fn as_str(self) -> &'static str {
        match self {
            TryError::Connect => "connect",
            TryError::ConnectTimeout => "connect_timeout",
            TryError::Response => "response",
            TryError::ResponseTimeout => "response_timeout",
        }
    }
}

/// One upstream's figures (or the proxy's own answers').
pub(super) struct UpstreamMetrics {
    name: Box<str>,
    /// Responses by status code, `CODES` for one outside 100–599.
    codes: [AtomicU64; CODES + 1],
    /// Requests whose duration is at or below each bucket's bound (not
    /// cumulative); the last slot is above the last bound.
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
    /// Failed tries, by [`TryError`] in `TryError::ALL`'s order.
    errors: [AtomicU64; TryError::ALL.len()],
}

impl UpstreamMetrics {
    pub fn new(name: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            name: name.into(),
            codes: [const { AtomicU64::new(0) }; CODES + 1],
            buckets: [const { AtomicU64::new(0) }; BUCKETS_MICROS.len() + 1],
            sum_micros: AtomicU64::new(0),
            errors: [const { AtomicU64::new(0) }; TryError::ALL.len()],
        }
    }

    /// A request answered with `code`, `took` long.
    pub fn record(&self, code: u16, took: Duration) {
        let slot = usize::from(code.wrapping_sub(FIRST_CODE)).min(CODES);
        self.codes[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MICROS.partition_point(|b| *b < micros);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn failed(&self, why: TryError) {
        self.errors[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests recorded, by code: `(code, count)` for the codes seen.
    fn codes(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.codes.iter().enumerate().filter_map(|(i, n)| {
            let n = n.load(Ordering::Relaxed);
            let code = match i {
                CODES => "other".to_owned(),
                i => (i + usize::from(FIRST_CODE)).to_string(),
            };
            (n > 0).then_some((code, n))
        })
    }
}

/// Every upstream's figures, for a scrape.
pub struct Metrics {
    /// The proxy's own answers, before an upstream was chosen.
    pub(super) local: Arc<UpstreamMetrics>,
    /// The configured upstreams', sorted by name; replaced by each
    /// configuration (an upstream it drops stops being shown).
    upstreams: RwLock<Vec<Arc<UpstreamMetrics>>>,
    /// The access log's dropped lines, when it is on.
    pub(super) access_log_dropped: OnceLock<Arc<AtomicU64>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<Box<str>> = self.all().iter().map(|u| u.name.clone()).collect();
        f.debug_struct("Metrics")
            .field("upstreams", &names)
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            local: Arc::new(UpstreamMetrics::new("")),
            upstreams: RwLock::default(),
            access_log_dropped: OnceLock::new(),
        }
    }
}

impl Metrics {
    pub(super) fn set_upstreams(&self, mut upstreams: Vec<Arc<UpstreamMetrics>>) {
        upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        *self.upstreams.write().expect("proxy metrics") = upstreams;
    }

    /// The proxy's own, then the upstreams'.
    fn all(&self) -> Vec<Arc<UpstreamMetrics>> {
        let upstreams = self.upstreams.read().expect("proxy metrics");
        std::iter::once(self.local.clone())
            .chain(upstreams.iter().cloned())
            .collect()
    }

    /// Writes `cluster_agent_proxy_requests_total{upstream,code}`,
    /// `cluster_agent_proxy_request_seconds{upstream}` and
    /// `cluster_agent_proxy_upstream_errors_total{upstream,kind}` and, with
    /// the access log on, `cluster_agent_proxy_access_log_dropped_total`.
    pub fn encode(&self, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let all = self.all();
        let mut m = e.encode_descriptor(
            "cluster_agent_proxy_requests",
            "Requests the proxy answered, by upstream (\"\": answered before choosing one) and status code.",
            None,
            MetricType::Counter,
        )?;
        for u in &all {
            for (code, n) in u.codes() {
                let labels = [("upstream", &*u.name), ("code", code.as_str())];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = e.encode_descriptor(
            "cluster_agent_proxy_request",
            "How long the proxy took over requests, from the request's head read to the response's last byte written, by upstream.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for u in &all {
            let buckets: Vec<(f64, u64)> = BUCKETS_MICROS
                .iter()
                .map(|b| *b as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(&u.buckets)
                .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
                .collect();
            let count = buckets.iter().map(|(_, n)| n).sum();
            let sum = u.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            m.encode_family(&[("upstream", &*u.name)])?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        let mut m = e.encode_descriptor(
            "cluster_agent_proxy_upstream_errors",
            "Tries on an upstream's servers that failed, by how: connect, connect_timeout, response (none, or not HTTP), response_timeout.",
            None,
            MetricType::Counter,
        )?;
        for u in &all {
            for (kind, n) in TryError::ALL.iter().zip(&u.errors) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let labels = [("upstream", &*u.name), ("kind", kind.as_str())];
                    ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        if let Some(dropped) = self.access_log_dropped.get() {
            let m = e.encode_descriptor(
                "cluster_agent_proxy_access_log_dropped",
                "Access log lines dropped because the writer had fallen behind (its queue full).",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(dropped.load(Ordering::Relaxed)).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::collector::Collector;
    use prometheus_client::registry::Registry;

    #[derive(Debug)]
    struct Scrape(Arc<Metrics>);

    impl Collector for Scrape {
        fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
            self.0.encode(&mut e)
        }
    }

    fn text(metrics: &Arc<Metrics>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(metrics.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn requests_are_counted_by_code_and_timed_into_their_buckets() {
        let metrics = Arc::new(Metrics::default());
        let app = Arc::new(UpstreamMetrics::new("app"));
        metrics.set_upstreams(vec![app.clone()]);
        let ms = Duration::from_millis;
        for (code, took) in [(200, ms(0)), (200, ms(3)), (503, ms(20)), (999, ms(60_000))] {
            app.record(code, took);
        }
        app.failed(TryError::Connect);
        app.failed(TryError::Connect);
        app.failed(TryError::ResponseTimeout);
        metrics.local.record(404, Duration::from_micros(250));
        let text = text(&metrics);
        for line in [
            "cluster_agent_proxy_requests_total{upstream=\"\",code=\"404\"} 1\n",
            "cluster_agent_proxy_requests_total{upstream=\"app\",code=\"200\"} 2\n",
            "cluster_agent_proxy_requests_total{upstream=\"app\",code=\"503\"} 1\n",
            "cluster_agent_proxy_requests_total{upstream=\"app\",code=\"other\"} 1\n",
            "# TYPE cluster_agent_proxy_request_seconds histogram\n",
            "cluster_agent_proxy_request_seconds_bucket{le=\"0.00025\",upstream=\"\"} 1\n",
            "cluster_agent_proxy_request_seconds_bucket{le=\"0.00025\",upstream=\"app\"} 1\n",
            "cluster_agent_proxy_request_seconds_bucket{le=\"0.005\",upstream=\"app\"} 2\n",
            "cluster_agent_proxy_request_seconds_bucket{le=\"0.025\",upstream=\"app\"} 3\n",
            "cluster_agent_proxy_request_seconds_bucket{le=\"10.0\",upstream=\"app\"} 3\n",
            "cluster_agent_proxy_request_seconds_bucket{le=\"+Inf\",upstream=\"app\"} 4\n",
            "cluster_agent_proxy_request_seconds_count{upstream=\"app\"} 4\n",
            "cluster_agent_proxy_request_seconds_sum{upstream=\"app\"} 60.023\n",
            "cluster_agent_proxy_upstream_errors_total{upstream=\"app\",kind=\"connect\"} 2\n",
            "cluster_agent_proxy_upstream_errors_total{upstream=\"app\",kind=\"response_timeout\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        for absent in ["code=\"100\"", "kind=\"response\"", "connect_timeout\"}"] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }

    #[test]
    fn an_upstream_no_longer_configured_is_not_shown() {
        let metrics = Arc::new(Metrics::default());
        let old = Arc::new(UpstreamMetrics::new("old"));
        metrics.set_upstreams(vec![old.clone()]);
        old.record(200, Duration::ZERO);
        assert!(text(&metrics).contains("upstream=\"old\""));
        metrics.set_upstreams(Vec::new());
        old.record(200, Duration::ZERO);
        let text = text(&metrics);
        assert!(!text.contains("upstream=\"old\""), "{text}");
        assert!(text.contains("_count{upstream=\"\"} 0\n"), "{text}");
    }
}
