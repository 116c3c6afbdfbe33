//! The desired state the agent holds, shared between the session (which
//! replaces it) and the health server (which reads it), and its on-disk cache;
//! beside it in [`Shared`], the local checks' states.
//!
//! The cache lets an agent that lost its master — or restarted while the
//! master was away — keep serving the last state it was given. It is written
//! atomically (temp file, fsync, rename, fsync of the directory), so a crash
//! leaves either the old or the new state, never half of one.

use crate::checks::CheckStatus;
pub use cluster_model::{OfflineFlag, ProxyView, ResolvedServer};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// 0 until the master has said anything.
    pub generation: u64,
    /// The leadership epoch the state was served under — the highest this
    /// agent has seen, as an older one is never applied (0 with one master,
    /// and in caches written before epochs existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// The name the master assigned.
    pub name: String,
    pub offline: Option<OfflineFlag>,
    /// Every node's hosts line, by node id.
    #[serde(default)]
    pub hosts: std::collections::BTreeMap<String, HostLine>,
    /// Routes and upstreams, when this node runs the proxy. Cached with the
    /// rest, so the proxy routes as last told while the master is away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLine {
    pub address: String,
    pub names: Vec<String>,
}

impl Desired {
    /// Before the master has spoken: known by its id, in service.
    pub fn initial(id: &str) -> Desired {
        Desired {
            generation: 0,
            epoch: 0,
            name: id.to_owned(),
            offline: None,
            hosts: Default::default(),
            proxy: None,
        }
    }

    /// What `/health` answers by the flag alone (checks aside).
    pub fn flag_status(&self) -> cluster_model::HealthStatus {
        cluster_model::HealthStatus::of(self.offline.as_ref(), false)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot write the state cache {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the state cache {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state cache {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The file the last desired state is kept in.
pub struct Cache {
    path: PathBuf,
    /// What the file holds for sure (last loaded or written); `None` after
    /// a failed write, so the next state is written again.
    written: std::sync::Mutex<Option<Desired>>,
}

impl Cache {
    pub fn new(data_dir: &Path) -> Cache {
        Cache {
            path: data_dir.join("desired.json"),
            written: std::sync::Mutex::new(None),
        }
    }

    /// Makes `desired` durable unless the file already holds it.
    pub fn store_if_changed(&self, desired: &Desired) -> Result<(), CacheError> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.as_ref() == Some(desired) {
            return Ok(());
        }
        *written = None;
        self.store(desired)?;
        *written = Some(desired.clone());
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(None)` when there is no cache yet.
    pub fn load(&self) -> Result<Option<Desired>, CacheError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let desired: Desired =
                    serde_json::from_slice(&bytes).map_err(|e| CacheError::Corrupt {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })?;
                *self.written.lock().unwrap_or_else(|e| e.into_inner()) = Some(desired.clone());
                Ok(Some(desired))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CacheError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub fn store(&self, desired: &Desired) -> Result<(), CacheError> {
        let err = |source| CacheError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        tmp.write_all(&serde_json::to_vec_pretty(desired).expect("serialisable"))
            .map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&self.path).map_err(|e| err(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

/// What the session and the health server share.
pub struct Shared {
    pub desired: watch::Sender<Desired>,
    /// The local checks' states, published by [`crate::checks::spawn`]:
    /// a failing check takes the node out of rotation as a drain does.
    /// Empty until the checks are spawned.
    pub checks: watch::Sender<CheckStatus>,
    /// Whether a session with the master is open now.
    pub connected: AtomicBool,
    /// The last usage sample sent to the master (`/metrics` shows it).
    pub usage: watch::Sender<Option<cluster_model::Usage>>,
    /// The proxy's figures, when the node runs it (`/metrics` shows them).
    pub proxy: OnceLock<Arc<crate::proxy::Metrics>>,
    /// The node's grains and facts as last collected (each session's hello
    /// says them; a change is sent on the open session).
    pub facts: watch::Sender<Arc<cluster_model::Facts>>,
}

impl Shared {
    pub fn new(desired: Desired) -> Shared {
        Shared {
            desired: watch::Sender::new(desired),
            checks: watch::Sender::new(CheckStatus::default()),
            connected: AtomicBool::new(false),
            usage: watch::Sender::new(None),
            proxy: OnceLock::new(),
            facts: watch::Sender::new(Arc::default()),
        }
    }

    pub fn current(&self) -> Desired {
        self.desired.borrow().clone()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn set_connected(&self, yes: bool) {
        self.connected.store(yes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("sub"));
        assert_eq!(cache.load().unwrap(), None);
        let d = Desired {
            generation: 4,
            epoch: 7,
            name: "web-1".into(),
            offline: Some(OfflineFlag {
                reason: "deploy".into(),
                since_ms: 9,
                by: "alice".into(),
                maintenance: false,
            }),
            hosts: Default::default(),
            proxy: None,
        };
        cache.store(&d).unwrap();
        assert_eq!(cache.load().unwrap(), Some(d));
    }

    #[test]
    fn a_cache_written_before_epochs_loads_with_epoch_0() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        std::fs::write(
            cache.path(),
            r#"{"generation": 3, "name": "web-1", "offline": null, "hosts": {}}"#,
        )
        .unwrap();
        let d = cache.load().unwrap().unwrap();
        assert_eq!((d.generation, d.epoch), (3, 0));
        // And epoch 0 is not written, so the file stays what it was.
        cache.store(&d).unwrap();
        let text = std::fs::read_to_string(cache.path()).unwrap();
        assert!(!text.contains("epoch"), "{text}");
    }

    #[test]
    fn a_corrupt_cache_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        std::fs::write(cache.path(), "{not json").unwrap();
        let err = cache.load().unwrap_err().to_string();
        assert!(err.contains("desired.json is corrupt"), "{err}");
    }
}
