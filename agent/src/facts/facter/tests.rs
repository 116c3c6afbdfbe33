//! Facter's shapes from fixed machines: fixture trees collected with
//! [`collect_at`] (a KVM Debian guest, loopback only, IPv6 only, a Docker
//! container), a machine built by hand, and this machine.

use super::facts;
use crate::facts::root::Tree;
use crate::facts::{Machine, Root, collect, collect_at, cpu, mounts};
use serde_json::{Value, json};

/// A Debian 12 guest's common files, as the grains' scenarios have them.
fn base(t: &Tree, hostname: &str, flags: &str) {
    t.file("/proc/sys/kernel/ostype", "Linux\n")
        .file("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")
        .file("/proc/sys/kernel/version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n")
        .file("/proc/sys/kernel/hostname", &format!("{hostname}\n"))
        .file("/proc/sys/kernel/arch", "x86_64\n")
        .file(
            "/etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n\
             VERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        )
        .file("/etc/debian_version", "12.5\n")
        .file(
            "/proc/cpuinfo",
            &format!(
                "processor\t: 0\nvendor_id\t: GenuineIntel\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n\
                 processor\t: 1\nvendor_id\t: GenuineIntel\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 2\nmodel name\t: Test CPU\nflags\t\t: {flags}\n"
            ),
        )
        .file("/proc/meminfo", "MemTotal:        2034238 kB\nSwapTotal:       1048576 kB\n")
        .file("/proc/self/status", "Name:\tcluster-agent\nPid:\t321\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
        .file("/etc/group", "root:x:0:\n")
        .file("/proc/net/dev", "")
        .file("/sys/class/net/lo/address", "00:00:00:00:00:00\n")
        .file("/sys/class/net/lo/mtu", "65536\n");
}

const ROUTE_HEADER: &str =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
const LO_INET6: &str = "00000000000000000000000000000001 01 80 10 80       lo\n";
const NO_V6_ROUTES: &str = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
    00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";

fn eth0(t: &Tree, mac: &str) {
    t.file("/sys/class/net/eth0/address", &format!("{mac}\n"))
        .file("/sys/class/net/eth0/mtu", "1500\n");
}

fn kvm_debian() -> Value {
    let t = Tree::new();
    base(&t, "web-1", "fpu sse2 hypervisor");
    eth0(&t, "52:54:00:12:34:56");
    t.file("/sys/class/dmi/id/sys_vendor", "QEMU\n")
        .file("/sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n")
        .file("/sys/class/dmi/id/product_uuid", "6f1b2c3d-0000-4000-8000-000000000001\n")
        .file("/sys/class/dmi/id/bios_vendor", "SeaBIOS\n")
        .file("/sys/class/dmi/id/bios_version", "1.16.2-debian-1.16.2-1\n")
        .file("/sys/class/dmi/id/bios_date", "04/01/2014\n")
        .file("/sys/devices/system/clocksource/clocksource0/available_clocksource", "kvm-clock tsc\n")
        .file("/sys/devices/system/clocksource/clocksource0/current_clocksource", "kvm-clock\n")
        .file("/etc/hosts", "127.0.0.1\tlocalhost\n10.0.0.5\tweb-1.example.com web-1\n")
        .file(
            "/proc/net/if_inet6",
            &format!(
                "{LO_INET6}20010db8000000000000000000000005 02 40 00 80     eth0\n\
                 fe80000000000000505400fffe123456 02 40 20 80     eth0\n"
            ),
        )
        .file(
            "/proc/net/route",
            &format!("{ROUTE_HEADER}eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
        )
        .file("/proc/net/ipv6_route", NO_V6_ROUTES)
        .file(
            "/proc/self/mounts",
            "/dev/vda1 / ext4 rw,relatime,errors=remount-ro 0 0\nproc /proc proc rw,nosuid 0 0\n\
             sysfs /sys sysfs rw 0 0\ntmpfs /run tmpfs rw,nosuid,size=203424k,mode=755 0 0\n\
             systemd-1 /proc/sys/fs/binfmt_misc autofs rw 0 0\n/dev/vdb1 /srv/my\\040data xfs rw 0 0\n",
        )
        .file("/proc/filesystems", "nodev\tsysfs\nnodev\tproc\n\text4\n\txfs\n\tfuseblk\n\tbtrfs\n")
        .file("/sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda/size", "41943040\n")
        .file("/sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda/queue/rotational", "1\n")
        .file("/sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda/device/vendor", "0x1af4\n")
        .file("/sys/devices/virtual/block/loop0/size", "0\n")
        .link("/sys/block/vda", "../devices/pci0000:00/0000:00:04.0/virtio2/block/vda")
        .link("/sys/block/loop0", "../devices/virtual/block/loop0");
    let root = t
        .root()
        .with_ipv4("lo", "127.0.0.1/8")
        .with_ipv4("eth0", "10.0.0.5/24")
        .with_env("TZ", "UTC0")
        .with_env("PATH", "/usr/bin:/bin");
    Value::Object(facts(&collect_at(&root)))
}

/// `(path, want)`: the value at each `/`-separated path, `None` for absent.
fn check(f: &Value, cases: &[(&str, Option<Value>)]) {
    for (path, want) in cases {
        let got = path.split('/').try_fold(f, |v, k| v.get(k));
        assert_eq!(got, want.as_ref(), "{path}");
    }
}

#[test]
fn a_kvm_debian_guest() {
    let f = kvm_debian();
    check(
        &f,
        &[
            ("os/architecture", Some(json!("amd64"))),
            ("os/hardware", Some(json!("x86_64"))),
            ("os/family", Some(json!("Debian"))),
            ("os/name", Some(json!("Debian"))),
            (
                "os/release",
                Some(json!({"full": "12.5", "major": "12", "minor": "5"})),
            ),
            (
                "os/distro",
                Some(
                    json!({"codename": "bookworm", "description": "Debian GNU/Linux 12 (bookworm)",
                            "id": "Debian", "release": {"full": "12.5", "major": "12", "minor": "5"}}),
                ),
            ),
            ("fips_enabled", Some(json!(false))),
            ("kernel", Some(json!("Linux"))),
            ("kernelrelease", Some(json!("6.1.0-18-amd64"))),
            ("kernelversion", Some(json!("6.1.0"))),
            ("kernelmajversion", Some(json!("6.1"))),
            (
                "processors",
                Some(
                    json!({"cores": 2, "count": 2, "isa": "x86_64", "models": ["Test CPU", "Test CPU"],
                            "physicalcount": 1, "threads": 1}),
                ),
            ),
            (
                "memory",
                Some(
                    json!({"system": {"total": "1.94 GiB", "total_bytes": 2_083_059_712u64},
                            "swap": {"total": "1.00 GiB", "total_bytes": 1u64 << 30}}),
                ),
            ),
            (
                "identity",
                Some(
                    json!({"gid": 0, "group": "root", "privileged": true, "uid": 0, "user": "root"}),
                ),
            ),
            ("virtual", Some(json!("kvm"))),
            ("is_virtual", Some(json!(true))),
            (
                "dmi/bios",
                Some(json!({"release_date": "04/01/2014", "vendor": "SeaBIOS",
                            "version": "1.16.2-debian-1.16.2-1"})),
            ),
            ("dmi/manufacturer", Some(json!("QEMU"))),
            (
                "dmi/product",
                Some(json!({"name": "Standard PC (Q35 + ICH9, 2009)",
                            "uuid": "6f1b2c3d-0000-4000-8000-000000000001"})),
            ),
            ("dmi/board", None),
            ("timezone", Some(json!("UTC"))),
            ("path", Some(json!("/usr/bin:/bin"))),
            ("networking/hostname", Some(json!("web-1"))),
            ("networking/domain", Some(json!("example.com"))),
            ("networking/fqdn", Some(json!("web-1.example.com"))),
            ("networking/primary", Some(json!("eth0"))),
            ("networking/ip", Some(json!("10.0.0.5"))),
            ("networking/netmask", Some(json!("255.255.255.0"))),
            ("networking/network", Some(json!("10.0.0.0"))),
            ("networking/ip6", Some(json!("2001:db8::5"))),
            ("networking/netmask6", Some(json!("ffff:ffff:ffff:ffff::"))),
            ("networking/network6", Some(json!("2001:db8::"))),
            ("networking/scope6", Some(json!("global"))),
            ("networking/mac", Some(json!("52:54:00:12:34:56"))),
            ("networking/mtu", Some(json!(1500))),
            (
                "networking/interfaces/eth0",
                Some(json!({
                    "bindings": [{"address": "10.0.0.5", "netmask": "255.255.255.0", "network": "10.0.0.0"}],
                    "bindings6": [
                        {"address": "2001:db8::5", "netmask": "ffff:ffff:ffff:ffff::",
                         "network": "2001:db8::", "scope6": "global", "flags": ["permanent"]},
                        {"address": "fe80::5054:ff:fe12:3456", "netmask": "ffff:ffff:ffff:ffff::",
                         "network": "fe80::", "scope6": "link", "flags": ["permanent"]},
                    ],
                    "ip": "10.0.0.5", "netmask": "255.255.255.0", "network": "10.0.0.0",
                    "ip6": "2001:db8::5", "netmask6": "ffff:ffff:ffff:ffff::", "network6": "2001:db8::",
                    "scope6": "global", "mac": "52:54:00:12:34:56", "mtu": 1500,
                })),
            ),
            ("networking/interfaces/lo/ip", Some(json!("127.0.0.1"))),
            ("networking/interfaces/lo/ip6", Some(json!("::1"))),
            ("networking/interfaces/lo/scope6", Some(json!("host"))),
            (
                "disks",
                Some(
                    json!({"vda": {"size": "20.00 GiB", "size_bytes": 21_474_836_480u64,
                                    "type": "hdd", "vendor": "0x1af4"}}),
                ),
            ),
            (
                "mountpoints/\u{2f}",
                None, // `/` splits the path: looked at below.
            ),
            ("filesystems", Some(json!("btrfs,ext4,xfs"))),
            ("load_averages", None),
            ("system_uptime", None),
        ],
    );
    let mounts = &f["mountpoints"];
    assert_eq!(
        mounts
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["/".into(), "/run".into(), "/srv/my data".into()])
    );
    // A fixture tree is not mounted: options, no size.
    assert_eq!(
        mounts["/"],
        json!({"device": "/dev/vda1", "filesystem": "ext4",
               "options": ["rw", "relatime", "errors=remount-ro"]})
    );
    assert_eq!(mounts["/run"]["filesystem"], "tmpfs");
}

#[test]
fn loopback_only() {
    let t = Tree::new();
    base(&t, "lonely", "fpu");
    t.file("/proc/net/if_inet6", LO_INET6)
        .file("/proc/net/route", ROUTE_HEADER)
        .file("/proc/net/ipv6_route", NO_V6_ROUTES);
    let root = t.root().with_ipv4("lo", "127.0.0.1/8");
    let f = Value::Object(facts(&collect_at(&root)));
    check(
        &f,
        &[
            ("networking/hostname", Some(json!("lonely"))),
            ("networking/fqdn", Some(json!("lonely"))),
            ("networking/domain", None),
            ("networking/primary", None),
            ("networking/ip", None),
            (
                "networking/interfaces",
                Some(json!({"lo": {
                    "bindings": [{"address": "127.0.0.1", "netmask": "255.0.0.0", "network": "127.0.0.0"}],
                    "bindings6": [{"address": "::1", "netmask": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                   "network": "::1", "scope6": "host", "flags": ["permanent"]}],
                    "ip": "127.0.0.1", "netmask": "255.0.0.0", "network": "127.0.0.0",
                    "ip6": "::1", "netmask6": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                    "network6": "::1", "scope6": "host", "mtu": 65536,
                }})),
            ),
            ("virtual", Some(json!("physical"))),
            ("is_virtual", Some(json!(false))),
            ("dmi", None),
            ("disks", None),
            ("mountpoints", None),
            ("filesystems", None),
        ],
    );
}

#[test]
fn ipv6_only() {
    let t = Tree::new();
    base(&t, "v6", "fpu");
    eth0(&t, "02:00:00:00:00:06");
    t.file(
        "/proc/net/if_inet6",
        &format!("{LO_INET6}20010db8000100000000000000000006 02 40 00 80     eth0\n"),
    )
    .file("/proc/net/route", ROUTE_HEADER)
    .file(
        "/proc/net/ipv6_route",
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
         fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth0\n",
    )
    .file(
        "/etc/resolv.conf",
        "search corp.example.\nnameserver 2001:db8::53\n",
    );
    let root = t.root().with_ipv4("lo", "127.0.0.1/8");
    let f = Value::Object(facts(&collect_at(&root)));
    check(
        &f,
        &[
            ("networking/primary", Some(json!("eth0"))),
            ("networking/ip", None),
            ("networking/ip6", Some(json!("2001:db8:1::6"))),
            ("networking/network6", Some(json!("2001:db8:1::"))),
            ("networking/fqdn", Some(json!("v6.corp.example"))),
            ("networking/domain", Some(json!("corp.example"))),
            ("networking/interfaces/eth0/bindings", None),
            (
                "networking/interfaces/eth0/mac",
                Some(json!("02:00:00:00:00:06")),
            ),
        ],
    );
}

#[test]
fn a_docker_container() {
    let t = Tree::new();
    base(&t, "4f1c0f", "fpu sse2 hypervisor");
    eth0(&t, "02:42:ac:11:00:02");
    t.file("/.dockerenv", "")
        .file("/proc/1/cgroup", "0::/docker/4f1c0f\n")
        .file(
            "/proc/net/route",
            &format!("{ROUTE_HEADER}eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
        )
        .file(
            "/proc/self/mounts",
            "overlay / overlay rw,lowerdir=/l,upperdir=/u 0 0\nproc /proc proc rw 0 0\n",
        );
    let root = t
        .root()
        .with_ipv4("lo", "127.0.0.1/8")
        .with_ipv4("eth0", "172.17.0.2/16");
    let f = Value::Object(facts(&collect_at(&root)));
    check(
        &f,
        &[
            ("virtual", Some(json!("docker"))),
            ("is_virtual", Some(json!(true))),
            ("networking/primary", Some(json!("eth0"))),
            ("networking/ip", Some(json!("172.17.0.2"))),
            ("networking/network", Some(json!("172.17.0.0"))),
            ("networking/ip6", None),
            ("mountpoints/\u{2f}", None),
        ],
    );
    assert_eq!(f["mountpoints"].as_object().map(|m| m.len()), Some(1));
    assert_eq!(
        f["mountpoints"]["/"]["options"],
        json!(["rw", "lowerdir=/l", "upperdir=/u"])
    );
}

#[test]
fn what_was_not_read_is_absent() {
    let f = facts(&Machine::default());
    let keys: Vec<&str> = f.keys().map(String::as_str).collect();
    // Only the verdicts that hold without evidence.
    assert_eq!(keys, ["is_virtual", "virtual"]);
    let arm = Machine {
        cpu: cpu::parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n"),
        memory: cpu::Memory {
            total_bytes: Some(1024),
            swap_bytes: Some(0),
        },
        mounts: Some(mounts::parse_mounts("sysfs /sys sysfs rw 0 0\n")),
        ..Machine::default()
    };
    let f = Value::Object(facts(&arm));
    check(
        &f,
        &[
            ("processors", Some(json!({"count": 1}))),
            (
                "memory",
                Some(json!({"system": {"total": "1.00 KiB", "total_bytes": 1024}})),
            ),
            ("mountpoints", None),
        ],
    );
}

#[test]
fn this_machine() {
    let f = Value::Object(facts(&collect()));
    assert!(f["os"]["family"].is_string());
    assert!(f["processors"]["count"].as_u64().is_some_and(|n| n >= 1));
    assert!(f["networking"]["interfaces"]["lo"].is_object());
    assert_eq!(f["kernel"], "Linux");
    let _ = Root::host();
}
