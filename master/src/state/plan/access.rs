//! Planners for who may talk to the master: join tokens, user
//! certificates, and the audit event of every refusal (nodes' keys are in
//! `keys`).

use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::pki::{self, Subject};
use crate::state::State;
use crate::store::{Key, Record};
use cluster_model::{ApiAccess, EventKind, Role, Token, UserRecord};
use std::time::{Duration, SystemTime};

/// Records a refusal in the event log.
pub struct Deny {
    /// The node (name or id) it was about, if any.
    pub node: String,
    pub who: String,
    pub detail: String,
}

impl Command for Deny {
    type Out = ();

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<()>, ClusterError> {
        let mut d = Draft::new(st, env);
        let about = match self.node.as_str() {
            "" => About::Cluster,
            n => About::Named(n),
        };
        d.event(EventKind::Denied, about, &self.who, self.detail.clone());
        Ok(d.finish(()))
    }
}

pub fn secret_hash(secret: &str) -> String {
    pki::fingerprint(secret.as_bytes())
}

/// A new token — to join nodes, or (`api`) for the HTTP API; its id and
/// secret are drawn by the caller.
pub struct CreateToken {
    pub id: String,
    pub secret: String,
    /// `None`: never expires (API tokens only).
    pub ttl: Option<Duration>,
    pub uses: Option<u32>,
    pub roles: Vec<String>,
    /// An API token's holder (`""`: `api-ID`) and role.
    pub api: Option<ApiAccess>,
    pub by: String,
}

impl Command for CreateToken {
    type Out = Token;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Token>, ClusterError> {
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return Err(ClusterError::Invalid(
                "a token's ttl must be above zero".into(),
            ));
        }
        let api = match &self.api {
            None if self.ttl.is_none() => {
                return Err(ClusterError::Invalid(
                    "a join token must expire (give it a ttl)".into(),
                ));
            }
            None => None,
            Some(_) if !self.roles.is_empty() || self.uses.is_some() => {
                return Err(ClusterError::Invalid(
                    "an API token takes a role (admin, operator or read), not node roles or a number of uses"
                        .into(),
                ));
            }
            Some(a) => {
                let name = match a.name.as_str() {
                    "" => format!("api-{}", self.id),
                    n => n.to_owned(),
                };
                check_name("token holder", &name)?;
                // Never a node's name: events and `by` would not tell them
                // apart. A user's, with the same role: the same person.
                if let Some(owner) = st
                    .id_of(&name)
                    .cloned()
                    .or_else(|| st.key(&name).map(|k| k.value.node_id.clone()))
                {
                    return Err(ClusterError::NameTaken {
                        name,
                        owner: owner.to_string(),
                    });
                }
                if let Some(u) = st.user(&name)
                    && u.value.revoked_ms.is_none()
                    && u.value.role != a.role
                {
                    return Err(ClusterError::Invalid(format!(
                        "{name} is a user with role {}; their API token cannot be {}",
                        u.value.role.as_str(),
                        a.role.as_str()
                    )));
                }
                Some(ApiAccess { name, role: a.role })
            }
        };
        for r in &self.roles {
            check_name("role", r)?;
        }
        let expires_ms = match self.ttl {
            Some(ttl) => env
                .now_ms
                .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                .min(Token::NEVER - 1),
            None => Token::NEVER,
        };
        let token = Token {
            id: self.id.clone(),
            secret_hash: secret_hash(&self.secret),
            expires_ms,
            uses_left: self.uses,
            roles: self.roles.clone(),
            created_by: self.by.clone(),
            created_ms: env.now_ms,
            api,
        };
        let ttl = self.ttl.map_or("never expires".to_owned(), |t| {
            format!("ttl {}", humantime::format_duration(t))
        });
        let detail = match &token.api {
            Some(a) => format!(
                "created API token {} for {} (role {}, {ttl})",
                token.id,
                a.name,
                a.role.as_str()
            ),
            None => format!(
                "created token {} ({ttl}, {} uses, roles [{}])",
                token.id,
                self.uses.map_or("unlimited".to_owned(), |u| u.to_string()),
                token.roles.join(", ")
            ),
        };
        let mut d = Draft::new(st, env);
        d.event(EventKind::Token, About::Cluster, &self.by, detail);
        d.put(Record::Token(token.clone()));
        Ok(d.finish(token))
    }
}

