//! Interfaces and default routes: `/sys/class/net` (names, MAC, MTU), the
//! IPv4 addresses from [`Root::ipv4`] (sysinfo's `Networks`), the IPv6
//! addresses from `/proc/net/if_inet6`, and the default gateways from
//! `/proc/net/route` and `/proc/net/ipv6_route` (what `ip route` would
//! print, without running it).

use super::root::Root;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The interfaces and routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// Every interface in `/sys/class/net`, by name; `None` when the
    /// directory cannot be listed.
    pub interfaces: Option<Vec<Interface>>,
    /// `None` when `/proc/net/route` cannot be read.
    pub ipv4_default: Option<Option<Gateway<Ipv4Addr>>>,
    /// `None` when `/proc/net/ipv6_route` cannot be read (IPv6 disabled
    /// reads as "no default route").
    pub ipv6_default: Option<Option<Gateway<Ipv6Addr>>>,
}

/// One network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// `02:fc:00:00:00:01`; `None` when the file is unreadable or empty.
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// `None` when the IPv4 source failed.
    pub ipv4: Option<Vec<(Ipv4Addr, u8)>>,
    /// `None` when `/proc/net/if_inet6` is unreadable.
    pub ipv6: Option<Vec<Inet6>>,
}

/// An IPv6 address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inet6 {
    pub addr: Ipv6Addr,
    pub prefix: u8,
    /// The kernel's scope: 0x00 global, 0x10 host, 0x20 link, 0x40 site.
    pub scope: u8,
    /// The address's low 8 flag bits (`IFA_F_PERMANENT` is 0x80, …), all
    /// that `/proc/net/if_inet6` carries.
    pub flags: u8,
}

/// A default route: the interface and, if it goes through one, the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway<A> {
    pub iface: String,
    pub via: Option<A>,
}

impl Network {
    /// Every address of every interface, sorted and without repeats.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut all: Vec<IpAddr> = Vec::new();
        for i in self.interfaces.iter().flatten() {
            all.extend(i.ipv4.iter().flatten().map(|(a, _)| IpAddr::V4(*a)));
            all.extend(i.ipv6.iter().flatten().map(|a| IpAddr::V6(a.addr)));
        }
        all.sort();
        all.dedup();
        all
    }
}

pub fn collect(root: &Root) -> Network {
    let v6 = match root.read("/proc/net/if_inet6") {
        Ok(text) => Some(parse_if_inet6(&text)),
        // A kernel without IPv6 has no such file: no addresses, truly.
        Err(_) if root.exists("/proc/net/dev") => Some(Vec::new()),
        Err(_) => None,
    };
    let v4 = root.ipv4();
    let interfaces = root.list("/sys/class/net").ok().map(|names| {
        names
            .into_iter()
            .map(|name| {
                let dir = format!("/sys/class/net/{name}");
                Interface {
                    mac: root.read_value(&format!("{dir}/address")),
                    mtu: root
                        .read_value(&format!("{dir}/mtu"))
                        .and_then(|m| m.parse().ok()),
                    ipv4: v4
                        .as_ref()
                        .map(|m| m.get(&name).cloned().unwrap_or_default()),
                    ipv6: v6.as_ref().map(|all| {
                        all.iter()
                            .filter(|(i, _)| *i == name)
                            .map(|(_, a)| a.clone())
                            .collect()
                    }),
                    name,
                }
            })
            .collect()
    });
    let ipv6_default = match root.read("/proc/net/ipv6_route") {
        Ok(text) => Some(parse_ipv6_route(&text)),
        Err(_) if root.exists("/proc/net/dev") && !root.exists("/proc/net/if_inet6") => Some(None),
        Err(_) => None,
    };
    Network {
        interfaces,
        ipv4_default: root.read("/proc/net/route").ok().map(|t| parse_route(&t)),
        ipv6_default,
    }
}

/// `/proc/net/if_inet6`: address, index, prefix, scope, flags, name.
pub fn parse_if_inet6(text: &str) -> Vec<(String, Inet6)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [addr, _index, prefix, scope, flags, name] = f[..] else {
                return None;
            };
            Some((
                name.to_owned(),
                Inet6 {
                    addr: ipv6_hex(addr)?,
                    prefix: u8::from_str_radix(prefix, 16).ok()?,
                    scope: u8::from_str_radix(scope, 16).ok()?,
                    flags: u8::from_str_radix(flags, 16).ok()?,
                },
            ))
        })
        .collect()
}

fn ipv6_hex(hex: &str) -> Option<Ipv6Addr> {
    (hex.len() == 32).then_some(())?;
    u128::from_str_radix(hex, 16).ok().map(Ipv6Addr::from)
}

const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_REJECT: u32 = 0x0200;

