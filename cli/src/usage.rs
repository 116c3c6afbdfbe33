//! `clusterctl usage NODE` (a node's usage over the last hour, from the
//! history its master keeps) and `clusterctl alerts [TARGET]` (what is
//! firing).

use crate::args::{Output, TargetFlags};
use crate::client::{AlertView, Client, Targeting};
use crate::commands::{print_json, write_out};
use crate::{Failure, render};
use clap::Args as ClapArgs;
use cluster_model::time::rfc3339;
use cluster_proto as pb;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

#[derive(ClapArgs, Debug)]
pub struct UsageArgs {
    /// The node (name or id).
    pub node: String,
    /// How far back (`10m`, `1h`); the master keeps an hour by default.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub since: Duration,
}

#[derive(ClapArgs, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub how: TargetFlags,
    /// Only these nodes' alerts (names or globs), or one expression with a
    /// target flag.
    pub target: Vec<String>,
}

/// One sample, as `-o json` shows it.
#[derive(Debug, Serialize)]
pub struct SampleView {
    pub at: String,
    pub at_ms: u64,
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub swap_percent: f64,
    pub disk_percent: f64,
    pub load1: f64,
    pub net_rx_bytes_per_sec: u64,
    pub net_tx_bytes_per_sec: u64,
}

#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub node: String,
    /// How much the master keeps.
    pub window_ms: u64,
    pub samples: Vec<SampleView>,
}

impl From<pb::UsageHistoryResponse> for HistoryView {
    fn from(r: pb::UsageHistoryResponse) -> HistoryView {
        HistoryView {
            node: r.node,
            window_ms: r.window_ms,
            samples: r
                .samples
                .into_iter()
                .map(|s| SampleView {
                    at: rfc3339(s.at_ms),
                    at_ms: s.at_ms,
                    cpu_percent: s.cpu_percent,
                    memory_percent: s.memory_percent,
                    swap_percent: s.swap_percent,
                    disk_percent: s.disk_percent,
                    load1: s.load1,
                    net_rx_bytes_per_sec: s.net_rx_bytes_per_sec,
                    net_tx_bytes_per_sec: s.net_tx_bytes_per_sec,
                })
                .collect(),
        }
    }
}

/// Eight levels of a bar, for a column's sparkline.
fn spark(values: impl Iterator<Item = f64>, top: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .map(|v| {
            BARS[((v / top.max(f64::MIN_POSITIVE)) * 7.0)
                .round()
                .clamp(0.0, 7.0) as usize]
        })
        .collect()
}

fn rate(b: u64) -> String {
    match b {
        0..1_000 => format!("{b}B/s"),
        1_000..1_000_000 => format!("{:.1}kB/s", b as f64 / 1e3),
        _ => format!("{:.1}MB/s", b as f64 / 1e6),
    }
}

/// The samples, newest last, under a line of sparklines (at most the
/// newest 60 columns).
pub fn history_text(h: &HistoryView) -> String {
    if h.samples.is_empty() {
        return format!(
            "{}: no usage reported in that time (the master keeps {})\n",
            h.node,
            humantime::format_duration(Duration::from_millis(h.window_ms))
        );
    }
    let tail = &h.samples[h.samples.len().saturating_sub(60)..];
    let mut out = format!(
        "{}: {} samples from {} to {}\n",
        h.node,
        h.samples.len(),
        h.samples[0].at,
        h.samples[h.samples.len() - 1].at
    );
    for (name, values, top) in [
        (
            "cpu",
            tail.iter().map(|s| s.cpu_percent).collect::<Vec<_>>(),
            100.0,
        ),
        (
            "memory",
            tail.iter().map(|s| s.memory_percent).collect(),
            100.0,
        ),
        ("disk", tail.iter().map(|s| s.disk_percent).collect(), 100.0),
    ] {
        let last = values.last().copied().unwrap_or_default();
        let max = values.iter().copied().fold(0.0, f64::max);
        out += &format!(
            "{name:<7} {} now {last:.0}%, max {max:.0}%\n",
            spark(values.into_iter(), top)
        );
    }
    out.push('\n');
    let mut t = render::plain_table(&["TIME", "CPU", "MEMORY", "SWAP", "DISK", "LOAD", "RX", "TX"]);
    for s in &h.samples {
        t.add_row(vec![
            s.at.clone(),
            format!("{:.1}%", s.cpu_percent),
            format!("{:.1}%", s.memory_percent),
            format!("{:.1}%", s.swap_percent),
            format!("{:.1}%", s.disk_percent),
            format!("{:.2}", s.load1),
            rate(s.net_rx_bytes_per_sec),
            rate(s.net_tx_bytes_per_sec),
        ]);
    }
    out + &render::finish_table(&t)
}

pub async fn usage(
    client: &mut Client,
    args: &UsageArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let since = cluster_model::time::now_ms().saturating_sub(args.since.as_millis() as u64);
    let h = HistoryView::from(client.usage_history(&args.node, since).await?);
    match output {
        Output::Json => print_json(out, &h),
        Output::Table => write_out(out, &history_text(&h)),
    }
}

pub fn alerts_text(alerts: &[AlertView], now_ms: u64) -> String {
    if alerts.is_empty() {
        return "no alerts firing\n".into();
    }
    let mut t = render::plain_table(&["NODE", "ALERT", "SEVERITY", "VALUE", "LINE", "SINCE"]);
    for a in alerts {
        let metric: cluster_model::alerts::Metric = a
            .metric
            .parse()
            .unwrap_or(cluster_model::alerts::Metric::Cpu);
        t.add_row(vec![
            a.node.clone(),
            match a.device.as_str() {
                "" => a.metric.clone(),
                d => format!("{} {d}", a.metric),
            },
            a.severity.clone(),
            metric.show(a.value),
            metric.show(a.threshold),
            render::ago(now_ms, a.since_ms),
        ]);
    }
    render::finish_table(&t)
}

pub async fn alerts(
    client: &mut Client,
    targeting: &Targeting,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let nodes = client.nodes(targeting).await?;
    let mut all: Vec<AlertView> = nodes.into_iter().flat_map(|n| n.alerts).collect();
    all.sort_by(|a, b| b.since_ms.cmp(&a.since_ms).then(a.node.cmp(&b.node)));
    match output {
        Output::Json => print_json(out, &all),
        Output::Table => write_out(out, &alerts_text(&all, crate::commands::now_ms())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_top() {
        assert_eq!(spark([0.0, 50.0, 100.0, 150.0].into_iter(), 100.0), "▁▅██");
    }

    #[test]
    fn an_empty_history_says_how_much_is_kept() {
        let h = HistoryView {
            node: "web-1".into(),
            window_ms: 3_600_000,
            samples: vec![],
        };
        assert_eq!(
            history_text(&h),
            "web-1: no usage reported in that time (the master keeps 1h)\n"
        );
    }
}
