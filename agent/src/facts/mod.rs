//! Facts about the node ("grains"), with Salt's names where Salt has one.
//!
//! [`collect`] reads the machine (sysinfo, `/etc/machine-id`); [`grains`]
//! shapes what was read into the grain tree and is pure, so it is tested
//! with fixed inputs. Static grains from the agent's config are laid over
//! the collected ones (a config value wins, as in Salt).

pub mod external;

use serde_json::{Map, Value, json};
use std::net::IpAddr;
use sysinfo::{Networks, System};

/// What was read from the machine.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub host_name: String,
    pub os_name: String,
    pub os_id: String,
    pub os_id_like: Vec<String>,
    pub os_version: String,
    pub os_codename: String,
    pub kernel: String,
    pub kernel_release: String,
    pub cpu_arch: String,
    pub num_cpus: usize,
    pub cpu_model: String,
    pub mem_total_bytes: u64,
    pub swap_total_bytes: u64,
    pub addresses: Vec<IpAddr>,
    pub machine_id: String,
}

pub fn collect() -> Machine {
    let mut sys = System::new().unwrap_or_else(|_| System::new_all().expect("sysinfo works"));
    sys.refresh_memory();
    sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let mut addresses: Vec<IpAddr> = Networks::new_with_refreshed_list()
        .map(|n| {
            n.values()
                .flat_map(|data| data.ip_networks().iter().map(|ip| ip.addr))
                .collect()
        })
        .unwrap_or_default();
    addresses.sort();
    addresses.dedup();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    Machine {
        host_name: System::host_name().unwrap_or_default(),
        os_name: System::name().unwrap_or_default(),
        os_id: System::distribution_id(),
        os_id_like: System::distribution_id_like(),
        os_version: System::os_version().unwrap_or_default(),
        os_codename: codename,
        kernel: std::env::consts::OS.to_owned(),
        kernel_release: System::kernel_version().unwrap_or_default(),
        cpu_arch: System::cpu_arch(),
        num_cpus: sys.cpus().len(),
        cpu_model: sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_owned())
            .unwrap_or_default(),
        mem_total_bytes: sys.total_memory(),
        swap_total_bytes: sys.total_swap(),
        addresses,
        machine_id: std::fs::read_to_string("/etc/machine-id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// Salt's `os_family` for a distribution id and its `ID_LIKE` list.
fn os_family(id: &str, like: &[String]) -> String {
    let family = |id: &str| match id {
        "debian" | "ubuntu" | "raspbian" | "linuxmint" | "devuan" => Some("Debian"),
        "rhel" | "centos" | "fedora" | "rocky" | "almalinux" | "amzn" | "ol" => Some("RedHat"),
        "arch" | "manjaro" => Some("Arch"),
        "alpine" => Some("Alpine"),
        "opensuse" | "sles" | "suse" | "opensuse-leap" | "opensuse-tumbleweed" => Some("Suse"),
        "gentoo" => Some("Gentoo"),
        _ => None,
    };
    family(id)
        .or_else(|| like.iter().find_map(|l| family(l)))
        .map(str::to_owned)
        .unwrap_or_else(|| capitalised(id))
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

const MIB: u64 = 1024 * 1024;

/// The grain tree for node `id` on `m`, with `roles` and the config's static
/// grains (which win over collected ones).
pub fn grains(
    id: &str,
    m: &Machine,
    roles: &[String],
    extra: &Map<String, Value>,
) -> Map<String, Value> {
    // Salt's `os` is the distribution's short name: "Debian", "Ubuntu", "CentOS".
    let os = m
        .os_name
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .unwrap_or_else(|| capitalised(&m.os_id));
    let major: Value = m
        .os_version
        .split('.')
        .next()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Value::from)
        .unwrap_or_else(|| Value::from(m.os_version.clone()));
    let host = m.host_name.split('.').next().unwrap_or_default().to_owned();
    let ipv4: Vec<String> = m
        .addresses
        .iter()
        .filter(|a| a.is_ipv4())
        .map(|a| a.to_string())
        .collect();
    let ipv6: Vec<String> = m
        .addresses
        .iter()
        .filter(|a| a.is_ipv6())
        .map(|a| a.to_string())
        .collect();
    let mut g = json!({
        "id": id,
        "host": host,
        "nodename": m.host_name,
        "fqdn": m.host_name,
        "os": os,
        "os_family": os_family(&m.os_id, &m.os_id_like),
        "osrelease": m.os_version,
        "osmajorrelease": major,
        "oscodename": m.os_codename,
        "osfinger": format!("{os}-{}", m.os_version.split('.').next().unwrap_or_default()),
        "kernel": capitalised(&m.kernel),
        "kernelrelease": m.kernel_release,
        "cpuarch": m.cpu_arch,
        "num_cpus": m.num_cpus,
        "cpu_model": m.cpu_model,
        "mem_total": m.mem_total_bytes / MIB,
        "swap_total": m.swap_total_bytes / MIB,
        "ipv4": ipv4,
        "ipv6": ipv6,
        "machine_id": m.machine_id,
        "roles": roles,
    });
    let map = g.as_object_mut().expect("a JSON object");
    for (k, v) in extra {
        map.insert(k.clone(), v.clone());
    }
    std::mem::take(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> Machine {
        Machine {
            host_name: "web-1.example.com".into(),
            os_name: "Debian GNU/Linux".into(),
            os_id: "debian".into(),
            os_version: "12".into(),
            os_codename: "bookworm".into(),
            kernel: "linux".into(),
            kernel_release: "6.1.0-18-amd64".into(),
            cpu_arch: "x86_64".into(),
            num_cpus: 2,
            cpu_model: "Some CPU".into(),
            mem_total_bytes: 2048 * MIB,
            addresses: vec![
                "127.0.0.1".parse().unwrap(),
                "10.0.0.5".parse().unwrap(),
                "::1".parse().unwrap(),
            ],
            ..Machine::default()
        }
    }

    #[test]
    fn grains_use_salts_names_and_shapes() {
        let g = grains("web-1", &debian(), &["web".into()], &Map::new());
        assert_eq!(g["id"], "web-1");
        assert_eq!(g["host"], "web-1");
        assert_eq!(g["fqdn"], "web-1.example.com");
        assert_eq!(g["os"], "Debian");
        assert_eq!(g["os_family"], "Debian");
        assert_eq!(g["osmajorrelease"], 12);
        assert_eq!(g["osfinger"], "Debian-12");
        assert_eq!(g["kernel"], "Linux");
        assert_eq!(g["mem_total"], 2048);
        assert_eq!(g["num_cpus"], 2);
        assert_eq!(g["ipv4"], json!(["127.0.0.1", "10.0.0.5"]));
        assert_eq!(g["ipv6"], json!(["::1"]));
        assert_eq!(g["roles"], json!(["web"]));
    }

    #[test]
    fn os_family_follows_id_like_and_falls_back_to_the_id() {
        assert_eq!(os_family("ubuntu", &[]), "Debian");
        assert_eq!(
            os_family("pop", &["ubuntu".into(), "debian".into()]),
            "Debian"
        );
        assert_eq!(os_family("rocky", &[]), "RedHat");
        assert_eq!(os_family("nixos", &[]), "Nixos");
    }

    #[test]
    fn static_grains_from_config_win() {
        let mut extra = Map::new();
        extra.insert("os".into(), "Custom".into());
        extra.insert("datacenter".into(), json!({"name": "ams1", "rack": 4}));
        let g = grains("web-1", &debian(), &[], &extra);
        assert_eq!(g["os"], "Custom");
        assert_eq!(g["datacenter"]["rack"], 4);
    }
}
