//! What this master's agent sessions report, as it happens: connects and
//! disconnects, usage, acknowledgements, checks, balancer reports — and
//! time passing. None of it is stored; [`State::observe`] takes it in and
//! recomputes what it can move (the proxies' view), and says what should be
//! recorded as events (checks that flipped, an agent's cache that broke or
//! healed), which the shell then plans like any change.

use super::{Effects, State};
use crate::store::LiveRecord;
use cluster_model::session::Ack;
use cluster_model::{Applied, CheckResult, LbReport, NodeId, Usage};

/// What a node's session says now: this master's own, or (with several
/// masters) the one another master holds, as it published it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    /// The open session, if any.
    pub session: Option<Session>,
    /// The master holding it, when not this one: its name and address.
    pub master: Option<(String, String)>,
    /// When it opened.
    pub since_ms: u64,
    /// When the agent last said anything.
    pub last_seen_ms: u64,
    pub usage: Option<Usage>,
    pub applied: Applied,
    /// The agent's local checks; unknown (empty) without a session.
    pub checks: Vec<CheckResult>,
    /// What the balancers on the node report.
    pub lb: Option<LbReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// This master's number for it (0 for another master's).
    pub id: u64,
    /// Held by another master: its reports arrive published, not here.
    pub remote: bool,
    /// Whether the agent keeps a hosts file (else it is sent no lines).
    pub wants_hosts: bool,
    /// Whether the agent runs the proxy (and is sent its view).
    pub wants_proxy: bool,
}

impl Live {
    /// A session's end: what only the agent could say is unknown again.
    pub(super) fn end_session(&mut self) {
        self.session = None;
        self.master = None;
        self.checks.clear();
        self.lb = None;
        self.applied = Applied::default();
    }
}

/// Something an agent's session said (or time passing), as it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A session opened (its node's record was committed just before).
    Connected {
        node: NodeId,
        session: Session,
        now_ms: u64,
    },
    Disconnected {
        node: NodeId,
        session: u64,
        now_ms: u64,
    },
    Usage {
        node: NodeId,
        session: u64,
        usage: Usage,
        now_ms: u64,
    },
    Acked {
        node: NodeId,
        session: u64,
        ack: Ack,
        now_ms: u64,
    },
    Checks {
        node: NodeId,
        session: u64,
        checks: Vec<CheckResult>,
        now_ms: u64,
    },
    Lb {
        node: NodeId,
        session: u64,
        report: LbReport,
        now_ms: u64,
    },
    /// Time passed: liveness may have moved servers out of upstreams.
    Tick { now_ms: u64 },
    /// What another master published of its session with the node
    /// (`None`: that session ended).
    Remote {
        node: NodeId,
        record: Option<LiveRecord>,
        now_ms: u64,
    },
}

/// What an observation found, beyond the effects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Whether it came from the node's current session (else ignored).
    pub accepted: bool,
    pub effects: Effects,
    /// Checks whose state flipped (to record as events).
    pub flipped: Vec<CheckResult>,
    /// The agent's durability moved: `Some(error)` it can no longer cache
    /// its state, `Some(None)` it can again (to record as events).
    pub cache: Option<Option<String>>,
}

