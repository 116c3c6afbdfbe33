//! The master's gRPC edge: the only modules that name `cluster_proto` types.
//!
//! - `agent` — `AgentService`: one long-lived session per agent.
//! - `auth` — who may call what, from the verified client certificate.
//! - `control` — `Control`: what clusterctl calls (`control_lb` and
//!   `control_rollout` hold the load-balancing, rollout and cluster-file
//!   calls; `control_watch` the followed reads, `FollowEvents` and
//!   `WatchNodes`).
//! - `enroll` — `Enrollment`: agents asking for their certificate.
//! - `masters` — `Masters`: between the masters of one cluster (a
//!   standby's commits, status), and how this master calls the others.
//! - `convert` — refusals into statuses, requests into commands (the wire
//!   types themselves convert in `cluster_model::wire`).
//! - `convert_lb` — the load-balancing replies.
//!
//! See `LIFECYCLE.md` beside this file for the life of an agent session.

pub mod agent;
pub mod auth;
pub mod control;
mod control_lb;
mod control_rollout;
mod control_usage;
mod control_watch;
pub mod convert;
mod convert_lb;
pub mod enroll;
pub mod masters;

use crate::cluster::Cluster;
use crate::jobs::Jobs;
use cluster_proto as pb;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::{Router, Server};

/// Largest message accepted from a peer (grains of a big host fit easily).
const MAX_MESSAGE: usize = cluster_model::limits::MESSAGE_MAX_BYTES;

/// What the services serve with.
pub struct Parts {
    pub cluster: Arc<Cluster>,
    pub jobs: Arc<Jobs>,
    pub rollouts: Arc<crate::rollout::Rollouts>,
    pub monitor: Arc<crate::monitor::Monitor>,
    pub shutdown: CancellationToken,
    /// Where each agent session's loop is spawned.
    pub sessions: TaskTracker,
    pub allow_nat: bool,
}

/// The master's four services on `server`.
pub fn services(mut server: Server, parts: Parts) -> Router {
    let Parts {
        cluster,
        jobs,
        rollouts,
        monitor,
        shutdown,
        sessions,
        allow_nat,
    } = parts;
    let agent = pb::agent_service_server::AgentServiceServer::new(agent::AgentSvc {
        cluster: cluster.clone(),
        jobs: jobs.clone(),
        shutdown: shutdown.clone(),
        sessions,
        held_events: crate::cluster::JoinLimits::per_minute(1),
        allow_nat,
    })
    .max_decoding_message_size(MAX_MESSAGE);
    let control = pb::control_server::ControlServer::new(control::ControlSvc {
        cluster: cluster.clone(),
        jobs: jobs.clone(),
        rollouts,
        monitor,
        shutdown,
    })
    .max_decoding_message_size(MAX_MESSAGE);
    let masters = pb::masters_server::MastersServer::new(masters::MastersSvc {
        cluster: cluster.clone(),
        jobs,
    })
    .max_decoding_message_size(MAX_MESSAGE);
    // Enrollment is open to callers without a certificate: small messages only.
    let enroll = pb::enrollment_server::EnrollmentServer::new(enroll::EnrollSvc {
        cluster: cluster.clone(),
        limits: Default::default(),
    })
    .max_decoding_message_size(64 * 1024);
    server
        .add_service(Timed::of(Bounded(agent), &cluster))
        .add_service(Timed::of(Bounded(RequestIds(control)), &cluster))
        .add_service(Timed::of(Bounded(masters), &cluster))
        .add_service(Timed::of(Bounded(enroll), &cluster))
}

/// The longest error message a reply carries, in bytes: an error quoting
/// a huge input would otherwise make a header block larger than HTTP/2
/// peers take, and the caller would see "h2 protocol error" instead.
const MAX_STATUS_MESSAGE: usize = 2048;

/// A service whose refusals carry at most [`MAX_STATUS_MESSAGE`] bytes of
/// message (cut with "… (cut: N bytes)").
#[derive(Clone)]
pub struct Bounded<S>(pub S);

impl<S: tonic::server::NamedService> tonic::server::NamedService for Bounded<S> {
    const NAME: &'static str = S::NAME;
}

/// Cuts the `grpc-message` of a trailers-only reply (what a refused call
/// is) to [`MAX_STATUS_MESSAGE`] bytes.
fn bound_status(headers: &mut http::HeaderMap) {
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    let message = status.message();
    if message.len() <= MAX_STATUS_MESSAGE {
        return;
    }
    let mut end = MAX_STATUS_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cut = format!("{}… (cut: {} bytes in all)", &message[..end], message.len());
    let _ = tonic::Status::new(status.code(), cut).add_header(headers);
}

