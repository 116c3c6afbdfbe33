//! Upstreams: a set of servers requests are balanced over, either listed
//! or derived from a role (the online nodes that have it), and the checks
//! of their names, addresses and parameters.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One server of an upstream (nginx's and ELB's parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// `ip:port` or `host:port`.
    pub addr: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// Failures within `fail_timeout` that eject the server; 0: never.
    #[serde(default = "one")]
    pub max_fails: u32,
    /// The window failures are counted in, and how long an ejected server
    /// stays out.
    #[serde(default = "ten_seconds")]
    pub fail_timeout_ms: u64,
    /// Used only while every non-backup server is out.
    #[serde(default)]
    pub backup: bool,
    /// Marked unavailable (nginx's `down`): kept in the list, sent no
    /// traffic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
}

fn one() -> u32 {
    1
}

fn ten_seconds() -> u64 {
    10_000
}

/// Where an upstream's servers come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamSource {
    Servers(Vec<Server>),
    /// Every online node with `role`, at `port`, with these parameters.
    Role {
        role: String,
        port: u16,
        #[serde(default = "one")]
        weight: u32,
        #[serde(default = "one")]
        max_fails: u32,
        #[serde(default = "ten_seconds")]
        fail_timeout_ms: u64,
    },
}

/// What is wrong with a server, an upstream or its name. Messages say
/// which value is wrong and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServerError {
    pub message: String,
}

/// The most a server's weight may be.
pub const MAX_WEIGHT: u32 = 1000;

/// The longest `fail_timeout_ms` may be: an hour.
pub const MAX_FAIL_TIMEOUT_MS: u64 = 3_600_000;

impl Server {
    pub fn new(addr: impl Into<String>) -> Server {
        Server {
            addr: addr.into(),
            weight: 1,
            max_fails: 1,
            fail_timeout_ms: 10_000,
            backup: false,
            down: false,
        }
    }

    /// Its parameters as nginx's `server` line (and ELB) write them:
    /// `weight=10 max_fails=2 fail_timeout=10s backup`.
    pub fn parameters(&self) -> String {
        let mut out = format!(
            "weight={} max_fails={} fail_timeout={}",
            self.weight,
            self.max_fails,
            nginx_time(self.fail_timeout_ms)
        );
        if self.backup {
            out.push_str(" backup");
        }
        if self.down {
            out.push_str(" down");
        }
        out
    }

    /// Checks the address (`host:port` with an IPv4 address, an IPv6
    /// address in brackets or a DNS name; port 1–65535) and the parameters
    /// (weight 1–1000, `fail_timeout_ms` at most an hour). Every problem is
    /// in the message, separated by `; `.
    pub fn validate(&self) -> Result<(), ServerError> {
        joined(self.problems())
    }

    /// Every problem [`Server::validate`] finds, one message each.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(problem) = address(&self.addr) {
            problems.push(problem);
        }
        parameters(self.weight, self.fail_timeout_ms, &mut problems);
        problems
    }
}

impl UpstreamSource {
    /// Checks every server (each problem prefixed by the server's
    /// address), or a role's port and parameters. The role's name is the
    /// master's to check.
    pub fn validate(&self) -> Result<(), ServerError> {
        let mut problems = Vec::new();
        match self {
            UpstreamSource::Servers(servers) => {
                for server in servers {
                    if let Err(err) = server.validate() {
                        problems.push(format!("server {:?}: {err}", server.addr));
                    }
                }
            }
            UpstreamSource::Role {
                port,
                weight,
                fail_timeout_ms,
                ..
            } => {
                if *port == 0 {
                    problems.push("port must be 1–65535 (got 0)".to_owned());
                }
                parameters(*weight, *fail_timeout_ms, &mut problems);
            }
        }
        joined(problems)
    }
}

