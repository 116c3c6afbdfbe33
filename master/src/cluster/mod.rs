//! The cluster as the master holds it: nodes, the generation counter, open
//! agent sessions and their acknowledgements.
//!
//! Reads take a short in-memory lock. Writes are serialised by a second,
//! async lock held across the store write: compute the change from the
//! current state, make it durable, then publish it to memory and wake the
//! sessions it concerns. A failed store write therefore changes nothing.
//!
//! Sessions are woken level-triggered: each holds a `watch` of its node's
//! spec generation and, when woken, reads the node's *current* spec. Rapid
//! changes coalesce and none is lost. See `grpc/LIFECYCLE.md`.
//!
//! - `access` — certificates, tokens, keys, users, refusals.
//! - `drain` — taking nodes out of service and back, waiting for agents.
//! - `targeting` — what a target selects; labels, node groups.
//! - `history` — stored jobs.
//! - `liveness` — `down`/`up` transitions in the event log.

use crate::model::{
    Applied, Event, EventKind, Grains, KeyRecord, Node, NodeSpec, NodeState, Token, Usage, now_ms,
};
use crate::pki::Ca;
use crate::store::{EventQuery, Store, StoreError, Write};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// What an agent says about itself when its session opens.
#[derive(Debug, Clone)]
pub struct Hello {
    pub node_id: String,
    pub grains: Grains,
    pub roles: Vec<String>,
    pub addresses: Vec<String>,
    pub health_url: String,
    /// Empty: named by its id.
    pub service: String,
    pub naming: crate::naming::Naming,
    pub aliases: Vec<String>,
    /// Whether the agent keeps a hosts file (else it is sent no lines).
    pub wants_hosts: bool,
    /// Whether the agent runs the proxy (and is sent routes and upstreams).
    pub wants_proxy: bool,
}

/// An open session's handle on the cluster.
pub struct SessionHandle {
    pub node_id: String,
    pub session_id: u64,
    /// Fires when the node's spec generation moves; closes when another
    /// session for the same node replaces this one.
    pub spec_changed: watch::Receiver<u64>,
    /// Job commands for this node's agent.
    pub commands: tokio::sync::mpsc::Receiver<crate::jobs::Command>,
    /// Fires when any node's hosts line changes.
    pub hosts_changed: watch::Receiver<u64>,
    /// Whether this agent wants hosts lines at all.
    pub wants_hosts: bool,
    /// Fires when the proxies' view changes (for agents that run one).
    pub proxy_changed: watch::Receiver<u64>,
    pub wants_proxy: bool,
}

/// Per-node outcome of waiting for agents to apply a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyStatus {
    Stored,
    Acknowledged,
    TimedOut,
    NotConnected,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct NodeChange {
    pub id: String,
    pub name: String,
    pub changed: bool,
    pub spec_generation: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no node names given")]
    NoNames,
    #[error("empty node name at position {position}")]
    EmptyName { position: usize },
    #[error("unknown node{}: {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    UnknownNodes(Vec<String>),
    #[error("name {name:?} already belongs to node {owner:?}")]
    NameTaken { name: String, owner: String },
    #[error("no nodes matched {0}")]
    NoMatch(String),
    #[error("unknown key{}: {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    UnknownKeys(Vec<String>),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Session {
    id: u64,
    spec_tx: watch::Sender<u64>,
    /// Jobs to run or cancel on the node.
    commands: tokio::sync::mpsc::Sender<crate::jobs::Command>,
    wants_proxy: bool,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, Node>,
    /// name → id
    names: HashMap<String, String>,
    generation: u64,
    next_event_seq: u64,
    sessions: HashMap<String, Session>,
    next_session_id: u64,
    /// Nodes the event log last recorded as down.
    down: HashSet<String>,
    /// Join tokens by id.
    tokens: HashMap<String, Token>,
    /// Node keys by node id.
    keys: HashMap<String, KeyRecord>,
    /// Serials of revoked certificates.
    revoked: HashSet<String>,
    /// Node groups: name → compound expression.
    groups: std::collections::BTreeMap<String, String>,
    /// Hosts lines that changed, by the generation that changed them.
    hosts_log: hosts::HostsLog,
    /// Upstreams, routes, what proxies are sent and what balancers report.
    balancing: balancing::Balancing,
    /// The domain and role aliases in every hosts line.
    hosts_naming: hosts::HostsNaming,
    /// Settings applied from a cluster file (`None`: never applied; the
    /// master's configuration holds).
    settings: Option<crate::clusterfile::Settings>,
}

