//! Agent sessions: connecting (the node's record registered or refreshed
//! in one change, then the session observed), what agents report
//! (usage, acknowledgements, checks, balancer reports — observations, not
//! stored; the events some of them cause are), and what a session sends:
//! its snapshot and its deltas, each read at one instant.

use super::{Channels, Cluster, ClusterError};
use crate::state::plan::{CacheEvent, CheckEvents, Register};
use crate::state::{Observation, Session};
use cluster_model::job::JobCommand;
use cluster_model::session::{Ack, Delta, Hello, Snapshot};
use cluster_model::time::now_ms;
use cluster_model::{CheckResult, LbReport, NodeId, ProxyView, Usage};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// An open session's handle on the cluster.
pub struct SessionHandle {
    pub node_id: NodeId,
    pub session_id: u64,
    /// Fires when the node's spec generation moves; closes when the
    /// session is replaced by a newer one, or its key is revoked.
    pub spec_changed: watch::Receiver<u64>,
    /// Job commands for this node's agent.
    pub commands: mpsc::Receiver<JobCommand>,
    /// Fires when any node's hosts line changes.
    pub hosts_changed: watch::Receiver<u64>,
    /// Whether this agent wants hosts lines at all.
    pub wants_hosts: bool,
    /// Fires when the proxies' view changes (for agents that run one).
    pub proxy_changed: watch::Receiver<u64>,
    pub wants_proxy: bool,
    /// Whether its agent takes hosts lines in parts.
    pub hosts_in_parts: bool,
}

/// What a session has sent: the generation stamped on its last message,
/// and the spec generation, hosts revision and proxy version it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub generation: u64,
    pub spec: u64,
    pub hosts: u64,
    /// 0: none sent, or not wanted.
    pub proxy: u64,
}

impl Cluster {
    /// Registers or refreshes the node and opens a session for it,
    /// replacing any older session of the same node from the same
    /// address, or one silent for `down_after`. A live session from
    /// another address holds: the newcomer is refused (a copy of the
    /// node's key at work elsewhere must not take over its session, nor
    /// the two replace each other forever).
    pub async fn connect_from(
        &self,
        hello: Hello,
        from: Option<std::net::IpAddr>,
    ) -> Result<SessionHandle, ClusterError> {
        let (wants_hosts, wants_proxy) = (hello.wants_hosts, hello.wants_proxy);
        let hosts_in_parts = hello.takes_hosts_in_parts;
        let node_id = hello.node_id.clone();
        self.held_elsewhere(&node_id, from)?;
        // An agent back unchanged (the usual case: its master went away)
        // needs no commit, so it waits neither behind another change nor,
        // on a standby, for an election.
        let register = Register { hello };
        let _w = if self.plans_nothing(&register) {
            None
        } else {
            let w = self.writer.lock().await;
            self.execute_locked(&register).await?;
            Some(w)
        };
        let mut inner = self.inner();
        let session_id = inner.next_session_id;
        inner.next_session_id += 1;
        let spec_generation = inner.state.node(&node_id).map_or(0, |n| n.revision);
        let (spec, spec_changed) = watch::channel(spec_generation);
        let (commands_tx, commands) = mpsc::channel(64);
        inner.channels.insert(
            node_id.clone(),
            Channels {
                id: session_id,
                spec,
                commands: commands_tx,
                from,
            },
        );
        let observed = inner.state.observe(Observation::Connected {
            node: node_id.clone(),
            session: Session {
                id: session_id,
                remote: false,
                wants_hosts,
                wants_proxy,
            },
            now_ms: now_ms(),
        });
        self.wake(&mut inner, observed.effects);
        self.publish(&inner, &node_id);
        Ok(SessionHandle {
            node_id,
            session_id,
            spec_changed,
            commands,
            hosts_changed: self.hosts_changed.subscribe(),
            wants_hosts,
            proxy_changed: self.proxy_changed.subscribe(),
            wants_proxy,
            hosts_in_parts,
        })
    }

    /// [`Cluster::connect_from`] an unknown address.
    pub async fn connect(&self, hello: Hello) -> Result<SessionHandle, ClusterError> {
        self.connect_from(hello, None).await
    }

