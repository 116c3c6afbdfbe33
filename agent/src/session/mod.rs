//! The agent's session with a master: connect, say hello, apply the
//! snapshot and deltas it sends, acknowledge each, report usage on a timer.
//! When a session ends or an attempt fails the next master is tried; once
//! every master failed in a row, the agent waits (full jitter) before the
//! next pass — while the health endpoint keeps serving the last state (see
//! `agent/LIFECYCLE.md`). A state served under an older leadership epoch
//! than one already seen is refused, and another master tried.
//!
//! - `convert` — what the master sends ⇄ the agent's own desired state.
//! - `rotation` — the order masters are tried in, and the backoff.

mod convert;
mod rotation;

pub use rotation::{CONNECT_TIMEOUT, Rotation, backoff};

use crate::enroll::{Credentials, Enrollment, Progress};
use crate::state::{Cache, Desired, Shared};
use crate::usage::Sampler;
use cluster_model::job::{JobCommand, JobDone};
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
    /// The masters, as configured (never empty); each session tries them
    /// in a [`Rotation`] of its own order.
    pub masters: Vec<String>,
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
    #[error("cannot reach the master at {master}: no connection within {after:?}")]
    ConnectTimeout { master: String, after: Duration },
    #[error("the master refused the session: {}", .0.message())]
    Refused(tonic::Status),
    #[error("the session broke: {0}")]
    Broken(tonic::Status),
    #[error("the master closed the session")]
    Closed,
    #[error("invalid message from the master: {0}")]
    Invalid(cluster_model::wire::WireError),
    #[error(
        "the master at {master} served epoch {epoch}, older than epoch {seen} this agent has seen: \
         it no longer leads (if the store was rebuilt from scratch, remove {cache} to start over)"
    )]
    StaleEpoch {
        master: String,
        epoch: u64,
        seen: u64,
        cache: std::path::PathBuf,
    },
}

/// A session that delivered a state and lasted this long was a good one:
/// the next master is tried at once, and failures count afresh.
const GOOD_SESSION: Duration = Duration::from_secs(1);

/// Enrolls if needed, then keeps a session open until `token` is cancelled.
pub async fn maintain(ctx: Arc<Context>, token: CancellationToken) {
    let mut sampler = Sampler::new();
    let mut rotation = Rotation::new(&ctx.masters, |n| fastrand::usize(..n));
    // After a refusal of our certificate the token is not used again: a
    // revoked node goes back to pending, as in Salt.
    let mut token_spent = false;
    loop {
        // Read again for every session: a renewed certificate is taken up
        // by the next one.
        let Some(creds) = enroll(&ctx, &mut rotation, token_spent, &token).await else {
            return;
        };
        let master = rotation.current().to_owned();
        let started = Instant::now();
        let mut got_state = false;
        let result = once(&ctx, &master, &creds, &mut sampler, &token, &mut got_state).await;
        ctx.shared.set_connected(false);
        if token.is_cancelled() {
            return;
        }
        match result {
            Ok(()) => {}
            Err(SessionError::Refused(status)) if status.code() == tonic::Code::Unauthenticated => {
                tracing::error!(
                    %master,
                    reason = status.message(),
                    "the master no longer accepts this node's certificate; enrolling again (pending until an admin accepts)"
                );
                ctx.enrollment.forget_certificate();
                token_spent = true;
            }
            Err(e) => tracing::warn!(%master, error = %e, "session with the master ended"),
        }
        // A refused certificate or a stale master delivered no state: it
        // counts as a failure, so neither can spin.
        let pass = if got_state && started.elapsed() > GOOD_SESSION {
            rotation.ended();
            None
        } else {
            rotation.failed()
        };
        let Some(pass) = pass else { continue };
        let delay = backoff(pass, ctx.reconnect_min, ctx.reconnect_max, fastrand::f64());
        tracing::debug!(
            ?delay,
            pass,
            "every master failed; waiting before the next pass"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = token.cancelled() => return,
        }
    }
}

