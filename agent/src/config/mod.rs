//! Agent configuration, in stages: the TOML file → [`RawConfig`] (every key
//! optional, unknown keys refused) → overrides from flags and `CLUSTERCTL_*`
//! environment → a validated [`Config`]. Every problem is reported at once;
//! defaults live in [`DEFAULTS`] only.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod balancing;

pub use balancing::{
    AgentCheckConfig, CheckKind, CheckSpec, ProxyConfig, RawAgentCheck, RawCheck, RawProxy,
};

#[derive(Debug, Clone)]
pub struct Config {
    /// The node's stable id (until enrollment assigns one from a certificate).
    pub id: String,
    /// The master's gRPC endpoint, `https://host:port`.
    pub master: String,
    /// Where the last desired state is cached.
    pub data_dir: PathBuf,
    /// The health endpoint load balancers probe.
    pub health_listen: SocketAddr,
    /// The address other nodes and load balancers reach this node on.
    pub advertise: Option<IpAddr>,
    pub report_interval: Duration,
    pub roles: Vec<String>,
    /// Static grains laid over the collected ones.
    pub grains: Map<String, Value>,
    /// Reconnect backoff bounds (with jitter in between).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Admits the node at once on first start (`clusterctl token create`).
    pub join_token: Option<String>,
    /// The CA to trust: pinned by fingerprint, or given as a file.
    pub ca_fingerprint: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// Whether the master may run commands here (`clusterctl run`).
    pub remote_exec: bool,
    /// The service this node runs; the master names it from it.
    pub service: Option<String>,
    /// "iterative" or "masterful".
    pub naming: String,
    pub aliases: Vec<String>,
    /// Keep a managed block of every node in `hosts_file`.
    pub manage_hosts: bool,
    pub hosts_file: PathBuf,
    /// Placed at the top of the managed block (Aerostat's legacy data).
    pub hosts_legacy_file: Option<PathBuf>,
    /// Set the system hostname to the assigned name.
    pub set_hostname: bool,
    /// Print what the hosts file would become, and stop (`--dry-run`).
    pub dry_run: bool,
    /// Local health checks; a failing one takes the node out of rotation.
    pub checks: Vec<CheckSpec>,
    /// HAProxy's agent-check responder.
    pub agent_check: Option<AgentCheckConfig>,
    /// HAProxy's stats socket, read to tell when a drained server is idle.
    pub haproxy_stats_socket: Option<PathBuf>,
    /// The reverse proxy (nodes with the `balancer` role).
    pub proxy: Option<ProxyConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub id: Option<String>,
    pub master: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub health_listen: Option<String>,
    pub advertise: Option<String>,
    pub report_interval: Option<String>,
    pub roles: Option<Vec<String>>,
    pub grains: Option<Map<String, Value>>,
    pub reconnect_min: Option<String>,
    pub reconnect_max: Option<String>,
    pub join_token: Option<String>,
    pub ca_fingerprint: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub remote_exec: Option<bool>,
    pub service: Option<String>,
    pub naming: Option<String>,
    pub aliases: Option<Vec<String>>,
    pub manage_hosts: Option<bool>,
    pub hosts_file: Option<PathBuf>,
    pub hosts_legacy_file: Option<PathBuf>,
    pub set_hostname: Option<bool>,
    #[serde(rename = "check")]
    pub checks: Option<Vec<RawCheck>>,
    pub agent_check: Option<RawAgentCheck>,
    pub haproxy_stats_socket: Option<PathBuf>,
    pub proxy: Option<RawProxy>,
}

