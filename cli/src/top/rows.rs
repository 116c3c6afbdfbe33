//! `top`'s rows, pure: one per node, made from the node as `nodes` shows
//! it, with the figures a fleet view compares — CPU, memory, swap, load
//! (per core when the `num_cpus` grain says how many), network, the
//! fullest disk — each with its level against the row's [`Levels`]; the
//! header's counts; the sort orders; and the text `--once` prints.
//!
//! `-o json` prints [`Row`] as it is: its field names are the contract
//! (the README lists them). A figure the node has not reported is
//! `null`; `alerts` counts the node's firing alerts.

use crate::client::NodeView;
use cluster_model::alerts::{Level, Levels};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub id: String,
    pub roles: Vec<String>,
    /// online, drained, maintenance, failing or down (as `nodes` says).
    pub state: &'static str,
    pub connected: bool,
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    /// `null` when the node has no swap.
    pub swap_percent: Option<f64>,
    pub load1: Option<f64>,
    /// From the `num_cpus` grain.
    pub cores: Option<u64>,
    pub load1_per_core: Option<f64>,
    pub net_rx_bytes_per_sec: Option<u64>,
    pub net_tx_bytes_per_sec: Option<u64>,
    /// The fullest disk: its use in % and its mount point.
    pub disk_percent: Option<f64>,
    pub disk_mount: Option<String>,
    /// Firing alerts on the node.
    pub alerts: u32,
    /// Each reported figure's level: ok, careful, warning, critical.
    pub levels: BTreeMap<&'static str, Level>,
    /// The lines the levels come from: the defaults, until the master
    /// sends each node's own.
    #[serde(skip)]
    pub thresholds: Levels,
}

fn percent(used: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| used as f64 * 100.0 / total as f64)
}

impl Row {
    pub fn of(n: &NodeView, thresholds: Levels) -> Row {
        let u = n.usage.as_ref();
        let cores = n
            .grains
            .get("num_cpus")
            .and_then(serde_json::Value::as_u64)
            .filter(|c| *c > 0);
        let load1 = u.map(|u| u.load[0]);
        let fullest = u.and_then(|u| {
            u.disks
                .iter()
                .filter_map(|d| {
                    percent(
                        d.total_bytes.saturating_sub(d.available_bytes),
                        d.total_bytes,
                    )
                    .map(|p| (p, d.mount.clone()))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
        });
        let mut row = Row {
            name: n.name.clone(),
            id: n.id.clone(),
            roles: n.roles.clone(),
            state: n.state,
            connected: n.connected,
            cpu_percent: u.map(|u| u.cpu_percent),
            memory_percent: u.and_then(|u| percent(u.mem_used_bytes, u.mem_total_bytes)),
            swap_percent: u.and_then(|u| percent(u.swap_used_bytes, u.swap_total_bytes)),
            load1,
            cores,
            load1_per_core: load1.zip(cores).map(|(l, c)| l / c as f64),
            net_rx_bytes_per_sec: u.map(|u| u.net_rx_bytes_per_sec),
            net_tx_bytes_per_sec: u.map(|u| u.net_tx_bytes_per_sec),
            disk_percent: fullest.as_ref().map(|f| f.0),
            disk_mount: fullest.map(|f| f.1),
            alerts: n.alerts.len() as u32,
            levels: BTreeMap::new(),
            thresholds,
        };
        row.levels = row.compute_levels();
        row
    }

    fn compute_levels(&self) -> BTreeMap<&'static str, Level> {
        let t = &self.thresholds;
        let figures = [
            ("cpu", self.cpu_percent, &t.cpu),
            ("memory", self.memory_percent, &t.memory),
            ("swap", self.swap_percent, &t.swap),
            // Load is judged per core, as glances does; without the count
            // it has no level.
            ("load", self.load1_per_core, &t.load),
            ("disk", self.disk_percent, &t.disk),
            (
                "net_rx",
                self.net_rx_bytes_per_sec.map(|b| b as f64),
                &t.net_rx,
            ),
            (
                "net_tx",
                self.net_tx_bytes_per_sec.map(|b| b as f64),
                &t.net_tx,
            ),
        ];
        figures
            .into_iter()
            .filter_map(|(k, v, l)| v.map(|v| (k, l.level(v))))
            .collect()
    }

    pub fn level(&self, figure: &str) -> Option<Level> {
        self.levels.get(figure).copied()
    }
}

/// The header's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub total: usize,
    pub up: usize,
    pub down: usize,
    /// Drained or in maintenance.
    pub drained: usize,
}

