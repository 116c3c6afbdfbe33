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

use super::backend::{Conn, ConnectError, Lease, ServerState};
use super::body::{self, BodyError, Sink};
use super::h1::{self, Forwarded, Framing, Outgoing, RequestHead, ResponseHead};
use super::listen::{Activity, Busy};
use super::metrics::TryError;
use super::upstream::Upstream;
use super::{Proxy, Timeouts, answer};
use bytes::{Bytes, BytesMut};
use cluster_balancer::Pick;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Request bodies up to this size (by `Content-Length`) of idempotent
/// requests are read before sending, so a failed try can be retried.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// A hard bound on tries, whatever happens to the configuration meanwhile.
const MAX_TRIES: usize = 32;

/// Response head read size.
const READ_SIZE: usize = 8 * 1024;

/// The client side of a connection, as its requests use it.
pub(super) struct Client<IO> {
    pub io: IO,
    /// Read from the client and not yet used (a pipelined request
    /// included).
    pub buf: BytesMut,
    /// Being put together to be written to the client.
    pub out: Vec<u8>,
    /// For `X-Forwarded-For`.
    pub ip: Box<str>,
    /// The status of the response head last written, 0 before any: what
    /// the request is counted with.
    pub status: u16,
    /// Body bytes of the response written to the client.
    pub sent: u64,
    /// The server whose response it was, and how long its head took
    /// from the request's dispatch.
    pub answered_by: Option<(Arc<ServerState>, Duration)>,
}

/// Serves one request whose head was read at `started`, and records it in
/// the metrics of the upstream it routed to (the proxy's own otherwise)
/// once its response has ended. A request that got no response (the
/// client went away first) is not counted. Returns whether the client
/// connection can take another request.
pub(super) async fn handle<IO>(
    proxy: &Proxy,
    client: &mut Client<IO>,
    req: RequestHead,
    activity: &Arc<Activity>,
    started: Instant,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    client.status = 0;
    client.sent = 0;
    client.answered_by = None;
    let mut routed = None;
    let again = serve(proxy, client, &req, activity, &mut routed).await;
    if client.status != 0 {
        let metrics = match &routed {
            Some(u) => &u.metrics,
            None => &proxy.metrics.local,
        };
        let took = started.elapsed();
        metrics.record(client.status, took);
        if let Some(log) = proxy.access_log.get() {
            log.record_request(client, &req, routed.as_deref(), took);
        }
    }
    again
}

