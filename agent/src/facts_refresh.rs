//! Facts collected again while the agent runs: on SIGHUP and every facts
//! interval. A collection that differs from the last is published on
//! [`Shared::facts`](crate::state::Shared); the session sends it to the
//! master, which records the change as an event.

use crate::facts;
use crate::state::Shared;
use cluster_model::{FactProblem, Facts, Grains, NodeId};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a collection needs besides the machine.
#[derive(Debug, Clone)]
pub struct Collector {
    pub id: NodeId,
    pub roles: Vec<String>,
    /// The config's static grains: they win over collected ones.
    pub static_grains: Grains,
    /// Where external facts are (empty: nowhere), and how long each
    /// executable there may run.
    pub facts_dir: PathBuf,
    pub facts_timeout: Duration,
}

/// External facts as read, failures included.
pub struct External {
    facts: Grains,
    problems: Vec<FactProblem>,
}

impl Collector {
    /// Reads the facts directory.
    pub async fn external(&self) -> External {
        let got = facts::external::collect(&self.facts_dir, self.facts_timeout).await;
        External {
            facts: got.facts,
            problems: got
                .problems
                .into_iter()
                .map(|p| FactProblem {
                    source: p.source,
                    problem: p.problem,
                })
                .collect(),
        }
    }

    /// Everything the master is told, from a machine and a facts
    /// directory already read. The facts are Facter's core facts with the
    /// external facts laid over them key by key: an external fact wins
    /// over a core fact of the same name, as in Facter.
    pub fn shape(&self, machine: &facts::Machine, external: External) -> Facts {
        let mut all = facts::facts(machine);
        all.extend(external.facts);
        Facts {
            grains: facts::grains(&self.id, machine, &self.roles, &self.static_grains),
            facts: all,
            problems: external.problems,
        }
    }

    /// Reads the machine (off the runtime's threads) and the facts
    /// directory again; `None` when reading the machine failed (the last
    /// facts stand).
    pub async fn collect(&self) -> Option<Facts> {
        let (machine, external) =
            tokio::join!(tokio::task::spawn_blocking(facts::collect), self.external());
        match machine {
            Ok(machine) => Some(self.shape(&machine, external)),
            Err(e) => {
                tracing::error!(error = %e, "collecting facts failed; keeping the last ones");
                None
            }
        }
    }
}

/// Publishes `facts` unless they are what was published last; whether
/// they were new.
pub fn publish(shared: &Shared, facts: Facts) -> bool {
    shared.facts.send_if_modified(|current| {
        if **current == facts {
            false
        } else {
            *current = Arc::new(facts);
            true
        }
    })
}

/// Collects on request (`clusterctl grains refresh`): what it says back.
#[derive(Clone)]
pub struct Refresher {
    pub collector: Collector,
    pub shared: Arc<Shared>,
}

impl Refresher {
    /// Collects again and publishes what changed; the line the job prints
    /// (which keys moved, which sources fail), or why nothing was read.
    pub async fn refresh(&self) -> Result<String, String> {
        let Some(facts) = self.collector.collect().await else {
            return Err(
                "collecting facts failed (see the agent's log); the last ones stand".into(),
            );
        };
        let before = self.shared.facts.borrow().clone();
        let moved = cluster_model::facts::changed_keys(
            &before.grains,
            &facts.grains,
            &before.facts,
            &facts.facts,
        );
        let failing: Vec<String> = facts.problems.iter().map(ToString::to_string).collect();
        publish(&self.shared, facts);
        tracing::info!(changed = moved.len(), "facts collected again, as asked");
        let mut line = if moved.is_empty() {
            "facts unchanged".to_owned()
        } else {
            format!("facts changed: {}", cluster_model::facts::named(&moved))
        };
        if !failing.is_empty() {
            line.push_str(&format!("; external facts failing: {}", failing.join("; ")));
        }
        Ok(line)
    }
}

/// When facts are collected again.
#[derive(Debug, Clone, Copy)]
pub struct When {
    pub every: Duration,
    pub on_sighup: bool,
}

/// Collects again every `when.every` (and on SIGHUP if `when.on_sighup`),
/// until `token` is cancelled.
pub async fn run(c: Collector, shared: Arc<Shared>, when: When, token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let every = when.every;
    let mut hangup = match when.on_sighup.then(|| signal(SignalKind::hangup())) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "no SIGHUP handler: facts are collected again only every interval");
            None
        }
        None => None,
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = token.cancelled() => return,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            _ = tick.tick() => "the facts interval",
        };
        let Some(facts) = c.collect().await else {
            continue;
        };
        if publish(&shared, facts) {
            tracing::info!(after = why, "facts changed; sending them to the master");
        } else if why == "SIGHUP" {
            // Asked for by someone: say it was done.
            tracing::info!(after = why, "facts collected again, unchanged");
        } else {
            tracing::debug!(after = why, "facts collected again, unchanged");
        }
    }
}
