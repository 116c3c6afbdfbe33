//! The two bodies the proxy moves: [`UpBody`], a request body on its way
//! to a backend (empty, held in memory so it can be sent again, or
//! streamed once), and [`ProxyBody`], a response on its way to the client
//! (the proxy's own short answers, or a backend's body streamed through
//! with the request's [`Lease`] riding along until it ends).

use super::backend::Lease;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A request body sent upstream.
pub(super) enum UpBody {
    Empty,
    /// Read whole before sending, so a retry can send it again.
    Full(Option<Bytes>),
    /// Streamed from the client: can be sent once.
    Stream(Incoming),
}

impl UpBody {
    /// Another copy to send, when the body is held.
    pub fn replay(&self) -> Option<UpBody> {
        match self {
            UpBody::Empty => Some(UpBody::Empty),
            UpBody::Full(b) => Some(UpBody::Full(b.clone())),
            UpBody::Stream(_) => None,
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpBody::Empty => Poll::Ready(None),
            UpBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Empty => true,
            UpBody::Full(b) => b.is_none(),
            UpBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Empty => SizeHint::with_exact(0),
            UpBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpBody::Stream(s) => s.size_hint(),
        }
    }
}

/// A response body sent to the client.
pub(super) struct ProxyBody(Kind);

enum Kind {
    Local(Option<Bytes>),
    /// `lease` is `None` once the body has ended.
    Upstream {
        body: Incoming,
        lease: Option<Lease>,
    },
}

impl ProxyBody {
    pub(super) fn local(text: impl Into<Bytes>) -> ProxyBody {
        let b: Bytes = text.into();
        ProxyBody(Kind::Local((!b.is_empty()).then_some(b)))
    }

    pub(super) fn upstream(body: Incoming, lease: Lease) -> ProxyBody {
        ProxyBody(Kind::Upstream {
            body,
            lease: Some(lease),
        })
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().0 {
            Kind::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { body, lease } => {
                // The backend connection's I/O runs here, as the client
                // connection pulls the body.
                if let Some(conn) = lease.as_mut().and_then(|l| l.conn.as_mut()) {
                    conn.drive(cx);
                }
                let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
                match &frame {
                    None => {
                        if let Some(l) = lease.take() {
                            l.finish();
                        }
                    }
                    Some(Ok(_)) if body.is_end_stream() => {
                        if let Some(l) = lease.take() {
                            l.finish();
                        }
                    }
                    Some(Ok(_)) => {}
                    // Cut short: the lease's drop closes the connection.
                    Some(Err(_)) => *lease = None,
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Local(b) => b.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Local(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // The server may stop polling as soon as `is_end_stream` says so
        // (an empty or exactly-sized body): the connection is still good.
        if let Kind::Upstream { body, lease } = &mut self.0
            && body.is_end_stream()
            && let Some(l) = lease.take()
        {
            l.finish();
        }
    }
}
