//! One request through the proxy: the health path, routing by `Host`, the
//! choice of a server, the tries, and the answer.
//!
//! Tries follow nginx's `proxy_next_upstream error timeout` with as many
//! tries as the upstream has servers, each server at most once:
//!
//! - a connect failure (refused, unreachable, timed out) means the request
//!   was never sent: it goes to the next server whatever its method;
//! - a failure once the request was sent (no response head, or none within
//!   the response-head timeout) moves on only for GET, HEAD, OPTIONS, PUT
//!   and DELETE whose body is held (none, or ≤ 64 KiB read before sending);
//! - a kept-alive connection the backend closed under us is not the
//!   server's fault: the request is sent again on a new connection to the
//!   same server (when it was never written, or when it can be replayed),
//!   without counting a failure;
//! - a response, whatever its status, ends the tries.

use super::backend::{Conn, ConnectError, ServerState};
use super::body::{ProxyBody, UpBody};
use super::upstream::Upstream;
use super::{HealthEndpoint, Proxy, Timeouts, headers};
use bytes::Bytes;
use cluster_balancer::Pick;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request bodies up to this size (by `Content-Length`) of idempotent
/// requests are read before sending, so a failed try can be retried.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// A hard bound on tries, whatever happens to the configuration meanwhile.
const MAX_TRIES: usize = 32;

/// A request routed: answered here, or to be forwarded.
#[allow(clippy::large_enum_variant)] // moved once or twice; a box would cost an allocation
pub(super) enum Routed {
    Answer(Response<ProxyBody>),
    Forward(Forward),
}

pub(super) struct Forward {
    upstream: Arc<Upstream>,
    parts: http::request::Parts,
    body: Incoming,
    idempotent: bool,
    timeouts: Timeouts,
}

/// Everything about a request that needs no waiting: the health path,
/// routing, the upstream, the request to send.
pub(super) fn route(proxy: &Proxy, req: Request<Incoming>, client_ip: &HeaderValue) -> Routed {
    if let Some(h) = &proxy.health
        && req.uri().path() == h.path
    {
        return Routed::Answer(health(h, &req));
    }
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let host_str = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let routed = proxy.with_snapshot(|snapshot| {
        let decision = snapshot.routes.pick(
            host_str,
            &cluster_balancer::Request {
                path: req.uri().path(),
                user_agent,
                headers: req.headers(),
            },
        );
        match decision {
            None => Err((
                StatusCode::NOT_FOUND,
                format!("no route for host {host_str:?}\n"),
            )),
            Some(Pick::Forbidden { rule }) => Err((
                StatusCode::FORBIDDEN,
                format!("forbidden by rule {rule:?} of host {host_str:?}\n"),
            )),
            Some(Pick::Backend { upstream, path }) => match snapshot.upstreams.get(upstream) {
                Some(u) => Ok((u.clone(), path)),
                None => Err((
                    StatusCode::BAD_GATEWAY,
                    format!("upstream {upstream:?} is not configured\n"),
                )),
            },
        }
    });
    let (upstream, rewrite) = match routed {
        Ok(r) => r,
        Err((status, text)) => return Routed::Answer(local(status, text)),
    };

    let (mut parts, body) = req.into_parts();
    parts.uri = match upstream_uri(parts.uri, rewrite.as_deref()) {
        Ok(uri) => uri,
        Err(e) => return Routed::Answer(local(StatusCode::BAD_REQUEST, format!("{e}\n"))),
    };
    parts.version = Version::HTTP_11;
    parts.extensions = Default::default();
    headers::forward_request(&mut parts.headers, client_ip, host);
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    Routed::Forward(Forward {
        upstream,
        parts,
        body,
        idempotent,
        timeouts: proxy.timeouts,
    })
}

