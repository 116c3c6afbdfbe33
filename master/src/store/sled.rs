//! The sled backend: one tree, keys by prefix, each commit one atomic batch
//! applied after its preconditions were checked, under one lock (this
//! process holds the only handle on the tree), and flushed before it is
//! acknowledged (sled otherwise flushes only every 500 ms).
//!
//! Keys: `node/<id>`, `token/<id>`, `key/<node id>`, `revoked/<serial>`,
//! `group/<name>`, `upstream/<name>`, `route/<domain>`, `meta/settings`:
//! the revision that last wrote the record (8 bytes, big-endian) followed
//! by the record as JSON. `event/<seq as 8 big-endian bytes>`, `job/<id>`
//! (ids sort by time) and `rollout/<id>` hold plain JSON: they are appended
//! or rewritten, never compared. `meta/revision` holds the store's
//! revision; `meta/format` the layout (2). A store of layout 1 (records
//! without revisions, `meta/generation`) is rewritten once on open, in one
//! batch, each record at the old generation.

use super::codec::{self, record_json, to_json};
use super::{Change, EventQuery, Expect, Key, Loaded, Record, Revision, Store, StoreError};
use cluster_model::rollout::RolloutRecord;
use cluster_model::{Event, JobRecord};
use std::path::Path;

const NODE: &[u8] = b"node/";
const EVENT: &[u8] = b"event/";
const TOKEN: &[u8] = b"token/";
const KEY: &[u8] = b"key/";
const REVOKED: &[u8] = b"revoked/";
const USER: &[u8] = b"user/";
const GROUP: &[u8] = b"group/";
const JOB: &[u8] = b"job/";
const UPSTREAM: &[u8] = b"upstream/";
const ROUTE: &[u8] = b"route/";
const ROLLOUT: &[u8] = b"rollout/";
const REQUEST: &[u8] = b"request/";
const ALERT: &[u8] = b"alert/";
const SETTINGS: &[u8] = b"meta/settings";
const REVISION: &[u8] = b"meta/revision";
const FORMAT: &[u8] = b"meta/format";
/// Layout 1's generation counter.
const GENERATION: &[u8] = b"meta/generation";
const LAYOUT: &[u8] = b"2";

/// The prefixes whose records carry a revision.
const REVISIONED: [&[u8]; 10] = [
    NODE, TOKEN, KEY, REVOKED, USER, GROUP, UPSTREAM, ROUTE, REQUEST, ALERT,
];

#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    /// Held from checking a change's preconditions to applying it.
    committing: std::sync::Arc<std::sync::Mutex<()>>,
    /// Always this master: it holds the only handle.
    role: std::sync::Arc<tokio::sync::watch::Sender<super::Role>>,
}

const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

impl SledStore {
    /// Opens (or creates) the store. Another process holding it is waited
    /// for up to `LOCK_PATIENCE` (a restart racing the old process's exit),
    /// then refused with [`StoreError::Locked`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        let db = loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: path.to_owned(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) => {
                    return Err(StoreError::Open {
                        path: path.to_owned(),
                        source: Box::new(e),
                    });
                }
            }
        };
        let store = SledStore {
            db,
            committing: Default::default(),
            role: std::sync::Arc::new(super::sole_leader()),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Rewrites a layout-1 store in layout 2, in one batch.
    fn migrate(&self) -> Result<(), StoreError> {
        if self.db.get(FORMAT).map_err(read)?.is_some() {
            return Ok(());
        }
        let generation = match self.db.get(GENERATION).map_err(read)? {
            Some(v) => u64_of(GENERATION, &v)?,
            None => 0,
        };
        let mut batch = sled::Batch::default();
        let mut any = false;
        for prefix in REVISIONED.iter().copied().chain([SETTINGS]) {
            for item in self.db.scan_prefix(prefix) {
                let (k, v) = item.map_err(read)?;
                let json: Vec<u8> = match prefix {
                    GROUP => serde_json::to_vec(&String::from_utf8_lossy(&v)).expect("a string"),
                    REVOKED => b"null".to_vec(),
                    _ => v.to_vec(),
                };
                batch.insert(k, envelope(generation.max(1), json));
                any = true;
            }
        }
        let revision = if any { generation.max(1) } else { generation };
        batch.insert(REVISION, &revision.to_be_bytes());
        batch.remove(GENERATION);
        batch.insert(FORMAT, LAYOUT);
        self.db.apply_batch(batch).map_err(write)?;
        self.db.flush().map_err(write)?;
        Ok(())
    }
}

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

