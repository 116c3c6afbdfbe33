//! The master's HTTP side: what load balancers and monitoring read with no
//! credentials, the REST API deploy scripts drive, and bethel's two calls.
//!
//! | endpoint | needs |
//! |---|---|
//! | `GET /health?node=NAME`, `GET /metrics` | nothing (`open`) |
//! | `GET /api/v1/…` | an API token, any role |
//! | `PUT`/`DELETE /api/v1/nodes/{name}/drain` | operator |
//! | writes of upstreams, routes; rollouts | admin |
//! | `GET /++rest++nodestatus`, `POST /++rest++setstatus` | read; operator |
//! | `GET`; `PUT`/`DELETE /__erulb__/…` (ELB's admin API, `elb`) | read; admin |
//!
//! Every route calls the same cluster operations the gRPC control service
//! calls: there is one drain, one route change. Errors are problem details (`problem`);
//! who is asking is `auth`'s.

mod api;
mod auth;
mod bethel;
mod body;
pub mod dash;
mod elb;
mod metrics;
mod open;
mod problem;
#[cfg(test)]
mod tests;

use crate::cluster::{Cluster, JoinLimits};
use crate::jobs::Jobs;
use crate::rollout::Rollouts;
use std::sync::Arc;

pub use problem::Problem;

/// The largest request body read: a route chain or an upstream, a drain's
/// reason; cluster files go over gRPC.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every HTTP handler reaches.
#[derive(Clone)]
pub struct Http {
    pub cluster: Arc<Cluster>,
    /// `None` on a router without rollouts (tests of the read side).
    pub rollouts: Option<Arc<Rollouts>>,
    /// The jobs this master runs (their pages follow them live); `None`
    /// on a router without them.
    pub jobs: Option<Arc<Jobs>>,
    /// Usage history and the alert levels; `None` on a router without them.
    pub monitor: Option<Arc<crate::monitor::Monitor>>,
    /// Alert delivery, counted in `/metrics`.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
    /// Refused tokens audited per source address and minute.
    pub refusals: Arc<JoinLimits>,
    /// The dashboard's session cookies and form tokens.
    pub sessions: Arc<dash::session::Sessions>,
    /// The dashboard's live rows, started by the first page that needs them.
    board: Arc<std::sync::OnceLock<Arc<dash::Board>>>,
    /// Served over HTTPS (`http_tls`): session cookies are `Secure`.
    pub https: bool,
}

impl Http {
    pub fn new(cluster: Arc<Cluster>, rollouts: Option<Arc<Rollouts>>) -> Http {
        let sessions = Arc::new(dash::session::Sessions::new(
            cluster.derived_key("dashboard sessions"),
        ));
        Http {
            cluster,
            rollouts,
            jobs: None,
            monitor: None,
            notifier: None,
            refusals: Arc::new(JoinLimits::per_minute(1)),
            sessions,
            board: Default::default(),
            https: false,
        }
    }

    /// The rollouts, or why they are not served here.
    pub fn rollouts(&self) -> Result<&Arc<Rollouts>, Problem> {
        self.rollouts.as_ref().ok_or_else(|| {
            Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "rollouts-unavailable",
                "rollouts are not served here",
            )
        })
    }

    pub fn board(&self) -> Arc<dash::Board> {
        self.board
            .get_or_init(|| dash::Board::start(self.cluster.clone()))
            .clone()
    }
}

pub fn router(http: Http) -> axum::Router {
    axum::Router::new()
        .merge(open::routes())
        .merge(api::routes())
        .merge(dash::routes())
        .merge(elb::routes())
        .fallback(bethel::fallback)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // gzip for those who ask (the dashboard's pages: 1,000 rows are
        // ~500 KiB); never the event stream, which must not be buffered.
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(http)
}
