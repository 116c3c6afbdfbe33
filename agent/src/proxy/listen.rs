//! The accept loop: HTTP/1.1 with keep-alive, one task per client
//! connection, and a graceful stop — on shutdown the listener closes at
//! once, every connection finishes the request it is serving (its response
//! body included) and closes, and whatever is still running after
//! [`Timeouts::shutdown_grace`](super::Timeouts) is cut.

use super::{Proxy, forward, headers};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often idle upstream connections past their timeout are closed.
const IDLE_SWEEP: Duration = Duration::from_secs(10);

pub(super) async fn serve(proxy: Arc<Proxy>, listener: TcpListener, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    let mut sweep = tokio::time::interval(IDLE_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(proxy.clone(), stream, peer, shutdown.clone()));
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
            _ = sweep.tick() => proxy.close_idle(),
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

async fn connection(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let client_ip = headers::client_ip_value(peer.ip());
    let http = proxy.http.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let proxy = proxy.clone();
        let client_ip = client_ip.clone();
        async move { Ok::<_, Infallible>(forward::handle(proxy, req, client_ip).await) }
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "proxy: client connection ended with an error");
    }
}
