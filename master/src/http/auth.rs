//! Who is asking over HTTP. Browsers and curl cannot be asked for client
//! certificates, so the API takes API tokens (`clusterctl token create
//! --api`): `Authorization: Bearer ID.SECRET`, or HTTP Basic with the
//! token as the password (the user part is not read: bethel's scripts sent
//! Basic). Each request is checked against the state as it is then, so a
//! deleted or expired token opens nothing from that moment.
//!
//! A refused token is audited once per source address and minute (an
//! unauthenticated flood is not a durable write per request); a request
//! with no credentials at all is refused without an event.

use super::Http;
use super::problem::Problem;
use crate::cluster::{Caller, Permission, Refusal};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use base64::Engine as _;
use std::net::SocketAddr;

/// The longest `Authorization` header read: a token is 40 bytes.
const MAX_CREDENTIALS: usize = 512;

/// A caller with a valid API token.
#[derive(Debug, Clone)]
pub struct Authed {
    pub caller: Caller,
    /// Where the request came from, when known (for refusals).
    pub from: Option<SocketAddr>,
}

impl Authed {
    /// The caller, if it may do `action` (which needs `need`); otherwise a
    /// 403, audited.
    pub async fn may(
        &self,
        http: &Http,
        need: Permission,
        action: &str,
    ) -> Result<&Caller, Problem> {
        match self.caller.refusal(need, action) {
            None => Ok(&self.caller),
            Some(Refusal::Denied(msg) | Refusal::Unauthenticated(msg)) => {
                let from = self.from.map_or("unknown".to_owned(), |a| a.to_string());
                http.cluster
                    .deny(
                        "",
                        &self.caller.label(),
                        format!("{msg} (HTTP, from {from})"),
                    )
                    .await;
                Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", msg))
            }
        }
    }

    pub fn label(&self) -> String {
        self.caller.label()
    }
}

/// The token a request presents, if any: `Err` when the header is there
/// but unreadable.
pub fn presented(parts: &Parts) -> Result<Option<String>, Problem> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = |why: &str| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "malformed-credentials",
            format!(
                "the Authorization header {why}; send `Bearer ID.SECRET`, or Basic with the token as the password"
            ),
        )
    };
    if value.len() > MAX_CREDENTIALS {
        return Err(malformed(&format!("is over {MAX_CREDENTIALS} bytes")));
    }
    let value = value.to_str().map_err(|_| malformed("is not ASCII"))?;
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| malformed("names no scheme"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Ok(Some(rest.trim().to_owned())),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| malformed("holds Basic credentials that are not base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| malformed("holds Basic credentials that are not UTF-8"))?;
            let (_, password) = decoded
                .split_once(':')
                .ok_or_else(|| malformed("holds Basic credentials without a colon"))?;
            Ok(Some(password.to_owned()))
        }
        _ => Err(malformed(&format!("uses the scheme {scheme:?}"))),
    }
}

/// Where a request came from, over HTTP or HTTPS.
pub fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<crate::tls::HttpsPeer>>()
                .map(|c| c.0.0)
        })
}

impl FromRequestParts<Http> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, http: &Http) -> Result<Authed, Problem> {
        let from = peer(parts);
        let Some(token) = presented(parts)? else {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this endpoint needs an API token (`clusterctl token create --api`): \
                 `Authorization: Bearer ID.SECRET`, or Basic with the token as the password",
            ));
        };
        match http.cluster.api_caller(&token) {
            Ok(caller) => Ok(Authed { caller, from }),
            Err(e) => {
                let msg = e.to_string();
                let ip = from.map(|a| a.ip());
                if ip.is_none_or(|ip| http.refusals.admit(ip, std::time::Instant::now())) {
                    let at = from.map_or("unknown".to_owned(), |a| a.to_string());
                    http.cluster
                        .deny("", "http", format!("{msg} (from {at})"))
                        .await;
                }
                Err(Problem::new(StatusCode::UNAUTHORIZED, "invalid-token", msg))
            }
        }
    }
}
