//! Resource usage sampling: CPU (all cores and each), load, memory and
//! swap, mounted filesystems' space, network rates (all interfaces and
//! each), block devices' I/O rates, processes, uptime.
//!
//! A [`Sampler`] keeps the sysinfo handles and the last `/proc/diskstats`
//! reading between samples: CPU usage and every rate are differences
//! between two readings, and `new` takes the first, so the first sample
//! already has rates, over the time since `new` (callers wait at least
//! 200 ms, the report interval, before sampling). An interface or device
//! that appears between two samples shows zeros in its first. Everything
//! is read through sysinfo and `/proc`; nothing spawns a program, and
//! processes are counted from `/proc`'s entries rather than refreshed
//! through sysinfo (which reads every process's files).
//!
//! Submodules: [`diskstats`] (the pure parser, the device rule, rates).
//! Lists are cut to the bounds of [`cluster_model::usage`].

pub mod diskstats;

use cluster_model::usage::{CORES_MAX, InterfaceUsage, LIST_MAX};
use std::time::Instant;
use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, System};

pub use cluster_model::{DiskUsage, Usage};

const DISKSTATS: &str = "/proc/diskstats";

pub struct Sampler {
    sys: System,
    /// `None` where the platform cannot list them; usage then omits them.
    disks: Option<Disks>,
    networks: Option<Networks>,
    /// The devices of the last `/proc/diskstats` reading; empty where
    /// there is no such file.
    diskstats: Vec<diskstats::Counters>,
    last: Instant,
}

/// Pseudo file systems are not disks anyone wants to see.
fn interesting(fs: &str, mount: &str) -> bool {
    !matches!(
        fs,
        "tmpfs" | "devtmpfs" | "proc" | "sysfs" | "overlay" | "squashfs" | "cgroup" | "cgroup2"
    ) && !mount.starts_with("/proc")
        && !mount.starts_with("/sys")
        && !mount.starts_with("/dev")
        && !mount.starts_with("/run")
}

fn read_diskstats() -> Vec<diskstats::Counters> {
    std::fs::read_to_string(DISKSTATS)
        .map(|text| diskstats::reported(diskstats::parse(&text)))
        .unwrap_or_default()
}

/// How many of `names` are process ids (all digits), as `/proc` lists a
/// process each.
fn count_pids<S: AsRef<std::ffi::OsStr>>(names: impl Iterator<Item = S>) -> u64 {
    names
        .filter(|n| {
            n.as_ref()
                .to_str()
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        })
        .count() as u64
}

/// Processes now: `/proc`'s numeric entries (threads are not listed
/// there). `None` without `/proc`.
fn processes() -> Option<u64> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(count_pids(
        dir.filter_map(|e| e.ok()).map(|e| e.file_name()),
    ))
}

impl Sampler {
    pub fn new() -> Sampler {
        let mut sys = System::new().unwrap_or_else(|_| System::new_all().expect("sysinfo works"));
        sys.refresh_cpu_list(CpuRefreshKind::nothing());
        sys.refresh_cpu_usage();
        let disks =
            Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
                .ok();
        let networks = Networks::new_with_refreshed_list().ok();
        Sampler {
            sys,
            disks,
            networks,
            diskstats: read_diskstats(),
            last: Instant::now(),
        }
    }

    pub fn sample(&mut self, now_ms: u64) -> Usage {
        self.sys.refresh_cpu_usage();
        self.sys
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        if let Some(d) = &mut self.disks {
            d.refresh(true);
        }
        if let Some(n) = &mut self.networks {
            n.refresh(true);
        }
        let diskstats = read_diskstats();
        let elapsed = self.last.elapsed().as_secs_f64().max(0.001);
        self.last = Instant::now();
        let disk_io = diskstats::rates(&self.diskstats, &diskstats, elapsed);
        self.diskstats = diskstats;
        let (rx, tx) = self
            .networks
            .iter()
            .flat_map(|n| n.iter())
            .filter(|(name, _)| name.to_str() != Some("lo"))
            .fold((0u64, 0u64), |(r, t), (_, d)| {
                (r + d.received(), t + d.transmitted())
            });
        let load = System::load_average()
            .map(|l| [l.one, l.five, l.fifteen])
            .unwrap_or_default();
        let mut disks: Vec<DiskUsage> = self
            .disks
            .iter()
            .flat_map(|d| d.iter())
            .filter(|d| {
                interesting(
                    &d.file_system().to_string_lossy(),
                    &d.mount_point().to_string_lossy(),
                )
            })
            .map(|d| DiskUsage {
                mount: d.mount_point().to_string_lossy().into_owned(),
                total_bytes: d.total_space(),
                available_bytes: d.available_space(),
            })
            .collect();
        disks.sort_by(|a, b| a.mount.cmp(&b.mount));
        disks.dedup_by(|a, b| a.mount == b.mount);
        Usage {
            sampled_at_ms: now_ms,
            cpu_percent: f64::from(self.sys.global_cpu_usage()),
            load,
            mem_total_bytes: self.sys.total_memory(),
            mem_used_bytes: self.sys.used_memory(),
            swap_total_bytes: self.sys.total_swap(),
            swap_used_bytes: self.sys.used_swap(),
            disks,
            net_rx_bytes_per_sec: (rx as f64 / elapsed) as u64,
            net_tx_bytes_per_sec: (tx as f64 / elapsed) as u64,
            cpu_core_percent: self
                .sys
                .cpus()
                .iter()
                .take(CORES_MAX)
                .map(|c| f64::from(c.usage()))
                .collect(),
            mem_available_bytes: Some(self.sys.available_memory()),
            swap_free_bytes: Some(self.sys.free_swap()),
            interfaces: self.interfaces(elapsed),
            disk_io,
            processes: processes(),
            uptime_secs: System::uptime().ok(),
        }
        .bound()
    }

