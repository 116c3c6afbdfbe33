//! The web dashboard at `/`: server-rendered pages (maud), one small
//! script embedded in the binary that only enhances them (every action is
//! a plain form that works without it), and one Server-Sent Events stream
//! per tab for what changes. No single-page app, no Node toolchain: the
//! pages are the API's data rendered where it lives.
//!
//! Logging in takes an API token once (`session`); every page reads the
//! cluster through the operations the API and gRPC use, and every action
//! calls the same drain.

mod assets;
mod board;
mod live;
mod pages;
mod records;
pub mod session;
mod views;

use super::Http;
use super::problem::Problem;
use crate::cluster::{Caller, Permission};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cluster_model::time::now_ms;

pub use board::Board;

pub fn routes() -> axum::Router<Http> {
    axum::Router::new()
        .route("/", get(pages::nodes))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/nodes/preview", post(pages::preview))
        .route("/nodes/apply", post(pages::apply))
        .route("/nodes/{name}", get(pages::node))
        .route("/events", get(records::events))
        .route("/jobs", get(records::jobs))
        .route("/jobs/{id}", get(records::job))
        .route("/rollouts", get(records::rollouts))
        .route("/rollouts/{id}", get(records::rollout))
        .route("/rollouts/{id}/{action}", post(records::rollout_action))
        .route("/balancing", get(records::balancing))
        .route("/balancing/test", post(records::route_test))
        .route("/live", get(live::stream))
        .route(assets::CSS_PATH, get(assets::css))
        .route(assets::JS_PATH, get(assets::js))
        .layer(axum::middleware::from_fn(html_errors))
}

/// A refusal a browser navigated to (not one the script fetched) is a
/// page, not problem JSON a browser would offer to download.
async fn html_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let resp = next.run(req).await;
    let problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !wants_html || !problem {
        return resp;
    }
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let p: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let title = p["title"].as_str().unwrap_or("Error").to_owned();
    let detail = p["detail"].as_str().unwrap_or_default().to_owned();
    let code = p["code"].as_str().unwrap_or_default().to_owned();
    let page = views::page(
        &title,
        None,
        views::Section::None,
        None,
        maud::html! {
            h1 { (status.as_u16()) " " (title) }
            (views::flash(&detail, false))
            p.hint { "Code: " code { (code) } ". " a href="/" { "Back to the nodes" } }
        },
    );
    (status, page).into_response()
}

/// A logged-in browser: who, and its session's form token.
pub struct Session {
    pub caller: Caller,
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    pub fn name(&self) -> &str {
        match &self.caller {
            Caller::Api { name, .. } => name,
            _ => "",
        }
    }

    pub fn role(&self) -> cluster_model::Role {
        match &self.caller {
            Caller::Api { role, .. } => *role,
            _ => cluster_model::Role::Read,
        }
    }

    pub fn may(&self, need: Permission) -> bool {
        need.allows(self.role())
    }

    /// Nothing, if this session's token may do `action` (which needs
    /// `need`); otherwise a 403, audited as the API's refusals are.
    pub async fn require(
        &self,
        http: &Http,
        need: Permission,
        action: &str,
    ) -> Result<(), Problem> {
        let Some(refusal) = self.caller.refusal(need, action) else {
            return Ok(());
        };
        let (crate::cluster::Refusal::Denied(msg) | crate::cluster::Refusal::Unauthenticated(msg)) =
            refusal;
        http.cluster
            .deny("", &self.caller.label(), format!("{msg} (dashboard)"))
            .await;
        Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", msg))
    }

    pub fn viewer(&self) -> views::Viewer<'_> {
        views::Viewer {
            name: self.name(),
            role: self.role(),
            csrf: &self.csrf,
        }
    }
}

/// Why a browser is not let in: pages send it to the login form; anything
/// else gets the problem.
pub enum NoSession {
    Login(String),
    Refused(Problem),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::Login(next) => {
                Redirect::to(&format!("/login?next={}", encode(&next))).into_response()
            }
            NoSession::Refused(p) => p.into_response(),
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<Http> for Session {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, http: &Http) -> Result<Session, NoSession> {
        let unauthenticated = |why: String| {
            if parts.method == Method::GET && parts.uri.path() != "/live" {
                NoSession::Login(parts.uri.to_string())
            } else {
                NoSession::Refused(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    why,
                ))
            }
        };
        if parts.method != Method::GET
            && let Some(why) = session::cross_site(&parts.headers)
        {
            return Err(NoSession::Refused(Problem::new(
                StatusCode::FORBIDDEN,
                "cross-site",
                format!("refused: {why}"),
            )));
        }
        let Some(cookie) = session::cookie_of(&parts.headers) else {
            return Err(unauthenticated("log in first (with an API token)".into()));
        };
        let Some(id) = http.sessions.verify(&cookie, now_ms()) else {
            return Err(unauthenticated(
                "the session has ended; log in again".into(),
            ));
        };
        match http.cluster.api_caller_by_id(&id) {
            Ok(caller) => {
                let csrf = http.sessions.csrf(&cookie);
                Ok(Session {
                    caller,
                    cookie,
                    csrf,
                })
            }
            Err(e) => Err(unauthenticated(format!("{e}; log in again"))),
        }
    }
}

/// Refuses a form whose CSRF token is not the session's.
pub fn check_csrf(http: &Http, s: &Session, presented: Option<&str>) -> Result<(), Problem> {
    match presented {
        Some(t) if http.sessions.csrf_ok(&s.cookie, t) => Ok(()),
        _ => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "this form's CSRF token is missing or not this session's: reload the page and try again",
        )),
    }
}

/// `Set-Cookie` for the session (`None` ends it), Secure behind HTTPS.
fn cookie_header(parts_secure: bool, value: Option<&str>) -> (header::HeaderName, String) {
    (header::SET_COOKIE, session::set_cookie(value, parts_secure))
}

/// Whether the browser reached us over HTTPS (a reverse proxy says so).
fn secure(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}
