//! [`grains`]: the [`Machine`] shaped into Salt's core grains, names and
//! value shapes as Salt's (`salt/grains/core.py`, `disks.py`,
//! `extra.py`, `minion_process.py`). Pure: every grain is decided from
//! the collected data, and a fact that was not read is left out.

use super::{Machine, dmi, names, os, virt};
use serde_json::{Map, Value, json};
use std::net::IpAddr;

const MIB: u64 = 1024 * 1024;

/// The grain tree for node `id` on `m`, with `roles` and the config's static
/// grains (which win over collected ones).
pub fn grains(
    id: &str,
    m: &Machine,
    roles: &[String],
    extra: &Map<String, Value>,
) -> Map<String, Value> {
    let mut g = Map::new();
    let mut put = |k: &str, v: Value| {
        g.insert(k.to_owned(), v);
    };
    put("id", id.into());
    put("roles", json!(roles));
    put("agent_version", env!("CARGO_PKG_VERSION").into());

    identity(m, &mut put);
    distribution(m, &mut put);
    kernel(m, &mut put);
    hardware(m, &mut put);
    network(m, &mut put);
    process(m, &mut put);

    for (k, v) in extra {
        g.insert(k.clone(), v.clone());
    }
    g
}

type Put<'a> = dyn FnMut(&str, Value) + 'a;

fn some(put: &mut Put<'_>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        put(key, v.into());
    }
}

/// `nodename`, `localhost`, `fqdn`, `host`, `domain`, `fqdns`, `fqdn_ip4`,
/// `fqdn_ip6`, `machine_id`.
fn identity(m: &Machine, put: &mut Put<'_>) {
    if !m.host_name.is_empty() {
        put("nodename", m.host_name.as_str().into());
        put("localhost", m.host_name.as_str().into());
        let hosts = m.hosts.as_deref().unwrap_or_default();
        let fqdn = names::fqdn(&m.host_name, hosts);
        let (host, domain) = fqdn.split_once('.').unwrap_or((&fqdn, ""));
        put("host", host.into());
        if !domain.is_empty() {
            put("domain", domain.into());
        }
        if let Some(hosts) = &m.hosts {
            let ips = |v6| {
                let list: Vec<String> = names::fqdn_ips(&fqdn, hosts, v6, &m.addresses)
                    .iter()
                    .map(IpAddr::to_string)
                    .collect();
                json!(list)
            };
            put("fqdn_ip4", ips(false));
            put("fqdn_ip6", ips(true));
        }
        put("fqdn", fqdn.into());
    }
    if let Some(hosts) = &m.hosts {
        put("fqdns", json!(names::fqdns(&m.addresses, hosts)));
    }
    some(put, "machine_id", m.machine_id.clone());
}

/// `os`, `os_family`, `osfullname`, `osrelease`, `osrelease_info`,
/// `osmajorrelease`, `oscodename`, `osfinger`, `osarch`, `lsb_distrib_*`.
fn distribution(m: &Machine, put: &mut Put<'_>) {
    let o = &m.os;
    let family = o.os_family();
    some(put, "os", o.os());
    some(put, "os_family", family.clone());
    some(put, "osfullname", o.osfullname());
    some(put, "oscodename", o.oscodename());
    if let Some(release) = o.osrelease().filter(|r| !r.is_empty()) {
        let info = os::osrelease_info(&release);
        if let Some(major) = info.first().filter(|v| v.is_u64()) {
            put("osmajorrelease", major.clone());
        }
        put("osrelease_info", Value::Array(info));
        if let (Some(name), Some(full)) = (o.os(), o.osfullname()) {
            put("osfinger", os::osfinger(&name, &full, &release).into());
        }
        put("osrelease", release.into());
    }
    let lsb = o.lsb_distrib();
    some(put, "lsb_distrib_id", lsb.id);
    some(put, "lsb_distrib_release", lsb.release);
    some(put, "lsb_distrib_codename", lsb.codename);
    some(put, "lsb_distrib_description", lsb.description);
    if let Some(arch) = &m.kernel.arch {
        put("osarch", os::osarch(family.as_deref(), arch).into());
    }
}

/// `kernel`, `kernelrelease`, `kernelversion`, `kernelparams`, `cpuarch`,
/// `init`, `systemd`.
fn kernel(m: &Machine, put: &mut Put<'_>) {
    let k = &m.kernel;
    some(put, "kernel", k.name.clone());
    some(put, "kernelrelease", k.release.clone());
    some(put, "kernelversion", k.version.clone());
    some(put, "cpuarch", k.arch.clone());
    some(put, "init", k.init.clone());
    if let Some(params) = &k.params {
        put("kernelparams", json!(params));
    }
    if let Some(s) = &k.systemd {
        put("systemd", json!({ "version": s.version }));
    }
}

