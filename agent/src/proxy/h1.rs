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

use bytes::{Buf, Bytes, BytesMut};
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::ops::Range;

/// A request or response head larger than this is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// Header lines per head, at most.
pub const MAX_HEADERS: usize = 128;
/// A chunk-size line (extensions included) longer than this is refused.
const MAX_CHUNK_LINE: usize = 4096;
/// Trailer section of a chunked body, at most (it is read and dropped).
const MAX_TRAILERS: usize = 64 * 1024;

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

/// A request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    method: Range<u32>,
    /// The target's parts, found once: the authority of an absolute
    /// target, the path, and the query (after `?`).
    authority: Option<Range<u32>>,
    path: Range<u32>,
    query: Option<Range<u32>>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub fields: Fields,
    pub framing: Framing,
    /// Whether the client wants the connection kept after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` with a body to come.
    pub expects_continue: bool,
}

impl RequestHead {
    fn str(&self, r: &Range<u32>) -> &str {
        // httparse checked the method and target are ASCII.
        std::str::from_utf8(&self.fields.bytes[r.start as usize..r.end as usize]).unwrap_or("")
    }

    pub fn method(&self) -> &str {
        self.str(&self.method)
    }

    fn method_is(&self, m: &[u8]) -> bool {
        &self.fields.bytes[self.method.start as usize..self.method.end as usize] == m
    }

    /// The target's authority when it is in absolute form
    /// (`http://host:port/path`).
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_ref().map(|r| self.str(r))
    }

    /// Path and query: the target in origin-form (`/` for an absolute
    /// target with no path).
    pub fn path_and_query(&self) -> &str {
        let end = self.query.as_ref().map_or(self.path.end, |q| q.end);
        match self.str(&(self.path.start..end)) {
            "" => "/",
            pq => pq,
        }
    }

    /// The path alone (no query).
    pub fn path(&self) -> &str {
        match self.str(&self.path) {
            "" => "/",
            p => p,
        }
    }

    pub fn query(&self) -> Option<&str> {
        self.query.as_ref().map(|r| self.str(r))
    }

    /// `Host`, else the authority of an absolute target.
    pub fn host(&self) -> Option<&[u8]> {
        self.fields
            .get(b"host")
            .or_else(|| self.authority().map(str::as_bytes))
    }

    /// Whether the method is one whose request may be sent twice.
    pub fn idempotent(&self) -> bool {
        [&b"GET"[..], b"HEAD", b"OPTIONS", b"PUT", b"DELETE"]
            .iter()
            .any(|m| self.method_is(m))
    }

    pub fn is_head(&self) -> bool {
        self.method_is(b"HEAD")
    }
}

/// The parts of a request target at `start` (offsets into the head):
/// authority (absolute form), path, query.
#[allow(clippy::type_complexity)]
fn split_target(target: &str, start: u32) -> (Option<Range<u32>>, Range<u32>, Option<Range<u32>>) {
    let at = |from: usize, to: usize| start + from as u32..start + to as u32;
    let scheme = if target.starts_with("http://") {
        7
    } else if target.starts_with("https://") {
        8
    } else {
        0
    };
    let rest = &target[scheme..];
    let authority_len = if scheme > 0 {
        rest.find(['/', '?']).unwrap_or(rest.len())
    } else {
        0
    };
    let authority = (scheme > 0).then(|| at(scheme, scheme + authority_len));
    let path_start = scheme + authority_len;
    let (path_end, query) = match target[path_start..].find('?') {
        Some(i) => (path_start + i, Some(at(path_start + i + 1, target.len()))),
        None => (target.len(), None),
    };
    (authority, at(path_start, path_end), query)
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete.
/// On success the head's bytes are split off `buf`.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, Invalid> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(Invalid::new(431, "the request head is too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Invalid::new(431, "too many header fields"));
        }
        Err(e) => return Err(Invalid::new(400, format!("malformed request head: {e}"))),
    };
    if len > MAX_HEAD {
        return Err(Invalid::new(431, "the request head is too large"));
    }
    let minor = req.version.unwrap_or(1);
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = (s.as_ptr() as usize - base) as u32;
        start..start + s.len() as u32
    };
    let method = range(method.as_bytes());
    let (authority, path, query) = split_target(target, range(target.as_bytes()).start);
    let parsed: Vec<(Range<u32>, Range<u32>)> = req
        .headers
        .iter()
        .map(|h| (range(h.name.as_bytes()), range(h.value)))
        .collect();
    // The ranges stay valid: the split keeps the bytes where they are.
    let bytes = buf.split_to(len).freeze();
    let fields = Fields::from_ranges(bytes, parsed);
    let framing = fields.framing()?.unwrap_or(Framing::Empty);
    let keep_alive = if minor == 0 {
        fields.connection_has(b"keep-alive")
    } else {
        !fields.connection_has(b"close")
    };
    let expects_continue = framing != Framing::Empty
        && minor == 1
        && fields
            .values(b"expect")
            .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
    Ok(Some(RequestHead {
        method,
        authority,
        path,
        query,
        minor,
        fields,
        framing,
        keep_alive,
        expects_continue,
    }))
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

