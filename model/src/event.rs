//! The append-only audit log: who did what to which node, when, why.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub time_ms: u64,
    pub kind: EventKind,
    /// The node it is about, by its stable id: what `events --node` selects
    /// on, so a node's history follows it through renames and promotions.
    /// `None` for cluster-wide events (and for events stored before ids
    /// were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
    /// The node's name when the event happened (empty for cluster-wide
    /// events), or the subject of a refusal that names no known node.
    pub node: String,
    pub by: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Registered,
    Drain,
    Undrain,
    Down,
    Up,
    /// A request refused for who made it (no or bad certificate, a bad
    /// token, a role without the permission).
    Denied,
    /// A node's key: pending, accepted, rejected, deleted (revoked).
    Key,
    Token,
    User,
    Label,
    Group,
    Job,
    /// A node's name changed (assigned, renamed, promoted) or it was removed.
    Name,
    /// An upstream or a route was set or removed.
    Balancing,
    /// A node's local health check changed state.
    Check,
    /// A rolling deploy started, was resumed, ended.
    Rollout,
    /// An agent could not make a desired state durable, or could again.
    Agent,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Registered => "registered",
            EventKind::Drain => "drain",
            EventKind::Undrain => "undrain",
            EventKind::Down => "down",
            EventKind::Up => "up",
            EventKind::Denied => "denied",
            EventKind::Key => "key",
            EventKind::Token => "token",
            EventKind::User => "user",
            EventKind::Label => "label",
            EventKind::Group => "group",
            EventKind::Job => "job",
            EventKind::Name => "name",
            EventKind::Balancing => "balancing",
            EventKind::Check => "check",
            EventKind::Rollout => "rollout",
            EventKind::Agent => "agent",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown event kind {s:?}"))
    }
}
