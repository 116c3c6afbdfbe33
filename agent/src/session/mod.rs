//! The agent's session with the master: connect, say hello, apply the
//! snapshot and deltas it sends, acknowledge each, report usage on a timer;
//! on any failure, reconnect with exponential backoff and jitter, while the
//! health endpoint keeps serving the last state (see `agent/LIFECYCLE.md`).
//!
//! - `convert` — what the master sends ⇄ the agent's own desired state.

mod convert;

use crate::enroll::{Credentials, Enrollment, Progress};
use crate::state::{Cache, Desired, Shared};
use crate::usage::Sampler;
use cluster_model::session::{Ack, Delta, Hello, Snapshot};
use cluster_proto as pb;
use pb::agent_message::Msg as Out;
use pb::master_message::Msg as In;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

/// What a session needs; kept across reconnects.
pub struct Context {
    pub master: String,
    /// What this agent says of itself on every session (the cached
    /// generation is filled in at each connect).
    pub hello: Hello,
    pub report_interval: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub shared: Arc<Shared>,
    pub cache: Cache,
    pub enrollment: Enrollment,
    pub runner: Arc<crate::jobs::Runner>,
    /// Where every node's line goes (`None`: hosts are not managed here).
    pub hosts_file: Option<crate::hosts::HostsFile>,
    pub set_hostname: bool,
    /// Print what the hosts file would become, then stop.
    pub dry_run: Option<CancellationToken>,
    /// The proxy and HAProxy's stats, when this node has them.
    pub balancers: crate::balancing::Balancers,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot reach the master at {master}: {}", crate::enroll::error_chain(.source))]
    Connect {
        master: String,
        source: tonic::transport::Error,
    },
    #[error("the master refused the session: {}", .0.message())]
    Refused(tonic::Status),
    #[error("the session broke: {0}")]
    Broken(tonic::Status),
    #[error("the master closed the session")]
    Closed,
    #[error("invalid message from the master: {0}")]
    Invalid(cluster_model::wire::WireError),
}

/// The delay before reconnect attempt `attempt` (0-based): exponential from
/// `min`, capped at `max`, with "equal jitter" (half fixed, half random) so
/// a fleet that lost its master does not return in lockstep. `unit` is a
/// random number in [0, 1).
pub fn backoff(attempt: u32, min: Duration, max: Duration, unit: f64) -> Duration {
    let exp = min.saturating_mul(1u32 << attempt.min(20)).min(max);
    exp / 2 + exp.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
}

/// Enrolls if needed, then keeps a session open until `token` is cancelled.
pub async fn maintain(ctx: Arc<Context>, token: CancellationToken) {
    let mut sampler = Sampler::new();
    let mut attempt = 0u32;
    let mut credentials: Option<Credentials> = None;
    // After a refusal of our certificate the token is not used again: a
    // revoked node goes back to pending, as in Salt.
    let mut token_spent = false;
    loop {
        let creds = match &credentials {
            Some(c) => c.clone(),
            None => match enroll(&ctx, token_spent, &token).await {
                Some(c) => {
                    // The backoff carries on: only a session that delivered a
                    // state resets it, so a refused certificate cannot spin.
                    credentials = Some(c.clone());
                    c
                }
                None => return,
            },
        };
        let started = Instant::now();
        let mut got_state = false;
        let result = once(&ctx, &creds, &mut sampler, &token, &mut got_state).await;
        ctx.shared.set_connected(false);
        if token.is_cancelled() {
            return;
        }
        match result {
            Ok(()) => {}
            Err(SessionError::Refused(status)) if status.code() == tonic::Code::Unauthenticated => {
                tracing::error!(
                    reason = status.message(),
                    "the master no longer accepts this node's certificate; enrolling again (pending until an admin accepts)"
                );
                ctx.enrollment.forget_certificate();
                credentials = None;
                token_spent = true;
            }
            Err(e) => tracing::warn!(error = %e, "session with the master ended"),
        }
        if got_state && started.elapsed() > Duration::from_secs(1) {
            attempt = 0;
        }
        let delay = backoff(
            attempt,
            ctx.reconnect_min,
            ctx.reconnect_max,
            fastrand::f64(),
        );
        attempt = attempt.saturating_add(1);
        tracing::debug!(?delay, attempt, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = token.cancelled() => return,
        }
    }
}

