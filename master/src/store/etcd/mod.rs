//! The etcd backend: the cluster's state in a real etcd cluster, shared by
//! several masters, one of which leads and makes every commit.
//!
//! Keys live under one prefix (`/clusterctl/v1/` by default): one key per
//! record (`node/<id>`, `route/<domain>`, `meta/settings`, …, JSON values,
//! etcd's own mod revisions), `event/<seq, 20 digits>`, `job/<id>`,
//! `rollout/<id>`, `meta/revision` (rewritten by every commit), and the
//! election under `election/`.
//!
//! A commit is one etcd transaction: the change's preconditions as
//! compares on mod revisions ("absent" as version 0), each new event as
//! absent, **plus the fence** — the leader key's create revision is the
//! one this master won with — then the puts and deletes. Past etcd's
//! limit of 128 compares, the preconditions become one compare: nothing
//! has been committed since the revision the plan read (`meta/revision`).
//! Past 128 operations, they are nested in transactions of 128 (still one
//! atomic commit). A change over etcd's 1.5 MiB request limit is refused
//! whole. The revision etcd returns is the generation agents see.
//!
//! - `election` — the leader's election on a lease, kept alive by this
//!   master; stepping down before the lease can have expired.
//! - `follow` — commits made through the other masters, from a watch;
//!   a watch cancelled by compaction loads the state again.
//! - `presence` — what this master's agent sessions say, for the others
//!   (`live/<id>`, on this master's own lease).
//! - `txn` — a change as one fenced transaction within etcd's limits, why
//!   one failed, and whether an unanswered one landed.

mod again;
mod election;
mod follow;
mod presence;
mod txn;

pub use election::{Candidate, Leadership, candidate_of};

use super::codec::{self, key_text};
use super::{
    Change, EndpointHealth, EngineError, EventQuery, Followed, Key, LiveRecord, Loaded, Revision,
    Role, Store, StoreError, Topology,
};
use again::{PATIENCE, again};
use cluster_model::rollout::RolloutRecord;
use cluster_model::{Event, JobRecord, NodeId};
use etcd_client::{Client, Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// etcd's defaults: `--max-txn-ops` and `--max-request-bytes`.
pub const MAX_TXN_OPS: usize = 128;
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// Room for the request's framing, compares and the fence.
const REQUEST_MARGIN: usize = 16 * 1024;
/// Keys read per page when loading.
const PAGE: i64 = 500;
/// How long a commit may take in all, and one attempt at it: a member
/// whose etcd leader died holds a request until its own timeout (about
/// 7 s), while another member answers once a new leader is elected
/// (about a second), so an attempt is given up early and tried again.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(8);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an endpoint may take to say how it is.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `clusterctl masters` waits for the masters' election keys.
const TOPOLOGY_PATIENCE: Duration = Duration::from_secs(2);

/// How a master reaches etcd and whom it says it is.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    /// Every key under it; ends with `/`.
    pub prefix: String,
    /// The leader's lease. etcd's minimum is 2 s.
    pub lease_ttl: Duration,
    /// This master's name, and its address for the others (its gRPC
    /// URL), announced when it campaigns.
    pub name: String,
    pub advertise: String,
}

fn unavailable(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e) as EngineError)
}

pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
    /// One client per endpoint, for its health alone.
    members: tokio::sync::Mutex<std::collections::HashMap<String, Client>>,
    prefix: String,
    /// This master's name (its sessions' records are its own).
    name: String,
    role: watch::Receiver<Role>,
    /// The key and create revision this master leads with, when it does.
    fence: watch::Receiver<Option<election::Fence>>,
    leadership: Leadership,
    presence: presence::Presence,
    /// The revision the next compaction goes up to (what the last one saw).
    compacted: std::sync::atomic::AtomicI64,
}

