//! Virtual machines and containers: the `virtual` and `virtual_subtype`
//! grains, with Salt's values and precedence.
//!
//! Salt first runs `systemd-detect-virt` (then `dmidecode` when that says
//! nothing it maps) and then overrides the answer with file checks, the
//! container checks last so that a container inside a VM is a container.
//! No program is run here: [`systemd_detect_virt`] answers what
//! `systemd-detect-virt` would from the files it reads itself (with the
//! CPU's `hypervisor` flag, `kvm-clock`, `/sys/hypervisor/type` and VMBus
//! standing in for the CPUID leaf it asks), and [`dmidecode_says`] reads
//! `dmidecode`'s fields from `/sys/class/dmi/id`. Salt's own file checks
//! follow as Salt writes them, then two this project adds: `/.dockerenv`
//! (or `container=docker`) is a Docker container and `/run/.containerenv`
//! a Podman one (Salt's `libpod`), which cgroup v2 no longer reveals.

use super::cpu::Cpu;
use super::dmi::Dmi;
use super::root::Root;

/// The files virtual-machine detection reads, beyond CPU and DMI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// `/sys/devices/system/clocksource/clocksource0/available_clocksource`.
    pub clocksources: Vec<String>,
    /// `/sys/hypervisor/type` (`xen`).
    pub hypervisor_type: Option<String>,
    /// `/sys/bus/vmbus` exists (Hyper-V).
    pub vmbus: bool,
    /// `/proc/xen`, `/proc/sys/xen`, `/sys/bus/xen` exist.
    pub proc_xen: bool,
    pub proc_sys_xen: bool,
    pub sys_bus_xen: bool,
    /// `/proc/xen/xsd_kva` exists (a Xen dom0).
    pub xen_xsd_kva: bool,
    /// `/proc/xen/capabilities`.
    pub xen_capabilities: Option<String>,
    /// `/sys/bus/xen/drivers/xenconsole` exists (a Xen PV domU).
    pub xen_console: bool,
    /// `/proc/vz`, `/proc/vz/version`, `/proc/vz/veinfo`, `/proc/bc`.
    pub vz: bool,
    pub vz_version: bool,
    pub vz_veinfo: bool,
    pub proc_bc: bool,
    /// `envID:` of `/proc/self/status` (OpenVZ kernels).
    pub env_id: Option<i64>,
    /// `/proc/1/cgroup`.
    pub pid1_cgroup: Option<String>,
    /// `container=` in `/proc/1/environ`.
    pub pid1_container: Option<String>,
    /// `/run/host/container-manager`, else `/run/systemd/container`.
    pub run_container: Option<String>,
    /// `/.dockerenv`, `/run/.containerenv` exist.
    pub dockerenv: bool,
    pub containerenv: bool,
    /// Whether `/` is not pid 1's root; `None` when that cannot be seen.
    pub chroot: Option<bool>,
    /// The kernel release (WSL names itself there).
    pub kernel_release: Option<String>,
}

/// Salt's two grains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtual {
    pub kind: String,
    pub subtype: Option<String>,
}

pub fn collect(root: &Root) -> Evidence {
    let environ = root.read_head("/proc/1/environ", 64 * 1024).ok();
    Evidence {
        clocksources: root
            .read("/sys/devices/system/clocksource/clocksource0/available_clocksource")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        hypervisor_type: root.read_value("/sys/hypervisor/type"),
        vmbus: root.is_dir("/sys/bus/vmbus"),
        proc_xen: root.is_dir("/proc/xen"),
        proc_sys_xen: root.is_dir("/proc/sys/xen"),
        sys_bus_xen: root.is_dir("/sys/bus/xen"),
        xen_xsd_kva: root.exists("/proc/xen/xsd_kva"),
        xen_capabilities: root.read("/proc/xen/capabilities").ok(),
        xen_console: root.is_dir("/sys/bus/xen/drivers/xenconsole"),
        vz: root.is_dir("/proc/vz"),
        vz_version: root.exists("/proc/vz/version"),
        vz_veinfo: root.exists("/proc/vz/veinfo"),
        proc_bc: root.exists("/proc/bc"),
        env_id: root.read("/proc/self/status").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("envID:"))
                .and_then(|v| v.trim().parse().ok())
        }),
        pid1_cgroup: root.read("/proc/1/cgroup").ok(),
        pid1_container: environ.and_then(|e| {
            e.split(|b| *b == 0)
                .find_map(|kv| kv.strip_prefix(b"container="))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        }),
        run_container: root
            .read_value("/run/host/container-manager")
            .or_else(|| root.read_value("/run/systemd/container")),
        dockerenv: root.exists("/.dockerenv"),
        containerenv: root.exists("/run/.containerenv"),
        chroot: root.same_file("/", "/proc/1/root").map(|same| !same),
        kernel_release: root.read_value("/proc/sys/kernel/osrelease"),
    }
}

