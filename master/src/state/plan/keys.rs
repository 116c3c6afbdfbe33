//! Planners for nodes' keys: enrollment (a token admits at once; without
//! one a key waits as pending, beside any others for the same node), key
//! decisions (accept, reject, delete — the last two revoke), and renewal.

use super::access::{JoinOutcome, redeem};
use super::{About, Command, Draft, Env, Planned};
use crate::cluster::ClusterError;
use crate::pki::{self, Subject};
use crate::state::State;
use crate::store::{Key, Record};
use cluster_model::access::{MAX_REQUESTS_A_NODE, PendingRequest};
use cluster_model::{EventKind, KeyRecord, KeyState, NodeId};
use std::time::{Duration, SystemTime};

/// Pending requests kept at most; more are refused (without an event:
/// they would be a write each) until an admin accepts or deletes some.
pub const MAX_PENDING: usize = 1000;

/// An agent asks for a certificate for `node_id`. With a valid token it is
/// accepted at once — even over a pending request for the same node made
/// without one, which is dropped (so nobody can squat a name by asking
/// first); without one it waits as pending. Asking again with the same key
/// is idempotent. A refusal is planned as its audit event.
pub struct Join {
    pub node_id: NodeId,
    pub csr_pem: String,
    /// The request's public key fingerprint.
    pub fingerprint: String,
    pub token: Option<String>,
    /// The address the request came from.
    pub source: String,
}

impl Command for Join {
    type Out = JoinOutcome;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<JoinOutcome>, ClusterError> {
        let id = &self.node_id;
        let refuse = |why: String| {
            let mut d = Draft::new(st, env);
            d.event(
                EventKind::Denied,
                About::Named(id),
                "enrollment",
                why.clone(),
            );
            Ok(d.finish(JoinOutcome::Rejected(why)))
        };
        let mut d = Draft::new(st, env);
        let token = self.token.as_deref().filter(|t| !t.is_empty());
        let mut existing = st.key(id).map(|k| &k.value);
        // A tokened request takes the place of those pending without one.
        if let (Some(k), Some(t)) = (existing, token)
            && k.state == KeyState::Pending
            && k.fingerprint != self.fingerprint
            && let Ok(granted) = redeem(st, t, env.now_ms)
        {
            for r in k.requests() {
                if r.fingerprint == self.fingerprint {
                    continue;
                }
                d.event(
                    EventKind::Key,
                    About::Named(id),
                    "enrollment",
                    format!(
                        "dropped the pending key {} (from {}): a request with token {} took its place",
                        r.fingerprint,
                        from(&r.source),
                        granted.id
                    ),
                );
            }
            existing = None;
        }
        match existing {
            // Another key waiting beside it, or a token to check below.
            Some(k) if k.state == KeyState::Pending => {}
            Some(k) if k.fingerprint != self.fingerprint => {
                let why = match k.state {
                    KeyState::Accepted => format!(
                        "node {id} is already enrolled with another key; an admin can run `clusterctl keys delete {id}` to let it enroll again"
                    ),
                    KeyState::Pending => format!("another key is already pending for node {id}"),
                    KeyState::Rejected => format!("node {id} was rejected by {}", k.decided_by),
                };
                return refuse(why);
            }
            Some(k) if k.state == KeyState::Accepted => {
                return Ok(d.finish(JoinOutcome::Accepted {
                    cert_pem: k.cert_pem.clone(),
                }));
            }
            Some(k) if k.state == KeyState::Rejected => {
                return Ok(d.finish(JoinOutcome::Rejected(format!(
                    "the key of node {id} was rejected by {}",
                    k.decided_by
                ))));
            }
            _ => {}
        }
        let grant = match token {
            Some(t) => match redeem(st, t, env.now_ms) {
                Ok(token) => Some(token.clone()),
                Err(why) => return refuse(format!("{why} (node {id})")),
            },
            None => None,
        };
        let record = match grant {
            Some(mut token) => {
                let (cert_pem, serial) =
                    env.issuer
                        .issue(&self.csr_pem, &Subject::Node(id.to_string()), env.now_ms)?;
                token.uses_left = token.uses_left.map(|u| u - 1);
                d.event(
                    EventKind::Key,
                    About::Named(id),
                    "enrollment",
                    format!("accepted with token {}", token.id),
                );
                let record = KeyRecord {
                    node_id: id.clone(),
                    state: KeyState::Accepted,
                    fingerprint: self.fingerprint.clone(),
                    csr_pem: String::new(),
                    cert_pem,
                    serial,
                    requested_ms: env.now_ms,
                    decided_by: format!("token {}", token.id),
                    roles: token.roles.clone(),
                    source: self.source.clone(),
                    also_pending: Vec::new(),
                    previous_serial: String::new(),
                };
                d.put(Record::Token(token));
                record
            }
            // Asking again (an agent polling while it waits).
            None if existing.is_some_and(|k| k.knows(&self.fingerprint)) => {
                return Ok(d.finish(JoinOutcome::Pending));
            }
            None if pending_requests(st) >= MAX_PENDING => {
                return Ok(Draft::new(st, env).finish(JoinOutcome::Rejected(format!(
                    "{MAX_PENDING} requests already wait for an admin; enroll with a join token (`clusterctl token create`)"
                ))));
            }
            // Another key for a node already waiting: kept beside it, for
            // the admin to choose by fingerprint — never in its place.
            None if existing.is_some() => {
                let k = existing.expect("checked");
                let waiting = 1 + k.also_pending.len();
                if waiting >= MAX_REQUESTS_A_NODE {
                    return refuse(format!(
                        "{waiting} requests already wait for node {id}, the most kept; an admin can drop some (`clusterctl keys reject {id} --fingerprint FP`)"
                    ));
                }
                d.event(
                    EventKind::Key,
                    About::Named(id),
                    "enrollment",
                    format!(
                        "pending beside {} other request(s) ({}, from {}); `clusterctl keys accept {id} --fingerprint FP` chooses",
                        waiting,
                        self.fingerprint,
                        from(&self.source)
                    ),
                );
                let mut k = k.clone();
                k.also_pending.push(PendingRequest {
                    fingerprint: self.fingerprint.clone(),
                    csr_pem: self.csr_pem.clone(),
                    requested_ms: env.now_ms,
                    source: self.source.clone(),
                });
                k
            }
            None => {
                d.event(
                    EventKind::Key,
                    About::Named(id),
                    "enrollment",
                    format!(
                        "pending ({}, from {})",
                        self.fingerprint,
                        from(&self.source)
                    ),
                );
                KeyRecord {
                    node_id: id.clone(),
                    state: KeyState::Pending,
                    fingerprint: self.fingerprint.clone(),
                    csr_pem: self.csr_pem.clone(),
                    cert_pem: String::new(),
                    serial: String::new(),
                    requested_ms: env.now_ms,
                    decided_by: String::new(),
                    roles: Vec::new(),
                    source: self.source.clone(),
                    also_pending: Vec::new(),
                    previous_serial: String::new(),
                }
            }
        };
        let out = match record.state {
            KeyState::Accepted => JoinOutcome::Accepted {
                cert_pem: record.cert_pem.clone(),
            },
            _ => JoinOutcome::Pending,
        };
        d.put(Record::NodeKey(record));
        Ok(d.finish(out))
    }
}

