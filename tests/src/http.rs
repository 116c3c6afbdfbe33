//! Plain HTTP/1.1: a GET, enough for health endpoints, and any request
//! with an API token.

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
    answer(client.get(uri).await).await
}

/// A GET with an `Accept` header: `(status, body)`.
pub async fn get_accepting(url: &str, accept: &str) -> (u16, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = match hyper::Request::get(url)
        .header("accept", accept)
        .body(Empty::new())
    {
        Ok(r) => r,
        Err(e) => return (0, format!("bad request {url}: {e}")),
    };
    answer(client.request(req).await).await
}

/// Any request with a bearer token and an optional JSON body: `(status,
/// body)`, or `(0, error)` when nothing answered.
pub async fn send(method: &str, url: &str, token: &str, json: Option<&str>) -> (u16, String) {
    use http_body_util::Full;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"));
    if json.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = match req.body(Full::new(Bytes::from(json.unwrap_or_default().to_owned()))) {
        Ok(r) => r,
        Err(e) => return (0, format!("bad request {url}: {e}")),
    };
    answer(client.request(req).await).await
}

/// `(status, body)` of a response, or `(0, error)`.
async fn answer(
    resp: Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
) -> (u16, String) {
    match resp {
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