/// Credentials from disk, or by enrolling (retrying with backoff while the
/// master is away or the key is pending); `None` when cancelled.
async fn enroll(
    ctx: &Context,
    token_spent: bool,
    token: &CancellationToken,
) -> Option<Credentials> {
    match ctx.enrollment.existing() {
        Ok(Some(c)) => return Some(c),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot read the node's credentials"),
    }
    let mut attempt = 0u32;
    let mut said_pending = false;
    loop {
        match ctx.enrollment.attempt(token_spent).await {
            Ok(Progress::Enrolled(c)) => {
                tracing::info!(node = %ctx.hello.node_id, "enrolled: the master signed this node's certificate");
                return Some(c);
            }
            Ok(Progress::Pending(msg)) => {
                if !said_pending {
                    tracing::warn!(node = %ctx.hello.node_id, "{msg}");
                    said_pending = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "enrollment failed; retrying"),
        }
        // Pending keys are polled at most every few seconds.
        let max = ctx.reconnect_max.max(Duration::from_secs(2));
        let delay = backoff(attempt, ctx.reconnect_min, max, fastrand::f64());
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = token.cancelled() => return None,
        }
    }
}

async fn once(
    ctx: &Context,
    creds: &Credentials,
    sampler: &mut Sampler,
    token: &CancellationToken,
    got_state: &mut bool,
) -> Result<(), SessionError> {
    let connect = |source| SessionError::Connect {
        master: ctx.master.clone(),
        source,
    };
    let (host, _) = crate::enroll::host_port(&ctx.master);
    let channel = Endpoint::from_shared(ctx.master.clone())
        .map_err(connect)?
        .tls_config(creds.tls(&host))
        .map_err(connect)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .connect()
        .await
        .map_err(connect)?;
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(16);
    let hello = Hello {
        cached_generation: ctx.shared.current().generation,
        ..ctx.hello.clone()
    };
    let hello = pb::AgentMessage {
        msg: Some(Out::Hello((&hello).into())),
    };
    tx.send(hello).await.map_err(|_| SessionError::Closed)?;
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(SessionError::Refused)?
        .into_inner();
    ctx.shared.set_connected(true);
    tracing::info!(master = %ctx.master, "session open");
    // Jobs started on this session report through it; when it ends they
    // are cancelled (their results could not be delivered).
    let (job_tx, mut job_rx) = mpsc::channel::<crate::jobs::JobEvent>(64);
    let _cancel_jobs = CancelOnDrop(ctx.runner.clone());

    let mut report = tokio::time::interval(ctx.report_interval);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    report.tick().await; // the first tick is immediate; CPU needs time between samples
    // Checks and balancer reports: sent once the first state is applied,
    // then whenever they change.
    let mut checks_rx = ctx.shared.checks.subscribe();
    let mut proxy_rx = ctx.balancers.proxy.as_ref().map(|p| p.changes());
    let mut haproxy_rx = ctx.balancers.haproxy.clone();
    let mut lb_sent: Option<cluster_model::LbReport> = None;
    let mut announced = false;
    loop {
        let mut outgoing = Vec::new();
        if *got_state && !announced {
            announced = true;
            checks_rx.borrow_and_update();
            if !ctx.shared.checks.borrow().checks.is_empty() {
                outgoing.push(checks_msg(&ctx.shared.checks.borrow()));
            }
        }
        if announced && ctx.balancers.any() {
            let now = ctx.balancers.report();
            if lb_sent.as_ref() != Some(&now) {
                outgoing.push(Out::Lb((&now).into()));
                lb_sent = Some(now);
            }
        }
        for msg in outgoing {
            if tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_err() {
                return Err(SessionError::Closed);
            }
        }
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            changed = checks_rx.changed(), if announced => {
                if changed.is_ok() {
                    let msg = checks_msg(&checks_rx.borrow_and_update());
                    if tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_err() {
                        return Err(SessionError::Closed);
                    }
                }
            }
            _ = changed_or_pending(&mut proxy_rx) => {}
            _ = changed_or_pending(&mut haproxy_rx) => {}
            Some(ev) = job_rx.recv() => {
                let msg = match &ev {
                    crate::jobs::JobEvent::Output(o) => Out::Output(o.into()),
                    crate::jobs::JobEvent::Done(d) => Out::Done(d.into()),
                };
                if tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_err() {
                    return Err(SessionError::Closed);
                }
            }
            _ = report.tick() => {
                let usage = (&sampler.sample(cluster_model::time::now_ms())).into();
                if tx.send(pb::AgentMessage { msg: Some(Out::Usage(usage)) }).await.is_err() {
                    return Err(SessionError::Closed);
                }
            }
            msg = inbound.message() => {
                let msg = msg.map_err(SessionError::Broken)?.ok_or(SessionError::Closed)?;
                let reply = match msg.msg {
                    Some(In::Snapshot(s)) => {
                        *got_state = true;
                        let desired = convert::snapshot(Snapshot::try_from(s).map_err(SessionError::Invalid)?);
                        if let Some(stop) = &ctx.dry_run {
                            crate::hosts_sync::print_plan(ctx, &desired);
                            stop.cancel();
                            return Ok(());
                        }
                        Some(apply(ctx, desired))
                    }
                    Some(In::Run(r)) => {
                        tracing::info!(job = %r.job_id, argv = ?r.argv, "running a job");
                        if let Some(job) = convert::job(r.into(), &ctx.shared.current().name) {
                            ctx.runner.start(job, job_tx.clone());
                        }
                        None
                    }
                    Some(In::Cancel(c)) => {
                        tracing::info!(job = %c.job_id, "cancelling a job");
                        ctx.runner.cancel(&c.job_id);
                        None
                    }
                    Some(In::Delta(d)) => {
                        let have = ctx.shared.current().generation;
                        if d.prev_generation != have {
                            tracing::warn!(have, prev = d.prev_generation, "gap in deltas; asking for a snapshot");
                            Some(Out::Resync(pb::ResyncRequest { have_generation: have }))
                        } else {
                            let d = Delta::try_from(d).map_err(SessionError::Invalid)?;
                            Some(apply(ctx, convert::patch(&ctx.shared.current(), d)))
                        }
                    }
                    None => None,
                };
                if let Some(reply) = reply
                    && tx.send(pb::AgentMessage { msg: Some(reply) }).await.is_err() {
                        return Err(SessionError::Closed);
                    }
            }
        }
    }
}

