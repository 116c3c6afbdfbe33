//! The wire format's rules, table by table: framing and smuggling shapes,
//! keep-alive, targets, the heads written, and the chunked coding fed in
//! pieces of every size.

use super::chunked::MAX_CHUNK_LINE;
use super::*;
use bytes::{Buf, BytesMut};

fn request(raw: &str) -> Result<Option<RequestHead>, Invalid> {
    parse_request(&mut BytesMut::from(raw))
}

fn head(raw: &str) -> RequestHead {
    request(raw).unwrap().expect("a complete head")
}

fn response(raw: &str, head_request: bool) -> Result<Option<ResponseHead>, Invalid> {
    parse_response(&mut BytesMut::from(raw), head_request)
}

/// The head sent upstream for `h`, as text.
fn forwarded(h: &RequestHead, path_and_query: &str, client_ip: &str, framing: Framing) -> String {
    let mut out = Vec::new();
    let fwd = Forwarded {
        path_and_query,
        client_ip,
        framing,
    };
    write_request_head(&mut out, h, &fwd);
    String::from_utf8(out).unwrap()
}

/// The head written to the client for `r`, as text.
fn to_client(r: &ResponseHead, framing: Framing, keep_alive: bool, http10: bool) -> String {
    let mut out = Vec::new();
    let how = Outgoing {
        framing,
        keep_alive,
        http10,
    };
    write_response_head(&mut out, r, how);
    String::from_utf8(out).unwrap()
}

#[test]
fn a_head_is_split_off_the_buffer_and_what_follows_stays() {
    let mut buf = BytesMut::from("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /next");
    let h = parse_request(&mut buf).unwrap().unwrap();
    assert_eq!(
        (h.method(), h.path(), h.query()),
        ("GET", "/a", Some("b=1"))
    );
    assert_eq!(&buf[..], b"GET /next");
    assert!(parse_request(&mut buf).unwrap().is_none(), "incomplete");
}

