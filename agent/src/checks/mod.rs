//! Local health checks: the `[[check]]`s of the configuration, each run on
//! its own task every `interval`, each attempt bounded by `timeout`, judged
//! with HAProxy's rise and fall, published on a `watch` of [`CheckStatus`].
//!
//! - [`probe`] — one attempt of one check (HTTP, TCP, command).
//! - [`RiseFall`] — the judgement, pure: the first result sets the state;
//!   after that a passing check needs `fall` consecutive failures to fail
//!   and a failing one `rise` consecutive passes to pass.
//! - [`spawn`] — the runner.
//!
//! The watch changes only when a check's state flips, or when a failing
//! check fails differently (its output changed), so whoever waits on it —
//! the session reports it to the master — is not woken every interval.
//! Until a check has run once it counts as passing: the node does not fail
//! its health at start-up for want of a first result, and the first attempt
//! is made at once.

pub mod probe;

use crate::config::{CheckKind, CheckSpec};
use cluster_model::redact::Redactor;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Every check's state, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckStatus {
    pub checks: Vec<CheckState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    pub name: String,
    /// "http", "tcp" or "command".
    pub kind: &'static str,
    /// The judged state (after rise/fall); true until the first result.
    pub passing: bool,
    /// Whether any result came yet; `passing` is only a presumption before.
    pub ran: bool,
    /// What the attempt that set the state said; for a failing check, what
    /// the latest attempt said.
    pub output: String,
    /// When `passing` last changed (the first result counts), ms since the
    /// epoch; 0 before the first result.
    pub since_ms: u64,
}

impl CheckStatus {
    /// Every check of `specs`, none run yet.
    pub fn new(specs: &[CheckSpec]) -> CheckStatus {
        CheckStatus {
            checks: specs
                .iter()
                .map(|s| CheckState {
                    name: s.name.clone(),
                    kind: kind_name(&s.kind),
                    passing: true,
                    ran: false,
                    output: String::new(),
                    since_ms: 0,
                })
                .collect(),
        }
    }

    /// The first failing check, in configuration order.
    pub fn failing(&self) -> Option<&CheckState> {
        self.checks.iter().find(|c| c.ran && !c.passing)
    }

    /// Whether some check has not run yet.
    pub fn pending(&self) -> bool {
        self.checks.iter().any(|c| !c.ran)
    }
}

pub fn kind_name(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Http { .. } => "http",
        CheckKind::Tcp { .. } => "tcp",
        CheckKind::Command { .. } => "command",
    }
}

/// HAProxy's rise and fall over a stream of results.
#[derive(Debug, Clone)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    state: Option<bool>,
    /// Consecutive results disagreeing with `state`.
    streak: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            state: None,
            streak: 0,
        }
    }

    /// Takes one result; returns the state after it.
    pub fn observe(&mut self, pass: bool) -> bool {
        if let Some(current) = self.state.filter(|current| *current != pass) {
            self.streak += 1;
            let needed = if current { self.fall } else { self.rise };
            if self.streak < needed {
                return current;
            }
        }
        self.state = Some(pass);
        self.streak = 0;
        pass
    }
}

/// What one judged result did to a check's published state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The first result, or `passing` flipped.
    Flipped,
    /// Still failing, differently.
    Output,
    None,
}

/// Records a judged result (`passing`, after rise/fall) of an attempt that
/// said `attempt` into `state`.
fn record(state: &mut CheckState, passing: bool, attempt: &probe::Attempt, now_ms: u64) -> Change {
    if !state.ran || state.passing != passing {
        state.ran = true;
        state.passing = passing;
        state.output = attempt.output.clone();
        state.since_ms = now_ms;
        Change::Flipped
    } else if !passing && !attempt.pass && state.output != attempt.output {
        state.output = attempt.output.clone();
        Change::Output
    } else {
        Change::None
    }
}

/// Runs every check of `specs` until `shutdown`, publishing on `status`
/// (which is reset to the checks of `specs`, none run). The handle
/// completes when every check task has stopped; an attempt in flight at
/// shutdown is abandoned (a command's process group is killed).
pub fn spawn(
    specs: Vec<CheckSpec>,
    redact: Redactor,
    status: watch::Sender<CheckStatus>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    status.send_replace(CheckStatus::new(&specs));
    let mut tasks = JoinSet::new();
    for (index, spec) in specs.into_iter().enumerate() {
        tasks.spawn(run(
            index,
            spec,
            redact.clone(),
            status.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(async move { while tasks.join_next().await.is_some() {} })
}

async fn run(
    index: usize,
    spec: CheckSpec,
    redact: Redactor,
    status: watch::Sender<CheckStatus>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(spec.interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut judge = RiseFall::new(spec.rise, spec.fall);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let mut attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = probe::attempt(&spec.kind, spec.timeout) => a,
        };
        // Before anything — the log, the master — sees it.
        attempt.output = redact.redact(&attempt.output);
        let passing = judge.observe(attempt.pass);
        tracing::debug!(check = %spec.name, pass = attempt.pass, passing, output = %attempt.output, "check attempt");
        let mut change = Change::None;
        status.send_if_modified(|s| match s.checks.get_mut(index) {
            Some(state) if state.name == spec.name => {
                change = record(state, passing, &attempt, now_ms());
                change != Change::None
            }
            _ => false,
        });
        match change {
            Change::Flipped if passing => {
                tracing::info!(check = %spec.name, output = %attempt.output, "check passing")
            }
            Change::Flipped => {
                tracing::warn!(check = %spec.name, output = %attempt.output, "check failing")
            }
            Change::Output => {
                tracing::debug!(check = %spec.name, output = %attempt.output, "check still failing")
            }
            Change::None => {}
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
