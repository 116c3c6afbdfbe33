//! Who may talk to the master: the identity in a verified certificate, join
//! tokens, node keys in Salt's three states (accepted, pending, rejected),
//! revocation, user certificates, and an audit event for every refusal.
//!
//! Every decision here is one durable write under the writer lock, like the
//! rest of the cluster: a refused request changes nothing but the audit log.

use super::{Cluster, ClusterError, State};
use crate::model::{EventKind, KeyRecord, KeyState, Token, now_ms};
use crate::pki::{self, Role, Subject};
use crate::store::Write;
use std::time::{Duration, SystemTime};

/// Who is calling, from its verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Node {
        id: String,
        serial: String,
    },
    User {
        name: String,
        role: Role,
        serial: String,
    },
    /// No client certificate (only enrollment is open to it).
    Anonymous,
}

impl Caller {
    /// How the event log names the caller.
    pub fn label(&self) -> String {
        match self {
            Caller::Node { id, .. } => format!("node {id}"),
            Caller::User { name, .. } => name.clone(),
            Caller::Anonymous => "anonymous".into(),
        }
    }
}

/// A new join token, shown once.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub token: String,
    pub ca_fingerprint: String,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Accepted { cert_pem: String, ca_pem: String },
    Pending,
    Rejected(String),
}

/// What `keys accept|reject|delete` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDecision {
    Accept,
    Reject,
    Delete,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .expect("the system random source works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn secret_hash(secret: &str) -> String {
    pki::fingerprint(secret.as_bytes())
}

/// Names of people and nodes: what a hostname label allows, plus dots.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), ClusterError> {
    crate::grpc::convert::check_node_id(name)
        .map_err(|reason| ClusterError::Invalid(format!("{what} {name:?} {reason}")))
}

impl State {
    /// Checks a presented token; the token's id on success.
    fn redeem(&self, token: &str, now: u64) -> Result<Token, String> {
        let (id, secret) = token
            .split_once('.')
            .ok_or_else(|| "malformed join token (expected ID.SECRET)".to_owned())?;
        let t = self
            .tokens
            .get(id)
            .filter(|t| t.secret_hash == secret_hash(secret))
            .ok_or_else(|| "invalid join token".to_owned())?;
        if now >= t.expires_ms {
            return Err(format!(
                "join token {id} expired at {}",
                humantime::format_rfc3339_seconds(
                    SystemTime::UNIX_EPOCH + Duration::from_millis(t.expires_ms)
                )
            ));
        }
        if t.uses_left == Some(0) {
            return Err(format!("join token {id} has been used up"));
        }
        Ok(t.clone())
    }
}

impl Cluster {
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    pub fn ca_fingerprint(&self) -> String {
        self.ca.fingerprint()
    }

    /// The caller a verified certificate names, or why it is refused: not a
    /// clusterctl identity, revoked, or a node certificate that is not the
    /// node's current accepted key.
    pub fn authenticate(&self, cert_der: Option<&[u8]>) -> Result<Caller, ClusterError> {
        let Some(der) = cert_der else {
            return Ok(Caller::Anonymous);
        };
        let (subject, serial) =
            pki::identity(der).map_err(|e| ClusterError::Unauthenticated(e.to_string()))?;
        let st = self.state();
        if st.revoked.contains(&serial) {
            return Err(ClusterError::Unauthenticated(format!(
                "certificate {serial} has been revoked"
            )));
        }
        match subject {
            Subject::Node(id) => match st.keys.get(&id) {
                Some(k) if k.state == KeyState::Accepted && k.serial == serial => {
                    Ok(Caller::Node { id, serial })
                }
                _ => Err(ClusterError::Unauthenticated(format!(
                    "the key of node {id} is no longer accepted; it must enroll again"
                ))),
            },
            Subject::User { name, role } => Ok(Caller::User { name, role, serial }),
        }
    }

    /// Records a refusal in the event log (best effort: a store failure is
    /// logged, the refusal stands either way).
    pub async fn deny(&self, node: &str, who: &str, detail: String) {
        let _w = self.writer.lock().await;
        self.record_denial(node, who, detail).await;
    }

    /// `deny` for callers that already hold the writer lock.
    async fn record_denial(&self, node: &str, who: &str, detail: String) {
        tracing::warn!(%who, %node, %detail, "refused");
        let event = self.state().event(EventKind::Denied, node, who, detail);
        let write = Write {
            events: vec![event],
            ..Write::default()
        };
        if let Err(e) = self.persist(write).await {
            self.state().next_event_seq -= 1;
            tracing::error!(error = %e, "cannot record a refusal in the event log");
        }
    }