impl RawConfig {
    /// Keys set in `over` win.
    pub fn merge(self, over: RawConfig) -> RawConfig {
        RawConfig {
            id: over.id.or(self.id),
            master: over.master.or(self.master),
            data_dir: over.data_dir.or(self.data_dir),
            health_listen: over.health_listen.or(self.health_listen),
            advertise: over.advertise.or(self.advertise),
            report_interval: over.report_interval.or(self.report_interval),
            roles: over.roles.or(self.roles),
            grains: over.grains.or(self.grains),
            reconnect_min: over.reconnect_min.or(self.reconnect_min),
            reconnect_max: over.reconnect_max.or(self.reconnect_max),
            join_token: over.join_token.or(self.join_token),
            ca_fingerprint: over.ca_fingerprint.or(self.ca_fingerprint),
            ca_file: over.ca_file.or(self.ca_file),
            remote_exec: over.remote_exec.or(self.remote_exec),
            service: over.service.or(self.service),
            naming: over.naming.or(self.naming),
            aliases: over.aliases.or(self.aliases),
            manage_hosts: over.manage_hosts.or(self.manage_hosts),
            hosts_file: over.hosts_file.or(self.hosts_file),
            hosts_legacy_file: over.hosts_legacy_file.or(self.hosts_legacy_file),
            set_hostname: over.set_hostname.or(self.set_hostname),
            checks: over.checks.or(self.checks),
            agent_check: over.agent_check.or(self.agent_check),
            haproxy_stats_socket: over.haproxy_stats_socket.or(self.haproxy_stats_socket),
            proxy: over.proxy.or(self.proxy),
        }
    }
}

pub struct Defaults {
    pub master: &'static str,
    pub data_dir: &'static str,
    pub health_listen: &'static str,
    pub report_interval: &'static str,
    pub reconnect_min: &'static str,
    pub reconnect_max: &'static str,
}

pub const DEFAULTS: Defaults = Defaults {
    master: "https://127.0.0.1:7440",
    data_dir: "/var/lib/clusterctl/agent",
    health_listen: "0.0.0.0:7442",
    report_interval: "5s",
    reconnect_min: "100ms",
    reconnect_max: "5s",
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid agent configuration{}:\n  - {}",
        .path.as_ref().map(|p| format!(" (file {})", p.display())).unwrap_or_default(),
        .problems.join("\n  - "))]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<String>,
    },
}

pub fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Node ids: letters, digits, '-', '_' and '.', at most 253 bytes.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("id is empty".into());
    }
    if id.len() > 253 {
        return Err(format!("id is {} bytes long; at most 253", id.len()));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "id {id:?} contains {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        )),
        None => Ok(()),
    }
}

/// The master is always reached over TLS: a bare `host:port` or an
/// `http://` URL becomes `https://`.
pub fn https(master: &str) -> String {
    match master.split_once("://") {
        Some((_, rest)) => format!("https://{rest}"),
        None => format!("https://{master}"),
    }
}

struct Problems(Vec<String>);

impl Problems {
    fn duration(&mut self, key: &str, value: &str) -> Option<Duration> {
        humantime::parse_duration(value.trim())
            .map_err(|e| {
                self.0.push(format!(
                    "{key} = {value:?}: not a duration ({e}); try \"5s\" or \"500ms\""
                ))
            })
            .ok()
    }
}

