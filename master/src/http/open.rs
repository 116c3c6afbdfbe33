//! What load balancers and monitoring read with no credentials: status and
//! reasons, nothing else.
//!
//! - `GET /health?node=NAME` — one place to probe every node (bethel's
//!   shape): 200 online, 503 drained, in maintenance, down or failing a
//!   local check, 404 unknown node.
//! - `GET /metrics` — OpenMetrics text (`metrics`).

use super::Http;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cluster_model::{NodeState, NodeStatus};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> axum::Router<Http> {
    axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(super::metrics::metrics))
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
