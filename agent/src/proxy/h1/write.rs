//! The heads the proxy writes: the request sent upstream, the response
//! sent to the client, and the proxy's own short answers.

use super::{Framing, RequestHead, ResponseHead};
use std::fmt::Write as _;

/// What the proxy adds to a forwarded request.
pub struct Forwarded<'a> {
    /// Path and query to send.
    pub path_and_query: &'a str,
    /// The client's address, for `X-Forwarded-For`.
    pub client_ip: &'a str,
    /// How the body is sent upstream.
    pub framing: Framing,
}

/// Writes the request head sent upstream: the client's header lines minus
/// the hop-by-hop ones, `Host` kept (or, for an absolute target, replaced
/// by its authority),
/// `X-Forwarded-For` appended to, `X-Forwarded-Proto` and
/// `X-Forwarded-Host` set, and the body's framing.
pub fn write_request_head(out: &mut Vec<u8>, req: &RequestHead, fwd: &Forwarded<'_>) {
    out.extend_from_slice(req.method().as_bytes());
    out.push(b' ');
    out.extend_from_slice(fwd.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut prior_for: Option<&[u8]> = None;
    let mut has_host = false;
    let absolute = req.authority().is_some();
    for (name, value) in req.fields.iter() {
        if req.fields.dropped(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"x-forwarded-host")
            || (absolute && name.eq_ignore_ascii_case(b"host"))
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            // Joined into one line below, the client's address last.
            if prior_for.is_none() {
                prior_for = Some(value);
                continue;
            }
        }
        has_host |= name.eq_ignore_ascii_case(b"host");
        line(out, name, value);
    }
    let host = req.host();
    if !has_host && let Some(h) = host {
        line(out, b"host", h);
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(p) = prior_for {
        out.extend_from_slice(p);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fwd.client_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
    if let Some(h) = host {
        line(out, b"x-forwarded-host", h);
    }
    if req.upgrade {
        for v in req.fields.values(b"upgrade") {
            line(out, b"upgrade", v);
        }
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    framing_line(out, fwd.framing);
    out.extend_from_slice(b"\r\n");
}

/// Writes a backend's `101 Switching Protocols` to the client: its lines
/// minus the hop-by-hop ones, then its `Upgrade` and `Connection: upgrade`.
pub fn write_switching_head(out: &mut Vec<u8>, resp: &ResponseHead) {
    out.extend_from_slice(b"HTTP/1.1 101 ");
    out.extend_from_slice(resp.reason());
    out.extend_from_slice(b"\r\n");
    for (name, value) in resp.fields.iter() {
        if !resp.fields.dropped(name) {
            line(out, name, value);
        }
    }
    for v in resp.fields.values(b"upgrade") {
        line(out, b"upgrade", v);
    }
    out.extend_from_slice(b"connection: upgrade\r\n\r\n");
}

/// How a response is delimited towards the client, and whether the client
/// connection stays open after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub framing: Framing,
    pub keep_alive: bool,
    /// The client speaks HTTP/1.0: `keep-alive` must be said.
    pub http10: bool,
}

/// Writes the response head sent to the client: the backend's status and
/// header lines minus the hop-by-hop ones, with the framing and
/// `Connection` of `how`.
pub fn write_response_head(out: &mut Vec<u8>, resp: &ResponseHead, how: Outgoing) {
    write!(StrOut(out), "HTTP/1.1 {} ", resp.status).expect("writing to a Vec");
    out.extend_from_slice(resp.reason());
    out.extend_from_slice(b"\r\n");
    for (name, value) in resp.fields.iter() {
        if resp.fields.dropped(name) {
            continue;
        }
        // A length is passed on as it came when the body keeps it (or for
        // HEAD, 204 and 304, where it describes what is not sent).
        if name.eq_ignore_ascii_case(b"content-length")
            && !matches!(how.framing, Framing::Length(_) | Framing::Empty)
        {
            continue;
        }
        line(out, name, value);
    }
    if how.framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: ");
        if let Some(codings) = &resp.codings {
            out.extend_from_slice(codings.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"chunked\r\n");
    }
    connection_line(out, how);
    out.extend_from_slice(b"\r\n");
}

/// Writes a response the proxy makes itself.
pub fn write_local(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body_len: usize,
    how: Outgoing,
) {
    write!(
        StrOut(out),
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {body_len}\r\n",
        reason(status)
    )
    .expect("writing to a Vec");
    for (name, value) in extra {
        line(out, name.as_bytes(), value.as_bytes());
    }
    connection_line(out, how);
    out.extend_from_slice(b"\r\n");
}

fn connection_line(out: &mut Vec<u8>, how: Outgoing) {
    if !how.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if how.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
}

fn framing_line(out: &mut Vec<u8>, framing: Framing) {
    match framing {
        Framing::Empty | Framing::Close => {}
        Framing::Length(n) => {
            write!(StrOut(out), "content-length: {n}\r\n").expect("writing to a Vec")
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `fmt::Write` into a byte vector.
pub(super) struct StrOut<'a>(pub &'a mut Vec<u8>);

impl std::fmt::Write for StrOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}
