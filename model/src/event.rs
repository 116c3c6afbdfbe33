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
    /// Who: the caller's certificate identity, and nothing the caller
    /// chose.
    pub by: String,
    /// What the caller's client said of itself (`user@host`), sanitised
    /// and bounded ([`sanitised_hint`]): a hint, never the identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
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
    /// A usage alert fired or resolved, or could not be delivered.
    Alert,
    /// A node's grains or facts changed, or an external fact source
    /// failed or was read again.
    Facts,
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
            EventKind::Alert => "alert",
            EventKind::Facts => "facts",
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

/// The longest client-supplied note kept beside an event's author.
pub const HINT_MAX_CHARS: usize = 64;

/// A client's own note on who it is (clusterctl's `user@host`), fit to
/// stand beside the certificate's identity in an event: control
/// characters (newlines, escape sequences) escaped, so it cannot forge a
/// line of the log or of a terminal, and cut to [`HINT_MAX_CHARS`].
pub fn sanitised_hint(hint: &str) -> String {
    crate::limits::printable_cut(hint.trim(), HINT_MAX_CHARS)
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    #[test]
    fn a_hint_cannot_break_a_line_or_run_long() {
        assert_eq!(sanitised_hint(" olga@web-1 "), "olga@web-1");
        assert_eq!(
            sanitised_hint("olga\n2026-01-01 drain web-2 by root\x1b[2J"),
            "olga\\n2026-01-01 drain web-2 by root\\u{1b}[2J"
        );
        let long = sanitised_hint(&"x".repeat(1000));
        assert_eq!(long.chars().count(), HINT_MAX_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