impl State {
    fn resolve(&self, names: &[String]) -> Result<Vec<String>, ClusterError> {
        if names.is_empty() {
            return Err(ClusterError::NoNames);
        }
        let mut ids = Vec::with_capacity(names.len());
        let mut unknown = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() {
                return Err(ClusterError::EmptyName { position: i + 1 });
            }
            match self.names.get(name) {
                Some(id) => ids.push(id.clone()),
                None if self.nodes.contains_key(name) => ids.push(name.to_owned()),
                None => unknown.push(name.to_owned()),
            }
        }
        if !unknown.is_empty() {
            return Err(ClusterError::UnknownNodes(unknown));
        }
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        Ok(ids)
    }

    fn event(&mut self, kind: EventKind, node: &str, by: &str, detail: String) -> Event {
        let seq = self.next_event_seq;
        self.next_event_seq += 1;
        Event {
            seq,
            time_ms: now_ms(),
            kind,
            node: node.to_owned(),
            by: by.to_owned(),
            detail,
        }
    }

    fn notify(&self, id: &str, spec_generation: u64) {
        if let Some(s) = self.sessions.get(id) {
            s.spec_tx.send_replace(spec_generation);
        }
    }
}

pub struct Cluster {
    store: Arc<dyn Store>,
    /// Signs node and user certificates.
    ca: Arc<Ca>,
    state: Mutex<State>,
    /// Serialises writes: held from reading the state until the change is
    /// durable and published.
    writer: tokio::sync::Mutex<()>,
    /// Bumped on every acknowledgement, connect and disconnect, so waiters
    /// re-check their condition.
    acks: watch::Sender<u64>,
    /// The generation of the latest hosts change; every session watches it.
    hosts_changed: watch::Sender<u64>,
    down_after_ms: u64,
    /// The version of what the proxies are sent; their sessions watch it.
    proxy_changed: watch::Sender<u64>,
    /// When this master started: liveness for the proxies' upstreams
    /// counts from here at the earliest.
    started_ms: u64,
}

impl Cluster {
    pub fn open(
        store: Arc<dyn Store>,
        ca: Arc<Ca>,
        down_after: Duration,
    ) -> Result<Cluster, StoreError> {
        let loaded = store.load()?;
        let down_after_ms = down_after.as_millis() as u64;
        let now = now_ms();
        let mut state = State {
            generation: loaded.generation,
            next_event_seq: loaded.next_event_seq,
            tokens: loaded
                .tokens
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            keys: loaded
                .keys
                .into_iter()
                .map(|k| (k.node_id.clone(), k))
                .collect(),
            revoked: loaded.revoked.into_iter().collect(),
            groups: loaded.groups.into_iter().collect(),
            ..State::default()
        };
        state.balancing.upstreams = loaded.upstreams.into_iter().collect();
        if let Some(settings) = loaded.settings {
            state.hosts_naming = hosts::HostsNaming {
                base_domain: settings.base_domain.clone(),
                role_aliases: settings.role_aliases(),
            };
            state.settings = Some(settings);
        }
        state.balancing.routes = loaded.routes.into_iter().collect();
        for node in loaded.nodes {
            if node.state(now, down_after_ms) == NodeState::Down {
                state.down.insert(node.id.clone());
            }
            state.names.insert(node.name.clone(), node.id.clone());
            state.nodes.insert(node.id.clone(), node);
        }
        // Versions continue from the stored generation, so they only grow
        // across restarts too.
        state.balancing.view = std::sync::Arc::new(balancing::ProxyView {
            version: loaded.generation,
            ..Default::default()
        });
        let cluster = Cluster {
            store,
            ca,
            state: Mutex::new(state),
            writer: tokio::sync::Mutex::new(()),
            acks: watch::Sender::new(0),
            hosts_changed: watch::Sender::new(0),
            down_after_ms,
            proxy_changed: watch::Sender::new(0),
            started_ms: now,
        };
        cluster.refresh_proxy();
        Ok(cluster)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock is a bug; the data is still whole
        // because every mutation is a handful of assignments.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn persist(&self, write: Write) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write(&write))
            .await
            .expect("store writes do not panic")
    }

