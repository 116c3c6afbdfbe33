//! A change as one etcd transaction — its preconditions and the fence as
//! compares, its writes nested within etcd's limits — why a transaction's
//! compares failed, and whether an attempt that was not answered landed.

use super::again::{PATIENCE, again};
use super::election;
use super::{EtcdStore, MAX_REQUEST_BYTES, MAX_TXN_OPS, REQUEST_MARGIN};
use crate::store::codec::{record_json, to_json};
use crate::store::{Change, Expect, Key, Revision, StoreError};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};

impl EtcdStore {
    /// Whether `change` is what the store holds now — every put's value,
    /// every event, every delete gone — so an attempt this master did not
    /// hear back from was committed after all: its revision.
    pub(super) async fn landed(&self, change: &Change) -> Option<Revision> {
        let mut revision = 0;
        let mut expect: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for r in &change.puts {
            expect.push((self.key(&r.key()), Some(record_json(r))));
        }
        for e in &change.events {
            expect.push((self.key(&Key::Event(e.seq)), Some(to_json(e))));
        }
        for k in &change.deletes {
            expect.push((self.key(k), None));
        }
        for (key, value) in expect {
            let found = self.get(key.as_bytes()).await.ok()?;
            match (found.kvs().first(), value) {
                (Some(kv), Some(v)) if kv.value() == v.as_slice() => {
                    revision = revision.max(kv.mod_revision());
                }
                (None, None) => {}
                _ => return None,
            }
        }
        (revision > 0).then_some(revision as Revision)
    }

    /// One key (absolute), read again while no member answers.
    async fn get(&self, key: &[u8]) -> Result<etcd_client::GetResponse, StoreError> {
        again(PATIENCE, || {
            let (mut kv, key) = (self.client.kv_client(), key.to_vec());
            async move { kv.get(key, None).await }
        })
        .await
    }

    /// Why a transaction's compares failed: the first precondition that no
    /// longer holds, or the fence. A key that cannot be read says nothing:
    /// the store is unavailable (never "fenced" for want of an answer).
    pub(super) async fn conflict(&self, change: &Change, fence: &election::Fence) -> StoreError {
        match self.why_refused(change, fence).await {
            Ok(why) => why,
            Err(unreadable) => unreadable,
        }
    }

    async fn why_refused(
        &self,
        change: &Change,
        fence: &election::Fence,
    ) -> Result<StoreError, StoreError> {
        let found = |resp: etcd_client::GetResponse| {
            resp.kvs()
                .first()
                .map(|kv| (kv.create_revision(), kv.mod_revision()))
        };
        if found(self.get(&fence.key).await?).map(|(c, _)| c) != Some(fence.revision) {
            self.leadership.fenced();
            return Ok(StoreError::Fenced);
        }
        for p in &change.preconditions {
            let key = self.key(&p.key);
            let now = found(self.get(key.as_bytes()).await?).map(|(_, m)| m as Revision);
            if !p.expect.holds(now) {
                return Ok(StoreError::Conflict {
                    key: p.key.clone(),
                    expected: p.expect,
                    found: now,
                });
            }
        }
        for e in &change.events {
            let k = Key::Event(e.seq);
            if found(self.get(self.key(&k).as_bytes()).await?).is_some() {
                return Ok(StoreError::Conflict {
                    key: k,
                    expected: Expect::Absent,
                    found: Some(0),
                });
            }
        }
        // The coarse compare: something was committed since the plan read.
        Ok(StoreError::Stale {
            read: change.read_revision,
        })
    }