/// The default route of `/proc/net/route` with the lowest metric (the one
/// `ip route` lists first).
pub fn parse_route(text: &str) -> Option<Gateway<Ipv4Addr>> {
    let mut best: Option<(u32, Gateway<Ipv4Addr>)> = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [iface, dest, gw, flags, _refcnt, _use, metric, mask, ..] = f[..] else {
            continue;
        };
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(gw), Some(flags), Some(mask)) =
            (hex(dest), hex(gw), hex(flags), hex(mask))
        else {
            continue;
        };
        if dest != 0 || mask != 0 || flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
            continue;
        }
        let metric: u32 = metric.parse().unwrap_or(u32::MAX);
        // The file writes the address in the kernel's (little-endian) order.
        let via = (flags & RTF_GATEWAY != 0 && gw != 0).then(|| Ipv4Addr::from(gw.swap_bytes()));
        if best.as_ref().is_none_or(|(m, _)| metric < *m) {
            best = Some((
                metric,
                Gateway {
                    iface: iface.to_owned(),
                    via,
                },
            ));
        }
    }
    best.map(|(_, g)| g)
}

/// The default route of `/proc/net/ipv6_route` with the lowest metric;
/// the kernel's unreachable `::/0` on `lo` is not one.
pub fn parse_ipv6_route(text: &str) -> Option<Gateway<Ipv6Addr>> {
    let mut best: Option<(u32, Gateway<Ipv6Addr>)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [
            dest,
            dest_len,
            _src,
            _src_len,
            next_hop,
            metric,
            _refcnt,
            _use,
            flags,
            iface,
        ] = f[..]
        else {
            continue;
        };
        let (Some(dest), Ok(dest_len), Some(next_hop), Ok(metric), Ok(flags)) = (
            ipv6_hex(dest),
            u8::from_str_radix(dest_len, 16),
            ipv6_hex(next_hop),
            u32::from_str_radix(metric, 16),
            u32::from_str_radix(flags, 16),
        ) else {
            continue;
        };
        if !dest.is_unspecified() || dest_len != 0 || flags & RTF_UP == 0 || flags & RTF_REJECT != 0
        {
            continue;
        }
        let via = (flags & RTF_GATEWAY != 0 && !next_hop.is_unspecified()).then_some(next_hop);
        if best.as_ref().is_none_or(|(m, _)| metric < *m) {
            best = Some((
                metric,
                Gateway {
                    iface: iface.to_owned(),
                    via,
                },
            ));
        }
    }
    best.map(|(_, g)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE_HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    #[test]
    fn ipv4_default_routes() {
        let route = |body: &str| parse_route(&format!("{ROUTE_HEADER}{body}"));
        let gw = |iface: &str, via: Option<[u8; 4]>| {
            Some(Gateway {
                iface: iface.to_owned(),
                via: via.map(Ipv4Addr::from),
            })
        };
        let cases = [
            (
                "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
                gw("eth0", Some([192, 0, 2, 1])),
            ),
            // The lower metric wins, wherever it is listed.
            (
                "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                 eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
                gw("eth0", Some([10, 0, 0, 1])),
            ),
            // A point-to-point default has no router: Salt's `true`.
            (
                "ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n",
                gw("ppp0", None),
            ),
            (
                "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
                None,
            ),
            ("", None),
        ];
        for (body, want) in cases {
            assert_eq!(route(body), want, "{body}");
        }
    }

    #[test]
    fn ipv6_default_routes() {
        let unreachable = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
            00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        let via = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
            fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n";
        let link = "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 \
            00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0\n";
        assert_eq!(parse_ipv6_route(unreachable), None);
        assert_eq!(parse_ipv6_route(link), None);
        assert_eq!(
            parse_ipv6_route(&format!("{link}{via}{unreachable}")),
            Some(Gateway {
                iface: "eth0".into(),
                via: Some("fd00::1".parse().unwrap()),
            })
        );
    }

    #[test]
    fn if_inet6_lines() {
        let got = parse_if_inet6(
            "00000000000000000000000000000001 01 80 10 80       lo\n\
             fd000000000000000000000000000002 04 40 00 82     eth0\n\
             fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n\
             garbage\n",
        );
        let want = [
            ("lo", "::1", 128, 0x10),
            ("eth0", "fd00::2", 64, 0x00),
            ("eth0", "fe80::fc:ff:fe00:1", 64, 0x20),
        ];
        assert_eq!(got.len(), want.len());
        for ((name, a), (wname, waddr, wprefix, wscope)) in got.iter().zip(want) {
            assert_eq!(name, wname);
            assert_eq!(a.addr, waddr.parse::<Ipv6Addr>().unwrap());
            assert_eq!((a.prefix, a.scope), (wprefix, wscope));
        }
    }
}
