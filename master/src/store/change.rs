//! What a mutation of the cluster is, as the store commits it: the exact
//! records to put and delete, the events to append, and the preconditions
//! the plan relied on — each record's revision as the planner read it, or
//! "must not exist". The shape of an etcd transaction: compare on mod
//! revisions, then puts and deletes.

use cluster_balancer::{Domain, UpstreamSource};
use cluster_model::alerts::{AlertKey, Transition};
use cluster_model::clusterfile::Settings;
use cluster_model::rollout::RolloutRecord;
use cluster_model::{
    Applied, CheckResult, Event, JobRecord, KeyRecord, LbReport, Node, NodeId, Token, Usage,
    UserRecord,
};
use serde::{Deserialize, Serialize};

/// The store's revision: every commit moves it by one (in sled; in etcd by
/// at least one). It is the generation agents see.
pub type Revision = u64;

/// Where a record lives in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Key {
    Node(NodeId),
    Token(String),
    /// A node's enrollment key.
    NodeKey(NodeId),
    /// A revoked certificate, by serial.
    Revoked(String),
    /// A person's certificate, by name.
    User(String),
    Group(String),
    Upstream(String),
    /// A domain's route chain.
    Route(String),
    Settings,
    Job(String),
    Rollout(String),
    Event(u64),
    /// A mutating call's request id: what it answered, so a retry with
    /// the same id answers the same without acting again.
    Request(String),
    /// A firing alert: node, metric, severity, device.
    Alert(AlertKey),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Node(id) => write!(f, "node/{id}"),
            Key::Token(id) => write!(f, "token/{id}"),
            Key::NodeKey(id) => write!(f, "key/{id}"),
            Key::Revoked(s) => write!(f, "revoked/{s}"),
            Key::User(n) => write!(f, "user/{n}"),
            Key::Group(n) => write!(f, "group/{n}"),
            Key::Upstream(n) => write!(f, "upstream/{n}"),
            Key::Route(d) => write!(f, "route/{d}"),
            Key::Settings => f.write_str("meta/settings"),
            Key::Job(id) => write!(f, "job/{id}"),
            Key::Rollout(id) => write!(f, "rollout/{id}"),
            Key::Event(seq) => write!(f, "event/{seq}"),
            Key::Request(id) => write!(f, "request/{id}"),
            Key::Alert(k) => write!(
                f,
                "alert/{}/{}/{}/{}",
                k.node, k.metric, k.severity, k.device
            ),
        }
    }
}

/// One record to put.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Node(Node),
    Token(Token),
    NodeKey(KeyRecord),
    Revoked(String),
    User(UserRecord),
    Group {
        name: String,
        expr: String,
    },
    Upstream {
        name: String,
        source: UpstreamSource,
    },
    Route {
        domain: String,
        chain: Domain,
    },
    Settings(Settings),
    Job(JobRecord),
    Rollout(RolloutRecord),
    Request(RequestRecord),
    /// A firing alert, as it fired (deleted when it resolves).
    Alert(Transition),
}

/// A mutating call that took effect, under the request id its caller sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Also its key's last part (what a stored record is read back by).
    #[serde(default)]
    pub id: String,
    /// What the call answered (its command's outcome, as JSON).
    pub out: String,
    pub at_ms: u64,
}

impl Record {
    pub fn key(&self) -> Key {
        match self {
            Record::Node(n) => Key::Node(n.id.clone()),
            Record::Token(t) => Key::Token(t.id.clone()),
            Record::NodeKey(k) => Key::NodeKey(k.node_id.clone()),
            Record::Revoked(s) => Key::Revoked(s.clone()),
            Record::User(u) => Key::User(u.name.clone()),
            Record::Group { name, .. } => Key::Group(name.clone()),
            Record::Upstream { name, .. } => Key::Upstream(name.clone()),
            Record::Route { domain, .. } => Key::Route(domain.clone()),
            Record::Settings(_) => Key::Settings,
            Record::Job(j) => Key::Job(j.id.clone()),
            Record::Rollout(r) => Key::Rollout(r.id.clone()),
            Record::Request(r) => Key::Request(r.id.clone()),
            Record::Alert(a) => Key::Alert(a.key.clone()),
        }
    }
}

/// What a record must be for the change to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// Absent.
    Absent,
    /// Present, last written at this revision.
    At(Revision),
}

impl Expect {
    /// Whether a record found at `found` (`None`: absent) meets it.
    pub fn holds(self, found: Option<Revision>) -> bool {
        match self {
            Expect::Absent => found.is_none(),
            Expect::At(rev) => found == Some(rev),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    pub key: Key,
    pub expect: Expect,
}

/// One atomic, durable change. (Serialised only to travel from a
/// standby master to the leader.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub puts: Vec<Record>,
    pub deletes: Vec<Key>,
    /// Numbered by the planner; each must not exist yet.
    pub events: Vec<Event>,
    /// What the plan read, checked in the same transaction.
    pub preconditions: Vec<Precondition>,
    /// When it was planned: what time-dependent views are derived with.
    pub at_ms: u64,
    /// The state's revision the plan read.
    pub read_revision: Revision,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty() && self.events.is_empty()
    }
}

/// Everything the master reloads into its state on start: every record
/// with the revision it was last written at.
#[derive(Debug, Default)]
pub struct Loaded {
    pub revision: Revision,
    pub records: Vec<(Record, Revision)>,
    /// The sequence number the next event gets.
    pub next_event_seq: u64,
    /// What the other masters' sessions say (with several masters).
    pub live: Vec<(NodeId, LiveRecord)>,
}

/// What one master's session with a node's agent says, as the other
/// masters see it. Not desired state: each master writes its own
/// sessions' records (not through the leader), and they vanish with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRecord {
    /// The master holding the session, and its address (jobs for the node
    /// are relayed there).
    pub master: String,
    #[serde(default)]
    pub address: String,
    /// When the session opened (the newest session of a node wins).
    pub since_ms: u64,
    pub last_seen_ms: u64,
    #[serde(default)]
    pub wants_hosts: bool,
    #[serde(default)]
    pub wants_proxy: bool,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub applied: Applied,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    #[serde(default)]
    pub lb: Option<LbReport>,
}
