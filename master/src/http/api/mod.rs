//! The REST API under `/api/v1`: JSON in and out, problem details on
//! errors, every call behind an API token (`auth`).

mod balancing;
mod nodes;
mod records;
pub(super) mod views;

use super::Http;
use super::problem::{ApiResult, Problem};
use axum::routing::{get, post, put};
use cluster_model::TargetSpec;
use cluster_model::targets::Kind;
use std::time::Duration;

pub fn routes() -> axum::Router<Http> {
    axum::Router::new()
        .route("/api/v1/nodes", get(nodes::list))
        .route("/api/v1/nodes/{name}", get(nodes::get))
        .route("/api/v1/nodes/{name}/grains", get(nodes::grains))
        .route("/api/v1/nodes/{name}/facts", get(nodes::facts))
        .route("/api/v1/nodes/{name}/usage", get(nodes::usage))
        .route("/api/v1/nodes/{name}/checks", get(nodes::checks))
        .route("/api/v1/nodes/{name}/events", get(nodes::events))
        .route(
            "/api/v1/nodes/{name}/drain",
            put(nodes::drain).delete(nodes::undrain),
        )
        .route("/api/v1/events", get(records::events))
        .route("/api/v1/alerts", get(nodes::alerts))
        .route("/api/v1/jobs", get(records::jobs))
        .route("/api/v1/jobs/{id}", get(records::job))
        .route(
            "/api/v1/rollouts",
            get(records::rollouts).post(records::start_rollout),
        )
        .route("/api/v1/rollouts/{id}", get(records::rollout))
        .route("/api/v1/rollouts/{id}/abort", post(records::abort_rollout))
        .route(
            "/api/v1/rollouts/{id}/resume",
            post(records::resume_rollout),
        )
        .route("/api/v1/upstreams", get(balancing::upstreams))
        .route(
            "/api/v1/upstreams/{name}",
            get(balancing::upstream)
                .put(balancing::set_upstream)
                .delete(balancing::remove_upstream),
        )
        .route("/api/v1/routes", get(balancing::routes))
        .route(
            "/api/v1/routes/{domain}",
            get(balancing::route)
                .put(balancing::set_route)
                .delete(balancing::remove_route),
        )
        .route("/api/v1/route-test", post(balancing::test))
}

/// A compound target expression (`clusterctl -C`): bounded and parsed
/// when prepared, as the CLI's are.
fn target_of(expr: &str) -> ApiResult<TargetSpec> {
    Ok(TargetSpec::expr(Kind::Compound, expr))
}

/// `?timeout=` as humantime (`30s`, `2m`), bounded.
fn parse_timeout(raw: Option<&str>) -> ApiResult<Duration> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(nodes::DEFAULT_WAIT);
    };
    let d = humantime::parse_duration(raw).map_err(|e| {
        Problem::bad_request(
            "invalid-timeout",
            format!("timeout={raw:?}: {e} (such as 30s or 2m)"),
        )
    })?;
    if d > nodes::MAX_WAIT {
        return Err(Problem::bad_request(
            "invalid-timeout",
            format!(
                "timeout={raw:?} is over the limit of {}",
                humantime::format_duration(nodes::MAX_WAIT)
            ),
        )
        .with("limit_seconds", nodes::MAX_WAIT.as_secs()));
    }
    Ok(d)
}

/// Events per page: 100 unless asked, at most 1,000.
const MAX_EVENTS: usize = 1000;

fn events_limit(asked: Option<usize>) -> ApiResult<usize> {
    match asked {
        None | Some(0) => Ok(100),
        Some(n) if n <= MAX_EVENTS => Ok(n),
        Some(n) => Err(Problem::bad_request(
            "invalid-limit",
            format!("limit={n} is over the limit of {MAX_EVENTS}"),
        )
        .with("limit", MAX_EVENTS)),
    }
}
