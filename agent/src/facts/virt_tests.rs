//! `virtual` / `virtual_subtype` decided from fixed evidence, one case a row.

use super::*;

/// The three inputs of [`detect`], built by hand.
#[derive(Default, Clone)]
struct Case {
    ev: Evidence,
    cpu: Cpu,
    dmi: Dmi,
}

impl Case {
    fn vendor(mut self, sys_vendor: &str, product: &str) -> Case {
        self.dmi.sys_vendor = Some(sys_vendor.into());
        self.dmi.product_name = Some(product.into());
        self
    }
    fn hypervisor(mut self) -> Case {
        self.cpu.flags = Some(vec!["fpu".into(), "hypervisor".into()]);
        self
    }
    fn kvm_clock(mut self) -> Case {
        self.ev.clocksources = vec!["kvm-clock".into(), "tsc".into()];
        self
    }
    fn with(mut self, f: impl FnOnce(&mut Evidence)) -> Case {
        f(&mut self.ev);
        self
    }
}

fn check(name: &str, c: Case, kind: &str, subtype: Option<&str>) {
    let v = detect(&c.ev, &c.cpu, &c.dmi);
    assert_eq!(
        (v.kind.as_str(), v.subtype.as_deref()),
        (kind, subtype),
        "{name}"
    );
}

fn docker_v1_cgroup() -> String {
    "12:devices:/docker/4f1c0f\n11:cpu,cpuacct:/docker/4f1c0f\n0::/system.slice/containerd.service\n".into()
}

#[test]
fn virtual_grains_with_salts_values() {
    let bare = Case::default().vendor("Dell Inc.", "PowerEdge R640");
    check("bare metal", bare.clone(), "physical", None);
    check("nothing readable", Case::default(), "physical", None);
    check(
        "KVM named in DMI",
        Case::default().vendor("QEMU", "KVM").hypervisor(),
        "kvm",
        None,
    );
    let q35 = Case::default()
        .vendor("QEMU", "Standard PC (Q35 + ICH9, 2009)")
        .hypervisor();
    check("KVM by its clock", q35.clone().kvm_clock(), "kvm", None);
    check("QEMU without KVM", q35, "qemu", None);
    check(
        "VMware",
        Case::default()
            .vendor("VMware, Inc.", "VMware Virtual Platform")
            .hypervisor(),
        "VMware",
        None,
    );
    check(
        "VirtualBox",
        Case::default()
            .vendor("innotek GmbH", "VirtualBox")
            .hypervisor(),
        "VirtualBox",
        None,
    );
    check(
        "Hyper-V",
        Case::default()
            .vendor("Microsoft Corporation", "Virtual Machine")
            .hypervisor()
            .with(|e| e.vmbus = true),
        "VirtualPC",
        None,
    );
    check(
        "Xen PV domU",
        Case::default().hypervisor().with(|e| {
            e.proc_xen = true;
            e.hypervisor_type = Some("xen".into());
            e.xen_capabilities = Some(String::new());
        }),
        "xen",
        Some("Xen PV DomU"),
    );
    check(
        "Xen dom0",
        bare.clone().with(|e| {
            e.proc_xen = true;
            e.xen_xsd_kva = true;
            e.xen_capabilities = Some("control_d\n".into());
        }),
        "xen",
        Some("Xen Dom0"),
    );
    check(
        "EC2 on Xen",
        Case::default()
            .vendor("Xen", "HVM domU")
            .hypervisor()
            .with(|e| e.sys_bus_xen = true),
        "xen",
        Some("Xen HVM DomU"),
    );
    let mut old_ec2 = Case::default().vendor("Xen", "HVM domU").hypervisor();
    old_ec2.dmi.bios_version = Some("4.11.amazon".into());
    check(
        "EC2 on Xen, by its BIOS",
        old_ec2,
        "xen",
        Some("Amazon EC2"),
    );
    check(
        "EC2 Nitro",
        Case::default()
            .vendor("Amazon EC2", "m5.large")
            .hypervisor()
            .kvm_clock(),
        "Nitro",
        Some("Amazon EC2"),
    );
    check(
        "GCE",
        Case::default()
            .vendor("Google", "Google Compute Engine")
            .hypervisor()
            .kvm_clock(),
        "gce",
        None,
    );
    let mut rhev = Case::default()
        .vendor("Red Hat", "RHEV Hypervisor")
        .hypervisor();
    rhev.dmi.bios_vendor = Some("SeaBIOS".into());
    check("RHEV", rhev, "kvm", Some("rhev"));
    let mut uml = Case::default();
    uml.cpu.vendor_id = Some("User Mode Linux".into());
    check("UML", uml, "uml", None);
    let mut qemu_cpu = bare.clone();
    qemu_cpu.cpu.qemu_virtual_cpu = true;
    check("a QEMU Virtual CPU", qemu_cpu, "kvm", None);
    check(
        "a chroot on bare metal",
        bare.clone().with(|e| e.chroot = Some(true)),
        "virtual",
        Some("chroot"),
    );
}