/// Credentials from disk, or by enrolling with the masters in turn
/// (backing off after a whole pass failed, polling while the key is
/// pending); `None` when cancelled.
async fn enroll(
    ctx: &Context,
    rotation: &mut Rotation,
    token_spent: bool,
    token: &CancellationToken,
) -> Option<Credentials> {
    match ctx.enrollment.existing() {
        Ok(Some(c)) => return Some(c),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot read the node's credentials"),
    }
    let mut polls = 0u32;
    let mut said_pending = false;
    loop {
        let master = rotation.current().to_owned();
        let delay = match ctx.enrollment.attempt(&master, token_spent).await {
            Ok(Progress::Enrolled(c)) => {
                rotation.answered();
                tracing::info!(node = %ctx.hello.node_id, %master, "enrolled: the master signed this node's certificate");
                return Some(c);
            }
            Ok(Progress::Pending(msg)) => {
                rotation.answered();
                if !said_pending {
                    tracing::warn!(node = %ctx.hello.node_id, %master, "{msg}");
                    said_pending = true;
                }
                // Pending keys are polled at most every few seconds.
                let max = ctx.reconnect_max.max(Duration::from_secs(2));
                let delay = backoff(polls, ctx.reconnect_min, max, fastrand::f64());
                polls = polls.saturating_add(1);
                Some(delay)
            }
            Err(e) => {
                tracing::warn!(%master, error = %e, "enrollment failed; trying the next master");
                rotation.failed().map(|pass| {
                    backoff(pass, ctx.reconnect_min, ctx.reconnect_max, fastrand::f64())
                })
            }
        };
        let Some(delay) = delay else { continue };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = token.cancelled() => return None,
        }
    }
}

async fn once(
    ctx: &Context,
    master: &str,
    creds: &Credentials,
    sampler: &mut Sampler,
    token: &CancellationToken,
    got_state: &mut bool,
) -> Result<(), SessionError> {
    let connect = |source| SessionError::Connect {
        master: master.to_owned(),
        source,
    };
    let (host, _) = crate::enroll::host_port(master);
    let endpoint = Endpoint::from_shared(master.to_owned())
        .map_err(connect)?
        .tls_config(creds.tls(&host))
        .map_err(connect)?
        .connect_timeout(CONNECT_TIMEOUT)
        .local_address(ctx.enrollment.source_for(master))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| SessionError::ConnectTimeout {
            master: master.to_owned(),
            after: CONNECT_TIMEOUT,
        })?
        .map_err(connect)?;
    let mut client = pb::agent_service_client::AgentServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(16);
    let mut facts_rx = ctx.shared.facts.subscribe();
    let facts = facts_rx.borrow_and_update().clone();
    let hello = Hello {
        cached_generation: ctx.shared.current().generation,
        // As the last collection says: a refresh may have changed them.
        roles: cluster_model::facts::roles_of(&facts.grains)
            .unwrap_or_else(|| ctx.hello.roles.clone()),
        grains: facts.grains.clone(),
        facts: facts.facts.clone(),
        fact_problems: facts.problems.clone(),
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
    tracing::info!(%master, "session open");
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
    // The last acknowledgement said the state could not be cached: the
    // write is tried again at every report until the disk takes it.
    let mut uncached = false;
    let mut assembly = cluster_model::wire::HostsAssembly::default();
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
            changed = facts_rx.changed() => {
                if changed.is_ok() {
                    let facts = facts_rx.borrow_and_update().clone();
                    let msg = Out::Facts((&*facts).into());
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
                    crate::jobs::JobEvent::Done(d) => {
                        // Facts a job published (`grains refresh`) go
                        // first: the master has them when the job is done.
                        if facts_rx.has_changed().unwrap_or(false) {
                            let facts = facts_rx.borrow_and_update().clone();
                            let msg = Out::Facts((&*facts).into());
                            if tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_err() {
                                return Err(SessionError::Closed);
                            }
                        }
                        Out::Done(d.into())
                    }
                };
                if tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_err() {
                    return Err(SessionError::Closed);
                }
            }
            _ = report.tick() => {
                let sample = sampler.sample(cluster_model::time::now_ms());
                let usage = (&sample).into();
                ctx.shared.usage.send_replace(Some(sample));
                if tx.send(pb::AgentMessage { msg: Some(Out::Usage(usage)) }).await.is_err() {
                    return Err(SessionError::Closed);
                }
                if uncached && let Some(ack) = cache_again(ctx) {
                    uncached = false;
                    if tx.send(pb::AgentMessage { msg: Some(ack) }).await.is_err() {
                        return Err(SessionError::Closed);
                    }
                }
            }
            msg = inbound.message() => {
                let msg = msg.map_err(SessionError::Broken)?.ok_or(SessionError::Closed)?;
                // A snapshot or delta sent in parts applies once whole.
                let Some(msg) = assembly.take(msg).map_err(SessionError::Invalid)? else {
                    continue;
                };
                let reply = match msg.msg {
                    Some(In::Snapshot(s)) => {
                        let s = Snapshot::try_from(s).map_err(SessionError::Invalid)?;
                        match receive(ctx, master, Push::Snapshot(s))? {
                            Received::Reply(reply) => {
                                *got_state = true;
                                Some(*reply)
                            }
                            Received::Printed => return Ok(()),
                        }
                    }
                    Some(In::Run(r)) => {
                        tracing::info!(job = %r.job_id, argv = ?r.argv, builtin = %r.builtin, "running a job");
                        let job_id = r.job_id.clone();
                        match JobCommand::try_from(r) {
                            Ok(cmd) => {
                                if let Some(job) = convert::job(cmd, &ctx.shared.current().name) {
                                    ctx.runner.start(job, job_tx.clone());
                                }
                                None
                            }
                            // A built-in job of a newer master: said so, not run.
                            Err(e) => Some(Out::Done((&JobDone {
                                job_id,
                                exit_code: -1,
                                error: format!("{e} (this agent is version {})", env!("CARGO_PKG_VERSION")),
                                ..JobDone::default()
                            }).into())),
                        }
                    }
                    Some(In::Cancel(c)) => {
                        tracing::info!(job = %c.job_id, "cancelling a job");
                        ctx.runner.cancel(&c.job_id);
                        None
                    }
                    Some(In::Delta(d)) => {
                        let d = Delta::try_from(d).map_err(SessionError::Invalid)?;
                        match receive(ctx, master, Push::Delta(d))? {
                            Received::Reply(reply) => Some(*reply),
                            Received::Printed => return Ok(()),
                        }
                    }
                    // Taken up by the assembly above.
                    Some(In::HostsChunk(_)) | None => None,
                };
                if let Some(Out::Ack(a)) = &reply {
                    uncached = !a.cache_error.is_empty();
                }
                if let Some(reply) = reply
                    && tx.send(pb::AgentMessage { msg: Some(reply) }).await.is_err() {
                        return Err(SessionError::Closed);
                    }
            }
        }
    }
}

