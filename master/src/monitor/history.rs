//! Every node's usage over the last hour (by default), in memory: what
//! `clusterctl usage`, `top` and the dashboard's graphs read.
//!
//! A sample is 24 bytes — seconds since the node's first sample, CPU,
//! memory, swap and the fullest disk in hundredths of a percent, the
//! 1-minute load in hundredths, network bytes per second each way — kept
//! in a ring per node sized from the spacing of the node's reports, so
//! 10,000 nodes reporting every 5 s hold an hour in about 165 MiB.
//! Nothing here is stored: a restarted master starts a new history (as
//! glances and `top` do), and with several masters each keeps its own
//! from what it sees of every node.

use cluster_model::{NodeId, Usage};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// One sample, packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    /// Seconds after the ring's `base_ms`.
    at_s: u32,
    cpu: u16,
    memory: u16,
    swap: u16,
    disk: u16,
    load1: u16,
    rx: u32,
    tx: u32,
}

/// One sample as it is served.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    /// Percent of all cores.
    pub cpu_percent: f64,
    pub memory_percent: f64,
    /// 0 when the node has no swap.
    pub swap_percent: f64,
    /// The fullest mount point's share used.
    pub disk_percent: f64,
    pub load1: f64,
    pub net_rx_bytes_per_sec: u64,
    pub net_tx_bytes_per_sec: u64,
}

fn hundredths(v: f64) -> u16 {
    (v * 100.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
}

fn share(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        used as f64 * 100.0 / total as f64
    }
}

impl Sample {
    /// The figures of a usage report that history keeps.
    pub fn of(u: &Usage) -> Sample {
        Sample {
            at_ms: u.sampled_at_ms,
            cpu_percent: u.cpu_percent,
            memory_percent: share(u.mem_used_bytes, u.mem_total_bytes),
            swap_percent: share(u.swap_used_bytes, u.swap_total_bytes),
            disk_percent: u
                .disks
                .iter()
                .map(|d| {
                    share(
                        d.total_bytes.saturating_sub(d.available_bytes),
                        d.total_bytes,
                    )
                })
                .fold(0.0, f64::max),
            load1: u.load[0],
            net_rx_bytes_per_sec: u.net_rx_bytes_per_sec,
            net_tx_bytes_per_sec: u.net_tx_bytes_per_sec,
        }
    }
}

#[derive(Debug)]
struct Ring {
    base_ms: u64,
    samples: VecDeque<Packed>,
}

impl Ring {
    fn unpack(&self, p: &Packed) -> Sample {
        let back = |v: u16| f64::from(v) / 100.0;
        Sample {
            at_ms: self.base_ms + u64::from(p.at_s) * 1000,
            cpu_percent: back(p.cpu),
            memory_percent: back(p.memory),
            swap_percent: back(p.swap),
            disk_percent: back(p.disk),
            load1: back(p.load1),
            net_rx_bytes_per_sec: u64::from(p.rx),
            net_tx_bytes_per_sec: u64::from(p.tx),
        }
    }
}

/// The fleet's history.
#[derive(Debug)]
pub struct UsageHistory {
    window: Duration,
    /// The most samples kept per node, whatever the spacing (one a second
    /// for the window).
    most: usize,
    rings: HashMap<NodeId, Ring>,
}

/// Samples a ring starts with before its node's spacing is known.
const FIRST_CAPACITY: usize = 16;

