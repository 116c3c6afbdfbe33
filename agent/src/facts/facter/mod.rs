//! [`facts`]: the [`Machine`] shaped into Facter 4's core facts on Linux,
//! names and value shapes as Facter's (`lib/schema/facter.yaml`,
//! `lib/facter/facts/linux/`). Pure: every fact is decided from the
//! collected data, and a fact that was not read is absent, never empty.
//!
//! Only figures that stay put are here: sizes, not what is free or used.
//! `load_averages`, memory's and mountpoints' `available`, `used` and
//! `capacity`, and `system_uptime` come from the node's last usage report
//! when facts are shown (`cluster_model::facts::with_usage`), so that a
//! facts interval is not a change every time.
//!
//! # Layout
//!
//! - this file — `kernel*`, `fips_enabled`, `processors`, `memory`,
//!   `identity`, `virtual`, `is_virtual`, `dmi`, `timezone`, `path`.
//! - `os` — `os`, with Facter's resolvers for the Debian family.
//! - `networking` — `networking` and its interfaces and bindings.
//! - `storage` — `disks`, `mountpoints`, `filesystems`.
//! - `tests` — each shape from fixed machines and fixture trees.
//!
//! # Compared with Facter
//!
//! `tests/tests/facts_compare.rs` holds these facts against `facter
//! --json` on the machine the tests run on, difference by difference.
//!
//! - `os.release` and `os.distro` follow Facter's Debian and Ubuntu
//!   resolvers (`/etc/debian_version`, os-release); on other
//!   distributions `os.release` is os-release's `VERSION_ID` and
//!   `os.distro` is `/etc/lsb-release`, else os-release (Facter runs
//!   `lsb_release` and reads each distribution's own release file).
//! - `os.architecture` on the Debian family is the Debian port of the
//!   kernel's architecture (`amd64`); `processors.isa` is the kernel's
//!   architecture where Facter says what `uname -p` says (`unknown` on
//!   Debian).
//! - `processors.cores` and `threads` come from cpuinfo's `cpu cores`
//!   and `siblings` (x86 only), not `lscpu`.
//! - `processors.speed` (cpuinfo's `cpu MHz` moves with frequency
//!   scaling) and `extensions`, `os.selinux`, `hypervisors`,
//!   `networking.interfaces.*.{dhcp, operational_state, physical, speed,
//!   duplex}`, `disks.*.{serial, wwn}` and `partitions` are not provided.
//! - `virtual` is decided from files (see the grains' `virtual`), named
//!   as Facter names it: `kvm`, `vmware`, `virtualbox`, `hyperv`, `xenu`,
//!   `gce`, `docker`, `podman`, `lxc`, `systemd_nspawn`, `openvzve`, ….
//! - `networking.fqdn` and `domain` come from `/etc/hosts`, then
//!   `resolv.conf`'s `domain` and first `search`, never from DNS.
//! - `networking.primary` is the IPv4 default route's interface, else the
//!   IPv6 one's, else the first interface (by name) with an address that
//!   is not loopback or link-local.

mod networking;
mod os;
mod storage;

use super::{Machine, virt};
use serde_json::{Map, Value, json};

/// Facter's core facts for `m`.
pub fn facts(m: &Machine) -> Map<String, Value> {
    let mut f = Map::new();
    os::put(m, &mut f);
    kernel(m, &mut f);
    processors(m, &mut f);
    memory(m, &mut f);
    identity(m, &mut f);
    let kind = virtual_kind(m);
    f.insert("is_virtual".into(), (kind != "physical").into());
    f.insert("virtual".into(), kind.into());
    dmi(m, &mut f);
    networking::put(m, &mut f);
    storage::put(m, &mut f);
    some(&mut f, "timezone", m.locale.tz_abbreviation.clone());
    some(&mut f, "path", m.process.path.clone());
    f
}

fn some(f: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        f.insert(key.to_owned(), v.into());
    }
}

