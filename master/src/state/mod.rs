//! The master's state machine, pure: the cluster's records as the store
//! holds them (each with the revision that last wrote it), what this
//! master's agent sessions report (their live state), and the views
//! derived from both.
//!
//! Every mutation goes the same way. A planner (`plan`) reads a `&State`
//! and a command and produces a [`Change`] — the exact records to put and
//! delete, the numbered events, and the preconditions it relied on —
//! without changing anything. The shell (`cluster`) commits the change to
//! the store, which returns its revision, then calls [`State::apply`]: the
//! one place records change in memory, and the one place the derived views
//! (node names, node groups, hosts lines and their change log, the
//! proxies' view, which nodes the log has as down) are recomputed. It
//! returns the [`Effects`] the shell turns into wake-ups. A change read
//! back from the store — every record at start — goes through the same
//! code ([`State::load`]). What sessions report (connects, usage,
//! acknowledgements, checks, balancer reports) is not stored: it enters
//! through [`State::observe`], which recomputes what it can move.
//!
//! Time is an argument: a change carries the time it was planned at,
//! observations the time they were made.
//!
//! - `plan/` — the planners, one file per area, table-tested without tokio.
//! - `live` — what this master's sessions report: [`State::observe`].
//! - `hosts` — every node's hosts line and the log of which changed when.
//! - `proxy` — what every proxy is sent, resolved from the nodes as they are.
//! - `rotation` — whether nodes are really out of rotation, or back in.
//! - `select` — what a target selects.
//! - `status` — nodes as reads show them.

mod hosts;
mod live;
pub mod plan;
mod proxy;
mod rotation;
mod select;
mod status;

#[cfg(test)]
mod tests;

pub use hosts::{HostsChanges, HostsLog, HostsNaming};
pub use live::{Live, Observation, Observed, Session};
pub use plan::{Command, Env, Issuer, Planned};
pub use status::BalancingState;

use crate::store::{Change, Key, Loaded, Record, RequestRecord, Revision};
use cluster_balancer::{Domain, UpstreamSource};
use cluster_model::alerts::{AlertKey, Transition};
use cluster_model::clusterfile::Settings;
use cluster_model::{
    EventKind, KeyRecord, KeyState, Node, NodeId, NodeName, ProxyView, Token, UserRecord,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A record with the revision that last wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    pub value: T,
    pub revision: Revision,
}

/// What a master starts with that is not stored: its own configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The domain and role aliases of hosts lines, unless a cluster file
    /// applied settings of its own.
    pub hosts: HostsNaming,
    /// A node not heard from for this long is down.
    pub down_after_ms: u64,
    /// When this master started: liveness for the proxies' upstreams counts
    /// from here at the earliest, so a restarted master does not empty
    /// every upstream before the agents are back.
    pub started_ms: u64,
}

/// What changed, for the shell to wake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Nodes whose record moved, with its new revision: their sessions
    /// send the spec again.
    pub specs: Vec<(NodeId, Revision)>,
    /// Set when a hosts line changed: every session that keeps hosts.
    pub hosts: Option<Revision>,
    /// The proxies' view's new version, when it changed.
    pub proxy: Option<u64>,
    /// Sessions to end: their key was revoked or deleted, or their node
    /// removed.
    pub close: Vec<NodeId>,
    /// A certificate was revoked: calls open under it end.
    pub revoked: bool,
    /// Something a waiter (drain, rollout) looks at moved.
    pub waiters: bool,
}

/// The cluster as one master holds it.
#[derive(Debug, Clone)]
pub struct State {
    config: Config,
    /// The store's revision this state is at: the generation.
    revision: Revision,
    /// The sequence number the next event gets.
    next_event_seq: u64,

