//! The usage part of `/metrics`: the last sample the session sent, as
//! gauges. Figures all cores share have no label; the rest carry `core`,
//! `interface`, `device` or `mount`, and `direction` (`rx`/`tx`,
//! `read`/`write`) or `kind`. A list the sample has empty, and a figure it
//! did not have, writes no family.

use super::gauge;
use cluster_model::Usage;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use std::fmt::Result;

/// One gauge family: `series` are its label pairs and values.
fn family<'a, V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = ([(&'a str, &'a str); 2], V)>,
) -> Result {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(super) fn encode(e: &mut DescriptorEncoder<'_>, u: &Usage) -> Result {
    let ratio = Unit::Other("ratio".to_owned());
    gauge(
        e,
        "cluster_agent_cpu_usage",
        "CPU use of all the node's cores, at the last sample.",
        Some(&ratio),
        u.cpu_percent / 100.0,
    )?;
    if !u.cpu_core_percent.is_empty() {
        let mut m = e.encode_descriptor(
            "cluster_agent_cpu_core_usage",
            "CPU use of each core, at the last sample.",
            Some(&ratio),
            MetricType::Gauge,
        )?;
        for (core, v) in u.cpu_core_percent.iter().enumerate() {
            ConstGauge::new(v / 100.0).encode(m.encode_family(&[("core", core.to_string())])?)?;
        }
    }
    for (name, v) in [
        ("cluster_agent_load1", u.load[0]),
        ("cluster_agent_load5", u.load[1]),
        ("cluster_agent_load15", u.load[2]),
    ] {
        gauge(e, name, "The node's load average.", None, v)?;
    }
    let mut m = e.encode_descriptor(
        "cluster_agent_memory",
        "Memory: total, used, and available (what can be allocated without swapping).",
        Some(&Unit::Bytes),
        MetricType::Gauge,
    )?;
    let memory = [
        ("total", Some(u.mem_total_bytes)),
        ("used", Some(u.mem_used_bytes)),
        ("available", u.mem_available_bytes),
    ];
    for (kind, v) in memory {
        if let Some(v) = v {
            ConstGauge::new(v as i64).encode(m.encode_family(&[("kind", kind)])?)?;
        }
    }
    let mut m = e.encode_descriptor(
        "cluster_agent_swap",
        "Swap: total, used and free.",
        Some(&Unit::Bytes),
        MetricType::Gauge,
    )?;
    let swap = [
        ("total", Some(u.swap_total_bytes)),
        ("used", Some(u.swap_used_bytes)),
        ("free", u.swap_free_bytes),
    ];
    for (kind, v) in swap {
        if let Some(v) = v {
            ConstGauge::new(v as i64).encode(m.encode_family(&[("kind", kind)])?)?;
        }
    }
    let bytes_per_second = Unit::Other("bytes_per_second".to_owned());
    let mut m = e.encode_descriptor(
        "cluster_agent_network",
        "Network bytes per second over the last report interval, received (rx) and sent (tx).",
        Some(&bytes_per_second),
        MetricType::Gauge,
    )?;
    for (direction, v) in [
        ("rx", u.net_rx_bytes_per_sec),
        ("tx", u.net_tx_bytes_per_sec),
    ] {
        ConstGauge::new(v as i64).encode(m.encode_family(&[("direction", direction)])?)?;
    }
    interfaces(e, u, &bytes_per_second)?;
    disk_io(e, u, &bytes_per_second)?;
    if !u.disks.is_empty() {
        let mut m = e.encode_descriptor(
            "cluster_agent_filesystem_size",
            "A mounted filesystem's size.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for d in &u.disks {
            ConstGauge::new(d.total_bytes as i64)
                .encode(m.encode_family(&[("mount", d.mount.as_str())])?)?;
        }
        let mut m = e.encode_descriptor(
            "cluster_agent_filesystem_available",
            "A mounted filesystem's space available.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for d in &u.disks {
            ConstGauge::new(d.available_bytes as i64)
                .encode(m.encode_family(&[("mount", d.mount.as_str())])?)?;
        }
    }
    if let Some(n) = u.processes {
        gauge(
            e,
            "cluster_agent_processes",
            "Processes running on the node.",
            None,
            n as i64,
        )?;
    }
    if let Some(s) = u.uptime_secs {
        gauge(
            e,
            "cluster_agent_uptime",
            "Time since the node booted.",
            Some(&Unit::Seconds),
            s as i64,
        )?;
    }
    gauge(
        e,
        "cluster_agent_usage_sampled_timestamp",
        "When the usage above was sampled (Unix time).",
        Some(&Unit::Seconds),
        u.sampled_at_ms as f64 / 1000.0,
    )
}

/// Each interface's bytes, packets and errors per second.
fn interfaces(e: &mut DescriptorEncoder<'_>, u: &Usage, bytes_per_second: &Unit) -> Result {
    if u.interfaces.is_empty() {
        return Ok(());
    }
    family(
        e,
        "cluster_agent_network_interface",
        "An interface's bytes per second over the last report interval, received (rx) and sent (tx).",
        Some(bytes_per_second),
        u.interfaces.iter().flat_map(|i| {
            [
                (
                    [("interface", i.name.as_str()), ("direction", "rx")],
                    i.rx_bytes_per_sec as i64,
                ),
                (
                    [("interface", i.name.as_str()), ("direction", "tx")],
                    i.tx_bytes_per_sec as i64,
                ),
            ]
        }),
    )?;
    family(
        e,
        "cluster_agent_network_interface",
        "An interface's packets per second over the last report interval, received (rx) and sent (tx).",
        Some(&Unit::Other("packets_per_second".to_owned())),
        u.interfaces.iter().flat_map(|i| {
            [
                (
                    [("interface", i.name.as_str()), ("direction", "rx")],
                    i.rx_packets_per_sec,
                ),
                (
                    [("interface", i.name.as_str()), ("direction", "tx")],
                    i.tx_packets_per_sec,
                ),
            ]
        }),
    )?;
    family(
        e,
        "cluster_agent_network_interface",
        "An interface's errors per second over the last report interval, receiving (rx) and sending (tx).",
        Some(&Unit::Other("errors_per_second".to_owned())),
        u.interfaces.iter().flat_map(|i| {
            [
                (
                    [("interface", i.name.as_str()), ("direction", "rx")],
                    i.rx_errors_per_sec,
                ),
                (
                    [("interface", i.name.as_str()), ("direction", "tx")],
                    i.tx_errors_per_sec,
                ),
            ]
        }),
    )
}

/// Each block device's bytes and operations per second.
fn disk_io(e: &mut DescriptorEncoder<'_>, u: &Usage, bytes_per_second: &Unit) -> Result {
    if u.disk_io.is_empty() {
        return Ok(());
    }
    family(
        e,
        "cluster_agent_disk_io",
        "A block device's bytes read and written per second over the last report interval.",
        Some(bytes_per_second),
        u.disk_io.iter().flat_map(|d| {
            [
                (
                    [("device", d.device.as_str()), ("direction", "read")],
                    d.read_bytes_per_sec as i64,
                ),
                (
                    [("device", d.device.as_str()), ("direction", "write")],
                    d.write_bytes_per_sec as i64,
                ),
            ]
        }),
    )?;
    family(
        e,
        "cluster_agent_disk_io",
        "A block device's reads and writes completed per second over the last report interval.",
        Some(&Unit::Other("operations_per_second".to_owned())),
        u.disk_io.iter().flat_map(|d| {
            [
                (
                    [("device", d.device.as_str()), ("direction", "read")],
                    d.reads_per_sec,
                ),
                (
                    [("device", d.device.as_str()), ("direction", "write")],
                    d.writes_per_sec,
                ),
            ]
        }),
    )
}
