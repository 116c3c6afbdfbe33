//! The node's health endpoint, what load balancers probe.
//!
//! - `GET /health` — `200 {"status":"online","node":…}` in service,
//!   `503 {"status":"offline","node":…,"reason":…,"since":…}` when drained.
//! - `GET /health?node=NAME` — the same when NAME is this node (bethel's probe
//!   URL); 404 naming the node that answered otherwise, so a miswired probe
//!   is caught instead of trusted.
//! - `GET /metrics` — Prometheus text.
//!
//! Read-only and unauthenticated: it reveals status and reason, nothing
//! else. A drain flips the answer for the next request; requests in flight
//! complete normally.

use crate::state::Shared;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

#[derive(Deserialize)]
struct HealthQuery {
    node: Option<String>,
}

async fn health(State(shared): State<Arc<Shared>>, Query(q): Query<HealthQuery>) -> Response {
    let d = shared.current();
    if let Some(asked) = q.node.filter(|n| !n.is_empty()) {
        if asked != d.name {
            let body = json!({
                "error": format!("this is node {:?}, not {:?}", d.name, asked),
                "node": d.name,
            });
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
    }
    match &d.offline {
        None => (
            StatusCode::OK,
            Json(json!({ "status": "online", "node": d.name })),
        )
            .into_response(),
        Some(off) => {
            let since = humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(off.since_ms),
            )
            .to_string();
            let body = json!({
                "status": "offline",
                "node": d.name,
                "reason": off.reason,
                "since": since,
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let d = shared.current();
    let body = format!(
        "# HELP cluster_agent_offline 1 while the node is drained.\n\
         # TYPE cluster_agent_offline gauge\n\
         cluster_agent_offline {}\n\
         # HELP cluster_agent_connected 1 while a session with the master is open.\n\
         # TYPE cluster_agent_connected gauge\n\
         cluster_agent_connected {}\n\
         # HELP cluster_agent_generation Generation of the desired state applied.\n\
         # TYPE cluster_agent_generation gauge\n\
         cluster_agent_generation {}\n",
        u8::from(d.offline.is_some()),
        u8::from(shared.is_connected()),
        d.generation,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