/// The health path, routing, the tries, the response. The connection
/// counts as busy (not idle) while it waits for a backend's response head.
/// `routed` is set to the upstream chosen.
async fn serve<IO>(
    proxy: &Proxy,
    client: &mut Client<IO>,
    req: &RequestHead,
    activity: &Arc<Activity>,
    routed: &mut Option<Arc<Upstream>>,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let stopping = || activity.stopping();
    if req.method() == "CONNECT" {
        return answer::local(client, req, 405, "CONNECT is not proxied\n", true).await;
    }
    if let Some(h) = &proxy.health
        && req.path() == h.path
    {
        return answer::health(h, client, req, stopping()).await;
    }
    let host = req
        .host()
        .and_then(|h| std::str::from_utf8(h).ok())
        .unwrap_or("");
    let user_agent = req
        .fields
        .get(b"user-agent")
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    let picked = proxy.with_snapshot(|snapshot| {
        let decision = snapshot.routes.pick(
            host,
            &cluster_balancer::Request {
                path: req.path(),
                user_agent,
                headers: &req.fields,
            },
        );
        match decision {
            None => Err((404, format!("no route for host {host:?}\n"))),
            Some(Pick::Forbidden { rule }) => Err((
                403,
                format!("forbidden by rule {rule:?} of host {host:?}\n"),
            )),
            Some(Pick::Backend { upstream, path }) => match snapshot.upstreams.get(upstream) {
                Some(u) => Ok((u.clone(), path)),
                None => Err((502, format!("upstream {upstream:?} is not configured\n"))),
            },
        }
    });
    let (upstream, rewrite) = match picked {
        Ok(r) => r,
        Err((status, text)) => return answer::local(client, req, status, &text, stopping()).await,
    };
    let upstream: &Upstream = routed.insert(upstream);
    let path_and_query = match req.upstream_target(rewrite.as_deref()) {
        Ok(t) => t,
        Err(e) => return answer::local(client, req, 400, &format!("{e}\n"), stopping()).await,
    };

    let mut body = match req.framing {
        Framing::Empty => ReqBody::Empty,
        Framing::Length(n) if req.idempotent() && n <= MAX_REPLAY_BODY => {
            if continue_if_expected(client, req).await.is_err() {
                return false;
            }
            match body::read_whole(&mut client.io, &mut client.buf, n as usize).await {
                Ok(b) => ReqBody::Held(b),
                Err(e) => {
                    tracing::debug!(error = %e, "proxy: the client's request body ended early");
                    return false;
                }
            }
        }
        f => ReqBody::Stream(f),
    };
    let mut head = Vec::with_capacity(512);
    h1::write_request_head(
        &mut head,
        req,
        &Forwarded {
            path_and_query: &path_and_query,
            client_ip: &client.ip,
            framing: body.framing(),
        },
    );
    drop(path_and_query);
    let busy = Busy::start(activity);
    let dispatched = Instant::now();
    let sent = Box::pin(dispatch(
        &proxy.timeouts,
        upstream,
        &head,
        &mut body,
        client,
        req,
    ))
    .await;
    let (resp, conn, lease) = match sent {
        Ok(r) => r,
        Err(Failure::Client(why)) => {
            tracing::debug!(why = %why, "proxy: the client went away mid-request");
            return false;
        }
        Err(f) => {
            let status = f.status();
            let text = match f {
                Failure::NoServer => {
                    format!("no server available in upstream {:?}\n", upstream.name)
                }
                f => format!("upstream {:?}: {}\n", upstream.name, f.describe()),
            };
            // A request body only partly read leaves the connection
            // unusable.
            let clean = !matches!(body, ReqBody::Sent);
            return answer::local(client, req, status, &text, stopping() || !clean).await && clean;
        }
    };
    client.answered_by = Some((lease.server.clone(), dispatched.elapsed()));
    if resp.status == 101 {
        return super::tunnel::serve(proxy, client, resp, conn, lease, busy, activity).await;
    }
    respond(client, req, resp, conn, lease, busy, stopping()).await
}

/// Sends the backend's response on: the head, then the body as it comes.
async fn respond<IO>(
    client: &mut Client<IO>,
    req: &RequestHead,
    resp: ResponseHead,
    mut conn: Conn,
    mut lease: Lease,
    busy: Busy,
    stopping: bool,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    if req.minor == 0
        && let Some(codings) = &resp.codings
    {
        // HTTP/1.0 has no Transfer-Encoding to say the body is coded.
        let text = format!(
            "the backend's response has transfer coding {codings:?}, which an HTTP/1.0 client cannot take\n"
        );
        drop((conn, lease, busy));
        return answer::local(client, req, 502, &text, true).await;
    }
    let framing = match resp.framing {
        Framing::Empty => Framing::Empty,
        Framing::Length(n) => Framing::Length(n),
        Framing::Chunked | Framing::Close if req.minor == 1 => Framing::Chunked,
        Framing::Chunked | Framing::Close => Framing::Close,
    };
    let how = Outgoing {
        framing,
        keep_alive: req.keep_alive && !stopping && framing != Framing::Close,
        http10: req.minor == 0,
    };
    client.out.clear();
    client.status = resp.status;
    h1::write_response_head(&mut client.out, &resp, how);
    drop(busy);
    let relayed = body::relay(
        &mut conn.stream,
        &mut conn.buf,
        resp.framing,
        Sink {
            io: &mut client.io,
            out: &mut client.out,
            chunked: framing == Framing::Chunked,
        },
    )
    .await;
    client.out.clear();
    match relayed {
        Ok(sent) => {
            client.sent = sent;
            if resp.keep_alive && conn.buf.is_empty() {
                lease.conn = Some(conn);
            }
            lease.finish();
            how.keep_alive
        }
        Err(BodyError::Source(why)) => {
            tracing::debug!(server = %lease.server.addr, why = %why, "proxy: a response body was cut short");
            false
        }
        Err(BodyError::Sink(e)) => {
            tracing::debug!(error = %e, "proxy: the client went away during a response");
            false
        }
    }
}