/// systemd's name for a `container=` value.
fn container_name(value: &str, ev: &Evidence) -> &'static str {
    match value {
        "oci" if ev.containerenv => "podman",
        "oci" | "docker" => "docker",
        "lxc" => "lxc",
        "lxc-libvirt" => "lxc-libvirt",
        "systemd-nspawn" => "systemd-nspawn",
        "podman" => "podman",
        "rkt" => "rkt",
        "wsl" => "wsl",
        "proot" => "proot",
        "pouch" => "pouch",
        _ => "container-other",
    }
}

fn container(ev: &Evidence) -> Option<&'static str> {
    if ev.vz && !ev.proc_bc {
        return Some("openvz");
    }
    if let Some(r) = &ev.kernel_release
        && (r.contains("Microsoft") || r.contains("WSL"))
    {
        return Some("wsl");
    }
    if let Some(v) = ev.run_container.as_deref().or(ev.pid1_container.as_deref()) {
        return Some(container_name(v, ev));
    }
    if ev.containerenv {
        return Some("podman");
    }
    ev.dockerenv.then_some("docker")
}

/// systemd's table: a DMI field starting with the text names the VM.
const DMI_VENDORS: &[(&str, &str)] = &[
    ("KVM", "kvm"),
    ("OpenStack", "kvm"),
    ("KubeVirt", "kvm"),
    ("Amazon EC2", "amazon"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VMW", "vmware"),
    ("innotek GmbH", "oracle"),
    ("VirtualBox", "oracle"),
    ("Oracle Corporation", "oracle"),
    ("Xen", "xen"),
    ("Bochs", "bochs"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Hyper-V", "microsoft"),
    ("Apple Virtualization", "apple"),
    ("Google Compute Engine", "google"),
];

fn dmi_vm(dmi: &Dmi) -> Option<&'static str> {
    let fields = [
        &dmi.product_name,
        &dmi.sys_vendor,
        &dmi.board_vendor,
        &dmi.bios_vendor,
        &dmi.product_version,
    ];
    fields.iter().filter_map(|f| f.as_deref()).find_map(|v| {
        DMI_VENDORS
            .iter()
            .find(|(prefix, _)| v.starts_with(prefix))
            .map(|(_, name)| *name)
    })
}

/// What `systemd-detect-virt` would print (`None` for its `none`): a
/// container if in one, else the virtual machine.
pub fn systemd_detect_virt(ev: &Evidence, cpu: &Cpu, dmi: &Dmi) -> Option<&'static str> {
    if let Some(c) = container(ev) {
        return Some(c);
    }
    let from_dmi = dmi_vm(dmi);
    if matches!(from_dmi, Some("oracle" | "xen" | "amazon")) {
        return from_dmi;
    }
    if cpu.vendor_id.as_deref() == Some("User Mode Linux") {
        return Some("uml");
    }
    if ev.proc_xen {
        let dom0 = ev
            .xen_capabilities
            .as_deref()
            .is_some_and(|c| c.contains("control_d"));
        if !dom0 {
            return Some("xen");
        }
    }
    // systemd asks CPUID which hypervisor it is; the files that say so:
    if cpu.hypervisor() {
        if ev.hypervisor_type.as_deref() == Some("xen") {
            return Some("xen");
        }
        if ev.clocksources.iter().any(|c| c == "kvm-clock") {
            return Some("kvm");
        }
        if ev.vmbus {
            return Some("microsoft");
        }
    }
    let hyperv = dmi.sys_vendor.as_deref() == Some("Microsoft Corporation")
        && dmi.product_name.as_deref() == Some("Virtual Machine");
    from_dmi
        .or(hyperv.then_some("microsoft"))
        .or(cpu.hypervisor().then_some("vm-other"))
}

