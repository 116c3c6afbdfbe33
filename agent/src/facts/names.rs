//! The machine's names: the kernel's hostname and `/etc/hosts`, from which
//! `fqdn`, `host`, `domain`, `fqdns`, `fqdn_ip4` and `fqdn_ip6` are derived
//! the way the C library would answer from its `files` source.
//!
//! Salt asks the resolver (`getaddrinfo`, `gethostbyaddr`), which may ask
//! DNS and hang; here nothing leaves the machine. A name the hosts file does
//! not know resolves to nothing: `fqdn` is then the hostname itself (Salt's
//! own fallback) and the lists are empty, as Salt's are without a resolver.

use std::net::IpAddr;

/// One line of the hosts file: an address and its names, canonical first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsLine {
    pub addr: IpAddr,
    pub names: Vec<String>,
}

/// `/etc/hosts`; `None` in [`super::Machine`] when unreadable.
pub type Hosts = Vec<HostsLine>;

pub fn parse_hosts(text: &str) -> Hosts {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let addr = words.next()?;
            let addr = addr.split('%').next().unwrap_or(addr).parse().ok()?;
            let names: Vec<String> = words.map(str::to_owned).collect();
            (!names.is_empty()).then_some(HostsLine { addr, names })
        })
        .collect()
}

fn names_it(line: &HostsLine, name: &str) -> bool {
    line.names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Salt's `fqdn`: the canonical name of the hosts line that names the
/// hostname (what `getaddrinfo(…, AI_CANONNAME)` returns), else the
/// hostname.
pub fn fqdn(host_name: &str, hosts: &[HostsLine]) -> String {
    hosts
        .iter()
        .find(|l| names_it(l, host_name))
        .map(|l| l.names[0].clone())
        .unwrap_or_else(|| host_name.to_owned())
}

/// Salt's `fqdn_ip4` / `fqdn_ip6`: the addresses of the family given that
/// the hosts file gives `fqdn`, in file order, each once. Salt leaves the
/// list empty when the machine has no address of that family at all.
pub fn fqdn_ips(fqdn: &str, hosts: &[HostsLine], v6: bool, local: &[IpAddr]) -> Vec<IpAddr> {
    if !local.iter().any(|a| a.is_ipv6() == v6) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for l in hosts {
        if l.addr.is_ipv6() == v6 && names_it(l, fqdn) && !out.contains(&l.addr) {
            out.push(l.addr);
        }
    }
    out
}

/// Salt's `fqdns`: for every address that is not loopback, the canonical
/// name the hosts file gives it (Salt reverse-resolves each), sorted.
pub fn fqdns(local: &[IpAddr], hosts: &[HostsLine]) -> Vec<String> {
    let mut out: Vec<String> = local
        .iter()
        .filter(|a| !a.is_loopback())
        .filter_map(|a| hosts.iter().find(|l| l.addr == *a))
        .map(|l| l.names[0].clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tweb-1.example.com web-1 # the node\n\
        10.0.0.5 web-1.example.com\n::1 localhost ip6-localhost ip6-loopback\n\
        fe80::1%eth0 router6\n2001:db8::5 web-1.example.com\nbogus line\n\n# only a comment\n";

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn the_hosts_file_parsed() {
        let h = parse_hosts(HOSTS);
        assert_eq!(h.len(), 6);
        assert_eq!(h[1].names, ["web-1.example.com", "web-1"]);
        assert_eq!(h[4].addr, "fe80::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn fqdn_from_the_canonical_name_else_the_hostname() {
        let h = parse_hosts(HOSTS);
        let cases = [
            ("web-1", "web-1.example.com"),
            ("WEB-1", "web-1.example.com"),
            ("web-1.example.com", "web-1.example.com"),
            ("db-1", "db-1"),
            ("localhost", "localhost"),
        ];
        for (host, want) in cases {
            assert_eq!(fqdn(host, &h), want, "{host}");
        }
        assert_eq!(
            fqdn("vm", &parse_hosts("127.0.0.1 localhost\n127.0.0.1 vm\n")),
            "vm"
        );
    }

    #[test]
    fn fqdn_addresses_from_the_hosts_file_only() {
        let h = parse_hosts(HOSTS);
        let local = ips(&["127.0.0.1", "10.0.0.5", "::1"]);
        assert_eq!(
            fqdn_ips("web-1.example.com", &h, false, &local),
            ips(&["127.0.1.1", "10.0.0.5"])
        );
        assert_eq!(
            fqdn_ips("web-1.example.com", &h, true, &local),
            ips(&["2001:db8::5"])
        );
        assert_eq!(fqdn_ips("db-1", &h, false, &local), ips(&[]));
        // No IPv6 on the machine: Salt does not even ask.
        assert_eq!(
            fqdn_ips("web-1.example.com", &h, true, &ips(&["10.0.0.5"])),
            ips(&[])
        );
    }

    #[test]
    fn fqdns_of_the_non_loopback_addresses() {
        let h = parse_hosts(HOSTS);
        let local = ips(&["127.0.0.1", "10.0.0.5", "::1", "2001:db8::5", "192.0.2.7"]);
        assert_eq!(fqdns(&local, &h), ["web-1.example.com"]);
        assert!(fqdns(&ips(&["127.0.0.1", "::1"]), &h).is_empty());
    }
}