/// Requests waiting for an admin, beside one another included.
fn pending_requests(st: &State) -> usize {
    st.keys()
        .filter(|k| k.state == KeyState::Pending)
        .map(|k| 1 + k.also_pending.len())
        .sum()
}

/// Where a request came from, for events.
fn from(source: &str) -> &str {
    if source.is_empty() {
        "an unknown address"
    } else {
        source
    }
}

/// What `keys accept|reject|delete` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDecision {
    Accept,
    Reject,
    Delete,
}

/// Accepts, rejects or deletes the keys of `ids` (node ids or names). All
/// or nothing. Rejecting an accepted key or deleting any key revokes its
/// certificate; the node's session ends when the change applies.
///
/// A node with several pending requests is accepted only with the
/// `fingerprint` of one (the others are dropped): an admin must not admit
/// a squatter's key by accepting the name. With reject or delete, a
/// fingerprint drops that request alone.
pub struct DecideKeys {
    pub ids: Vec<String>,
    pub decision: KeyDecision,
    /// A unique prefix of one request's fingerprint (`sha256:` optional).
    pub fingerprint: Option<String>,
    pub by: String,
}

/// The one request of `k` that `fingerprint` names.
fn chosen(k: &KeyRecord, fingerprint: &str) -> Result<PendingRequest, ClusterError> {
    let want = fingerprint.strip_prefix("sha256:").unwrap_or(fingerprint);
    let requests = if k.state == KeyState::Pending {
        k.requests()
    } else {
        vec![PendingRequest {
            fingerprint: k.fingerprint.clone(),
            csr_pem: String::new(),
            requested_ms: k.requested_ms,
            source: k.source.clone(),
        }]
    };
    let matching: Vec<&PendingRequest> = requests
        .iter()
        .filter(|r| {
            let hex = r
                .fingerprint
                .strip_prefix("sha256:")
                .unwrap_or(&r.fingerprint);
            !want.is_empty() && hex.starts_with(want)
        })
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ClusterError::Invalid(format!(
            "no request for node {} has fingerprint {:?}; {}",
            k.node_id,
            cluster_model::limits::excerpt(fingerprint),
            listed(&requests)
        ))),
        _ => Err(ClusterError::Invalid(format!(
            "fingerprint {:?} matches {} requests for node {}; give more of it",
            cluster_model::limits::excerpt(fingerprint),
            matching.len(),
            k.node_id
        ))),
    }
}

