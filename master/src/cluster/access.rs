//! Who may talk to the cluster: callers named by their certificates,
//! refusals audited, join tokens, node keys (enrollment, decisions,
//! renewal), people's certificates, and what expires when.

use super::{Cluster, ClusterError};
use crate::pki::{self, Subject};
use crate::state::plan::{
    CreateToken, DecideKeys, Deny, IssueUser, Join, JoinOutcome, KeyDecision,
};
use cluster_model::time::now_ms;
use cluster_model::{KeyRecord, KeyState, NodeId, Role};
use std::time::Duration;

/// Who is calling, from its verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Node {
        id: NodeId,
        serial: String,
    },
    User {
        name: String,
        role: Role,
        serial: String,
    },
    /// Another master of the cluster.
    Master {
        name: String,
        serial: String,
    },
    /// The holder of an HTTP API token.
    Api {
        name: String,
        role: Role,
        /// The token's id (its public half).
        token: String,
    },
    /// No client certificate (only enrollment is open to it).
    Anonymous,
}

impl Caller {
    /// The certificate's serial (none without one).
    pub fn serial(&self) -> Option<&str> {
        match self {
            Caller::Node { serial, .. }
            | Caller::User { serial, .. }
            | Caller::Master { serial, .. } => Some(serial),
            Caller::Api { .. } | Caller::Anonymous => None,
        }
    }

    /// How the event log names the caller.
    pub fn label(&self) -> String {
        match self {
            Caller::Node { id, .. } => format!("node {id}"),
            Caller::User { name, .. } | Caller::Api { name, .. } => name.clone(),
            Caller::Master { name, .. } => format!("master {name}"),
            Caller::Anonymous => "anonymous".into(),
        }
    }
}

/// What a call needs of its caller.
///
/// | permission | admin | operator | read | node |
/// |---|---|---|---|---|
/// | `Read` (list nodes, events) | yes | yes | yes | no |
/// | `Drain` (drain, undrain) | yes | yes | no | no |
/// | `Admin` (tokens, keys, users, remote execution) | yes | no | no | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Drain,
    Admin,
}

impl Permission {
    /// Whether `role` has it.
    pub fn allows(self, role: Role) -> bool {
        match role {
            Role::Admin => true,
            Role::Operator => self != Permission::Admin,
            Role::Read => self == Permission::Read,
        }
    }

    /// Who has it, for a refusal.
    fn holders(self) -> &'static str {
        match self {
            Permission::Admin => "an admin",
            Permission::Drain => "an operator or an admin",
            Permission::Read => "any user",
        }
    }
}

/// Why a caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nobody said who they are.
    Unauthenticated(String),
    /// Someone who may not.
    Denied(String),
}

impl Caller {
    /// Why this caller may not do `action`, which needs `need`; `None` when
    /// it may. People (certificates or API tokens) by their role; nodes and
    /// masters only on calls of their own.
    pub fn refusal(&self, need: Permission, action: &str) -> Option<Refusal> {
        match self {
            Caller::User { name, role, .. } | Caller::Api { name, role, .. } => {
                (!need.allows(*role)).then(|| {
                    let is = match role {
                        Role::Operator => "is an operator",
                        Role::Read => "may only read",
                        Role::Admin => "is an admin",
                    };
                    Refusal::Denied(format!("{name} {is}; {action} needs {}", need.holders()))
                })
            }
            Caller::Node { id, .. } => Some(Refusal::Denied(format!(
                "node {id}'s certificate may not {action}"
            ))),
            // A master's certificate is for the masters' own calls (`peer`).
            Caller::Master { name, .. } => Some(Refusal::Denied(format!(
                "master {name}'s certificate may not {action}"
            ))),
            Caller::Anonymous => Some(Refusal::Unauthenticated(format!(
                "a client certificate is required to {action}"
            ))),
        }
    }
}

