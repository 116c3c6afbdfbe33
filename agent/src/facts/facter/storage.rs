//! Facter's `disks`, `mountpoints` and `filesystems`.
//!
//! `disks` has the entries of `/sys/block` with a `device` (no loop or
//! device-mapper device), as Facter's resolver. `mountpoints` skips what
//! Facter skips: `autofs`, and anything under `/proc` or `/sys` but
//! `tmpfs`. `filesystems` is `/proc/filesystems` without `nodev` types and
//! `fuseblk`, sorted and joined with commas.

use super::some;
use crate::facts::Machine;
use cluster_model::facts::human_bytes;
use serde_json::{Map, Value, json};

pub(super) fn put(m: &Machine, f: &mut Map<String, Value>) {
    if let Some(d) = &m.disks {
        let disks: Map<String, Value> = d
            .devices
            .iter()
            .filter(|b| b.has_device)
            .map(|b| {
                let mut o = Map::new();
                some(&mut o, "model", b.model.clone());
                if let Some(bytes) = b.sectors.map(|s| s.saturating_mul(512)) {
                    o.insert("size".into(), human_bytes(bytes).into());
                    o.insert("size_bytes".into(), bytes.into());
                }
                let kind = match b.rotational.as_deref().map(str::trim) {
                    Some("0") => Some("ssd"),
                    Some("1") => Some("hdd"),
                    _ => None,
                };
                some(&mut o, "type", kind);
                some(&mut o, "vendor", b.vendor.clone());
                (b.name.clone(), Value::Object(o))
            })
            .collect();
        if !disks.is_empty() {
            f.insert("disks".into(), Value::Object(disks));
        }
    }
    if let Some(mounts) = &m.mounts {
        let shaped: Map<String, Value> = mounts
            .iter()
            .filter(|m| !skipped(&m.path, &m.fstype))
            .map(|m| {
                let mut o = Map::new();
                o.insert("device".into(), m.device.as_str().into());
                o.insert("filesystem".into(), m.fstype.as_str().into());
                o.insert("options".into(), json!(m.options));
                if let Some(bytes) = m.size_bytes {
                    o.insert("size".into(), human_bytes(bytes).into());
                    o.insert("size_bytes".into(), bytes.into());
                }
                (m.path.clone(), Value::Object(o))
            })
            .collect();
        if !shaped.is_empty() {
            f.insert("mountpoints".into(), Value::Object(shaped));
        }
    }
    if let Some(types) = &m.filesystems {
        let list: Vec<&str> = types
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "fuseblk")
            .collect();
        if !list.is_empty() {
            f.insert("filesystems".into(), list.join(",").into());
        }
    }
}

/// What Facter leaves out of `mountpoints`.
fn skipped(path: &str, fstype: &str) -> bool {
    let under = |dir: &str| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    fstype == "autofs" || ((under("/proc") || under("/sys")) && fstype != "tmpfs")
}