/// Names of people, roles and groups: the shared rule.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), ClusterError> {
    cluster_model::ids::check_name(name).map_err(|source| ClusterError::InvalidName {
        what,
        name: name.to_owned(),
        source,
    })
}

/// Checks a presented token against the state at `now_ms`.
/// Whether a join for `node_id` costs nothing to answer: the same key
/// asking again (a pending agent polling), or a valid token.
pub fn join_is_cheap(
    st: &State,
    node_id: &str,
    fingerprint: &str,
    token: Option<&str>,
    now_ms: u64,
) -> bool {
    st.key(node_id).is_some_and(|k| k.value.knows(fingerprint))
        || token.is_some_and(|t| redeem(st, t, now_ms).is_ok())
}

pub(super) fn redeem<'a>(st: &'a State, token: &str, now_ms: u64) -> Result<&'a Token, String> {
    let (id, secret) = token
        .split_once('.')
        .ok_or_else(|| "malformed join token (expected ID.SECRET)".to_owned())?;
    let t = st
        .token(id)
        .map(|t| &t.value)
        .filter(|t| t.secret_hash == secret_hash(secret))
        .ok_or_else(|| "invalid join token".to_owned())?;
    if t.api.is_some() {
        return Err(format!(
            "token {id} is for the HTTP API; nodes join with a join token (`clusterctl token create`)"
        ));
    }
    if now_ms >= t.expires_ms {
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
    Ok(t)
}

