//! Nodes: read them, and take them out of service or back in — through the
//! one drain the gRPC service uses (`Cluster::drain`).

use super::super::Http;
use super::super::auth::Authed;
use super::super::body::JsonBody;
use super::super::problem::{ApiResult, Problem};
use super::{parse_timeout, target_of, views};
use crate::cluster::{DrainRequest, Permission};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cluster_model::rotation::DrainEvent;
use cluster_model::{NodeStatus, TargetSpec};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Deserialize)]
pub struct ListQuery {
    /// A compound target expression, as `clusterctl -C` takes it.
    target: Option<String>,
}

pub async fn list(
    State(http): State<Http>,
    auth: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "list nodes").await?;
    let spec = match q.target.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(http.cluster.prepare(target_of(t)?).await?),
        None => None,
    };
    let nodes = http.cluster.nodes_matching(spec.as_ref())?;
    Ok(Json(json!({
        "generation": http.cluster.generation(),
        "nodes": nodes.iter().map(views::node).collect::<Vec<_>>(),
    })))
}

/// One node by name (or id), or a 404 naming it.
fn one(http: &Http, name: &str) -> ApiResult<NodeStatus> {
    let mut found = http.cluster.nodes(&[name.to_owned()])?;
    found
        .pop()
        .ok_or_else(|| Problem::not_found("unknown-node", format!("unknown node: {name}")))
}

fn with_etag(n: &NodeStatus, body: Value) -> Response {
    let mut r = Json(body).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&views::etag(n)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

pub async fn get(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    auth.may(&http, Permission::Read, "read nodes").await?;
    let n = one(&http, &name)?;
    Ok(with_etag(&n, views::node(&n)))
}

pub async fn grains(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read grains").await?;
    Ok(Json(Value::Object(one(&http, &name)?.node.grains)))
}

/// The node's Facter-shaped facts (external facts among them), with the
/// live figures of its last usage report.
pub async fn facts(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read facts").await?;
    let n = one(&http, &name)?;
    let mut facts = n.node.facts;
    // Live figures from the last usage report, read now: the stored facts
    // hold only what stays put.
    if let Some(u) = &n.usage {
        cluster_model::facts::with_usage(&mut facts, u);
    }
    Ok(Json(Value::Object(facts)))
}

#[derive(Deserialize)]
pub struct UsageQuery {
    /// History from this long ago (`10m`, `1h`); none without it.
    history: Option<String>,
}

/// The node's last report and, asked for, its history as this master
/// keeps it.
pub async fn usage(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read usage").await?;
    let n = one(&http, &name)?;
    let mut body = json!({ "node": n.node.name.as_str(), "usage": n.usage });
    if let (Some(h), Some(monitor)) = (q.history.as_deref(), &http.monitor) {
        let back = humantime::parse_duration(h.trim()).map_err(|e| {
            Problem::bad_request(
                "bad-history",
                format!("history={h:?}: not a duration ({e}); try history=10m or history=1h"),
            )
        })?;
        let since = cluster_model::time::now_ms().saturating_sub(back.as_millis() as u64);
        let (window, ..) = monitor.history_size();
        body["history_window_ms"] = json!(window.as_millis() as u64);
        body["history"] = json!(monitor.usage_history(&n.node.id, since));
    }
    Ok(Json(body))
}

/// Every firing alert, newest first.
pub async fn alerts(State(http): State<Http>, auth: Authed) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read alerts").await?;
    let mut all: Vec<_> = http
        .cluster
        .read(|st| st.alerts().map(|t| t.notice.clone()).collect());
    all.sort_by_key(|a: &cluster_model::alerts::Notice| std::cmp::Reverse(a.starts_at_ms));
    Ok(Json(json!({
        "alerts": all.iter().map(views::alert).collect::<Vec<_>>(),
    })))
}

pub async fn checks(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read checks").await?;
    let n = one(&http, &name)?;
    Ok(Json(
        json!({ "node": n.node.name.as_str(), "checks": views::checks(&n) }),
    ))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
}

pub async fn events(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Value>> {
    super::records::events_of(&http, &auth, q.since, q.limit, Some(&name)).await
}

/// A drain's body: why (required), and whether it is maintenance (no
/// traffic at all, HAProxy's MAINT) rather than a drain.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainBody {
    reason: String,
    #[serde(default)]
    maintenance: bool,
}

#[derive(Deserialize)]
pub struct WaitQuery {
    /// `out` (a drain) or `in` (an undrain): block until the node is
    /// really out of rotation, or back in.
    wait: Option<String>,
    /// How long to wait (`30s`, `2m`); the default 30 s, at most an hour.
    timeout: Option<String>,
}

pub async fn drain(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<DrainBody>,
) -> ApiResult<Response> {
    if body.reason.trim().is_empty() {
        return Err(Problem::bad_request(
            "reason-required",
            "a drain needs a reason: {\"reason\": \"…\"}",
        ));
    }
    set_out(
        &http,
        &auth,
        name,
        true,
        body.reason,
        body.maintenance,
        q,
        &headers,
    )
    .await
}

pub async fn undrain(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    set_out(&http, &auth, name, false, String::new(), false, q, &headers).await
}

#[allow(clippy::too_many_arguments)]
async fn set_out(
    http: &Http,
    auth: &Authed,
    name: String,
    offline: bool,
    reason: String,
    maintenance: bool,
    q: WaitQuery,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let action = if offline { "drain" } else { "undrain" };
    auth.may(http, Permission::Drain, action).await?;
    let wait = match q.wait.as_deref() {
        None | Some("") => false,
        Some("out") if offline => true,
        Some("in") if !offline => true,
        Some(other) => {
            return Err(Problem::bad_request(
                "invalid-wait",
                format!("wait={other:?}: a drain waits with wait=out, an undrain with wait=in"),
            ));
        }
    };
    let timeout = parse_timeout(q.timeout.as_deref())?;
    let before = one(http, &name)?;
    super::super::problem::check_if_match(headers, &format!("node {name}"), &views::etag(&before))
        .map_err(|p| p.with("generation", before.spec_generation))?;
    let mut events = http
        .cluster
        .drain(DrainRequest {
            target: TargetSpec::Names(vec![name.clone()]),
            offline,
            reason,
            maintenance,
            by: auth.label(),
            note: "HTTP API".into(),
            wait,
            timeout,
        })
        .await?;
    let mut waited = None;
    while let Some(e) = events.recv().await {
        if let DrainEvent::Done {
            complete,
            pending,
            elapsed_ms,
            ..
        } = e
        {
            waited = Some((complete, pending, elapsed_ms));
        }
    }
    let after = one(http, &name)?;
    let mut body = views::node(&after);
    match waited {
        Some((false, pending, elapsed_ms)) => {
            let detail = format!(
                "node {name} was {} but is not yet {} after {elapsed_ms} ms: {}",
                if offline { "drained" } else { "undrained" },
                if offline {
                    "out of rotation"
                } else {
                    "back in rotation"
                },
                pending
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            Err(
                Problem::new(StatusCode::GATEWAY_TIMEOUT, "wait-timed-out", detail)
                    .with("pending", pending)
                    .with("node", body),
            )
        }
        Some((true, _, elapsed_ms)) => {
            body["waited_ms"] = elapsed_ms.into();
            Ok(with_etag(&after, body))
        }
        None => Ok(with_etag(&after, body)),
    }
}

/// The default wait of `?wait=`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
