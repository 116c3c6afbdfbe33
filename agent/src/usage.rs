//! Resource usage sampling (CPU, load, memory, swap, disks, network rates).
//!
//! A [`Sampler`] keeps the sysinfo handles between samples: CPU usage and
//! network rates are differences between two refreshes, so the first sample
//! after [`Sampler::new`] is taken against the refresh `new` made (callers
//! wait at least 200 ms, the report interval, before sampling).

use std::time::Instant;
use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, System};

pub use cluster_model::{DiskUsage, Usage};

pub struct Sampler {
    sys: System,
    /// `None` where the platform cannot list them; usage then omits them.
    disks: Option<Disks>,
    networks: Option<Networks>,
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
        let elapsed = self.last.elapsed().as_secs_f64().max(0.001);
        self.last = Instant::now();
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
        }
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
    fn pseudo_file_systems_are_left_out() {
        assert!(interesting("ext4", "/"));
        assert!(!interesting("tmpfs", "/tmp"));
        assert!(!interesting("ext4", "/run/user/0"));
    }
}
