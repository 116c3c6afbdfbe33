//! A store in memory with the same semantics as sled's (revisions per
//! record, preconditions, events that must be new), that can be told to
//! fail: what the core's tests commit to.

use super::{Change, EventQuery, Expect, Key, Loaded, Record, Revision, Store, StoreError};
use cluster_model::rollout::RolloutRecord;
use cluster_model::{Event, JobRecord};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct MemStore {
    inner: Mutex<Inner>,
    role: tokio::sync::watch::Sender<super::Role>,
    /// While set, every commit fails (and changes nothing).
    pub fail: AtomicBool,
    /// While above 0, a commit is refused as planned on a view that has
    /// moved (another master's commit won the race), and it counts down.
    pub outraced: AtomicUsize,
}

#[derive(Default)]
struct Inner {
    revision: Revision,
    records: BTreeMap<Key, (Record, Revision)>,
    events: BTreeMap<u64, Event>,
    /// Every change committed, in order.
    commits: Vec<Change>,
}

impl Default for MemStore {
    fn default() -> MemStore {
        MemStore {
            inner: Mutex::default(),
            role: super::sole_leader(),
            fail: AtomicBool::new(false),
            outraced: AtomicUsize::new(0),
        }
    }
}

impl MemStore {
    pub fn load_now(&self) -> Result<Loaded, StoreError> {
        let inner = self.inner.lock().unwrap();
        Ok(Loaded {
            revision: inner.revision,
            records: inner
                .records
                .values()
                .filter(|(r, _)| !matches!(r, Record::Job(_) | Record::Rollout(_)))
                .cloned()
                .collect(),
            next_event_seq: inner.events.keys().next_back().map_or(1, |s| s + 1),
            live: Vec::new(),
        })
    }

    pub fn commit_now(&self, change: &Change) -> Result<Revision, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                key: "test".into(),
                reason: "disk on fire".into(),
            });
        }
        if self
            .outraced
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Stale {
                read: change.read_revision,
            });
        }
        let mut inner = self.inner.lock().unwrap();
        for p in &change.preconditions {
            let found = inner.records.get(&p.key).map(|(_, rev)| *rev);
            if !p.expect.holds(found) {
                return Err(StoreError::Conflict {
                    key: p.key.clone(),
                    expected: p.expect,
                    found,
                });
            }
        }
        for e in &change.events {
            if inner.events.contains_key(&e.seq) {
                return Err(StoreError::Conflict {
                    key: Key::Event(e.seq),
                    expected: Expect::Absent,
                    found: Some(0),
                });
            }
        }
        let next = inner.revision + 1;
        for r in &change.puts {
            inner.records.insert(r.key(), (r.clone(), next));
        }
        for k in &change.deletes {
            inner.records.remove(k);
            if let Key::Event(seq) = k {
                inner.events.remove(seq);
            }
        }
        for e in &change.events {
            inner.events.insert(e.seq, e.clone());
        }
        inner.revision = next;
        inner.commits.push(change.clone());
        Ok(next)
    }

    /// How many commits succeeded.
    pub fn commits(&self) -> usize {
        self.inner.lock().unwrap().commits.len()
    }
}

#[async_trait::async_trait]
impl Store for MemStore {
    async fn load(&self) -> Result<Loaded, StoreError> {
        self.load_now()
    }

    async fn expired(
        &self,
        history: super::History,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<Key>, StoreError> {
        let inner = self.inner.lock().unwrap();
        let keys: Vec<Key> = match history {
            super::History::Events => inner.events.keys().map(|s| Key::Event(*s)).collect(),
            super::History::Jobs => inner
                .records
                .keys()
                .filter(|k| matches!(k, Key::Job(_)))
                .cloned()
                .collect(),
            super::History::Rollouts => inner
                .records
                .keys()
                .filter(|k| matches!(k, Key::Rollout(_)))
                .cloned()
                .collect(),
        };
        let over = keys.len().saturating_sub(keep).min(limit);
        Ok(keys.into_iter().take(over).collect())
    }

    async fn commit(&self, change: &Change) -> Result<Revision, StoreError> {
        self.commit_now(change)
    }

    async fn oldest_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let inner = self.inner.lock().unwrap();
        Ok(inner.events.values().take(limit).cloned().collect())
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let inner = self.inner.lock().unwrap();
        let mut out: Vec<Event> = inner
            .events
            .range(query.after_seq.saturating_add(1)..)
            .map(|(_, e)| e)
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        if query.limit > 0 && out.len() > query.limit {
            out.drain(..out.len() - query.limit);
        }
        Ok(out)
    }

    async fn jobs(&self, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .records
            .values()
            .rev()
            .filter_map(|(r, _)| match r {
                Record::Job(j) => Some(j.clone()),
                _ => None,
            })
            .take(limit)
            .collect())
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let inner = self.inner.lock().unwrap();
        Ok(match inner.records.get(&Key::Job(id.to_owned())) {
            Some((Record::Job(j), _)) => Some(j.clone()),
            _ => None,
        })
    }

    async fn rollouts(&self, limit: usize) -> Result<Vec<RolloutRecord>, StoreError> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .records
            .values()
            .rev()
            .filter_map(|(r, _)| match r {
                Record::Rollout(r) => Some(r.clone()),
                _ => None,
            })
            .take(limit)
            .collect())
    }

    async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        let inner = self.inner.lock().unwrap();
        Ok(match inner.records.get(&Key::Rollout(id.to_owned())) {
            Some((Record::Rollout(r), _)) => Some(r.clone()),
            _ => None,
        })
    }

    fn role(&self) -> tokio::sync::watch::Receiver<super::Role> {
        self.role.subscribe()
    }
}