#[test]
fn containers_win_over_the_machine_under_them() {
    let kvm = Case::default()
        .vendor("QEMU", "KVM")
        .hypervisor()
        .kvm_clock();
    check(
        "Docker, cgroup v1",
        Case::default().with(|e| {
            e.dockerenv = true;
            e.pid1_cgroup = Some(docker_v1_cgroup());
        }),
        "container",
        Some("Docker"),
    );
    check(
        "Docker, cgroup v1, no marker file",
        Case::default().with(|e| e.pid1_cgroup = Some(docker_v1_cgroup())),
        "container",
        Some("Docker"),
    );
    check(
        "Docker in KVM, cgroup v2",
        kvm.clone().with(|e| {
            e.dockerenv = true;
            e.pid1_cgroup = Some("0::/\n".into());
        }),
        "container",
        Some("Docker"),
    );
    check(
        "container=docker",
        kvm.clone()
            .with(|e| e.pid1_container = Some("docker".into())),
        "container",
        Some("Docker"),
    );
    check(
        "LXC by environment",
        kvm.clone().with(|e| e.pid1_container = Some("lxc".into())),
        "container",
        Some("LXC"),
    );
    check(
        "LXC by cgroup",
        Case::default().with(|e| e.pid1_cgroup = Some("2:cpu:/lxc/web1\n".into())),
        "container",
        Some("LXC"),
    );
    check(
        "systemd-nspawn",
        kvm.clone()
            .with(|e| e.run_container = Some("systemd-nspawn".into())),
        "systemd-nspawn",
        None,
    );
    check(
        "Podman",
        Case::default().with(|e| {
            e.containerenv = true;
            e.run_container = Some("podman".into());
        }),
        "container",
        Some("libpod"),
    );
    check(
        "Kubernetes pod, cgroup v1",
        Case::default().with(|e| {
            e.dockerenv = true;
            e.pid1_cgroup = Some("4:memory:/kubepods/besteffort/pod1/abc\n".into());
        }),
        "container",
        Some("kubernetes"),
    );
    check(
        "Kubernetes pod, Salt's evidence only",
        Case::default()
            .with(|e| e.pid1_cgroup = Some("4:memory:/kubepods/burstable/pod1\n".into())),
        "virtual",
        Some("kubernetes"),
    );
    check(
        "OpenVZ container",
        Case::default().with(|e| {
            e.vz = true;
            e.vz_veinfo = true;
        }),
        "openvzve",
        None,
    );
    check(
        "OpenVZ host",
        Case::default().with(|e| {
            e.vz = true;
            e.vz_version = true;
            e.proc_bc = true;
            e.env_id = Some(0);
        }),
        "openvzhn",
        None,
    );
    check(
        "WSL is nothing Salt names",
        Case::default()
            .with(|e| e.kernel_release = Some("5.15.90.1-microsoft-standard-WSL2".into())),
        "physical",
        None,
    );
}

#[test]
fn what_systemd_detect_virt_would_say() {
    let c = Case::default()
        .vendor("QEMU", "Standard PC (i440FX + PIIX, 1996)")
        .hypervisor();
    assert_eq!(systemd_detect_virt(&c.ev, &c.cpu, &c.dmi), Some("qemu"));
    let c = c.kvm_clock();
    assert_eq!(systemd_detect_virt(&c.ev, &c.cpu, &c.dmi), Some("kvm"));
    let c = Case::default().hypervisor();
    assert_eq!(systemd_detect_virt(&c.ev, &c.cpu, &c.dmi), Some("vm-other"));
    let c = Case::default().with(|e| e.dockerenv = true);
    assert_eq!(systemd_detect_virt(&c.ev, &c.cpu, &c.dmi), Some("docker"));
    let c = Case::default().with(|e| e.pid1_container = Some("oci".into()));
    assert_eq!(systemd_detect_virt(&c.ev, &c.cpu, &c.dmi), Some("docker"));
    let c = Case::default();
    assert_eq!(systemd_detect_virt(&c.ev, &c.cpu, &c.dmi), None);
}

#[test]
fn evidence_read_from_a_tree() {
    use crate::facts::root::Tree;
    let t = Tree::new();
    t.file("/.dockerenv", "")
        .file("/proc/1/cgroup", "0::/\n")
        .file("/proc/1/environ", "PATH=/bin\0container=lxc\0HOME=/\0")
        .file("/proc/self/status", "Name:\tagent\nenvID:\t101\n")
        .file(
            "/sys/devices/system/clocksource/clocksource0/available_clocksource",
            "kvm-clock tsc acpi_pm \n",
        )
        .file("/run/systemd/container", "docker\n")
        .dir("/sys/bus/vmbus");
    let ev = collect(&t.root());
    assert!(ev.dockerenv && ev.vmbus && !ev.containerenv);
    assert_eq!(ev.pid1_cgroup.as_deref(), Some("0::/\n"));
    assert_eq!(ev.pid1_container.as_deref(), Some("lxc"));
    assert_eq!(ev.env_id, Some(101));
    assert_eq!(ev.clocksources, ["kvm-clock", "tsc", "acpi_pm"]);
    assert_eq!(ev.run_container.as_deref(), Some("docker"));
    assert_eq!(ev.chroot, None);
}
