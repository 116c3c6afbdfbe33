//! A response head from a backend: its framing (which depends on the
//! request too) and whether the connection can serve another request.

use super::{Fields, Framing, Invalid, MAX_HEAD, MAX_HEADERS, header_ranges, offsets, split_head};
use bytes::BytesMut;
use std::mem::MaybeUninit;
use std::ops::Range;

/// A response head from a backend.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    reason: Range<u32>,
    pub fields: Fields,
    pub framing: Framing,
    /// Whether the backend keeps the connection after this response.
    pub keep_alive: bool,
    /// Transfer codings other than a final `chunked` (`gzip` of
    /// `Transfer-Encoding: gzip, chunked`), as sent, to pass on: the proxy
    /// takes off the chunked coding alone and chunks the body again.
    pub codings: Option<String>,
}

impl ResponseHead {
    pub fn reason(&self) -> &[u8] {
        &self.fields.bytes[self.reason.start as usize..self.reason.end as usize]
    }

    /// 1xx: a response before the final one.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// Parses a response head at the start of `buf`, for a request that was
/// `HEAD` or not. `Ok(None)`: incomplete. On success the head's bytes are
/// split off `buf`.
pub fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, Invalid> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(Invalid::new(502, "the response head is too large"));
            }
            return Ok(None);
        }
        Err(e) => return Err(Invalid::new(502, format!("malformed response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let minor = resp.version.unwrap_or(1);
    let base = buf.as_ptr() as usize;
    let reason = offsets(base, resp.reason.unwrap_or("").as_bytes());
    let parsed = header_ranges(base, resp.headers);
    let fields = split_head(buf, len, parsed);
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let mut codings = None;
    let framing = if no_body {
        Framing::Empty
    } else {
        match fields.framing() {
            Ok(Some(f)) => f,
            Ok(None) => Framing::Close,
            // Codings besides chunked (RFC 9112 §6.3): chunked last
            // delimits the body, else it runs until the close; the other
            // codings go on to the client.
            Err(e) if e.status == 501 => {
                if fields.get(b"content-length").is_some() {
                    return Err(Invalid::new(
                        502,
                        "both Transfer-Encoding and Content-Length are set",
                    ));
                }
                let mut all: Vec<&[u8]> = fields
                    .values(b"transfer-encoding")
                    .flat_map(super::tokens)
                    .collect();
                let chunked = all
                    .last()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
                if chunked {
                    all.pop();
                }
                if all.iter().any(|c| c.eq_ignore_ascii_case(b"chunked")) {
                    return Err(Invalid::new(
                        502,
                        "the response's Transfer-Encoding has chunked before another coding",
                    ));
                }
                codings = Some(String::from_utf8_lossy(&all.join(&b", "[..])).into_owned());
                if chunked {
                    Framing::Chunked
                } else {
                    Framing::Close
                }
            }
            Err(e) => return Err(Invalid::new(502, e.why)),
        }
    };
    let keep_alive = framing != Framing::Close
        && if minor == 0 {
            fields.connection_has(b"keep-alive")
        } else {
            !fields.connection_has(b"close")
        };
    Ok(Some(ResponseHead {
        status,
        reason,
        fields,
        framing,
        keep_alive,
        codings,
    }))
}
