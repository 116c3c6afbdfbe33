//! bethel.clustermgmt's two REST calls, so its deploy scripts (the Fabric
//! task `alter_service_status`) work unchanged but for the host and the
//! credentials. bethel served them under its health object's path
//! (`/silva/varnish_node_is_up/++rest++setstatus`), so they answer at any
//! path that ends in them:
//!
//! - `GET …/++rest++nodestatus` → `{"nodeA": {"status": "offline"}, …}`
//!   (also `maintenance`, `failing`, `down` where bethel knew only two);
//! - `POST …/++rest++setstatus` with the form field `change` holding the
//!   same JSON: `offline` drains, `online` undrains, through the one drain.
//!
//! Both take an API token (bethel's scripts send it as Basic's password).

use super::Http;
use super::auth::Authed;
use super::body::FormBody;
use super::problem::{ApiResult, Problem};
use crate::cluster::{DrainRequest, Permission};
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use cluster_model::TargetSpec;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The fallback: bethel's calls at any path, else a 404.
pub async fn fallback(State(http): State<Http>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let result = if path.ends_with("/++rest++nodestatus") && req.method() == Method::GET {
        nodestatus(http, req).await
    } else if path.ends_with("/++rest++setstatus") && req.method() == Method::POST {
        setstatus(http, req).await
    } else if path.ends_with("/++rest++nodestatus") || path.ends_with("/++rest++setstatus") {
        Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "nodestatus is read with GET, setstatus written with POST",
        ))
    } else {
        Err(Problem::not_found(
            "no-such-endpoint",
            format!("no such endpoint: {path} (the API is under /api/v1)"),
        ))
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn statuses(http: &Http) -> Value {
    let nodes = http.cluster.nodes(&[]).unwrap_or_default();
    Value::Object(
        nodes
            .iter()
            .map(|n| (n.node.name.to_string(), super::open::status_body(n)))
            .collect(),
    )
}

async fn nodestatus(http: Http, req: Request) -> ApiResult<Response> {
    let (mut parts, _) = req.into_parts();
    let auth = Authed::from_request_parts(&mut parts, &http).await?;
    auth.may(&http, Permission::Read, "read node status")
        .await?;
    Ok(Json(statuses(&http)).into_response())
}

#[derive(Deserialize)]
struct SetStatusForm {
    /// `{"node1": {"status": "offline"}}`.
    change: Option<String>,
    /// Any other field (bethel's `skip-bethel-auth`) is not read.
    #[serde(flatten)]
    _rest: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Wanted {
    status: String,
}

async fn setstatus(http: Http, req: Request) -> ApiResult<Response> {
    let (mut parts, body) = req.into_parts();
    let auth = Authed::from_request_parts(&mut parts, &http).await?;
    auth.may(&http, Permission::Drain, "set node status")
        .await?;
    let req = Request::from_parts(parts, body);
    let FormBody(form) = FormBody::<SetStatusForm>::from_request(req, &http).await?;
    let change = form.change.ok_or_else(|| {
        Problem::bad_request(
            "change-required",
            "the form field `change` is missing: change={\"node1\": {\"status\": \"offline\"}}",
        )
    })?;
    let wanted: BTreeMap<String, Wanted> = serde_json::from_str(&change).map_err(|e| {
        Problem::bad_request(
            "bad-change",
            format!("`change` is not {{\"NODE\": {{\"status\": \"offline\"|\"online\"}}, …}}: {e}"),
        )
    })?;
    let (mut out, mut back) = (Vec::new(), Vec::new());
    for (node, w) in wanted {
        match w.status.as_str() {
            "offline" => out.push(node),
            "online" => back.push(node),
            other => {
                return Err(Problem::bad_request(
                    "bad-status",
                    format!(
                        "node {node}: status {other:?}; bethel's are \"offline\" and \"online\""
                    ),
                ));
            }
        }
    }
    // Every name known before anything changes: all or nothing.
    let all: Vec<String> = out.iter().chain(&back).cloned().collect();
    if !all.is_empty() {
        http.cluster.nodes(&all)?;
    }
    for (names, offline) in [(out, true), (back, false)] {
        if names.is_empty() {
            continue;
        }
        let mut events = http
            .cluster
            .drain(DrainRequest {
                target: TargetSpec::Names(names),
                offline,
                reason: "offline via ++rest++setstatus".into(),
                maintenance: false,
                by: auth.label(),
                note: "bethel setstatus".into(),
                wait: false,
                timeout: Duration::ZERO,
            })
            .await?;
        while events.recv().await.is_some() {}
    }
    Ok(Json(statuses(&http)).into_response())
}
