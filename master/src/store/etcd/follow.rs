//! Commits made through other masters, read back from a watch on the
//! prefix: the events of one revision are one change, in order. A watch
//! that breaks resumes from the last revision seen + 1; one cancelled by
//! compaction (`compact_revision` set — etcd 3.4 gives no reason text)
//! loads the whole state again and resumes after it.

use super::{load_all, record_key};
use crate::store::codec;
use crate::store::{Change, Followed, Revision};
use cluster_model::NodeId;
use cluster_model::time::now_ms;
use etcd_client::{Client, EventType, WatchOptions};
use std::time::Duration;
use tokio::sync::mpsc;

const RETRY: Duration = Duration::from_millis(200);

/// Follows every commit under `root` after revision `after`; the receiver
/// closing ends it.
pub fn start(
    client: Client,
    root: String,
    me: String,
    after: Revision,
) -> mpsc::Receiver<Followed> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut next = after as i64 + 1;
        while !tx.is_closed() {
            match follow(&client, &root, &mut next, &tx).await {
                Ok(Resume::After) => {}
                Ok(Resume::Compacted) => match load_all(&client, &root, &me).await {
                    Ok(loaded) => {
                        tracing::warn!(
                            revision = loaded.revision,
                            "the store's history was compacted past what this master followed; loaded it again"
                        );
                        next = loaded.revision as i64 + 1;
                        if tx.send(Followed::Reload(loaded)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot load the state again"),
                },
                Err(e) => tracing::warn!(error = %e, next, "the store's watch broke; resuming"),
            }
            tokio::time::sleep(RETRY).await;
        }
    });
    rx
}

enum Resume {
    /// The watch ended: watch again from the next revision.
    After,
    /// The next revision is gone: load everything again.
    Compacted,
}

async fn follow(
    client: &Client,
    root: &str,
    next: &mut i64,
    tx: &mpsc::Sender<Followed>,
) -> Result<Resume, etcd_client::Error> {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(*next)
        .with_progress_notify();
    let mut stream = client.watch_client().watch(root, Some(options)).await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            return Ok(if resp.compact_revision() > 0 {
                Resume::Compacted
            } else {
                Resume::After
            });
        }
        // One response may hold several revisions; a revision is never
        // split across responses.
        let mut current: Option<(i64, Change)> = None;
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let revision = kv.mod_revision();
            if current.as_ref().is_some_and(|(r, _)| *r != revision) {
                let (r, change) = current.take().expect("checked");
                if send(tx, r, change).await.is_err() {
                    return Ok(Resume::After);
                }
            }
            let (_, change) = current.get_or_insert_with(|| {
                (
                    revision,
                    Change {
                        at_ms: now_ms(),
                        ..Change::default()
                    },
                )
            });
            let Some(key) = std::str::from_utf8(kv.key())
                .ok()
                .and_then(|k| k.strip_prefix(root))
            else {
                continue;
            };
            // Sessions' records: observations, not a part of any change.
            if let Some(node) = key.strip_prefix("live/") {
                let Ok(node) = NodeId::try_from(node.to_owned()) else {
                    continue;
                };
                let record = match event.event_type() {
                    EventType::Put => match codec::decode(key, kv.value()) {
                        Ok(r) => Some(Box::new(r)),
                        Err(_) => continue,
                    },
                    EventType::Delete => None,
                };
                if tx.send(Followed::Live { node, record }).await.is_err() {
                    return Ok(Resume::After);
                }
                continue;
            }
            match event.event_type() {
                EventType::Put => {
                    if key.starts_with("event/") {
                        if let Ok(e) = codec::decode(key, kv.value()) {
                            change.events.push(e);
                        }
                    } else if let Ok(Some(record)) = codec::record_of(key, kv.value()) {
                        change.puts.push(record);
                    }
                }
                EventType::Delete => {
                    if let Some(k) = record_key(key) {
                        change.deletes.push(k);
                    }
                }
            }
        }
        if let Some((r, change)) = current
            && send(tx, r, change).await.is_err()
        {
            return Ok(Resume::After);
        }
        // Events up to their last revision were all sent; a response with
        // none (a progress notification) vouches for its header's revision.
        let seen = match resp.events().last().and_then(|e| e.kv()) {
            Some(kv) => kv.mod_revision(),
            None => resp.header().map_or(0, |h| h.revision()),
        };
        if seen >= *next {
            *next = seen + 1;
            if tx.send(Followed::Seen(seen as Revision)).await.is_err() {
                return Ok(Resume::After);
            }
        }
    }
    Ok(Resume::After)
}

async fn send(tx: &mpsc::Sender<Followed>, revision: i64, change: Change) -> Result<(), ()> {
    // Revisions that touched nothing of the state (the election) are only
    // seen.
    if change.is_empty() {
        return Ok(());
    }
    tx.send(Followed::Change {
        revision: revision as Revision,
        change,
    })
    .await
    .map_err(|_| ())
}
