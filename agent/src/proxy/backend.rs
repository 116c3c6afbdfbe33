//! One backend server as the proxy sees it: its counters, its keep-alive
//! connections, and the [`Lease`] a request holds on it from the moment the
//! server is picked until the response body has been sent or dropped.
//!
//! A [`ServerState`] belongs to one server of one upstream and outlives
//! configurations that keep it (see [`super::upstream`]); when a
//! configuration drops it, it is *retired*: its idle connections are closed
//! and, if requests are still in flight, [`super::Proxy::draining`] lists it
//! until the last one ends (which bumps the change counter).

use super::MAX_IDLE_PER_SERVER;
use super::body::UpBody;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub(super) type Conn = http1::SendRequest<UpBody>;

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
    /// Keep-alive connections, the most recently used last.
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// The proxy's change counter, bumped when a retired server's last
    /// request ends.
    changes: watch::Sender<u64>,
}

impl ServerState {
    pub fn new(addr: &str, changes: watch::Sender<u64>) -> ServerState {
        ServerState {
            addr: addr.into(),
            socket: addr.parse().ok(),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            suspect: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
            changes,
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
        let mut idle = self.idle.lock().expect("idle pool");
        self.retired.store(true, Ordering::Release);
        idle.clear();
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// A kept-alive connection that is still open and was idle at most
    /// `idle_timeout`, if any.
    pub async fn reuse(&self, idle_timeout: Duration) -> Option<Conn> {
        loop {
            let (mut conn, since) = self.idle.lock().expect("idle pool").pop()?;
            if conn.is_closed() || since.elapsed() > idle_timeout {
                continue;
            }
            // Put back right after its response ended, the connection may
            // not have told its sender it is free yet: it will, or close.
            if conn.is_ready() || conn.ready().await.is_ok() {
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
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake {
                addr: addr(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    fn put_back(&self, conn: Conn) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("idle pool");
        // Checked under the lock `retire` takes, so nothing is put back
        // after the pool was emptied for good.
        if !self.is_retired() && idle.len() < MAX_IDLE_PER_SERVER {
            idle.push((conn, Instant::now()));
        }
    }

    /// Closes connections idle longer than `idle_timeout`.
    pub fn close_idle(&self, now: Instant, idle_timeout: Duration) {
        self.idle
            .lock()
            .expect("idle pool")
            .retain(|(c, since)| !c.is_closed() && now.duration_since(*since) <= idle_timeout);
    }

    fn end_request(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 && self.is_retired() {
            self.changes.send_modify(|n| *n += 1);
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
