//! From a `Host` header to the domain that serves it: the exact name
//! first, then the longest `*.` wildcard the host is under (at any depth),
//! then `*`. Domain names are stored lower-case; the host is lower-cased
//! and loses its `:port` and a trailing dot before the lookup.

use std::borrow::Cow;
use std::collections::HashMap;

/// Which chain (a position in [`super::RouteTable`]'s chains) serves which
/// domain.
#[derive(Debug, Default)]
pub(super) struct Hosts {
    exact: HashMap<String, usize>,
    /// `*.example.com`, keyed by `example.com`.
    wildcard: HashMap<String, usize>,
    /// `*`.
    any: Option<usize>,
}

impl Hosts {
    /// `domain` is a valid domain name.
    pub(super) fn insert(&mut self, domain: &str, chain: usize) {
        if domain == "*" {
            self.any = Some(chain);
        } else if let Some(suffix) = domain.strip_prefix("*.") {
            self.wildcard.insert(suffix.to_owned(), chain);
        } else {
            self.exact.insert(domain.to_owned(), chain);
        }
    }

    pub(super) fn find(&self, host: &str) -> Option<usize> {
        let host = normalise(host);
        if let Some(&chain) = self.exact.get(host.as_ref()) {
            return Some(chain);
        }
        // The leftmost dot leaves the longest suffix.
        let wildcard = host
            .match_indices('.')
            .find_map(|(dot, _)| self.wildcard.get(&host[dot + 1..]));
        wildcard.copied().or(self.any)
    }
}

/// `Example.COM:8080` → `example.com`, `[::1]:80` → `[::1]`,
/// `example.com.` → `example.com`. Allocates only to lower-case.
pub(super) fn normalise(host: &str) -> Cow<'_, str> {
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.split_once(':') {
            // One colon: `host:port`. More is a bare IPv6 address.
            Some((name, port)) if !port.contains(':') => name,
            _ => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}