/// A request body on its way upstream.
enum ReqBody {
    Empty,
    /// Read whole before sending, so a retry can send it again.
    Held(Bytes),
    /// Still at the client, to be streamed once.
    Stream(Framing),
    /// Streamed (in part, maybe): cannot be sent again.
    Sent,
}

impl ReqBody {
    fn framing(&self) -> Framing {
        match self {
            ReqBody::Empty | ReqBody::Sent => Framing::Empty,
            ReqBody::Held(b) => Framing::Length(b.len() as u64),
            ReqBody::Stream(f) => *f,
        }
    }

    /// Whether the request can be sent again as it was.
    fn held(&self) -> bool {
        matches!(self, ReqBody::Empty | ReqBody::Held(_))
    }
}

/// Answers `Expect: 100-continue` before the body is read, unless the
/// client has started sending it anyway.
async fn continue_if_expected<IO: AsyncWrite + Unpin>(
    client: &mut Client<IO>,
    req: &RequestHead,
) -> std::io::Result<()> {
    if req.expects_continue && client.buf.is_empty() {
        client
            .io
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await?;
    }
    Ok(())
}

/// What went wrong with a request.
enum Failure {
    Connect(ConnectError),
    /// Sent (maybe in part), and no usable response head came back.
    Response {
        addr: Box<str>,
        error: String,
    },
    Timeout {
        addr: Box<str>,
        after: Duration,
    },
    /// The client failed while its body was streamed.
    Client(String),
    /// Every server was out, or tried.
    NoServer,
}

impl Failure {
    fn status(&self) -> u16 {
        match self {
            Failure::Timeout { .. } => 504,
            _ => 502,
        }
    }

    /// How the try failed, for the metrics; `None` for what is not a try.
    fn try_error(&self) -> Option<TryError> {
        match self {
            Failure::Connect(ConnectError::Io { .. }) => Some(TryError::Connect),
            Failure::Connect(ConnectError::Timeout { .. }) => Some(TryError::ConnectTimeout),
            Failure::Response { .. } => Some(TryError::Response),
            Failure::Timeout { .. } => Some(TryError::ResponseTimeout),
            Failure::Client(_) | Failure::NoServer => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Connect(e) => e.to_string(),
            Failure::Response { addr, error } => format!("{addr}: no response: {error}"),
            Failure::Timeout { addr, after } => {
                format!("{addr}: no response head within {after:?}")
            }
            Failure::Client(why) => format!("the client: {why}"),
            Failure::NoServer => "no server available".into(),
        }
    }
}

async fn dispatch<IO>(
    t: &Timeouts,
    upstream: &Upstream,
    head: &[u8],
    body: &mut ReqBody,
    client: &mut Client<IO>,
    req: &RequestHead,
) -> Result<(ResponseHead, Conn, Lease), Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut tried: Vec<Arc<ServerState>> = Vec::new();
    let mut last: Option<Failure> = None;
    for _ in 0..MAX_TRIES {
        let Some(lease) = upstream.pick(now, &tried) else {
            break;
        };
        let failure = match try_server(&lease.server, t, head, body, client, req).await {
            Ok((resp, conn)) => {
                upstream.succeeded(&lease.server);
                return Ok((resp, conn, lease));
            }
            Err(f @ Failure::Client(_)) => return Err(f),
            Err(f) => f,
        };
        // A connect failure never sent anything; otherwise only a request
        // that can be sent again as it was goes to the next server.
        let next = matches!(failure, Failure::Connect(_)) || (req.idempotent() && body.held());
        upstream.failed(&lease.server, now());
        if let Some(why) = failure.try_error() {
            upstream.metrics.failed(why);
        }
        tracing::debug!(
            upstream = %upstream.name,
            why = %failure.describe(),
            retry = next,
            "upstream try failed"
        );
        last = Some(failure);
        tried.push(lease.server.clone());
        if !next {
            break;
        }
    }
    Err(last.unwrap_or(Failure::NoServer))
}

/// How an exchange on one connection failed.
enum Exchange {
    Backend {
        error: String,
        /// No byte of a response arrived.
        silent: bool,
    },
    Client(String),
}