fn read(e: sled::Error) -> StoreError {
    StoreError::Read(Box::new(e))
}

fn write(e: sled::Error) -> StoreError {
    StoreError::Write(Box::new(e))
}

fn join(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

fn key_bytes(k: &Key) -> Vec<u8> {
    match k {
        Key::Node(id) => join(NODE, id.as_bytes()),
        Key::Token(id) => join(TOKEN, id.as_bytes()),
        Key::NodeKey(id) => join(KEY, id.as_bytes()),
        Key::Revoked(s) => join(REVOKED, s.as_bytes()),
        Key::User(n) => join(USER, n.as_bytes()),
        Key::Group(n) => join(GROUP, n.as_bytes()),
        Key::Upstream(n) => join(UPSTREAM, n.as_bytes()),
        Key::Route(d) => join(ROUTE, d.as_bytes()),
        Key::Settings => SETTINGS.to_vec(),
        Key::Job(id) => join(JOB, id.as_bytes()),
        Key::Rollout(id) => join(ROLLOUT, id.as_bytes()),
        Key::Event(seq) => join(EVENT, &seq.to_be_bytes()),
        Key::Request(id) => join(REQUEST, id.as_bytes()),
        Key::Alert(_) => k.to_string().into_bytes(),
    }
}

fn is_revisioned(k: &Key) -> bool {
    codec::is_state(k)
}

fn envelope(revision: Revision, json: Vec<u8>) -> Vec<u8> {
    let mut v = revision.to_be_bytes().to_vec();
    v.extend(json);
    v
}

fn lossy(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

/// `(revision, json)` of an enveloped value.
fn open_envelope<'a>(k: &[u8], v: &'a [u8]) -> Result<(Revision, &'a [u8]), StoreError> {
    if v.len() < 8 {
        return Err(StoreError::Corrupt {
            key: lossy(k),
            reason: format!("{} bytes, shorter than a revision", v.len()),
        });
    }
    let (rev, json) = v.split_at(8);
    Ok((u64::from_be_bytes(rev.try_into().expect("8 bytes")), json))
}

fn decode<T: serde::de::DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    codec::decode(&lossy(k), v)
}

