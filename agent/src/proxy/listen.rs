//! The accept loop: HTTP/1.1 with keep-alive (and pipelining), one task per client
//! connection on the least busy worker ([`super::workers`]), an idle check
//! per connection, and a graceful stop — on shutdown the listener closes at
//! once, every connection finishes the request it is serving (its response
//! body included) and closes, and whatever is still running after
//! [`Timeouts::shutdown_grace`] is cut.

use super::workers::Open;
use super::{Proxy, Timeouts, answer, forward, h1};
use bytes::BytesMut;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(super) async fn serve(proxy: Arc<Proxy>, listener: TcpListener, shutdown: CancellationToken) {
    let workers = match proxy.workers() {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "proxy: cannot start its worker threads; not serving");
            return;
        }
    };
    let mut connections = JoinSet::new();
    // One `serve` sweeps the idle backend connections, however many run.
    let sweeper = Sweeper::claim(&proxy);
    let sweep_every = (proxy.timeouts.idle / 2).max(Duration::from_millis(10));
    let mut sweep =
        tokio::time::interval_at(tokio::time::Instant::now() + sweep_every, sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Registered again with the worker's own reactor there.
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "proxy: dropping a connection");
                            continue;
                        }
                    };
                    let worker = workers.least_busy();
                    let open = Open::new(&worker.connections);
                    let (proxy, stop) = (proxy.clone(), shutdown.child_token());
                    connections.spawn_on(
                        async move {
                            let _open = open;
                            match TcpStream::from_std(stream) {
                                Ok(stream) => connection(proxy, stream, peer, stop).await,
                                Err(e) => tracing::debug!(%peer, error = %e, "proxy: dropping a connection"),
                            }
                        },
                        &worker.handle,
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: breathe, retry.
                    tracing::warn!(error = %e, "proxy: accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
            _ = sweep.tick(), if sweeper.is_some() => proxy.close_idle(),
        }
    }
    drop(listener);
    let grace = proxy.timeouts.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            ?grace,
            "proxy: connections still busy after the shutdown grace; closing them"
        );
        connections.shutdown().await;
    }
}

/// The right to sweep idle backend connections, given back when the
/// `serve` holding it returns.
struct Sweeper(Arc<Proxy>);

impl Sweeper {
    fn claim(proxy: &Arc<Proxy>) -> Option<Sweeper> {
        (!proxy.sweeping.swap(true, Ordering::AcqRel)).then(|| Sweeper(proxy.clone()))
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.0.sweeping.store(false, Ordering::Release);
    }
}

/// One client connection. `stop` (this connection's child of the shutdown
/// token) and the idle check are watched through [`Aside`], so the
/// requests' wake-ups do not poll them.
async fn connection(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    let client = forward::Client {
        io: Watched {
            io: stream,
            activity: activity.clone(),
        },
        buf: BytesMut::with_capacity(READ_SIZE),
        out: Vec::with_capacity(1024),
        ip: peer.ip().to_string().into(),
        status: 0,
        sent: 0,
        answered_by: None,
    };
    let Timeouts { client_idle, .. } = proxy.timeouts;
    let conn = serve_client(&proxy, client, &activity);
    tokio::pin!(conn);
    let stopped = stop.cancelled_owned();
    tokio::pin!(stopped);
    let mut check =
        tokio::time::interval_at(tokio::time::Instant::now() + client_idle, client_idle);
    let aside = Aside::new();
    let mut seen = activity.progress();
    loop {
        let event = poll_fn(|cx| {
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Ended);
            }
            aside.poll(cx, |cx| {
                if stopped.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Event::Stop)
                } else {
                    check.poll_tick(cx).map(|_| Event::Check)
                }
            })
        })
        .await;
        match event {
            Event::Ended => return,
            Event::Stop => {
                // Between requests: close now. Within one: it finishes,
                // says `Connection: close`, and the connection ends.
                activity.stopping.store(true, Ordering::Relaxed);
                if !activity.in_request.load(Ordering::Relaxed) {
                    return;
                }
                conn.await;
                return;
            }
            Event::Check => {
                let now = activity.progress();
                if now == seen && activity.busy() == 0 {
                    tracing::debug!(%peer, "proxy: closing an idle client connection");
                    return;
                }
                seen = now;
                // The next tick must be polled to be armed.
                aside.rewake();
            }
        }
    }
}