/// A response head from a backend.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    reason: Range<u32>,
    pub fields: Fields,
    pub framing: Framing,
    /// Whether the backend keeps the connection after this response.
    pub keep_alive: bool,
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
    let range = |s: &[u8]| {
        let start = (s.as_ptr() as usize - base) as u32;
        start..start + s.len() as u32
    };
    let reason = range(resp.reason.unwrap_or("").as_bytes());
    let parsed: Vec<(Range<u32>, Range<u32>)> = resp
        .headers
        .iter()
        .map(|h| (range(h.name.as_bytes()), range(h.value)))
        .collect();
    let bytes = buf.split_to(len).freeze();
    let fields = Fields::from_ranges(bytes, parsed);
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Empty
    } else {
        match fields.framing() {
            Ok(Some(f)) => f,
            Ok(None) => Framing::Close,
            // A coding other than chunked: read until the close (RFC 9112
            // §6.3); conflicting lengths are the backend's error.
            Err(e) if e.status == 501 => Framing::Close,
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
    }))
}

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
/// the hop-by-hop ones, `Host` kept (or taken from an absolute target),
/// `X-Forwarded-For` appended to, `X-Forwarded-Proto` and
/// `X-Forwarded-Host` set, and the body's framing.
pub fn write_request_head(out: &mut Vec<u8>, req: &RequestHead, fwd: &Forwarded<'_>) {
    out.extend_from_slice(req.method().as_bytes());
    out.push(b' ');
    out.extend_from_slice(fwd.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut prior_for: Option<&[u8]> = None;
    let mut has_host = false;
    for (name, value) in req.fields.iter() {
        if req.fields.dropped(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"x-forwarded-host")
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
    framing_line(out, fwd.framing);
    out.extend_from_slice(b"\r\n");
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
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
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
struct StrOut<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StrOut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Starts a chunk of `len` bytes in the chunked coding.
pub fn chunk_start(out: &mut Vec<u8>, len: usize) {
    write!(StrOut(out), "{len:x}\r\n").expect("writing to a Vec");
}

/// The last chunk and the end of the chunked body.
pub const CHUNKED_END: &[u8] = b"0\r\n\r\n";

pub fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Reads the chunked coding (RFC 9112 §7.1) out of a buffer, a piece at a
/// time: the chunk framing is consumed here, the data is left for the
/// caller to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Trailer bytes seen so far.
    trailers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Bytes of data left in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to an empty one.
    Trailers,
    Done,
}

/// What the decoder found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// This many bytes at the front of the buffer are data: take them.
    Data(usize),
    /// More input is needed.
    Need,
    /// The body ended (trailers consumed).
    End,
}

impl ChunkedDecoder {
    /// Consumes framing from the front of `buf` until data, the end, or
    /// the end of `buf`. Data reported must be removed from `buf` by the
    /// caller before the next call.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Chunk, String> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Chunk::End),
                ChunkState::Data(0) => self.state = ChunkState::DataEnd,
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Chunk::Need);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.state = ChunkState::Data(left - n as u64);
                    return Ok(Chunk::Data(n));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::Need);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("a chunk's data is not followed by CRLF".into());
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Size => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err("a chunk-size line is too long".into());
                        }
                        return Ok(Chunk::Need);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Trailers => {
                    let Some(end) = find_crlf(buf) else {
                        if self.trailers + buf.len() > MAX_TRAILERS {
                            return Err("the trailer section is too large".into());
                        }
                        return Ok(Chunk::Need);
                    };
                    self.trailers += end + 2;
                    if self.trailers > MAX_TRAILERS {
                        return Err("the trailer section is too large".into());
                    }
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// The size of a chunk-size line (`1a;ext=1`), extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, String> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "bad chunk size {:?}",
            String::from_utf8_lossy(&line[..line.len().min(32)])
        ));
    }
    let s = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
    u64::from_str_radix(s, 16).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
