//! Master configuration, in the stages of `cluster_model::config` (the
//! loader the agent uses too): the TOML file → [`RawConfig`] (every key
//! optional, unknown keys refused) → overrides from flags and
//! `CLUSTERCTL_*` environment (same shape, laid on top) → a validated
//! [`Config`]. Every problem is reported at once; defaults live in
//! [`Config::DEFAULTS`] only.

use cluster_model::config::Problems;
pub use cluster_model::config::{ConfigError, parse_addr, parse_duration, read_file};
use cluster_model::naming;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated master configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC for agents and clusterctl.
    pub listen: SocketAddr,
    /// Read-only HTTP (health, metrics); `None` turns it off.
    pub http_listen: Option<SocketAddr>,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// A node not heard from for this long is shown `down`.
    pub down_after: Duration,
    /// Names and addresses clients reach the master by; all go into its
    /// server certificate.
    pub server_names: Vec<String>,
    /// Shown in the CA's name.
    pub cluster_name: String,
    /// Output of a job kept per node and stream (bytes); more is cut.
    pub job_output_limit: usize,
    /// Appended to node names in hosts files (`web-1.example.com`).
    pub base_domain: Option<String>,
    /// Forget nodes down longer than this, freeing their names; `None`: never.
    pub name_expiry: Option<Duration>,
    /// Extra names in hosts files for the nodes of a role (`balancer` → `lb`).
    pub role_aliases: std::collections::BTreeMap<String, Vec<String>>,
    /// Where the state lives: sled in `data_dir`, or an etcd cluster
    /// shared by several masters.
    pub store: StoreConfig,
    /// This master's name among several (its certificate's, its lease's).
    pub name: String,
    /// The URL the other masters reach this one at (`https://host:port`).
    pub advertise: String,
    /// How much history is kept (events, jobs, rollouts).
    pub retention: crate::cluster::Retention,
    /// Refused handshakes are counted per source over this long: the
    /// first is an event at once, the rest one event when it ends.
    pub refusal_window: Duration,
    /// How long a node's certificate is valid; its agent renews it after
    /// two thirds of that.
    pub node_certificate_lifetime: Duration,
    /// Agents may advertise an address other than the one their session
    /// comes from (behind NAT or a proxy); otherwise such a session is
    /// refused.
    pub allow_nat: bool,
    /// The HTTP side (API, dashboard, health) over HTTPS with the master's
    /// server certificate, HTTP/2 offered.
    pub http_tls: bool,
    /// Usage history kept, and the alert rules' levels.
    pub monitor: crate::monitor::MonitorConfig,
    /// Where alerts are delivered (empty: nowhere).
    pub notify: crate::notify::NotifyConfig,
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// sled, in `data_dir/store`: one master.
    Sled,
    /// etcd, shared by several masters; one leads.
    Etcd(EtcdSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    /// Every key under it; starts and ends with `/`.
    pub prefix: String,
    /// The leader's lease (etcd's minimum is 2 s).
    pub lease_ttl: Duration,
}

/// What a file (or a set of overrides) says; all keys optional.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    /// `"off"` disables the HTTP side.
    pub http_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub down_after: Option<String>,
    pub server_names: Option<Vec<String>>,
    pub cluster_name: Option<String>,
    pub job_output_limit: Option<usize>,
    pub base_domain: Option<String>,
    /// `"off"` (the default) or a duration such as `"24h"`.
    pub name_expiry: Option<String>,
    pub role_aliases: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// `"sled"` (the default) or `"etcd"`.
    pub store: Option<String>,
    /// With `store = "etcd"`: `http://host:2379` or `https://…`, several.
    pub etcd_endpoints: Option<Vec<String>>,
    pub etcd_prefix: Option<String>,
    pub lease_ttl: Option<String>,
    pub name: Option<String>,
    pub advertise: Option<String>,
    /// History kept: the newest this many events, jobs, rollouts.
    pub keep_events: Option<usize>,
    pub keep_jobs: Option<usize>,
    pub keep_rollouts: Option<usize>,
    /// Refused TLS handshakes counted per source over this long.
    pub refused_handshakes_window: Option<String>,
    /// Pending keys nobody accepted are deleted after this long.
    pub pending_keys_expire: Option<String>,
    /// Events older than this are deleted (`"off"`: by count alone).
    pub keep_events_for: Option<String>,
    /// How long node certificates are valid (renewed after 2/3 of it).
    pub node_certificate_lifetime: Option<String>,
    /// Sessions may come from another address than their node advertises.
    pub allow_nat: Option<bool>,
    /// Serve the HTTP side over HTTPS with the master's certificate.
    pub http_tls: Option<bool>,
    /// How much usage history each node keeps (`"1h"`).
    pub usage_history: Option<String>,
    /// The alert rules' levels: `[alerts]`, with `[alerts.roles.NAME]` and
    /// `[alerts.nodes.NAME]` overrides.
    pub alerts: Option<cluster_model::alerts::RawAlerts>,
    /// `[notify]`: Alertmanagers, email, webhooks.
    pub notify: Option<crate::notify::RawNotify>,
}