    nodes: BTreeMap<NodeId, Stored<Node>>,
    tokens: BTreeMap<String, Stored<Token>>,
    /// People's certificates, by name.
    users: BTreeMap<String, Stored<UserRecord>>,
    keys: BTreeMap<NodeId, Stored<KeyRecord>>,
    /// Serials of revoked certificates.
    revoked: BTreeMap<String, Revision>,
    /// Node groups: name → compound expression.
    groups: BTreeMap<String, Stored<String>>,
    upstreams: BTreeMap<String, Stored<UpstreamSource>>,
    routes: BTreeMap<String, Stored<Domain>>,
    /// Applied from a cluster file (`None`: never; the configuration holds).
    settings: Option<Stored<Settings>>,
    /// Mutating calls that took effect, by request id.
    requests: BTreeMap<String, Stored<RequestRecord>>,
    /// Firing alerts, as they fired.
    alerts: BTreeMap<AlertKey, Stored<Transition>>,

    /// This master's sessions, by node.
    live: HashMap<NodeId, Live>,

    // Derived: recomputed by `apply`, `load` and `observe` only.
    /// name → id.
    names: HashMap<NodeName, NodeId>,
    /// The node groups as targeting reads them.
    group_exprs: BTreeMap<String, String>,
    /// The domain and role aliases in every hosts line now.
    hosts_naming: HostsNaming,
    hosts_log: HostsLog,
    proxy: Arc<ProxyView>,
    /// Nodes the event log last recorded as down.
    down: BTreeSet<NodeId>,
}

impl State {
    pub fn new(config: Config) -> State {
        State {
            hosts_naming: config.hosts.clone(),
            config,
            revision: 0,
            next_event_seq: 1,
            nodes: BTreeMap::new(),
            tokens: BTreeMap::new(),
            users: BTreeMap::new(),
            keys: BTreeMap::new(),
            revoked: BTreeMap::new(),
            groups: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            routes: BTreeMap::new(),
            settings: None,
            requests: BTreeMap::new(),
            alerts: BTreeMap::new(),
            live: HashMap::new(),
            names: HashMap::new(),
            group_exprs: BTreeMap::new(),
            hosts_log: HostsLog::default(),
            proxy: Arc::new(ProxyView::default()),
            down: BTreeSet::new(),
        }
    }

    /// The state a store holds, through the same steps as every change.
    /// Nodes already silent for `down_after` at `now_ms` count as down in
    /// the event log's view (no second `down` event for them).
    pub fn load(config: Config, loaded: Loaded, now_ms: u64) -> State {
        let mut st = State::new(config);
        let mut effects = Effects::default();
        for (record, revision) in loaded.records {
            st.put(record, revision, &mut effects);
        }
        for (node, record) in loaded.live {
            st.remote(&node, Some(record), &mut effects);
        }
        st.revision = loaded.revision;
        st.next_event_seq = loaded.next_event_seq.max(1);
        st.down = st
            .nodes
            .values()
            .filter(|n| {
                // Heard from through another master's session counts.
                let heard = st.live.get(&n.value.id).map_or(0, |l| l.last_seen_ms);
                now_ms.saturating_sub(n.value.last_seen_ms.max(heard)) > st.config.down_after_ms
            })
            .map(|n| n.value.id.clone())
            .collect();
        // The proxies' versions carry on from the revision, so they only
        // grow across restarts.
        st.proxy = Arc::new(ProxyView {
            version: loaded.revision,
            ..ProxyView::default()
        });
        st.derive(now_ms, &mut effects);
        st
    }

    /// The state loaded again whole (the store's history was compacted past
    /// what this master followed): records replaced, what the sessions
    /// said kept. Every session is ended, so each agent connects again and
    /// is sent a snapshot: a delta cannot say what went in the gap.
    pub fn reload(&mut self, loaded: Loaded, now_ms: u64) -> Effects {
        // This master's own sessions' observations stay; the others' come
        // again with the load.
        let mut live = std::mem::take(&mut self.live);
        live.retain(|_, l| l.session.is_some_and(|s| !s.remote));
        let mut effects = Effects {
            close: live.keys().cloned().collect(),
            waiters: true,
            ..Effects::default()
        };
        let proxy_version = self.proxy.version;
        *self = State::load(self.config.clone(), loaded, now_ms);
        for (id, l) in live {
            self.live.insert(id, l);
        }
        // Versions only grow, for the proxies.
        if self.proxy.version <= proxy_version {
            Arc::make_mut(&mut self.proxy).version = proxy_version + 1;
        }
        self.derive(now_ms, &mut effects);
        effects
    }

