//! An upgraded connection (WebSocket, or any protocol a `101 Switching
//! Protocols` starts): the client's connection and the backend's are
//! joined, bytes moving both ways as they come, until both sides have
//! closed (a side that ends its writing has the other side's writing shut
//! in turn, so half-closed protocols work), either fails, or nothing moves
//! either way for the tunnel's idle timeout.
//!
//! The request holds its lease on the server for the tunnel's whole life,
//! so an open WebSocket counts as in flight: a drained or removed server
//! keeps its open tunnels until they close, and `draining()` — what
//! `drain --wait` reports as still in flight — lists it meanwhile.

use super::Proxy;
use super::backend::{Conn, Lease};
use super::forward::Client;
use super::h1::{self, ResponseHead};
use super::listen::{Activity, Busy};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The backend switched protocols as the client asked: the 101 goes to
/// the client, then the two connections are joined until they close. The
/// connection counts as busy (the client's idle timer does not apply; the
/// tunnel's does) and the lease stays held: an open tunnel is in flight.
pub(super) async fn serve<IO>(
    proxy: &Proxy,
    client: &mut Client<IO>,
    resp: ResponseHead,
    mut conn: Conn,
    lease: Lease,
    busy: Busy,
    activity: &Arc<Activity>,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    client.out.clear();
    client.status = 101;
    h1::write_switching_head(&mut client.out, &resp);
    if let Err(e) = client.io.write_all(&client.out).await {
        tracing::debug!(error = %e, "proxy: the client went away before its upgrade");
        return false;
    }
    client.out.clear();
    let ended = splice(
        &mut client.io,
        &mut client.buf,
        &mut conn.stream,
        &mut conn.buf,
        activity,
        proxy.timeouts.tunnel_idle,
    )
    .await;
    match ended {
        Ok(Ended::Closed { up, down }) => {
            client.sent = down;
            tracing::debug!(
                server = %lease.server.addr, up, down, "proxy: an upgraded connection closed"
            )
        }
        Ok(Ended::Idle) => tracing::debug!(
            server = %lease.server.addr, idle = ?proxy.timeouts.tunnel_idle,
            "proxy: closing an idle upgraded connection"
        ),
        Err(e) => tracing::debug!(
            server = %lease.server.addr, error = %e, "proxy: an upgraded connection failed"
        ),
    }
    drop((busy, lease));
    false
}

/// How a tunnel ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// Both sides closed (or one failed, which closes the other).
    Closed { up: u64, down: u64 },
    /// Nothing moved for the idle timeout.
    Idle,
}

/// Joins `client` and `backend`, first sending on what each had sent
/// past the upgrade (`client_buf` to the backend, `backend_buf` to the
/// client). `activity` is the client connection's: every byte of the
/// tunnel passes through the client's side, so it tells idleness.
pub(super) async fn splice<C, B>(
    client: &mut C,
    client_buf: &mut BytesMut,
    backend: &mut B,
    backend_buf: &mut BytesMut,
    activity: &Activity,
    idle: Duration,
) -> std::io::Result<Ended>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    if !client_buf.is_empty() {
        backend.write_all(client_buf).await?;
        client_buf.clear();
    }
    if !backend_buf.is_empty() {
        client.write_all(backend_buf).await?;
        backend_buf.clear();
    }
    let idle_watch = async {
        let mut seen = activity.progress();
        loop {
            tokio::time::sleep(idle).await;
            let now = activity.progress();
            if now == seen {
                return;
            }
            seen = now;
        }
    };
    tokio::select! {
        moved = tokio::io::copy_bidirectional(client, backend) => {
            let (up, down) = moved?;
            Ok(Ended::Closed { up, down })
        }
        () = idle_watch => Ok(Ended::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, duplex};

    #[tokio::test]
    async fn bytes_move_both_ways_leftovers_first_and_a_close_ends_it() {
        let (mut client, mut client_far) = duplex(64);
        let (mut backend, mut backend_far) = duplex(64);
        let activity = Activity::default();
        let mut client_buf = BytesMut::from(&b"early "[..]);
        let mut backend_buf = BytesMut::from(&b"hello "[..]);
        let far = async {
            client_far.write_all(b"ping").await.unwrap();
            backend_far.write_all(b"pong").await.unwrap();
            let mut up = [0u8; 10];
            backend_far.read_exact(&mut up).await.unwrap();
            let mut down = [0u8; 10];
            client_far.read_exact(&mut down).await.unwrap();
            // The client closes; the backend sees its end, then closes too.
            drop(client_far);
            let mut rest = Vec::new();
            backend_far.read_to_end(&mut rest).await.unwrap();
            drop(backend_far);
            (up, down, rest)
        };
        let (ended, (up, down, rest)) = tokio::join!(
            splice(
                &mut client,
                &mut client_buf,
                &mut backend,
                &mut backend_buf,
                &activity,
                Duration::from_secs(60),
            ),
            far
        );
        assert_eq!(&up, b"early ping");
        assert_eq!(&down, b"hello pong");
        assert!(rest.is_empty());
        assert!(
            matches!(ended.unwrap(), Ended::Closed { up: 4, down: 4 }),
            "the leftovers are not counted twice"
        );
    }

    #[tokio::test]
    async fn a_tunnel_where_nothing_moves_ends_as_idle() {
        let (mut client, _client_far) = duplex(64);
        let (mut backend, _backend_far) = duplex(64);
        let activity = Activity::default();
        let ended = tokio::time::timeout(
            Duration::from_secs(30),
            splice(
                &mut client,
                &mut BytesMut::new(),
                &mut backend,
                &mut BytesMut::new(),
                &activity,
                Duration::from_millis(50),
            ),
        )
        .await
        .expect("ends within its patience");
        assert!(matches!(ended.unwrap(), Ended::Idle));
    }
}
