//! Who may talk to the master: join tokens, node keys in Salt's three
//! states, and the roles of people's certificates.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

/// A join token. Only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The public half (`<id>.<secret>`), shown in events.
    pub id: String,
    /// sha256 of the secret half.
    pub secret_hash: String,
    pub expires_ms: u64,
    /// `None`: any number of uses until it expires.
    pub uses_left: Option<u32>,
    /// Roles given to nodes that join with it.
    pub roles: Vec<String>,
    pub created_by: String,
    pub created_ms: u64,
    /// Set for a token of the HTTP API (`token create --api`): whose it is
    /// and what it may do. Such a token never enrolls a node, and a join
    /// token never opens the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiAccess>,
}

/// An API token's holder and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiAccess {
    /// Who the event log names for what the token does.
    pub name: String,
    pub role: Role,
}

impl Token {
    /// `expires_ms` of a token that does not expire.
    pub const NEVER: u64 = u64::MAX;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Accepted,
    Pending,
    Rejected,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Accepted => "accepted",
            KeyState::Pending => "pending",
            KeyState::Rejected => "rejected",
        }
    }
}

/// A node's key, Salt-style: what it asked for and what was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub node_id: NodeId,
    pub state: KeyState,
    /// sha256 of the node's public key.
    pub fingerprint: String,
    /// Kept while pending, so accepting can sign it.
    pub csr_pem: String,
    /// Set once accepted.
    pub cert_pem: String,
    pub serial: String,
    pub requested_ms: u64,
    pub decided_by: String,
    /// Roles from the token it joined with.
    pub roles: Vec<String>,
    /// The address the request came from ("" when not known: keys from
    /// before it was kept).
    #[serde(default)]
    pub source: String,
    /// While pending: other requests for the same node, with other keys,
    /// oldest first (at most [`MAX_REQUESTS_A_NODE`] in all). Accepting
    /// then names which by its fingerprint; the rest are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_pending: Vec<PendingRequest>,
    /// The serial of the certificate this one renewed: still accepted
    /// (until it expires), so an agent whose renewal's answer was lost
    /// can ask again; revoked with the key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous_serial: String,
}

/// How far before its issue a certificate is valid from, for clocks that
/// disagree.
pub const CLOCK_SLACK_MS: u64 = 300_000;

/// When a certificate valid over `[not_before, not_after]` is renewed:
/// after two thirds of the life it was issued with (as kubelet and
/// cert-manager do), the clock slack before its issue left out.
pub fn renew_from(not_before_ms: u64, not_after_ms: u64) -> u64 {
    let issued = (not_before_ms + CLOCK_SLACK_MS).min(not_after_ms);
    issued + (not_after_ms - issued) / 3 * 2
}

/// Requests that may wait for one node at once (a pending key and the
/// others beside it).
pub const MAX_REQUESTS_A_NODE: usize = 8;

/// A request for a node's certificate waiting beside another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub fingerprint: String,
    pub csr_pem: String,
    pub requested_ms: u64,
    pub source: String,
}

impl KeyRecord {
    /// The serials of the node's certificates that are accepted.
    pub fn serials(&self) -> impl Iterator<Item = &str> {
        [self.serial.as_str(), self.previous_serial.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
    }

    /// The requests waiting for this node: none unless pending; the first
    /// is the record's own.
    pub fn requests(&self) -> Vec<PendingRequest> {
        if self.state != KeyState::Pending {
            return Vec::new();
        }
        std::iter::once(PendingRequest {
            fingerprint: self.fingerprint.clone(),
            csr_pem: self.csr_pem.clone(),
            requested_ms: self.requested_ms,
            source: self.source.clone(),
        })
        .chain(self.also_pending.iter().cloned())
        .collect()
    }

    /// Whether `fingerprint` is this record's key or one waiting beside it.
    pub fn knows(&self, fingerprint: &str) -> bool {
        self.fingerprint == fingerprint
            || self
                .also_pending
                .iter()
                .any(|r| r.fingerprint == fingerprint)
    }

    /// Makes `request` the record's own and drops the rest.
    pub fn choose(&mut self, request: PendingRequest) {
        self.fingerprint = request.fingerprint;
        self.csr_pem = request.csr_pem;
        self.requested_ms = request.requested_ms;
        self.source = request.source;
        self.also_pending.clear();
    }
}

/// A person's certificate, as the master issued it: listed by `user
/// list`, withdrawn by `user revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    /// The certificate's serial (what revocation lists).
    pub serial: String,
    pub issued_ms: u64,
    pub issued_by: String,
    /// Set once revoked: when, and by whom.
    #[serde(default)]
    pub revoked_ms: Option<u64>,
    #[serde(default)]
    pub revoked_by: String,
}

/// What a person's certificate allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, `run` included.
    Admin,
    /// Read, drain and undrain.
    Operator,
    /// Read only: nodes, grains, events, jobs (dashboards, monitoring).
    Read,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Read => "read",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "read" => Ok(Role::Read),
            other => Err(format!("role {other:?}: expected admin, operator or read")),
        }
    }
}