    /// Makes a committed change current. The only place records change.
    pub fn apply(&mut self, change: &Change, revision: Revision) -> Effects {
        let mut effects = Effects::default();
        for record in &change.puts {
            self.put(record.clone(), revision, &mut effects);
        }
        for key in &change.deletes {
            self.delete(key, revision, &mut effects);
        }
        for e in &change.events {
            self.next_event_seq = self.next_event_seq.max(e.seq + 1);
            if let Some(id) = &e.node_id {
                match e.kind {
                    EventKind::Down => {
                        self.down.insert(id.clone());
                    }
                    EventKind::Up => {
                        self.down.remove(id);
                    }
                    _ => {}
                }
            }
        }
        self.revision = self.revision.max(revision);
        self.derive(change.at_ms, &mut effects);
        effects.waiters = true;
        effects
    }

    fn put(&mut self, record: Record, revision: Revision, effects: &mut Effects) {
        match record {
            Record::Node(node) => {
                let id = node.id.clone();
                let before = self.nodes.get(&id).map(|s| self.hosts_entry(&s.value));
                // Only its own entry: in a swap (a promotion) another node
                // may hold the old name already.
                if let Some(old) = self.nodes.get(&id)
                    && old.value.name != node.name
                    && self.names.get(&old.value.name) == Some(&id)
                {
                    self.names.remove(&old.value.name);
                }
                self.names.insert(node.name.clone(), id.clone());
                self.nodes.insert(
                    id.clone(),
                    Stored {
                        value: node,
                        revision,
                    },
                );
                if before.as_ref() != Some(&self.hosts_entry(&self.nodes[&id].value)) {
                    self.hosts_log.touch(&id, revision);
                    effects.hosts = Some(revision);
                }
                effects.specs.push((id, revision));
            }
            Record::Token(t) => {
                self.tokens
                    .insert(t.id.clone(), Stored { value: t, revision });
            }
            Record::NodeKey(k) => {
                if k.state != KeyState::Accepted {
                    effects.close.push(k.node_id.clone());
                }
                self.keys
                    .insert(k.node_id.clone(), Stored { value: k, revision });
            }
            Record::Revoked(serial) => {
                self.revoked.insert(serial, revision);
                effects.revoked = true;
            }
            Record::User(u) => {
                self.users
                    .insert(u.name.clone(), Stored { value: u, revision });
            }
            Record::Group { name, expr } => {
                self.group_exprs.insert(name.clone(), expr.clone());
                self.groups.insert(
                    name,
                    Stored {
                        value: expr,
                        revision,
                    },
                );
            }
            Record::Upstream { name, source } => {
                self.upstreams.insert(
                    name,
                    Stored {
                        value: source,
                        revision,
                    },
                );
            }
            Record::Route { domain, chain } => {
                self.routes.insert(
                    domain,
                    Stored {
                        value: chain,
                        revision,
                    },
                );
            }
            Record::Settings(s) => {
                self.settings = Some(Stored { value: s, revision });
            }
            Record::Request(r) => {
                self.requests
                    .insert(r.id.clone(), Stored { value: r, revision });
            }
            Record::Alert(a) => {
                self.alerts
                    .insert(a.key.clone(), Stored { value: a, revision });
            }
            // Read from the store when asked for; not held here.
            Record::Job(_) | Record::Rollout(_) => {}
        }
    }

    fn delete(&mut self, key: &Key, revision: Revision, effects: &mut Effects) {
        match key {
            Key::Node(id) => {
                if let Some(old) = self.nodes.remove(id) {
                    if self.names.get(&old.value.name) == Some(id) {
                        self.names.remove(&old.value.name);
                    }
                    self.hosts_log.touch(id, revision);
                    effects.hosts = Some(revision);
                }
                self.down.remove(id);
                effects.close.push(id.clone());
            }
            Key::Token(id) => {
                self.tokens.remove(id);
            }
            Key::NodeKey(id) => {
                self.keys.remove(id);
                effects.close.push(id.clone());
            }
            Key::Revoked(s) => {
                self.revoked.remove(s);
            }
            Key::User(n) => {
                self.users.remove(n);
            }
            Key::Group(n) => {
                self.groups.remove(n);
                self.group_exprs.remove(n);
            }
            Key::Upstream(n) => {
                self.upstreams.remove(n);
            }
            Key::Route(d) => {
                self.routes.remove(d);
            }
            Key::Settings => self.settings = None,
            Key::Request(id) => {
                self.requests.remove(id);
            }
            Key::Alert(k) => {
                self.alerts.remove(k);
            }
            Key::Job(_) | Key::Rollout(_) | Key::Event(_) => {}
        }
    }