/// CPU, memory, GPUs, disks, firmware and `virtual`.
fn hardware(m: &Machine, put: &mut Put<'_>) {
    some(put, "num_cpus", m.cpu.count);
    some(put, "cpu_model", m.cpu.model.clone());
    if let Some(flags) = &m.cpu.flags {
        put("cpu_flags", json!(flags));
    }
    some(put, "mem_total", m.memory.total_bytes.map(|b| b / MIB));
    some(put, "swap_total", m.memory.swap_bytes.map(|b| b / MIB));
    if let Some(gpus) = &m.gpus {
        let list: Vec<Value> = gpus
            .iter()
            .map(|g| json!({ "vendor": g.vendor(), "model": g.model() }))
            .collect();
        put("num_gpus", list.len().into());
        put("gpus", Value::Array(list));
    }
    if let Some(d) = &m.disks {
        put("disks", json!(d.disks));
        put("ssds", json!(d.ssds));
    }
    for (k, v) in dmi::hardware_grains(&m.dmi, &m.device_tree) {
        put(k, v.into());
    }
    let v = virt::detect(&m.virt, &m.cpu, &m.dmi);
    put("virtual", v.kind.into());
    some(put, "virtual_subtype", v.subtype);
}

/// `ipv4`, `ipv6`, `ip*_interfaces`, `hwaddr_interfaces`, `ip*_gw`, `dns`.
fn network(m: &Machine, put: &mut Put<'_>) {
    let family = |v6: bool| -> Vec<String> {
        m.addresses
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(IpAddr::to_string)
            .collect()
    };
    // With no interface list and no address, nothing was read.
    if m.net.interfaces.is_some() || !m.addresses.is_empty() {
        put("ipv4", json!(family(false)));
        put("ipv6", json!(family(true)));
    }
    if let Some(ifaces) = &m.net.interfaces {
        let v4: Option<Map<String, Value>> = ifaces
            .iter()
            .map(|i| {
                let a: Vec<String> = i
                    .ipv4
                    .as_ref()?
                    .iter()
                    .map(|(a, _)| a.to_string())
                    .collect();
                Some((i.name.clone(), json!(a)))
            })
            .collect();
        let v6: Option<Map<String, Value>> = ifaces
            .iter()
            .map(|i| {
                let a: Vec<String> = i
                    .ipv6
                    .as_ref()?
                    .iter()
                    .map(|a| a.addr.to_string())
                    .collect();
                Some((i.name.clone(), json!(a)))
            })
            .collect();
        if let (Some(v4), Some(v6)) = (&v4, &v6) {
            let mut all = Map::new();
            for (name, list) in v4 {
                let mut both = list.as_array().cloned().unwrap_or_default();
                both.extend(v6[name].as_array().cloned().unwrap_or_default());
                all.insert(name.clone(), Value::Array(both));
            }
            put("ip_interfaces", Value::Object(all));
        }
        some(put, "ip4_interfaces", v4.map(Value::Object));
        some(put, "ip6_interfaces", v6.map(Value::Object));
        let hw: Map<String, Value> = ifaces
            .iter()
            .filter_map(|i| Some((i.name.clone(), i.mac.clone()?.into())))
            .collect();
        put("hwaddr_interfaces", Value::Object(hw));
    }
    let gw = |via: Option<String>| via.map(Value::from).unwrap_or(Value::Bool(true));
    let v4 = m.net.ipv4_default.as_ref().map(|d| {
        d.as_ref()
            .map(|g| gw(g.via.map(|a| a.to_string())))
            .unwrap_or(Value::Bool(false))
    });
    let v6 = m.net.ipv6_default.as_ref().map(|d| {
        d.as_ref()
            .map(|g| gw(g.via.map(|a| a.to_string())))
            .unwrap_or(Value::Bool(false))
    });
    let routed = |v: &Option<Value>| v.as_ref().is_some_and(|v| v != &Value::Bool(false));
    if routed(&v4) || routed(&v6) {
        put("ip_gw", true.into());
    } else if v4.is_some() && v6.is_some() {
        put("ip_gw", false.into());
    }
    some(put, "ip4_gw", v4);
    some(put, "ip6_gw", v6);
    if let Some(r) = &m.dns {
        put(
            "dns",
            json!({
                "nameservers": r.nameservers,
                "ip4_nameservers": r.ip4_nameservers,
                "ip6_nameservers": r.ip6_nameservers,
                "sortlist": r.sortlist,
                "domain": r.domain.clone().unwrap_or_default(),
                "search": r.search,
                "options": r.options,
            }),
        );
    }
}

/// The agent process, its locale and the system's zone.
fn process(m: &Machine, put: &mut Put<'_>) {
    let p = &m.process;
    // No `pid`: it changes at every start, and a change of grains is a
    // write and an event — an agent back unchanged must cost the master
    // nothing.
    some(put, "uid", p.uid);
    some(put, "gid", p.gid);
    some(put, "username", p.username.clone());
    some(put, "groupname", p.groupname.clone());
    if let Some(path) = &p.path {
        put("path", path.as_str().into());
        put("systempath", json!(path.split(':').collect::<Vec<_>>()));
    }
    put("shell", p.shell.as_str().into());
    let mut info = Map::new();
    if let Some(name) = &m.locale.name {
        let (lang, enc) = super::locale::language_and_encoding(name);
        if let Some(l) = lang {
            info.insert("defaultlanguage".into(), l.into());
        }
        if let Some(e) = enc {
            info.insert("defaultencoding".into(), e.into());
        }
    }
    // The agent reads and writes UTF-8 whatever the locale.
    info.insert("detectedencoding".into(), "utf-8".into());
    if let Some(tz) = &m.locale.tz_abbreviation {
        info.insert("timezone".into(), tz.as_str().into());
    }
    put("locale_info", Value::Object(info));
    some(put, "timezone", m.locale.timezone.clone());
}
