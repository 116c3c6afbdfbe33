//! The alert state machine, one rule per node, metric, device and
//! severity, as a Prometheus rule with `for` would run — plus a clear
//! line under the firing line, so a value hovering at it does not flap:
//!
//! - inactive → pending when the value reaches the line;
//! - pending → inactive when it falls back under the line before `for`
//!   has passed (nothing is said);
//! - pending → firing once it held for `for` (`firing`);
//! - firing → inactive once it falls under the line less `clear`
//!   (`resolved`, with how long it lasted).
//!
//! A drained node is silenced: its firing alerts resolve ("node
//! drained") and nothing is evaluated until it is back. A node that is
//! down has no new samples: its usage rules hold where they are (pending
//! ones start over) and `silent` runs instead.

use super::{Levels, Metric, Notice, NoticeStatus, Severity};
use crate::ids::NodeId;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one rule watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertKey {
    pub node: NodeId,
    pub metric: Metric,
    /// The mount point for `disk`; empty otherwise.
    pub device: String,
    pub severity: Severity,
}

/// Where a rule stands (absent: inactive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    Pending {
        since_ms: u64,
    },
    Firing {
        since_ms: u64,
        value: f64,
        line: f64,
    },
}

/// A rule that fired or resolved: the node's id (for its event) and
/// what is delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub key: AlertKey,
    pub notice: Notice,
}

/// Why the change is not a value's: resolved without clearing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    Fired,
    Resolved,
}

impl Transition {
    pub fn kind(&self) -> TransitionKind {
        match self.notice.status {
            NoticeStatus::Firing => TransitionKind::Fired,
            NoticeStatus::Resolved => TransitionKind::Resolved,
        }
    }
}

/// A node as the rules see it at one instant.
#[derive(Debug, Clone)]
pub struct NodeSample<'a> {
    pub id: &'a NodeId,
    pub name: &'a str,
    pub roles: &'a [String],
    /// Offline or in maintenance: silenced.
    pub drained: bool,
    /// Not heard from within the master's patience: since when it was
    /// last seen.
    pub down_since_ms: Option<u64>,
    pub usage: Option<&'a Usage>,
    /// Cores, for load per core (at least 1).
    pub cores: f64,
}

/// The values a node's usage gives: metric, device, value.
pub fn values(usage: &Usage, cores: f64) -> Vec<(Metric, String, f64)> {
    let share = |used: u64, total: u64| (total > 0).then(|| used as f64 * 100.0 / total as f64);
    let mut out = vec![(Metric::Cpu, String::new(), usage.cpu_percent)];
    if let Some(v) = share(usage.mem_used_bytes, usage.mem_total_bytes) {
        out.push((Metric::Memory, String::new(), v));
    }
    if let Some(v) = share(usage.swap_used_bytes, usage.swap_total_bytes) {
        out.push((Metric::Swap, String::new(), v));
    }
    for d in &usage.disks {
        if let Some(v) = share(
            d.total_bytes.saturating_sub(d.available_bytes),
            d.total_bytes,
        ) {
            out.push((Metric::Disk, d.mount.clone(), v));
        }
    }
    out.push((Metric::Load, String::new(), usage.load[0] / cores.max(1.0)));
    out.push((
        Metric::NetRx,
        String::new(),
        usage.net_rx_bytes_per_sec as f64,
    ));
    out.push((
        Metric::NetTx,
        String::new(),
        usage.net_tx_bytes_per_sec as f64,
    ));
    out
}

/// Every rule's phase, for the whole fleet.
#[derive(Debug, Clone, Default)]
pub struct Alerting {
    phases: BTreeMap<AlertKey, Phase>,
    /// Who each firing rule's node was when it fired (for the resolved
    /// notice of a node that is gone).
    names: BTreeMap<NodeId, (String, Vec<String>)>,
}

impl Alerting {
    /// Takes up an alert that was firing (stored by a master before this
    /// one): it resolves as any other, and is not said to fire again.
    pub fn restore(&mut self, key: AlertKey, notice: &Notice) {
        self.names.insert(
            key.node.clone(),
            (notice.node.clone(), notice.roles.clone()),
        );
        self.phases.insert(
            key,
            Phase::Firing {
                since_ms: notice.starts_at_ms,
                value: notice.value,
                line: notice.threshold,
            },
        );
    }

    /// The firing rules, with what they fired with.
    pub fn firing(&self) -> impl Iterator<Item = (&AlertKey, u64, f64)> {
        self.phases.iter().filter_map(|(k, p)| match p {
            Phase::Firing {
                since_ms, value, ..
            } => Some((k, *since_ms, *value)),
            Phase::Pending { .. } => None,
        })
    }

    pub fn phase(&self, key: &AlertKey) -> Option<Phase> {
        self.phases.get(key).copied()
    }

