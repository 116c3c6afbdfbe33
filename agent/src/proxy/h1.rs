//! HTTP/1.1 on the wire, as the proxy needs it (RFC 9112): request and
//! response heads parsed with `httparse` and kept as the bytes they came
//! in, the framing of a message body, the chunked coding, and the heads
//! the proxy writes.
//!
//! The proxy forwards heads by copying header lines from the bytes it read,
//! minus the hop-by-hop ones, plus its own; nothing is parsed into a map.
//!
//! Framing is strict where a lenient reading would let two parties
//! disagree about where a message ends (request smuggling): a request with
//! both `Transfer-Encoding` and `Content-Length`, with differing
//! `Content-Length`s, or with a transfer coding other than `chunked` is
//! refused, as nginx refuses it.

mod chunked;
mod request;
mod response;
mod write;

pub use chunked::{CHUNKED_END, Chunk, ChunkedDecoder, chunk_start};
pub use request::{RequestHead, parse_request};
pub use response::{ResponseHead, parse_response};
pub use write::{
    Forwarded, Outgoing, write_local, write_request_head, write_response_head, write_switching_head,
};

use bytes::Bytes;
use std::ops::Range;

/// A request or response head larger than this is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// Header lines per head, at most.
pub const MAX_HEADERS: usize = 128;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// A head that cannot be taken: the status to answer with (for a request)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub status: u16,
    pub why: String,
}

impl Invalid {
    fn new(status: u16, why: impl Into<String>) -> Invalid {
        Invalid {
            status,
            why: why.into(),
        }
    }
}

/// One header line, as ranges into the head's bytes.
#[derive(Debug, Clone)]
struct Field {
    name: Range<u32>,
    value: Range<u32>,
}

/// The headers of a head, over the bytes they were parsed from.
#[derive(Debug, Clone)]
pub struct Fields {
    bytes: Bytes,
    fields: Vec<Field>,
    /// Header names listed in `Connection` besides `close` and
    /// `keep-alive`, lower-cased (dropped when forwarding).
    named: Vec<Box<[u8]>>,
}

/// Which headers a hop removes, whatever `Connection` says (RFC 9110
/// §7.6.1), plus those the proxy sets itself.
fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

impl Fields {
    /// Every header line, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|f| {
            (
                &self.bytes[f.name.start as usize..f.name.end as usize],
                &self.bytes[f.value.start as usize..f.value.end as usize],
            )
        })
    }

    /// The values of header `name` (any case), in order.
    pub fn values<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn get<'a>(&'a self, name: &'a [u8]) -> Option<&'a [u8]> {
        self.values(name).next()
    }

    /// Whether a hop must not pass this header on.
    fn dropped(&self, name: &[u8]) -> bool {
        is_hop_by_hop(name) || self.named.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Whether `Connection` lists `token`.
    fn connection_has(&self, token: &[u8]) -> bool {
        self.values(b"connection")
            .flat_map(tokens)
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    /// The body's framing from `Transfer-Encoding` and `Content-Length`:
    /// `Ok(None)` when neither is there.
    fn framing(&self) -> Result<Option<Framing>, Invalid> {
        let mut codings = self
            .values(b"transfer-encoding")
            .flat_map(tokens)
            .peekable();
        if codings.peek().is_some() {
            let all: Vec<&[u8]> = codings.collect();
            if all.len() != 1 || !all[0].eq_ignore_ascii_case(b"chunked") {
                return Err(Invalid::new(
                    501,
                    format!(
                        "transfer coding {:?} is not supported (only chunked)",
                        String::from_utf8_lossy(&all.join(&b", "[..]))
                    ),
                ));
            }
            if self.get(b"content-length").is_some() {
                return Err(Invalid::new(
                    400,
                    "both Transfer-Encoding and Content-Length are set",
                ));
            }
            return Ok(Some(Framing::Chunked));
        }
        let mut length = None;
        for v in self.values(b"content-length") {
            for token in v.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                let n = parse_length(token).ok_or_else(|| {
                    Invalid::new(
                        400,
                        format!(
                            "Content-Length {:?} is not a number",
                            String::from_utf8_lossy(v)
                        ),
                    )
                })?;
                if length.is_some_and(|l| l != n) {
                    return Err(Invalid::new(400, "Content-Length values differ"));
                }
                length = Some(n);
            }
        }
        Ok(length.map(|n| {
            if n == 0 {
                Framing::Empty
            } else {
                Framing::Length(n)
            }
        }))
    }
}

impl cluster_balancer::Headers for Fields {
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.values(name.as_bytes()).any(f)
    }
}

/// The comma-separated tokens of a header value, trimmed, empty ones left
/// out.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

impl Fields {
    /// Header lines given as (name, value) ranges into `bytes`.
    fn from_ranges(bytes: Bytes, parsed: Vec<(Range<u32>, Range<u32>)>) -> Fields {
        let mut f = Fields {
            bytes,
            fields: parsed
                .into_iter()
                .map(|(name, value)| Field { name, value })
                .collect(),
            named: Vec::new(),
        };
        let named = f
            .values(b"connection")
            .flat_map(tokens)
            .filter(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
            .map(|t| t.to_ascii_lowercase().into_boxed_slice())
            .collect();
        f.named = named;
        f
    }
}

/// Where the header lines httparse found lie in the buffer that starts at
/// `base`.
fn header_ranges(base: usize, headers: &[httparse::Header<'_>]) -> Vec<(Range<u32>, Range<u32>)> {
    headers
        .iter()
        .map(|h| (offsets(base, h.name.as_bytes()), offsets(base, h.value)))
        .collect()
}

/// Splits the head's `len` bytes off `buf` to hold its header lines (the
/// split keeps the bytes where they are, so the ranges stay valid).
fn split_head(
    buf: &mut bytes::BytesMut,
    len: usize,
    parsed: Vec<(Range<u32>, Range<u32>)>,
) -> Fields {
    Fields::from_ranges(buf.split_to(len).freeze(), parsed)
}

/// Where `s` lies in the buffer that starts at `base`.
fn offsets(base: usize, s: &[u8]) -> Range<u32> {
    let start = (s.as_ptr() as usize - base) as u32;
    start..start + s.len() as u32
}

#[cfg(test)]
mod tests;
