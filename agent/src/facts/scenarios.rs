//! Whole machines from fixture trees — a Docker container in a KVM guest,
//! a KVM guest, bare metal, a machine with only loopback, an IPv6-only one —
//! collected with [`collect_at`] and shaped by [`grains`].

use super::root::Tree;
use super::*;
use serde_json::{Map, Value, json};

/// What every fixture machine has: a Debian 12 with one CPU.
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
        .file(
            "/proc/cpuinfo",
            &format!("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nflags\t\t: {flags}\n"),
        )
        .file("/proc/meminfo", "MemTotal:        4194304 kB\nSwapTotal:             0 kB\n")
        .file("/proc/self/status", "Name:\tcluster-agent\nPid:\t321\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
        .file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
        .file("/etc/group", "root:x:0:\n")
        .file("/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        .file("/etc/timezone", "Etc/UTC\n")
        .file("/proc/net/dev", "")
        .file("/sys/class/net/lo/address", "00:00:00:00:00:00\n")
        .file("/sys/class/net/lo/mtu", "65536\n");
}

const ROUTE_HEADER: &str =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
const LO_INET6: &str = "00000000000000000000000000000001 01 80 10 80       lo\n";
const LO_V6_ROUTES: &str = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
    00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n\
    00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
    00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

fn eth0(t: &Tree, mac: &str) {
    t.file("/sys/class/net/eth0/address", &format!("{mac}\n"))
        .file("/sys/class/net/eth0/mtu", "1500\n");
}

fn collected(t: &Tree, root: Root) -> Map<String, Value> {
    let _ = t;
    let m = collect_at(&root);
    grains("node-1", &m, &["web".into()], &Map::new())
}

#[test]
fn a_docker_container_in_a_kvm_guest() {
    let t = Tree::new();
    base(&t, "4f1c0f", "fpu sse2 hypervisor");
    eth0(&t, "02:42:ac:11:00:02");
    t.file("/.dockerenv", "")
        .file(
            "/proc/1/cgroup",
            "12:devices:/docker/4f1c0f\n0::/docker/4f1c0f\n",
        )
        .file("/proc/1/cmdline", "sleep\0infinity\0")
        .file("/sys/class/dmi/id/sys_vendor", "QEMU\n")
        .file("/sys/class/dmi/id/product_name", "KVM\n")
        .file(
            "/etc/hosts",
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n172.17.0.2\t4f1c0f\n",
        )
        .file("/etc/resolv.conf", "nameserver 10.0.0.2\noptions ndots:0\n")
        .file("/proc/net/if_inet6", LO_INET6)
        .file(
            "/proc/net/route",
            &format!("{ROUTE_HEADER}eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
        )
        .file("/proc/net/ipv6_route", LO_V6_ROUTES);
    let root = t
        .root()
        .with_ipv4("lo", "127.0.0.1/8")
        .with_ipv4("eth0", "172.17.0.2/16")
        .with_env("PATH", "/usr/local/bin:/usr/bin:/bin");
    let g = collected(&t, root);
    assert_eq!(g["virtual"], "container");
    assert_eq!(g["virtual_subtype"], "Docker");
    assert_eq!(g["init"], "unknown");
    assert_eq!(g["fqdn"], "4f1c0f");
    assert!(g.get("domain").is_none());
    assert_eq!(g["fqdns"], json!(["4f1c0f"]));
    assert_eq!(g["fqdn_ip4"], json!(["172.17.0.2"]));
    assert_eq!(g["fqdn_ip6"], json!([]));
    assert_eq!(g["ip4_gw"], "172.17.0.1");
    assert_eq!(g["ip6_gw"], false);
    assert_eq!(g["ip_gw"], true);
    assert_eq!(
        g["ip4_interfaces"],
        json!({"eth0": ["172.17.0.2"], "lo": ["127.0.0.1"]})
    );
    assert_eq!(
        g["ip_interfaces"],
        json!({"eth0": ["172.17.0.2"], "lo": ["127.0.0.1", "::1"]})
    );
    assert_eq!(g["ipv4"], json!(["127.0.0.1", "172.17.0.2"]));
    assert_eq!(
        g["dns"],
        json!({"nameservers": ["10.0.0.2"], "ip4_nameservers": ["10.0.0.2"], "ip6_nameservers": [],
               "sortlist": [], "domain": "", "search": [], "options": ["ndots:0"]})
    );
    assert_eq!(g["path"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(
        g["systempath"],
        json!(["/usr/local/bin", "/usr/bin", "/bin"])
    );
    assert_eq!((&g["uid"], &g["username"]), (&json!(0), &json!("root")));
    assert!(g.get("pid").is_none(), "a restart would change it");
    assert!(g.get("disks").is_none() && g.get("gpus").is_none() && g.get("systemd").is_none());
}

#[test]
fn a_kvm_guest() {
    let t = Tree::new();
    base(&t, "web-1", "fpu sse2 hypervisor lahf_lm");
    eth0(&t, "52:54:00:12:34:56");
    t.dir("/run/systemd/system")
        .file("/usr/lib/systemd/libsystemd-shared-252.so", "")
        .file("/proc/1/cmdline", "/sbin/init\0")
        .file("/proc/1/cgroup", "0::/init.scope\n")
        .file(
            "/proc/cmdline",
            "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=4f2c ro console=ttyS0\n",
        )
        .file("/sys/class/dmi/id/sys_vendor", "QEMU\n")
        .file("/sys/class/dmi/id/product_name", "KVM\n")
        .file(
            "/sys/class/dmi/id/product_uuid",
            "8F4A1B2C-0000-4000-8000-00000000ABCD\n",
        )
        .file("/sys/class/dmi/id/bios_vendor", "SeaBIOS\n")
        .file("/sys/class/dmi/id/bios_version", "1.16.2-debian-1.16.2-1\n")
        .file("/sys/class/dmi/id/bios_date", "04/01/2014\n")
        .file(
            "/sys/devices/system/clocksource/clocksource0/available_clocksource",
            "kvm-clock tsc acpi_pm\n",
        )
        .file(
            "/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/queue/rotational",
            "1\n",
        )
        .link(
            "/sys/block/vda",
            "../devices/pci0000:00/0000:00:04.0/virtio1/block/vda",
        )
        .file("/sys/devices/virtual/block/loop0/queue/rotational", "1\n")
        .link("/sys/block/loop0", "../devices/virtual/block/loop0")
        .file("/sys/bus/pci/devices/0000:00:02.0/class", "0x030000\n")
        .file("/sys/bus/pci/devices/0000:00:02.0/vendor", "0x1234\n")
        .file("/sys/bus/pci/devices/0000:00:02.0/device", "0x1111\n")
        .file("/sys/bus/pci/devices/0000:00:03.0/class", "0x020000\n")
        .file(
            "/etc/hosts",
            "127.0.0.1 localhost\n127.0.1.1 web-1.example.com web-1\n",
        )
        .file(
            "/etc/resolv.conf",
            "search example.com\nnameserver 192.168.122.1\n",
        )
        .file(
            "/proc/net/if_inet6",
            format!("{LO_INET6}fe80000000000000505400fffe123456 02 40 20 80     eth0\n").as_str(),
        )
        .file(
            "/proc/net/route",
            &format!(
                "{ROUTE_HEADER}eth0\t00000000\t017AA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
            ),
        )
        .file("/proc/net/ipv6_route", LO_V6_ROUTES);
    let root = t
        .root()
        .with_ipv4("lo", "127.0.0.1/8")
        .with_ipv4("eth0", "192.168.122.10/24")
        .with_env("LANG", "en_US.UTF-8")
        .with_env("TZ", "UTC0");
    let g = collected(&t, root);
    assert_eq!(g["virtual"], "kvm");
    assert!(g.get("virtual_subtype").is_none());
    assert_eq!(g["manufacturer"], "QEMU");
    assert_eq!(g["productname"], "KVM");
    assert_eq!(g["uuid"], "8f4a1b2c-0000-4000-8000-00000000abcd");
    assert!(
        g.get("serialnumber").is_none(),
        "root-only, not readable here"
    );
    assert_eq!(g["biosversion"], "1.16.2-debian-1.16.2-1");
    assert_eq!(g["biosreleasedate"], "04/01/2014");
    assert_eq!(g["init"], "systemd");
    assert_eq!(g["systemd"], json!({"version": "252"}));
    assert_eq!(g["fqdn"], "web-1.example.com");
    assert_eq!(
        (&g["host"], &g["domain"]),
        (&json!("web-1"), &json!("example.com"))
    );
    assert_eq!(
        (&g["nodename"], &g["localhost"]),
        (&json!("web-1"), &json!("web-1"))
    );
    assert_eq!(g["fqdn_ip4"], json!(["127.0.1.1"]));
    assert_eq!(g["fqdns"], json!([]));
    assert_eq!(g["disks"], json!(["vda"]));
    assert_eq!(g["ssds"], json!([]));
    assert_eq!(
        g["gpus"],
        json!([{"vendor": "unknown", "model": "Device 1111"}])
    );
    assert_eq!(g["num_gpus"], 1);
    assert_eq!(
        g["kernelparams"],
        json!([
            ["BOOT_IMAGE", "/boot/vmlinuz-6.1.0-18-amd64"],
            ["root", "UUID=4f2c"],
            ["ro", null],
            ["console", "ttyS0"]
        ])
    );
    assert_eq!(
        g["kernelversion"],
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
    );
    assert_eq!(
        g["cpu_flags"],
        json!(["fpu", "sse2", "hypervisor", "lahf_lm"])
    );
    assert_eq!(g["cpu_model"], "Test CPU");
    assert_eq!(g["mem_total"], 4096);
    assert_eq!(g["ip4_gw"], "192.168.122.1");
    assert_eq!(
        g["hwaddr_interfaces"],
        json!({"eth0": "52:54:00:12:34:56", "lo": "00:00:00:00:00:00"})
    );
    assert_eq!(
        g["ip6_interfaces"],
        json!({"eth0": ["fe80::5054:ff:fe12:3456"], "lo": ["::1"]})
    );
    assert_eq!(
        g["locale_info"],
        json!({"defaultlanguage": "en_US", "defaultencoding": "UTF-8", "detectedencoding": "utf-8", "timezone": "UTC"})
    );
    assert_eq!(g["timezone"], "Etc/UTC");
    assert_eq!(g["dns"]["search"], json!(["example.com"]));
    assert_eq!(g["osrelease_info"], json!([12]));
    assert_eq!(g["oscodename"], "bookworm");
    assert_eq!(g["lsb_distrib_id"], "Debian GNU/Linux");
    assert_eq!(g["machine_id"], "0123456789abcdef0123456789abcdef");
}

#[test]
fn bare_metal() {
    let t = Tree::new();
    base(&t, "db-1.example.com", "fpu sse2 vmx");
    eth0(&t, "b8:ca:3a:00:11:22");
    t.file("/sys/class/dmi/id/sys_vendor", "Dell Inc.\n")
        .file("/sys/class/dmi/id/product_name", "PowerEdge R640\n")
        .file("/sys/class/dmi/id/product_serial", "7XK2QX2\n")
        .file("/sys/class/dmi/id/board_name", "0X45NX\n")
        .file("/sys/class/dmi/id/bios_vendor", "Dell Inc.\n")
        .file("/proc/1/cgroup", "0::/init.scope\n")
        .file(
            "/sys/devices/system/clocksource/clocksource0/available_clocksource",
            "tsc hpet acpi_pm\n",
        )
        .file(
            "/sys/devices/pci0000:00/0000:00:17.0/ata1/block/sda/queue/rotational",
            "1\n",
        )
        .link(
            "/sys/block/sda",
            "../devices/pci0000:00/0000:00:17.0/ata1/block/sda",
        )
        .file(
            "/sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1/queue/rotational",
            "0\n",
        )
        .link(
            "/sys/block/nvme0n1",
            "../devices/pci0000:00/0000:00:1d.0/nvme/nvme0/nvme0n1",
        )
        .file("/sys/bus/pci/devices/0000:03:00.0/class", "0x030000\n")
        .file("/sys/bus/pci/devices/0000:03:00.0/vendor", "0x102b\n")
        .file("/sys/bus/pci/devices/0000:03:00.0/device", "0x0536\n")
        .file(
            "/etc/hosts",
            "127.0.0.1 localhost\n10.1.0.7 db-1.example.com db-1\n",
        )
        .file("/proc/net/if_inet6", LO_INET6)
        .file(
            "/proc/net/route",
            &format!("{ROUTE_HEADER}eth0\t00000000\t0100010A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
        )
        .file("/proc/net/ipv6_route", LO_V6_ROUTES);
    let root = t
        .root()
        .with_ipv4("lo", "127.0.0.1/8")
        .with_ipv4("eth0", "10.1.0.7/24");
    let g = collected(&t, root);
    assert_eq!(g["virtual"], "physical");
    assert!(g.get("virtual_subtype").is_none());
    assert_eq!(g["manufacturer"], "Dell Inc.");
    assert_eq!(g["serialnumber"], "7XK2QX2");
    assert_eq!(g["boardname"], "0X45NX");
    assert_eq!(g["disks"], json!(["sda"]));
    assert_eq!(g["ssds"], json!(["nvme0n1"]));
    assert_eq!(
        g["gpus"],
        json!([{"vendor": "matrox", "model": "Device 0536"}])
    );
    assert_eq!(g["fqdn"], "db-1.example.com");
    assert_eq!(g["host"], "db-1");
    assert_eq!(g["fqdns"], json!(["db-1.example.com"]));
    assert_eq!(g["fqdn_ip4"], json!(["10.1.0.7"]));
    assert!(g.get("init").is_none(), "pid 1 not readable in this tree");
    assert_eq!(g["ip4_gw"], "10.1.0.1");
}

#[test]
fn only_loopback() {
    let t = Tree::new();
    base(&t, "island", "fpu");
    t.file("/etc/hosts", "127.0.0.1 localhost\n")
        .file("/proc/net/if_inet6", LO_INET6)
        .file("/proc/net/route", ROUTE_HEADER)
        .file("/proc/net/ipv6_route", LO_V6_ROUTES);
    let g = collected(&t, t.root().with_ipv4("lo", "127.0.0.1/8"));
    assert_eq!(g["ip_interfaces"], json!({"lo": ["127.0.0.1", "::1"]}));
    assert_eq!(g["hwaddr_interfaces"], json!({"lo": "00:00:00:00:00:00"}));
    assert_eq!(
        (&g["ip_gw"], &g["ip4_gw"], &g["ip6_gw"]),
        (&json!(false), &json!(false), &json!(false))
    );
    assert_eq!(g["ipv4"], json!(["127.0.0.1"]));
    assert_eq!(g["ipv6"], json!(["::1"]));
    assert_eq!(g["fqdns"], json!([]));
    assert_eq!(g["fqdn"], "island");
    assert_eq!(g["fqdn_ip4"], json!([]));
    assert!(g.get("dns").is_none(), "no resolv.conf");
}

#[test]
fn ipv6_only() {
    let t = Tree::new();
    base(&t, "six", "fpu hypervisor");
    eth0(&t, "02:00:00:00:00:06");
    t.file("/etc/hosts", "::1 localhost\n2001:db8::6 six.example.net six\n")
        .file("/etc/resolv.conf", "nameserver 2001:4860:4860::8888\n")
        .file(
            "/proc/net/if_inet6",
            &format!(
                "{LO_INET6}20010db8000000000000000000000006 02 40 00 80     eth0\n\
                 fe800000000000000000000000000006 02 40 20 80     eth0\n"
            ),
        )
        .file("/proc/net/route", ROUTE_HEADER)
        .file(
            "/proc/net/ipv6_route",
            &format!(
                "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                 fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n{LO_V6_ROUTES}"
            ),
        );
    let g = collected(&t, t.root().with_ipv4("lo", "127.0.0.1/8"));
    assert_eq!(g["ip4_gw"], false);
    assert_eq!(g["ip6_gw"], "fe80::1");
    assert_eq!(g["ip_gw"], true);
    assert_eq!(
        g["ip4_interfaces"],
        json!({"eth0": [], "lo": ["127.0.0.1"]})
    );
    assert_eq!(
        g["ip6_interfaces"],
        json!({"eth0": ["2001:db8::6", "fe80::6"], "lo": ["::1"]})
    );
    assert_eq!(g["ipv6"], json!(["::1", "2001:db8::6", "fe80::6"]));
    assert_eq!(g["fqdn"], "six.example.net");
    assert_eq!(g["fqdn_ip6"], json!(["2001:db8::6"]));
    assert_eq!(g["fqdn_ip4"], json!([]));
    assert_eq!(g["fqdns"], json!(["six.example.net"]));
    assert_eq!(g["dns"]["ip6_nameservers"], json!(["2001:4860:4860::8888"]));
    assert_eq!(g["dns"]["ip4_nameservers"], json!([]));
    assert_eq!(
        g["virtual"], "physical",
        "a hypervisor flag alone names nothing Salt maps"
    );
}
