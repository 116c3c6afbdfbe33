//! Alert delivery: each alert's change of state taken to where operators
//! look — Alertmanager, email, webhooks — without the master ever waiting
//! on any of them, and with every failure to deliver reported.
//!
//! # Use
//!
//! ```text
//! let (reports_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
//! let notifier = Notifier::start(&config.notify, &config.cluster_name,
//!                                Some("https://master:7441"), reports_tx, shutdown.clone())?;
//! notifier.restore(firing_now);   // on taking over: Alertmanager only, no mail
//! notifier.notify(notice);        // every firing/resolved transition: every destination
//! // reports → events: a notice's first failure, its giving up, a recovery
//! shutdown.cancel(); notifier.stopped().await;
//! ```
//!
//! [`Notifier::notify`] and [`Notifier::restore`] take a short lock and
//! return: nothing the network does reaches the caller but through the
//! report channel. [`Notifier::start`] must be called inside a tokio
//! runtime; with an empty [`NotifyConfig`] it starts nothing.
//!
//! # Layout
//!
//! - [`config`] — `[notify]`: raw shape and validation.
//! - [`queue`] — one bounded queue and worker per destination: retries
//!   with backoff and jitter, giving up, reports.
//! - [`shape`] — labels, annotations, Alertmanager's v2 alerts and
//!   webhook message (version 4), pure.
//! - [`alertmanager`] — the firing set, re-sent every `resend`.
//! - [`email`] — one mail per change of state (lettre).
//! - [`webhook`] — one POST per change of state.

pub mod alertmanager;
pub mod config;
pub mod email;
pub mod queue;
pub mod shape;
pub mod webhook;

pub use config::{NotifyConfig, RawNotify};

use cluster_model::alerts::{Notice, NoticeStatus};
use queue::{Deliver, Deliveries, Queue, Retry, Worker};
use shape::Origin;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long one request or one SMTP exchange may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The kind of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    Alertmanager,
    Email,
    Webhook,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Alertmanager => "alertmanager",
            SinkKind::Email => "email",
            SinkKind::Webhook => "webhook",
        }
    }
}

/// One destination: `alertmanager http://am:9093`, `email smtp.example.com:587`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkName {
    pub kind: SinkKind,
    /// Its URL, or the mail server's `host:port`.
    pub target: String,
}

impl std::fmt::Display for SinkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.target)
    }
}

/// What delivery tells the caller (who records it as an event).
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryReport {
    /// A notice's first failure at a destination (its retries are not
    /// reported), or its end without delivery (`given_up`).
    Failure(DeliveryFailure),
    /// The destination took a delivery after `failed_attempts` failures.
    Recovered {
        sink: SinkName,
        failed_attempts: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryFailure {
    pub sink: SinkName,
    /// The notice's summary (`web-1 cpu critical: 97.0% ≥ 90.0%`), or
    /// what a re-send carried (`re-send of 3 firing alerts`).
    pub notice: String,
    /// Attempts made for it so far.
    pub attempt: u32,
    pub error: String,
    /// Set when the notice will not be delivered to this destination.
    pub given_up: Option<GiveUp>,
}

/// Why a notice was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Not delivered within `give_up_after`.
    Expired,
    /// Pushed out of a full queue (the oldest goes).
    QueueFull,
    /// Still queued when the master stopped.
    Stopped,
}

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{0}")]
    Request(reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("building the mail: {0}")]
    Message(String),
}

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read notify.email.password_file {path}: {source}")]
    ReadPassword {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read notify.email.ca_file {path}: {source}")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Tls { what: String, message: String },
    #[error("the HTTP client: {0}")]
    Http(reqwest::Error),
}

impl crate::monitor::Deliver for Notifier {
    fn notify(&self, notice: Notice) {
        Notifier::notify(self, notice);
    }
    fn restore(&self, firing: Vec<Notice>) {
        Notifier::restore(self, firing);
    }
    fn step_down(&self) {
        Notifier::step_down(self);
    }
}

/// A report as the event log says it: what failed or recovered, where.
pub fn report_text(r: &DeliveryReport) -> String {
    match r {
        DeliveryReport::Failure(f) => {
            let what = match f.given_up {
                None => format!(
                    "alert delivery to {} failed (attempt {}, retrying)",
                    f.sink, f.attempt
                ),
                Some(GiveUp::Expired) => format!(
                    "alert delivery to {} given up after {} attempts",
                    f.sink, f.attempt
                ),
                Some(GiveUp::QueueFull) => {
                    format!("alert delivery to {} dropped: its queue is full", f.sink)
                }
                Some(GiveUp::Stopped) => {
                    format!("alert delivery to {} not done: the master stopped", f.sink)
                }
            };
            format!("{what}: {}: {}", f.notice, f.error)
        }
        DeliveryReport::Recovered {
            sink,
            failed_attempts,
        } => {
            format!("alert delivery to {sink} works again after {failed_attempts} failed attempts")
        }
    }
}