/// `kernel`; `kernelrelease` (`6.1.0-18-amd64`), `kernelversion` (its
/// part before `-`), `kernelmajversion` (that version's first two parts).
fn kernel(m: &Machine, f: &mut Map<String, Value>) {
    some(f, "kernel", m.kernel.name.clone());
    some(f, "fips_enabled", m.kernel.fips_enabled);
    if let Some(r) = &m.kernel.release {
        f.insert("kernelrelease".into(), r.as_str().into());
        let version = r.split('-').next().unwrap_or(r);
        f.insert("kernelversion".into(), version.into());
        let major: Vec<&str> = version.split('.').take(2).collect();
        f.insert("kernelmajversion".into(), major.join(".").into());
    }
}

fn processors(m: &Machine, f: &mut Map<String, Value>) {
    let c = &m.cpu;
    let mut p = Map::new();
    some(&mut p, "cores", c.cores_per_socket);
    some(&mut p, "count", c.count);
    some(&mut p, "isa", m.kernel.arch.clone());
    if !c.models.is_empty() {
        p.insert("models".into(), json!(c.models));
    }
    some(&mut p, "physicalcount", c.physical_count);
    some(&mut p, "threads", c.threads_per_core);
    if !p.is_empty() {
        f.insert("processors".into(), Value::Object(p));
    }
}

fn sized(bytes: u64) -> Value {
    json!({ "total": cluster_model::facts::human_bytes(bytes), "total_bytes": bytes })
}

/// Totals only; no swap without swap space, as Facter.
fn memory(m: &Machine, f: &mut Map<String, Value>) {
    let mut mem = Map::new();
    some(&mut mem, "system", m.memory.total_bytes.map(sized));
    some(
        &mut mem,
        "swap",
        m.memory.swap_bytes.filter(|b| *b > 0).map(sized),
    );
    if !mem.is_empty() {
        f.insert("memory".into(), Value::Object(mem));
    }
}

/// The agent process's identity.
fn identity(m: &Machine, f: &mut Map<String, Value>) {
    let p = &m.process;
    let mut id = Map::new();
    some(&mut id, "gid", p.gid);
    some(&mut id, "group", p.groupname.clone());
    some(&mut id, "privileged", p.uid.map(|u| u == 0));
    some(&mut id, "uid", p.uid);
    some(&mut id, "user", p.username.clone());
    if !id.is_empty() {
        f.insert("identity".into(), Value::Object(id));
    }
}

/// Facter's name for what `systemd-detect-virt` would say.
fn virtual_kind(m: &Machine) -> &'static str {
    match virt::systemd_detect_virt(&m.virt, &m.cpu, &m.dmi) {
        None => "physical",
        Some("kvm" | "amazon") => "kvm",
        Some("microsoft") => "hyperv",
        Some("oracle") => "virtualbox",
        Some("xen") => "xenu",
        Some("google") => "gce",
        Some("openvz") => "openvzve",
        Some("systemd-nspawn") => "systemd_nspawn",
        Some("lxc" | "lxc-libvirt") => "lxc",
        Some("vm-other" | "container-other") => "virtual",
        Some(other) => other,
    }
}

fn dmi(m: &Machine, f: &mut Map<String, Value>) {
    let d = &m.dmi;
    let group = |pairs: &[(&str, &Option<String>)]| {
        let g: Map<String, Value> = pairs
            .iter()
            .filter_map(|(k, v)| Some(((*k).to_owned(), Value::from((*v).clone()?))))
            .collect();
        (!g.is_empty()).then_some(Value::Object(g))
    };
    let mut dmi = Map::new();
    some(
        &mut dmi,
        "bios",
        group(&[
            ("release_date", &d.bios_date),
            ("vendor", &d.bios_vendor),
            ("version", &d.bios_version),
        ]),
    );
    some(
        &mut dmi,
        "board",
        group(&[
            ("manufacturer", &d.board_vendor),
            ("product", &d.board_name),
        ]),
    );
    some(&mut dmi, "manufacturer", d.sys_vendor.clone());
    some(
        &mut dmi,
        "product",
        group(&[
            ("name", &d.product_name),
            ("serial_number", &d.product_serial),
            ("uuid", &d.product_uuid),
        ]),
    );
    if !dmi.is_empty() {
        f.insert("dmi".into(), Value::Object(dmi));
    }
}

#[cfg(test)]
mod tests;
