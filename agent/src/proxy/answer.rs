//! The proxy's own answers: its short texts (404, 403, 502, 504…), the
//! refusal of a request it cannot read, and `/health` on the traffic port.

use super::HealthEndpoint;
use super::forward::Client;
use super::h1::{self, Framing, Outgoing, RequestHead};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Answers with the proxy's own short text. The connection stays open
/// only if the request had no body (it is left unread).
pub(super) async fn local<IO>(
    client: &mut Client<IO>,
    req: &RequestHead,
    status: u16,
    text: &str,
    stopping: bool,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    answer(
        client,
        req,
        status,
        "text/plain; charset=utf-8",
        &[],
        text,
        stopping,
    )
    .await
}

async fn answer<IO>(
    client: &mut Client<IO>,
    req: &RequestHead,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    text: &str,
    stopping: bool,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let how = Outgoing {
        framing: Framing::Length(text.len() as u64),
        keep_alive: req.keep_alive && req.framing == Framing::Empty && !stopping,
        http10: req.minor == 0,
    };
    client.out.clear();
    client.status = status;
    h1::write_local(
        &mut client.out,
        status,
        content_type,
        extra,
        text.len(),
        how,
    );
    if !req.is_head() {
        client.out.extend_from_slice(text.as_bytes());
        client.sent = text.len() as u64;
    }
    let written = client.io.write_all(&client.out).await.is_ok();
    client.out.clear();
    written && how.keep_alive
}

/// Answers a request the proxy cannot read (its head), and closes.
pub(super) async fn refuse<IO>(client: &mut Client<IO>, status: u16, why: &str)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let text = format!("{why}\n");
    let how = Outgoing {
        framing: Framing::Length(text.len() as u64),
        keep_alive: false,
        http10: false,
    };
    client.out.clear();
    client.status = status;
    h1::write_local(
        &mut client.out,
        status,
        "text/plain; charset=utf-8",
        &[],
        text.len(),
        how,
    );
    client.out.extend_from_slice(text.as_bytes());
    client.sent = text.len() as u64;
    let _ = client.io.write_all(&client.out).await;
    client.out.clear();
}

/// `GET <health_path>[?node=NAME]`, answered by the agent.
pub(super) async fn health<IO>(
    h: &HealthEndpoint,
    client: &mut Client<IO>,
    req: &RequestHead,
    stopping: bool,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    if !matches!(req.method(), "GET" | "HEAD") {
        let text = format!("{} answers GET and HEAD\n", h.path);
        return answer(
            client,
            req,
            405,
            "text/plain; charset=utf-8",
            &[("allow", "GET, HEAD")],
            &text,
            stopping,
        )
        .await;
    }
    let node = req.query().and_then(|q| query_value(q, "node"));
    let (status, text) = (h.answer)(node.as_deref());
    let json = text.starts_with('{') || text.starts_with('[');
    let content_type = if json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    answer(
        client,
        req,
        status.as_u16(),
        content_type,
        &[],
        &text,
        stopping,
    )
    .await
}

/// The first value of `key` in a query string, percent-decoded.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_found_and_decoded() {
        for (query, want) in [
            ("node=web-1", Some("web-1")),
            ("a=1&node=web%2D2&node=x", Some("web-2")),
            ("node=a+b%20c", Some("a b c")),
            ("node=%zz%4", Some("%zz%4")),
            ("node", Some("")),
            ("nodes=1", None),
            ("", None),
        ] {
            assert_eq!(query_value(query, "node").as_deref(), want, "{query}");
        }
    }
}
