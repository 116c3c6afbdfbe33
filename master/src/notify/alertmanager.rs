//! Alertmanager, as Prometheus feeds it: every alert that fires is kept
//! here ([`Firing`], shared by all Alertmanagers) and the whole set is
//! posted again every `resend`, each with an `endsAt` of 4 × `resend`
//! ahead, so that Alertmanager resolves what this master stops sending.
//! A change of state is posted at once with the set; a resolved alert
//! stays queued until an Alertmanager took it.

use super::queue::Deliver;
use super::shape::{self, Origin, PostableAlert};
use super::{DeliverError, http_error};
use cluster_model::alerts::{Notice, NoticeStatus};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// An alert's identity among the firing ones: its name (metric and
/// severity), node and device.
type Key = (String, String, String);

fn key(n: &Notice) -> Key {
    (n.alertname(), n.node.clone(), n.device.clone())
}

/// The alerts firing now, as the notices said.
#[derive(Debug, Default)]
pub struct Firing(Mutex<BTreeMap<Key, Notice>>);

impl Firing {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Notice>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A firing notice joins the set (or updates its alert); a resolved
    /// one leaves it.
    pub fn observe(&self, notice: &Notice) {
        let mut set = self.lock();
        match notice.status {
            NoticeStatus::Firing => {
                set.insert(key(notice), notice.clone());
            }
            NoticeStatus::Resolved => {
                set.remove(&key(notice));
            }
        }
    }

    /// Forgets every alert (another master re-sends them now).
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn snapshot(&self) -> Vec<Notice> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// The body of one post: every firing alert, and the resolved notices
/// carried whose alert has not fired again since.
pub fn body(
    firing: &[Notice],
    carried: &[Notice],
    origin: &Origin,
    now: SystemTime,
    resend: Duration,
) -> Vec<PostableAlert> {
    let firing_keys: Vec<Key> = firing.iter().map(key).collect();
    let mut out: Vec<PostableAlert> = firing
        .iter()
        .map(|n| shape::postable(n, origin, now, resend))
        .collect();
    let mut seen = Vec::new();
    for n in carried.iter().rev() {
        let k = key(n);
        if n.status == NoticeStatus::Resolved && !firing_keys.contains(&k) && !seen.contains(&k) {
            out.push(shape::postable(n, origin, now, resend));
            seen.push(k);
        }
    }
    out
}

pub struct Alertmanager {
    pub client: reqwest::Client,
    /// `{url}/api/v2/alerts`.
    pub endpoint: reqwest::Url,
    pub firing: Arc<Firing>,
    pub origin: Arc<Origin>,
    pub resend: Duration,
}

impl Alertmanager {
    /// The alerts endpoint under a base URL (which may have a path prefix).
    pub fn endpoint(base: &reqwest::Url) -> reqwest::Url {
        let mut url = base.clone();
        let path = format!("{}/api/v2/alerts", base.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }
}

#[async_trait::async_trait]
impl Deliver for Alertmanager {
    fn batch(&self) -> usize {
        usize::MAX
    }

    fn resend(&self) -> Option<Duration> {
        Some(self.resend)
    }

    fn resend_summary(&self) -> String {
        format!("re-send of {} firing alerts", self.firing.len())
    }

    async fn deliver(&self, notices: &[Notice], now: SystemTime) -> Result<(), DeliverError> {
        let body = body(
            &self.firing.snapshot(),
            notices,
            &self.origin,
            now,
            self.resend,
        );
        if body.is_empty() {
            return Ok(());
        }
        let response = self
            .client
            .post(self.endpoint.clone())
            .json(&body)
            .send()
            .await
            .map_err(DeliverError::Request)?;
        http_error(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::shape::tests::{T0, notice};

    #[test]
    fn a_post_carries_every_firing_alert_and_the_resolved_ones_once() {
        let origin = Origin::new("prod", None);
        let firing = Firing::default();
        let cpu = notice();
        let mut disk = notice();
        disk.metric = cluster_model::alerts::Metric::Disk;
        disk.device = "/var".into();
        firing.observe(&cpu);
        firing.observe(&disk);
        let mut cpu_resolved = cpu.clone();
        cpu_resolved.status = NoticeStatus::Resolved;
        cpu_resolved.ends_at_ms = Some(T0 + 1000);
        firing.observe(&cpu_resolved);
        let now = shape::at_ms(T0 + 2000);
        let carried = [cpu.clone(), cpu_resolved.clone()];
        let b = body(
            &firing.snapshot(),
            &carried,
            &origin,
            now,
            Duration::from_secs(1),
        );
        let names: Vec<(&str, &str)> = b
            .iter()
            .map(|a| (a.labels["alertname"].as_str(), a.ends_at.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("NodeDiskCritical", "2026-12-01T10:00:06.000Z"),
                ("NodeCpuCritical", "2026-12-01T10:00:01.000Z"),
            ]
        );
        // Fired again since: only the firing one goes.
        firing.observe(&cpu);
        let b = body(
            &firing.snapshot(),
            &carried,
            &origin,
            now,
            Duration::from_secs(1),
        );
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|a| a.ends_at == "2026-12-01T10:00:06.000Z"));
    }

    #[test]
    fn the_endpoint_keeps_a_path_prefix() {
        let u = |s: &str| Alertmanager::endpoint(&reqwest::Url::parse(s).unwrap()).to_string();
        assert_eq!(u("http://am:9093"), "http://am:9093/api/v2/alerts");
        assert_eq!(u("http://am:9093/"), "http://am:9093/api/v2/alerts");
        assert_eq!(u("https://x/am/"), "https://x/am/api/v2/alerts");
    }
}