/// Resolves when the watch moves; never when there is none (or it closed).
async fn changed_or_pending<T>(rx: &mut Option<tokio::sync::watch::Receiver<T>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                *rx = None;
            }
        }
        None => std::future::pending().await,
    }
}

struct CancelOnDrop(Arc<crate::jobs::Runner>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel_all();
    }
}

fn checks_msg(status: &crate::checks::CheckStatus) -> Out {
    Out::Checks(pb::Checks {
        checks: convert::checks(status).iter().map(Into::into).collect(),
    })
}

/// Makes `desired` current — flips what the health endpoint answers (a
/// drain takes effect at once, disk or no disk), then caches it on disk —
/// and returns the acknowledgement: of a durable state, or, when the
/// cache could not be written, of an applied one with why it is not
/// durable, so the master shows it and records it.
fn apply(ctx: &Context, desired: Desired) -> Out {
    let generation = desired.generation;
    ctx.balancers.apply(desired.proxy.as_ref());
    let health = crate::health::status(&desired, &ctx.shared.checks.borrow());
    let mut before = None;
    let changed = ctx.shared.desired.send_if_modified(|cur| {
        if *cur == desired {
            return false;
        }
        before = Some(cur.flag_status());
        *cur = desired.clone();
        true
    });
    if changed {
        crate::hosts_sync::sync(ctx, &desired);
        if before != Some(desired.flag_status()) {
            match &desired.offline {
                Some(o) => {
                    tracing::info!(generation, reason = %o.reason, by = %o.by, "drained: health now answers 503")
                }
                None => tracing::info!(generation, "in service: health now answers 200"),
            }
        }
    }
    // Written even when unchanged: the last write may have failed.
    let cache_error = match ctx.cache.store_if_changed(&desired) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot cache the desired state; a restart without the master would lose it");
            Some(e.to_string())
        }
    };
    let ack = Ack {
        generation,
        health,
        cache_error,
    };
    Out::Ack((&ack).into())
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_then_caps_and_jitters_within_half() {
        let ms = Duration::from_millis;
        let (min, max) = (ms(100), ms(5000));
        assert_eq!(backoff(0, min, max, 0.0), ms(50));
        assert_eq!(backoff(0, min, max, 1.0), ms(100));
        assert_eq!(backoff(3, min, max, 0.0), ms(400));
        assert_eq!(backoff(10, min, max, 0.0), ms(2500));
        assert_eq!(backoff(10, min, max, 1.0), ms(5000));
        assert_eq!(backoff(u32::MAX, min, max, 0.5), ms(3750));
    }
}