impl UsageHistory {
    pub fn new(window: Duration) -> UsageHistory {
        UsageHistory {
            window,
            most: (window.as_secs() as usize).max(FIRST_CAPACITY),
            rings: HashMap::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// The newest sample's time for a node (0: none).
    pub fn newest_ms(&self, node: &NodeId) -> u64 {
        self.rings
            .get(node)
            .and_then(|r| {
                r.samples
                    .back()
                    .map(|p| r.base_ms + u64::from(p.at_s) * 1000)
            })
            .unwrap_or(0)
    }

    /// Adds a node's report; one no newer than the last is ignored.
    pub fn push(&mut self, node: &NodeId, usage: &Usage) {
        let at = usage.sampled_at_ms;
        let s = Sample::of(usage);
        let ring = self.rings.entry(node.clone()).or_insert_with(|| Ring {
            base_ms: at,
            samples: VecDeque::with_capacity(FIRST_CAPACITY),
        });
        if at < ring.base_ms {
            return;
        }
        let at_s = ((at - ring.base_ms) / 1000).min(u64::from(u32::MAX)) as u32;
        if ring.samples.back().is_some_and(|p| p.at_s >= at_s) {
            return;
        }
        // Old samples leave by age first.
        let oldest_kept = at_s.saturating_sub(self.window.as_secs() as u32);
        while ring.samples.front().is_some_and(|p| p.at_s < oldest_kept) {
            ring.samples.pop_front();
        }
        if ring.samples.len() == ring.samples.capacity() {
            if ring.samples.len() >= self.most {
                ring.samples.pop_front();
            } else {
                // Sized from the spacing seen so far: what the window holds,
                // exactly (a deque never gives back what it grew).
                let first = ring.samples.front().map_or(at_s, |p| p.at_s);
                let spacing =
                    (at_s.saturating_sub(first) as usize / (ring.samples.len() - 1).max(1)).max(1);
                let want = (self.window.as_secs() as usize / spacing + 2)
                    .clamp(ring.samples.len() + 1, self.most);
                ring.samples.reserve_exact(want - ring.samples.len());
            }
        }
        ring.samples.push_back(Packed {
            at_s,
            cpu: hundredths(s.cpu_percent),
            memory: hundredths(s.memory_percent),
            swap: hundredths(s.swap_percent),
            disk: hundredths(s.disk_percent),
            load1: hundredths(s.load1),
            rx: s.net_rx_bytes_per_sec.min(u64::from(u32::MAX)) as u32,
            tx: s.net_tx_bytes_per_sec.min(u64::from(u32::MAX)) as u32,
        });
    }

    /// A node's samples taken at `since_ms` or later, oldest first.
    pub fn of(&self, node: &NodeId, since_ms: u64) -> Vec<Sample> {
        let Some(ring) = self.rings.get(node) else {
            return Vec::new();
        };
        ring.samples
            .iter()
            .map(|p| ring.unpack(p))
            .filter(|s| s.at_ms >= since_ms)
            .collect()
    }

    /// Forgets the nodes `keep` says are gone.
    pub fn retain(&mut self, keep: impl Fn(&NodeId) -> bool) {
        self.rings.retain(|id, _| keep(id));
    }

    pub fn nodes(&self) -> usize {
        self.rings.len()
    }

    /// What the samples hold in memory (the rings' capacity), in bytes.
    pub fn bytes(&self) -> usize {
        self.rings
            .values()
            .map(|r| r.samples.capacity() * std::mem::size_of::<Packed>())
            .sum::<usize>()
            + self.rings.capacity() * (std::mem::size_of::<NodeId>() + std::mem::size_of::<Ring>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_model::DiskUsage;

    fn usage(at_ms: u64, cpu: f64) -> Usage {
        Usage {
            sampled_at_ms: at_ms,
            cpu_percent: cpu,
            load: [1.25, 0.0, 0.0],
            mem_total_bytes: 1000,
            mem_used_bytes: 250,
            disks: vec![
                DiskUsage {
                    mount: "/".into(),
                    total_bytes: 100,
                    available_bytes: 90,
                },
                DiskUsage {
                    mount: "/var".into(),
                    total_bytes: 100,
                    available_bytes: 40,
                },
            ],
            net_rx_bytes_per_sec: 5_000_000_000,
            net_tx_bytes_per_sec: 12,
            ..Usage::default()
        }
    }

    #[test]
    fn a_sample_keeps_its_figures_to_a_hundredth() {
        let n = NodeId::new("n1").unwrap();
        let mut h = UsageHistory::new(Duration::from_secs(3600));
        h.push(&n, &usage(1_000_000, 12.345));
        let s = h.of(&n, 0);
        assert_eq!(s.len(), 1);
        let s = s[0];
        assert_eq!(s.at_ms, 1_000_000);
        assert_eq!(s.cpu_percent, 12.35);
        assert_eq!(s.memory_percent, 25.0);
        assert_eq!(s.disk_percent, 60.0, "the fullest mount");
        assert_eq!(s.load1, 1.25);
        assert_eq!(s.net_rx_bytes_per_sec, u64::from(u32::MAX), "clamped");
        assert_eq!(s.net_tx_bytes_per_sec, 12);
    }

    #[test]
    fn the_window_holds_an_hour_sized_to_the_reports_and_drops_the_oldest() {
        let n = NodeId::new("n1").unwrap();
        let mut h = UsageHistory::new(Duration::from_secs(3600));
        let every = 5_000;
        for i in 0..2000u64 {
            h.push(&n, &usage(i * every, (i % 100) as f64));
        }
        let all = h.of(&n, 0);
        let newest = 1999 * every;
        assert_eq!(all.last().unwrap().at_ms, newest);
        assert!(
            all.first().unwrap().at_ms >= newest - 3_600_000,
            "nothing older than the window"
        );
        assert_eq!(all.len(), 721, "an hour of 5 s reports, both ends in");
        // The ring is sized to what an hour at this spacing needs.
        assert!(h.bytes() < 740 * 24 + 200, "{} bytes", h.bytes());
        assert_eq!(h.of(&n, newest - 60_000).len(), 13);
    }

    #[test]
    fn an_old_or_repeated_report_is_ignored_and_gone_nodes_are_forgotten() {
        let n = NodeId::new("n1").unwrap();
        let mut h = UsageHistory::new(Duration::from_secs(60));
        h.push(&n, &usage(10_000, 1.0));
        h.push(&n, &usage(10_000, 2.0));
        h.push(&n, &usage(9_000, 3.0));
        assert_eq!(h.of(&n, 0).len(), 1);
        assert_eq!(h.newest_ms(&n), 10_000);
        h.retain(|_| false);
        assert_eq!(h.nodes(), 0);
        assert!(h.of(&n, 0).is_empty());
    }
}