#[test]
fn request_framing_follows_rfc_9112_and_refuses_ambiguity() {
    for (raw, want) in [
        ("GET / HTTP/1.1\r\n\r\n", Ok(Framing::Empty)),
        (
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            Ok(Framing::Empty),
        ),
        (
            "POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n",
            Ok(Framing::Length(12)),
        ),
        (
            "POST / HTTP/1.1\r\ncontent-length: 12\r\nContent-Length: 12\r\n\r\n",
            Ok(Framing::Length(12)),
        ),
        (
            "POST / HTTP/1.1\r\ncontent-length: 7, 7\r\n\r\n",
            Ok(Framing::Length(7)),
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
            Ok(Framing::Chunked),
        ),
        // Smuggling shapes.
        (
            "POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
            Err(400),
        ),
        (
            "POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            Err(400),
        ),
        ("POST / HTTP/1.1\r\ncontent-length: +5\r\n\r\n", Err(400)),
        ("POST / HTTP/1.1\r\ncontent-length: 0x10\r\n\r\n", Err(400)),
        (
            "POST / HTTP/1.1\r\ncontent-length: 99999999999999999999\r\n\r\n",
            Err(400),
        ),
        (
            "POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Err(501),
        ),
        (
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            Err(501),
        ),
        (
            "POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n",
            Err(501),
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", Err(400)),
        // HTTP/1.0 has no transfer codings: faulty framing (RFC 9112 §6.1).
        (
            "POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
            Err(400),
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\ncontent-length: 3\r\n\r\n",
            Err(400),
        ),
        // Not HTTP/1.x at all, or a folded header line.
        ("GET / HTTP/2.0\r\n\r\n", Err(400)),
        ("GET / HTTP/1.1\r\nx: a\r\n b\r\n\r\n", Err(400)),
        ("GET /a b HTTP/1.1\r\n\r\n", Err(400)),
    ] {
        let got = request(raw)
            .map(|h| h.unwrap().framing)
            .map_err(|e| e.status);
        assert_eq!(got, want, "{raw:?}");
    }
}

#[test]
fn oversized_heads_are_refused_with_431() {
    let big = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(
        request(&big).unwrap_err().status,
        431,
        "incomplete and too big"
    );
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..=MAX_HEADERS {
        many.push_str(&format!("x-{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(request(&many).unwrap_err().status, 431);
}

#[test]
fn keep_alive_and_expect_follow_the_version() {
    for (raw, keep, expect) in [
        ("GET / HTTP/1.1\r\n\r\n", true, false),
        ("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false, false),
        ("GET / HTTP/1.0\r\n\r\n", false, false),
        (
            "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n",
            true,
            false,
        ),
        (
            "PUT / HTTP/1.1\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n",
            true,
            true,
        ),
        (
            "GET / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
            true,
            false,
        ),
    ] {
        let h = head(raw);
        assert_eq!(
            (h.keep_alive, h.expects_continue),
            (keep, expect),
            "{raw:?}"
        );
    }
}

#[test]
fn absolute_targets_give_their_authority_and_path() {
    let h = head("GET http://shop.example:8080/a/b?x=1 HTTP/1.1\r\n\r\n");
    assert_eq!(h.authority(), Some("shop.example:8080"));
    assert_eq!(h.path_and_query(), "/a/b?x=1");
    assert_eq!(h.host(), Some(&b"shop.example:8080"[..]));
    // The target's authority wins over Host (RFC 9112 §3.2.2).
    let h = head("GET http://shop.example HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(
        (h.path_and_query(), h.host()),
        ("/", Some(&b"shop.example"[..]))
    );
    let h = head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((h.path(), h.authority()), ("*", None));
}

#[test]
fn the_forwarded_head_drops_hop_by_hop_and_adds_x_forwarded() {
    let h = head(
        "POST /up HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Connection: keep-alive, X-Secret\r\n\
         Keep-Alive: timeout=5\r\n\
         X-Secret: 1\r\n\
         TE: trailers\r\n\
         Upgrade: websocket\r\n\
         Proxy-Connection: close\r\n\
         Expect: 100-continue\r\n\
         X-Forwarded-For: 10.0.0.9\r\n\
         X-Forwarded-For: 10.0.0.10\r\n\
         X-Forwarded-Proto: https\r\n\
         Transfer-Encoding: chunked\r\n\
         Content-Type: text/plain\r\n\r\n",
    );
    assert_eq!(
        forwarded(&h, "/rewritten?q=1", "127.0.0.1", Framing::Chunked),
        "POST /rewritten?q=1 HTTP/1.1\r\n\
         Host: shop.example\r\n\
         X-Forwarded-For: 10.0.0.10\r\n\
         Content-Type: text/plain\r\n\
         x-forwarded-for: 10.0.0.9, 127.0.0.1\r\n\
         x-forwarded-proto: http\r\n\
         x-forwarded-host: shop.example\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );

    // An absolute target: its authority is the Host sent, whatever Host
    // the client sent beside it.
    let h =
        head("GET http://shop.example/x HTTP/1.1\r\nHost: admin.internal\r\nAccept: */*\r\n\r\n");
    assert_eq!(
        forwarded(&h, h.path_and_query(), "::1", Framing::Empty),
        "GET /x HTTP/1.1\r\nAccept: */*\r\nhost: shop.example\r\nx-forwarded-for: ::1\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: shop.example\r\n\r\n"
    );

    // No Host: the absolute target's authority becomes it.
    let h = head("GET http://a.example:8080/x HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(
        forwarded(&h, h.path_and_query(), "::1", Framing::Length(3)),
        "GET /x HTTP/1.1\r\nhost: a.example:8080\r\nx-forwarded-for: ::1\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: a.example:8080\r\ncontent-length: 3\r\n\r\n"
    );
}

#[test]
fn response_framing_and_reuse() {
    for (raw, head_request, framing, keep) in [
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n",
            false,
            Framing::Length(3),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n",
            true,
            Framing::Empty,
            true,
        ),
        (
            "HTTP/1.1 204 No Content\r\n\r\n",
            false,
            Framing::Empty,
            true,
        ),
        (
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
            false,
            Framing::Empty,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            false,
            Framing::Chunked,
            true,
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close, false),
        (
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
            false,
            Framing::Length(1),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
            false,
            Framing::Length(1),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n",
            false,
            Framing::Length(1),
            true,
        ),
    ] {
        let r = response(raw, head_request).unwrap().unwrap();
        assert_eq!((r.framing, r.keep_alive), (framing, keep), "{raw:?}");
        assert_eq!(r.codings, None, "{raw:?}");
    }
    // Codings besides chunked: a final chunked delimits the body, else the
    // close does; the other codings are kept to pass on (RFC 9112 §6.3).
    for (raw, framing, keep, codings) in [
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            Framing::Chunked,
            true,
            "gzip",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: Chunked\r\n\r\n",
            Framing::Chunked,
            true,
            "gzip",
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            Framing::Close,
            false,
            "gzip",
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: deflate,gzip\r\n\r\n",
            Framing::Close,
            false,
            "deflate, gzip",
        ),
    ] {
        let r = response(raw, false).unwrap().unwrap();
        assert_eq!(
            (r.framing, r.keep_alive, r.codings.as_deref()),
            (framing, keep, Some(codings)),
            "{raw:?}"
        );
    }
    for raw in [
        "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",
    ] {
        assert_eq!(response(raw, false).unwrap_err().status, 502, "{raw:?}");
    }
}

#[test]
fn the_response_head_keeps_the_backends_lines_and_states_its_own_framing() {
    let r = response(
        "HTTP/1.1 201 Made It\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n\
         Transfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        to_client(&r, Framing::Chunked, true, false),
        "HTTP/1.1 201 Made It\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    // A coding kept from the backend goes before the proxy's own chunked.
    let r = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Type: text/plain\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        to_client(&r, Framing::Chunked, true, false),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
    );
    let r = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false)
        .unwrap()
        .unwrap();
    assert_eq!(
        to_client(&r, Framing::Length(2), false, true),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: close\r\n\r\n"
    );
}

/// Decodes `input` fed in pieces of `step` bytes; the data, and what was
/// left after the body.
fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut d = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut fed = 0;
    loop {
        match d.step(&mut buf)? {
            Chunk::Data(n) => {
                data.extend_from_slice(&buf[..n]);
                buf.advance(n);
            }
            Chunk::End => return Ok((data, buf.to_vec())),
            Chunk::Need => {
                if fed == input.len() {
                    return Err("input ended".into());
                }
                let n = step.min(input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
        }
    }
}

#[test]
fn chunked_bodies_decode_whatever_the_read_sizes() {
    let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, 64] {
        let (data, rest) = decode(body, step).unwrap();
        assert_eq!(data, b"hello, world", "step {step}");
        // Fed bytewise, nothing past the end was read; fed in bigger
        // pieces, what follows stays in the buffer.
        assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
    }
    assert_eq!(
        decode(b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap().0,
        b"0123456789"
    );
}

#[test]
fn broken_chunked_bodies_are_errors() {
    for bad in [
        &b"x\r\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloXX0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffff\r\n",
        b"\r\n",
    ] {
        assert!(decode(bad, 3).is_err(), "{bad:?}");
    }
    let long = format!("{}\r\n", "1".repeat(MAX_CHUNK_LINE + 1));
    assert!(decode(long.as_bytes(), 64).is_err());
}

#[test]
fn the_upstream_target_is_origin_form_and_a_rewrite_keeps_the_query() {
    for (target, rewrite, want) in [
        ("/a/b?x=1", None, "/a/b?x=1"),
        ("http://shop.example/a?x=1", None, "/a?x=1"),
        ("http://shop.example", None, "/"),
        (
            "/api/v1/items?page=2",
            Some("/v1/items"),
            "/v1/items?page=2",
        ),
        ("/api", Some("/"), "/"),
    ] {
        let req = head(&format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n"));
        let got = req.upstream_target(rewrite).unwrap();
        assert_eq!(got, want, "{target} {rewrite:?}");
    }
    let req = head("GET /a HTTP/1.1\r\n\r\n");
    assert!(req.upstream_target(Some("/a b")).is_err());
}

#[test]
fn an_upgrade_passes_on_its_upgrade_and_connection_and_only_when_asked_for() {
    for (raw, upgrade) in [
        (
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
            true,
        ),
        // Upgrade without Connection naming it, or the other way round.
        ("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", false),
        ("GET /ws HTTP/1.1\r\nConnection: upgrade\r\n\r\n", false),
        // HTTP/1.0 has no upgrade; a request with a body is not one here.
        (
            "GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            false,
        ),
        (
            "POST /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\ncontent-length: 2\r\n\r\n",
            false,
        ),
    ] {
        assert_eq!(head(raw).upgrade, upgrade, "{raw:?}");
    }
    let h = head(
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(
        forwarded(&h, h.path_and_query(), "::1", Framing::Empty),
        "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nx-forwarded-for: ::1\r\nx-forwarded-proto: http\r\n\
         x-forwarded-host: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    );
    let r = response(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    let mut out = Vec::new();
    write_switching_head(&mut out, &r);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         upgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    );
}
