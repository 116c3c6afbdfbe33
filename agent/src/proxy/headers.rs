//! Header rewriting, both ways: hop-by-hop headers are dropped (RFC 9110
//! §7.6.1, plus the ones named in `Connection`), and a forwarded request
//! gets `X-Forwarded-For` (appended), `X-Forwarded-Proto: http` and
//! `X-Forwarded-Host` (the client's `Host`, which is also passed on as it
//! came, like nginx's `proxy_set_header Host $host`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers, always dropped.
fn hop_by_hop() -> [&'static HeaderName; 7] {
    [
        &header::CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
    ]
}

/// Removes hop-by-hop headers. The common cases — none, or `Connection:
/// keep-alive` / `close` — cost a scan of the names and no allocation.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let names = hop_by_hop();
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = names.iter().position(|h| *h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    let tokens = |h: &HeaderMap| -> Vec<HeaderName> {
        h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect()
    };
    // `Connection` naming other headers is rare: only then allocate.
    let named_more = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|t| {
            let t = t.trim_ascii();
            !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive")
        })
    });
    if named_more {
        for name in tokens(headers) {
            headers.remove(name);
        }
    }
    for (i, name) in names.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
}

/// The `X-Forwarded-For` value this proxy adds for a client, made once per
/// client connection.
pub fn client_ip_value(ip: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string()))
        .expect("an IP address is a valid header value")
}

/// Turns the client's request headers into the ones sent upstream.
/// `host` is the client's `Host` (or the authority of an absolute URI).
pub fn forward_request(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    host: Option<HeaderValue>,
) {
    strip_hop_by_hop(headers);
    // The proxy answers `Expect: 100-continue` itself (hyper does, when the
    // body is first read); the backend gets the body straight away.
    headers.remove(header::EXPECT);
    let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
        None => client_ip.clone(),
        Some(prior) => {
            let mut v = Vec::with_capacity(prior.len() + 2 + client_ip.len());
            v.extend_from_slice(prior.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
                .unwrap_or_else(|_| client_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = host {
        if !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, host.clone());
        }
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-connection", "close"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["content-type"]);
    }

    #[test]
    fn forwarded_for_is_appended_and_host_is_kept_and_copied() {
        let mut h = map(&[("host", "shop.example"), ("x-forwarded-for", "10.0.0.9")]);
        let ip = client_ip_value("127.0.0.1".parse().unwrap());
        forward_request(&mut h, &ip, Some(HeaderValue::from_static("shop.example")));
        assert_eq!(h["x-forwarded-for"], "10.0.0.9, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["host"], "shop.example");

        let mut h = map(&[("expect", "100-continue")]);
        forward_request(
            &mut h,
            &ip,
            Some(HeaderValue::from_static("a.example:8080")),
        );
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["host"], "a.example:8080", "taken from an absolute URI");
        assert!(!h.contains_key("expect"));
    }
}
