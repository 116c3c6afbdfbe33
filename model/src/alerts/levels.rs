//! Levels per metric, glances-style, with the master's config shape:
//!
//! ```toml
//! [alerts]
//! for = "1m"                 # how long a level must hold before it fires
//! cpu = { warning = 80, critical = 95, clear = 5 }
//! [alerts.roles.db]
//! disk = { warning = 85 }
//! [alerts.nodes.web-1]
//! cpu = { for = "5m" }
//! ```
//!
//! A node's levels are the defaults, then the cluster's `[alerts]`, then
//! its roles' (the first of its roles that sets a key wins), then its
//! own: key by key, so a node that sets `cpu.critical` keeps the
//! warning line its role set.

use super::{Level, Metric, Severity};
use crate::config::parse_duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One metric's lines. A value at or over `warning` (or `critical`) for
/// `for_ms` fires that alert; it resolves once the value falls under the
/// line less `clear` — lower than the line, so a value hovering at it
/// does not flap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricLevels {
    pub careful: f64,
    pub warning: f64,
    pub critical: f64,
    /// How far under a line a firing alert's value must fall to resolve.
    pub clear: f64,
    pub for_ms: u64,
    /// `false`: never alerts (levels still colour `top`).
    pub enabled: bool,
}

impl MetricLevels {
    /// Where a value stands (no hysteresis: for colours).
    pub fn level(&self, value: f64) -> Level {
        if value >= self.critical {
            Level::Critical
        } else if value >= self.warning {
            Level::Warning
        } else if value >= self.careful {
            Level::Careful
        } else {
            Level::Ok
        }
    }

    /// The line a severity fires at.
    pub fn line(&self, severity: Severity) -> f64 {
        match severity {
            Severity::Warning => self.warning,
            Severity::Critical => self.critical,
        }
    }
}

/// Every metric's levels, as they apply to one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Levels {
    pub cpu: MetricLevels,
    pub memory: MetricLevels,
    pub swap: MetricLevels,
    pub disk: MetricLevels,
    pub load: MetricLevels,
    pub net_rx: MetricLevels,
    pub net_tx: MetricLevels,
    /// Only `for_ms` and `enabled` mean anything: how long after the node
    /// is `down` the alert fires.
    pub silent: MetricLevels,
}

const fn percent(for_ms: u64) -> MetricLevels {
    MetricLevels {
        careful: 50.0,
        warning: 70.0,
        critical: 90.0,
        clear: 5.0,
        for_ms,
        enabled: true,
    }
}

/// A 1 Gbit/s link is 125 MB/s: its 50/70/90 %.
const fn network(for_ms: u64) -> MetricLevels {
    MetricLevels {
        careful: 62.5e6,
        warning: 87.5e6,
        critical: 112.5e6,
        clear: 6.25e6,
        for_ms,
        enabled: true,
    }
}

/// How long a level must hold by default.
pub const DEFAULT_FOR_MS: u64 = 60_000;

impl Default for Levels {
    /// glances' defaults: 50/70/90 % for CPU, memory, swap and disk; load
    /// per core 0.7/1/5; network as a share of a 1 Gbit/s link.
    fn default() -> Levels {
        let f = DEFAULT_FOR_MS;
        Levels {
            cpu: percent(f),
            memory: percent(f),
            swap: percent(f),
            disk: percent(f),
            load: MetricLevels {
                careful: 0.7,
                warning: 1.0,
                critical: 5.0,
                clear: 0.1,
                for_ms: f,
                enabled: true,
            },
            net_rx: network(f),
            net_tx: network(f),
            silent: MetricLevels {
                careful: 0.0,
                warning: 0.0,
                critical: 0.0,
                clear: 0.0,
                for_ms: f,
                enabled: true,
            },
        }
    }
}

impl Levels {
    pub fn get(&self, m: Metric) -> &MetricLevels {
        match m {
            Metric::Cpu => &self.cpu,
            Metric::Memory => &self.memory,
            Metric::Swap => &self.swap,
            Metric::Disk => &self.disk,
            Metric::Load => &self.load,
            Metric::NetRx => &self.net_rx,
            Metric::NetTx => &self.net_tx,
            Metric::Silent => &self.silent,
        }
    }