/// The API token `presented` (`ID.SECRET`) names, checked against the
/// state at `now_ms`: its holder and role, or why it opens nothing (the
/// same words for an unknown id and a wrong secret).
pub fn api_token<'a>(
    st: &'a State,
    presented: &str,
    now_ms: u64,
) -> Result<(&'a Token, &'a ApiAccess), String> {
    let invalid = || "invalid API token".to_owned();
    let (id, secret) = presented.split_once('.').ok_or_else(invalid)?;
    let t = st
        .token(id)
        .map(|t| &t.value)
        .filter(|t| t.secret_hash == secret_hash(secret))
        .ok_or_else(invalid)?;
    let Some(api) = &t.api else {
        return Err(format!(
            "token {id} is a join token; the API takes tokens made with `clusterctl token create --api`"
        ));
    };
    if now_ms >= t.expires_ms {
        return Err(format!(
            "API token {id} expired at {}",
            humantime::format_rfc3339_seconds(
                SystemTime::UNIX_EPOCH + Duration::from_millis(t.expires_ms)
            )
        ));
    }
    Ok((t, api))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JoinOutcome {
    Accepted { cert_pem: String },
    Pending,
    Rejected(String),
}

/// Deletes join tokens by id or glob (all or nothing): nobody can join
/// with them any more; nodes that joined with them stay.
pub struct DeleteTokens {
    pub ids: Vec<String>,
    pub by: String,
}

impl Command for DeleteTokens {
    type Out = Vec<Token>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<Token>>, ClusterError> {
        if self.ids.is_empty() {
            return Err(ClusterError::Invalid(
                "no token given (its id, the part before the dot, or a glob)".into(),
            ));
        }
        let mut gone: Vec<Token> = Vec::new();
        for id in &self.ids {
            // The id, or a whole token pasted in: only the public half counts.
            let id = id.split('.').next().unwrap_or_default();
            let matched: Vec<&Token> = if id.contains(['*', '?', '[']) {
                use cluster_model::targets::{Candidate, Kind, Target};
                let glob = Target::parse(Kind::Glob, id, &Default::default())?;
                let (grains, labels) = (Default::default(), Default::default());
                st.tokens()
                    .filter(|t| {
                        glob.matches(&Candidate {
                            name: &t.id,
                            grains: &grains,
                            facts: &grains,
                            labels: &labels,
                            roles: &[],
                            addresses: &[],
                        })
                    })
                    .collect()
            } else {
                st.token(id).map(|t| &t.value).into_iter().collect()
            };
            if matched.is_empty() {
                return Err(ClusterError::Invalid(format!(
                    "no join token {:?}",
                    cluster_model::limits::excerpt(id)
                )));
            }
            for t in matched {
                if !gone.iter().any(|g| g.id == t.id) {
                    gone.push(t.clone());
                }
            }
        }
        let mut d = Draft::new(st, env);
        for t in &gone {
            d.delete(Key::Token(t.id.clone()));
            d.event(
                EventKind::Token,
                About::Cluster,
                &self.by,
                format!("deleted token {}", t.id),
            );
        }
        Ok(d.finish(gone))
    }
}

/// Revokes a person's certificate: every call made with it is refused
/// from the moment this applies, on every master, across restarts.
pub struct RevokeUser {
    pub name: String,
    pub by: String,
}

impl Command for RevokeUser {
    type Out = UserRecord;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<UserRecord>, ClusterError> {
        let Some(user) = st.user(&self.name).map(|u| &u.value) else {
            return Err(ClusterError::Invalid(format!(
                "no user {:?} (`clusterctl user list` shows them)",
                cluster_model::limits::excerpt(&self.name)
            )));
        };
        let mut d = Draft::new(st, env);
        if user.revoked_ms.is_some() {
            return Ok(d.finish(user.clone()));
        }
        let mut revoked = user.clone();
        revoked.revoked_ms = Some(env.now_ms);
        revoked.revoked_by = self.by.clone();
        d.put(Record::Revoked(user.serial.clone()));
        d.put(Record::User(revoked.clone()));
        d.event(
            EventKind::User,
            About::Cluster,
            &self.by,
            format!(
                "revoked the {} certificate of {} (serial {})",
                user.role.as_str(),
                user.name,
                user.serial
            ),
        );
        Ok(d.finish(revoked))
    }
}

/// Signs a certificate for a person; recorded as an event.
pub struct IssueUser {
    pub name: String,
    pub role: Role,
    pub csr_pem: String,
    pub by: String,
}

impl Command for IssueUser {
    /// The certificate, PEM.
    type Out = String;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<String>, ClusterError> {
        check_name("user name", &self.name)?;
        // A user's name is never a node's: events and `by` would not tell
        // them apart.
        if let Some(owner) = st
            .id_of(&self.name)
            .cloned()
            .or_else(|| st.key(&self.name).map(|k| k.value.node_id.clone()))
        {
            return Err(ClusterError::NameTaken {
                name: self.name.clone(),
                owner: owner.to_string(),
            });
        }
        if let Some(u) = st.user(&self.name).map(|u| &u.value)
            && u.revoked_ms.is_none()
        {
            return Err(ClusterError::Invalid(format!(
                "user {} already has a certificate ({}, serial {}); revoke it first (`clusterctl user revoke {}`)",
                u.name,
                u.role.as_str(),
                u.serial,
                u.name
            )));
        }
        let subject = Subject::User {
            name: self.name.clone(),
            role: self.role,
        };
        let (cert_pem, serial) = env.issuer.issue(&self.csr_pem, &subject, env.now_ms)?;
        let mut d = Draft::new(st, env);
        d.put(Record::User(UserRecord {
            name: self.name.clone(),
            role: self.role,
            serial: serial.clone(),
            issued_ms: env.now_ms,
            issued_by: self.by.clone(),
            revoked_ms: None,
            revoked_by: String::new(),
        }));
        d.event(
            EventKind::User,
            About::Cluster,
            &self.by,
            format!(
                "issued a {} certificate for {} (serial {serial})",
                self.role.as_str(),
                self.name
            ),
        );
        Ok(d.finish(cert_pem))
    }
}
