//! Facts collected again while the agent runs: on SIGHUP and every facts
//! interval. A collection that differs from the last is published on
//! [`Shared::facts`](crate::state::Shared); the session sends it to the
//! master, which records the change as an event.

use crate::config::{Reread, Statics};
use crate::facts;
use crate::state::Shared;
use cluster_model::{FactProblem, Facts, Grains, NodeId};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a collection needs besides the machine.
#[derive(Debug, Clone)]
pub struct Collector {
    pub id: NodeId,
    /// The roles and static grains (they win over collected ones), as the
    /// configuration last read says.
    pub statics: Arc<Mutex<Statics>>,
    /// Whether the node runs the proxy: then it has the `balancer` role.
    pub balancer: bool,
    /// How to read the configuration again at each collection (`None`:
    /// the statics stay as they are).
    pub reread: Option<Reread>,
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

/// The source a configuration that cannot be read again is reported as.
pub const CONFIG_SOURCE: &str = "agent configuration";

impl Collector {
    pub fn new(config: &crate::Config) -> Collector {
        Collector {
            id: config.id.clone(),
            statics: Arc::new(Mutex::new(Statics {
                roles: config.roles.clone(),
                grains: config.grains.clone(),
            })),
            balancer: config.proxy.is_some(),
            reread: config.reread.clone(),
            facts_dir: config.facts_dir.clone(),
            facts_timeout: config.facts_timeout,
        }
    }

    /// The node's roles now: the configured ones, and `balancer` when it
    /// runs the proxy.
    pub fn roles(&self) -> Vec<String> {
        let mut roles = self.lock().roles.clone();
        if self.balancer && !roles.iter().any(|r| r == "balancer") {
            roles.push("balancer".into());
        }
        roles
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Statics> {
        self.statics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the facts directory, and the configuration again: a
    /// configuration that no longer reads is a problem, and the last roles
    /// and grains stand.
    pub async fn external(&self) -> External {
        let reread = self.reread.clone();
        let again = async move {
            let reread = reread?;
            tokio::task::spawn_blocking(move || (reread.0)()).await.ok()
        };
        let (got, again) = tokio::join!(
            facts::external::collect(&self.facts_dir, self.facts_timeout),
            again
        );
        let mut problems: Vec<FactProblem> = got
            .problems
            .into_iter()
            .map(|p| FactProblem {
                source: p.source,
                problem: p.problem,
            })
            .collect();
        match again {
            None => {}
            Some(Ok(statics)) => {
                let mut now = self.lock();
                if *now != statics {
                    tracing::info!(roles = ?statics.roles, "the configuration's roles or grains changed");
                    *now = statics;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the configuration cannot be read again; its last roles and grains stand");
                problems.push(FactProblem {
                    source: CONFIG_SOURCE.into(),
                    problem: e,
                });
            }
        }
        External {
            facts: got.facts,
            problems,
        }
    }

    /// Everything the master is told, from a machine and a facts
    /// directory already read. The facts are Facter's core facts with the
    /// external facts laid over them key by key: an external fact wins
    /// over a core fact of the same name, as in Facter. The `roles` grain
    /// is the node's roles: the master takes them from it.
    pub fn shape(&self, machine: &facts::Machine, external: External) -> Facts {
        let mut all = facts::facts(machine);
        all.extend(external.facts);
        let roles = self.roles();
        let mut grains = facts::grains(&self.id, machine, &roles, &self.lock().grains);
        grains.insert("roles".into(), serde_json::json!(roles));
        Facts {
            grains,
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