    pub fn get_mut(&mut self, m: Metric) -> &mut MetricLevels {
        match m {
            Metric::Cpu => &mut self.cpu,
            Metric::Memory => &mut self.memory,
            Metric::Swap => &mut self.swap,
            Metric::Disk => &mut self.disk,
            Metric::Load => &mut self.load,
            Metric::NetRx => &mut self.net_rx,
            Metric::NetTx => &mut self.net_tx,
            Metric::Silent => &mut self.silent,
        }
    }
}

/// One metric's keys as written; all optional.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevels {
    pub careful: Option<f64>,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub clear: Option<f64>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub enabled: Option<bool>,
}

/// The `[alerts]` table (and each of its `roles.NAME` and `nodes.NAME`
/// tables, which may not nest further).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// The `for` of every metric that does not set its own.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub cpu: Option<RawLevels>,
    pub memory: Option<RawLevels>,
    pub swap: Option<RawLevels>,
    pub disk: Option<RawLevels>,
    pub load: Option<RawLevels>,
    pub net_rx: Option<RawLevels>,
    pub net_tx: Option<RawLevels>,
    pub silent: Option<RawLevels>,
    pub roles: Option<BTreeMap<String, RawAlerts>>,
    pub nodes: Option<BTreeMap<String, RawAlerts>>,
}

impl RawAlerts {
    fn metric(&self, m: Metric) -> Option<&RawLevels> {
        match m {
            Metric::Cpu => self.cpu.as_ref(),
            Metric::Memory => self.memory.as_ref(),
            Metric::Swap => self.swap.as_ref(),
            Metric::Disk => self.disk.as_ref(),
            Metric::Load => self.load.as_ref(),
            Metric::NetRx => self.net_rx.as_ref(),
            Metric::NetTx => self.net_tx.as_ref(),
            Metric::Silent => self.silent.as_ref(),
        }
    }
}

/// One table's keys, checked and parsed: laid over levels key by key.
#[derive(Debug, Clone, Default, PartialEq)]
struct Patch {
    for_ms: Option<u64>,
    metrics: BTreeMap<Metric, PatchLevels>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PatchLevels {
    careful: Option<f64>,
    warning: Option<f64>,
    critical: Option<f64>,
    clear: Option<f64>,
    for_ms: Option<u64>,
    enabled: Option<bool>,
}

impl Patch {
    /// `at` names the table in problems (`alerts`, `alerts.roles.db`).
    fn parse(raw: &RawAlerts, at: &str, problems: &mut Vec<String>) -> Patch {
        let duration = |key: String, v: &str, problems: &mut Vec<String>| {
            parse_duration(&key, v)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| problems.push(e))
                .ok()
        };
        let mut patch = Patch {
            for_ms: raw
                .for_
                .as_deref()
                .and_then(|v| duration(format!("{at}.for"), v, problems)),
            ..Patch::default()
        };
        for m in Metric::ALL {
            let Some(r) = raw.metric(m) else { continue };
            let key = format!("{at}.{m}");
            for (name, v) in [
                ("careful", r.careful),
                ("warning", r.warning),
                ("critical", r.critical),
                ("clear", r.clear),
            ] {
                if let Some(v) = v
                    && (!v.is_finite() || v < 0.0)
                {
                    problems.push(format!(
                        "{key}.{name} = {v}: a level is a number of at least 0"
                    ));
                }
            }
            if m == Metric::Silent
                && [r.careful, r.warning, r.critical, r.clear]
                    .iter()
                    .any(Option::is_some)
            {
                problems.push(format!(
                    "{key}: only \"for\" and \"enabled\" apply (it fires when the node is down)"
                ));
            }
            patch.metrics.insert(
                m,
                PatchLevels {
                    careful: r.careful,
                    warning: r.warning,
                    critical: r.critical,
                    clear: r.clear,
                    for_ms: r
                        .for_
                        .as_deref()
                        .and_then(|v| duration(format!("{key}.for"), v, problems)),
                    enabled: r.enabled,
                },
            );
        }
        patch
    }

