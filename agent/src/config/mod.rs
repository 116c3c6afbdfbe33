//! Agent configuration, in the stages of `cluster_model::config` (the
//! loader the master uses too): the TOML file → [`RawConfig`] (every key
//! optional, unknown keys refused) → overrides from flags and
//! `CLUSTERCTL_*` environment → a validated [`Config`]. Every problem is
//! reported at once; defaults live in [`DEFAULTS`] only.
//!
//! - `balancing` — checks, HAProxy's agent-check and stats, the proxy.
//! - `masters` — `master`: one URL, a comma-separated list, or an array.
//! - `facts` — `facts_dir` and `facts_timeout`, for external facts.

use cluster_model::NodeId;
pub use cluster_model::config::ConfigError;
use cluster_model::config::{Problems, parse_duration};
use cluster_model::naming::{self, Naming};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod balancing;
mod facts;
mod masters;

pub use balancing::{
    AgentCheckConfig, CheckKind, CheckSpec, ProxyConfig, RawAgentCheck, RawCheck, RawProxy,
    RawRedact,
};
pub use facts::{Reread, Statics};
pub use masters::{MasterList, https};

#[derive(Debug, Clone)]
pub struct Config {
    /// The node's stable id (until enrollment assigns one from a certificate).
    pub id: NodeId,
    /// The masters' gRPC endpoints, `https://host:port`, as configured
    /// (the session tries them in a random order of its own).
    pub masters: Vec<String>,
    /// Where the last desired state is cached.
    pub data_dir: PathBuf,
    /// The health endpoint load balancers probe.
    pub health_listen: SocketAddr,
    /// The address other nodes and load balancers reach this node on.
    pub advertise: Option<IpAddr>,
    pub report_interval: Duration,
    /// How often grains and facts are collected again.
    pub facts_interval: Duration,
    /// Whether SIGHUP collects them again (the agent's own process: yes;
    /// agents embedded in `clusterctl dev`: no, the signal is its own).
    pub facts_on_sighup: bool,
    /// `roles` and a static `roles` grain's.
    pub roles: Vec<String>,
    /// Static grains laid over the collected ones.
    pub grains: Map<String, Value>,
    /// How a facts refresh reads `roles` and `grains` again (`None`: it
    /// keeps these).
    pub reread: Option<Reread>,
    /// Where external facts are read from (`facts::external`); empty: none.
    pub facts_dir: PathBuf,
    /// How long each executable in `facts_dir` may run.
    pub facts_timeout: Duration,
    /// The backoff between whole passes over the masters that all failed:
    /// full jitter, from `reconnect_min` up to a window doubling to
    /// `reconnect_max`.
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
    pub naming: Naming,
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
    /// What is masked in the checks' output (`[redact]`).
    pub redact: cluster_model::redact::Redactor,
    /// HAProxy's agent-check responder.
    pub agent_check: Option<AgentCheckConfig>,
    /// HAProxy's stats socket, read to tell when a drained server is idle.
    pub haproxy_stats_socket: Option<PathBuf>,
    /// The reverse proxy (nodes with the `balancer` role).
    pub proxy: Option<ProxyConfig>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub id: Option<String>,
    pub master: Option<MasterList>,
    pub data_dir: Option<PathBuf>,
    pub health_listen: Option<String>,
    pub advertise: Option<String>,
    pub report_interval: Option<String>,
    pub facts_interval: Option<String>,
    pub roles: Option<Vec<String>>,
    pub grains: Option<Map<String, Value>>,
    pub facts_dir: Option<PathBuf>,
    pub facts_timeout: Option<String>,
    pub reconnect_min: Option<String>,
    pub reconnect_max: Option<String>,
    pub join_token: Option<String>,
    /// A file holding the join token (kept out of the config and of `ps`).
    pub join_token_file: Option<PathBuf>,
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
    pub redact: Option<RawRedact>,
    pub agent_check: Option<RawAgentCheck>,
    pub haproxy_stats_socket: Option<PathBuf>,
    pub proxy: Option<RawProxy>,
}

impl RawConfig {
    /// Keys set in `over` win.
    pub fn merge(self, over: RawConfig) -> RawConfig {
        cluster_model::config::overlay(self, over)
    }
}

