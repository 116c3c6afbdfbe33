//! What load balancers and monitoring read with no credentials: status and
//! reasons, nothing else.
//!
//! - `GET /health?node=NAME` — one place to probe every node (bethel's
//!   shape): 200 online, 503 drained, in maintenance, down or failing a
//!   local check, 404 unknown node.
//! - `GET /metrics` — Prometheus text.

use super::Http;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cluster_model::time::now_ms;
use cluster_model::{NodeState, NodeStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write as _;

pub fn routes() -> axum::Router<Http> {
    axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

#[derive(Deserialize)]
struct HealthQuery {
    node: Option<String>,
}

/// bethel's status of a node: `offline` for drained, else the state.
pub(super) fn status_body(n: &NodeStatus) -> Value {
    let status = match n.state {
        NodeState::Drained => "offline",
        other => other.as_str(),
    };
    let mut body = json!({ "node": n.node.name.as_str(), "status": status });
    if let Some(failing) = n.failing_check() {
        // Its name only: the output may hold secrets, and this is served
        // to anyone (authenticated callers see it, redacted, over gRPC).
        body["check"] = failing.name.clone().into();
    }
    if let Some(flag) = &n.node.offline {
        body["reason"] = flag.reason.clone().into();
        body["since"] = cluster_model::time::rfc3339(flag.since_ms).into();
    }
    body
}

async fn health(State(http): State<Http>, Query(q): Query<HealthQuery>) -> Response {
    let cluster = &http.cluster;
    let Some(name) = q.node.filter(|n| !n.is_empty()) else {
        // The master itself is up and answering.
        return Json(json!({ "status": "online", "node": "master" })).into_response();
    };
    match cluster.nodes(std::slice::from_ref(&name)) {
        Ok(found) => {
            let n = &found[0];
            let code = if n.state == NodeState::Online {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (code, Json(status_body(n))).into_response()
        }
        Err(e) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State(http): State<Http>) -> Response {
    let cluster = &http.cluster;
    let nodes = cluster.nodes(&[]).unwrap_or_default();
    let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
    let connected = nodes.iter().filter(|n| n.connected).count();
    let now = now_ms();
    let mut out = String::new();
    out.push_str("# HELP cluster_nodes Nodes by state.\n# TYPE cluster_nodes gauge\n");
    for s in NodeState::ALL {
        let _ = writeln!(
            out,
            "cluster_nodes{{state=\"{}\"}} {}",
            s.as_str(),
            count(s)
        );
    }
    let _ = writeln!(
        out,
        "# HELP cluster_sessions Agents connected now.\n# TYPE cluster_sessions gauge\ncluster_sessions {connected}"
    );
    let _ = writeln!(
        out,
        "# HELP cluster_generation Generation of the desired state.\n# TYPE cluster_generation counter\ncluster_generation {}",
        cluster.generation()
    );
    let role = cluster.role().borrow().clone();
    let leads = matches!(role, crate::store::Role::Leader { .. });
    let name = cluster.name();
    let _ = writeln!(
        out,
        "# HELP cluster_master_leader Whether this master leads (makes every commit).\n# TYPE cluster_master_leader gauge\ncluster_master_leader{{master=\"{name}\"}} {}",
        u8::from(leads)
    );
    let _ = writeln!(
        out,
        "# HELP cluster_master_epoch The leadership served under (the leader's fence revision).\n# TYPE cluster_master_epoch gauge\ncluster_master_epoch {}",
        role.epoch()
    );
    let _ = writeln!(
        out,
        "# HELP cluster_store_followed_revision The store revision this master has followed.\n# TYPE cluster_store_followed_revision gauge\ncluster_store_followed_revision {}",
        cluster.followed()
    );
    out.push_str("# HELP cluster_commit_seconds How long commits take: in the store (via=\"store\"), or a standby's through the leader (via=\"leader\").\n# TYPE cluster_commit_seconds histogram\n");
    let latency = cluster.commit_latency();
    for (via, h) in [("store", &latency.store), ("leader", &latency.leader)] {
        let (buckets, total, sum) = h.snapshot();
        for (bound, n) in buckets {
            let _ = writeln!(
                out,
                "cluster_commit_seconds_bucket{{via=\"{via}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "cluster_commit_seconds_bucket{{via=\"{via}\",le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(out, "cluster_commit_seconds_sum{{via=\"{via}\"}} {sum:.6}");
        let _ = writeln!(out, "cluster_commit_seconds_count{{via=\"{via}\"}} {total}");
    }
    out.push_str("# HELP cluster_node_last_seen_seconds Seconds since the agent was last heard from.\n# TYPE cluster_node_last_seen_seconds gauge\n");
    for n in &nodes {
        let _ = writeln!(
            out,
            "cluster_node_last_seen_seconds{{node=\"{}\"}} {:.3}",
            n.node.name,
            now.saturating_sub(n.last_seen_ms) as f64 / 1000.0
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
