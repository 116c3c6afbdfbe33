//! A request head from a client: its target's parts, its framing, and
//! whether the connection stays open after it.

use super::{Fields, Framing, Invalid, MAX_HEAD, MAX_HEADERS, header_ranges, offsets, split_head};
use bytes::BytesMut;
use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::ops::Range;

/// A request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    method: Range<u32>,
    /// The request target as it came.
    target: Range<u32>,
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
    /// `Connection: upgrade` with an `Upgrade` (WebSocket and the like):
    /// HTTP/1.1, no body. The proxy passes both on and, if the backend
    /// switches (101), joins the two connections.
    pub upgrade: bool,
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

    /// The request target as it came (for the access log).
    pub fn target(&self) -> &str {
        self.str(&self.target)
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

    /// The path and query sent upstream: origin-form, with the path
    /// replaced by `rewrite` when a rule rewrote it (the query string is
    /// kept).
    pub fn upstream_target(&self, rewrite: Option<&str>) -> Result<Cow<'_, str>, String> {
        let Some(path) = rewrite else {
            return Ok(Cow::Borrowed(self.path_and_query()));
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("the rewritten path {path:?} is not valid"));
        }
        Ok(match self.query() {
            Some(q) => Cow::Owned(format!("{path}?{q}")),
            None => Cow::Owned(path.to_owned()),
        })
    }

    /// The authority of an absolute target, else `Host`: a target in
    /// absolute form names the host, whatever `Host` says (RFC 9112
    /// §3.2.2), for routing and for the `Host` sent upstream alike.
    pub fn host(&self) -> Option<&[u8]> {
        self.authority()
            .map(str::as_bytes)
            .or_else(|| self.fields.get(b"host"))
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
    let method = offsets(base, method.as_bytes());
    let target_range = offsets(base, target.as_bytes());
    let (authority, path, query) = split_target(target, target_range.start);
    let parsed = header_ranges(base, req.headers);
    let fields = split_head(buf, len, parsed);
    if fields.values(b"host").nth(1).is_some() {
        // Which one routes and which one the backend reads could differ.
        return Err(Invalid::new(400, "more than one Host header"));
    }
    if minor == 0 && fields.get(b"transfer-encoding").is_some() {
        // HTTP/1.0 has no transfer codings: a recipient could read the
        // body by Content-Length or until the close where the proxy reads
        // chunks (RFC 9112 §6.1: faulty framing; nginx answers 400 too).
        return Err(Invalid::new(
            400,
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
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
    let upgrade = minor == 1
        && framing == Framing::Empty
        && fields.connection_has(b"upgrade")
        && fields
            .get(b"upgrade")
            .is_some_and(|v| !v.trim_ascii().is_empty());
    Ok(Some(RequestHead {
        method,
        target: target_range,
        authority,
        path,
        query,
        minor,
        fields,
        framing,
        keep_alive,
        expects_continue,
        upgrade,
    }))
}
