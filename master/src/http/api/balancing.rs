//! Upstreams and routes: read by anyone with a token, written by admins
//! through the same checked change `clusterctl upstream`/`route` make; and
//! `route test`, the proxies' decision for a request, from the master's
//! routes.

use super::super::Http;
use super::super::auth::Authed;
use super::super::body::JsonBody;
use super::super::problem::{ApiResult, Problem};
use crate::cluster::Permission;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use cluster_balancer::{Domain, Request, RouteTable, UpstreamSource};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The `ETag` of the balancing configuration: the proxies' view version.
fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn check_if_match(headers: &HeaderMap, version: u64) -> ApiResult<()> {
    super::super::problem::check_if_match(headers, "the upstreams and routes", &etag(version))
        .map_err(|p| p.with("version", version))
}

pub async fn upstreams(State(http): State<Http>, auth: Authed) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read upstreams").await?;
    let b = http.cluster.balancing();
    let list: BTreeMap<&String, Value> = b
        .upstreams
        .iter()
        .map(|(name, source)| {
            let servers = b.view.upstreams.get(name).cloned().unwrap_or_default();
            (name, json!({ "source": source, "servers": servers }))
        })
        .collect();
    Ok(Json(
        json!({ "version": b.view.version, "upstreams": list }),
    ))
}

pub async fn upstream(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read upstreams").await?;
    let b = http.cluster.balancing();
    let source = b
        .upstreams
        .get(&name)
        .ok_or_else(|| Problem::not_found("unknown-upstream", format!("no upstream {name:?}")))?;
    let servers = b.view.upstreams.get(&name).cloned().unwrap_or_default();
    Ok(Json(json!({
        "name": name,
        "version": b.view.version,
        "source": source,
        "servers": servers,
    })))
}

pub async fn set_upstream(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(source): JsonBody<UpstreamSource>,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "set upstreams")
        .await?
        .label();
    check_if_match(&headers, http.cluster.proxy_view().version)?;
    let version = http
        .cluster
        .set_balancing(vec![(name.clone(), source)], Vec::new(), Vec::new(), &by)
        .await?;
    let servers = http
        .cluster
        .proxy_view()
        .upstreams
        .get(&name)
        .cloned()
        .unwrap_or_default();
    Ok(Json(
        json!({ "name": name, "version": version, "servers": servers }),
    ))
}

pub async fn remove_upstream(
    State(http): State<Http>,
    auth: Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "remove upstreams")
        .await?
        .label();
    check_if_match(&headers, http.cluster.proxy_view().version)?;
    let version = http.cluster.remove_upstream(&name, &by).await?;
    Ok(Json(json!({ "removed": name, "version": version })))
}

pub async fn routes(State(http): State<Http>, auth: Authed) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read routes").await?;
    let b = http.cluster.balancing();
    Ok(Json(
        json!({ "version": b.view.version, "routes": b.routes }),
    ))
}

pub async fn route(
    State(http): State<Http>,
    auth: Authed,
    Path(domain): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read routes").await?;
    let b = http.cluster.balancing();
    let chain = b
        .routes
        .get(&domain)
        .ok_or_else(|| Problem::not_found("unknown-route", format!("no route for {domain:?}")))?;
    Ok(Json(
        json!({ "domain": domain, "version": b.view.version, "chain": chain }),
    ))
}

pub async fn set_route(
    State(http): State<Http>,
    auth: Authed,
    Path(domain): Path<String>,
    headers: HeaderMap,
    JsonBody(chain): JsonBody<Domain>,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "set routes")
        .await?
        .label();
    check_if_match(&headers, http.cluster.proxy_view().version)?;
    let version = http
        .cluster
        .set_balancing(Vec::new(), vec![(domain.clone(), chain)], Vec::new(), &by)
        .await?;
    Ok(Json(json!({ "domain": domain, "version": version })))
}

pub async fn remove_route(
    State(http): State<Http>,
    auth: Authed,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "remove routes")
        .await?
        .label();
    check_if_match(&headers, http.cluster.proxy_view().version)?;
    let version = http
        .cluster
        .set_balancing(Vec::new(), Vec::new(), vec![domain.clone()], &by)
        .await?;
    Ok(Json(json!({ "removed": domain, "version": version })))
}

/// A request to test against the routes, as `clusterctl route test` takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTest {
    host: String,
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    user_agent: String,
    /// Header name → value.
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn root() -> String {
    "/".into()
}

pub async fn test(
    State(http): State<Http>,
    auth: Authed,
    JsonBody(t): JsonBody<RouteTest>,
) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "test routes").await?;
    let b = http.cluster.balancing();
    let table = RouteTable::compile(&b.routes, &|u| b.upstreams.contains_key(u)).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "routes-do-not-compile",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let mut headers = HeaderMap::new();
    for (name, value) in &t.headers {
        let bad =
            |e: String| Problem::bad_request("invalid-header", format!("header {name:?}: {e}"));
        let name = header::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        let value = header::HeaderValue::from_str(value.trim()).map_err(|e| bad(e.to_string()))?;
        headers.append(name, value);
    }
    let path = t.path.split('?').next().unwrap_or("/");
    let request = Request {
        path,
        user_agent: &t.user_agent,
        headers: &headers,
    };
    let Some(decision) = table.route(&t.host, &request) else {
        return Ok(Json(
            json!({ "host": t.host, "status": 404, "reason": "no route for this host" }),
        ));
    };
    let (status, upstream, rewritten) = match &decision.outcome {
        cluster_balancer::Outcome::Backend { upstream, path } => {
            (200, Some(upstream.clone()), path.clone())
        }
        cluster_balancer::Outcome::Forbidden { .. } => (403, None, None),
    };
    let servers = upstream
        .as_ref()
        .and_then(|u| b.view.upstreams.get(u).cloned())
        .unwrap_or_default();
    Ok(Json(json!({
        "host": t.host,
        "rules": decision.trace,
        "status": status,
        "upstream": upstream,
        "path": rewritten,
        "servers": servers,
        "explain": decision.to_string(),
    })))
}
