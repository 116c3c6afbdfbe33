//! A plain HTTP/1.1 GET, enough for health endpoints.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// `(status, body)`, or `(0, error)` when nothing answered.
pub async fn get(url: &str) -> (u16, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return (0, format!("bad url {url}: {e}")),
    };
    match client.get(uri).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            (status, body)
        }
        Err(e) => (0, e.to_string()),
    }
}