/// A new join token, shown once.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub token: String,
    pub ca_fingerprint: String,
    pub expires_ms: u64,
    /// An API token's holder and role.
    pub api: Option<cluster_model::ApiAccess>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .expect("the system random source works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Access: certificates, tokens, keys, users, refusals.
impl Cluster {
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    pub fn ca_fingerprint(&self) -> String {
        self.ca.fingerprint()
    }

    /// See [`pki::Ca::derived_key`].
    pub fn derived_key(&self, purpose: &str) -> ring::hmac::Key {
        self.ca.derived_key(purpose)
    }

    /// The caller an API token names by its id alone — for a session the
    /// dashboard signed when the token's secret was shown to it — checked
    /// against the state as it is now.
    pub fn api_caller_by_id(&self, id: &str) -> Result<Caller, ClusterError> {
        self.read(|st| {
            let now = now_ms();
            match st.token(id).map(|t| &t.value) {
                Some(t) if now < t.expires_ms => match &t.api {
                    Some(api) => Ok(Caller::Api {
                        name: api.name.clone(),
                        role: api.role,
                        token: t.id.clone(),
                    }),
                    None => Err(ClusterError::Unauthenticated(format!(
                        "token {id} is a join token"
                    ))),
                },
                Some(_) => Err(ClusterError::Unauthenticated(format!(
                    "API token {id} has expired"
                ))),
                None => Err(ClusterError::Unauthenticated(format!(
                    "API token {id} has been deleted"
                ))),
            }
        })
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
        self.read(|st| {
            if st.is_revoked(&serial) {
                return Err(ClusterError::Unauthenticated(format!(
                    "certificate {serial} has been revoked"
                )));
            }
            match subject {
                Subject::Node(id) => match st.key(&id) {
                    Some(k)
                        if k.value.state == KeyState::Accepted
                            && k.value.serials().any(|s| s == serial) =>
                    {
                        Ok(Caller::Node {
                            id: k.value.node_id.clone(),
                            serial,
                        })
                    }
                    _ => Err(ClusterError::Unauthenticated(format!(
                        "the key of node {id} is no longer accepted; it must enroll again"
                    ))),
                },
                Subject::User { name, role } => Ok(Caller::User { name, role, serial }),
                Subject::Master(name) => Ok(Caller::Master { name, serial }),
            }
        })
    }

    /// Records a refusal in the event log (best effort: a store failure is
    /// logged, the refusal stands either way).
    pub async fn deny(&self, node: &str, who: &str, detail: String) {
        tracing::warn!(%who, %node, %detail, "refused");
        let cmd = Deny {
            node: node.to_owned(),
            who: who.to_owned(),
            detail,
        };
        if let Err(e) = self.execute(&cmd).await {
            tracing::error!(error = %e, "cannot record a refusal in the event log");
        }
    }

    /// A new token: a join token (`api: None`), or one of the HTTP API
    /// (`ttl: None`: it never expires). Its secret is in the grant only.
    pub async fn create_token(
        &self,
        by: &str,
        ttl: Option<Duration>,
        uses: Option<u32>,
        roles: Vec<String>,
        api: Option<cluster_model::ApiAccess>,
    ) -> Result<TokenGrant, ClusterError> {
        let cmd = CreateToken {
            id: random_hex(3),
            secret: random_hex(16),
            ttl,
            uses,
            roles,
            api,
            by: by.to_owned(),
        };
        let token = self.execute(&cmd).await?;
        if super::replayed() {
            // Only the hash of the secret is stored; it was shown once.
            return Err(ClusterError::Invalid(format!(
                "this request already created token {} (its secret is shown only once); \
                 create another with a new request",
                token.id
            )));
        }
        Ok(TokenGrant {
            token: format!("{}.{}", token.id, cmd.secret),
            ca_fingerprint: self.ca_fingerprint(),
            expires_ms: token.expires_ms,
            api: token.api,
        })
    }

    /// The caller an API token (`ID.SECRET`, from an `Authorization`
    /// header or a session cookie) names, checked against the state as it
    /// is now: a deleted or expired token opens nothing from that moment.
    pub fn api_caller(&self, presented: &str) -> Result<Caller, ClusterError> {
        self.read(|st| {
            crate::state::plan::api_token(st, presented, now_ms())
                .map(|(t, api)| Caller::Api {
                    name: api.name.clone(),
                    role: api.role,
                    token: t.id.clone(),
                })
                .map_err(ClusterError::Unauthenticated)
        })
    }

    /// An agent asks for a certificate for `node_id`: see [`Join`].
    pub async fn join(
        &self,
        node_id: &str,
        csr_pem: &str,
        token: Option<&str>,
        source: Option<std::net::IpAddr>,
        limits: &super::JoinLimits,
    ) -> Result<JoinOutcome, ClusterError> {
        let node_id = NodeId::new(node_id).map_err(|source| ClusterError::InvalidName {
            what: "node id",
            name: cluster_model::limits::excerpt(node_id),
            source,
        })?;
        let fingerprint =
            pki::csr_fingerprint(csr_pem).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        // A request that would cost a write (a new pending key, or a
        // refusal's audit event) is rate-limited per source address.
        let now = now_ms();
        let cheap = self
            .read(|st| crate::state::plan::join_is_cheap(st, &node_id, &fingerprint, token, now));
        if !cheap
            && let Some(ip) = source
            && !limits.admit(ip, std::time::Instant::now())
        {
            return Ok(JoinOutcome::Rejected(format!(
                "too many enrollment requests without a token from {ip}: at most {} a minute; enroll with a join token (`clusterctl token create`)",
                super::joins::JOINS_PER_MINUTE
            )));
        }
        let outcome = self
            .execute(&Join {
                node_id: node_id.clone(),
                csr_pem: csr_pem.to_owned(),
                fingerprint,
                token: token.map(str::to_owned),
                source: source.map(|ip| ip.to_string()).unwrap_or_default(),
            })
            .await?;
        if let JoinOutcome::Rejected(why) = &outcome {
            tracing::warn!(node = %node_id, %why, "enrollment refused");
        }
        Ok(outcome)
    }

    /// Every person's certificate the master issued, by name.
    pub fn users(&self) -> Vec<cluster_model::UserRecord> {
        self.read(|st| st.users().cloned().collect())
    }

    /// Revokes a person's certificate.
    pub async fn revoke_user(
        &self,
        name: &str,
        by: &str,
    ) -> Result<cluster_model::UserRecord, ClusterError> {
        self.execute(&crate::state::plan::RevokeUser {
            name: name.to_owned(),
            by: by.to_owned(),
        })
        .await
    }

    /// Every join token, by id.
    pub fn tokens(&self) -> Vec<cluster_model::Token> {
        self.read(|st| st.tokens().cloned().collect())
    }

    /// Deletes join tokens by id or glob; the tokens deleted.
    pub async fn delete_tokens(
        &self,
        ids: &[String],
        by: &str,
    ) -> Result<Vec<cluster_model::Token>, ClusterError> {
        self.execute(&crate::state::plan::DeleteTokens {
            ids: ids.to_vec(),
            by: by.to_owned(),
        })
        .await
    }

    /// Every key, sorted by node id.
    pub fn keys(&self) -> Vec<KeyRecord> {
        self.read(|st| st.keys().cloned().collect())
    }

    /// Accepts, rejects or deletes keys: see [`DecideKeys`].
    pub async fn decide_keys(
        &self,
        ids: &[String],
        decision: KeyDecision,
        fingerprint: Option<&str>,
        by: &str,
    ) -> Result<Vec<KeyRecord>, ClusterError> {
        self.execute(&DecideKeys {
            ids: ids.to_vec(),
            decision,
            fingerprint: fingerprint.map(str::to_owned),
            by: by.to_owned(),
        })
        .await
    }

    /// Every certificate the cluster relies on and when it expires: the CA,
    /// accepted nodes' (with when their agents renew them), people's
    /// still valid.
    pub fn certificates(&self) -> Vec<cluster_proto::CertificateInfo> {
        use cluster_proto::CertificateInfo;
        let mut out = Vec::new();
        if let Ok((_, not_after)) = pki::validity_of(&self.ca.cert_pem) {
            out.push(CertificateInfo {
                kind: "ca".into(),
                name: "the cluster's CA".into(),
                serial: pki::serial_of(&self.ca.cert_der).unwrap_or_default(),
                not_after_ms: not_after,
                renews_from_ms: 0,
                fingerprint: self.ca.fingerprint(),
            });
        }
        self.read(|st| {
            for k in st.keys().filter(|k| k.state == KeyState::Accepted) {
                let Ok((not_before, not_after)) = pki::validity_of(&k.cert_pem) else {
                    continue;
                };
                out.push(CertificateInfo {
                    kind: "node".into(),
                    name: k.node_id.to_string(),
                    serial: k.serial.clone(),
                    not_after_ms: not_after,
                    renews_from_ms: pki::renew_from(not_before, not_after),
                    fingerprint: String::new(),
                });
            }
            for u in st.users().filter(|u| u.revoked_ms.is_none()) {
                out.push(CertificateInfo {
                    kind: "user".into(),
                    name: u.name.clone(),
                    serial: u.serial.clone(),
                    not_after_ms: u.issued_ms + pki::LEAF_VALIDITY.as_millis() as u64,
                    renews_from_ms: 0,
                    fingerprint: String::new(),
                });
            }
        });
        out
    }

    /// Renews node `id`'s certificate (see [`RenewNode`]).
    pub async fn renew(
        &self,
        id: &NodeId,
        serial: &str,
        csr_pem: &str,
    ) -> Result<crate::state::plan::Renewed, ClusterError> {
        let fingerprint =
            pki::csr_fingerprint(csr_pem).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        self.execute(&crate::state::plan::RenewNode {
            node_id: id.clone(),
            serial: serial.to_owned(),
            csr_pem: csr_pem.to_owned(),
            fingerprint,
        })
        .await
    }

    /// Signs a certificate for a person.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        csr_pem: &str,
        by: &str,
    ) -> Result<String, ClusterError> {
        self.execute(&IssueUser {
            name: name.to_owned(),
            role,
            csr_pem: csr_pem.to_owned(),
            by: by.to_owned(),
        })
        .await
    }
}
