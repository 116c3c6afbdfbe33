//! The HTTP side through the router, no sockets: every endpoint, its
//! authentication and its refusals — each refusal a precise problem, and
//! nothing changed. The REST API and bethel's calls in `api`, the
//! dashboard in `dash`, ELB's admin API in `elb`, a node's usage report
//! in `usage`; the fixture and request helpers here.

mod api;
mod dash;
mod elb;
mod usage;

use super::{Http, router};
use crate::cluster::{Cluster, SessionHandle};
use crate::pki::Ca;
use crate::state::HostsNaming;
use crate::state::plan::testing::{role, to, web};
use crate::store::mem::MemStore;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use cluster_model::session::Ack;
use cluster_model::{ApiAccess, HealthStatus, Role};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt as _;

pub(super) struct Fixture {
    pub(super) cluster: Arc<Cluster>,
    pub(super) app: axum::Router,
    pub(super) jobs: Arc<crate::jobs::Jobs>,
    pub(super) _sessions: Vec<SessionHandle>,
}

pub(super) async fn fixture(nodes: &[(&str, &str)]) -> Fixture {
    let (ca, _) = Ca::generate("test", std::time::SystemTime::now()).unwrap();
    let cluster = Arc::new(
        Cluster::open(
            Arc::new(MemStore::default()),
            Arc::new(ca),
            Duration::from_secs(15),
            HostsNaming::default(),
        )
        .await
        .unwrap(),
    );
    let mut sessions = Vec::new();
    for (id, ip) in nodes {
        sessions.push(cluster.connect(web(id, ip)).await.unwrap());
    }
    let jobs = Arc::new(crate::jobs::Jobs::new(64 * 1024));
    let mut http = Http::new(cluster.clone(), None);
    http.jobs = Some(jobs.clone());
    let app = router(http);
    Fixture {
        cluster,
        app,
        jobs,
        _sessions: sessions,
    }
}

impl Fixture {
    pub(super) async fn token(&self, name: &str, role: Role) -> String {
        self.cluster
            .create_token(
                "admin",
                None,
                None,
                Vec::new(),
                Some(ApiAccess {
                    name: name.into(),
                    role,
                }),
            )
            .await
            .unwrap()
            .token
    }

    pub(super) async fn send(&self, req: Request<Body>) -> (StatusCode, header::HeaderMap, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, body)
    }

    pub(super) async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let (status, _, body) = self.send(req).await;
        (status, body)
    }

    pub(super) fn offline(&self, name: &str) -> Option<String> {
        let n = self.cluster.nodes(&[name.to_owned()]).unwrap().remove(0);
        n.node.offline.map(|o| o.reason)
    }
}

/// A problem's status and code, checked with its content type.
pub(super) async fn problem(f: &Fixture, req: Request<Body>) -> (StatusCode, String, Value) {
    let (status, headers, body) = f.send(req).await;
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/problem+json",
        "{status} {body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    (
        status,
        body["code"].as_str().unwrap_or_default().to_owned(),
        body,
    )
}

pub(super) fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::get(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

pub(super) fn put_json(uri: &str, token: &str, body: &str) -> Request<Body> {
    Request::put(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}