/// Every problem with one upstream, each naming where it is: its name, an
/// empty list, a server, a list of backups only, a role's port and
/// parameters. What `clusterctl upstream set`, the cluster file and ELB's
/// admin API all check.
pub fn problems(name: &str, source: &UpstreamSource) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = validate_name(name) {
        problems.push(format!("upstream {name:?}: {e}"));
    }
    match source {
        UpstreamSource::Servers(list) => {
            if list.is_empty() {
                problems.push(format!(
                    "upstream {name:?}: no servers (list at least one, or derive it from a role)"
                ));
            }
            for (i, s) in list.iter().enumerate() {
                if let Err(e) = s.validate() {
                    problems.push(format!(
                        "upstream {name:?}, server {} ({:?}): {e}",
                        i + 1,
                        s.addr
                    ));
                }
            }
            if !list.is_empty() && list.iter().all(|s| s.backup) {
                problems.push(format!(
                    "upstream {name:?}: every server is a backup; at least one must not be"
                ));
            }
        }
        UpstreamSource::Role { role, .. } => {
            if role.is_empty() {
                problems.push(format!("upstream {name:?}: the role is empty"));
            }
            if let Err(e) = source.validate() {
                problems.push(format!("upstream {name:?}: {e}"));
            }
        }
    }
    problems
}

/// Checks an upstream's name: 1–63 of `[A-Za-z0-9_.-]`.
pub fn validate_name(name: &str) -> Result<(), ServerError> {
    let message = if name.is_empty() {
        "upstream name is empty".to_owned()
    } else if name.len() > 63 {
        format!("upstream name {name:?} is longer than 63 characters")
    } else if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        format!(
            r#"upstream name {name:?} has an invalid character {bad:?} (allowed: A-Z, a-z, 0-9, "_", "." and "-")"#
        )
    } else {
        return Ok(());
    };
    Err(ServerError { message })
}

fn joined(problems: Vec<String>) -> Result<(), ServerError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServerError {
            message: problems.join("; "),
        })
    }
}

fn parameters(weight: u32, fail_timeout_ms: u64, problems: &mut Vec<String>) {
    if weight == 0 {
        problems.push("weight must be at least 1".to_owned());
    } else if weight > MAX_WEIGHT {
        problems.push(format!(
            "weight must be at most {MAX_WEIGHT} (got {weight})"
        ));
    }
    if fail_timeout_ms > MAX_FAIL_TIMEOUT_MS {
        problems.push(format!(
            "fail_timeout must be at most 1 hour (got {fail_timeout_ms} ms)"
        ));
    }
}

/// A time as nginx writes it: `10s`, `500ms`, `1m`.
fn nginx_time(ms: u64) -> String {
    match ms {
        0 => "0s".to_owned(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// Whether a backend's `servername` is a `host:port` address rather than
/// an upstream's name (ELB proxies to it directly). Upstream names never
/// hold a colon.
pub fn is_address(servername: &str) -> bool {
    servername.contains(':') && address(servername).is_ok()
}

/// What is wrong with `servername` as an address.
pub(crate) fn address_problem(servername: &str) -> String {
    address(servername).err().unwrap_or_default()
}

/// What is wrong with a `host:port` address, if anything.
fn address(addr: &str) -> Result<(), String> {
    let no_port = || format!("address {addr:?} has no port (expected host:port)");
    let port = if let Some(rest) = addr.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(format!(
                r#"address {addr:?} has no "]" after its IPv6 address"#
            ));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("address {addr:?}: {ip:?} is not an IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(no_port()),
            None => {
                return Err(format!(
                    r#"address {addr:?}: expected ":port" after "]", found {after:?}"#
                ));
            }
        }
    } else {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Err(no_port());
        };
        if host.contains(':') {
            return Err(format!(
                r#"address {addr:?}: an IPv6 address goes in brackets, as in "[::1]:80""#
            ));
        }
        if host.is_empty() {
            return Err(format!("address {addr:?} has no host (expected host:port)"));
        }
        host_name(host).map_err(|problem| format!("address {addr:?}: {problem}"))?;
        port
    };
    if port.is_empty() {
        return Err(no_port());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("address {addr:?}: port {port:?} is not a number"));
    }
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ => Err(format!(
            "address {addr:?}: port {port} is out of range (1–65535)"
        )),
    }
}

/// An IPv4 address when it is only digits and dots, else a DNS name of
/// RFC 1123 labels.
fn host_name(host: &str) -> Result<(), String> {
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{host:?} is not an IPv4 address")),
        };
    }
    if host.len() > 253 {
        return Err(format!("host {host:?} is longer than 253 characters"));
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(format!(r#"host {host:?} has an empty label"#));
        }
        if label.len() > 63 {
            return Err(format!(
                "host {host:?} has a label longer than 63 characters"
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(format!("host {host:?} has an invalid character {bad:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                r#"host {host:?} has a label that starts or ends with "-""#
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