    /// The transaction a change is, fenced.
    pub(super) fn txn(&self, change: &Change, fence: &election::Fence) -> Result<Txn, StoreError> {
        let mut ops: Vec<TxnOp> = Vec::new();
        let mut bytes = 0;
        let mut put = |key: String, value: Vec<u8>, ops: &mut Vec<TxnOp>| {
            bytes += key.len() + value.len();
            ops.push(TxnOp::put(key, value, None));
        };
        // Each key once, the last write winning (etcd refuses a key twice).
        let mut puts: Vec<(String, Vec<u8>)> = Vec::new();
        for r in &change.puts {
            let key = self.key(&r.key());
            puts.retain(|(k, _)| *k != key);
            puts.push((key, record_json(r)));
        }
        for (key, value) in puts {
            put(key, value, &mut ops);
        }
        for e in &change.events {
            put(self.key(&Key::Event(e.seq)), to_json(e), &mut ops);
        }
        let meta = format!("{}meta/revision", self.prefix);
        put(meta.clone(), Vec::new(), &mut ops);
        for k in &change.deletes {
            bytes += k.to_string().len();
            ops.push(TxnOp::delete(self.key(k), None));
        }
        if bytes + REQUEST_MARGIN > MAX_REQUEST_BYTES {
            return Err(StoreError::TooLarge {
                bytes,
                limit: MAX_REQUEST_BYTES - REQUEST_MARGIN,
            });
        }
        let mut compares = vec![Compare::create_revision(
            fence.key.clone(),
            CompareOp::Equal,
            fence.revision,
        )];
        // One compare per precondition and new event, when their number
        // leaves room for the operations; else the coarse compare.
        let exact = change.preconditions.len() + change.events.len() + 1;
        let exact = exact < MAX_TXN_OPS && nesting(exact, ops.len()).is_some();
        if exact {
            for p in &change.preconditions {
                let key = self.key(&p.key);
                compares.push(match p.expect {
                    Expect::Absent => Compare::version(key, CompareOp::Equal, 0),
                    Expect::At(rev) => Compare::mod_revision(key, CompareOp::Equal, rev as i64),
                });
            }
            for e in &change.events {
                compares.push(Compare::version(
                    self.key(&Key::Event(e.seq)),
                    CompareOp::Equal,
                    0,
                ));
            }
        } else {
            // Too many to compare one by one: nothing committed since the
            // plan read (every commit rewrites `meta/revision`).
            compares.push(Compare::mod_revision(
                meta,
                CompareOp::Less,
                change.read_revision as i64 + 1,
            ));
        }
        // Past the limit, the operations go in nested transactions: the
        // commit stays one atomic step.
        let Some(chunk) = nesting(compares.len(), ops.len()) else {
            return Err(StoreError::Refused(format!(
                "the change is {} operations; etcd takes at most {} in one transaction \
                 ({} nested transactions of {} each)",
                ops.len(),
                (MAX_TXN_OPS / 2).pow(2),
                MAX_TXN_OPS / 2,
                MAX_TXN_OPS / 2
            )));
        };
        let ops = if chunk >= ops.len() {
            ops
        } else {
            ops.chunks(chunk)
                .map(|chunk| TxnOp::txn(Txn::new().and_then(chunk.to_vec())))
                .collect()
        };
        Ok(Txn::new().when(compares).and_then(ops))
    }
}

/// How many operations go in each nested transaction so that `ops`
/// operations fit under `compares` compares (`None`: they cannot). etcd
/// counts a transaction's compares and operations against its limit, and
/// gives a nested one only what its parent left: `k` nested transactions
/// hold at most `limit - max(compares, k)` operations each.
fn nesting(compares: usize, ops: usize) -> Option<usize> {
    if compares.max(ops) <= MAX_TXN_OPS {
        return Some(ops.max(1));
    }
    (1..MAX_TXN_OPS).find_map(|k| {
        let each = MAX_TXN_OPS.checked_sub(compares.max(k))?;
        (each > 0 && k * each >= ops).then(|| ops.div_ceil(k))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_nest_within_what_etcd_leaves_each_level() {
        assert_eq!(nesting(2, 100), Some(100), "fits as it is");
        // 301 operations under 2 compares: 3 nested of at most 125.
        let each = nesting(2, 301).unwrap();
        let k = 301usize.div_ceil(each);
        assert!(each <= MAX_TXN_OPS - k.max(2), "{k} × {each}");
        // With 100 compares, each level below has 28 left.
        let each = nesting(100, 300).unwrap();
        let k = 300usize.div_ceil(each);
        assert!(
            each <= MAX_TXN_OPS - k.max(100) && k * each >= 300,
            "{k} × {each}"
        );
        // At most 64 × 64 under two compares.
        assert!(nesting(2, 4096).is_some());
        assert!(nesting(2, 4097).is_none());
        assert!(nesting(127, 200).is_none());
    }
}