    /// Moves on every acknowledgement, report, connect and disconnect:
    /// what waiters re-check their condition on.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.acks.subscribe()
    }

    pub fn down_after(&self) -> Duration {
        Duration::from_millis(self.down_after_ms)
    }

    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Registers or refreshes the node and opens a session for it, replacing
    /// any older session of the same node.
    pub async fn connect(&self, hello: Hello) -> Result<SessionHandle, ClusterError> {
        let wants_hosts = hello.wants_hosts;
        let wants_proxy = hello.wants_proxy;
        let _w = self.writer.lock().await;
        let now = now_ms();
        // A node that names no service takes its role's, if the cluster
        // file gives one.
        let mut hello = hello;
        if hello.service.is_empty()
            && let Some((service, naming)) = self.role_service(&hello.roles)
        {
            hello.service = service;
            hello.naming = naming;
        }
        let (mut node, event) = {
            let mut st = self.state();
            match st.nodes.get(&hello.node_id) {
                Some(existing) => {
                    let mut node = existing.clone();
                    node.roles = hello.roles;
                    node.addresses = hello.addresses;
                    node.health_url = hello.health_url;
                    node.grains = hello.grains;
                    node.aliases = hello.aliases;
                    node.last_seen_ms = now;
                    // Back from down: say so in the same write.
                    let up = st.down.contains(&node.id).then(|| {
                        st.event(
                            EventKind::Up,
                            &node.name,
                            "master",
                            "agent reconnected".into(),
                        )
                    });
                    (node, up)
                }
                None => {
                    // Named from its service (Aerostat), else by its id. The
                    // writer lock is held: no two nodes get the same name.
                    let name = if hello.service.is_empty() {
                        hello.node_id.clone()
                    } else {
                        let taken = st.names.keys().cloned().collect();
                        crate::naming::assign(&hello.service, hello.naming, &taken)
                    };
                    if let Some(owner) = st.names.get(&name) {
                        return Err(ClusterError::NameTaken {
                            name,
                            owner: owner.clone(),
                        });
                    }
                    let node = Node {
                        id: hello.node_id.clone(),
                        name: name.clone(),
                        roles: hello.roles,
                        addresses: hello.addresses,
                        health_url: hello.health_url,
                        grains: hello.grains,
                        offline: None,
                        spec_generation: 0,
                        registered_ms: now,
                        last_seen_ms: now,
                        usage: None,
                        applied: Applied::default(),
                        connected: false,
                        labels: Default::default(),
                        service: hello.service.clone(),
                        naming: hello.naming,
                        aliases: hello.aliases,
                        checks: Vec::new(),
                    };
                    let detail = match node.service.as_str() {
                        "" => String::new(),
                        svc => format!("named from service {svc} ({})", node.naming.as_str()),
                    };
                    let event = st.event(EventKind::Registered, &name, &node.id, detail);
                    (node, Some(event))
                }
            }
        };
        // Roles from the token the node joined with come on top of its own.
        for role in self.assigned_roles(&node.id) {
            if !node.roles.contains(&role) {
                node.roles.push(role);
            }
        }
        // Persist only what changed: a fleet reconnecting after a master
        // restart must not queue one fsync per agent for nothing.
        let (unchanged, hosts_unchanged) = match self.state().nodes.get(&node.id) {
            Some(old) => (
                old.roles == node.roles
                    && old.addresses == node.addresses
                    && old.health_url == node.health_url
                    && old.grains == node.grains
                    && old.aliases == node.aliases,
                old.addresses == node.addresses && old.aliases == node.aliases,
            ),
            None => (false, false),
        };
        // A new node, or a new address or alias, changes every hosts file.
        let hosts_generation = (!hosts_unchanged).then(|| self.state().generation + 1);
        if !unchanged || event.is_some() {
            self.persist(Write {
                nodes: vec![node.clone()],
                events: event.into_iter().collect(),
                generation: hosts_generation,
                ..Write::default()
            })
            .await?;
        }

        let mut st = self.state();
        st.down.remove(&node.id);
        let session_id = st.next_session_id;
        st.next_session_id += 1;
        let mut node = node;
        node.connected = true;
        node.applied = Applied::default();
        if let Some(old) = st.nodes.get(&node.id) {
            node.usage = old.usage.clone();
        }
        let (spec_tx, spec_changed) = watch::channel(node.spec_generation);
        let (commands_tx, commands) = tokio::sync::mpsc::channel(64);
        st.names.insert(node.name.clone(), node.id.clone());
        st.sessions.insert(
            node.id.clone(),
            Session {
                id: session_id,
                spec_tx,
                commands: commands_tx,
                wants_proxy,
            },
        );
        st.balancing.reports.remove(&node.id);
        let node_id = node.id.clone();
        st.nodes.insert(node.id.clone(), node);
        if let Some(g) = hosts_generation {
            st.generation = g;
            st.hosts_log.touch(&node_id, g);
        }
        drop(st);
        if let Some(g) = hosts_generation {
            self.hosts_changed.send_replace(g);
        }
        self.acks.send_modify(|n| *n += 1);
        self.refresh_proxy();
        Ok(SessionHandle {
            node_id,
            session_id,
            spec_changed,
            commands,
            hosts_changed: self.hosts_changed.subscribe(),
            wants_hosts,
            proxy_changed: self.proxy_changed.subscribe(),
            wants_proxy,
        })
    }

    /// The generation to stamp on a snapshot and the node's current spec.
    pub fn snapshot(&self, id: &str) -> Option<(u64, NodeSpec)> {
        let st = self.state();
        st.nodes.get(id).map(|n| (st.generation, n.spec()))
    }

    /// The node's spec and the generation at which it last changed.
    pub fn spec(&self, id: &str) -> Option<(u64, NodeSpec)> {
        self.state()
            .nodes
            .get(id)
            .map(|n| (n.spec_generation, n.spec()))
    }

    fn with_session(&self, id: &str, session_id: u64, f: impl FnOnce(&mut Node)) -> bool {
        let mut st = self.state();
        if st.sessions.get(id).map(|s| s.id) != Some(session_id) {
            return false;
        }
        match st.nodes.get_mut(id) {
            Some(node) => {
                node.last_seen_ms = now_ms();
                f(node);
                true
            }
            None => false,
        }
    }

    /// Hands a job command to the node's session; false when it has none.
    pub async fn command(&self, node_id: &str, cmd: crate::jobs::Command) -> bool {
        let tx = self
            .state()
            .sessions
            .get(node_id)
            .map(|s| s.commands.clone());
        match tx {
            Some(tx) => tx.send(cmd).await.is_ok(),
            None => false,
        }
    }

    pub fn report_usage(&self, h: &SessionHandle, usage: Usage) {
        self.with_session(&h.node_id, h.session_id, |n| n.usage = Some(usage));
    }

    pub fn acknowledge(&self, h: &SessionHandle, generation: u64, health_status: String) {
        let applied = self.with_session(&h.node_id, h.session_id, |n| {
            n.applied = Applied {
                generation,
                health_status,
            }
        });
        if applied {
            self.acks.send_modify(|n| *n += 1);
        }
    }

    pub fn disconnect(&self, h: &SessionHandle) {
        let mut st = self.state();
        if st.sessions.get(&h.node_id).map(|s| s.id) != Some(h.session_id) {
            return; // already replaced by a newer session
        }
        st.sessions.remove(&h.node_id);
        st.balancing.reports.remove(&h.node_id);
        if let Some(node) = st.nodes.get_mut(&h.node_id) {
            node.connected = false;
            // Checks are the agent's word; without it they are unknown.
            node.checks.clear();
        }
        drop(st);
        self.acks.send_modify(|n| *n += 1);
        self.refresh_proxy();
    }

    /// Nodes by name or id (every node when `names` is empty), sorted by
    /// name, each with its derived state.
    pub fn nodes(&self, names: &[String]) -> Result<Vec<(Node, NodeState)>, ClusterError> {
        let spec = (!names.is_empty()).then(|| TargetSpec::Names(names.to_vec()));
        self.nodes_matching(spec.as_ref())
    }

    /// Nodes `spec` selects (every node for `None`), sorted by name, each
    /// with its derived state.
    pub fn nodes_matching(
        &self,
        spec: Option<&TargetSpec>,
    ) -> Result<Vec<(Node, NodeState)>, ClusterError> {
        let st = self.state();
        let now = now_ms();
        let mut out: Vec<_> = match spec {
            None => st.nodes.values().cloned().collect(),
            Some(spec) => st
                .select(spec)?
                .iter()
                .map(|id| st.nodes[id].clone())
                .collect(),
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out
            .into_iter()
            .map(|n| {
                let s = n.state(now, self.down_after_ms);
                (n, s)
            })
            .collect())
    }

    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        self.store.events(query)
    }
}

mod access;
mod balancing;
mod declare;
mod drain;
mod history;
mod hosts;
mod liveness;
mod naming;
mod rotation;
mod targeting;

pub use access::{Caller, JoinOutcome, KeyDecision, TokenGrant};
pub use balancing::{BalancingState, ProxyView, ResolvedServer, check_upstream};
pub use hosts::HostsNaming;
pub use targeting::TargetSpec;
pub(crate) use targeting::check_label_key;

#[cfg(test)]
mod tests;