/// `requests`, for an error that asks to choose among them.
fn listed(requests: &[PendingRequest]) -> String {
    let each: Vec<String> = requests
        .iter()
        .map(|r| format!("{} from {}", r.fingerprint, from(&r.source)))
        .collect();
    format!("its requests: {}", each.join(", "))
}

impl Command for DecideKeys {
    type Out = Vec<KeyRecord>;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Vec<KeyRecord>>, ClusterError> {
        if self.ids.is_empty() {
            return Err(ClusterError::NoNames);
        }
        let mut unknown = Vec::new();
        let mut records: Vec<KeyRecord> = Vec::new();
        let mut take = |k: &KeyRecord| {
            if !records.iter().any(|r| r.node_id == k.node_id) {
                records.push(k.clone());
            }
        };
        for id in &self.ids {
            // A glob (`spam-*`) on node ids: it must match some key.
            if id.contains(['*', '?', '[']) {
                use cluster_model::targets::{Candidate, Kind, Target};
                let glob = Target::parse(Kind::Glob, id, &Default::default())?;
                let (grains, labels) = (Default::default(), Default::default());
                let matched: Vec<&KeyRecord> = st
                    .keys()
                    .filter(|k| {
                        glob.matches(&Candidate {
                            name: k.node_id.as_str(),
                            grains: &grains,
                            facts: &grains,
                            labels: &labels,
                            roles: &[],
                            addresses: &[],
                        })
                    })
                    .collect();
                if matched.is_empty() {
                    return Err(ClusterError::NoMatch(cluster_model::limits::excerpt(id)));
                }
                matched.into_iter().for_each(&mut take);
                continue;
            }
            let id = st.id_of(id).map_or(id.as_str(), |i| i.as_str());
            match st.key(id) {
                Some(k) => take(&k.value),
                None => unknown.push(cluster_model::limits::excerpt(id)),
            }
        }
        if !unknown.is_empty() {
            return Err(ClusterError::UnknownKeys(unknown));
        }
        let mut d = Draft::new(st, env);
        let mut out = Vec::new();
        if let Some(fp) = &self.fingerprint {
            let [k] = records.as_mut_slice() else {
                return Err(ClusterError::Invalid(format!(
                    "--fingerprint chooses among one node's requests; {} keys were named",
                    records.len()
                )));
            };
            let request = chosen(k, fp)?;
            let waiting = k.requests();
            // Rejecting or deleting one of several waiting requests drops
            // it alone; the node stays pending with the others.
            if self.decision != KeyDecision::Accept && waiting.len() > 1 {
                let rest: Vec<PendingRequest> = waiting
                    .into_iter()
                    .filter(|r| r.fingerprint != request.fingerprint)
                    .collect();
                k.choose(rest[0].clone());
                k.also_pending = rest[1..].to_vec();
                d.event(
                    EventKind::Key,
                    About::Named(&k.node_id),
                    &self.by,
                    format!(
                        "dropped the pending request {} (from {}); {} still wait",
                        request.fingerprint,
                        from(&request.source),
                        rest.len()
                    ),
                );
                d.put(Record::NodeKey(k.clone()));
                return Ok(d.finish(records));
            }
            if self.decision == KeyDecision::Accept && k.state == KeyState::Pending {
                for r in waiting
                    .iter()
                    .filter(|r| r.fingerprint != request.fingerprint)
                {
                    d.event(
                        EventKind::Key,
                        About::Named(&k.node_id),
                        &self.by,
                        format!(
                            "dropped the pending request {} (from {}): {} was accepted",
                            r.fingerprint,
                            from(&r.source),
                            request.fingerprint
                        ),
                    );
                }
                k.choose(request);
            }
        }
        for mut k in records {
            if self.decision == KeyDecision::Accept && !k.also_pending.is_empty() {
                return Err(ClusterError::Invalid(format!(
                    "{} requests wait for node {}; accept one by its fingerprint (`clusterctl keys accept {} --fingerprint FP`): {}",
                    1 + k.also_pending.len(),
                    k.node_id,
                    k.node_id,
                    listed(&k.requests())
                )));
            }
            k.also_pending.clear();
            let before = k.state;
            let detail = match (self.decision, k.state) {
                (KeyDecision::Accept, KeyState::Accepted)
                | (KeyDecision::Reject, KeyState::Rejected) => None,
                (KeyDecision::Accept, _) => {
                    let (cert_pem, serial) = env.issuer.issue(
                        &k.csr_pem,
                        &Subject::Node(k.node_id.to_string()),
                        env.now_ms,
                    )?;
                    k.state = KeyState::Accepted;
                    k.cert_pem = cert_pem;
                    k.serial = serial;
                    k.previous_serial.clear();
                    k.csr_pem.clear();
                    Some("accepted".to_owned())
                }
                (KeyDecision::Reject, _) => {
                    k.state = KeyState::Rejected;
                    Some("rejected".to_owned())
                }
                (KeyDecision::Delete, _) => {
                    d.delete(Key::NodeKey(k.node_id.clone()));
                    Some("deleted".to_owned())
                }
            };
            let Some(mut detail) = detail else {
                out.push(k);
                continue;
            };
            if before == KeyState::Accepted && self.decision != KeyDecision::Accept {
                for serial in k.serials() {
                    d.put(Record::Revoked(serial.to_owned()));
                }
                detail.push_str(&format!("; certificate {} revoked", k.serial));
            }
            k.decided_by = self.by.clone();
            d.event(EventKind::Key, About::Named(&k.node_id), &self.by, detail);
            if self.decision != KeyDecision::Delete {
                d.put(Record::NodeKey(k.clone()));
            }
            out.push(k);
        }
        Ok(d.finish(out))
    }
}