    pub async fn create_token(
        &self,
        by: &str,
        ttl: Duration,
        uses: Option<u32>,
        roles: Vec<String>,
    ) -> Result<TokenGrant, ClusterError> {
        if ttl.is_zero() {
            return Err(ClusterError::Invalid(
                "a token's ttl must be above zero".into(),
            ));
        }
        for r in &roles {
            check_name("role", r)?;
        }
        let _w = self.writer.lock().await;
        let now = now_ms();
        let (id, secret) = (random_hex(3), random_hex(16));
        let token = Token {
            id: id.clone(),
            secret_hash: secret_hash(&secret),
            expires_ms: now.saturating_add(ttl.as_millis() as u64),
            uses_left: uses,
            roles,
            created_by: by.to_owned(),
            created_ms: now,
        };
        let detail = format!(
            "created token {id} (ttl {}, {} uses, roles [{}])",
            humantime::format_duration(ttl),
            uses.map_or("unlimited".to_owned(), |u| u.to_string()),
            token.roles.join(", ")
        );
        let event = self.state().event(EventKind::Token, "", by, detail);
        let write = Write {
            tokens: vec![token.clone()],
            events: vec![event],
            ..Write::default()
        };
        if let Err(e) = self.persist(write).await {
            self.state().next_event_seq -= 1;
            return Err(e.into());
        }
        self.state().tokens.insert(id.clone(), token.clone());
        Ok(TokenGrant {
            token: format!("{id}.{secret}"),
            ca_fingerprint: self.ca_fingerprint(),
            expires_ms: token.expires_ms,
        })
    }

    /// An agent asks for a certificate for `node_id`. With a valid token it
    /// is accepted at once; without one it waits as pending. Asking again
    /// with the same key is idempotent.
    pub async fn join(
        &self,
        node_id: &str,
        csr_pem: &str,
        token: Option<&str>,
    ) -> Result<JoinOutcome, ClusterError> {
        check_name("node id", node_id)?;
        let fingerprint =
            pki::csr_fingerprint(csr_pem).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let _w = self.writer.lock().await;
        let now = now_ms();
        let existing = self.state().keys.get(node_id).cloned();
        let refuse = |why: String| async move {
            self.record_denial(node_id, "enrollment", why.clone()).await;
            Ok(JoinOutcome::Rejected(why))
        };
        match &existing {
            Some(k) if k.fingerprint != fingerprint => {
                let why = match k.state {
                    KeyState::Accepted => format!(
                        "node {node_id} is already enrolled with another key; an admin can run `clusterctl keys delete {node_id}` to let it enroll again"
                    ),
                    KeyState::Pending => {
                        format!("another key is already pending for node {node_id}")
                    }
                    KeyState::Rejected => {
                        format!("node {node_id} was rejected by {}", k.decided_by)
                    }
                };
                return refuse(why).await;
            }
            Some(k) if k.state == KeyState::Accepted => {
                return Ok(JoinOutcome::Accepted {
                    cert_pem: k.cert_pem.clone(),
                    ca_pem: self.ca.cert_pem.clone(),
                });
            }
            Some(k) if k.state == KeyState::Rejected => {
                return Ok(JoinOutcome::Rejected(format!(
                    "the key of node {node_id} was rejected by {}",
                    k.decided_by
                )));
            }
            _ => {}
        }
        let redeemed = token
            .filter(|t| !t.is_empty())
            .map(|t| self.state().redeem(t, now));
        let grant = match redeemed {
            Some(Ok(grant)) => Some(grant),
            Some(Err(why)) => return refuse(format!("{why} (node {node_id})")).await,
            None => None,
        };
        let mut write = Write::default();
        let record = match grant {
            Some(mut token) => {
                let (cert_pem, serial) = self
                    .ca
                    .issue_client(
                        csr_pem,
                        &Subject::Node(node_id.to_owned()),
                        SystemTime::now(),
                    )
                    .map_err(|e| ClusterError::Invalid(e.to_string()))?;
                token.uses_left = token.uses_left.map(|u| u - 1);
                let detail = format!("accepted with token {}", token.id);
                write.events.push(self.state().event(
                    EventKind::Key,
                    node_id,
                    "enrollment",
                    detail,
                ));
                let record = KeyRecord {
                    node_id: node_id.to_owned(),
                    state: KeyState::Accepted,
                    fingerprint,
                    csr_pem: String::new(),
                    cert_pem,
                    serial,
                    requested_ms: now,
                    decided_by: format!("token {}", token.id),
                    roles: token.roles.clone(),
                };
                write.tokens.push(token);
                record
            }
            None if existing.is_some() => return Ok(JoinOutcome::Pending),
            None => {
                let detail = format!("pending ({fingerprint})");
                write.events.push(self.state().event(
                    EventKind::Key,
                    node_id,
                    "enrollment",
                    detail,
                ));
                KeyRecord {
                    node_id: node_id.to_owned(),
                    state: KeyState::Pending,
                    fingerprint,
                    csr_pem: csr_pem.to_owned(),
                    cert_pem: String::new(),
                    serial: String::new(),
                    requested_ms: now,
                    decided_by: String::new(),
                    roles: Vec::new(),
                }
            }
        };
        write.keys.push(record.clone());
        self.commit(write).await?;
        Ok(match record.state {
            KeyState::Accepted => JoinOutcome::Accepted {
                cert_pem: record.cert_pem,
                ca_pem: self.ca.cert_pem.clone(),
            },
            _ => JoinOutcome::Pending,
        })
    }