impl State {
    /// Takes in what a session said. Reports from a session that is not
    /// the node's current one are ignored.
    pub fn observe(&mut self, o: Observation) -> Observed {
        let mut out = Observed::default();
        let current = |st: &State, node: &NodeId, session: u64| {
            st.live
                .get(node)
                .and_then(|l| l.session)
                .is_some_and(|s| !s.remote && s.id == session)
        };
        match o {
            Observation::Connected {
                node,
                session,
                now_ms,
            } => {
                let live = self.live.entry(node.clone()).or_default();
                // A newer session replaces the old one whole.
                *live = Live {
                    session: Some(session),
                    master: None,
                    since_ms: now_ms,
                    last_seen_ms: now_ms,
                    usage: live.usage.take(),
                    ..Live::default()
                };
                self.refresh_proxy(now_ms, &mut out.effects);
                out.accepted = true;
            }
            Observation::Disconnected {
                node,
                session,
                now_ms,
            } => {
                if current(self, &node, session) {
                    if let Some(live) = self.live.get_mut(&node) {
                        live.end_session();
                    }
                    self.refresh_proxy(now_ms, &mut out.effects);
                    out.accepted = true;
                }
            }
            Observation::Usage {
                node,
                session,
                usage,
                now_ms,
            } => {
                if let Some(live) = self.heard(&node, session, now_ms) {
                    live.usage = Some(usage);
                    out.accepted = true;
                }
            }
            Observation::Acked {
                node,
                session,
                ack,
                now_ms,
            } => {
                if let Some(live) = self.heard(&node, session, now_ms) {
                    if live.applied.cache_error != ack.cache_error {
                        out.cache = Some(ack.cache_error.clone());
                    }
                    live.applied = Applied {
                        generation: ack.generation,
                        health: ack.health,
                        cache_error: ack.cache_error,
                    };
                    out.accepted = true;
                }
            }
            Observation::Checks {
                node,
                session,
                checks,
                now_ms,
            } => {
                if let Some(live) = self.heard(&node, session, now_ms) {
                    for c in &checks {
                        let before = live.checks.iter().find(|o| o.name == c.name);
                        if before.map(|o| o.passing) != Some(c.passing) {
                            out.flipped.push(c.clone());
                        }
                    }
                    live.checks = checks;
                    self.refresh_proxy(now_ms, &mut out.effects);
                    out.accepted = true;
                }
            }
            Observation::Lb {
                node,
                session,
                report,
                now_ms,
            } => {
                if let Some(live) = self.heard(&node, session, now_ms) {
                    live.lb = Some(report);
                    out.accepted = true;
                }
            }
            Observation::Tick { now_ms } => {
                self.refresh_proxy(now_ms, &mut out.effects);
                out.accepted = true;
            }
            Observation::Remote {
                node,
                record,
                now_ms,
            } => {
                out.accepted = self.remote(&node, record, &mut out.effects);
                if out.accepted {
                    self.refresh_proxy(now_ms, &mut out.effects);
                }
            }
        }
        out.effects.waiters |= out.accepted;
        out
    }

    /// Takes in another master's record of a node's session. The newest
    /// session wins: one of this master's that opened before it is over
    /// (the agent has moved; its stream is closed), one that opened
    /// after it stands (the record is stale). Whether it moved anything.
    pub(super) fn remote(
        &mut self,
        node: &NodeId,
        record: Option<LiveRecord>,
        effects: &mut Effects,
    ) -> bool {
        let live = self.live.entry(node.clone()).or_default();
        let local = live.session.is_some_and(|s| !s.remote);
        match record {
            None => {
                // Only another master's session ends with its record.
                if local || live.session.is_none() {
                    return false;
                }
                live.end_session();
            }
            Some(r) => {
                if local && r.since_ms < live.since_ms {
                    return false;
                }
                if local {
                    effects.close.push(node.clone());
                }
                *live = Live {
                    session: Some(Session {
                        id: 0,
                        remote: true,
                        wants_hosts: r.wants_hosts,
                        wants_proxy: r.wants_proxy,
                    }),
                    master: Some((r.master, r.address)),
                    since_ms: r.since_ms,
                    last_seen_ms: live.last_seen_ms.max(r.last_seen_ms),
                    usage: r.usage.or(live.usage.take()),
                    applied: r.applied,
                    checks: r.checks,
                    lb: r.lb,
                };
            }
        }
        true
    }

    /// What this master's own session with `node` says, for the others
    /// (`None`: it has none).
    pub fn live_record(&self, node: &NodeId, master: &str, address: &str) -> Option<LiveRecord> {
        let live = self.live.get(node)?;
        let session = live.session.filter(|s| !s.remote)?;
        Some(LiveRecord {
            master: master.to_owned(),
            address: address.to_owned(),
            since_ms: live.since_ms,
            last_seen_ms: live.last_seen_ms,
            wants_hosts: session.wants_hosts,
            wants_proxy: session.wants_proxy,
            usage: live.usage.clone(),
            applied: live.applied.clone(),
            checks: live.checks.clone(),
            lb: live.lb.clone(),
        })
    }

    /// The node's live state when `session` is its current session, marked
    /// as heard from at `now_ms`.
    fn heard(&mut self, node: &NodeId, session: u64, now_ms: u64) -> Option<&mut Live> {
        let live = self.live.get_mut(node)?;
        if live.session.filter(|s| !s.remote).map(|s| s.id) != Some(session) {
            return None;
        }
        live.last_seen_ms = live.last_seen_ms.max(now_ms);
        Some(live)
    }
}