/// One server: a kept-alive connection if there is one, else a new one;
/// a kept-alive connection that turns out closed without a word is
/// replaced by a new one, without it counting as the server's failure.
async fn try_server<IO>(
    server: &ServerState,
    t: &Timeouts,
    head: &[u8],
    body: &mut ReqBody,
    client: &mut Client<IO>,
    req: &RequestHead,
) -> Result<(ResponseHead, Conn), Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut pooled = server.reuse();
    loop {
        let reused = pooled.is_some();
        let mut conn = match pooled.take() {
            Some(c) => c,
            None => Box::pin(server.connect(t.connect))
                .await
                .map_err(Failure::Connect)?,
        };
        let exchanged = tokio::time::timeout(
            t.response_head,
            exchange(&mut conn, head, body, client, req),
        )
        .await;
        match exchanged {
            Ok(Ok(resp)) => return Ok((resp, conn)),
            Ok(Err(Exchange::Client(why))) => return Err(Failure::Client(why)),
            Ok(Err(Exchange::Backend { silent: true, .. }))
                if reused && !matches!(body, ReqBody::Sent) => {}
            Ok(Err(Exchange::Backend { error, .. })) => {
                return Err(Failure::Response {
                    addr: server.addr.clone(),
                    error,
                });
            }
            Err(_) => {
                return Err(Failure::Timeout {
                    addr: server.addr.clone(),
                    after: t.response_head,
                });
            }
        }
    }
}

/// Sends the request on `conn` and reads the final response head (1xx
/// responses are passed over).
async fn exchange<IO>(
    conn: &mut Conn,
    head: &[u8],
    body: &mut ReqBody,
    client: &mut Client<IO>,
    req: &RequestHead,
) -> Result<ResponseHead, Exchange>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let backend = |e: std::io::Error| Exchange::Backend {
        error: e.to_string(),
        silent: true,
    };
    match body {
        ReqBody::Empty => conn.stream.write_all(head).await.map_err(backend)?,
        ReqBody::Held(b) => {
            let mut all = Vec::with_capacity(head.len() + b.len());
            all.extend_from_slice(head);
            all.extend_from_slice(b);
            conn.stream.write_all(&all).await.map_err(backend)?;
        }
        ReqBody::Stream(framing) => {
            let framing = *framing;
            conn.stream.write_all(head).await.map_err(backend)?;
            *body = ReqBody::Sent;
            continue_if_expected(client, req)
                .await
                .map_err(|e| Exchange::Client(e.to_string()))?;
            let mut out = Vec::new();
            body::relay(
                &mut client.io,
                &mut client.buf,
                framing,
                Sink {
                    io: &mut conn.stream,
                    out: &mut out,
                    chunked: framing == Framing::Chunked,
                },
            )
            .await
            .map_err(|e| match e {
                BodyError::Source(why) => Exchange::Client(why),
                BodyError::Sink(e) => backend(e),
            })?;
        }
        ReqBody::Sent => {
            return Err(Exchange::Backend {
                error: "the request body was already sent".into(),
                silent: false,
            });
        }
    }
    let mut heard = false;
    loop {
        if !conn.buf.is_empty() {
            heard = true;
            match h1::parse_response(&mut conn.buf, req.is_head()) {
                Ok(Some(resp)) if resp.status == 101 && req.upgrade => return Ok(resp),
                Ok(Some(resp)) if resp.status == 101 => {
                    return Err(Exchange::Backend {
                        error: "it switched protocols unasked".into(),
                        silent: false,
                    });
                }
                Ok(Some(resp)) if resp.is_informational() => continue,
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) => {}
                Err(e) => {
                    return Err(Exchange::Backend {
                        error: e.why,
                        silent: false,
                    });
                }
            }
        }
        if conn.buf.capacity() - conn.buf.len() < READ_SIZE / 4 {
            conn.buf.reserve(READ_SIZE);
        }
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) => {
                return Err(Exchange::Backend {
                    error: "connection closed before a response".into(),
                    silent: !heard,
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Exchange::Backend {
                    error: e.to_string(),
                    silent: !heard,
                });
            }
        }
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