/// A node renews its certificate, presenting the one it has (`serial`)
/// and a request for the same key: signed anew, the old serial still
/// accepted until it expires. Early renewals are refused — before two
/// thirds of the certificate's life, each would be a write for nothing.
/// Asked again with the old serial (its answer was lost), the new
/// certificate is answered again.
pub struct RenewNode {
    pub node_id: NodeId,
    pub serial: String,
    pub csr_pem: String,
    /// The request's public key fingerprint.
    pub fingerprint: String,
}

/// A renewed certificate and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Renewed {
    pub cert_pem: String,
    pub not_after_ms: u64,
}

impl Command for RenewNode {
    type Out = Renewed;

    fn plan(&self, st: &State, env: &Env) -> Result<Planned<Renewed>, ClusterError> {
        let id = &self.node_id;
        let refused = |why: String| Err(ClusterError::Unauthenticated(why));
        let Some(k) = st
            .key(id)
            .map(|k| &k.value)
            .filter(|k| k.state == KeyState::Accepted)
        else {
            return refused(format!("the key of node {id} is no longer accepted"));
        };
        if self.fingerprint != k.fingerprint {
            return Err(ClusterError::Invalid(format!(
                "a renewal keeps the node's key: the request's key {} is not node {id}'s {}",
                self.fingerprint, k.fingerprint
            )));
        }
        let validity =
            |pem: &str| pki::validity_of(pem).map_err(|e| ClusterError::Pki(e.to_string()));
        let (not_before, not_after) = validity(&k.cert_pem)?;
        if self.serial == k.previous_serial {
            return Ok(Draft::new(st, env).finish(Renewed {
                cert_pem: k.cert_pem.clone(),
                not_after_ms: not_after,
            }));
        }
        if self.serial != k.serial {
            return refused(format!("certificate {} is not node {id}'s", self.serial));
        }
        let from = pki::renew_from(not_before, not_after);
        if env.now_ms < from {
            return Err(ClusterError::Invalid(format!(
                "node {id}'s certificate is valid until {}; it may be renewed from {}",
                rfc3339(not_after),
                rfc3339(from)
            )));
        }
        let (cert_pem, serial) =
            env.issuer
                .issue(&self.csr_pem, &Subject::Node(id.to_string()), env.now_ms)?;
        let (_, until) = validity(&cert_pem)?;
        let mut d = Draft::new(st, env);
        d.event(
            EventKind::Key,
            About::Named(id),
            &format!("node {id}"),
            format!(
                "certificate renewed: serial {} → {serial}, valid until {}",
                k.serial,
                rfc3339(until)
            ),
        );
        let mut next = k.clone();
        next.previous_serial = std::mem::replace(&mut next.serial, serial);
        next.cert_pem = cert_pem.clone();
        d.put(Record::NodeKey(next));
        Ok(d.finish(Renewed {
            cert_pem,
            not_after_ms: until,
        }))
    }
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .to_string()
}