    /// Refuses a session for `node` from `from` while a live one from
    /// another address holds it.
    fn held_elsewhere(
        &self,
        node: &NodeId,
        from: Option<std::net::IpAddr>,
    ) -> Result<(), ClusterError> {
        let inner = self.inner();
        let Some(held) = inner.channels.get(node) else {
            return Ok(());
        };
        let (Some(held_from), Some(from)) = (held.from, from) else {
            return Ok(());
        };
        let live = inner.state.live(node).is_some_and(|l| {
            l.session.is_some_and(|s| s.id == held.id && !s.remote)
                && now_ms().saturating_sub(l.last_seen_ms) < self.down_after.as_millis() as u64
        });
        if held_from == from || !live {
            return Ok(());
        }
        Err(ClusterError::SessionHeld {
            node: node.to_string(),
            held_from,
            from,
            patience: self.down_after,
        })
    }

    pub fn disconnect(&self, h: &SessionHandle) {
        let mut inner = self.inner();
        let observed = inner.state.observe(Observation::Disconnected {
            node: h.node_id.clone(),
            session: h.session_id,
            now_ms: now_ms(),
        });
        if observed.accepted && inner.channels.get(&h.node_id).map(|c| c.id) == Some(h.session_id) {
            inner.channels.remove(&h.node_id);
        }
        if observed.accepted {
            self.store.publish(&h.node_id, None);
        }
        self.wake(&mut inner, observed.effects);
    }

    pub fn report_usage(&self, h: &SessionHandle, usage: Usage) {
        let mut inner = self.inner();
        let observed = inner.state.observe(Observation::Usage {
            node: h.node_id.clone(),
            session: h.session_id,
            usage,
            now_ms: now_ms(),
        });
        if observed.accepted {
            self.publish(&inner, &h.node_id);
        }
    }

    /// The agent applied its state up to a generation; when it says its
    /// cache failed (or works again), that is recorded as an event.
    pub async fn acknowledge(&self, h: &SessionHandle, ack: Ack) {
        let observed = {
            let mut inner = self.inner();
            let observed = inner.state.observe(Observation::Acked {
                node: h.node_id.clone(),
                session: h.session_id,
                ack,
                now_ms: now_ms(),
            });
            self.wake(&mut inner, observed.effects.clone());
            if observed.accepted {
                self.publish(&inner, &h.node_id);
            }
            observed
        };
        if let Some(error) = observed.cache {
            if let Some(e) = &error {
                tracing::error!(node = %h.node_id, error = %e, "the agent cannot make its desired state durable");
            }
            let cmd = CacheEvent {
                node: h.node_id.clone(),
                error,
            };
            if let Err(e) = self.execute(&cmd).await {
                tracing::warn!(error = %e, "cannot record an agent's durability");
            }
        }
    }

    /// The agent's local checks changed; a flip is recorded in the event
    /// log and may move the node in or out of role upstreams.
    pub async fn report_checks(&self, h: &SessionHandle, checks: Vec<CheckResult>) {
        let observed = {
            let mut inner = self.inner();
            let observed = inner.state.observe(Observation::Checks {
                node: h.node_id.clone(),
                session: h.session_id,
                checks,
                now_ms: now_ms(),
            });
            self.wake(&mut inner, observed.effects.clone());
            if observed.accepted {
                self.publish(&inner, &h.node_id);
            }
            observed
        };
        if !observed.flipped.is_empty() {
            let cmd = CheckEvents {
                node: h.node_id.clone(),
                flipped: observed.flipped,
            };
            if let Err(e) = self.execute(&cmd).await {
                tracing::warn!(error = %e, "cannot record a check's change");
            }
        }
    }

    /// The node's grains and facts, collected again by its agent.
    pub async fn report_facts(&self, h: &SessionHandle, facts: cluster_model::Facts) {
        let cmd = crate::state::plan::UpdateFacts {
            node: h.node_id.clone(),
            facts,
        };
        if let Err(e) = self.execute(&cmd).await {
            tracing::warn!(node = %h.node_id, error = %e, "cannot record a node's facts");
        }
    }

    /// What a balancer on this node now sees.
    pub fn report_lb(&self, h: &SessionHandle, report: LbReport) {
        let mut inner = self.inner();
        let observed = inner.state.observe(Observation::Lb {
            node: h.node_id.clone(),
            session: h.session_id,
            report,
            now_ms: now_ms(),
        });
        if observed.accepted {
            self.publish(&inner, &h.node_id);
        }
        self.wake(&mut inner, observed.effects);
    }

    /// Tells the other masters what this master's session with `node`
    /// says now.
    fn publish(&self, inner: &super::Inner, node: &NodeId) {
        self.store.publish(
            node,
            inner
                .state
                .live_record(node, &self.me.name, &self.me.address),
        );
    }

