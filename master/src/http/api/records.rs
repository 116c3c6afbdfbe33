//! The event log, jobs with their output, and rollouts (start, status,
//! abort, resume).

use super::super::Http;
use super::super::auth::Authed;
use super::super::body::JsonBody;
use super::super::problem::{ApiResult, Problem};
use super::{events_limit, target_of, views};
use crate::cluster::Permission;
use crate::rollout::RolloutSpec;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cluster_model::rollout::RolloutParams;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
pub struct EventsQuery {
    /// Events after this sequence number (resume from the last one seen).
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
    /// Only this node's (by name or id).
    node: Option<String>,
}

pub async fn events(
    State(http): State<Http>,
    auth: Authed,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Value>> {
    let node = q.node.as_deref().map(str::trim).filter(|n| !n.is_empty());
    events_of(&http, &auth, q.since, q.limit, node).await
}

/// The events after `since` (of `node`, when given), and where to go on.
pub async fn events_of(
    http: &Http,
    auth: &Authed,
    since: u64,
    limit: Option<usize>,
    node: Option<&str>,
) -> ApiResult<Json<Value>> {
    auth.may(http, Permission::Read, "read events").await?;
    let limit = events_limit(limit)?;
    let events = http.cluster.events(since, limit, node).await?;
    let last = events.last().map_or(since, |e| e.seq);
    Ok(Json(json!({
        "events": events.iter().map(views::event).collect::<Vec<_>>(),
        // What to pass as `since` next.
        "last_seq": last,
    })))
}

#[derive(Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
}

/// Jobs and rollouts per page: 50 unless asked, at most 1,000.
fn page(limit: Option<usize>) -> ApiResult<usize> {
    match limit {
        None | Some(0) => Ok(50),
        Some(n) if n <= 1000 => Ok(n),
        Some(n) => Err(Problem::bad_request(
            "invalid-limit",
            format!("limit={n} is over the limit of 1000"),
        )
        .with("limit", 1000)),
    }
}

/// Jobs, newest first, without their output.
pub async fn jobs(
    State(http): State<Http>,
    auth: Authed,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "list jobs").await?;
    let jobs = http
        .cluster
        .jobs(page(q.limit)?)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(
        json!({ "jobs": jobs.iter().map(|j| views::job(j, false)).collect::<Vec<_>>() }),
    ))
}

/// One job with every node's output.
pub async fn job(
    State(http): State<Http>,
    auth: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read jobs").await?;
    let job = http
        .cluster
        .job(id.trim())
        .await
        .map_err(Problem::unavailable)?
        .ok_or_else(|| Problem::not_found("unknown-job", format!("no job {id:?}")))?;
    Ok(Json(views::job(&job, true)))
}

pub async fn rollouts(
    State(http): State<Http>,
    auth: Authed,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read rollouts").await?;
    let list = http.rollouts()?.list(page(q.limit)?).await?;
    Ok(Json(json!({ "rollouts": list })))
}

pub async fn rollout(
    State(http): State<Http>,
    auth: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read rollouts").await?;
    let rec = http.rollouts()?.get(&id).await?;
    Ok(Json(serde_json::to_value(rec).unwrap_or_default()))
}

/// A rollout to start: `clusterctl rollout`'s flags as fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRollout {
    /// A compound target expression.
    target: String,
    /// The command run on each node while it is out of rotation.
    argv: Vec<String>,
    /// "N" or "N%" out at once (default 1).
    #[serde(default)]
    batch: Option<String>,
    #[serde(default)]
    max_failures: u32,
    #[serde(default)]
    drain_timeout: Option<String>,
    #[serde(default)]
    healthy_for: Option<String>,
    #[serde(default)]
    health_timeout: Option<String>,
    #[serde(default)]
    command_timeout: Option<String>,
    /// Start even when a batch could take a role's last online node out.
    #[serde(default)]
    allow_last: bool,
}

fn ms(field: &str, raw: &Option<String>, default: u64) -> ApiResult<u64> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .map(|d| d.as_millis() as u64)
            .map_err(|e| Problem::bad_request("invalid-duration", format!("{field}: {v:?}: {e}"))),
    }
}

pub async fn start_rollout(
    State(http): State<Http>,
    auth: Authed,
    JsonBody(body): JsonBody<StartRollout>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let by = auth
        .may(&http, Permission::Admin, "start rollouts")
        .await?
        .label();
    let rollouts = http.rollouts()?;
    let target = http.cluster.prepare(target_of(&body.target)?).await?;
    let params = RolloutParams {
        batch: body.batch.unwrap_or_else(|| "1".into()),
        max_failures: body.max_failures,
        drain_timeout_ms: ms("drain_timeout", &body.drain_timeout, 60_000)?,
        healthy_for_ms: ms("healthy_for", &body.healthy_for, 0)?,
        health_timeout_ms: ms("health_timeout", &body.health_timeout, 60_000)?,
        command_timeout_ms: ms("command_timeout", &body.command_timeout, 0)?,
        allow_last: body.allow_last,
    };
    let rec = rollouts
        .start(
            RolloutSpec {
                target,
                argv: body.argv,
                params,
            },
            &by,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(rec).unwrap_or_default()),
    ))
}

pub async fn abort_rollout(
    State(http): State<Http>,
    auth: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "abort rollouts")
        .await?
        .label();
    let rec = http.rollouts()?.abort(&id, &by).await?;
    Ok(Json(serde_json::to_value(rec).unwrap_or_default()))
}

pub async fn resume_rollout(
    State(http): State<Http>,
    auth: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "resume rollouts")
        .await?
        .label();
    let rec = http.rollouts()?.resume(&id, &by).await?;
    Ok(Json(serde_json::to_value(rec).unwrap_or_default()))
}
