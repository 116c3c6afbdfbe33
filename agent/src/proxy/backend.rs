//! One backend server as the proxy sees it: its counters, its keep-alive
//! connections, and the [`Lease`] a request holds on it from the moment the
//! server is picked until the response body has been sent or dropped.
//!
//! A backend connection ([`Conn`]) is a socket and its read buffer, used
//! by one request at a time from the request's own task: no task of its
//! own, no channel, no wake-up between tasks. Back-pressure is plain: a
//! client that stops reading stops the backend read too. An idle
//! connection in the pool is driven by no one; whoever takes it next, or
//! the periodic sweep, looks whether it closed.
//!
//! A [`ServerState`] belongs to one server of one upstream and outlives
//! configurations that keep it (see [`super::upstream`]); when a
//! configuration drops it, it is *retired*: its idle connections are closed
//! and, if requests are still in flight, [`super::Proxy::draining`] lists it
//! until the last one ends (which bumps the change counter).

use super::MAX_IDLE_PER_SERVER;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Read buffer of a backend connection, to start with.
const READ_BUFFER: usize = 8 * 1024;

/// A connection to a backend.
pub(super) struct Conn {
    pub stream: TcpStream,
    /// Read from the backend and not yet used.
    pub buf: BytesMut,
}

impl Conn {
    /// Whether an idle connection is still usable: the backend has neither
    /// closed it nor sent anything unasked. Costs no system call unless
    /// the socket became readable.
    pub fn is_open(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
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
    pub fn reuse(&self) -> Option<Conn> {
        let mut pool = self.pool().lock().expect("idle pool");
        while let Some((conn, _)) = pool.pop() {
            if conn.is_open() {
                return Some(conn);
            }
        }
        None
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
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER),
        })
    }

    fn put_back(&self, conn: Conn) {
        let round = self.hub.idle_round.load(Ordering::Relaxed);
        let mut idle = self.pool().lock().expect("idle pool");
        // Checked under the lock `retire` takes after setting the flag, so
        // nothing is put back after the pool was emptied for good.
        if !self.is_retired() && idle.len() < MAX_IDLE_PER_SERVER {
            idle.push((conn, round));
        }
    }

    /// Closes the connections put back before round `before`, and those the
    /// backend closed meanwhile.
    pub fn close_idle(&self, before: u64) {
        for pool in &self.idle {
            pool.lock()
                .expect("idle pool")
                .retain(|(c, round)| *round >= before && c.is_open());
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
