//! Block devices: `/sys/block`, Salt's `disks` (rotational) and `ssds`
//! (not rotational). Devices whose sysfs entry lives under
//! `devices/virtual/` — loop, ram, zram, device-mapper, md — are skipped
//! as Salt skips them; partitions are not in `/sys/block` at all. Each
//! device's size, model and vendor are kept too, for Facter's `disks`.

use super::root::Root;

/// Salt's two lists, each sorted, and every device as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disks {
    pub disks: Vec<String>,
    pub ssds: Vec<String>,
    /// Every entry of `/sys/block`, sorted by name.
    pub devices: Vec<BlockDevice>,
}

/// One entry of `/sys/block` as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDevice {
    pub name: String,
    /// Where the entry's link points (`../devices/pci…/block/sda`).
    pub link: Option<String>,
    /// `queue/rotational`'s contents.
    pub rotational: Option<String>,
    /// Whether it has a `device` entry (a disk behind a driver, not a loop
    /// or device-mapper device): Facter lists only those.
    pub has_device: bool,
    /// `size`: 512-byte sectors.
    pub sectors: Option<u64>,
    /// `device/model` and `device/vendor`, trimmed.
    pub model: Option<String>,
    pub vendor: Option<String>,
}

pub fn collect(root: &Root) -> Option<Disks> {
    let names = root.list("/sys/block").ok()?;
    let mut devices: Vec<BlockDevice> = names
        .into_iter()
        .map(|name| BlockDevice {
            has_device: root.exists(&format!("/sys/block/{name}/device")),
            sectors: root
                .read_value(&format!("/sys/block/{name}/size"))
                .and_then(|s| s.parse().ok()),
            model: root.read_value(&format!("/sys/block/{name}/device/model")),
            vendor: root.read_value(&format!("/sys/block/{name}/device/vendor")),
            link: root
                .link(&format!("/sys/block/{name}"))
                .ok()
                .map(|l| l.to_string_lossy().into_owned()),
            rotational: root
                .read(&format!("/sys/block/{name}/queue/rotational"))
                .ok(),
            name,
        })
        .collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    let mut disks = classify(&devices);
    disks.devices = devices;
    Some(disks)
}

pub fn classify(devices: &[BlockDevice]) -> Disks {
    let mut out = Disks::default();
    for d in devices {
        if d.link
            .as_deref()
            .is_some_and(|l| l.starts_with("../devices/virtual/"))
        {
            continue;
        }
        match d.rotational.as_deref().and_then(|r| r.chars().next()) {
            Some('0') => out.ssds.push(d.name.clone()),
            Some('1') => out.disks.push(d.name.clone()),
            _ => {}
        }
    }
    out.disks.sort();
    out.ssds.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::root::Tree;

    fn dev(name: &str, link: &str, rotational: Option<&str>) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            link: Some(link.into()),
            rotational: rotational.map(str::to_owned),
            ..BlockDevice::default()
        }
    }

    #[test]
    fn rotational_disks_and_ssds_without_virtual_devices() {
        let got = classify(&[
            dev(
                "sda",
                "../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda",
                Some("1\n"),
            ),
            dev(
                "nvme0n1",
                "../devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1",
                Some("0\n"),
            ),
            dev(
                "vda",
                "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
                Some("1\n"),
            ),
            dev("loop0", "../devices/virtual/block/loop0", Some("0\n")),
            dev("zram0", "../devices/virtual/block/zram0", Some("0\n")),
            dev("dm-0", "../devices/virtual/block/dm-0", Some("0\n")),
            dev(
                "sr0",
                "../devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sr0",
                Some("1\n"),
            ),
            dev("odd", "../devices/platform/odd", Some("2\n")),
            dev("gone", "../devices/platform/gone", None),
        ]);
        assert_eq!(got.disks, ["sda", "sr0", "vda"]);
        assert_eq!(got.ssds, ["nvme0n1"]);
    }

    #[test]
    fn read_from_a_tree() {
        let t = Tree::new();
        t.file(
            "/sys/devices/pci0000:00/virtio1/block/vda/queue/rotational",
            "1\n",
        )
        .file("/sys/devices/virtual/block/loop0/queue/rotational", "0\n")
        .link("/sys/block/vda", "../devices/pci0000:00/virtio1/block/vda")
        .link("/sys/block/loop0", "../devices/virtual/block/loop0");
        let d = collect(&t.root()).unwrap();
        assert_eq!(d.disks, ["vda"]);
        assert!(d.ssds.is_empty());
        assert_eq!(collect(&Tree::new().root()), None);
    }
}