/// Salt's reading of `dmidecode`, its fields taken from sysfs.
pub fn dmidecode_says(dmi: &Dmi) -> Option<(&'static str, Option<&'static str>)> {
    let all = [
        &dmi.sys_vendor,
        &dmi.product_name,
        &dmi.product_version,
        &dmi.board_vendor,
        &dmi.board_name,
        &dmi.bios_vendor,
        &dmi.bios_version,
    ];
    if all.iter().all(|f| f.is_none()) {
        return None;
    }
    let starts = |f: &Option<String>, p: &str| f.as_deref().is_some_and(|v| v.starts_with(p));
    let vendor = |p: &str| starts(&dmi.bios_vendor, p);
    let maker = |p: &str| starts(&dmi.sys_vendor, p) || starts(&dmi.board_vendor, p);
    let product = |p: &str| starts(&dmi.product_name, p) || starts(&dmi.board_name, p);
    let anywhere = |p: &str| {
        all.iter()
            .any(|f| f.as_deref().is_some_and(|v| v.contains(p)))
    };
    let mut found = None;
    if vendor("QEMU") || maker("QEMU") || vendor("Bochs") || maker("Bochs") {
        found = Some(("kvm", None));
    }
    let next = if anywhere("BHYVE") {
        Some(("bhyve", None))
    } else if maker("oVirt") {
        Some(("kvm", Some("ovirt")))
    } else if product("RHEV Hypervisor") {
        Some(("kvm", Some("rhev")))
    } else if anywhere("VirtualBox") {
        Some(("VirtualBox", None))
    } else if anywhere("VMware") {
        Some(("VMware", None))
    } else if maker("Microsoft") && anywhere("Virtual Machine") {
        Some(("VirtualPC", None))
    } else if anywhere("Parallels Software") {
        Some(("Parallels", None))
    } else if maker("Google") || vendor("SeaBIOS") {
        // Google's machines, and Proxmox's SeaBIOS.
        Some(("kvm", None))
    } else {
        None
    };
    next.or(found)
}