impl RawConfig {
    /// Keys set in `over` win.
    pub fn merge(self, over: RawConfig) -> RawConfig {
        cluster_model::config::overlay(self, over)
    }
}

impl Config {
    pub const DEFAULTS: RawConfigDefaults = RawConfigDefaults {
        listen: "127.0.0.1:7440",
        http_listen: "127.0.0.1:7441",
        data_dir: "/var/lib/clusterctl/master",
        down_after: "15s",
        lease_ttl: "5s",
        etcd_prefix: "/clusterctl/v1/",
    };

    /// `host_name` joins the default server names (read by the caller, so
    /// tests choose it).
    pub fn validate(
        raw: RawConfig,
        path: Option<&Path>,
        host_name: &str,
    ) -> Result<Config, ConfigError> {
        let d = Self::DEFAULTS;
        let mut problems = Problems::default();
        let listen = problems.check(parse_addr(
            "listen",
            raw.listen.as_deref().unwrap_or(d.listen),
        ));
        let http_listen = match raw.http_listen.as_deref().unwrap_or(d.http_listen) {
            "off" | "" => Some(None),
            v => problems.check(parse_addr("http_listen", v)).map(Some),
        };
        let down_after = problems.check(
            parse_duration(
                "down_after",
                raw.down_after.as_deref().unwrap_or(d.down_after),
            )
            .and_then(|d| {
                if d < Duration::from_millis(100) {
                    Err(format!("down_after = {d:?}: must be at least 100ms"))
                } else {
                    Ok(d)
                }
            }),
        );
        let data_dir = raw.data_dir.unwrap_or_else(|| d.data_dir.into());
        if data_dir.as_os_str().is_empty() {
            problems.push("data_dir is empty");
        }
        let mut server_names = raw.server_names.unwrap_or_else(|| {
            let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
            if let Some(l) = listen.filter(|l| !l.ip().is_unspecified() && !l.ip().is_loopback()) {
                names.push(l.ip().to_string());
            }
            if !host_name.is_empty() {
                names.push(host_name.to_owned());
            }
            names
        });
        // The address contexts are written for (`init`, the admin config)
        // is always in the certificate, whatever the list says.
        if let Some(l) = listen.filter(|l| !l.ip().is_unspecified()) {
            let ip = l.ip().to_string();
            if !server_names.contains(&ip) {
                server_names.push(ip);
            }
        }
        for n in &server_names {
            let ok = n.parse::<std::net::IpAddr>().is_ok()
                || (!n.is_empty()
                    && n.split('.').all(|l| {
                        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    }));
            if !ok {
                problems.push(format!(
                    "server_names: {n:?} is neither a DNS name nor an IP address"
                ));
            }
        }
        let cluster_name = raw.cluster_name.unwrap_or_else(|| "clusterctl".into());
        let name_expiry = match raw.name_expiry.as_deref() {
            None | Some("off") | Some("") => None,
            Some(v) => problems.check(parse_duration("name_expiry", v)),
        };
        let role_aliases = raw.role_aliases.unwrap_or_default();
        for (role, names) in &role_aliases {
            for n in names {
                if let Err(e) = naming::check_hostname(n) {
                    problems.push(format!("role_aliases.{role}: {e}"));
                }
            }
        }
        let lease_ttl = problems.check(parse_duration(
            "lease_ttl",
            raw.lease_ttl.as_deref().unwrap_or(d.lease_ttl),
        ));
        if lease_ttl.is_some_and(|t| t < Duration::from_secs(2)) {
            problems.push("lease_ttl must be at least 2s (etcd's minimum)");
        }
        let store = match raw.store.as_deref().unwrap_or("sled") {
            "sled" => Some(StoreConfig::Sled),
            "etcd" => {
                let endpoints = raw.etcd_endpoints.clone().unwrap_or_default();
                if endpoints.is_empty() {
                    problems.push("store = \"etcd\" needs etcd_endpoints (such as [\"http://10.0.0.5:2379\"])");
                }
                for e in &endpoints {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        problems.push(format!(
                            "etcd_endpoints: {e:?} is not a URL such as \"http://10.0.0.5:2379\""
                        ));
                    }
                }
                let prefix = raw
                    .etcd_prefix
                    .clone()
                    .unwrap_or_else(|| d.etcd_prefix.into());
                if !(prefix.starts_with('/') && prefix.ends_with('/')) {
                    problems.push(format!(
                        "etcd_prefix = {prefix:?}: must start and end with '/'"
                    ));
                }
                lease_ttl.map(|lease_ttl| {
                    StoreConfig::Etcd(EtcdSettings {
                        endpoints,
                        prefix,
                        lease_ttl,
                    })
                })
            }
            other => {
                problems.push(format!("store = {other:?}: expected \"sled\" or \"etcd\""));
                None
            }
        };
        let name = raw
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| match host_name {
                "" => "master".into(),
                h => h.split('.').next().unwrap_or(h).to_owned(),
            });
        if let Err(e) = cluster_model::ids::check_name(&name) {
            problems.push(format!("name = {name:?}: {e}"));
        }
        let advertise = match (&raw.advertise, listen) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(l)) if !l.ip().is_unspecified() => Some(format!("https://{l}")),
            (None, Some(l)) => Some(format!(
                "https://{}:{}",
                server_names.first().map_or("localhost", String::as_str),
                l.port()
            )),
            (None, None) => None,
        };
        let base_domain = raw.base_domain.filter(|d| !d.is_empty());
        if let Some(d) = &base_domain
            && let Err(e) = naming::check_hostname(d)
        {
            problems.push(format!("base_domain: {e}"));
        }
        let defaults = crate::cluster::Retention::default();
        let mut keep = |key: &str, value: Option<usize>, default: usize, least: usize| {
            let n = value.unwrap_or(default);
            if n < least {
                problems.push(format!("{key} = {n}: must be at least {least}"));
            }
            n
        };
        let retention = crate::cluster::Retention {
            events: keep("keep_events", raw.keep_events, defaults.events, 100),
            jobs: keep("keep_jobs", raw.keep_jobs, defaults.jobs, 10),
            rollouts: keep("keep_rollouts", raw.keep_rollouts, defaults.rollouts, 10),
            events_for: match raw.keep_events_for.as_deref() {
                None => defaults.events_for,
                Some("off") | Some("") => None,
                Some(v) => problems.check(parse_duration("keep_events_for", v)),
            },
            pending_keys: match raw.pending_keys_expire.as_deref() {
                None => defaults.pending_keys,
                Some(v) => problems
                    .check(parse_duration("pending_keys_expire", v))
                    .unwrap_or(defaults.pending_keys),
            },
            ..defaults
        };
        let refusal_window = problems.check(
            parse_duration(
                "refused_handshakes_window",
                raw.refused_handshakes_window.as_deref().unwrap_or("60s"),
            )
            .and_then(|w| {
                if w < Duration::from_secs(1) {
                    Err(format!(
                        "refused_handshakes_window = {w:?}: must be at least 1s"
                    ))
                } else {
                    Ok(w)
                }
            }),
        );
        let node_certificate_lifetime = problems.check(
            parse_duration(
                "node_certificate_lifetime",
                raw.node_certificate_lifetime.as_deref().unwrap_or("365d"),
            )
            .and_then(|d| {
                if d < Duration::from_secs(6) {
                    Err(format!(
                        "node_certificate_lifetime = {d:?}: must be at least 6s"
                    ))
                } else {
                    Ok(d)
                }
            }),
        );
        let history = problems.check(
            parse_duration(
                "usage_history",
                raw.usage_history.as_deref().unwrap_or("1h"),
            )
            .and_then(|h| {
                if h < Duration::from_secs(60) || h > Duration::from_secs(24 * 3600) {
                    Err(format!(
                        "usage_history = {h:?}: must be from 1m to 24h (it is held in memory)"
                    ))
                } else {
                    Ok(h)
                }
            }),
        );
        let thresholds =
            match cluster_model::alerts::Thresholds::from_raw(&raw.alerts.unwrap_or_default()) {
                Ok(t) => Some(t),
                Err(all) => {
                    for p in all {
                        problems.push(p);
                    }
                    None
                }
            };
        let notify = crate::notify::NotifyConfig::validate(raw.notify, &mut problems);
        problems.finish("configuration", path, || {
            Some(Config {
                listen: listen?,
                http_listen: http_listen?,
                data_dir,
                down_after: down_after?,
                server_names,
                cluster_name,
                job_output_limit: raw.job_output_limit.unwrap_or(64 * 1024),
                base_domain,
                name_expiry,
                role_aliases,
                store: store?,
                name,
                advertise: advertise?,
                retention,
                refusal_window: refusal_window?,
                node_certificate_lifetime: node_certificate_lifetime?,
                allow_nat: raw.allow_nat.unwrap_or(false),
                http_tls: raw.http_tls.unwrap_or(false),
                monitor: crate::monitor::MonitorConfig {
                    history: history?,
                    thresholds: thresholds?,
                },
                notify: notify?,
            })
        })
    }
}