/// Writes the current state to the cache again after a failure; once it
/// is durable, the acknowledgement that says so (so the master clears its
/// warning), or `None` while the disk still refuses.
fn cache_again(ctx: &Context) -> Option<Out> {
    let desired = ctx.shared.current();
    if let Err(e) = ctx.cache.store_if_changed(&desired) {
        tracing::debug!(error = %e, "the desired state still cannot be cached");
        return None;
    }
    tracing::info!(
        generation = desired.generation,
        "the desired state is cached again"
    );
    let ack = Ack {
        generation: desired.generation,
        health: crate::health::status(&desired, &ctx.shared.checks.borrow()),
        cache_error: None,
    };
    Some(Out::Ack((&ack).into()))
}

/// A state the master pushed.
enum Push {
    Snapshot(Snapshot),
    Delta(Delta),
}

/// What became of a pushed state.
#[derive(Debug)]
enum Received {
    /// What to answer: the acknowledgement of the state applied, or a
    /// request for a snapshot when a delta does not follow on.
    Reply(Box<Out>),
    /// A dry run printed what the hosts file would become.
    Printed,
}

/// Applies a pushed state, unless it was served under an older epoch than
/// the one this agent holds — the highest it has seen, since every state
/// applied carries its epoch and an older one is never applied. Equal or
/// newer epochs apply, and the newer one is remembered with the state (in
/// memory and in the cache).
fn receive(ctx: &Context, master: &str, push: Push) -> Result<Received, SessionError> {
    let current = ctx.shared.current();
    let epoch = match &push {
        Push::Snapshot(s) => s.epoch,
        Push::Delta(d) => d.epoch,
    };
    if epoch < current.epoch {
        return Err(SessionError::StaleEpoch {
            master: master.to_owned(),
            epoch,
            seen: current.epoch,
            cache: ctx.cache.path().to_owned(),
        });
    }
    let desired = match push {
        Push::Snapshot(s) => {
            let desired = convert::snapshot(s);
            if let Some(stop) = &ctx.dry_run {
                crate::hosts_sync::print_plan(ctx, &desired);
                stop.cancel();
                return Ok(Received::Printed);
            }
            desired
        }
        Push::Delta(d) if d.prev_generation != current.generation => {
            let have = current.generation;
            tracing::warn!(
                have,
                prev = d.prev_generation,
                "gap in deltas; asking for a snapshot"
            );
            return Ok(Received::Reply(Box::new(Out::Resync(pb::ResyncRequest {
                have_generation: have,
            }))));
        }
        Push::Delta(d) => convert::patch(&current, d),
    };
    if epoch > current.epoch && current.epoch > 0 {
        tracing::info!(%master, epoch, was = current.epoch, "a newer leadership epoch");
    }
    Ok(Received::Reply(Box::new(apply(ctx, desired))))
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
mod tests;