impl Routed {
    /// The response: the one routing made, or the upstream's.
    pub(super) async fn finish(self) -> Response<ProxyBody> {
        let f = match self {
            Routed::Answer(a) => return a,
            Routed::Forward(f) => f,
        };
        let Forward {
            upstream,
            parts,
            body,
            idempotent,
            timeouts,
        } = f;
        let body = if body.is_end_stream() {
            UpBody::Empty
        } else if idempotent && content_length(&parts.headers).is_some_and(|n| n <= MAX_REPLAY_BODY)
        {
            match Box::pin(body.collect()).await {
                Ok(b) => UpBody::Full(Some(b.to_bytes())),
                Err(e) => {
                    return local(
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the request body: {e}\n"),
                    );
                }
            }
        } else {
            UpBody::Stream(body)
        };
        let replayable = idempotent && !matches!(body, UpBody::Stream(_));
        // Boxed: hyper moves the service future around by value, and this
        // part is most of its size.
        Box::pin(dispatch(
            &timeouts,
            &upstream,
            Request::from_parts(parts, body),
            replayable,
        ))
        .await
    }
}

/// The path and query sent upstream: origin-form, with the path replaced
/// by `rewrite` when a rule rewrote it (the query string is kept).
fn upstream_uri(uri: Uri, rewrite: Option<&str>) -> Result<Uri, String> {
    let Some(path) = rewrite else {
        if uri.scheme().is_none() && uri.authority().is_none() {
            return Ok(uri);
        }
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        return Ok(Uri::from(pq));
    };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    PathAndQuery::from_maybe_shared(Bytes::from(pq))
        .map(Uri::from)
        .map_err(|e| format!("the rewritten path {path:?} is not valid: {e}"))
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// What went wrong with one try.
enum Failure {
    Connect(ConnectError),
    /// Connected, but the connection closed before the request was written.
    Closed {
        addr: Box<str>,
        error: hyper::Error,
    },
    /// Sent, and no response head came back.
    Response {
        addr: Box<str>,
        error: hyper::Error,
    },
    Timeout {
        addr: Box<str>,
        after: Duration,
    },
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Connect(e) => e.to_string(),
            Failure::Closed { addr, error } => format!("{addr}: connection closed: {error}"),
            Failure::Response { addr, error } => format!("{addr}: no response: {error}"),
            Failure::Timeout { addr, after } => {
                format!("{addr}: no response head within {after:?}")
            }
        }
    }
}

/// How one try on one server ended.
enum Try {
    Answered(Response<Incoming>, Conn),
    /// Never written: the request comes back whole.
    NotSent(Request<UpBody>, Failure),
    /// Written, maybe in part: only the copy made beforehand (if any) is left.
    Sent(Failure, Option<Request<UpBody>>),
}

async fn dispatch(
    t: &Timeouts,
    upstream: &Upstream,
    req: Request<UpBody>,
    replayable: bool,
) -> Response<ProxyBody> {
    let mut tried: Vec<Arc<ServerState>> = Vec::new();
    let mut last: Option<Failure> = None;
    let mut pending = Some(req);
    for _ in 0..MAX_TRIES {
        let Some(req) = pending.take() else { break };
        let Some(mut lease) = upstream.pick(now, &tried) else {
            break;
        };
        match try_server(&lease.server, t, req, replayable).await {
            Try::Answered(resp, conn) => {
                upstream.succeeded(&lease.server);
                lease.conn = Some(conn);
                let (mut parts, body) = resp.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers);
                return Response::from_parts(parts, ProxyBody::upstream(body, lease));
            }
            Try::NotSent(req, failure) => {
                pending = Some(req);
                last = Some(failure);
            }
            Try::Sent(failure, spare) => {
                pending = spare;
                last = Some(failure);
            }
        }
        upstream.failed(&lease.server, now());
        tracing::debug!(
            upstream = %upstream.name,
            why = %last.as_ref().map(Failure::describe).unwrap_or_default(),
            retry = pending.is_some(),
            "upstream try failed"
        );
        tried.push(lease.server.clone());
    }
    match last {
        Some(f) => local(
            f.status(),
            format!("upstream {:?}: {}\n", upstream.name, f.describe()),
        ),
        None => local(
            StatusCode::BAD_GATEWAY,
            format!("no server available in upstream {:?}\n", upstream.name),
        ),
    }
}