impl EtcdStore {
    /// Connects (every endpoint is tried), and starts campaigning.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore, StoreError> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(&config.endpoints, Some(options.clone()))
            .await
            .map_err(|e| StoreError::Open {
                path: config.endpoints.join(",").into(),
                source: Box::new(e),
            })?;
        // The leases are kept alive on a connection of their own, so no
        // burst of commits or watch traffic delays a renewal.
        let leases = Client::connect(&config.endpoints, Some(options.clone()))
            .await
            .map_err(|e| StoreError::Open {
                path: config.endpoints.join(",").into(),
                source: Box::new(e),
            })?;
        let leadership = Leadership::start(leases.clone(), &config);
        let presence = presence::Presence::start(leases, config.prefix.clone(), config.lease_ttl);
        Ok(EtcdStore {
            endpoints: config.endpoints.clone(),
            members: Default::default(),
            role: leadership.role(),
            fence: leadership.fence(),
            prefix: config.prefix,
            name: config.name,
            client,
            leadership,
            presence,
            compacted: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Stands for election: call once this master serves.
    pub fn campaign(&self) {
        self.leadership.campaign();
    }

    /// The value under `key` (relative): `value` if there was none (this
    /// call put it), else the one already there — whichever master came
    /// first wins, once.
    pub async fn claim(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let key = format!("{}{key}", self.prefix);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value.clone(), None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        // A second attempt after a first that landed finds the value put.
        let resp = again(PATIENCE, || {
            let (mut kv, txn) = (self.client.kv_client(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await?;
        if resp.succeeded() {
            return Ok(value);
        }
        for r in resp.op_responses() {
            if let etcd_client::TxnOpResponse::Get(g) = r
                && let Some(kv) = g.kvs().first()
            {
                return Ok(kv.value().to_vec());
            }
        }
        Err(StoreError::Corrupt {
            key,
            reason: "present, then absent, within one transaction".into(),
        })
    }

    fn key(&self, k: &Key) -> String {
        format!("{}{}", self.prefix, key_text(k))
    }

    /// The first `limit` records under `prefix` in key `order`: the
    /// newest first (`Descend`) or the oldest (`Ascend`).
    async fn first<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        order: SortOrder,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let start = format!("{}{prefix}", self.prefix);
        let options = GetOptions::new()
            .with_range(prefix_end(start.as_bytes()))
            .with_sort(SortTarget::Key, order)
            .with_limit(limit as i64);
        let resp = again(PATIENCE, || {
            let (mut kv, start, options) =
                (self.client.kv_client(), start.clone(), options.clone());
            async move { kv.get(start, Some(options)).await }
        })
        .await?;
        resp.kvs()
            .iter()
            .map(|kv| codec::decode(&String::from_utf8_lossy(kv.key()), kv.value()))
            .collect()
    }

    async fn one<T: serde::de::DeserializeOwned>(&self, k: &Key) -> Result<Option<T>, StoreError> {
        let key = self.key(k);
        let resp = again(PATIENCE, || {
            let (mut kv, key) = (self.client.kv_client(), key.clone());
            async move { kv.get(key, None).await }
        })
        .await?;
        resp.kvs()
            .first()
            .map(|kv| codec::decode(&key, kv.value()))
            .transpose()
    }

    /// What one endpoint says of itself, within a second.
    async fn endpoint_health(&self, endpoint: &str) -> EndpointHealth {
        let mut health = EndpointHealth {
            endpoint: endpoint.to_owned(),
            ..EndpointHealth::default()
        };
        let started = std::time::Instant::now();
        let asked = tokio::time::timeout(HEALTH_TIMEOUT, async {
            let mut members = self.members.lock().await;
            let client = match members.get(endpoint) {
                Some(c) => c.clone(),
                None => {
                    let options = etcd_client::ConnectOptions::new()
                        .with_connect_timeout(HEALTH_TIMEOUT)
                        .with_timeout(HEALTH_TIMEOUT);
                    let c = Client::connect([endpoint], Some(options)).await?;
                    members.insert(endpoint.to_owned(), c.clone());
                    c
                }
            };
            drop(members);
            client.maintenance_client().status().await
        })
        .await;
        health.latency = started.elapsed();
        match asked {
            Ok(Ok(status)) => {
                let member = status.header().map_or(0, |h| h.member_id());
                health.revision = status.header().map_or(0, |h| h.revision()) as Revision;
                health.leader = member != 0 && status.leader() == member;
                health.version = status.version().to_owned();
                health.db_size_bytes = status.db_size().max(0) as u64;
            }
            Ok(Err(e)) => health.error = Some(e.to_string()),
            Err(_) => health.error = Some(format!("no answer within {HEALTH_TIMEOUT:?}")),
        }
        health
    }
}

/// Every key-value under `prefix` (relative), at one revision, page by
/// page; the revision they were read at.
pub(super) async fn range(
    client: &Client,
    root: &str,
    prefix: &str,
    revision: Option<i64>,
) -> Result<(i64, Vec<etcd_client::KeyValue>), StoreError> {
    let start = format!("{root}{prefix}");
    let end = prefix_end(start.as_bytes());
    let mut from = start.into_bytes();
    let mut at = revision;
    let mut out = Vec::new();
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if let Some(r) = at {
            options = options.with_revision(r);
        }
        let resp = again(PATIENCE, || {
            let (mut kv, from, options) = (client.kv_client(), from.clone(), options.clone());
            async move { kv.get(from, Some(options)).await }
        })
        .await?;
        let header_revision = resp.header().map_or(0, |h| h.revision());
        let revision = *at.get_or_insert(header_revision);
        let more = resp.more();
        let kvs = resp.kvs().to_vec();
        if let Some(last) = kvs.last() {
            from = [last.key(), b"\0"].concat();
        }
        out.extend(kvs);
        if !more {
            return Ok((revision, out));
        }
    }
}

/// The whole state under `root`, read at one revision, page by page,
/// with what the other masters' sessions say (`live/<id>`; the records of
/// `me`, a master of this name that ran before, go with its old lease).
pub(super) async fn load_all(client: &Client, root: &str, me: &str) -> Result<Loaded, StoreError> {
    let (revision, kvs) = range(client, root, "", None).await?;
    let mut loaded = Loaded {
        revision: revision as Revision,
        next_event_seq: 1,
        records: Vec::new(),
        live: Vec::new(),
    };
    for kv in kvs {
        let Some(key) = std::str::from_utf8(kv.key())
            .ok()
            .and_then(|k| k.strip_prefix(root))
        else {
            continue;
        };
        if let Some(seq) = key
            .strip_prefix("event/")
            .and_then(|s| s.parse::<u64>().ok())
        {
            loaded.next_event_seq = loaded.next_event_seq.max(seq + 1);
        } else if let Some(node) = key.strip_prefix("live/") {
            // An observation, not desired state: one that cannot be read
            // is left for the next write of it.
            let (Ok(node), Ok(record)) = (
                NodeId::try_from(node.to_owned()),
                codec::decode::<LiveRecord>(key, kv.value()),
            ) else {
                continue;
            };
            if record.master != me {
                loaded.live.push((node, record));
            }
        } else if let Some(record) = codec::record_of(key, kv.value())? {
            loaded.records.push((record, kv.mod_revision() as Revision));
        }
    }
    Ok(loaded)
}

/// The end of the range of keys that start with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        load_all(&self.client, &self.prefix, &self.name).await
    }

    async fn commit(&self, change: &Change) -> Result<Revision, StoreError> {
        let fence = self.fence.borrow().clone();
        let Some(fence) = fence else {
            return Err(StoreError::NotLeader {
                leader: match &*self.role.borrow() {
                    Role::Follower { leader, .. } => leader.clone(),
                    Role::Leader { .. } => None,
                },
            });
        };
        let txn = self.txn(change, &fence)?;
        let mut kv = self.client.kv_client();
        let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
        // Whether an attempt may have been committed without this master
        // hearing it (a member died under it, the answer was lost).
        let mut unsure = None;
        loop {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, kv.txn(txn.clone())).await {
                Ok(Ok(resp)) if resp.succeeded() => {
                    return Ok(resp.header().map_or(0, |h| h.revision()) as Revision);
                }
                Ok(Ok(_)) => {
                    // Refused — perhaps because an earlier attempt did it.
                    if unsure.is_some()
                        && let Some(revision) = self.landed(change).await
                    {
                        return Ok(revision);
                    }
                    return Err(self.conflict(change, &fence).await);
                }
                Ok(Err(etcd_client::Error::GRpcStatus(s)))
                    if s.code() == tonic::Code::InvalidArgument =>
                {
                    // etcd refused the request itself (its limits).
                    return Err(StoreError::Refused(format!(
                        "etcd refused the change: {}",
                        s.message()
                    )));
                }
                Ok(Err(e)) => unsure = Some(e.to_string()),
                Err(_) => unsure = Some(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    format!(
                        "etcd did not commit within {COMMIT_TIMEOUT:?} ({}; has it lost its quorum?); \
                         the change may or may not have been made",
                        unsure.unwrap_or_default()
                    )
                    .into(),
                ));
            }
            // Another member may answer (etcd electing a new leader).
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn oldest_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.first("event/", SortOrder::Ascend, limit).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let (_, kvs) = range(&self.client, &self.prefix, "event/", None).await?;
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        let mut out: Vec<Event> = Vec::new();
        for kv in kvs.iter().rev() {
            let event: Event = codec::decode(&String::from_utf8_lossy(kv.key()), kv.value())?;
            if event.seq <= query.after_seq {
                break;
            }
            if query.matches(&event) {
                out.push(event);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    async fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.first("job/", SortOrder::Descend, limit).await
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.one(&Key::Job(id.to_owned())).await
    }

    async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        self.first("rollout/", SortOrder::Descend, limit).await
    }

    async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        self.one(&Key::Rollout(id.to_owned())).await
    }

    fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    async fn follow(&self, after: Revision) -> Option<mpsc::Receiver<Followed>> {
        Some(follow::start(
            self.client.clone(),
            self.prefix.clone(),
            self.name.clone(),
            after,
        ))
    }

    async fn resign(&self) {
        self.presence.stop();
        self.leadership.resign().await;
    }

    fn publish(&self, node: &NodeId, record: Option<LiveRecord>) {
        self.presence.publish(node, record);
    }

    async fn expired(
        &self,
        history: super::History,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError> {
        let start = format!("{}{}", self.prefix, history.prefix());
        let end = prefix_end(start.as_bytes());
        let start = &start;
        let get = |options: GetOptions| {
            move || {
                let (mut kv, start) = (self.client.kv_client(), start.clone());
                let options = options.clone();
                async move { kv.get(start, Some(options)).await }
            }
        };
        let counted = again(
            PATIENCE,
            get(GetOptions::new().with_range(end.clone()).with_count_only()),
        )
        .await?;
        let over = (counted.count().max(0) as usize)
            .saturating_sub(keep)
            .min(limit);
        if over == 0 {
            return Ok(Vec::new());
        }
        let options = GetOptions::new()
            .with_range(end)
            .with_keys_only()
            .with_sort(SortTarget::Key, SortOrder::Ascend)
            .with_limit(over as i64);
        let resp = again(PATIENCE, get(options)).await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let rest = std::str::from_utf8(kv.key())
                    .ok()?
                    .strip_prefix(start.as_str())?;
                Some(match history {
                    super::History::Events => Key::Event(rest.parse().ok()?),
                    super::History::Jobs => Key::Job(rest.to_owned()),
                    super::History::Rollouts => Key::Rollout(rest.to_owned()),
                })
            })
            .collect())
    }

    async fn compact(&self) -> Result<(), StoreError> {
        let meta = format!("{}meta/revision", self.prefix);
        let now = again(PATIENCE, || {
            let (mut kv, meta) = (self.client.kv_client(), meta.clone());
            async move { kv.get(meta, None).await }
        })
        .await?
        .header()
        .map_or(0, |h| h.revision());
        let previous = self
            .compacted
            .swap(now, std::sync::atomic::Ordering::SeqCst);
        if previous > 0 && previous < now {
            self.client
                .kv_client()
                .compact(previous, None)
                .await
                .map_err(unavailable)?;
            tracing::info!(revision = previous, "compacted the store's history");
        }
        Ok(())
    }

    async fn topology(&self) -> Topology {
        let mut t = Topology {
            store: "etcd",
            ..Topology::default()
        };
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend);
        let election = format!("{}election/", self.prefix);
        // A member that is down does not hide the masters (another answers).
        let asked = again(TOPOLOGY_PATIENCE, || {
            let (mut kv, election) = (self.client.kv_client(), election.clone());
            let options = options.clone();
            async move { kv.get(election, Some(options)).await }
        })
        .await;
        if let Ok(resp) = asked {
            t.revision = resp.header().map_or(0, |h| h.revision()) as Revision;
            t.masters = resp
                .kvs()
                .iter()
                .filter_map(|kv| candidate_of(kv.value()))
                .collect();
            if let Some(first) = resp.kvs().first() {
                t.led = true;
                t.epoch = first.create_revision() as Revision;
                let ttl = again(TOPOLOGY_PATIENCE, || {
                    let mut leases = self.client.lease_client();
                    async move { leases.time_to_live(first.lease(), None).await }
                })
                .await;
                if let Ok(ttl) = ttl {
                    t.lease_remaining = Some(Duration::from_secs(ttl.ttl().max(0) as u64));
                }
            }
        }
        let asked = self.endpoints.iter().map(|e| self.endpoint_health(e));
        t.endpoints = futures_util::future::join_all(asked).await;
        t
    }
}

/// What a watched key is to the state: a record put, or removed.
pub(super) fn record_key(relative: &str) -> Option<Key> {
    let (kind, rest) = relative.split_once('/')?;
    let rest = rest.to_owned();
    Some(match kind {
        "node" => Key::Node(rest.try_into().ok()?),
        "token" => Key::Token(rest),
        "user" => Key::User(rest),
        "key" => Key::NodeKey(rest.try_into().ok()?),
        "revoked" => Key::Revoked(rest),
        "group" => Key::Group(rest),
        "upstream" => Key::Upstream(rest),
        "route" => Key::Route(rest),
        "meta" if rest == "settings" => Key::Settings,
        "request" => Key::Request(rest),
        "alert" => Key::Alert(super::codec::alert_key(&rest)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ranges_end_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn watched_keys_name_their_records() {
        assert_eq!(record_key("meta/settings"), Some(Key::Settings));
        assert_eq!(
            record_key("route/example.com"),
            Some(Key::Route("example.com".into()))
        );
        assert_eq!(record_key("meta/revision"), None);
        assert_eq!(record_key("event/00000000000000000001"), None);
    }
}