pub struct Defaults {
    pub master: &'static str,
    pub data_dir: &'static str,
    pub health_listen: &'static str,
    pub report_interval: &'static str,
    pub facts_interval: &'static str,
    pub reconnect_min: &'static str,
    pub reconnect_max: &'static str,
    pub facts_dir: &'static str,
    pub facts_timeout: &'static str,
}

pub const DEFAULTS: Defaults = Defaults {
    master: "https://127.0.0.1:7440",
    data_dir: "/var/lib/clusterctl/agent",
    health_listen: "0.0.0.0:7442",
    report_interval: "5s",
    facts_interval: "10m",
    reconnect_min: "100ms",
    reconnect_max: "5s",
    facts_dir: "/etc/clusterctl/facts.d",
    facts_timeout: "10s",
};

pub fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    cluster_model::config::read_file(path)
}

impl Config {
    /// `host_name` is the default id (read by the caller, so tests choose it).
    pub fn validate(
        raw: RawConfig,
        path: Option<&Path>,
        host_name: &str,
    ) -> Result<Config, ConfigError> {
        let d = DEFAULTS;
        let mut p = Problems::default();
        let id = raw
            .id
            .unwrap_or_else(|| host_name.split('.').next().unwrap_or_default().to_owned());
        let id = p.check(NodeId::new(id.clone()).map_err(|e| format!("id {id:?} {e}")));
        let masters = masters::masters(
            raw.master
                .unwrap_or_else(|| MasterList::from(d.master.to_owned())),
            &mut p,
        );
        let ca_fingerprint = raw.ca_fingerprint.map(|f| f.trim().to_lowercase());
        if let Some(f) = &ca_fingerprint {
            let hex = f.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                p.push(format!(
                    "ca_fingerprint = {f:?}: expected \"sha256:\" and 64 hex digits, as `clusterctl token create` prints"
                ));
            }
        }
        let health_listen = raw.health_listen.as_deref().unwrap_or(d.health_listen);
        let health_listen = health_listen
            .parse::<SocketAddr>()
            .map_err(|_| {
                p.push(format!(
                    "health_listen = {health_listen:?}: not an address:port"
                ))
            })
            .ok();
        let advertise = match raw.advertise.as_deref() {
            None | Some("") => None,
            Some(a) => a
                .parse::<IpAddr>()
                .map_err(|_| p.push(format!("advertise = {a:?}: not an IP address")))
                .ok(),
        };
        let report_interval = p.check(parse_duration(
            "report_interval",
            raw.report_interval.as_deref().unwrap_or(d.report_interval),
        ));
        if report_interval.is_some_and(|r| r < Duration::from_millis(200)) {
            p.push("report_interval must be at least 200ms (CPU usage needs that between samples)");
        }
        let facts_interval = p.check(parse_duration(
            "facts_interval",
            raw.facts_interval.as_deref().unwrap_or(d.facts_interval),
        ));
        if facts_interval.is_some_and(|f| f < Duration::from_secs(1)) {
            p.push("facts_interval must be at least 1s (each collection reads the whole machine)");
        }
        let reconnect_min = p.check(parse_duration(
            "reconnect_min",
            raw.reconnect_min.as_deref().unwrap_or(d.reconnect_min),
        ));
        let reconnect_max = p.check(parse_duration(
            "reconnect_max",
            raw.reconnect_max.as_deref().unwrap_or(d.reconnect_max),
        ));
        if let (Some(lo), Some(hi)) = (reconnect_min, reconnect_max)
            && (lo > hi || lo.is_zero())
        {
            p.push(format!(
                "reconnect_min ({lo:?}) must be above zero and at most reconnect_max ({hi:?})"
            ));
        }
        let grains = raw.grains.unwrap_or_default();
        let roles = facts::roles(raw.roles, &grains, &mut p);
        let data_dir = raw.data_dir.unwrap_or_else(|| d.data_dir.into());
        let service = raw.service.filter(|s| !s.is_empty());
        if let Some(svc) = &service
            && naming::check_service(svc).is_err()
        {
            p.push(format!(
                "service = {svc:?}: 1 to 50 letters, digits or inner hyphens (it becomes part of hostnames)"
            ));
        }
        let naming = raw.naming.as_deref().unwrap_or("");
        let naming =
            p.check(naming.parse::<Naming>().map_err(|_| {
                format!("naming = {naming:?}: expected \"iterative\" or \"masterful\"")
            }));
        let aliases = raw.aliases.unwrap_or_default();
        for a in &aliases {
            if let Err(e) = naming::check_hostname(a) {
                p.push(format!("alias {a:?}: {e}"));
            }
        }
        let join_token = match (
            raw.join_token.filter(|t| !t.is_empty()),
            raw.join_token_file,
        ) {
            (Some(_), Some(file)) => {
                p.push(format!(
                    "join_token and join_token_file ({}) are both set; keep one",
                    file.display()
                ));
                None
            }
            (Some(t), None) => Some(t),
            (None, Some(file)) => match std::fs::read_to_string(&file) {
                Ok(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
                Ok(_) => {
                    p.push(format!("join_token_file {} is empty", file.display()));
                    None
                }
                Err(e) => {
                    p.push(format!("join_token_file {}: {e}", file.display()));
                    None
                }
            },
            (None, None) => None,
        };
        let checks = balancing::checks(raw.checks.unwrap_or_default(), &mut p);
        let redact = balancing::redactor(raw.redact, &mut p);
        let agent_check = balancing::agent_check(raw.agent_check, &mut p);
        let proxy = balancing::proxy(raw.proxy, &mut p);
        let haproxy_stats_socket = balancing::stats_socket(raw.haproxy_stats_socket);
        let (facts_dir, facts_timeout) = facts::facts(raw.facts_dir, raw.facts_timeout, &mut p);
        p.finish("agent configuration", path, || {
            Some(Config {
                id: id?,
                masters,
                data_dir,
                health_listen: health_listen?,
                advertise,
                report_interval: report_interval?,
                facts_interval: facts_interval?,
                facts_on_sighup: true,
                roles,
                grains,
                reread: None,
                facts_dir,
                facts_timeout: facts_timeout?,
                reconnect_min: reconnect_min?,
                reconnect_max: reconnect_max?,
                join_token,
                ca_fingerprint,
                ca_file: raw.ca_file,
                remote_exec: raw.remote_exec.unwrap_or(true),
                service,
                naming: naming?,
                aliases,
                manage_hosts: raw.manage_hosts.unwrap_or(true),
                hosts_file: raw.hosts_file.unwrap_or_else(|| "/etc/hosts".into()),
                hosts_legacy_file: raw.hosts_legacy_file,
                set_hostname: raw.set_hostname.unwrap_or(false),
                dry_run: false,
                checks,
                redact: redact?,
                agent_check,
                haproxy_stats_socket,
                proxy,
            })
        })
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
        assert_eq!(c.masters, ["https://127.0.0.1:7440"]);
        assert_eq!(c.reconnect_min, Duration::from_millis(100));
        assert_eq!(c.reconnect_max, Duration::from_secs(5));
        assert_eq!(c.report_interval, Duration::from_secs(5));
        assert_eq!(c.facts_interval, Duration::from_secs(600));
    }

