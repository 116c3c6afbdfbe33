//! Whether nodes are out of rotation, or back in: what every balancer
//! reports (the proxies' applied configuration and what they still have in
//! flight, HAProxy's servers), read against the nodes. Drains wait on it
//! (`drain --wait`) and so do rollouts, never on a sleep.

use super::Cluster;
use super::balancing::host_of;
use crate::model::LbReport;
use std::time::Duration;

impl Cluster {
    /// Why the nodes (by id, with the spec generation their drain is at)
    /// are not yet out of rotation, one line per reason; empty when they
    /// are out everywhere.
    pub fn out_pending(&self, targets: &[(String, u64)]) -> Vec<String> {
        let st = self.state();
        let view_version = st.balancing.view.version;
        let mut pending = Vec::new();
        // Balancers whose proxy has not caught up hold every node.
        let mut proxies: Vec<(&String, &str)> = st
            .sessions
            .iter()
            .filter(|(_, s)| s.wants_proxy)
            .map(|(id, _)| {
                (
                    id,
                    st.nodes.get(id).map_or(id.as_str(), |n| n.name.as_str()),
                )
            })
            .collect();
        proxies.sort_by(|a, b| a.1.cmp(b.1));
        for (id, name) in &proxies {
            match st.balancing.reports.get(*id) {
                None => pending.push(format!("{name}: the proxy has not reported yet")),
                Some(r) if r.proxy_version < view_version => pending.push(format!(
                    "{name}: the proxy is at configuration {} of {view_version}",
                    r.proxy_version
                )),
                Some(_) => {}
            }
        }
        for (id, spec_generation) in targets {
            let Some(node) = st.nodes.get(id) else {
                continue;
            };
            if node.connected && node.applied.generation < *spec_generation {
                pending.push(format!(
                    "{}: the agent has not applied the drain yet",
                    node.name
                ));
            }
            let ips: Vec<&str> = node.addresses.iter().map(String::as_str).collect();
            let mut reporters: Vec<(&String, &LbReport)> = st.balancing.reports.iter().collect();
            reporters.sort_by(|a, b| a.0.cmp(b.0));
            for (lb_id, report) in reporters {
                let lb = st
                    .nodes
                    .get(lb_id)
                    .map_or(lb_id.as_str(), |n| n.name.as_str());
                for b in &report.backends {
                    let server = b.name.rsplit('/').next().unwrap_or_default();
                    let matches = ips.contains(&host_of(&b.addr)) || server == node.name;
                    if !matches {
                        continue;
                    }
                    if b.in_rotation {
                        pending.push(format!(
                            "{lb}: {} {} ({}) is {} — still in rotation",
                            if b.source == "haproxy" {
                                "HAProxy server"
                            } else {
                                "proxy backend"
                            },
                            b.name,
                            b.addr,
                            if b.status.is_empty() { "up" } else { &b.status },
                        ));
                    } else if b.inflight > 0 {
                        let what = if b.source == "haproxy" {
                            format!("HAProxy server {} has {} sessions open", b.name, b.inflight)
                        } else {
                            format!(
                                "{} requests in flight to {} ({})",
                                b.inflight, node.name, b.addr
                            )
                        };
                        pending.push(format!("{lb}: {what}"));
                    }
                }
            }
        }
        pending
    }

    /// Why the nodes (by id, with the spec generation their undrain is at)
    /// are not yet back in rotation, one line per reason; empty when every
    /// balancer sends to them again.
    pub fn in_pending(&self, targets: &[(String, u64)]) -> Vec<String> {
        let st = self.state();
        let view = st.balancing.view.clone();
        let mut pending = Vec::new();
        for (id, spec_generation) in targets {
            let Some(node) = st.nodes.get(id) else {
                continue;
            };
            if node.connected && node.applied.generation < *spec_generation {
                pending.push(format!(
                    "{}: the agent has not applied the undrain yet",
                    node.name
                ));
            }
            if node.offline.is_some() {
                pending.push(format!("{}: drained again", node.name));
                continue;
            }
            let in_view = view
                .upstreams
                .values()
                .flatten()
                .any(|s| s.node.as_deref() == Some(node.name.as_str()));
            let ips: Vec<&str> = node.addresses.iter().map(String::as_str).collect();
            let mut reporters: Vec<(&String, &LbReport)> = st.balancing.reports.iter().collect();
            reporters.sort_by(|a, b| a.0.cmp(b.0));
            for (lb_id, report) in reporters {
                let lb = st
                    .nodes
                    .get(lb_id)
                    .map_or(lb_id.as_str(), |n| n.name.as_str());
                let proxy_here = st.sessions.get(lb_id).is_some_and(|s| s.wants_proxy);
                if in_view && proxy_here && report.proxy_version < view.version {
                    pending.push(format!(
                        "{lb}: the proxy is at configuration {} of {}",
                        report.proxy_version, view.version
                    ));
                }
                for b in report.backends.iter().filter(|b| b.source == "haproxy") {
                    let server = b.name.rsplit('/').next().unwrap_or_default();
                    if (ips.contains(&host_of(&b.addr)) || server == node.name) && !b.in_rotation {
                        pending.push(format!(
                            "{lb}: HAProxy server {} is {}",
                            b.name,
                            if b.status.is_empty() {
                                "out"
                            } else {
                                &b.status
                            }
                        ));
                    }
                }
            }
        }
        pending.dedup();
        pending
    }

    /// Waits until `pending` (`out_pending` or `in_pending`) is empty or
    /// `timeout` passes; returns what was still pending.
    pub async fn wait_rotation(
        &self,
        timeout: Duration,
        pending: impl Fn(&Cluster) -> Vec<String>,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.acks.subscribe();
        loop {
            rx.borrow_and_update();
            let now = pending(self);
            if now.is_empty()
                || tokio::time::timeout_at(deadline, rx.changed())
                    .await
                    .is_err()
            {
                return now;
            }
        }
    }

    /// Waits until `out_pending` is empty or `timeout` passes, calling
    /// `progress` whenever what is pending changes. Returns what was still
    /// pending (empty: really out).
    pub async fn wait_out(
        &self,
        targets: &[(String, u64)],
        timeout: Duration,
        mut progress: impl FnMut(&[String]),
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.acks.subscribe();
        let mut last: Option<Vec<String>> = None;
        loop {
            rx.borrow_and_update();
            let pending = self.out_pending(targets);
            if last.as_ref() != Some(&pending) {
                progress(&pending);
                last = Some(pending.clone());
            }
            if pending.is_empty() {
                return pending;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return pending;
            }
        }
    }
}