    /// Recomputes the derived views that depend on more than one record:
    /// the hosts naming (settings or the configuration) and, through it,
    /// every hosts line; sessions to end; the proxies' view. (Names and
    /// node groups follow each record in `put` and `delete`, so a change
    /// costs what it touches, not the size of the cluster.)
    fn derive(&mut self, now_ms: u64, effects: &mut Effects) {
        let naming = match &self.settings {
            Some(s) => HostsNaming::of_settings(&s.value),
            None => self.config.hosts.clone(),
        };
        if naming != self.hosts_naming {
            // Every line may change with the domain or aliases.
            self.hosts_naming = naming;
            let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
            for id in ids {
                self.hosts_log.touch(&id, self.revision);
            }
            effects.hosts = Some(self.revision);
        }
        effects.close.sort();
        effects.close.dedup();
        for id in &effects.close {
            if let Some(live) = self.live.get_mut(id) {
                live.end_session();
            }
        }
        self.refresh_proxy(now_ms, effects);
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn next_event_seq(&self) -> u64 {
        self.next_event_seq
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn node(&self, id: &str) -> Option<&Stored<Node>> {
        self.nodes.get(id)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Stored<Node>> {
        self.nodes.values()
    }

    pub fn live(&self, id: &str) -> Option<&Live> {
        self.live.get(id)
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        self.live.get(id).and_then(|l| l.session)
    }

    /// Nodes with an open session on this master.
    pub fn sessions(&self) -> usize {
        self.live
            .values()
            .filter(|l| l.session.is_some_and(|s| !s.remote))
            .count()
    }

    pub fn id_of(&self, name: &str) -> Option<&NodeId> {
        self.names.get(name)
    }

    pub fn token(&self, id: &str) -> Option<&Stored<Token>> {
        self.tokens.get(id)
    }

    /// Every person's certificate, by name.
    pub fn users(&self) -> impl Iterator<Item = &UserRecord> {
        self.users.values().map(|u| &u.value)
    }

    pub fn user(&self, name: &str) -> Option<&Stored<UserRecord>> {
        self.users.get(name)
    }

    /// Every join token, by id.
    pub fn tokens(&self) -> impl Iterator<Item = &Token> {
        self.tokens.values().map(|t| &t.value)
    }

    pub fn key(&self, id: &str) -> Option<&Stored<KeyRecord>> {
        self.keys.get(id)
    }

    pub fn keys(&self) -> impl Iterator<Item = &KeyRecord> {
        self.keys.values().map(|k| &k.value)
    }

    pub fn is_revoked(&self, serial: &str) -> bool {
        self.revoked.contains_key(serial)
    }

    pub fn groups(&self) -> &BTreeMap<String, String> {
        &self.group_exprs
    }

    pub fn upstreams(&self) -> impl Iterator<Item = (&String, &UpstreamSource)> {
        self.upstreams.iter().map(|(k, v)| (k, &v.value))
    }

    pub fn routes(&self) -> impl Iterator<Item = (&String, &Domain)> {
        self.routes.iter().map(|(k, v)| (k, &v.value))
    }

    pub fn settings(&self) -> Option<&Settings> {
        self.settings.as_ref().map(|s| &s.value)
    }

    pub fn hosts_naming(&self) -> &HostsNaming {
        &self.hosts_naming
    }

    pub fn proxy_view(&self) -> &Arc<ProxyView> {
        &self.proxy
    }

    pub fn is_down_logged(&self, id: &str) -> bool {
        self.down.contains(id)
    }

    /// The revision the store holds `key` at, as this state last saw it.
    pub fn revision_of(&self, key: &Key) -> Option<Revision> {
        match key {
            Key::Node(id) => self.nodes.get(id).map(|s| s.revision),
            Key::Token(id) => self.tokens.get(id).map(|s| s.revision),
            Key::NodeKey(id) => self.keys.get(id).map(|s| s.revision),
            Key::Revoked(s) => self.revoked.get(s).copied(),
            Key::User(n) => self.users.get(n).map(|s| s.revision),
            Key::Group(n) => self.groups.get(n).map(|s| s.revision),
            Key::Upstream(n) => self.upstreams.get(n).map(|s| s.revision),
            Key::Route(d) => self.routes.get(d).map(|s| s.revision),
            Key::Settings => self.settings.as_ref().map(|s| s.revision),
            Key::Request(id) => self.requests.get(id).map(|s| s.revision),
            Key::Alert(k) => self.alerts.get(k).map(|s| s.revision),
            Key::Job(_) | Key::Rollout(_) | Key::Event(_) => None,
        }
    }

    /// The records, for comparing two states (a live one and one reloaded
    /// from the store).
    pub fn records(&self) -> Vec<(Record, Revision)> {
        let mut out = Vec::new();
        out.extend(
            self.nodes
                .values()
                .map(|s| (Record::Node(s.value.clone()), s.revision)),
        );
        out.extend(
            self.tokens
                .values()
                .map(|s| (Record::Token(s.value.clone()), s.revision)),
        );
        out.extend(
            self.keys
                .values()
                .map(|s| (Record::NodeKey(s.value.clone()), s.revision)),
        );
        out.extend(
            self.revoked
                .iter()
                .map(|(s, r)| (Record::Revoked(s.clone()), *r)),
        );
        out.extend(
            self.users
                .values()
                .map(|s| (Record::User(s.value.clone()), s.revision)),
        );
        out.extend(self.groups.iter().map(|(n, s)| {
            let r = Record::Group {
                name: n.clone(),
                expr: s.value.clone(),
            };
            (r, s.revision)
        }));
        out.extend(self.upstreams.iter().map(|(n, s)| {
            let r = Record::Upstream {
                name: n.clone(),
                source: s.value.clone(),
            };
            (r, s.revision)
        }));
        out.extend(self.routes.iter().map(|(d, s)| {
            let r = Record::Route {
                domain: d.clone(),
                chain: s.value.clone(),
            };
            (r, s.revision)
        }));
        out.extend(
            self.settings
                .iter()
                .map(|s| (Record::Settings(s.value.clone()), s.revision)),
        );
        out.extend(
            self.requests
                .values()
                .map(|s| (Record::Request(s.value.clone()), s.revision)),
        );
        out.extend(
            self.alerts
                .values()
                .map(|s| (Record::Alert(s.value.clone()), s.revision)),
        );
        out
    }

    /// The firing alerts, by node, metric, severity and device.
    pub fn alerts(&self) -> impl Iterator<Item = &Transition> {
        self.alerts.values().map(|a| &a.value)
    }

    /// One node's firing alerts.
    pub fn alerts_of<'a>(&'a self, node: &'a NodeId) -> impl Iterator<Item = &'a Transition> {
        self.alerts
            .range(AlertKey::first_of(node)..)
            .take_while(move |(k, _)| &k.node == node)
            .map(|(_, a)| &a.value)
    }

    /// What the call with request id `id` answered, when it took effect.
    pub fn request(&self, id: &str) -> Option<&RequestRecord> {
        self.requests.get(id).map(|s| &s.value)
    }

    /// Request records made at `before_ms` or earlier, oldest first.
    pub fn requests_before(&self, before_ms: u64) -> Vec<String> {
        let mut old: Vec<(&u64, &String)> = self
            .requests
            .values()
            .filter(|s| s.value.at_ms <= before_ms)
            .map(|s| (&s.value.at_ms, &s.value.id))
            .collect();
        old.sort();
        old.into_iter().map(|(_, id)| id.clone()).collect()
    }
}
