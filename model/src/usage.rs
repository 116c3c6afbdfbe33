//! Resource usage, as an agent last reported it.
//!
//! The figures up to `net_tx_bytes_per_sec` are the first report's and keep
//! their meaning (the alert rules read them). The rest came later: each is
//! `#[serde(default)]`, so a report stored or relayed by an older master
//! reads as "not reported" — an empty list, or `None` where zero would be a
//! figure (no memory available is an alert; an unknown figure is not).
//!
//! Rates are per second over the interval between two samples. Bytes per
//! second are whole numbers, as the totals always were; packets, errors
//! and operations per second are fractional, so that one error in a
//! 5-second interval shows as 0.2 rather than 0.
//!
//! Lists are bounded ([`Usage::bound`]): at most [`CORES_MAX`] cores and
//! [`LIST_MAX`] mounts, interfaces and devices, names cut to
//! [`NAME_MAX_BYTES`], so that no host, however odd, makes a report big.

use serde::{Deserialize, Serialize};

/// Cores reported one by one (`cpu_core_percent`); big servers have a few
/// hundred threads.
pub const CORES_MAX: usize = 256;
/// Mounts, interfaces and block devices in one report, each.
pub const LIST_MAX: usize = 64;
/// An interface's or device's name (Linux's are at most 15 and 31 bytes).
pub const NAME_MAX_BYTES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub sampled_at_ms: u64,
    /// All cores together, 0–100.
    pub cpu_percent: f64,
    pub load: [f64; 3],
    pub mem_total_bytes: u64,
    pub mem_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub disks: Vec<DiskUsage>,
    /// All interfaces but loopback, together.
    pub net_rx_bytes_per_sec: u64,
    pub net_tx_bytes_per_sec: u64,
    /// Each core, 0–100, in the kernel's order (`cpu0` first).
    #[serde(default)]
    pub cpu_core_percent: Vec<f64>,
    /// What the kernel estimates can be allocated without swapping
    /// (`MemAvailable`).
    #[serde(default)]
    pub mem_available_bytes: Option<u64>,
    #[serde(default)]
    pub swap_free_bytes: Option<u64>,
    /// Each interface but loopback, by name.
    #[serde(default)]
    pub interfaces: Vec<InterfaceUsage>,
    /// Block devices' I/O, in the kernel's order (see the agent's
    /// `usage::diskstats` for which devices).
    #[serde(default)]
    pub disk_io: Vec<DiskIo>,
    /// Processes (not threads) running on the node.
    #[serde(default)]
    pub processes: Option<u64>,
    #[serde(default)]
    pub uptime_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskUsage {
    pub mount: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// One network interface's rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceUsage {
    pub name: String,
    #[serde(default)]
    pub rx_bytes_per_sec: u64,
    #[serde(default)]
    pub tx_bytes_per_sec: u64,
    #[serde(default)]
    pub rx_packets_per_sec: f64,
    #[serde(default)]
    pub tx_packets_per_sec: f64,
    #[serde(default)]
    pub rx_errors_per_sec: f64,
    #[serde(default)]
    pub tx_errors_per_sec: f64,
}

/// One block device's I/O rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskIo {
    pub device: String,
    #[serde(default)]
    pub read_bytes_per_sec: u64,
    #[serde(default)]
    pub write_bytes_per_sec: u64,
    /// Reads completed per second.
    #[serde(default)]
    pub reads_per_sec: f64,
    /// Writes completed per second.
    #[serde(default)]
    pub writes_per_sec: f64,
}

impl Usage {
    /// The report within its bounds: lists cut to [`CORES_MAX`] and
    /// [`LIST_MAX`] (the first ones kept), interface and device names to
    /// [`NAME_MAX_BYTES`]. The agent bounds what it samples and the master
    /// what it receives.
    pub fn bound(mut self) -> Usage {
        self.cpu_core_percent.truncate(CORES_MAX);
        self.disks.truncate(LIST_MAX);
        self.interfaces.truncate(LIST_MAX);
        self.disk_io.truncate(LIST_MAX);
        for i in &mut self.interfaces {
            cut(&mut i.name);
        }
        for d in &mut self.disk_io {
            cut(&mut d.device);
        }
        self
    }
}