/// A non-2xx answer as an error, with the start of its body.
async fn http_error(response: reqwest::Response) -> Result<(), DeliverError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(DeliverError::Status {
        status: status.as_u16(),
        body: cluster_model::limits::excerpt(body.trim()),
    })
}

struct Sink {
    kind: SinkKind,
    queue: Arc<Queue>,
}

/// Delivery to every configured destination; see the module's doc.
pub struct Notifier {
    sinks: Vec<Sink>,
    /// The alerts firing now, for the Alertmanagers' re-sends.
    firing: Arc<alertmanager::Firing>,
    deliveries: Deliveries,
    tracker: TaskTracker,
}

impl Notifier {
    /// One worker per destination, each stopping on `shutdown`. Reads the
    /// SMTP password (and CA) file now.
    pub fn start(
        config: &NotifyConfig,
        cluster_name: &str,
        external_url: Option<&str>,
        reports: UnboundedSender<DeliveryReport>,
        shutdown: CancellationToken,
    ) -> Result<Notifier, StartError> {
        let origin = Arc::new(Origin::new(cluster_name, external_url));
        let firing = Arc::new(alertmanager::Firing::default());
        let mut notifier = Notifier {
            sinks: Vec::new(),
            firing: firing.clone(),
            deliveries: Deliveries::default(),
            tracker: TaskTracker::new(),
        };
        let client = if config.alertmanagers.is_empty() && config.webhooks.is_empty() {
            None
        } else {
            // reqwest (rustls without a provider of its own) takes the
            // process's; the master's main installs ring, this covers tests.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                reqwest::Client::builder()
                    .timeout(TIMEOUT)
                    .connect_timeout(TIMEOUT / 2)
                    .user_agent(concat!("clusterctl/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(StartError::Http)?,
            )
        };
        let mut spawn = |sink: Arc<dyn Deliver>, kind, target: String| {
            let queue = Arc::new(Queue::new(config.queue));
            let worker = Worker {
                sink,
                name: SinkName { kind, target },
                queue: queue.clone(),
                reports: reports.clone(),
                retry: Retry::DEFAULT,
                give_up_after: config.give_up_after,
                deliveries: notifier.deliveries.clone(),
            };
            notifier.tracker.spawn(worker.run(shutdown.clone()));
            notifier.sinks.push(Sink { kind, queue });
        };
        for url in &config.alertmanagers {
            let sink = alertmanager::Alertmanager {
                client: client.clone().expect("a client for HTTP destinations"),
                endpoint: alertmanager::Alertmanager::endpoint(url),
                firing: firing.clone(),
                origin: origin.clone(),
                resend: config.resend,
            };
            spawn(Arc::new(sink), SinkKind::Alertmanager, url.to_string());
        }
        if let Some(e) = &config.email {
            let sink = email::Email::new(e, origin.clone())?;
            spawn(
                Arc::new(sink),
                SinkKind::Email,
                format!("{}:{}", e.server, e.port),
            );
        }
        for url in &config.webhooks {
            let sink = webhook::Webhook {
                client: client.clone().expect("a client for HTTP destinations"),
                url: url.clone(),
                origin: origin.clone(),
            };
            spawn(Arc::new(sink), SinkKind::Webhook, url.to_string());
        }
        notifier.tracker.close();
        Ok(notifier)
    }

    /// An alert changed state: to every destination. Never waits.
    pub fn notify(&self, notice: Notice) {
        self.firing.observe(&notice);
        for sink in &self.sinks {
            sink.queue.push(notice.clone());
        }
    }

    /// The alerts firing when this master took over: they join the
    /// firing set and go to the Alertmanagers now (no mail, no webhook).
    pub fn restore(&self, firing: Vec<Notice>) {
        for n in firing.iter().filter(|n| n.status == NoticeStatus::Firing) {
            self.firing.observe(n);
        }
        for sink in self
            .sinks
            .iter()
            .filter(|s| s.kind == SinkKind::Alertmanager)
        {
            sink.queue.kick();
        }
    }

    /// This master no longer leads: the firing set is the new leader's to
    /// re-send; this one forgets it.
    pub fn step_down(&self) {
        self.firing.clear();
    }

    /// The alerts firing now, as this notifier was told.
    pub fn firing(&self) -> Vec<Notice> {
        self.firing.snapshot()
    }

    /// Into a scrape's registry: deliveries by destination kind and result.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "cluster_alert_deliveries",
            "Alert deliveries by destination kind and result (ok, failed, given_up, dropped)",
            self.deliveries.clone(),
        );
    }

    /// Waits for every worker to end (after `shutdown`).
    pub async fn stopped(&self) {
        self.tracker.wait().await;
    }
}
