//! The load-balancing parts of the agent's configuration: local health
//! checks (`[[check]]`), the HAProxy agent-check responder
//! (`[agent_check]`), HAProxy's stats socket, and the reverse proxy
//! (`[proxy]`).

use cluster_model::config::{Problems, parse_duration};
use cluster_model::redact::Redactor;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[[check]]`: one of `http`, `tcp` or `command`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Option<String>,
    /// `http://host:port/path`, answered with `expect_status`.
    pub http: Option<String>,
    pub expect_status: Option<u16>,
    /// `host:port` that must accept a connection.
    pub tcp: Option<String>,
    /// argv, run without a shell; passes on `expect_code`.
    pub command: Option<Vec<String>>,
    pub expect_code: Option<i32>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    /// Consecutive passes that make a failing check pass again.
    pub rise: Option<u32>,
    /// Consecutive failures that make a passing check fail.
    pub fall: Option<u32>,
}

/// `[redact]`: what is masked in checks' output before anyone sees it
/// (the master, `clusterctl`, this agent's log).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedact {
    /// URL passwords, query values, `password=…`-like words, bearer
    /// credentials (default true).
    pub builtin: Option<bool>,
    /// Regular expressions whose matches are masked too.
    pub patterns: Option<Vec<String>>,
}

pub fn redactor(raw: Option<RawRedact>, p: &mut Problems) -> Option<Redactor> {
    let raw = raw.unwrap_or_default();
    let patterns = raw.patterns.unwrap_or_default();
    p.check(
        Redactor::new(raw.builtin.unwrap_or(true), &patterns).map_err(|e| format!("[redact] {e}")),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Http { url: http::Uri, expect_status: u16 },
    Tcp { addr: String },
    Command { argv: Vec<String>, expect_code: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub name: String,
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// `[agent_check]`: HAProxy's agent-check port.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentCheck {
    pub listen: Option<String>,
    /// Answer `ready up N%` with N falling as the CPU gets busy.
    pub weight_from_load: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCheckConfig {
    pub listen: SocketAddr,
    pub weight_from_load: bool,
}

/// `[proxy]`: the reverse proxy a `balancer` node runs.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub listen: Option<Vec<String>>,
    /// Answered by the proxy itself with the node's health ("" turns it
    /// off), so a load balancer probing the traffic port sees a drain.
    pub health_path: Option<String>,
    /// A line per request: a file's path, or "-" for standard output.
    /// Off when absent.
    pub access_log: Option<String>,
    /// "json" (one object a line, the default) or "combined" (nginx's,
    /// then host, upstream, upstream address, request and upstream time).
    pub access_log_format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub listen: Vec<SocketAddr>,
    pub health_path: Option<String>,
    pub access_log: Option<(crate::proxy::AccessLogTarget, crate::proxy::AccessLogFormat)>,
}

pub(super) fn checks(raw: Vec<RawCheck>, p: &mut Problems) -> Vec<CheckSpec> {
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, c) in raw.into_iter().enumerate() {
        let place = match &c.name {
            Some(n) => format!("check {n:?}"),
            None => format!("check #{}", i + 1),
        };
        let name = c.name.clone().unwrap_or_default();
        if cluster_model::ids::check_name(&name).is_err() {
            p.push(format!(
                "{place}: name must be 1 or more letters, digits, '-', '_' or '.'"
            ));
        } else if !names.insert(name.clone()) {
            p.push(format!("{place}: the name is used twice"));
        }
        let kinds = [c.http.is_some(), c.tcp.is_some(), c.command.is_some()];
        let kind = match kinds.iter().filter(|k| **k).count() {
            1 => {
                if let Some(url) = &c.http {
                    match url.parse::<http::Uri>() {
                        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {
                            Some(CheckKind::Http {
                                url: u,
                                expect_status: c.expect_status.unwrap_or(200),
                            })
                        }
                        _ => {
                            p.push(format!(
                                "{place}: http = {url:?}: expected a URL such as \"http://127.0.0.1:8080/ping\" (plain HTTP)"
                            ));
                            None
                        }
                    }
                } else if let Some(addr) = &c.tcp {
                    match addr
                        .rsplit_once(':')
                        .map(|(h, port)| (h, port.parse::<u16>()))
                    {
                        Some((h, Ok(port))) if !h.is_empty() && port > 0 => {
                            Some(CheckKind::Tcp { addr: addr.clone() })
                        }
                        _ => {
                            p.push(format!("{place}: tcp = {addr:?}: expected host:port"));
                            None
                        }
                    }
                } else {
                    let argv = c.command.clone().unwrap_or_default();
                    if argv.first().is_none_or(|a| a.is_empty()) {
                        p.push(format!("{place}: command is empty"));
                        None
                    } else {
                        Some(CheckKind::Command {
                            argv,
                            expect_code: c.expect_code.unwrap_or(0),
                        })
                    }
                }
            }
            0 => {
                p.push(format!("{place}: give one of http, tcp or command"));
                None
            }
            _ => {
                p.push(format!("{place}: give only one of http, tcp or command"));
                None
            }
        };
        if c.expect_status.is_some() && c.http.is_none() {
            p.push(format!(
                "{place}: expect_status applies to http checks only"
            ));
        }
        if c.expect_code.is_some() && c.command.is_none() {
            p.push(format!(
                "{place}: expect_code applies to command checks only"
            ));
        }
        let interval = p.check(parse_duration(
            &format!("{place}: interval"),
            c.interval.as_deref().unwrap_or("2s"),
        ));
        let timeout = p.check(parse_duration(
            &format!("{place}: timeout"),
            c.timeout.as_deref().unwrap_or("1s"),
        ));
        if let (Some(i), Some(t)) = (interval, timeout)
            && (i < Duration::from_millis(10) || t.is_zero() || t > i)
        {
            p.push(format!(
                    "{place}: interval ({i:?}) must be at least 10ms and timeout ({t:?}) above zero and at most the interval"
                ));
        }
        let (rise, fall) = (c.rise.unwrap_or(2), c.fall.unwrap_or(3));
        if rise == 0 || fall == 0 {
            p.push(format!("{place}: rise and fall must be at least 1"));
        }
        if let (Some(kind), Some(interval), Some(timeout)) = (kind, interval, timeout) {
            out.push(CheckSpec {
                name,
                kind,
                interval,
                timeout,
                rise,
                fall,
            });
        }
    }
    out
}

pub(super) fn agent_check(
    raw: Option<RawAgentCheck>,
    p: &mut Problems,
) -> Option<AgentCheckConfig> {
    let raw = raw?;
    let listen = raw.listen.unwrap_or_else(|| "0.0.0.0:7443".into());
    match listen.parse::<SocketAddr>() {
        Ok(listen) => Some(AgentCheckConfig {
            listen,
            weight_from_load: raw.weight_from_load.unwrap_or(false),
        }),
        Err(_) => {
            p.push(format!(
                "agent_check.listen = {listen:?}: not an address:port"
            ));
            None
        }
    }
}

pub(super) fn proxy(raw: Option<RawProxy>, p: &mut Problems) -> Option<ProxyConfig> {
    let raw = raw?;
    let mut listen = Vec::new();
    let given = raw.listen.unwrap_or_default();
    if given.is_empty() {
        p.push("proxy.listen: give at least one address:port to serve traffic on");
    }
    for a in given {
        match a.parse::<SocketAddr>() {
            Ok(addr) => listen.push(addr),
            Err(_) => p.push(format!("proxy.listen: {a:?} is not an address:port")),
        }
    }
    let health_path = match raw.health_path.as_deref() {
        None => Some("/health".to_owned()),
        Some("") => None,
        Some(path) if path.starts_with('/') => Some(path.to_owned()),
        Some(path) => {
            p.push(format!(
                "proxy.health_path = {path:?}: must start with '/' (or be \"\" to turn it off)"
            ));
            None
        }
    };
    use crate::proxy::{AccessLogFormat, AccessLogTarget};
    let format = match raw.access_log_format.as_deref() {
        None | Some("json") => AccessLogFormat::Json,
        Some("combined") => AccessLogFormat::Combined,
        Some(other) => {
            p.push(format!(
                "proxy.access_log_format = {other:?}: must be \"json\" or \"combined\""
            ));
            AccessLogFormat::Json
        }
    };
    let access_log = match raw.access_log.as_deref() {
        None => {
            if raw.access_log_format.is_some() {
                p.push("proxy.access_log_format: set proxy.access_log too (a path, or \"-\" for standard output)");
            }
            None
        }
        Some("") => {
            p.push("proxy.access_log = \"\": give a path, or \"-\" for standard output (leave it out to turn the log off)");
            None
        }
        Some("-") => Some((AccessLogTarget::Stdout, format)),
        Some(path) => Some((AccessLogTarget::File(path.into()), format)),
    };
    Some(ProxyConfig {
        listen,
        health_path,
        access_log,
    })
}

pub(super) fn stats_socket(raw: Option<PathBuf>) -> Option<PathBuf> {
    raw.filter(|p| !p.as_os_str().is_empty())
}