    fn apply(&self, levels: &mut Levels) {
        for m in Metric::ALL {
            let l = levels.get_mut(m);
            if let Some(f) = self.for_ms {
                l.for_ms = f;
            }
            let Some(p) = self.metrics.get(&m) else {
                continue;
            };
            l.careful = p.careful.unwrap_or(l.careful);
            l.warning = p.warning.unwrap_or(l.warning);
            l.critical = p.critical.unwrap_or(l.critical);
            l.clear = p.clear.unwrap_or(l.clear);
            l.for_ms = p.for_ms.unwrap_or(l.for_ms);
            l.enabled = p.enabled.unwrap_or(l.enabled);
        }
    }

    /// A patch over another: its keys win where both set one.
    fn under(&self, over: &Patch) -> Patch {
        let mut out = self.clone();
        if over.for_ms.is_some() {
            // A table's own `for` covers every metric of the tables under it.
            out.for_ms = over.for_ms;
            for p in out.metrics.values_mut() {
                p.for_ms = None;
            }
        }
        for (m, o) in &over.metrics {
            let p = out.metrics.entry(*m).or_default();
            p.careful = o.careful.or(p.careful);
            p.warning = o.warning.or(p.warning);
            p.critical = o.critical.or(p.critical);
            p.clear = o.clear.or(p.clear);
            p.for_ms = o.for_ms.or(p.for_ms);
            p.enabled = o.enabled.or(p.enabled);
        }
        out
    }
}

/// Lines out of order or a clear margin that reaches zero: what is wrong
/// with levels laid from `at`.
fn check_order(levels: &Levels, at: &str, problems: &mut Vec<String>) {
    for m in Metric::ALL {
        if m == Metric::Silent {
            continue;
        }
        let l = levels.get(m);
        if !(l.careful <= l.warning && l.warning <= l.critical) {
            problems.push(format!(
                "{at}.{m}: levels must rise: careful {} ≤ warning {} ≤ critical {}",
                l.careful, l.warning, l.critical
            ));
        }
        if l.clear >= l.warning && l.enabled {
            problems.push(format!(
                "{at}.{m}.clear = {}: must be less than the warning line {} (an alert resolves under the line less clear)",
                l.clear, l.warning
            ));
        }
    }
}

/// The cluster's levels: defaults laid under `[alerts]`, with the roles'
/// and nodes' overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    base: Levels,
    roles: BTreeMap<String, Patch>,
    nodes: BTreeMap<String, Patch>,
}

impl Thresholds {
    /// Checks the `[alerts]` table; every problem at once, each naming
    /// its key.
    pub fn from_raw(raw: &RawAlerts) -> Result<Thresholds, Vec<String>> {
        let mut problems = Vec::new();
        let mut base = Levels::default();
        Patch::parse(raw, "alerts", &mut problems).apply(&mut base);
        check_order(&base, "alerts", &mut problems);
        let mut tables = |kind: &str, t: &Option<BTreeMap<String, RawAlerts>>| {
            let mut out = BTreeMap::new();
            for (name, r) in t.iter().flatten() {
                let at = format!("alerts.{kind}.{name}");
                if r.roles.is_some() || r.nodes.is_some() {
                    problems.push(format!(
                        "{at}: roles and nodes tables go under [alerts] only"
                    ));
                }
                let patch = Patch::parse(r, &at, &mut problems);
                let mut levels = base.clone();
                patch.apply(&mut levels);
                check_order(&levels, &at, &mut problems);
                out.insert(name.clone(), patch);
            }
            out
        };
        let roles = tables("roles", &raw.roles);
        let nodes = tables("nodes", &raw.nodes);
        if problems.is_empty() {
            Ok(Thresholds { base, roles, nodes })
        } else {
            Err(problems)
        }
    }

    /// The levels that apply to a node with these roles and this name.
    pub fn for_node<S: AsRef<str>>(&self, name: &str, roles: &[S]) -> Levels {
        let mut patch = Patch::default();
        // The first role that sets a key wins: lay them last to first.
        for role in roles.iter().rev() {
            if let Some(p) = self.roles.get(role.as_ref()) {
                patch = patch.under(p);
            }
        }
        if let Some(p) = self.nodes.get(name) {
            patch = patch.under(p);
        }
        let mut levels = self.base.clone();
        patch.apply(&mut levels);
        levels
    }

