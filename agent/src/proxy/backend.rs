//! One backend server as the proxy sees it: its counters, its keep-alive
//! connections, and the [`Lease`] a request holds on it from the moment the
//! server is picked until the response body has been sent or dropped.
//!
//! A backend connection ([`Conn`]) has no task of its own: whoever uses it
//! drives its I/O — the request's task while the request is sent and the
//! head awaited, then the response body as the client connection pulls it.
//! That keeps a proxied request on one task (no cross-task wake-ups per
//! request) and makes back-pressure plain: a client that stops reading stops
//! the backend read too. An idle connection in the pool is driven by no one;
//! whoever takes it next, or the periodic sweep, notices that it closed.
//!
//! A [`ServerState`] belongs to one server of one upstream and outlives
//! configurations that keep it (see [`super::upstream`]); when a
//! configuration drops it, it is *retired*: its idle connections are closed
//! and, if requests are still in flight, [`super::Proxy::draining`] lists it
//! until the last one ends (which bumps the change counter).

use super::MAX_IDLE_PER_SERVER;
use super::body::UpBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1};
use hyper_util::rt::TokioIo;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

type Driver = http1::Connection<TokioIo<TcpStream>, UpBody>;

/// A connection to a backend: the handle requests are sent with, and the
/// connection's I/O, driven by whoever holds it.
pub(super) struct Conn {
    sender: http1::SendRequest<UpBody>,
    /// `None` once the connection has ended.
    driver: Option<Pin<Box<Driver>>>,
}

impl Conn {
    /// Moves the connection's I/O along; `false` once it has ended.
    pub fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(d) = &mut self.driver {
            match d.as_mut().poll(cx) {
                Poll::Pending => return true,
                Poll::Ready(Err(e)) => tracing::debug!(error = %e, "upstream connection ended"),
                Poll::Ready(Ok(())) => {}
            }
            self.driver = None;
        }
        false
    }

    pub fn is_open(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Waits until the connection can take a request; `false` if it closed.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            self.drive(cx);
            self.sender.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }

    /// Sends `req` and waits for the response head. On error, the request
    /// comes back inside the error when it was never written.
    pub async fn send(
        &mut self,
        req: Request<UpBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<UpBody>>> {
        let mut response = std::pin::pin!(self.sender.try_send_request(req));
        poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
    }
}

/// Why a connection could not be had.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("connect to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("connect to {addr}: timed out after {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("connect to {addr}: {source}")]
    Handshake { addr: String, source: hyper::Error },
}

/// Idle connections, each with the sweep round it was put back in.
type IdlePool = Mutex<Vec<(Conn, u64)>>;

pub(super) struct ServerState {
    pub addr: Box<str>,
    /// The parsed address when `addr` is an `ip:port`; a name is resolved
    /// at each connect.
    socket: Option<SocketAddr>,
    /// From pick to the end of the response body.
    pub in_flight: AtomicU64,
    pub requests: AtomicU64,
    /// Failures counted towards `max_fails`.
    pub failures: AtomicU64,
    /// Whether the balancer has failures on record for this server, so a
    /// success must be reported under the upstream's lock (and only then).
    pub suspect: AtomicBool,
    /// Set when a configuration dropped this server.
    retired: AtomicBool,
    /// Keep-alive connections, one pool per worker (see
    /// [`super::workers::current`]), the most recently used last, each with
    /// the idle sweep's round it was put back in.
    idle: Box<[IdlePool]>,
    hub: Arc<Hub>,
}

/// What every server of a proxy shares with it.
pub(super) struct Hub {
    /// The proxy's change counter, bumped when a retired server's last
    /// request ends.
    pub changes: watch::Sender<u64>,
    /// Advanced by each idle sweep; a connection put back two rounds ago
    /// has been idle long enough to close.
    pub idle_round: AtomicU64,
    /// Keep-alive pools per server: one per worker, and one for any other
    /// thread.
    pub pools: usize,
}

impl ServerState {
    pub fn new(addr: &str, hub: Arc<Hub>) -> ServerState {
        ServerState {
            addr: addr.into(),
            socket: addr.parse().ok(),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            suspect: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            idle: (0..hub.pools).map(|_| Mutex::new(Vec::new())).collect(),
            hub,
        }
    }

    /// Counts a request in; the lease counts it out when dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Lease {
            server: self.clone(),
            conn: None,
        }
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        for pool in &self.idle {
            pool.lock().expect("idle pool").clear();
        }
    }

    /// This thread's keep-alive pool.
    fn pool(&self) -> &IdlePool {
        &self.idle[super::workers::current().min(self.idle.len() - 1)]
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// A kept-alive connection that is still open, if any.
    pub async fn reuse(&self) -> Option<Conn> {
        loop {
            let (mut conn, _) = self.pool().lock().expect("idle pool").pop()?;
            if conn.ready().await {
                return Some(conn);
            }
        }
    }

    /// A new connection, with TCP_NODELAY.
    pub async fn connect(&self, timeout: Duration) -> Result<Conn, ConnectError> {
        let addr = || self.addr.to_string();
        let stream = match self.socket {
            Some(sa) => tokio::time::timeout(timeout, TcpStream::connect(sa)).await,
            None => tokio::time::timeout(timeout, TcpStream::connect(&*self.addr)).await,
        };
        let stream = match stream {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ConnectError::Io {
                    addr: addr(),
                    source,
                });
            }
            Err(_) => {
                return Err(ConnectError::Timeout {
                    addr: addr(),
                    after: timeout,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake {
                addr: addr(),
                source,
            })?;
        Ok(Conn {
            sender,
            driver: Some(Box::pin(driver)),
        })
    }

    fn put_back(&self, conn: Conn) {
        if !conn.is_open() {
            return;
        }
        let round = self.hub.idle_round.load(Ordering::Relaxed);
        let mut idle = self.pool().lock().expect("idle pool");
        // Checked under the lock `retire` takes after setting the flag, so
        // nothing is put back after the pool was emptied for good.
        if !self.is_retired() && idle.len() < MAX_IDLE_PER_SERVER {
            idle.push((conn, round));
        }
    }

    /// Closes the connections put back before round `before`, and those the
    /// backend closed meanwhile (their end is read here, with no task to
    /// wake: the next user drives the connection with its own).
    pub fn close_idle(&self, before: u64) {
        let mut cx = Context::from_waker(Waker::noop());
        for pool in &self.idle {
            pool.lock()
                .expect("idle pool")
                .retain_mut(|(c, round)| *round >= before && c.drive(&mut cx) && c.is_open());
        }
    }

    fn end_request(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 && self.is_retired() {
            self.hub.changes.send_modify(|n| *n += 1);
        }
    }
}

/// A request's hold on a server: counted in flight while it lives; it
/// carries the connection the response arrives on, which goes back to the
/// pool only if the response body was read to its end.
pub(super) struct Lease {
    pub server: Arc<ServerState>,
    pub conn: Option<Conn>,
}

impl Lease {
    /// The response body ended: the connection can serve another request.
    pub fn finish(mut self) {
        if let Some(conn) = self.conn.take() {
            self.server.put_back(conn);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A connection still here had its response cut short: dropping it
        // closes it.
        self.conn = None;
        self.server.end_request();
    }
}
