//! The resolver's configuration: `/run/systemd/resolve/resolv.conf` when
//! systemd-resolved writes one (the upstream servers, not its 127.0.0.53
//! stub), else `/etc/resolv.conf` — the `dns` grain, in the shape of Salt's
//! `salt.utils.dns.parse_resolv`.

use super::root::Root;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `resolv.conf`, as Salt reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolv {
    /// Every `nameserver`, each once, in order (`fe80::1%eth0` keeps its
    /// zone).
    pub nameservers: Vec<String>,
    pub ip4_nameservers: Vec<String>,
    pub ip6_nameservers: Vec<String>,
    /// `address/netmask` pairs, a missing IPv4 mask being the address's
    /// class mask.
    pub sortlist: Vec<String>,
    /// The last `domain` line's; `None` when there is none (Salt: "").
    pub domain: Option<String>,
    /// The last `search` line's domains.
    pub search: Vec<String>,
    /// Every option of every `options` line, each once.
    pub options: Vec<String>,
}

pub fn collect(root: &Root) -> Option<Resolv> {
    let text = if root.exists("/run/systemd/resolve/resolv.conf") {
        root.read("/run/systemd/resolve/resolv.conf")
    } else {
        root.read("/etc/resolv.conf")
    };
    text.ok().map(|t| parse_resolv(&t))
}

pub fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(directive) = words.next() else {
            continue;
        };
        let args: Vec<&str> = words.take_while(|w| !w.starts_with(['#', ';'])).collect();
        match directive.to_ascii_lowercase().as_str() {
            "nameserver" => {
                let Some(addr) = args.first().and_then(|a| nameserver(a)) else {
                    continue;
                };
                let (text, v6) = addr;
                if !r.nameservers.contains(&text) {
                    r.nameservers.push(text.clone());
                }
                let family = if v6 {
                    &mut r.ip6_nameservers
                } else {
                    &mut r.ip4_nameservers
                };
                if !family.contains(&text) {
                    family.push(text);
                }
            }
            "domain" => {
                if let Some(d) = args.first() {
                    r.domain = Some((*d).to_owned());
                }
            }
            "search" => r.search = args.iter().map(|s| (*s).to_owned()).collect(),
            "sortlist" => {
                for net in args.iter().filter_map(|a| sortlist_entry(a)) {
                    if !r.sortlist.contains(&net) {
                        r.sortlist.push(net);
                    }
                }
            }
            "options" => {
                for o in args {
                    if !r.options.iter().any(|x| x == o) {
                        r.options.push(o.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    r
}

/// An address in its normal form, and whether it is IPv6.
fn nameserver(text: &str) -> Option<(String, bool)> {
    let (addr, zone) = match text.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (text, None),
    };
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) if zone.is_none() => Some((a.to_string(), false)),
        IpAddr::V4(_) => None,
        IpAddr::V6(a) => Some((
            match zone {
                Some(z) => format!("{a}%{z}"),
                None => a.to_string(),
            },
            true,
        )),
    }
}

/// A `sortlist` pair as Python's `ip_network(…).with_netmask`; host bits
/// set (Python's strict check) drop the entry.
fn sortlist_entry(text: &str) -> Option<String> {
    let (addr, mask) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let prefix = match mask {
                None => match bits >> 30 {
                    0b11 => 24,
                    0b10 => 16,
                    _ => 8,
                },
                Some(m) => v4_prefix(m)?,
            };
            let netmask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            // With no mask given the natural one is applied non-strictly.
            let net = bits & netmask;
            if mask.is_some() && net != bits {
                return None;
            }
            Some(format!(
                "{}/{}",
                Ipv4Addr::from(net),
                Ipv4Addr::from(netmask)
            ))
        }
        IpAddr::V6(a) => {
            let prefix: u32 = match mask {
                None => 128,
                Some(m) => m.parse().ok().filter(|p| *p <= 128)?,
            };
            let netmask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let bits = u128::from(a);
            (bits & netmask == bits).then(|| format!("{a}/{}", Ipv6Addr::from(netmask)))
        }
    }
}

/// A prefix length written as a number or as a contiguous netmask.
fn v4_prefix(mask: &str) -> Option<u32> {
    if let Ok(p) = mask.parse::<u32>() {
        return (p <= 32).then_some(p);
    }
    let m = u32::from(mask.parse::<Ipv4Addr>().ok()?);
    let p = m.leading_ones();
    (m.checked_shl(p).unwrap_or(0) == 0).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn resolv_conf_in_salts_shape() {
        let r = parse_resolv(
            "# Generated\nnameserver 10.0.0.2\nnameserver 2001:DB8::53 ; comment\n\
             nameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver not-an-ip\n\
             search example.com corp.example.com # trailing\ndomain example.com\n\
             options ndots:2 timeout:1\noptions rotate ndots:2\n\
             sortlist 130.155.160.0/255.255.240.0 130.155.0.0 10.1.2.3/8 192.168.1.0/24\n\
             NAMESERVER 10.0.0.3\nnameserver\n",
        );
        assert_eq!(
            r.nameservers,
            strings(&["10.0.0.2", "2001:db8::53", "fe80::1%eth0", "10.0.0.3"])
        );
        assert_eq!(r.ip4_nameservers, strings(&["10.0.0.2", "10.0.0.3"]));
        assert_eq!(
            r.ip6_nameservers,
            strings(&["2001:db8::53", "fe80::1%eth0"])
        );
        assert_eq!(r.search, strings(&["example.com", "corp.example.com"]));
        assert_eq!(r.domain.as_deref(), Some("example.com"));
        assert_eq!(r.options, strings(&["ndots:2", "timeout:1", "rotate"]));
        assert_eq!(
            r.sortlist,
            strings(&[
                "130.155.160.0/255.255.240.0",
                "130.155.0.0/255.255.0.0",
                "192.168.1.0/255.255.255.0"
            ])
        );
    }

    #[test]
    fn an_empty_file_has_every_key_and_nothing_in_them() {
        assert_eq!(parse_resolv(""), Resolv::default());
    }

    #[test]
    fn sortlist_masks() {
        let cases = [
            ("10.0.0.0", Some("10.0.0.0/255.0.0.0")),
            ("192.168.7.0", Some("192.168.7.0/255.255.255.0")),
            ("172.16.5.4", Some("172.16.0.0/255.255.0.0")),
            ("10.0.0.0/255.0.255.0", None),
            ("10.0.0.1/32", Some("10.0.0.1/255.255.255.255")),
            ("2001:db8::/32", Some("2001:db8::/ffff:ffff::")),
            ("bogus", None),
        ];
        for (text, want) in cases {
            assert_eq!(sortlist_entry(text).as_deref(), want, "{text}");
        }
    }
}