/// Client read buffer, to start with.
const READ_SIZE: usize = 8 * 1024;

/// Reads request heads and serves them, one after the other, until either
/// side closes.
async fn serve_client(
    proxy: &Proxy,
    mut client: forward::Client<Watched>,
    activity: &Arc<Activity>,
) {
    loop {
        let head = loop {
            if !client.buf.is_empty() {
                match h1::parse_request(&mut client.buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(status = e.status, why = %e.why, "proxy: refusing a request");
                        let started = Instant::now();
                        answer::refuse(&mut client, e.status, &e.why).await;
                        proxy.metrics.local.record(e.status, started.elapsed());
                        if let Some(log) = proxy.access_log.get() {
                            let took = started.elapsed();
                            log.record_refused(&client.ip, e.status, client.sent, took);
                        }
                        let _ = client.io.shutdown().await;
                        return;
                    }
                }
            }
            if client.buf.capacity() - client.buf.len() < READ_SIZE / 4 {
                client.buf.reserve(READ_SIZE);
            }
            match client.io.read_buf(&mut client.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let started = Instant::now();
        activity.in_request.store(true, Ordering::Relaxed);
        activity.bump();
        let again = forward::handle(proxy, &mut client, head, activity, started).await;
        activity.in_request.store(false, Ordering::Relaxed);
        if !again || activity.stopping() {
            let _ = client.io.shutdown().await;
            return;
        }
    }
}

enum Event {
    Ended,
    Stop,
    Check,
}

/// Futures polled only when they woke the task themselves: they get a
/// waker of their own that flags them and then wakes the task.
struct Aside {
    inner: Arc<AsideWaker>,
    waker: Waker,
}

struct AsideWaker {
    woken: AtomicBool,
    /// The task's waker (a tokio task's is the same for its whole life).
    task: Mutex<Option<Waker>>,
}

impl Wake for AsideWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(w) = self.task.lock().expect("aside waker").as_ref() {
            w.wake_by_ref();
        }
    }
}

impl Aside {
    fn new() -> Aside {
        let inner = Arc::new(AsideWaker {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Aside {
            waker: Waker::from(inner.clone()),
            inner,
        }
    }

    /// Runs `f` with the aside waker if one of its futures woke the task
    /// (or on the first poll).
    fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if !self.inner.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        {
            let mut task = self.inner.task.lock().expect("aside waker");
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        f(&mut Context::from_waker(&self.waker))
    }

    fn rewake(&self) {
        self.inner.woken.store(true, Ordering::Release);
    }
}

/// What a client connection has been doing, for its idle check. Written
/// only from the connection's own task, so plain loads and stores suffice.
#[derive(Default)]
pub(super) struct Activity {
    /// Bumped on every read or write that moved bytes, and every request.
    progress: AtomicU64,
    /// Requests waiting for a backend's response head.
    busy: AtomicU64,
    /// A request is being served (its response included).
    in_request: AtomicBool,
    /// The proxy is shutting down: no request after the current one.
    stopping: AtomicBool,
}

impl Activity {
    fn bump(&self) {
        let n = self.progress.load(Ordering::Relaxed);
        self.progress.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    pub(super) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// The proxy is shutting down: the current request is the last.
    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// A request waiting for its response head: the connection is not idle.
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn start(a: &Arc<Activity>) -> Busy {
        a.bump();
        a.busy.store(a.busy() + 1, Ordering::Relaxed);
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.busy.store(a.busy().saturating_sub(1), Ordering::Relaxed);
    }
}

/// The client socket, noting in `activity` when bytes move.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bump();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bump();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bump();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