/// One server: a kept-alive connection if there is one, else a new one;
/// a kept-alive connection that turns out closed is replaced by a new one
/// once, without it counting as the server's failure.
async fn try_server(
    server: &ServerState,
    t: &Timeouts,
    mut req: Request<UpBody>,
    replayable: bool,
) -> Try {
    let mut pooled = server.reuse().await;
    loop {
        let reused = pooled.is_some();
        let mut conn = match pooled.take() {
            Some(c) => c,
            None => match Box::pin(server.connect(t.connect)).await {
                Ok(c) => c,
                Err(e) => return Try::NotSent(req, Failure::Connect(e)),
            },
        };
        let spare = if replayable { replay(&req) } else { None };
        let addr = || server.addr.clone();
        match tokio::time::timeout(t.response_head, conn.send(req)).await {
            Ok(Ok(resp)) => return Try::Answered(resp, conn),
            Ok(Err(mut e)) => match e.take_message() {
                Some(back) if reused => req = back,
                Some(back) => {
                    let error = e.into_error();
                    return Try::NotSent(
                        back,
                        Failure::Closed {
                            addr: addr(),
                            error,
                        },
                    );
                }
                None => {
                    let error = e.into_error();
                    match spare {
                        Some(copy) if reused && error.is_incomplete_message() => req = copy,
                        spare => {
                            return Try::Sent(
                                Failure::Response {
                                    addr: addr(),
                                    error,
                                },
                                spare,
                            );
                        }
                    }
                }
            },
            Err(_) => {
                return Try::Sent(
                    Failure::Timeout {
                        addr: addr(),
                        after: t.response_head,
                    },
                    spare,
                );
            }
        }
    }
}

/// A copy of a request whose body is held; `None` for a streamed body.
fn replay(req: &Request<UpBody>) -> Option<Request<UpBody>> {
    let mut copy = Request::new(req.body().replay()?);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(super) fn local(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::local(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `GET <health_path>[?node=NAME]`, answered by the agent.
fn health(h: &HealthEndpoint, req: &Request<Incoming>) -> Response<ProxyBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = local(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} answers GET and HEAD\n", h.path),
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let node = req.uri().query().and_then(|q| query_value(q, "node"));
    let (status, text) = (h.answer)(node.as_deref());
    let json = text.starts_with('{') || text.starts_with('[');
    let mut resp = local(status, text);
    if json {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

/// The first value of `key` in a query string, percent-decoded.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_found_and_decoded() {
        for (query, want) in [
            ("node=web-1", Some("web-1")),
            ("a=1&node=web%2D2&node=x", Some("web-2")),
            ("node=a+b%20c", Some("a b c")),
            ("node=%zz%4", Some("%zz%4")),
            ("node", Some("")),
            ("nodes=1", None),
            ("", None),
        ] {
            assert_eq!(query_value(query, "node").as_deref(), want, "{query}");
        }
    }

    #[test]
    fn the_upstream_uri_is_origin_form_and_a_rewrite_keeps_the_query() {
        for (uri, rewrite, want) in [
            ("/a/b?x=1", None, "/a/b?x=1"),
            ("http://shop.example/a?x=1", None, "/a?x=1"),
            (
                "/api/v1/items?page=2",
                Some("/v1/items"),
                "/v1/items?page=2",
            ),
            ("/api", Some("/"), "/"),
        ] {
            let got = upstream_uri(uri.parse().unwrap(), rewrite).unwrap();
            assert_eq!(got.to_string(), want, "{uri} {rewrite:?}");
        }
    }
}