    /// Persists `write`, then publishes its tokens, keys and revocations to
    /// memory; on failure gives back the event numbers it took.
    pub(super) async fn commit(&self, write: Write) -> Result<(), ClusterError> {
        if let Err(e) = self.persist(write.clone()).await {
            self.state().next_event_seq -= write.events.len() as u64;
            return Err(e.into());
        }
        let mut st = self.state();
        for t in write.tokens {
            st.tokens.insert(t.id.clone(), t);
        }
        for k in write.keys {
            st.keys.insert(k.node_id.clone(), k);
        }
        for id in &write.keys_deleted {
            st.keys.remove(id);
        }
        st.revoked.extend(write.revoked);
        Ok(())
    }

    /// Every key, sorted by node id.
    pub fn keys(&self) -> Vec<KeyRecord> {
        let mut keys: Vec<_> = self.state().keys.values().cloned().collect();
        keys.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        keys
    }

    /// Accepts, rejects or deletes the keys of `ids` (node ids or names).
    /// All or nothing. Rejecting an accepted key or deleting any key revokes
    /// its certificate and closes the node's open session at once.
    pub async fn decide_keys(
        &self,
        ids: &[String],
        decision: KeyDecision,
        by: &str,
    ) -> Result<Vec<KeyRecord>, ClusterError> {
        if ids.is_empty() {
            return Err(ClusterError::NoNames);
        }
        let _w = self.writer.lock().await;
        let now = SystemTime::now();
        let mut write = Write::default();
        let mut out = Vec::new();
        let mut close = Vec::new();
        {
            let mut st = self.state();
            let mut unknown = Vec::new();
            let mut records = Vec::new();
            for id in ids {
                let id = st
                    .names
                    .get(id.as_str())
                    .cloned()
                    .unwrap_or_else(|| id.clone());
                match st.keys.get(&id) {
                    Some(k) => records.push(k.clone()),
                    None => unknown.push(id),
                }
            }
            if !unknown.is_empty() {
                return Err(ClusterError::UnknownKeys(unknown));
            }
            for mut k in records {
                let before = k.state;
                let detail = match (decision, k.state) {
                    (KeyDecision::Accept, KeyState::Accepted) => None,
                    (KeyDecision::Accept, _) => {
                        let (cert_pem, serial) = self
                            .ca
                            .issue_client(&k.csr_pem, &Subject::Node(k.node_id.clone()), now)
                            .map_err(|e| ClusterError::Invalid(e.to_string()))?;
                        k.state = KeyState::Accepted;
                        k.cert_pem = cert_pem;
                        k.serial = serial;
                        k.csr_pem.clear();
                        Some("accepted".to_owned())
                    }
                    (KeyDecision::Reject, KeyState::Rejected) => None,
                    (KeyDecision::Reject, _) => {
                        k.state = KeyState::Rejected;
                        Some("rejected".to_owned())
                    }
                    (KeyDecision::Delete, _) => {
                        write.keys_deleted.push(k.node_id.clone());
                        Some("deleted".to_owned())
                    }
                };
                let Some(mut detail) = detail else {
                    out.push(k);
                    continue;
                };
                if before == KeyState::Accepted && decision != KeyDecision::Accept {
                    write.revoked.push(k.serial.clone());
                    close.push(k.node_id.clone());
                    detail.push_str(&format!("; certificate {} revoked", k.serial));
                }
                k.decided_by = by.to_owned();
                let name = st
                    .nodes
                    .get(&k.node_id)
                    .map(|n| n.name.clone())
                    .unwrap_or_else(|| k.node_id.clone());
                write
                    .events
                    .push(st.event(EventKind::Key, &name, by, detail));
                if decision != KeyDecision::Delete {
                    write.keys.push(k.clone());
                }
                out.push(k);
            }
        }
        self.commit(write).await?;
        let mut st = self.state();
        for id in close {
            // Dropping the session's watch ends its loop and closes the stream.
            st.sessions.remove(&id);
            if let Some(n) = st.nodes.get_mut(&id) {
                n.connected = false;
            }
        }
        drop(st);
        self.acks.send_modify(|n| *n += 1);
        Ok(out)
    }

    /// Signs a certificate for a person.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        csr_pem: &str,
        by: &str,
    ) -> Result<String, ClusterError> {
        check_name("user name", name)?;
        let _w = self.writer.lock().await;
        let subject = Subject::User {
            name: name.to_owned(),
            role,
        };
        let (cert_pem, serial) = self
            .ca
            .issue_client(csr_pem, &subject, SystemTime::now())
            .map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let detail = format!(
            "issued a {} certificate for {name} (serial {serial})",
            role.as_str()
        );
        let event = self.state().event(EventKind::User, "", by, detail);
        self.commit(Write {
            events: vec![event],
            ..Write::default()
        })
        .await?;
        Ok(cert_pem)
    }

    /// Roles a node was given by the token it joined with.
    pub fn assigned_roles(&self, node_id: &str) -> Vec<String> {
        self.state()
            .keys
            .get(node_id)
            .map(|k| k.roles.clone())
            .unwrap_or_default()
    }
}
