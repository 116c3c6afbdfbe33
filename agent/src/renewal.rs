//! The node's certificate renewed before it expires, with no interruption:
//! after two thirds of its life the agent asks a master, with the
//! certificate it has, for a new one for the same key, and writes it in
//! place; the open session goes on, and the next one presents the new
//! certificate (the master accepts the old one until it expires, so an
//! answer lost on the way is simply asked for again).

use crate::enroll::validity;
use crate::session::Context;
use cluster_model::access::renew_from;
use cluster_model::time::now_ms;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the certificate is looked at when nothing is due (also the
/// wait before the node has enrolled).
const LOOK_EVERY: Duration = Duration::from_secs(3600);
/// Between failed renewals: a tenth of the time left, within these bounds.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Keeps the node's certificate renewed until `token` is cancelled.
pub async fn keep_renewed(ctx: Arc<Context>, token: CancellationToken) {
    let mut next_master = fastrand::usize(..ctx.masters.len());
    let mut said_when = 0;
    loop {
        let wait = match ctx.enrollment.existing() {
            Ok(Some(creds)) => match validity(&creds.cert_pem) {
                Ok((not_before, not_after)) => {
                    let (now, from) = (now_ms(), renew_from(not_before, not_after));
                    if now < from {
                        if said_when != from {
                            tracing::info!(valid_until = %rfc3339(not_after), renews_from = %rfc3339(from), "the node's certificate");
                            said_when = from;
                        }
                        Duration::from_millis(from - now)
                    } else {
                        let master = &ctx.masters[next_master % ctx.masters.len()];
                        match ctx.enrollment.renew(master, &creds).await {
                            Ok(renewed) => {
                                let (_, until) = validity(&renewed.cert_pem).unwrap_or_default();
                                tracing::info!(%master, valid_until = %rfc3339(until), "renewed the node's certificate");
                                Duration::ZERO
                            }
                            Err(e) => {
                                next_master += 1;
                                let left = Duration::from_millis(not_after.saturating_sub(now));
                                let retry = (left / 10).clamp(RETRY_MIN, RETRY_MAX);
                                tracing::warn!(%master, error = %e, valid_until = %rfc3339(not_after), ?retry, "cannot renew the node's certificate");
                                retry
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the node's certificate");
                    LOOK_EVERY
                }
            },
            // Not enrolled yet (or being enrolled again): look again soon.
            Ok(None) => Duration::from_secs(1),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the node's credentials");
                LOOK_EVERY
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.min(LOOK_EVERY)) => {}
            _ = token.cancelled() => return,
        }
    }
}