    #[test]
    fn the_master_is_always_reached_over_tls() {
        let master = |m: &str| validate(&format!("master = {m:?}")).unwrap().masters;
        assert_eq!(master("10.0.0.1:7440"), ["https://10.0.0.1:7440"]);
        assert_eq!(master("http://m:1"), ["https://m:1"]);
    }

    #[test]
    fn several_masters_as_a_list_or_an_array_and_the_flag_wins() {
        let c = validate("master = \"https://a:7440,https://b:7440\"").unwrap();
        assert_eq!(c.masters, ["https://a:7440", "https://b:7440"]);
        let c = validate("master = [\"a:7440\", \"b:7440\"]").unwrap();
        assert_eq!(c.masters, ["https://a:7440", "https://b:7440"]);
        // `--master` / CLUSTERCTL_MASTER replaces the file's list whole.
        let file: RawConfig = toml::from_str("master = [\"a:7440\", \"b:7440\"]").unwrap();
        let over = RawConfig {
            master: Some(MasterList::from("c:7440,d:7440".to_owned())),
            ..RawConfig::default()
        };
        let c = Config::validate(file.merge(over), None, "box").unwrap();
        assert_eq!(c.masters, ["https://c:7440", "https://d:7440"]);
    }

    #[test]
    fn a_static_roles_grain_adds_roles_and_must_be_a_list_of_names() {
        let c = validate("roles = [\"web\"]\n[grains]\nroles = [\"api\", \"web\"]\n").unwrap();
        assert_eq!(c.roles, ["web", "api"]);
        let err = validate("[grains]\nroles = \"api\"\n").unwrap_err();
        assert!(
            err.contains("grains.roles = \"api\": a list of role names"),
            "{err}"
        );
        let err = validate("[grains]\nroles = [\"a b\", 3]\n").unwrap_err();
        assert!(err.contains("role \"a b\""), "{err}");
        assert!(err.contains("grains.roles: 3 is not a role name"), "{err}");
    }