/// Salt's `virtual` and `virtual_subtype` on Linux.
pub fn detect(ev: &Evidence, cpu: &Cpu, dmi: &Dmi) -> Virtual {
    let mut kind = "physical".to_owned();
    let mut subtype: Option<String> = None;
    let set = |k: &mut String, v: &str| *k = v.to_owned();

    // Salt's first command, and dmidecode when that answer is not one it maps.
    let mut concluded = true;
    match systemd_detect_virt(ev, cpu, dmi) {
        Some(v @ ("qemu" | "kvm" | "oracle" | "xen" | "bochs" | "uml" | "systemd-nspawn")) => {
            set(&mut kind, v)
        }
        Some("vmware") => set(&mut kind, "VMware"),
        Some("microsoft") => set(&mut kind, "VirtualPC"),
        Some(v) if v.contains("lxc") => {
            set(&mut kind, "container");
            subtype = Some("LXC".into());
        }
        Some("amazon") => {
            set(&mut kind, "Nitro");
            subtype = Some("Amazon EC2".into());
        }
        _ => concluded = false,
    }
    if !concluded && let Some((k, s)) = dmidecode_says(dmi) {
        set(&mut kind, k);
        subtype = s.map(str::to_owned).or(subtype);
    }

    // Salt's file checks, in its order.
    if ev.chroot == Some(true) {
        subtype = Some("chroot".into());
    }
    if ev.vz {
        if ev.vz_version {
            set(&mut kind, "openvzhn");
        } else if ev.vz_veinfo {
            set(&mut kind, "openvzve");
        }
    }
    match ev.env_id {
        Some(0) => set(&mut kind, "openvzhn"),
        Some(_) => set(&mut kind, "openvzve"),
        None => {}
    }
    if ev.proc_sys_xen || ev.sys_bus_xen || ev.proc_xen {
        if ev.xen_xsd_kva {
            subtype = Some("Xen Dom0".into());
        } else if dmi.product_name.as_deref() == Some("HVM domU") {
            subtype = Some("Xen HVM DomU".into());
        } else if let Some(caps) = &ev.xen_capabilities {
            let s = if caps.contains("control_d") {
                "Xen Dom0"
            } else {
                "Xen PV DomU"
            };
            subtype = Some(s.into());
        } else if ev.sys_bus_xen && ev.xen_console {
            subtype = Some("Xen PV DomU".into());
        }
        if subtype
            .as_deref()
            .is_some_and(|s| s.to_lowercase().contains("dom"))
        {
            set(&mut kind, "xen");
        }
    }
    if cpu.qemu_virtual_cpu {
        set(&mut kind, "kvm");
    }
    if let Some(p) = &dmi.product_name {
        if p.contains("VirtualBox") {
            set(&mut kind, "VirtualBox");
        } else if p.contains("RHEV Hypervisor") {
            set(&mut kind, "kvm");
            subtype = Some("rhev".into());
        } else if p.contains("oVirt Node") {
            set(&mut kind, "kvm");
            subtype = Some("ovirt".into());
        } else if p.contains("Google") {
            set(&mut kind, "gce");
        } else if p.contains("BHYVE") {
            set(&mut kind, "bhyve");
        }
    }
    // Containers after hypervisors: a container in a VM is a container.
    if let Some(cg) = &ev.pid1_cgroup {
        if cg.contains(":/lxc/") {
            set(&mut kind, "container");
            subtype = Some("LXC".into());
        } else if cg.contains(":/kubepods/") {
            subtype = Some("kubernetes".into());
        } else if cg.contains(":/libpod_parent/") {
            subtype = Some("libpod".into());
        } else if [":/system.slice/docker", ":/docker/", ":/docker-ce/"]
            .iter()
            .any(|p| cg.contains(p))
        {
            set(&mut kind, "container");
            subtype = Some("Docker".into());
        }
    }
    if subtype.as_deref() != Some("LXC") && ev.pid1_container.as_deref() == Some("lxc") {
        set(&mut kind, "container");
        subtype = Some("LXC".into());
    }
    // This project's: the marker files and `container=` that cgroup v2 hid.
    if kind != "container" {
        let named = match container(ev) {
            Some("docker") => Some("Docker"),
            Some("podman") => Some("libpod"),
            _ => None,
        };
        if let Some(name) = named {
            set(&mut kind, "container");
            // Salt's `kubernetes` or `libpod` from the cgroup says more.
            subtype = subtype.filter(|s| s != "chroot").or(Some(name.into()));
        }
    }
    if subtype.is_some() && kind == "physical" {
        set(&mut kind, "virtual");
    }
    // Salt's EC2 refinement.
    if matches!(kind.as_str(), "qemu" | "kvm" | "xen" | "amazon") {
        if dmi.sys_vendor.as_deref() == Some("Amazon EC2") {
            if kind != "xen" {
                set(&mut kind, "Nitro");
            }
            subtype = Some(match &dmi.product_name {
                Some(p) => format!("Amazon EC2 ({p})"),
                None => "Amazon EC2".into(),
            });
        } else if dmi
            .bios_version
            .as_deref()
            .is_some_and(|v| v.contains(".amazon"))
        {
            subtype = Some("Amazon EC2".into());
        }
    }
    Virtual { kind, subtype }
}

#[cfg(test)]
#[path = "virt_tests.rs"]
mod tests;
