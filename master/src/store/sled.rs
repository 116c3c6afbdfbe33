//! The sled backend: one tree, keys by prefix, atomic batches, flushed before
//! a write is acknowledged (sled otherwise flushes only every 500 ms).
//!
//! Keys: `node/<id>` → JSON [`Node`]; `event/<seq as 8 big-endian bytes>` →
//! JSON [`Event`]; `meta/generation` → 8 big-endian bytes; `token/<id>` →
//! JSON [`Token`]; `key/<node id>` → JSON [`KeyRecord`]; `revoked/<serial>`
//! → empty; `group/<name>` → the expression; `job/<id>` → JSON
//! [`JobRecord`] (ids sort by time); `upstream/<name>` → JSON
//! `UpstreamSource`; `route/<domain>` → JSON `Domain`; `rollout/<id>` → JSON
//! `RolloutRecord` (ids sort by time); `meta/settings` → JSON `Settings`
//! (from a cluster file).

use super::{EventQuery, Loaded, Store, StoreError, Write};
use crate::model::{Event, JobRecord, KeyRecord, Node, Token};
use std::path::Path;

const NODE: &[u8] = b"node/";
const EVENT: &[u8] = b"event/";
const GENERATION: &[u8] = b"meta/generation";
const TOKEN: &[u8] = b"token/";
const KEY: &[u8] = b"key/";
const REVOKED: &[u8] = b"revoked/";
const GROUP: &[u8] = b"group/";
const JOB: &[u8] = b"job/";
const UPSTREAM: &[u8] = b"upstream/";
const ROUTE: &[u8] = b"route/";
const ROLLOUT: &[u8] = b"rollout/";
const SETTINGS: &[u8] = b"meta/settings";

pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the store. Another process holding it is waited
    /// for up to `LOCK_PATIENCE` (a restart racing the old process's exit),
    /// then refused with [`StoreError::Locked`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => return Ok(SledStore { db }),
                Err(e) if is_lock_error(&e) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: path.to_owned(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        }
    }
}

const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

fn key(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

fn decode<T: serde::de::DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: e.to_string(),
    })
}

