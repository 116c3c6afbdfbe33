//! The browser's session: a token given once at `/login` becomes an
//! HttpOnly, SameSite=Strict cookie naming the token and when the session
//! ends, signed with a key every master derives from the CA's (so any
//! master of the cluster takes it). The cookie never holds the token's
//! secret, and every request looks the token up again: deleting it ends
//! its sessions at once. Every state-changing form carries a CSRF token
//! derived from the cookie, and a request another site sent (by `Origin`
//! or `Sec-Fetch-Site`) is refused before anything else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use std::time::Duration;

pub const COOKIE: &str = "clusterctl_session";
/// How long a login lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub struct Sessions {
    key: hmac::Key,
}

impl Sessions {
    pub fn new(key: hmac::Key) -> Sessions {
        Sessions { key }
    }

    /// A cookie value for the API token `id`, ending `LIFETIME` after
    /// `now_ms`.
    pub fn issue(&self, id: &str, now_ms: u64) -> String {
        let body = format!("{id}.{}", now_ms + LIFETIME.as_millis() as u64);
        let mac = hmac::sign(&self.key, body.as_bytes());
        format!("{body}.{}", B64.encode(mac.as_ref()))
    }

    /// The token id a cookie value names, if it is ours and not over.
    pub fn verify(&self, value: &str, now_ms: u64) -> Option<String> {
        let (body, mac) = value.rsplit_once('.')?;
        let mac = B64.decode(mac).ok()?;
        hmac::verify(&self.key, body.as_bytes(), &mac).ok()?;
        let (id, expires) = body.split_once('.')?;
        let expires: u64 = expires.parse().ok()?;
        (now_ms < expires).then(|| id.to_owned())
    }

    /// The CSRF token of a session: bound to its cookie.
    pub fn csrf(&self, cookie: &str) -> String {
        let mac = hmac::sign(&self.key, format!("csrf:{cookie}").as_bytes());
        B64.encode(mac.as_ref())
    }

    /// Whether `presented` is the session's CSRF token (compared in
    /// constant time).
    pub fn csrf_ok(&self, cookie: &str, presented: &str) -> bool {
        B64.decode(presented.trim()).is_ok_and(|mac| {
            hmac::verify(&self.key, format!("csrf:{cookie}").as_bytes(), &mac).is_ok()
        })
    }
}

/// The `Set-Cookie` header for a session (`None`: the one that ends it).
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// Why a request is refused as another site's: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` that is not this host.
pub fn cross_site(headers: &axum::http::HeaderMap) -> Option<String> {
    use axum::http::header;
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Some("the browser says another site sent this request".into());
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    if origin == "null" {
        return Some("the request comes from an opaque origin".into());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (!origin_host.eq_ignore_ascii_case(host))
        .then(|| format!("the request comes from {origin}, not from this dashboard ({host})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(hmac::Key::new(hmac::HMAC_SHA256, b"k"))
    }

    #[test]
    fn a_cookie_names_its_token_until_it_ends_and_cannot_be_forged() {
        let s = sessions();
        let c = s.issue("3f2a1b", 1_000);
        assert_eq!(s.verify(&c, 2_000).as_deref(), Some("3f2a1b"));
        assert_eq!(s.verify(&c, 1_000 + LIFETIME.as_millis() as u64), None);
        let forged = c.replacen("3f2a1b", "000000", 1);
        assert_eq!(s.verify(&forged, 2_000), None);
        let other = Sessions::new(hmac::Key::new(hmac::HMAC_SHA256, b"other master's CA"));
        assert_eq!(other.verify(&c, 2_000), None);
        assert_eq!(s.verify("junk", 2_000), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session() {
        let s = sessions();
        let (a, b) = (s.issue("a", 0), s.issue("b", 0));
        assert!(s.csrf_ok(&a, &s.csrf(&a)));
        assert!(!s.csrf_ok(&a, &s.csrf(&b)));
        assert!(!s.csrf_ok(&a, ""));
    }
}
