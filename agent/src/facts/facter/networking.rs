//! Facter's `networking`: names, the primary interface's addresses, and
//! every interface with its IPv4 `bindings` and IPv6 `bindings6` (each
//! with the address's `flags` from `/proc/net/if_inet6`). An interface's
//! own `ip`/`ip6` (and netmask, network) are its first binding that is not
//! loopback or link-local, else its first, as Facter picks. A `mac` of all
//! zeros (loopback's) is left out, as Facter leaves it.

use super::some;
use crate::facts::{Machine, names, network::Interface};
use serde_json::{Map, Value, json};
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) fn put(m: &Machine, f: &mut Map<String, Value>) {
    let mut n = Map::new();
    if !m.host_name.is_empty() {
        let fqdn = fqdn(m);
        let (host, domain) = fqdn.split_once('.').unwrap_or((&fqdn, ""));
        n.insert("hostname".into(), host.into());
        if !domain.is_empty() {
            n.insert("domain".into(), domain.into());
        }
        n.insert("fqdn".into(), fqdn.as_str().into());
    }
    if let Some(ifaces) = &m.net.interfaces {
        let shaped: Map<String, Value> = ifaces
            .iter()
            .map(|i| (i.name.clone(), Value::Object(interface(i))))
            .collect();
        if let Some(primary) = primary(m, ifaces) {
            if let Some(Value::Object(p)) = shaped.get(primary) {
                for key in [
                    "ip", "ip6", "mac", "mtu", "netmask", "netmask6", "network", "network6",
                    "scope6",
                ] {
                    some(&mut n, key, p.get(key).cloned());
                }
            }
            n.insert("primary".into(), primary.into());
        }
        n.insert("interfaces".into(), Value::Object(shaped));
    }
    if !n.is_empty() {
        f.insert("networking".into(), Value::Object(n));
    }
}

/// `/etc/hosts`' name for the host, else the hostname with `resolv.conf`'s
/// `domain` or first `search` domain.
fn fqdn(m: &Machine) -> String {
    let fqdn = names::fqdn(&m.host_name, m.hosts.as_deref().unwrap_or_default());
    if fqdn.contains('.') {
        return fqdn;
    }
    let domain = m
        .dns
        .as_ref()
        .and_then(|r| r.domain.clone().or_else(|| r.search.first().cloned()));
    match domain.filter(|d| !d.is_empty()) {
        Some(d) => format!("{fqdn}.{}", d.trim_end_matches('.')),
        None => fqdn,
    }
}

/// The default route's interface (IPv4 first), else the first with an
/// address that matters.
fn primary<'m>(m: &Machine, ifaces: &'m [Interface]) -> Option<&'m str> {
    let routed = m
        .net
        .ipv4_default
        .clone()
        .flatten()
        .map(|g| g.iface)
        .or_else(|| m.net.ipv6_default.clone().flatten().map(|g| g.iface));
    if let Some(name) = routed
        && let Some(i) = ifaces.iter().find(|i| i.name == name)
    {
        return Some(&i.name);
    }
    let mut sorted: Vec<&Interface> = ifaces.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
        .into_iter()
        .find(|i| {
            i.ipv4.iter().flatten().any(|(a, _)| !ignored_v4(a))
                || i.ipv6.iter().flatten().any(|a| !ignored_v6(&a.addr))
        })
        .map(|i| i.name.as_str())
}

fn ignored_v4(a: &Ipv4Addr) -> bool {
    a.is_loopback() || a.is_link_local()
}

fn ignored_v6(a: &Ipv6Addr) -> bool {
    a.is_loopback() || a.is_unicast_link_local()
}

fn interface(i: &Interface) -> Map<String, Value> {
    let mut o = Map::new();
    let v4: Vec<(Ipv4Addr, u8)> = i.ipv4.clone().unwrap_or_default();
    if !v4.is_empty() {
        let binds: Vec<Value> = v4
            .iter()
            .map(|(a, p)| {
                let mask = v4_mask(*p);
                json!({
                    "address": a.to_string(),
                    "netmask": mask.to_string(),
                    "network": Ipv4Addr::from(a.to_bits() & mask.to_bits()).to_string(),
                })
            })
            .collect();
        let best = v4.iter().position(|(a, _)| !ignored_v4(a)).unwrap_or(0);
        for (from, to) in [
            ("address", "ip"),
            ("netmask", "netmask"),
            ("network", "network"),
        ] {
            o.insert(to.into(), binds[best][from].clone());
        }
        o.insert("bindings".into(), Value::Array(binds));
    }
    let v6 = i.ipv6.clone().unwrap_or_default();
    if !v6.is_empty() {
        let binds: Vec<Value> = v6
            .iter()
            .map(|a| {
                let mask = v6_mask(a.prefix);
                json!({
                    "address": a.addr.to_string(),
                    "netmask": mask.to_string(),
                    "network": Ipv6Addr::from(a.addr.to_bits() & mask.to_bits()).to_string(),
                    "scope6": scope6(a.scope),
                    "flags": flags6(a.flags),
                })
            })
            .collect();
        let best = v6.iter().position(|a| !ignored_v6(&a.addr)).unwrap_or(0);
        for (from, to) in [
            ("address", "ip6"),
            ("netmask", "netmask6"),
            ("network", "network6"),
            ("scope6", "scope6"),
        ] {
            o.insert(to.into(), binds[best][from].clone());
        }
        o.insert("bindings6".into(), Value::Array(binds));
    }
    // Loopback's all-zero address is no address, as Facter has it.
    some(
        &mut o,
        "mac",
        i.mac.clone().filter(|m| m != "00:00:00:00:00:00"),
    );
    some(&mut o, "mtu", i.mtu);
    o
}

fn v4_mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0),
    )
}

fn v6_mask(prefix: u8) -> Ipv6Addr {
    Ipv6Addr::from(
        u128::MAX
            .checked_shl(128 - u32::from(prefix.min(128)))
            .unwrap_or(0),
    )
}

/// The names of an address's flags, in Facter's order (`if_inet6.rb`).
fn flags6(bits: u8) -> Vec<&'static str> {
    const NAMES: [(u8, &str); 8] = [
        (0x01, "temporary"),
        (0x02, "noad"),
        (0x04, "optimistic"),
        (0x08, "dadfailed"),
        (0x10, "homeaddress"),
        (0x20, "deprecated"),
        (0x40, "tentative"),
        (0x80, "permanent"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The kernel's scope as Facter names it.
fn scope6(scope: u8) -> &'static str {
    match scope {
        0x00 => "global",
        0x10 => "host",
        0x20 => "link",
        0x40 => "site",
        _ => "compat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let cases: &[(u8, &str)] = &[
            (0, "0.0.0.0"),
            (8, "255.0.0.0"),
            (20, "255.255.240.0"),
            (32, "255.255.255.255"),
        ];
        for (p, want) in cases {
            assert_eq!(v4_mask(*p).to_string(), *want, "/{p}");
        }
        let cases: &[(u8, &str)] = &[
            (0, "::"),
            (64, "ffff:ffff:ffff:ffff::"),
            (128, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ];
        for (p, want) in cases {
            assert_eq!(v6_mask(*p).to_string(), *want, "/{p}");
        }
    }

    #[test]
    fn address_flags() {
        let cases: &[(u8, &[&str])] = &[
            (0x00, &[]),
            (0x80, &["permanent"]),
            (0x82, &["noad", "permanent"]),
            (0x61, &["temporary", "deprecated", "tentative"]),
        ];
        for (bits, want) in cases {
            assert_eq!(flags6(*bits), *want, "{bits:#x}");
        }
    }
}
