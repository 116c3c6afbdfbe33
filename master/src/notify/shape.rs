//! What a [`Notice`] looks like where it is delivered, pure: its labels
//! and annotations, Alertmanager's v2 `postableAlerts`, and Alertmanager's
//! webhook message (version 4), with times as RFC 3339 and the
//! fingerprint Alertmanager itself computes. The clock is an argument.

use cluster_model::alerts::{Notice, NoticeStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type Labels = BTreeMap<&'static str, String>;

/// What every alert of this master carries besides the notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The `cluster` label.
    pub cluster: String,
    /// The master's own URL for people (`https://master:7441`), without
    /// a trailing slash; alerts link to the node's page under it.
    pub external_url: Option<String>,
}

impl Origin {
    pub fn new(cluster: &str, external_url: Option<&str>) -> Origin {
        Origin {
            cluster: cluster.to_owned(),
            external_url: external_url
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
        }
    }

    /// The node's page on the dashboard (`generatorURL`).
    pub fn generator_url(&self, notice: &Notice) -> Option<String> {
        self.external_url
            .as_ref()
            .map(|u| format!("{u}/nodes/{}", notice.node))
    }
}

/// The alert's identity, as Alertmanager groups and deduplicates it.
pub fn labels(notice: &Notice, origin: &Origin) -> Labels {
    let mut l = Labels::new();
    l.insert("alertname", notice.alertname());
    l.insert("node", notice.node.clone());
    if !notice.roles.is_empty() {
        l.insert("role", notice.roles.join(","));
    }
    l.insert("metric", notice.metric.as_str().to_owned());
    l.insert("severity", notice.severity.as_str().to_owned());
    if !notice.device.is_empty() {
        l.insert("device", notice.device.clone());
    }
    l.insert("cluster", origin.cluster.clone());
    l
}

/// What people read: the summary, the value and the line it crossed.
pub fn annotations(notice: &Notice) -> Labels {
    let mut a = Labels::new();
    a.insert("summary", notice.summary());
    a.insert("value", notice.metric.show(notice.value));
    a.insert("threshold", notice.metric.show(notice.threshold));
    if !notice.why.is_empty() {
        a.insert("why", notice.why.clone());
    }
    a
}

pub fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// RFC 3339 in UTC with milliseconds: `2026-12-01T10:00:00.000Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Alertmanager's (Prometheus's) label-set fingerprint: FNV-1a 64 over
/// each name and value in name order, each followed by byte 255; 16 hex
/// digits.
pub fn fingerprint(labels: &Labels) -> String {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes.iter().chain([255u8].iter()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(value.as_bytes());
    }
    format!("{h:016x}")
}

/// One element of Alertmanager's `POST /api/v2/alerts` body.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// A notice as Alertmanager takes it. A firing alert ends at `now + 4 ×
/// resend` unless sent again, as Prometheus's do: Alertmanager resolves it
/// by itself when this master is gone.
pub fn postable(
    notice: &Notice,
    origin: &Origin,
    now: SystemTime,
    resend: Duration,
) -> PostableAlert {
    let ends_at = match notice.status {
        NoticeStatus::Firing => now + resend * 4,
        NoticeStatus::Resolved => notice.ends_at_ms.map_or(now, at_ms),
    };
    PostableAlert {
        labels: labels(notice, origin),
        annotations: annotations(notice),
        starts_at: rfc3339(at_ms(notice.starts_at_ms)),
        ends_at: rfc3339(ends_at),
        generator_url: origin.generator_url(notice),
    }
}

/// Alertmanager's webhook message, version 4, for one notice.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    pub version: &'static str,
    pub group_key: String,
    pub truncated_alerts: u32,
    pub status: &'static str,
    pub receiver: &'static str,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: Labels,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: &'static str,
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// The `receiver` of every webhook message.
pub const RECEIVER: &str = "clusterctl";

/// Alertmanager's end time of an alert that has none yet (Go's zero time).
const NO_END: &str = "0001-01-01T00:00:00Z";

