//! Facts about the node: Salt's grains and Facter's core facts, each with
//! its own names and value shapes, from one collection.
//!
//! [`collect`] reads the machine into a [`Machine`], a typed tree that
//! Salt's grains ([`grains()`]) and Facter's facts ([`facts()`]) read
//! from. Collection only reads files under a [`Root`] (`/` unless a
//! test points it at a fixture tree), the agent's environment and sysinfo's
//! interface list: it runs no program, asks no DNS server and reads no large
//! file, and takes a few milliseconds. Each source has a parser from its
//! text to a typed value, table-tested with fixed contents. A fact that
//! cannot be read is absent from the grains, never empty or zero. Static
//! grains from the agent's config are laid over the collected ones (a
//! config value wins, as in Salt).
//!
//! # Layout
//!
//! - [`root`] — [`Root`]: reading files, listings, links, the environment.
//! - `grains` — [`grains()`], the pure shaping into Salt's grains.
//! - `facter` — [`facts()`], the pure shaping into Facter's core facts;
//!   its own `//!` lists how they differ from Facter's.
//! - [`os`] — os-release, lsb-release: `os`, `os_family`, `osrelease`, …;
//!   `os_names` holds Salt's name tables.
//! - [`kernel`] — uname fields, `kernelparams`, `init`, `systemd`.
//! - [`cpu`] — `/proc/cpuinfo`, `/proc/meminfo`.
//! - [`network`] — interfaces, addresses, default gateways.
//! - [`names`] — `/etc/hosts`: `fqdn`, `domain`, `fqdns`, `fqdn_ip4/6`.
//! - [`dns`] — `resolv.conf`: the `dns` grain.
//! - [`dmi`] — firmware identity from sysfs and the device tree.
//! - [`virt`] — `virtual` and `virtual_subtype`.
//! - [`disks`], [`gpus`] — block devices and display controllers.
//! - [`mounts`] — `/proc/self/mounts` with sizes, `/proc/filesystems`.
//! - [`users`] — the agent process: ids, names, `PATH`, `SHELL`.
//! - [`locale`], [`tz`] — `locale_info` and `timezone`.
//! - `tests`, `scenarios` — whole machines: built by hand, fixture trees
//!   (Docker, KVM, bare metal, loopback only, IPv6 only), this machine.
//!
//! # Compared with Salt
//!
//! - No program is run. Where Salt runs one, its answer is taken from the
//!   files that program reads: `virtual` from what `systemd-detect-virt` and
//!   `dmidecode` would say, with the CPU's `hypervisor` flag, `kvm-clock`,
//!   `/sys/hypervisor/type` and VMBus in place of the CPUID leaf (a QEMU
//!   machine without `kvm-clock` is `qemu`); `gpus` from
//!   `/sys/bus/pci/devices` and `pci.ids` instead of `lspci`; `ip4_gw` /
//!   `ip6_gw` / `ip_gw` from `/proc/net/route` and `/proc/net/ipv6_route`
//!   instead of `ip route`, so they exist without the `ip` program.
//! - `virtual`: a Docker container is found by `/.dockerenv` or
//!   `container=docker` too, and a Podman one (subtype `libpod`) by
//!   `/run/.containerenv`; Salt reads only cgroup v1 paths, which cgroup v2
//!   hides. Hyper-V is `VirtualPC`, systemd-nspawn is `virtual:
//!   systemd-nspawn`, as Salt maps `systemd-detect-virt`.
//! - `systemd` has `version` only, read from the name of
//!   `libsystemd-shared-NNN.so`; Salt's `features` come from
//!   `systemctl --version`, which is not run.
//! - `osarch` on the Debian family is the Debian port of the kernel's
//!   architecture (`x86_64` → `amd64`), not `dpkg --print-architecture`:
//!   an i386 userland on a 64-bit kernel reads `amd64`.
//! - `fqdn`, `fqdns`, `fqdn_ip4`, `fqdn_ip6` come from `/etc/hosts` alone,
//!   never from DNS or reverse lookups: a name the file does not list has
//!   no addresses, and `fqdn` falls back to the hostname.
//! - `username` and `groupname` come from `/etc/passwd` and `/etc/group`,
//!   not NSS: absent for a user only LDAP/SSSD knows.
//! - `init` also names `openrc` (`openrc-init`) and `runit` (`runit-init`);
//!   only the first 2 MiB of `/sbin/init` are searched for a name.
//! - `kernelparams` splits each word at its first `=`: `root=UUID=…` is
//!   `["root", "UUID=…"]` where Salt gives `["root", null]`.
//! - `dns.options` has every option of every `options` line; Salt keeps only
//!   the first of each line.
//! - `gpus`: Cirrus Logic is `cirrus logic` (Salt's word match never finds
//!   that two-word name and says `unknown`); without `pci.ids` the vendor
//!   comes from the PCI id and the model is lspci's `Device 1eb8`.
//! - `lsb_distrib_*` come from `/etc/lsb-release`, else os-release — Salt's
//!   path when Python's `lsb_release` module is missing, as in its onedir
//!   packages; `/etc/*-release` files and CPE quirks are not read.
//! - `os_family`: Salt's table for the `os` grain, else the oldest ancestor
//!   in `ID_LIKE`, capitalised (Salt's os-release path).
//! - `oscodename` is absent where Salt would put `PRETTY_NAME` (a
//!   distribution with neither a codename nor a Salt quirk, such as Arch).
//! - Absent rather than empty, zero or `Unknown`: `domain` (Salt: `""`),
//!   `cpu_model` when cpuinfo names no model (arm64; Salt: `Unknown`),
//!   `num_cpus` and `cpu_flags` when cpuinfo is unreadable, `path` when
//!   `PATH` is unset, `osmajorrelease` when not a number, DMI files that are
//!   empty or unreadable, `locale_info` keys Python would give as `None`.
//!   Inside `dns` Salt's shape is kept: `domain` is `""` when unset.
//! - `ip4_interfaces` lists each interface's addresses sorted (sysinfo
//!   gives a set), not in `ip addr` order; `disks` and `ssds` are sorted.
//! - `locale_info.defaultlanguage` under `C.UTF-8` is `C`, as Salt says on
//!   Python 3.12 (3.11's alias table makes it `en_US`).
//! - `locale_info.detectedencoding` is always `utf-8`, the agent's own
//!   encoding; `locale_info.timezone` is the abbreviation from `TZ` or
//!   `/etc/localtime`, computed here (Salt asks dateutil); the language
//!   comes from `LC_ALL`, `LC_CTYPE`, `LANG`, else `/etc/default/locale` or
//!   `/etc/locale.conf`.
//! - `init` is decided from pid 1's command line (and the head of
//!   `/sbin/init`) when `/run/systemd/system` is absent, as Salt does.
//! - Added: `timezone` (Salt has it on Windows only), `agent_version` (in
//!   place of `saltversion`). Not provided: `master`, `saltpath`,
//!   `pythonversion` and the other Salt-internal grains, `selinux`, `efi`,
//!   `server_id`, `ps`, `cwd`, and `pid` (it changes at every start: an
//!   agent back unchanged must cost the master no write).