pub fn counts(rows: &[Row]) -> Counts {
    let down = rows.iter().filter(|r| r.state == "down").count();
    Counts {
        total: rows.len(),
        up: rows.len() - down,
        down,
        drained: rows
            .iter()
            .filter(|r| matches!(r.state, "drained" | "maintenance"))
            .count(),
    }
}

/// What the rows are ordered by. Figures sort the highest first, names
/// from a to z; reversed, the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Cpu,
    Memory,
    Load,
    Network,
    Disk,
    Name,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Cpu => "cpu",
            Sort::Memory => "memory",
            Sort::Load => "load",
            Sort::Network => "network",
            Sort::Disk => "disk",
            Sort::Name => "name",
        }
    }

    fn figure(self, r: &Row) -> Option<f64> {
        match self {
            Sort::Cpu => r.cpu_percent,
            Sort::Memory => r.memory_percent,
            Sort::Load => r.load1_per_core.or(r.load1),
            Sort::Network => r
                .net_rx_bytes_per_sec
                .zip(r.net_tx_bytes_per_sec)
                .map(|(rx, tx)| (rx + tx) as f64),
            Sort::Disk => r.disk_percent,
            Sort::Name => None,
        }
    }
}

/// Orders `rows` by `sort`; rows without the figure come last, ties by
/// name. `reverse` turns the whole order round.
pub fn sort(rows: &mut [Row], by: Sort, reverse: bool) {
    rows.sort_by(|a, b| {
        let order = match by {
            Sort::Name => std::cmp::Ordering::Equal,
            _ => match (by.figure(a), by.figure(b)) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
        };
        order.then_with(|| a.name.cmp(&b.name))
    });
    if reverse {
        rows.reverse();
    }
}

/// The columns, for the text table and the screen alike.
pub const COLUMNS: [&str; 12] = [
    "NAME", "ROLES", "STATE", "CPU%", "MEM%", "SWAP%", "LOAD1", "/CORE", "RX/s", "TX/s", "DISK%",
    "ALERTS",
];

/// Which level colours each column (none for the others).
pub const COLUMN_LEVELS: [Option<&str>; 12] = [
    None,
    None,
    None,
    Some("cpu"),
    Some("memory"),
    Some("swap"),
    Some("load"),
    Some("load"),
    Some("net_rx"),
    Some("net_tx"),
    Some("disk"),
    None,
];

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

/// Bytes per second, short: 512, 12.3K, 4.5M, 1.2G.
pub fn rate(v: Option<u64>) -> String {
    let Some(b) = v else { return "-".into() };
    let b = b as f64;
    match b {
        b if b >= 1e9 => format!("{:.1}G", b / 1e9),
        b if b >= 1e6 => format!("{:.1}M", b / 1e6),
        b if b >= 1e3 => format!("{:.1}K", b / 1e3),
        b => format!("{b:.0}"),
    }
}

pub fn cells(r: &Row) -> [String; 12] {
    [
        r.name.clone(),
        if r.roles.is_empty() {
            "-".into()
        } else {
            r.roles.join(",")
        },
        r.state.to_owned(),
        pct(r.cpu_percent),
        pct(r.memory_percent),
        pct(r.swap_percent),
        r.load1.map_or_else(|| "-".into(), |l| format!("{l:.2}")),
        r.load1_per_core
            .map_or_else(|| "-".into(), |l| format!("{l:.2}")),
        rate(r.net_rx_bytes_per_sec),
        rate(r.net_tx_bytes_per_sec),
        pct(r.disk_percent),
        match r.alerts {
            0 => "-".into(),
            n => n.to_string(),
        },
    ]
}

/// The plain table `--once` prints: columns padded to their widest cell.
pub fn text(rows: &[Row]) -> String {
    let body: Vec<[String; 12]> = rows.iter().map(cells).collect();
    let mut widths = COLUMNS.map(str::len);
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(&format!("{:<w$}", cluster_model::limits::printable(c)));
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&COLUMNS.map(str::to_owned));
    for r in &body {
        out.push_str(&line(r));
    }
    out
}