impl Config {
    /// `host_name` is the default id (read by the caller, so tests choose it).
    pub fn validate(
        raw: RawConfig,
        path: Option<&Path>,
        host_name: &str,
    ) -> Result<Config, ConfigError> {
        let d = DEFAULTS;
        let mut p = Problems(Vec::new());
        let id = raw
            .id
            .unwrap_or_else(|| host_name.split('.').next().unwrap_or_default().to_owned());
        if let Err(e) = check_id(&id) {
            p.0.push(e);
        }
        let master = https(&raw.master.unwrap_or_else(|| d.master.into()));
        if master
            .parse::<http::Uri>()
            .map(|u| u.host().is_none())
            .unwrap_or(true)
        {
            p.0.push(format!(
                "master = {master:?}: not a URL such as \"https://10.0.0.1:7440\""
            ));
        }
        let ca_fingerprint = raw.ca_fingerprint.map(|f| f.trim().to_lowercase());
        if let Some(f) = &ca_fingerprint {
            let hex = f.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                p.0.push(format!(
                    "ca_fingerprint = {f:?}: expected \"sha256:\" and 64 hex digits, as `clusterctl token create` prints"
                ));
            }
        }
        let health_listen = raw.health_listen.as_deref().unwrap_or(d.health_listen);
        let health_listen = health_listen
            .parse::<SocketAddr>()
            .map_err(|_| {
                p.0.push(format!(
                    "health_listen = {health_listen:?}: not an address:port"
                ))
            })
            .ok();
        let advertise = match raw.advertise.as_deref() {
            None | Some("") => None,
            Some(a) => a
                .parse::<IpAddr>()
                .map_err(|_| p.0.push(format!("advertise = {a:?}: not an IP address")))
                .ok(),
        };
        let report_interval = p.duration(
            "report_interval",
            raw.report_interval.as_deref().unwrap_or(d.report_interval),
        );
        if report_interval.is_some_and(|r| r < Duration::from_millis(200)) {
            p.0.push(
                "report_interval must be at least 200ms (CPU usage needs that between samples)"
                    .into(),
            );
        }
        let reconnect_min = p.duration(
            "reconnect_min",
            raw.reconnect_min.as_deref().unwrap_or(d.reconnect_min),
        );
        let reconnect_max = p.duration(
            "reconnect_max",
            raw.reconnect_max.as_deref().unwrap_or(d.reconnect_max),
        );
        if let (Some(lo), Some(hi)) = (reconnect_min, reconnect_max)
            && (lo > hi || lo.is_zero())
        {
            p.0.push(format!(
                "reconnect_min ({lo:?}) must be above zero and at most reconnect_max ({hi:?})"
            ));
        }
        let roles = raw.roles.unwrap_or_default();
        for r in &roles {
            if check_id(r).is_err() {
                p.0.push(format!(
                    "role {r:?}: only letters, digits, '-', '_' and '.' are allowed"
                ));
            }
        }
        let data_dir = raw.data_dir.unwrap_or_else(|| d.data_dir.into());
        let service = raw.service.filter(|s| !s.is_empty());
        if let Some(svc) = &service {
            let ok = svc.len() <= 50
                && !svc.starts_with('-')
                && !svc.ends_with('-')
                && svc.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                p.0.push(format!(
                    "service = {svc:?}: 1 to 50 letters, digits or inner hyphens (it becomes part of hostnames)"
                ));
            }
        }
        let naming = raw.naming.unwrap_or_else(|| "iterative".into());
        if !matches!(naming.as_str(), "iterative" | "masterful") {
            p.0.push(format!(
                "naming = {naming:?}: expected \"iterative\" or \"masterful\""
            ));
        }
        let aliases = raw.aliases.unwrap_or_default();
        for a in &aliases {
            let ok = !a.is_empty()
                && a.len() <= 253
                && a.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                p.0.push(format!("alias {a:?} is not a hostname"));
            }
        }
        let checks = balancing::checks(raw.checks.unwrap_or_default(), &mut p);
        let agent_check = balancing::agent_check(raw.agent_check, &mut p);
        let proxy = balancing::proxy(raw.proxy, &mut p);
        let haproxy_stats_socket = balancing::stats_socket(raw.haproxy_stats_socket);
        match (health_listen, report_interval, reconnect_min, reconnect_max) {
            (
                Some(health_listen),
                Some(report_interval),
                Some(reconnect_min),
                Some(reconnect_max),
            ) if p.0.is_empty() => Ok(Config {
                id,
                master,
                data_dir,
                health_listen,
                advertise,
                report_interval,
                roles,
                grains: raw.grains.unwrap_or_default(),
                reconnect_min,
                reconnect_max,
                join_token: raw.join_token.filter(|t| !t.is_empty()),
                ca_fingerprint,
                ca_file: raw.ca_file,
                remote_exec: raw.remote_exec.unwrap_or(true),
                service,
                naming,
                aliases,
                manage_hosts: raw.manage_hosts.unwrap_or(true),
                hosts_file: raw.hosts_file.unwrap_or_else(|| "/etc/hosts".into()),
                hosts_legacy_file: raw.hosts_legacy_file,
                set_hostname: raw.set_hostname.unwrap_or(false),
                dry_run: false,
                checks,
                agent_check,
                haproxy_stats_socket,
                proxy,
            }),
            _ => Err(ConfigError::Invalid {
                path: path.map(Path::to_owned),
                problems: p.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Config::validate(raw, None, "box.example.com").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_the_host_name_as_id() {
        let c = validate("").unwrap();
        assert_eq!(c.id, "box");
        assert_eq!(c.master, "https://127.0.0.1:7440");
        assert_eq!(c.report_interval, Duration::from_secs(5));
    }

    #[test]
    fn the_master_is_always_reached_over_tls() {
        let master = |m: &str| validate(&format!("master = {m:?}")).unwrap().master;
        assert_eq!(master("10.0.0.1:7440"), "https://10.0.0.1:7440");
        assert_eq!(master("http://m:1"), "https://m:1");
    }

    #[test]
    fn all_problems_at_once() {
        let err = validate(
            r#"id = "web 1"
health_listen = "nope"
report_interval = "10ms"
roles = ["web", "bad role"]
reconnect_min = "10s"
reconnect_max = "1s"
ca_fingerprint = "abc""#,
        )
        .unwrap_err();
        for want in [
            "id \"web 1\" contains ' '",
            "health_listen = \"nope\": not an address:port",
            "report_interval must be at least 200ms",
            "role \"bad role\"",
            "reconnect_min (10s) must be above zero and at most reconnect_max (1s)",
            "ca_fingerprint = \"abc\": expected \"sha256:\" and 64 hex digits",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn checks_agent_check_and_proxy_are_read_and_checked() {
        let c = validate(
            r#"
[[check]]
name = "app"
http = "http://127.0.0.1:8080/ping"
interval = "500ms"
timeout = "200ms"
[[check]]
name = "db"
tcp = "127.0.0.1:5432"
[[check]]
name = "disk"
command = ["test", "-w", "/var"]
expect_code = 0
rise = 1
fall = 1
[agent_check]
listen = "127.0.0.2:7443"
[proxy]
listen = ["127.0.0.2:8080"]
"#,
        )
        .unwrap();
        assert_eq!(c.checks.len(), 3);
        assert_eq!(c.checks[0].interval, Duration::from_millis(500));
        assert_eq!((c.checks[1].rise, c.checks[1].fall), (2, 3));
        assert!(matches!(c.checks[2].kind, CheckKind::Command { .. }));
        assert_eq!(c.agent_check.unwrap().listen.port(), 7443);
        let proxy = c.proxy.unwrap();
        assert_eq!(proxy.health_path.as_deref(), Some("/health"));

        let err = validate(
            r#"
[[check]]
name = "both"
http = "http://a/"
tcp = "a:1"
[[check]]
name = "web"
http = "https://a/"
[[check]]
tcp = "nohost"
interval = "1s"
timeout = "2s"
[agent_check]
listen = "x"
[proxy]
listen = []
health_path = "health"
"#,
        )
        .unwrap_err();
        for want in [
            "check \"both\": give only one of http, tcp or command",
            "check \"web\": http = \"https://a/\": expected a URL",
            "check #3: name must be",
            "check #3: tcp = \"nohost\": expected host:port",
            "check #3: interval (1s) must be at least 10ms and timeout (2s)",
            "agent_check.listen = \"x\": not an address:port",
            "proxy.listen: give at least one address:port",
            "proxy.health_path = \"health\": must start with '/'",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn static_grains_keep_their_nesting() {
        let c = validate("[grains]\ndatacenter = { name = \"ams1\", rack = 4 }\n").unwrap();
        assert_eq!(c.grains["datacenter"]["rack"], 4);
    }
}