pub mod cpu;
pub mod disks;
pub mod dmi;
pub mod dns;
mod facter;
pub mod gpus;
mod grains;
pub mod kernel;
pub mod locale;
pub mod mounts;
pub mod names;
pub mod network;
pub mod os;
mod os_names;
pub mod root;
pub mod tz;
pub mod users;
pub mod virt;

pub use facter::facts;
pub use grains::grains;
pub use root::Root;

pub mod external;

use std::net::IpAddr;

/// What was read from the machine, one field per source.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// The kernel's hostname (`/proc/sys/kernel/hostname`); empty when
    /// unreadable. The default node id.
    pub host_name: String,
    /// Every interface address, sorted: the `ipv4`/`ipv6` grains, and what
    /// the agent advertises itself on when not told.
    pub addresses: Vec<IpAddr>,
    pub os: os::Os,
    pub kernel: kernel::Kernel,
    pub cpu: cpu::Cpu,
    pub memory: cpu::Memory,
    pub dmi: dmi::Dmi,
    pub device_tree: dmi::DeviceTree,
    /// The files besides CPU and DMI that tell a VM or a container.
    pub virt: virt::Evidence,
    pub net: network::Network,
    /// `/etc/hosts`.
    pub hosts: Option<names::Hosts>,
    pub dns: Option<dns::Resolv>,
    pub disks: Option<disks::Disks>,
    /// `/proc/self/mounts`, with sizes.
    pub mounts: Option<Vec<mounts::Mount>>,
    /// `/proc/filesystems`' types that need a device.
    pub filesystems: Option<Vec<String>>,
    pub gpus: Option<Vec<gpus::Gpu>>,
    pub process: users::Process,
    pub locale: locale::Locale,
    /// `/etc/machine-id`, else `/var/lib/dbus/machine-id`.
    pub machine_id: Option<String>,
}

impl Machine {
    /// Salt's `virtual` and `virtual_subtype` for this machine.
    pub fn virtual_machine(&self) -> virt::Virtual {
        virt::detect(&self.virt, &self.cpu, &self.dmi)
    }
}

/// Reads the running machine.
pub fn collect() -> Machine {
    collect_at(&Root::host())
}

/// Reads the machine under `root`.
pub fn collect_at(root: &Root) -> Machine {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut kernel = kernel::collect(root);
    // The kernel this agent was built for, if procfs is not there to say.
    if kernel.name.is_none() && root.exists("/proc/self") {
        kernel.name = Some(capitalised(std::env::consts::OS));
    }
    let net = network::collect(root);
    Machine {
        host_name: root
            .read_value("/proc/sys/kernel/hostname")
            .unwrap_or_default(),
        addresses: net.addresses(),
        os: os::collect(root),
        kernel,
        cpu: cpu::collect_cpu(root),
        memory: cpu::collect_memory(root),
        dmi: dmi::collect(root),
        device_tree: dmi::collect_device_tree(root),
        virt: virt::collect(root),
        net,
        hosts: root.read("/etc/hosts").ok().map(|t| names::parse_hosts(&t)),
        dns: dns::collect(root),
        disks: disks::collect(root),
        mounts: mounts::collect(root),
        filesystems: mounts::collect_filesystems(root),
        gpus: gpus::collect(root),
        process: users::collect(root),
        locale: locale::collect(root, now),
        machine_id: root
            .read_value("/etc/machine-id")
            .or_else(|| root.read_value("/var/lib/dbus/machine-id")),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
