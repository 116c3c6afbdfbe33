//! Errors as RFC 9457 problem details (`application/problem+json`), each
//! with a stable `code` scripts can branch on; the message is for people.

use crate::cluster::ClusterError;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refusal or failure as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem: `about:blank` with a `code`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The HTTP status's reason phrase.
    pub title: &'static str,
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// Stable across releases: what scripts test.
    pub code: &'static str,
    /// Extra members (pending nodes of a wait, the generation a write
    /// expected, …).
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            extra: serde_json::Map::new(),
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// The store cannot be read now (no leader, etcd away): try again.
    pub fn unavailable(e: impl std::fmt::Display) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            e.to_string(),
        )
    }

    /// A stale `If-Match`: `current` is the `ETag` now.
    pub fn stale(what: &str, expected: &str, current: &str) -> Problem {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "stale",
            format!("{what} changed since {expected}: it is at {current} now; read it again"),
        )
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Problem {
        self.extra.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or_default(),
        );
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            // Basic too: bethel's scripts and curl -u send it.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(
                    "Bearer realm=\"clusterctl\", Basic realm=\"clusterctl\"",
                ),
            );
        }
        response
    }
}

/// The cluster's refusals, by kind.
impl From<ClusterError> for Problem {
    fn from(e: ClusterError) -> Problem {
        let detail = e.to_string();
        let (status, code) = match &e {
            ClusterError::UnknownNodes(names) => {
                return Problem::not_found("unknown-node", detail).with("nodes", names);
            }
            ClusterError::UnknownKeys(_) => (StatusCode::NOT_FOUND, "unknown-key"),
            ClusterError::NoMatch(_) => (StatusCode::NOT_FOUND, "no-match"),
            ClusterError::NoNames | ClusterError::EmptyName { .. } => {
                (StatusCode::BAD_REQUEST, "no-target")
            }
            ClusterError::Target(_) => (StatusCode::BAD_REQUEST, "invalid-target"),
            ClusterError::InvalidName { .. } => (StatusCode::BAD_REQUEST, "invalid-name"),
            ClusterError::Label(_) | ClusterError::NoLabels => {
                (StatusCode::BAD_REQUEST, "invalid-label")
            }
            ClusterError::NameTaken { .. } => (StatusCode::CONFLICT, "name-taken"),
            ClusterError::InUse { .. } => (StatusCode::CONFLICT, "in-use"),
            ClusterError::Balancing { problems } => {
                return Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-balancing",
                    detail,
                )
                .with("problems", problems);
            }
            ClusterError::ClusterFile { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid-cluster-file")
            }
            ClusterError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            ClusterError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ClusterError::SessionHeld { .. } => (StatusCode::CONFLICT, "session-held"),
            ClusterError::Pki(_) => (StatusCode::INTERNAL_SERVER_ERROR, "pki"),
            // The store is away (no leader, etcd unreachable): try again.
            ClusterError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable"),
        };
        Problem::new(status, code, detail)
    }
}

pub type ApiResult<T> = Result<T, Problem>;

/// Refuses a write whose `If-Match` names none of `current` (or `*`).
pub fn check_if_match(
    headers: &axum::http::HeaderMap,
    what: &str,
    current: &str,
) -> Result<(), Problem> {
    let Some(expected) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let expected = expected.to_str().unwrap_or("?");
    if expected
        .split(',')
        .any(|t| t.trim() == current || t.trim() == "*")
    {
        return Ok(());
    }
    Err(Problem::stale(what, expected, current))
}
