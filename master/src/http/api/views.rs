//! The JSON the API answers with: the shapes `clusterctl … -o json`
//! prints, so a script can move between the two.

use cluster_model::job::JobRecord;
use cluster_model::time::rfc3339;
use cluster_model::{Event, NodeStatus};
use serde_json::{Value, json};

/// A node as `clusterctl nodes -o json` shows it, and its `generation`:
/// the revision of its record, what `ETag` and `If-Match` carry.
pub fn node(n: &NodeStatus) -> Value {
    let node = &n.node;
    json!({
        "name": node.name.as_str(),
        "id": node.id.as_str(),
        "state": n.state.as_str(),
        "roles": node.roles,
        "addresses": node.addresses,
        "health_url": node.health_url,
        "connected": n.connected,
        "last_seen": rfc3339(n.last_seen_ms),
        "last_seen_ms": n.last_seen_ms,
        "offline": node.offline.as_ref().map(|o| json!({
            "reason": o.reason,
            "since": rfc3339(o.since_ms),
            "by": o.by,
            "maintenance": o.maintenance,
        })),
        "usage": n.usage,
        "labels": node.labels,
        "grains": node.grains,
        "health": n.applied.health,
        "cache_error": n.applied.cache_error,
        "fact_problems": node.fact_problems,
        "checks": checks(n),
        "generation": n.spec_generation,
        "alerts": n.alerts.iter().map(alert).collect::<Vec<_>>(),
    })
}

/// A firing alert, as the API shows it.
pub fn alert(a: &cluster_model::alerts::Notice) -> Value {
    json!({
        "node": a.node,
        "alertname": a.alertname(),
        "metric": a.metric.as_str(),
        "device": a.device,
        "severity": a.severity.as_str(),
        "value": a.value,
        "threshold": a.threshold,
        "since": rfc3339(a.starts_at_ms),
        "since_ms": a.starts_at_ms,
        "summary": a.summary(),
    })
}

/// The node's checks, with their output (redacted by the agent).
pub fn checks(n: &NodeStatus) -> Value {
    n.checks
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "kind": c.kind,
                "passing": c.passing,
                "output": c.output,
                "since": rfc3339(c.since_ms),
            })
        })
        .collect()
}

pub fn event(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["time"] = rfc3339(e.time_ms).into();
    v
}

/// The `ETag` of a node: its record's revision.
pub fn etag(n: &NodeStatus) -> String {
    format!("\"{}\"", n.spec_generation)
}

/// A job; with `output`, each node's stdout and stderr as text (bytes that
/// are not UTF-8 replaced).
pub fn job(j: &JobRecord, output: bool) -> Value {
    json!({
        "id": j.id,
        "argv": j.argv,
        "builtin": j.builtin,
        "target": j.target,
        "by": j.by,
        "started": rfc3339(j.started_ms),
        "finished": (j.finished_ms > 0).then(|| rfc3339(j.finished_ms)),
        "results": j.results.iter().map(|r| {
            let mut v = json!({
                "node": r.node,
                "status": r.status,
                "exit_code": r.exit_code,
                "duration_ms": r.duration_ms,
                "error": r.error,
                "truncated": r.truncated,
            });
            if output {
                v["stdout"] = String::from_utf8_lossy(&r.stdout).into_owned().into();
                v["stderr"] = String::from_utf8_lossy(&r.stderr).into_owned().into();
            }
            v
        }).collect::<Vec<_>>(),
    })
}