fn u64_of(k: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: format!("expected 8 bytes, found {}", v.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl Store for SledStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for item in self.db.scan_prefix(NODE) {
            let (k, v) = item.map_err(StoreError::Read)?;
            loaded.nodes.push(decode::<Node>(&k, &v)?);
        }
        for item in self.db.scan_prefix(TOKEN) {
            let (k, v) = item.map_err(StoreError::Read)?;
            loaded.tokens.push(decode::<Token>(&k, &v)?);
        }
        for item in self.db.scan_prefix(KEY) {
            let (k, v) = item.map_err(StoreError::Read)?;
            loaded.keys.push(decode::<KeyRecord>(&k, &v)?);
        }
        for item in self.db.scan_prefix(REVOKED) {
            let (k, _) = item.map_err(StoreError::Read)?;
            loaded
                .revoked
                .push(String::from_utf8_lossy(&k[REVOKED.len()..]).into_owned());
        }
        for item in self.db.scan_prefix(GROUP) {
            let (k, v) = item.map_err(StoreError::Read)?;
            loaded.groups.push((
                String::from_utf8_lossy(&k[GROUP.len()..]).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
        for item in self.db.scan_prefix(UPSTREAM) {
            let (k, v) = item.map_err(StoreError::Read)?;
            let name = String::from_utf8_lossy(&k[UPSTREAM.len()..]).into_owned();
            loaded.upstreams.push((name, decode(&k, &v)?));
        }
        for item in self.db.scan_prefix(ROUTE) {
            let (k, v) = item.map_err(StoreError::Read)?;
            let domain = String::from_utf8_lossy(&k[ROUTE.len()..]).into_owned();
            loaded.routes.push((domain, decode(&k, &v)?));
        }
        if let Some(v) = self.db.get(SETTINGS).map_err(StoreError::Read)? {
            loaded.settings = Some(decode(SETTINGS, &v)?);
        }
        if let Some(v) = self.db.get(GENERATION).map_err(StoreError::Read)? {
            loaded.generation = u64_of(GENERATION, &v)?;
        }
        loaded.next_event_seq = match self.db.scan_prefix(EVENT).next_back() {
            Some(item) => {
                let (k, _) = item.map_err(StoreError::Read)?;
                u64_of(&k, &k[EVENT.len()..])? + 1
            }
            None => 1,
        };
        Ok(loaded)
    }

    fn write(&self, write: &Write) -> Result<(), StoreError> {
        if write.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for node in &write.nodes {
            let v = serde_json::to_vec(node).expect("a node always serialises");
            batch.insert(key(NODE, node.id.as_bytes()), v);
        }
        for id in &write.nodes_deleted {
            batch.remove(key(NODE, id.as_bytes()));
        }
        for event in &write.events {
            let v = serde_json::to_vec(event).expect("an event always serialises");
            batch.insert(key(EVENT, &event.seq.to_be_bytes()), v);
        }
        if let Some(generation) = write.generation {
            batch.insert(GENERATION, &generation.to_be_bytes());
        }
        for token in &write.tokens {
            let v = serde_json::to_vec(token).expect("a token always serialises");
            batch.insert(key(TOKEN, token.id.as_bytes()), v);
        }
        for record in &write.keys {
            let v = serde_json::to_vec(record).expect("a key record always serialises");
            batch.insert(key(KEY, record.node_id.as_bytes()), v);
        }
        for id in &write.keys_deleted {
            batch.remove(key(KEY, id.as_bytes()));
        }
        for (name, expr) in &write.groups {
            match expr.as_str() {
                "" => batch.remove(key(GROUP, name.as_bytes())),
                e => batch.insert(key(GROUP, name.as_bytes()), e.as_bytes()),
            }
        }
        for job in &write.jobs {
            let v = serde_json::to_vec(job).expect("a job always serialises");
            batch.insert(key(JOB, job.id.as_bytes()), v);
        }
        for (name, source) in &write.upstreams {
            match source {
                Some(s) => batch.insert(
                    key(UPSTREAM, name.as_bytes()),
                    serde_json::to_vec(s).expect("an upstream always serialises"),
                ),
                None => batch.remove(key(UPSTREAM, name.as_bytes())),
            }
        }
        for (domain, chain) in &write.routes {
            match chain {
                Some(c) => batch.insert(
                    key(ROUTE, domain.as_bytes()),
                    serde_json::to_vec(c).expect("a route always serialises"),
                ),
                None => batch.remove(key(ROUTE, domain.as_bytes())),
            }
        }
        if let Some(s) = &write.settings {
            let v = serde_json::to_vec(s).expect("settings always serialise");
            batch.insert(SETTINGS, v);
        }
        for r in &write.rollouts {
            let v = serde_json::to_vec(r).expect("a rollout always serialises");
            batch.insert(key(ROLLOUT, r.id.as_bytes()), v);
        }
        for serial in &write.revoked {
            batch.insert(key(REVOKED, serial.as_bytes()), &[][..]);
        }
        self.db.apply_batch(batch).map_err(StoreError::Write)?;
        self.db.flush().map_err(StoreError::Write)?;
        Ok(())
    }

    fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.decode_jobs(limit)
    }

    fn rollouts(&self, limit: usize) -> Result<Vec<crate::rollout::RolloutRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(ROLLOUT).rev().take(limit) {
            let (k, v) = item.map_err(StoreError::Read)?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    fn rollout(&self, id: &str) -> Result<Option<crate::rollout::RolloutRecord>, StoreError> {
        let k = key(ROLLOUT, id.as_bytes());
        match self.db.get(&k).map_err(StoreError::Read)? {
            Some(v) => Ok(Some(decode(&k, &v)?)),
            None => Ok(None),
        }
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let k = key(JOB, id.as_bytes());
        match self.db.get(&k).map_err(StoreError::Read)? {
            Some(v) => Ok(Some(decode(&k, &v)?)),
            None => Ok(None),
        }
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let start = key(EVENT, &(query.after_seq.saturating_add(1)).to_be_bytes());
        let end = key(EVENT, &u64::MAX.to_be_bytes());
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        // Newest first, so `limit` keeps the most recent; reversed at the end.
        let mut out = Vec::new();
        for item in self.db.range(start..=end).rev() {
            let (k, v) = item.map_err(StoreError::Read)?;
            let event: Event = decode(&k, &v)?;
            if query.node.as_deref().is_some_and(|n| n != event.node) {
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

impl SledStore {
    fn decode_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(JOB).rev().take(limit) {
            let (k, v) = item.map_err(StoreError::Read)?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, OfflineFlag};

    fn node(id: &str) -> Node {
        Node {
            id: id.into(),
            name: id.into(),
            roles: vec!["web".into()],
            addresses: vec!["127.0.0.2".into()],
            health_url: String::new(),
            grains: Default::default(),
            offline: None,
            spec_generation: 0,
            registered_ms: 1,
            last_seen_ms: 1,
            usage: None,
            applied: Default::default(),
            connected: false,
            labels: Default::default(),
            service: String::new(),
            naming: Default::default(),
            aliases: Vec::new(),
            checks: Vec::new(),
        }
    }

    fn event(seq: u64, node: &str) -> Event {
        Event {
            seq,
            time_ms: seq,
            kind: EventKind::Drain,
            node: node.into(),
            by: "test".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn a_write_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let mut n = node("a");
            n.offline = Some(OfflineFlag {
                reason: "deploy".into(),
                since_ms: 5,
                by: "alice".into(),
                maintenance: false,
            });
            store
                .write(&Write {
                    nodes: vec![n, node("b")],
                    events: vec![event(1, "a"), event(2, "b")],
                    generation: Some(7),
                    revoked: vec!["0abc".into()],
                    ..Write::default()
                })
                .unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.generation, 7);
        assert_eq!(loaded.next_event_seq, 3);
        assert_eq!(loaded.nodes.len(), 2);
        assert_eq!(loaded.nodes[0].offline.as_ref().unwrap().reason, "deploy");
        assert_eq!(loaded.revoked, ["0abc"]);
    }

    #[test]
    fn events_filter_by_node_and_keep_the_newest_under_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let events = (1..=10).map(|i| event(i, if i % 2 == 0 { "a" } else { "b" }));
        store
            .write(&Write {
                events: events.collect(),
                ..Write::default()
            })
            .unwrap();
        let q = |after_seq, limit, node: Option<&str>| EventQuery {
            after_seq,
            limit,
            node: node.map(str::to_owned),
        };
        let seqs = |v: Vec<Event>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(store.events(&q(0, 3, None)).unwrap()), [8, 9, 10]);
        assert_eq!(seqs(store.events(&q(6, 0, None)).unwrap()), [7, 8, 9, 10]);
        assert_eq!(seqs(store.events(&q(0, 2, Some("a"))).unwrap()), [8, 10]);
    }

    #[test]
    fn an_empty_store_starts_at_generation_zero() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = SledStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!((loaded.generation, loaded.next_event_seq), (0, 1));
        assert!(loaded.nodes.is_empty());
    }
}