    /// Hands a job command to the node's session — this master's, or the
    /// one another master holds (relayed there; its reports come back
    /// the same way); false when it has none.
    pub async fn command(&self, node_id: &str, cmd: JobCommand) -> bool {
        enum Via {
            Here(mpsc::Sender<JobCommand>),
            There(String),
        }
        let via = {
            let inner = self.inner();
            match inner.channels.get(node_id) {
                Some(c) => Some(Via::Here(c.commands.clone())),
                None => inner
                    .state
                    .live(node_id)
                    .and_then(|l| l.master.as_ref())
                    .map(|(_, address)| Via::There(address.clone())),
            }
        };
        match via {
            Some(Via::Here(tx)) => tx.send(cmd).await.is_ok(),
            Some(Via::There(address)) => match NodeId::try_from(node_id.to_owned()) {
                Ok(id) => self.peers.command(&address, &id, cmd).await,
                Err(_) => false,
            },
            None => false,
        }
    }

    /// Hands a job command to the node's session on this master only (a
    /// command relayed here from another master).
    pub async fn command_here(&self, node_id: &str, cmd: JobCommand) -> bool {
        let tx = self
            .inner()
            .channels
            .get(node_id)
            .map(|c| c.commands.clone());
        match tx {
            Some(tx) => tx.send(cmd).await.is_ok(),
            None => false,
        }
    }

    /// Everything a session's first message holds, read at one instant:
    /// the snapshot, its hosts lines apart (the shared table's parts).
    pub fn session_snapshot(
        &self,
        h: &SessionHandle,
    ) -> Option<(SessionSnapshot, Snapshot, Vec<super::HostsPart>)> {
        let mut inner = self.inner();
        let inner = &mut *inner;
        let st = &inner.state;
        let node = st.node(&h.node_id)?;
        // An agent that keeps no hosts file gets no lines.
        let parts = if h.wants_hosts {
            inner.hosts_table.parts(st)
        } else {
            Vec::new()
        };
        let proxy = h.wants_proxy.then(|| ProxyView::clone(st.proxy_view()));
        let sent = SessionSnapshot {
            generation: st.revision(),
            spec: node.revision,
            hosts: st.hosts_revision(),
            proxy: proxy.as_ref().map_or(0, |v| v.version),
        };
        let snapshot = Snapshot {
            generation: st.revision(),
            epoch: self.epoch(),
            node: node.value.spec(),
            hosts: Vec::new(),
            proxy,
        };
        Some((sent, snapshot, parts))
    }

    /// What moved since `sent`, read at one instant: `Ok(None)` when
    /// nothing did, `Err(())` when the node is gone.
    #[allow(clippy::result_unit_err)]
    pub fn session_delta(
        &self,
        h: &SessionHandle,
        sent: &SessionSnapshot,
    ) -> Result<Option<(SessionSnapshot, Delta)>, ()> {
        let inner = self.inner();
        let st = &inner.state;
        let node = st.node(&h.node_id).ok_or(())?;
        let spec = (node.revision > sent.spec).then(|| node.value.spec());
        let hosts = if h.wants_hosts {
            st.hosts_since(sent.hosts)
        } else {
            crate::state::HostsChanges {
                seen: sent.hosts,
                ..Default::default()
            }
        };
        let view = st.proxy_view();
        let proxy = (h.wants_proxy && view.version != sent.proxy).then(|| ProxyView::clone(view));
        if spec.is_none() && hosts.upsert.is_empty() && hosts.removed.is_empty() && proxy.is_none()
        {
            return Ok(None); // already in the snapshot or an earlier delta
        }
        let next = SessionSnapshot {
            generation: st.revision(),
            spec: if spec.is_some() {
                node.revision
            } else {
                sent.spec
            },
            hosts: hosts.seen,
            proxy: proxy.as_ref().map_or(sent.proxy, |v| v.version),
        };
        let delta = Delta {
            generation: st.revision(),
            prev_generation: sent.generation,
            epoch: self.epoch(),
            node: spec,
            hosts_upsert: hosts.upsert,
            hosts_removed: hosts.removed,
            proxy,
        };
        Ok(Some((next, delta)))
    }

    /// What the proxies are sent now.
    pub fn proxy_view(&self) -> Arc<ProxyView> {
        self.read(|st| st.proxy_view().clone())
    }

    /// How long a session gathers hosts changes before sending them: a join
    /// storm becomes a few deltas per agent instead of one per join. Grows
    /// with the number of sessions (20 ms for a few, 500 ms at 10,000); a
    /// node's own spec (a drain) never waits for it.
    pub fn hosts_coalesce(&self) -> std::time::Duration {
        let sessions = self.inner().channels.len() as u64;
        std::time::Duration::from_micros((sessions * 50).clamp(20_000, 500_000))
    }
}