    #[test]
    fn all_problems_at_once() {
        let err = validate(
            r#"id = "web 1"
health_listen = "nope"
report_interval = "10ms"
facts_interval = "10ms"
roles = ["web", "bad role"]
reconnect_min = "10s"
reconnect_max = "1s"
ca_fingerprint = "abc"
master = "https://a:7440,b c""#,
        )
        .unwrap_err();
        for want in [
            "id \"web 1\" contains ' '",
            "health_listen = \"nope\": not an address:port",
            "report_interval must be at least 200ms",
            "facts_interval must be at least 1s",
            "role \"bad role\"",
            "reconnect_min (10s) must be above zero and at most reconnect_max (1s)",
            "ca_fingerprint = \"abc\": expected \"sha256:\" and 64 hex digits",
            "master entry 2 of 2 = \"b c\": not a URL",
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
access_log = "-"
access_log_format = "combined"
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
        assert_eq!(
            proxy.access_log,
            Some((
                crate::proxy::AccessLogTarget::Stdout,
                crate::proxy::AccessLogFormat::Combined
            ))
        );

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
access_log = "/var/log/clusterctl/access.log"
access_log_format = "clf"
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
            "proxy.access_log_format = \"clf\": must be \"json\" or \"combined\"",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn static_grains_keep_their_nesting() {
        let c = validate("[grains]\ndatacenter = { name = \"ams1\", rack = 4 }\n").unwrap();
        assert_eq!(c.grains["datacenter"]["rack"], 4);
    }

    mod generated {
        //! Generated configurations: every key with values fit and unfit.
        //! Validation ends without a panic, and a refusal lists each
        //! problem on a line of its own, naming the file.

        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("\"web-1\"".to_owned()),
                Just("\"\"".to_owned()),
                Just("\"10ms\"".to_owned()),
                Just("\"5s\"".to_owned()),
                Just("\"127.0.0.1:0\"".to_owned()),
                Just("\"https://a:7440,b c\"".to_owned()),
                Just("[\"web\", \"bad role\"]".to_owned()),
                Just("true".to_owned()),
                Just("-1".to_owned()),
                "[ -~]{0,12}".prop_map(|v| format!("{:?}", v)),
            ]
        }

        fn key() -> impl Strategy<Value = &'static str> {
            prop_oneof![
                Just("id"),
                Just("master"),
                Just("health_listen"),
                Just("advertise"),
                Just("report_interval"),
                Just("roles"),
                Just("reconnect_min"),
                Just("reconnect_max"),
                Just("ca_fingerprint"),
                Just("service"),
                Just("naming"),
                Just("aliases"),
                Just("hosts_file"),
                Just("join_token"),
                Just("join_token_file"),
                Just("facts_dir"),
                Just("facts_timeout"),
                Just("unknown_key"),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 256,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn any_configuration_is_taken_or_refused_problem_by_problem(
                lines in prop::collection::btree_map(key(), value(), 0..8)
            ) {
                let text: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
                let Ok(raw) = toml::from_str::<RawConfig>(&text) else {
                    return Ok(());
                };
                if let Err(e) = Config::validate(raw, Some(std::path::Path::new("/etc/agent.toml")), "box") {
                    let text = e.to_string();
                    prop_assert!(text.contains("/etc/agent.toml"), "{text}");
                    prop_assert!(text.lines().count() >= 2, "{text}");
                }
            }
        }
    }
}