pub struct RawConfigDefaults {
    pub listen: &'static str,
    pub http_listen: &'static str,
    pub data_dir: &'static str,
    pub down_after: &'static str,
    pub lease_ttl: &'static str,
    pub etcd_prefix: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = Config::validate(raw(r#"data_dir = "/tmp/x""#), None, "box").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7440");
        assert_eq!(c.http_listen.unwrap().to_string(), "127.0.0.1:7441");
        assert_eq!(c.down_after, Duration::from_secs(15));
        assert_eq!(c.server_names, ["localhost", "127.0.0.1", "::1", "box"]);
    }

    #[test]
    fn the_listen_address_is_always_a_server_name() {
        let c = Config::validate(
            raw(r#"listen = "10.0.0.2:7440"
server_names = ["master.example.com"]"#),
            None,
            "box",
        )
        .unwrap();
        assert_eq!(c.server_names, ["master.example.com", "10.0.0.2"]);
        assert_eq!(crate::init::master_url(&c), "https://10.0.0.2:7440");
    }

    #[test]
    fn server_names_must_be_names_or_addresses() {
        let err = Config::validate(
            raw(r#"server_names = ["ok.example.com", "10.0.0.2", "bad name"]"#),
            None,
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(r#""bad name" is neither a DNS name nor an IP address"#),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::validate(
            raw(r#"listen = "nowhere"
down_after = "soon""#),
            Some(Path::new("/etc/clusterctl/master.toml")),
            "box",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("file /etc/clusterctl/master.toml"), "{err}");
        assert!(
            err.contains(r#"listen = "nowhere": not an address:port"#),
            "{err}"
        );
        assert!(
            err.contains(r#"down_after = "soon": not a duration"#),
            "{err}"
        );
    }

    #[test]
    fn overrides_win_and_http_can_be_turned_off() {
        let merged = raw(r#"listen = "127.0.0.1:1""#).merge(RawConfig {
            listen: Some("127.0.0.9:2".into()),
            http_listen: Some("off".into()),
            ..RawConfig::default()
        });
        let c = Config::validate(merged, None, "box").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.9:2");
        assert!(c.http_listen.is_none());
    }
}
