//! Block devices' I/O from `/proc/diskstats`, pure: [`parse`] reads the
//! file's text into counters, [`reported`] says which devices a report
//! names, [`rates`] turns two readings into per-second figures.
//!
//! Which devices: whole disks (`sda`, `vda`, `nvme0n1`, `mmcblk0`) and the
//! kernel's composite devices (`dm-0`, `md0`), in the file's order.
//! Partitions are left out, since a disk's figures already include its
//! partitions'; so are `loop`, `ram` and `zram` devices (memory or files,
//! not disks) and any device with no I/O since boot (the unused `nbd`s, an
//! empty CD drive). The rule reads names only, so it needs no `/sys`.

use cluster_model::usage::{DiskIo, LIST_MAX};

/// `/proc/diskstats` counts in 512-byte sectors whatever the device's own
/// sector size.
const SECTOR_BYTES: u64 = 512;

/// One device's counters since boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub device: String,
    /// Reads completed.
    pub reads: u64,
    pub read_sectors: u64,
    /// Writes completed.
    pub writes: u64,
    pub write_sectors: u64,
}

/// Every well-formed line of `/proc/diskstats` (major, minor, name, then at
/// least the seven fields up to sectors written); others are skipped.
pub fn parse(text: &str) -> Vec<Counters> {
    text.lines().filter_map(line).collect()
}

fn line(l: &str) -> Option<Counters> {
    let f: Vec<&str> = l.split_whitespace().take(10).collect();
    if f.len() < 10 {
        return None;
    }
    let n = |i: usize| f[i].parse::<u64>().ok();
    Some(Counters {
        device: f[2].to_owned(),
        reads: n(3)?,
        read_sectors: n(5)?,
        writes: n(7)?,
        write_sectors: n(9)?,
    })
}

/// The devices a report names (see the module's opening), at most
/// [`LIST_MAX`].
pub fn reported(all: Vec<Counters>) -> Vec<Counters> {
    all.into_iter()
        .filter(|c| is_reported(&c.device) && (c.reads, c.writes) != (0, 0))
        .take(LIST_MAX)
        .collect()
}

fn is_reported(name: &str) -> bool {
    !["loop", "ram", "zram"].iter().any(|p| name.starts_with(p)) && !is_partition(name)
}

/// `sda1`, `xvdb2`, `hda3`; `nvme0n1p1`, `mmcblk0p2`, `md0p1` (a `p` and a
/// number after a name that ends in a digit).
fn is_partition(name: &str) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == name.len() {
        return false;
    }
    if let Some(disk) = base.strip_suffix('p') {
        return disk.ends_with(|c: char| c.is_ascii_digit());
    }
    ["sd", "hd", "vd", "xvd"].iter().any(|p| {
        base.strip_prefix(p).is_some_and(|letters| {
            !letters.is_empty() && letters.bytes().all(|b| b.is_ascii_lowercase())
        })
    })
}