impl<S, B> tower_service::Service<http::Request<B>> for Bounded<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let reply = self.0.call(req);
        Box::pin(async move {
            let mut reply = reply.await?;
            bound_status(reply.headers_mut());
            Ok(reply)
        })
    }
}

/// A service whose every call is counted and timed for `/metrics`, by
/// method and the code it answered.
#[derive(Clone)]
pub struct Timed<S> {
    pub inner: S,
    pub cluster: Arc<Cluster>,
}

impl<S> Timed<S> {
    pub fn of(inner: S, cluster: &Arc<Cluster>) -> Timed<S> {
        Timed {
            inner,
            cluster: cluster.clone(),
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Timed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower_service::Service<http::Request<B>> for Timed<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let cluster = self.cluster.clone();
        let started = std::time::Instant::now();
        let reply = self.inner.call(req);
        Box::pin(async move {
            let reply = reply.await?;
            // A refusal is trailers-only: its status is in the headers.
            let code = tonic::Status::from_header_map(reply.headers())
                .map_or(tonic::Code::Ok, |s| s.code());
            cluster.counters.grpc_call(&path, code, started.elapsed());
            Ok(reply)
        })
    }
}

/// The longest request id a caller may send, and what it may be made of.
const MAX_REQUEST_ID: usize = 64;

/// Control's calls under the caller's `x-request-id`: a retried mutation
/// with the same id takes effect once (see `cluster::with_request`). A
/// malformed id is refused before the call runs.
#[derive(Clone)]
pub struct RequestIds<S>(pub S);

impl<S: tonic::server::NamedService> tonic::server::NamedService for RequestIds<S> {
    const NAME: &'static str = S::NAME;
}

/// The request id in `value`, or why it is refused.
fn request_id(value: Option<&http::HeaderValue>) -> Result<Option<String>, String> {
    let Some(value) = value else { return Ok(None) };
    let id = value
        .to_str()
        .map_err(|_| "x-request-id is not text".to_owned())?;
    if id.is_empty() || id.len() > MAX_REQUEST_ID {
        return Err(format!(
            "x-request-id must be 1 to {MAX_REQUEST_ID} characters (it is {})",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "x-request-id may hold only letters, digits, '.', '_' and '-' (not {c:?})"
        ));
    }
    Ok(Some(id.to_owned()))
}

impl<S, B> tower_service::Service<http::Request<B>> for RequestIds<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match request_id(req.headers().get("x-request-id")) {
            Ok(id) => Box::pin(crate::cluster::with_request(id, self.0.call(req))),
            Err(why) => {
                let refused = tonic::Status::invalid_argument(why).into_http();
                Box::pin(async move { Ok(refused) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_refusals_are_cut_and_short_ones_kept() {
        let headers = |message: &str| {
            let mut h = http::HeaderMap::new();
            tonic::Status::invalid_argument(message)
                .add_header(&mut h)
                .unwrap();
            h
        };
        let mut short = headers("unknown node \"web-9\"");
        bound_status(&mut short);
        assert_eq!(
            tonic::Status::from_header_map(&short).unwrap().message(),
            "unknown node \"web-9\""
        );
        let mut long = headers(&format!("unknown node {:?}", "é".repeat(50_000)));
        bound_status(&mut long);
        let status = tonic::Status::from_header_map(&long).unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().len() < MAX_STATUS_MESSAGE + 64);
        assert!(
            status.message().ends_with("… (cut: 100015 bytes in all)"),
            "{}",
            &status.message()[status.message().len() - 40..]
        );
    }

    #[test]
    fn request_ids_are_short_plain_tokens() {
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        assert_eq!(request_id(None), Ok(None));
        assert_eq!(
            request_id(Some(&v("3f2a-9c.x_1"))),
            Ok(Some("3f2a-9c.x_1".into()))
        );
        let long = "a".repeat(65);
        let e = request_id(Some(&http::HeaderValue::from_str(&long).unwrap())).unwrap_err();
        assert!(e.contains("1 to 64") && e.contains("65"), "{e}");
        let e = request_id(Some(&v("a/b"))).unwrap_err();
        assert!(e.contains("'/'"), "{e}");
    }
}