/// One notice as one webhook message: its group is the alert itself
/// (`alertname`, `node`, `device`), so the common labels are its labels.
pub fn webhook(notice: &Notice, origin: &Origin, now: SystemTime) -> WebhookMessage {
    let labels = labels(notice, origin);
    let annotations = annotations(notice);
    let group_labels: Labels = labels
        .iter()
        .filter(|(k, _)| matches!(**k, "alertname" | "node" | "device"))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let group_key = format!(
        "{{}}:{{{}}}",
        group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ends_at = match notice.status {
        NoticeStatus::Firing => NO_END.to_owned(),
        NoticeStatus::Resolved => rfc3339(notice.ends_at_ms.map_or(now, at_ms)),
    };
    let status = notice.status.as_str();
    WebhookMessage {
        version: "4",
        group_key,
        truncated_alerts: 0,
        status,
        receiver: RECEIVER,
        group_labels,
        common_labels: labels.clone(),
        common_annotations: annotations.clone(),
        external_url: origin.external_url.clone().unwrap_or_default(),
        alerts: vec![WebhookAlert {
            status,
            fingerprint: fingerprint(&labels),
            labels,
            annotations,
            starts_at: rfc3339(at_ms(notice.starts_at_ms)),
            ends_at,
            generator_url: origin.generator_url(notice).unwrap_or_default(),
        }],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cluster_model::alerts::{Metric, Severity};
    use serde_json::json;

    /// 2026-12-01T10:00:00Z
    pub const T0: u64 = 1_796_119_200_000;

    pub fn notice() -> Notice {
        Notice {
            status: NoticeStatus::Firing,
            node: "web-1".into(),
            roles: vec!["web".into(), "edge".into()],
            metric: Metric::Cpu,
            device: String::new(),
            severity: Severity::Critical,
            value: 97.0,
            threshold: 90.0,
            starts_at_ms: T0,
            ends_at_ms: None,
            why: String::new(),
        }
    }

    fn origin() -> Origin {
        Origin::new("prod", Some("https://master.example.com:7441/"))
    }

    #[test]
    fn a_firing_alert_for_alertmanager_ends_after_four_resends() {
        let now = at_ms(T0 + 5_000);
        let body = postable(&notice(), &origin(), now, Duration::from_secs(60));
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "labels": {
                    "alertname": "NodeCpuCritical",
                    "node": "web-1",
                    "role": "web,edge",
                    "metric": "cpu",
                    "severity": "critical",
                    "cluster": "prod",
                },
                "annotations": {
                    "summary": "web-1 cpu critical: 97.0% ≥ 90.0%",
                    "value": "97.0%",
                    "threshold": "90.0%",
                },
                "startsAt": "2026-12-01T10:00:00.000Z",
                "endsAt": "2026-12-01T10:04:05.000Z",
                "generatorURL": "https://master.example.com:7441/nodes/web-1",
            })
        );
    }

    #[test]
    fn a_resolved_alert_for_alertmanager_ends_when_it_resolved() {
        let mut n = notice();
        n.status = NoticeStatus::Resolved;
        n.roles.clear();
        n.metric = Metric::Disk;
        n.device = "/var".into();
        n.ends_at_ms = Some(T0 + 90_500);
        n.why = "node drained".into();
        let body = postable(
            &n,
            &Origin::new("prod", None),
            at_ms(T0 + 99_000),
            Duration::from_secs(60),
        );
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["endsAt"], "2026-12-01T10:01:30.500Z");
        assert_eq!(v["labels"]["device"], "/var");
        assert_eq!(v["labels"]["alertname"], "NodeDiskCritical");
        assert!(v["labels"].get("role").is_none(), "{v}");
        assert!(v.get("generatorURL").is_none(), "{v}");
        assert_eq!(v["annotations"]["why"], "node drained");
        assert_eq!(
            v["annotations"]["summary"],
            "web-1 disk /var critical resolved: 97.0%"
        );
    }

    #[test]
    fn a_webhook_message_is_alertmanagers_version_4() {
        let v = serde_json::to_value(webhook(&notice(), &origin(), at_ms(T0))).unwrap();
        let labels = json!({
            "alertname": "NodeCpuCritical",
            "node": "web-1",
            "role": "web,edge",
            "metric": "cpu",
            "severity": "critical",
            "cluster": "prod",
        });
        let annotations = json!({
            "summary": "web-1 cpu critical: 97.0% ≥ 90.0%",
            "value": "97.0%",
            "threshold": "90.0%",
        });
        assert_eq!(
            v,
            json!({
                "version": "4",
                "groupKey": "{}:{alertname=\"NodeCpuCritical\", node=\"web-1\"}",
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "clusterctl",
                "groupLabels": {"alertname": "NodeCpuCritical", "node": "web-1"},
                "commonLabels": labels,
                "commonAnnotations": annotations,
                "externalURL": "https://master.example.com:7441",
                "alerts": [{
                    "status": "firing",
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": "2026-12-01T10:00:00.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "https://master.example.com:7441/nodes/web-1",
                    "fingerprint": fingerprint(&super::labels(&notice(), &origin())),
                }],
            })
        );
        let mut n = notice();
        n.status = NoticeStatus::Resolved;
        n.ends_at_ms = Some(T0 + 60_000);
        let v = serde_json::to_value(webhook(&n, &origin(), at_ms(T0 + 70_000))).unwrap();
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["alerts"][0]["endsAt"], "2026-12-01T10:01:00.000Z");
    }

    #[test]
    fn fingerprints_are_prometheus_label_set_fingerprints() {
        // Reference values from prometheus/common's model.LabelSet.Fingerprint.
        let mut l = Labels::new();
        assert_eq!(fingerprint(&l), "cbf29ce484222325");
        l.insert("alertname", "x".into());
        assert_eq!(
            fingerprint(&l),
            format!("{:016x}", fnv_reference(&[("alertname", "x")]))
        );
        // Order of insertion does not matter; names sort.
        let mut a = Labels::new();
        a.insert("b", "2".into());
        a.insert("a", "1".into());
        assert_eq!(
            fingerprint(&a),
            format!("{:016x}", fnv_reference(&[("a", "1"), ("b", "2")]))
        );
    }

    /// FNV-1a written out once more, byte by byte, as Go's code reads.
    fn fnv_reference(pairs: &[(&str, &str)]) -> u64 {
        let mut h: u64 = 0xcbf29ce484222325;
        let mut byte = |b: u8| {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        };
        for (k, v) in pairs {
            k.bytes().for_each(&mut byte);
            byte(0xff);
            v.bytes().for_each(&mut byte);
            byte(0xff);
        }
        h
    }
}