    /// Each interface but loopback, by name, with its rates since the
    /// last refresh.
    fn interfaces(&self, secs: f64) -> Vec<InterfaceUsage> {
        let mut list: Vec<InterfaceUsage> = self
            .networks
            .iter()
            .flat_map(|n| n.iter())
            .filter(|(name, _)| name.to_str() != Some("lo"))
            .map(|(name, d)| {
                let per_sec = |n: u64| n as f64 / secs;
                InterfaceUsage {
                    name: name.to_string_lossy().into_owned(),
                    rx_bytes_per_sec: per_sec(d.received()) as u64,
                    tx_bytes_per_sec: per_sec(d.transmitted()) as u64,
                    rx_packets_per_sec: per_sec(d.packets_received()),
                    tx_packets_per_sec: per_sec(d.packets_transmitted()),
                    rx_errors_per_sec: per_sec(d.errors_on_received()),
                    tx_errors_per_sec: per_sec(d.errors_on_transmitted()),
                }
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list.truncate(LIST_MAX);
        list
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_reads_memory_and_a_plausible_cpu_figure() {
        let mut s = Sampler::new();
        std::thread::sleep(std::time::Duration::from_millis(250));
        let u = s.sample(1);
        assert!(u.mem_total_bytes > 0);
        assert!(u.mem_used_bytes <= u.mem_total_bytes);
        assert!((0.0..=100.0).contains(&u.cpu_percent), "{}", u.cpu_percent);
        assert!(u.load.iter().all(|l| *l >= 0.0));
    }

    #[test]
    fn a_sample_has_the_complete_report() {
        let mut s = Sampler::new();
        std::thread::sleep(std::time::Duration::from_millis(250));
        let u = s.sample(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(u.cpu_core_percent.len() >= cores.min(CORES_MAX), "{u:?}");
        assert!(
            u.cpu_core_percent.iter().all(|c| (0.0..=100.0).contains(c)),
            "{:?}",
            u.cpu_core_percent
        );
        let available = u.mem_available_bytes.expect("MemAvailable");
        assert!(0 < available && available <= u.mem_total_bytes, "{u:?}");
        assert!(u.swap_free_bytes.expect("SwapFree") <= u.swap_total_bytes);
        // At least this test's process, and the machine has been up a while.
        assert!(u.processes.expect("/proc is listed") >= 1);
        assert!(u.uptime_secs.is_some());
        assert!(u.interfaces.iter().all(|i| i.name != "lo"), "{u:?}");
        let mut names: Vec<&str> = u.interfaces.iter().map(|i| i.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), u.interfaces.len(), "{names:?}");
        assert!(u.disk_io.len() <= LIST_MAX);
    }

    #[test]
    fn processes_are_the_numeric_entries() {
        let names = [
            "1",
            "42",
            "self",
            "thread-self",
            "cpuinfo",
            "",
            "12a",
            "900",
        ];
        assert_eq!(count_pids(names.iter()), 3);
        assert_eq!(count_pids(std::iter::empty::<&str>()), 0);
    }

    #[test]
    fn pseudo_file_systems_are_left_out() {
        assert!(interesting("ext4", "/"));
        assert!(!interesting("tmpfs", "/tmp"));
        assert!(!interesting("ext4", "/run/user/0"));
    }
}