    /// Evaluates one node at `now_ms` against its levels.
    pub fn observe(&mut self, s: &NodeSample, levels: &Levels, now_ms: u64) -> Vec<Transition> {
        self.names
            .insert(s.id.clone(), (s.name.to_owned(), s.roles.to_vec()));
        if s.drained {
            return self.resolve_all(s.id, now_ms, "node drained");
        }
        let mut out = Vec::new();
        let mut seen: Vec<AlertKey> = Vec::new();
        let mut step = |me: &mut Alerting, key: AlertKey, value: Option<f64>, line: f64| {
            let l = levels.get(key.metric);
            let t = me.step(&key, value, line, l.clear, l.for_ms, l.enabled, now_ms);
            seen.push(key);
            out.extend(t);
        };
        let key = |metric, device: &str, severity| AlertKey {
            node: s.id.clone(),
            metric,
            device: device.to_owned(),
            severity,
        };
        let silent = s
            .down_since_ms
            .map(|since| now_ms.saturating_sub(since) as f64 / 1000.0);
        step(
            self,
            key(Metric::Silent, "", Severity::Critical),
            silent,
            0.0,
        );
        match (s.down_since_ms, s.usage) {
            (None, Some(usage)) => {
                for (metric, device, value) in values(usage, s.cores) {
                    for severity in Severity::ALL {
                        let line = levels.get(metric).line(severity);
                        step(self, key(metric, &device, severity), Some(value), line);
                    }
                }
            }
            _ => {
                // No fresh value: firing rules hold, pending ones start over.
                let held: Vec<AlertKey> = self
                    .phases
                    .iter()
                    .filter(|(k, p)| {
                        &k.node == s.id
                            && k.metric != Metric::Silent
                            && matches!(p, Phase::Firing { .. })
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                seen.extend(held);
            }
        }
        // Rules with no value now (a mount gone, swap turned off) resolve.
        let gone: Vec<AlertKey> = self
            .phases
            .keys()
            .filter(|k| &k.node == s.id && !seen.contains(k))
            .cloned()
            .collect();
        for k in gone {
            out.extend(self.end(&k, None, now_ms, "no longer measured"));
        }
        out
    }

    /// The node is gone (removed): its alerts resolve.
    pub fn forget(&mut self, node: &NodeId, now_ms: u64) -> Vec<Transition> {
        let out = self.resolve_all(node, now_ms, "node removed");
        self.names.remove(node);
        out
    }

    /// The nodes with a phase (to find the ones that went away).
    pub fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.names.keys()
    }

    fn resolve_all(&mut self, node: &NodeId, now_ms: u64, why: &str) -> Vec<Transition> {
        let keys: Vec<AlertKey> = self
            .phases
            .keys()
            .filter(|k| &k.node == node)
            .cloned()
            .collect();
        keys.iter()
            .filter_map(|k| self.end(k, None, now_ms, why))
            .collect()
    }

    /// Removes a rule's phase; a firing one says it resolved.
    fn end(
        &mut self,
        key: &AlertKey,
        value: Option<f64>,
        now_ms: u64,
        why: &str,
    ) -> Option<Transition> {
        match self.phases.remove(key)? {
            Phase::Pending { .. } => None,
            Phase::Firing {
                since_ms,
                value: fired,
                line,
            } => Some(self.transition(
                key,
                NoticeStatus::Resolved,
                (value.unwrap_or(fired), line),
                since_ms,
                Some(now_ms),
                why,
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        key: &AlertKey,
        value: Option<f64>,
        line: f64,
        clear: f64,
        for_ms: u64,
        enabled: bool,
        now_ms: u64,
    ) -> Option<Transition> {
        let (Some(v), true) = (value, enabled) else {
            return self.end(key, value, now_ms, if enabled { "" } else { "disabled" });
        };
        // `silent` is true whenever there is a value: the node is down.
        let over = key.metric == Metric::Silent || v >= line;
        let under_clear = key.metric != Metric::Silent && v < line - clear;
        match self.phases.get(key).copied() {
            None if over => {
                self.phases
                    .insert(key.clone(), Phase::Pending { since_ms: now_ms });
                self.promote(key, v, line, now_ms, for_ms)
            }
            None => None,
            Some(Phase::Pending { .. }) if !over => {
                self.phases.remove(key);
                None
            }
            Some(Phase::Pending { .. }) => self.promote(key, v, line, now_ms, for_ms),
            Some(Phase::Firing { .. }) if under_clear => self.end(key, Some(v), now_ms, ""),
            Some(Phase::Firing { .. }) => None,
        }
    }

    /// A pending rule that held for `for` fires.
    fn promote(
        &mut self,
        key: &AlertKey,
        value: f64,
        line: f64,
        now_ms: u64,
        for_ms: u64,
    ) -> Option<Transition> {
        let Some(Phase::Pending { since_ms }) = self.phases.get(key).copied() else {
            return None;
        };
        if now_ms.saturating_sub(since_ms) < for_ms {
            return None;
        }
        self.phases.insert(
            key.clone(),
            Phase::Firing {
                since_ms: now_ms,
                value,
                line,
            },
        );
        Some(self.transition(key, NoticeStatus::Firing, (value, line), now_ms, None, ""))
    }

    fn transition(
        &self,
        key: &AlertKey,
        status: NoticeStatus,
        (value, threshold): (f64, f64),
        starts_at_ms: u64,
        ends_at_ms: Option<u64>,
        why: &str,
    ) -> Transition {
        let (node, roles) = self.names.get(&key.node).cloned().unwrap_or_default();
        Transition {
            key: key.clone(),
            notice: Notice {
                status,
                node,
                roles,
                metric: key.metric,
                device: key.device.clone(),
                severity: key.severity,
                value,
                threshold,
                starts_at_ms,
                ends_at_ms,
                why: why.to_owned(),
            },
        }
    }
}