    /// The cluster-wide levels (no role, no node override).
    pub fn base(&self) -> &Levels {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Thresholds, Vec<String>> {
        #[derive(Deserialize)]
        struct File {
            alerts: RawAlerts,
        }
        let f: File = toml::from_str(text).expect("toml");
        Thresholds::from_raw(&f.alerts)
    }

    #[test]
    fn the_defaults_are_glances_levels() {
        let t = Thresholds::from_raw(&RawAlerts::default()).unwrap();
        let l = t.for_node("web-1", &["web"]);
        assert_eq!(
            (l.cpu.careful, l.cpu.warning, l.cpu.critical),
            (50.0, 70.0, 90.0)
        );
        assert_eq!((l.load.warning, l.load.critical), (1.0, 5.0));
        assert_eq!(l.cpu.level(49.9), Level::Ok);
        assert_eq!(l.cpu.level(50.0), Level::Careful);
        assert_eq!(l.cpu.level(75.0), Level::Warning);
        assert_eq!(l.cpu.level(90.0), Level::Critical);
    }

    #[test]
    fn overrides_apply_node_over_first_role_over_cluster_key_by_key() {
        let t = parse(
            r#"
            [alerts]
            for = "30s"
            cpu = { warning = 60, critical = 80 }
            [alerts.roles.db]
            cpu = { warning = 65 }
            disk = { warning = 85, critical = 95 }
            [alerts.roles.web]
            cpu = { warning = 75, critical = 85 }
            [alerts.nodes.db-1]
            cpu = { critical = 99, for = "5m" }
            "#,
        )
        .unwrap();
        let plain = t.for_node("x", &[] as &[&str]);
        assert_eq!((plain.cpu.warning, plain.cpu.critical), (60.0, 80.0));
        assert_eq!(plain.memory.for_ms, 30_000, "the table's `for` covers all");
        // db is first: its warning wins; web fills the critical db left.
        let both = t.for_node("x", &["db", "web"]);
        assert_eq!((both.cpu.warning, both.cpu.critical), (65.0, 85.0));
        let web_first = t.for_node("x", &["web", "db"]);
        assert_eq!(
            (web_first.cpu.warning, web_first.cpu.critical),
            (75.0, 85.0)
        );
        assert_eq!(web_first.disk.warning, 85.0);
        // The node's own key wins, its other keys are its role's.
        let db1 = t.for_node("db-1", &["db"]);
        assert_eq!((db1.cpu.warning, db1.cpu.critical), (65.0, 99.0));
        assert_eq!(db1.cpu.for_ms, 300_000);
        assert_eq!(db1.memory.for_ms, 30_000);
    }

    #[test]
    fn bad_levels_are_refused_each_by_its_key() {
        let problems = parse(
            r#"
            [alerts]
            for = "soon"
            cpu = { warning = 95, critical = 90 }
            [alerts.roles.db]
            memory = { clear = 80 }
            silent = { warning = 3 }
            [alerts.nodes.n1]
            disk = { critical = -1 }
            "#,
        )
        .unwrap_err();
        let all = problems.join("\n");
        assert!(all.contains("alerts.for = \"soon\""), "{all}");
        assert!(all.contains("alerts.cpu: levels must rise"), "{all}");
        assert!(all.contains("alerts.roles.db.memory.clear = 80"), "{all}");
        assert!(all.contains("alerts.roles.db.silent: only"), "{all}");
        assert!(all.contains("alerts.nodes.n1.disk.critical = -1"), "{all}");
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme
            .find("### Usage history and alerts")
            .expect("the section")..];
        let start = section.find("```toml\n").expect("a TOML block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").unwrap()];
        let t = parse(block).unwrap_or_else(|p| panic!("{p:#?}"));
        let db = t.for_node("db-1", &["db", "web"]);
        assert_eq!((db.cpu.critical, db.cpu.for_ms), (95.0, 120_000));
        assert_eq!(db.disk.warning, 85.0);
        assert_eq!(db.net_rx.critical, 1e9);
        assert!(!db.swap.enabled);
        assert_eq!(db.silent.for_ms, 30_000);
        assert!(!t.for_node("build-1", &[] as &[&str]).cpu.enabled);
    }

    #[test]
    fn unknown_keys_are_refused_by_the_parser() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct File {
            alerts: RawAlerts,
        }
        let e = toml::from_str::<File>("[alerts]\ncpu = { warn = 3 }")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("warn"), "{e}");
    }
}
