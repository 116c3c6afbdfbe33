//! Email: one plain-text mail per change of state (never per re-send),
//! sent with lettre's tokio transport over STARTTLS, TLS or plain SMTP,
//! authenticated when a username is configured. [`subject`] and [`body`]
//! are pure; the password is read once, when delivery starts, and is kept
//! only inside the transport.

use super::config::{EmailConfig, EmailTls};
use super::queue::Deliver;
use super::shape::{self, Origin};
use super::{DeliverError, StartError};
use cluster_model::alerts::{Notice, NoticeStatus};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `[FIRING] web-1 cpu critical: 97.0% ≥ 90.0%`.
pub fn subject(notice: &Notice) -> String {
    let tag = match notice.status {
        NoticeStatus::Firing => "FIRING",
        NoticeStatus::Resolved => "RESOLVED",
    };
    format!("[{tag}] {}", notice.summary())
}

/// The mail's text: the summary, the labels, what was seen against which
/// line, and when — `now` gives a firing alert's duration so far.
pub fn body(notice: &Notice, origin: &Origin, now: SystemTime) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", notice.summary());
    let _ = writeln!(out, "Labels:");
    for (k, v) in shape::labels(notice, origin) {
        let _ = writeln!(out, "  {k} = {v}");
    }
    let _ = writeln!(out);
    let started = shape::at_ms(notice.starts_at_ms);
    let (ended, until) = match (notice.status, notice.ends_at_ms) {
        (NoticeStatus::Resolved, end) => {
            let end = end.map_or(now, shape::at_ms);
            (shape::rfc3339(end), end)
        }
        (NoticeStatus::Firing, _) => ("still firing".to_owned(), now),
    };
    let lasted = until.duration_since(started).unwrap_or_default();
    let lasted = humantime::format_duration(Duration::from_secs(lasted.as_secs()));
    let rows = [
        ("Status", notice.status.as_str().to_owned()),
        ("Value", notice.metric.show(notice.value)),
        ("Threshold", notice.metric.show(notice.threshold)),
        ("Started", shape::rfc3339(started)),
        ("Ended", ended),
        (
            "Duration",
            match notice.status {
                NoticeStatus::Firing => format!("{lasted} so far"),
                NoticeStatus::Resolved => lasted.to_string(),
            },
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{:<10} {v}", format!("{k}:"));
    }
    if !notice.why.is_empty() {
        let _ = writeln!(out, "{:<10} {}", "Why:", notice.why);
    }
    if let Some(link) = origin.generator_url(notice) {
        let _ = writeln!(out, "{:<10} {link}", "Node:");
    }
    out
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    origin: Arc<Origin>,
}

impl Email {
    /// The transport, with the password and any extra CA read now.
    pub fn new(config: &EmailConfig, origin: Arc<Origin>) -> Result<Email, StartError> {
        let tls = match config.tls {
            EmailTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(config.server.clone());
                if let Some(path) = &config.ca_file {
                    let pem = std::fs::read(path).map_err(|source| StartError::ReadCa {
                        path: path.clone(),
                        source,
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| StartError::Tls {
                        what: format!("the certificates in {}", path.display()),
                        message: e.to_string(),
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params.build_rustls().map_err(|e| StartError::Tls {
                    what: format!("TLS for {}", config.server),
                    message: e.to_string(),
                })?;
                match mode {
                    EmailTls::Tls => Tls::Wrapper(params),
                    _ => Tls::Required(params),
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.server)
            .port(config.port)
            .tls(tls)
            .timeout(Some(super::TIMEOUT));
        if let Some(auth) = &config.auth {
            let password = std::fs::read_to_string(&auth.password_file).map_err(|source| {
                StartError::ReadPassword {
                    path: auth.password_file.clone(),
                    source,
                }
            })?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            builder = builder.credentials(Credentials::new(auth.username.clone(), password));
        }
        Ok(Email {
            transport: builder.build(),
            from: config.from.clone(),
            to: config.to.clone(),
            origin,
        })
    }

    fn message(&self, notice: &Notice, now: SystemTime) -> Result<Message, DeliverError> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(subject(notice))
            .date(now)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            m = m.to(to.clone());
        }
        m.body(body(notice, &self.origin, now))
            .map_err(|e| DeliverError::Message(e.to_string()))
    }
}

#[async_trait::async_trait]
impl Deliver for Email {
    async fn deliver(&self, notices: &[Notice], now: SystemTime) -> Result<(), DeliverError> {
        for notice in notices {
            let message = self.message(notice, now)?;
            self.transport
                .send(message)
                .await
                .map_err(|e| DeliverError::Smtp(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::shape::tests::{T0, notice};

    #[test]
    fn a_mail_says_what_fired_against_which_line_and_since_when() {
        let origin = Origin::new("prod", Some("https://m:7441"));
        let n = notice();
        assert_eq!(subject(&n), "[FIRING] web-1 cpu critical: 97.0% ≥ 90.0%");
        let text = body(&n, &origin, shape::at_ms(T0 + 125_400));
        assert_eq!(
            text,
            "web-1 cpu critical: 97.0% ≥ 90.0%

Labels:
  alertname = NodeCpuCritical
  cluster = prod
  metric = cpu
  node = web-1
  role = web,edge
  severity = critical

Status:    firing
Value:     97.0%
Threshold: 90.0%
Started:   2026-12-01T10:00:00.000Z
Ended:     still firing
Duration:  2m 5s so far
Node:      https://m:7441/nodes/web-1
"
        );
    }

    #[test]
    fn a_resolved_mail_says_how_long_it_lasted() {
        let mut n = notice();
        n.status = NoticeStatus::Resolved;
        n.value = 42.0;
        n.ends_at_ms = Some(T0 + 3_723_000);
        n.why = "node drained".into();
        assert_eq!(subject(&n), "[RESOLVED] web-1 cpu critical resolved: 42.0%");
        let text = body(&n, &Origin::new("prod", None), shape::at_ms(T0 + 9_999_000));
        assert!(
            text.contains("Ended:     2026-12-01T11:02:03.000Z\n"),
            "{text}"
        );
        assert!(text.contains("Duration:  1h 2m 3s\n"), "{text}");
        assert!(text.contains("Why:       node drained\n"), "{text}");
        assert!(!text.contains("Node:"), "{text}");
    }
}