fn u64_of(k: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| StoreError::Corrupt {
        key: lossy(k),
        reason: format!("expected 8 bytes, found {}", v.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// The record stored under `k` (a revisioned prefix) from its JSON.
fn record_of(k: &[u8], json: &[u8]) -> Result<Record, StoreError> {
    let key = lossy(k);
    codec::record_of(&key, json)?.ok_or(StoreError::Corrupt {
        key,
        reason: "not a record's key".into(),
    })
}

/// The engine's own, blocking calls; the `Store` impl below runs the
/// writes on tokio's blocking pool.
impl SledStore {
    pub fn load_now(&self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for prefix in REVISIONED.iter().copied().chain([SETTINGS]) {
            for item in self.db.scan_prefix(prefix) {
                let (k, v) = item.map_err(read)?;
                let (rev, json) = open_envelope(&k, &v)?;
                loaded.records.push((record_of(&k, json)?, rev));
            }
        }
        if let Some(v) = self.db.get(REVISION).map_err(read)? {
            loaded.revision = u64_of(REVISION, &v)?;
        }
        loaded.next_event_seq = match self.db.scan_prefix(EVENT).next_back() {
            Some(item) => {
                let (k, _) = item.map_err(read)?;
                u64_of(&k, &k[EVENT.len()..])? + 1
            }
            None => 1,
        };
        Ok(loaded)
    }

    pub fn commit_now(&self, change: &Change) -> Result<Revision, StoreError> {
        // One committer at a time: the check below and the batch after it
        // are then one atomic step, as a transaction would be (this process
        // holds the only handle on the tree), at the cost of a batch.
        let _one = self.committing.lock().unwrap_or_else(|e| e.into_inner());
        let revision = match self.db.get(REVISION).map_err(read)? {
            Some(v) => u64_of(REVISION, &v)?,
            None => 0,
        };
        for p in &change.preconditions {
            let k = key_bytes(&p.key);
            let found = match self.db.get(&k).map_err(read)? {
                None => None,
                Some(v) if is_revisioned(&p.key) => Some(open_envelope(&k, &v)?.0),
                Some(_) => Some(0),
            };
            if !p.expect.holds(found) {
                return Err(StoreError::Conflict {
                    key: p.key.clone(),
                    expected: p.expect,
                    found,
                });
            }
        }
        let next = revision + 1;
        let mut batch = sled::Batch::default();
        for e in &change.events {
            let k = key_bytes(&Key::Event(e.seq));
            if self.db.contains_key(&k).map_err(read)? {
                return Err(StoreError::Conflict {
                    key: Key::Event(e.seq),
                    expected: Expect::Absent,
                    found: Some(0),
                });
            }
            batch.insert(k, to_json(e));
        }
        for r in &change.puts {
            let key = r.key();
            let json = record_json(r);
            let v = if is_revisioned(&key) {
                envelope(next, json)
            } else {
                json
            };
            batch.insert(key_bytes(&key), v);
        }
        for key in &change.deletes {
            batch.remove(key_bytes(key));
        }
        batch.insert(REVISION, &next.to_be_bytes());
        self.db.apply_batch(batch).map_err(write)?;
        self.db.flush().map_err(write)?;
        Ok(next)
    }

    pub fn jobs_now(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.newest(JOB, limit)
    }

    pub fn job_now(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.one(&key_bytes(&Key::Job(id.to_owned())))
    }

    pub fn rollouts_now(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        self.newest(ROLLOUT, limit)
    }

    pub fn rollout_now(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        self.one(&key_bytes(&Key::Rollout(id.to_owned())))
    }

    pub fn events_now(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let start = join(EVENT, &(query.after_seq.saturating_add(1)).to_be_bytes());
        let end = join(EVENT, &u64::MAX.to_be_bytes());
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        // Newest first, so `limit` keeps the most recent; reversed at the end.
        let mut out = Vec::new();
        for item in self.db.range(start..=end).rev() {
            let (k, v) = item.map_err(read)?;
            let event: Event = decode(&k, &v)?;
            if !query.matches(&event) {
                continue;
            }
            out.push(event);
            if out.len() >= limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        self.load_now()
    }

    async fn expired(
        &self,
        history: super::History,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError> {
        let prefix = history.prefix().as_bytes();
        let total = self.db.scan_prefix(prefix).keys().count();
        let over = total.saturating_sub(keep).min(limit);
        let mut out = Vec::with_capacity(over);
        for k in self.db.scan_prefix(prefix).keys().take(over) {
            let k = k.map_err(read)?;
            let rest = &k[prefix.len()..];
            out.push(match history {
                super::History::Events => Key::Event(u64_of(&k, rest)?),
                super::History::Jobs => Key::Job(lossy(rest)),
                super::History::Rollouts => Key::Rollout(lossy(rest)),
            });
        }
        Ok(out)
    }

    async fn commit(&self, change: &Change) -> Result<Revision, StoreError> {
        let (this, change) = (self.clone(), change.clone());
        tokio::task::spawn_blocking(move || this.commit_now(&change))
            .await
            // The runtime is shutting down: the write never ran.
            .map_err(|_| StoreError::Closed)?
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        self.events_now(query)
    }

    async fn oldest_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.db
            .scan_prefix(EVENT)
            .take(limit)
            .map(|item| {
                let (k, v) = item.map_err(read)?;
                decode(&k, &v)
            })
            .collect()
    }

    async fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.jobs_now(limit)
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.job_now(id)
    }

    async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        self.rollouts_now(limit)
    }

    async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        self.rollout_now(id)
    }

    fn role(&self) -> tokio::sync::watch::Receiver<super::Role> {
        self.role.subscribe()
    }
}

impl SledStore {
    fn newest<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix).rev().take(limit) {
            let (k, v) = item.map_err(read)?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    fn one<T: serde::de::DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(k).map_err(read)? {
            Some(v) => Ok(Some(decode(k, &v)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