/// Per-second figures for the devices of `now`, over `secs` since `before`.
/// A device not in `before` (it just appeared, or did its first I/O) shows
/// zeros until the next reading; a counter that went back (the device was
/// replaced) counts as zero.
pub fn rates(before: &[Counters], now: &[Counters], secs: f64) -> Vec<DiskIo> {
    let secs = secs.max(0.001);
    now.iter()
        .map(|c| {
            let Some(b) = before.iter().find(|b| b.device == c.device) else {
                return DiskIo {
                    device: c.device.clone(),
                    ..DiskIo::default()
                };
            };
            let per_sec = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
            DiskIo {
                device: c.device.clone(),
                read_bytes_per_sec: (per_sec(c.read_sectors, b.read_sectors) * SECTOR_BYTES as f64)
                    as u64,
                write_bytes_per_sec: (per_sec(c.write_sectors, b.write_sectors)
                    * SECTOR_BYTES as f64) as u64,
                reads_per_sec: per_sec(c.reads, b.reads),
                writes_per_sec: per_sec(c.writes, b.writes),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel 6.x file: loop and zram devices, a virtio disk with
    /// partitions, NVMe with partitions, an LVM volume, an unused nbd.
    const FILE: &str = "\
   7       0 loop0 37 0 728 5 0 0 0 0 0 12 5 0 0 0 0 0 0
 254       0 vda 2734160 50184 90224338 5349814 926794 277664 333104320 2332788 0 337556 7768698 246435 59 444118960 69961 218067 16135
 254       1 vda1 2733000 50000 90200000 5349000 926000 277000 333100000 2332000 0 337000 7768000 0 0 0 0 0 0
 259       0 nvme0n1 100 1 2048 10 50 2 4096 20 0 30 30 0 0 0 0 0 0
 259       1 nvme0n1p1 90 1 2000 9 50 2 4096 20 0 29 29 0 0 0 0 0 0
 253       0 dm-0 80 0 1600 8 40 0 800 10 0 15 18 0 0 0 0 0 0
 253       1 zram0 4 0 32 0 2 0 16 0 0 0 0 0 0 0 0 0 0
  43       0 nbd0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8       0 sda 5 0
";

    #[test]
    fn lines_parse_into_counters_and_short_ones_are_skipped() {
        let all = parse(FILE);
        let names: Vec<&str> = all.iter().map(|c| c.device.as_str()).collect();
        assert_eq!(
            names,
            [
                "loop0",
                "vda",
                "vda1",
                "nvme0n1",
                "nvme0n1p1",
                "dm-0",
                "zram0",
                "nbd0"
            ]
        );
        assert_eq!(
            all[1],
            Counters {
                device: "vda".into(),
                reads: 2734160,
                read_sectors: 90224338,
                writes: 926794,
                write_sectors: 333104320,
            }
        );
        // Kernels before 4.18 write 14 fields, the oldest 2.6 ones 7 for a
        // partition: the first parses, the second is skipped.
        assert_eq!(parse("8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").len(), 1);
        assert!(parse("8 1 sda1 1 2 3 4\n").is_empty());
        assert!(parse("8 0 sda x 2 3 4 5 6 7 8 9 10 11\n").is_empty());
        assert!(parse("").is_empty());
    }

    #[test]
    fn whole_disks_and_composite_devices_are_reported() {
        let names: Vec<String> = reported(parse(FILE))
            .into_iter()
            .map(|c| c.device)
            .collect();
        assert_eq!(names, ["vda", "nvme0n1", "dm-0"]);
    }

    #[rustfmt::skip]
    #[test]
    fn partitions_are_told_by_name() {
        for (name, partition) in [
            ("sda", false), ("sda1", true), ("sdaa", false), ("sdaa12", true),
            ("hdb3", true), ("vda", false), ("vda1", true), ("xvdf", false), ("xvdf1", true),
            ("nvme0n1", false), ("nvme0n1p1", true), ("nvme10n2p15", true),
            ("mmcblk0", false), ("mmcblk0p2", true), ("md0", false), ("md127p1", true),
            ("dm-0", false), ("sr0", false), ("nbd0", false), ("rbd0", false),
        ] {
            assert_eq!(is_partition(name), partition, "{name}");
        }
    }

    #[test]
    fn the_list_is_capped() {
        let many: String = (0..LIST_MAX + 10)
            .map(|i| format!("8 {i} dm-{i} 1 0 8 0 1 0 8 0 0 0 0\n"))
            .collect();
        let kept = reported(parse(&many));
        assert_eq!(kept.len(), LIST_MAX);
        assert_eq!(kept[0].device, "dm-0");
    }

    fn counters(
        device: &str,
        reads: u64,
        read_sectors: u64,
        writes: u64,
        write_sectors: u64,
    ) -> Counters {
        Counters {
            device: device.into(),
            reads,
            read_sectors,
            writes,
            write_sectors,
        }
    }

    #[test]
    fn rates_are_differences_over_the_interval() {
        let before = [
            counters("sda", 100, 1000, 50, 800),
            counters("sdb", 9, 9, 9, 9),
        ];
        let now = [
            counters("sda", 110, 1200, 51, 808),
            counters("sdb", 1, 1, 1, 1),
            counters("sdc", 5, 5, 5, 5),
        ];
        let r = rates(&before, &now, 2.0);
        assert_eq!(
            r[0],
            DiskIo {
                device: "sda".into(),
                read_bytes_per_sec: 200 * 512 / 2,
                write_bytes_per_sec: 8 * 512 / 2,
                reads_per_sec: 5.0,
                writes_per_sec: 0.5,
            }
        );
        // Counters that went back, and a device seen for the first time:
        // zeros.
        for (d, name) in r[1..].iter().zip(["sdb", "sdc"]) {
            assert_eq!(
                d,
                &DiskIo {
                    device: name.into(),
                    ..DiskIo::default()
                }
            );
        }
        // The first reading has nothing to compare with: no rates at all.
        assert!(rates(&[], &now, 5.0).iter().all(|d| d.reads_per_sec == 0.0));
    }
}
