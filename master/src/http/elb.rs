//! ELB's admin API, so scripts written for ELB's Python client (`elb.py`)
//! drive this cluster unchanged: the same paths, request and answer
//! shapes, at the master's HTTP port.
//!
//! | call | `elb.py` | answer |
//! |---|---|---|
//! | `GET /__erulb__/domain` | `get_domain_rules()` | `{domain: {"init", "rules"}}` |
//! | `PUT /__erulb__/domain` | `set_domain_rules(domain, ruleset)` | `{"msg": "OK"}` |
//! | `DELETE /__erulb__/domain` `[domain, …]` | `delete_domain_rules([…])` | `{"msg": "OK"}` |
//! | `GET /__erulb__/upstream` | `get_upstream()` | `{name: {"ADDR:PORT": "weight=… …"}}` |
//! | `PUT /__erulb__/upstream` | `set_upstream(UpStream(…))` | `{"msg": "OK"}` |
//! | `DELETE /__erulb__/upstream` `[name, …]` | `delete_upstream([…])` | `{name: true, …}` |
//! | `PUT /__erulb__/dump` | `dump_to_etcd()` | `{"msg": "OK"}` |
//!
//! Every write is one checked change through the same path as `clusterctl
//! route set`/`upstream set` (all of it or none), audited with the token's
//! holder; reads need any API token, writes an admin's. A refusal is a
//! problem (non-200, which `elb.py` raises as `ELBRespError` with the body)
//! whose `problems` name the domain, rule and field.

use super::Http;
use super::auth::Authed;
use super::body::Text;
use super::problem::{ApiResult, Problem};
use crate::cluster::Permission;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use cluster_balancer::UpstreamSource;
use serde_json::{Map, Value, json};

pub fn routes() -> axum::Router<Http> {
    axum::Router::new()
        .route(
            "/__erulb__/domain",
            get(domains).put(set_domains).delete(remove_domains),
        )
        .route(
            "/__erulb__/upstream",
            get(upstreams).put(set_upstreams).delete(remove_upstreams),
        )
        .route("/__erulb__/dump", put(dump))
}

fn ok() -> Json<Value> {
    Json(json!({ "msg": "OK" }))
}

/// A body ELB's shape does not fit, with every problem in its place.
fn invalid(what: &str, problems: Vec<String>) -> Problem {
    let detail = match problems.as_slice() {
        [one] => format!("{what}: {one}"),
        many => format!("{what}: {} problems", many.len()),
    };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-balancing",
        detail,
    )
    .with("problems", problems)
}

/// A JSON list of names (the DELETE calls' body).
fn names(body: &str, what: &str) -> ApiResult<Vec<String>> {
    serde_json::from_str(body).map_err(|e| {
        Problem::bad_request(
            "bad-json",
            format!("expected a JSON list of {what}, as [\"a\", \"b\"]: {e}"),
        )
    })
}

pub async fn domains(State(http): State<Http>, auth: Authed) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read routes").await?;
    Ok(Json(json!(http.cluster.balancing().routes)))
}

pub async fn set_domains(
    State(http): State<Http>,
    auth: Authed,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "set routes")
        .await?
        .label();
    let domains = cluster_balancer::elb::parse_domains(&body).map_err(|errors| {
        invalid(
            "the domains' rules",
            errors.iter().map(ToString::to_string).collect(),
        )
    })?;
    http.cluster
        .set_balancing(Vec::new(), domains.into_iter().collect(), Vec::new(), &by)
        .await?;
    Ok(ok())
}

/// Removes the domains listed; one that has no rules is already gone, as
/// with ELB.
pub async fn remove_domains(
    State(http): State<Http>,
    auth: Authed,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "remove routes")
        .await?
        .label();
    let listed = names(&body, "domains")?;
    http.cluster.remove_routes(listed, &by).await?;
    Ok(ok())
}

/// Every upstream as ELB's PUT shape: `{name: {"ADDR:PORT": "parameters"}}`.
/// A role's upstream shows the servers it has now, each marked with a
/// comment naming the role and the node (`… # role web: node web-1`).
pub async fn upstreams(State(http): State<Http>, auth: Authed) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Read, "read upstreams").await?;
    let b = http.cluster.balancing();
    let mut out = Map::new();
    for (name, source) in &b.upstreams {
        let servers: Map<String, Value> = match source {
            UpstreamSource::Servers(list) => list
                .iter()
                .map(|s| (s.addr.clone(), s.parameters().into()))
                .collect(),
            UpstreamSource::Role { role, .. } => b
                .view
                .upstreams
                .get(name)
                .into_iter()
                .flatten()
                .map(|s| {
                    let node = s.node.as_deref().unwrap_or("?");
                    let text = format!("{} # role {role}: node {node}", s.server.parameters());
                    (s.server.addr.clone(), text.into())
                })
                .collect(),
        };
        out.insert(name.clone(), Value::Object(servers));
    }
    Ok(Json(Value::Object(out)))
}

pub async fn set_upstreams(
    State(http): State<Http>,
    auth: Authed,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "set upstreams")
        .await?
        .label();
    let parsed = cluster_balancer::elb::parse_upstreams(&body).map_err(|errors| {
        invalid(
            "the upstreams",
            errors.iter().map(ToString::to_string).collect(),
        )
    })?;
    let current = http.cluster.balancing().upstreams;
    let derived: Vec<String> = parsed
        .keys()
        .filter_map(|name| match current.get(name) {
            Some(UpstreamSource::Role { role, .. }) => Some(format!(
                "upstream {name:?} follows role {role}'s nodes; change it with `clusterctl upstream set {name} --role …`, or remove it first"
            )),
            _ => None,
        })
        .collect();
    if !derived.is_empty() {
        return Err(
            Problem::new(StatusCode::CONFLICT, "role-upstream", derived.join("; "))
                .with("problems", derived),
        );
    }
    let upstreams = parsed
        .into_iter()
        .map(|(name, servers)| (name, UpstreamSource::Servers(servers)))
        .collect();
    http.cluster
        .set_balancing(upstreams, Vec::new(), Vec::new(), &by)
        .await?;
    Ok(ok())
}

/// Removes the upstreams listed (refused whole while a route uses one);
/// answers, as ELB does, each name with `true`, or `404` for one there was
/// none of.
pub async fn remove_upstreams(
    State(http): State<Http>,
    auth: Authed,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    let by = auth
        .may(&http, Permission::Admin, "remove upstreams")
        .await?
        .label();
    let listed = names(&body, "upstreams")?;
    // Decided by the change itself, not by what this master saw before it.
    let removed = http.cluster.remove_upstreams(listed.clone(), &by).await?;
    let answer: Map<String, Value> = listed
        .into_iter()
        .map(|n| {
            let v = if removed.contains(&n) {
                json!(true)
            } else {
                json!(404)
            };
            (n, v)
        })
        .collect();
    Ok(Json(Value::Object(answer)))
}

/// ELB writes its rules to etcd on this call; here every change is durable
/// before it is answered, so there is nothing left to write.
pub async fn dump(State(http): State<Http>, auth: Authed) -> ApiResult<Json<Value>> {
    auth.may(&http, Permission::Admin, "dump the routes")
        .await?;
    Ok(ok())
}