/// `name` cut to at most [`NAME_MAX_BYTES`], on a character boundary.
fn cut(name: &mut String) {
    if name.len() > NAME_MAX_BYTES {
        let end = (0..=NAME_MAX_BYTES)
            .rev()
            .find(|i| name.is_char_boundary(*i))
            .unwrap_or(0);
        name.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_from_before_the_new_fields_reads_them_as_not_reported() {
        let old = r#"{"sampled_at_ms":1,"cpu_percent":12.5,"load":[0.1,0.2,0.3],
            "mem_total_bytes":100,"mem_used_bytes":40,"swap_total_bytes":0,
            "swap_used_bytes":0,"disks":[{"mount":"/","total_bytes":9,"available_bytes":3}],
            "net_rx_bytes_per_sec":5,"net_tx_bytes_per_sec":6}"#;
        let u: Usage = serde_json::from_str(old).unwrap();
        assert_eq!(
            u,
            Usage {
                sampled_at_ms: 1,
                cpu_percent: 12.5,
                load: [0.1, 0.2, 0.3],
                mem_total_bytes: 100,
                mem_used_bytes: 40,
                disks: vec![DiskUsage {
                    mount: "/".into(),
                    total_bytes: 9,
                    available_bytes: 3
                }],
                net_rx_bytes_per_sec: 5,
                net_tx_bytes_per_sec: 6,
                ..Usage::default()
            }
        );
        assert_eq!(u.mem_available_bytes, None);
        assert!(u.interfaces.is_empty() && u.disk_io.is_empty());
    }

    #[test]
    fn a_full_report_round_trips_through_json() {
        let u = Usage {
            cpu_core_percent: vec![10.0, 90.5],
            mem_available_bytes: Some(60),
            swap_free_bytes: Some(0),
            interfaces: vec![InterfaceUsage {
                name: "eth0".into(),
                rx_bytes_per_sec: 1500,
                rx_errors_per_sec: 0.2,
                ..InterfaceUsage::default()
            }],
            disk_io: vec![DiskIo {
                device: "nvme0n1".into(),
                write_bytes_per_sec: 4096,
                writes_per_sec: 1.0,
                ..DiskIo::default()
            }],
            processes: Some(123),
            uptime_secs: Some(86_400),
            ..Usage::default()
        };
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<Usage>(&json).unwrap(), u);
    }

    #[test]
    fn bound_cuts_lists_and_names() {
        let long = "é".repeat(40); // 80 bytes
        let u = Usage {
            cpu_core_percent: vec![1.0; CORES_MAX + 10],
            disks: vec![DiskUsage::default(); LIST_MAX + 1],
            interfaces: (0..LIST_MAX + 5)
                .map(|i| InterfaceUsage {
                    name: if i == 0 {
                        long.clone()
                    } else {
                        format!("eth{i}")
                    },
                    ..InterfaceUsage::default()
                })
                .collect(),
            disk_io: vec![
                DiskIo {
                    device: "sda".into(),
                    ..DiskIo::default()
                };
                LIST_MAX * 2
            ],
            ..Usage::default()
        }
        .bound();
        assert_eq!(u.cpu_core_percent.len(), CORES_MAX);
        assert_eq!(u.disks.len(), LIST_MAX);
        assert_eq!(u.interfaces.len(), LIST_MAX);
        assert_eq!(u.disk_io.len(), LIST_MAX);
        assert_eq!(u.interfaces[0].name, "é".repeat(32));
        assert_eq!(u.interfaces[1].name, "eth1");
        assert_eq!(u.disk_io[0].device, "sda");
    }
}
