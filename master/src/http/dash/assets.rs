//! The stylesheet and the script, in the binary; revalidated by `ETag`.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

pub const CSS_PATH: &str = "/static/app.css";
pub const JS_PATH: &str = "/static/app.js";

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

fn etag(body: &str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| {
        let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
        let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

fn serve(
    headers: &HeaderMap,
    body: &'static str,
    kind: &'static str,
    cell: &'static OnceLock<String>,
) -> Response {
    let tag = etag(body, cell);
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::ETAG, tag),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn css(headers: HeaderMap) -> Response {
    static TAG: OnceLock<String> = OnceLock::new();
    serve(&headers, CSS, "text/css; charset=utf-8", &TAG)
}

pub async fn js(headers: HeaderMap) -> Response {
    static TAG: OnceLock<String> = OnceLock::new();
    serve(&headers, JS, "text/javascript; charset=utf-8", &TAG)
}
