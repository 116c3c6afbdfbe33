//! clusterctl's calls on the wire: events, jobs, keys and roles, upstreams
//! and routes.

use super::session::{server_of, server_to_pb, stream_of};
use super::{WireError, enum_of, node_id};
use crate::access::{KeyRecord, KeyState, Role, Token, UserRecord};
use crate::event::{Event, EventKind};
use crate::job::{Builtin, JobNodeResult, JobRecord, JobStatus, RunEvent};
use cluster_balancer::{Domain, UpstreamSource};
use cluster_proto as pb;

impl From<&Event> for pb::Event {
    fn from(e: &Event) -> pb::Event {
        pb::Event {
            seq: e.seq,
            time_ms: e.time_ms,
            kind: e.kind.as_str().to_owned(),
            node: e.node.clone(),
            by: e.by.clone(),
            note: e.note.clone(),
            detail: e.detail.clone(),
            node_id: e
                .node_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::Event> for Event {
    type Error = WireError;
    fn try_from(e: pb::Event) -> Result<Event, WireError> {
        Ok(Event {
            seq: e.seq,
            time_ms: e.time_ms,
            kind: e
                .kind
                .parse::<EventKind>()
                .map_err(|r| WireError::invalid("event.kind", r))?,
            node_id: match e.node_id.as_str() {
                "" => None,
                _ => Some(node_id(e.node_id, "event.node_id")?),
            },
            node: e.node,
            by: e.by,
            note: e.note,
            detail: e.detail,
        })
    }
}

impl From<JobStatus> for pb::JobStatus {
    fn from(s: JobStatus) -> pb::JobStatus {
        match s {
            JobStatus::Ok => pb::JobStatus::Ok,
            JobStatus::Failed => pb::JobStatus::Failed,
            JobStatus::TimedOut => pb::JobStatus::TimedOut,
            JobStatus::Cancelled => pb::JobStatus::Cancelled,
            JobStatus::NotConnected => pb::JobStatus::NotConnected,
            JobStatus::Error => pb::JobStatus::Error,
            JobStatus::Lost => pb::JobStatus::Lost,
        }
    }
}

fn job_status_of(v: i32) -> Result<JobStatus, WireError> {
    Ok(match enum_of::<pb::JobStatus>(v, "result.status")? {
        pb::JobStatus::Ok => JobStatus::Ok,
        pb::JobStatus::Failed => JobStatus::Failed,
        pb::JobStatus::TimedOut => JobStatus::TimedOut,
        pb::JobStatus::Cancelled => JobStatus::Cancelled,
        pb::JobStatus::NotConnected => JobStatus::NotConnected,
        pb::JobStatus::Error | pb::JobStatus::Unspecified => JobStatus::Error,
        pb::JobStatus::Lost => JobStatus::Lost,
    })
}

impl From<&JobNodeResult> for pb::JobNodeResult {
    fn from(r: &JobNodeResult) -> pb::JobNodeResult {
        pb::JobNodeResult {
            node: r.node.clone(),
            status: pb::JobStatus::from(r.status) as i32,
            exit_code: r.exit_code,
            duration_ms: r.duration_ms,
            error: r.error.clone(),
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
            truncated: r.truncated,
        }
    }
}

impl TryFrom<pb::JobNodeResult> for JobNodeResult {
    type Error = WireError;
    fn try_from(r: pb::JobNodeResult) -> Result<JobNodeResult, WireError> {
        Ok(JobNodeResult {
            node: r.node,
            status: job_status_of(r.status)?,
            exit_code: r.exit_code,
            duration_ms: r.duration_ms,
            error: r.error,
            stdout: r.stdout,
            stderr: r.stderr,
            truncated: r.truncated,
        })
    }
}

/// A job record for the wire; without the output of each node unless
/// `with_output` (lists stay small).
pub fn job_to_pb(j: &JobRecord, with_output: bool) -> pb::JobInfo {
    pb::JobInfo {
        id: j.id.clone(),
        argv: j.argv.clone(),
        builtin: j.builtin.map(|b| b.name().to_owned()).unwrap_or_default(),
        target: j.target.clone(),
        by: j.by.clone(),
        started_ms: j.started_ms,
        finished_ms: j.finished_ms,
        results: j
            .results
            .iter()
            .map(|r| {
                let mut p = pb::JobNodeResult::from(r);
                if !with_output {
                    p.stdout.clear();
                    p.stderr.clear();
                }
                p
            })
            .collect(),
    }
}

impl TryFrom<pb::JobInfo> for JobRecord {
    type Error = WireError;
    fn try_from(j: pb::JobInfo) -> Result<JobRecord, WireError> {
        Ok(JobRecord {
            builtin: Builtin::parse(&j.builtin).map_err(|e| WireError::invalid("builtin", e))?,
            id: j.id,
            argv: j.argv,
            target: j.target,
            by: j.by,
            started_ms: j.started_ms,
            finished_ms: j.finished_ms,
            results: j
                .results
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<&RunEvent> for pb::RunEvent {
    fn from(e: &RunEvent) -> pb::RunEvent {
        use pb::run_event::Event;
        let event = match e {
            RunEvent::Started {
                job_id,
                matched,
                not_connected,
            } => Event::Started(pb::JobStarted {
                job_id: job_id.clone(),
                matched: matched.clone(),
                not_connected: not_connected.clone(),
            }),
            RunEvent::Output { node, stream, data } => Event::Output(pb::NodeOutput {
                node: node.clone(),
                stream: pb::OutputStream::from(*stream) as i32,
                data: data.clone(),
            }),
            RunEvent::NodeDone(r) => Event::NodeDone(r.into()),
            RunEvent::Finished(j) => Event::Finished(pb::JobSummary {
                job: Some(job_to_pb(j, false)),
            }),
        };
        pb::RunEvent { event: Some(event) }
    }
}

/// A job's event as received; `None` for events this side does not use.
pub fn run_event_of(e: pb::RunEvent) -> Result<Option<RunEvent>, WireError> {
    use pb::run_event::Event;
    Ok(match e.event {
        Some(Event::Started(s)) => Some(RunEvent::Started {
            job_id: s.job_id,
            matched: s.matched,
            not_connected: s.not_connected,
        }),
        Some(Event::Output(o)) => Some(RunEvent::Output {
            node: o.node,
            stream: stream_of(o.stream),
            data: o.data,
        }),
        Some(Event::NodeDone(r)) => Some(RunEvent::NodeDone(r.try_into()?)),
        Some(Event::Finished(f)) => match f.job {
            Some(j) => Some(RunEvent::Finished(j.try_into()?)),
            None => return Err(WireError::Missing("finished.job")),
        },
        Some(Event::NodeStarted(_)) | None => None,
    })
}

impl From<KeyState> for pb::KeyState {
    fn from(s: KeyState) -> pb::KeyState {
        match s {
            KeyState::Accepted => pb::KeyState::Accepted,
            KeyState::Pending => pb::KeyState::Pending,
            KeyState::Rejected => pb::KeyState::Rejected,
        }
    }
}

/// What `token list` shows of a token: never its secret (nor its hash).
impl From<&Token> for pb::TokenInfo {
    fn from(t: &Token) -> pb::TokenInfo {
        pb::TokenInfo {
            id: t.id.clone(),
            expires_ms: t.expires_ms,
            uses_left: t.uses_left.map_or(-1, i64::from),
            roles: t.roles.clone(),
            created_by: t.created_by.clone(),
            created_ms: t.created_ms,
            api_name: t.api.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
            api_role: t
                .api
                .as_ref()
                .map(|a| a.role.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// A token as `token list` shows it (no secret).
impl From<pb::TokenInfo> for Token {
    fn from(t: pb::TokenInfo) -> Token {
        Token {
            id: t.id,
            secret_hash: String::new(),
            expires_ms: t.expires_ms,
            uses_left: u32::try_from(t.uses_left).ok(),
            roles: t.roles,
            created_by: t.created_by,
            created_ms: t.created_ms,
            api: match t.api_role.parse::<crate::Role>() {
                Ok(role) => Some(crate::ApiAccess {
                    name: t.api_name,
                    role,
                }),
                Err(_) => None,
            },
        }
    }
}

/// What `keys list` shows of a key: never its certificate or request.
impl From<&KeyRecord> for pb::KeyInfo {
    fn from(k: &KeyRecord) -> pb::KeyInfo {
        pb::KeyInfo {
            node_id: k.node_id.to_string(),
            state: pb::KeyState::from(k.state) as i32,
            fingerprint: k.fingerprint.clone(),
            requested_ms: k.requested_ms,
            decided_by: k.decided_by.clone(),
            serial: k.serial.clone(),
            source: k.source.clone(),
        }
    }
}

/// A key's rows in `keys list`: one, or one per request waiting for the
/// node when several are.
pub fn key_rows(k: &KeyRecord) -> impl Iterator<Item = pb::KeyInfo> + '_ {
    std::iter::once(pb::KeyInfo::from(k)).chain(k.also_pending.iter().map(move |r| pb::KeyInfo {
        fingerprint: r.fingerprint.clone(),
        requested_ms: r.requested_ms,
        source: r.source.clone(),
        ..pb::KeyInfo::from(k)
    }))
}

/// A key as `keys list` shows it (no certificate, request or roles).
impl TryFrom<pb::KeyInfo> for KeyRecord {
    type Error = WireError;
    fn try_from(k: pb::KeyInfo) -> Result<KeyRecord, WireError> {
        let state = match enum_of::<pb::KeyState>(k.state, "key.state")? {
            pb::KeyState::Accepted => KeyState::Accepted,
            pb::KeyState::Pending | pb::KeyState::Unspecified => KeyState::Pending,
            pb::KeyState::Rejected => KeyState::Rejected,
        };
        Ok(KeyRecord {
            node_id: node_id(k.node_id, "key.node_id")?,
            state,
            fingerprint: k.fingerprint,
            csr_pem: String::new(),
            cert_pem: String::new(),
            serial: k.serial,
            requested_ms: k.requested_ms,
            decided_by: k.decided_by,
            roles: Vec::new(),
            source: k.source,
            also_pending: Vec::new(),
            previous_serial: String::new(),
        })
    }
}

impl From<Role> for pb::UserRole {
    fn from(r: Role) -> pb::UserRole {
        match r {
            Role::Admin => pb::UserRole::Admin,
            Role::Operator => pb::UserRole::Operator,
            Role::Read => pb::UserRole::Read,
        }
    }
}

impl From<&UserRecord> for pb::UserInfo {
    fn from(u: &UserRecord) -> pb::UserInfo {
        pb::UserInfo {
            name: u.name.clone(),
            role: pb::UserRole::from(u.role) as i32,
            serial: u.serial.clone(),
            issued_ms: u.issued_ms,
            issued_by: u.issued_by.clone(),
            revoked_ms: u.revoked_ms.unwrap_or(0),
            revoked_by: u.revoked_by.clone(),
        }
    }
}

impl TryFrom<pb::UserInfo> for UserRecord {
    type Error = WireError;
    fn try_from(u: pb::UserInfo) -> Result<UserRecord, WireError> {
        Ok(UserRecord {
            name: u.name,
            role: role_of(u.role)?,
            serial: u.serial,
            issued_ms: u.issued_ms,
            issued_by: u.issued_by,
            revoked_ms: (u.revoked_ms > 0).then_some(u.revoked_ms),
            revoked_by: u.revoked_by,
        })
    }
}

pub fn role_of(v: i32) -> Result<Role, WireError> {
    match enum_of::<pb::UserRole>(v, "role") {
        Ok(pb::UserRole::Admin) => Ok(Role::Admin),
        Ok(pb::UserRole::Operator) => Ok(Role::Operator),
        Ok(pb::UserRole::Read) => Ok(Role::Read),
        _ => Err(WireError::invalid(
            "role",
            "expected admin, operator or read",
        )),
    }
}

pub fn upstream_to_pb(name: &str, source: &UpstreamSource) -> pb::UpstreamDef {
    match source {
        UpstreamSource::Servers(list) => pb::UpstreamDef {
            name: name.to_owned(),
            servers: list.iter().map(|s| server_to_pb(s, None)).collect(),
            ..Default::default()
        },
        UpstreamSource::Role {
            role,
            port,
            weight,
            max_fails,
            fail_timeout_ms,
        } => pb::UpstreamDef {
            name: name.to_owned(),
            role: role.clone(),
            port: u32::from(*port),
            role_server: Some(pb::UpstreamServer {
                weight: *weight,
                max_fails: *max_fails,
                fail_timeout_ms: *fail_timeout_ms,
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

pub fn upstream_of(def: pb::UpstreamDef) -> Result<(String, UpstreamSource), WireError> {
    if !def.role.is_empty() && !def.servers.is_empty() {
        return Err(WireError::invalid(
            "upstream",
            format!("upstream {:?}: give servers or a role, not both", def.name),
        ));
    }
    let source = if def.role.is_empty() {
        UpstreamSource::Servers(def.servers.iter().map(server_of).collect())
    } else {
        // Without parameters, nginx's defaults: weight 1, max_fails 1,
        // fail_timeout 10 s.
        let p = def.role_server.unwrap_or(pb::UpstreamServer {
            weight: 1,
            max_fails: 1,
            fail_timeout_ms: 10_000,
            ..Default::default()
        });
        UpstreamSource::Role {
            role: def.role,
            port: u16::try_from(def.port).map_err(|_| {
                WireError::invalid("upstream.port", format!("port {} is not 1-65535", def.port))
            })?,
            weight: p.weight,
            max_fails: p.max_fails,
            fail_timeout_ms: p.fail_timeout_ms,
        }
    };
    Ok((def.name, source))
}

pub fn route_to_pb(domain: &str, chain: &Domain) -> pb::Route {
    pb::Route {
        domain: domain.to_owned(),
        chain_json: serde_json::to_string(chain).expect("a route always serialises"),
    }
}

pub fn route_of(r: pb::Route) -> Result<(String, Domain), WireError> {
    let chain = serde_json::from_str(&r.chain_json).map_err(|e| {
        WireError::invalid("route.chain_json", format!("domain {:?}: {e}", r.domain))
    })?;
    Ok((r.domain, chain))
}
