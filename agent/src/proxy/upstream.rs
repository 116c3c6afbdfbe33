//! An upstream at run time: its servers' balancing state ([`Pool`]) behind
//! one short lock, and their [`ServerState`]s.
//!
//! An `Upstream` object lives as long as configurations keep an upstream of
//! its name: [`Upstream::set_servers`] changes its server list in place, so
//! a request that routed with an older configuration still picks among the
//! servers configured *now*, and a server that stays keeps its weights,
//! failure counters, connections and in-flight count.

use super::backend::{Hub, Lease, ServerState};
use super::balance::{Params, Pool};
use super::metrics::UpstreamMetrics;
use super::{ServerStats, UpstreamServer, UpstreamStats};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A server as the pool knows it.
pub(super) struct Backend {
    pub state: Arc<ServerState>,
    pub node: Option<String>,
}

pub(super) struct Upstream {
    pub name: Box<str>,
    pool: Mutex<Pool<Backend>>,
    /// What its requests record into, for `/metrics`.
    pub metrics: Arc<UpstreamMetrics>,
}

impl Upstream {
    pub fn new(name: &str) -> Upstream {
        Upstream {
            name: name.into(),
            pool: Mutex::new(Pool::default()),
            metrics: Arc::new(UpstreamMetrics::new(name)),
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool<Backend>> {
        self.pool.lock().expect("upstream pool")
    }

    /// Sets the server list; returns the servers that left it.
    pub fn set_servers(&self, servers: &[UpstreamServer], hub: &Arc<Hub>) -> Vec<Arc<ServerState>> {
        let mut pool = self.pool();
        let existing: Vec<Arc<ServerState>> =
            pool.members().iter().map(|m| m.key.state.clone()).collect();
        let next = servers.iter().map(|s| {
            let state = existing
                .iter()
                .find(|e| *e.addr == *s.server.addr)
                .cloned()
                .unwrap_or_else(|| Arc::new(ServerState::new(&s.server.addr, hub.clone())));
            let backend = Backend {
                state,
                node: s.node.clone(),
            };
            (backend, Params::from(&s.server))
        });
        let gone = pool.replace(next, |a, b| Arc::ptr_eq(&a.state, &b.state));
        gone.into_iter().map(|m| m.key.state).collect()
    }

    pub fn servers(&self) -> Vec<Arc<ServerState>> {
        self.pool()
            .members()
            .iter()
            .map(|m| m.key.state.clone())
            .collect()
    }

    /// Picks a server this request has not `tried` and counts the request
    /// in flight on it.
    pub fn pick(&self, now: impl FnOnce() -> Instant, tried: &[Arc<ServerState>]) -> Option<Lease> {
        let mut pool = self.pool();
        let i = pool.pick(now, |b| tried.iter().any(|t| Arc::ptr_eq(t, &b.state)))?;
        Some(pool.members()[i].key.state.lease())
    }

    /// The try on `server` failed in a way that counts towards `max_fails`.
    pub fn failed(&self, server: &Arc<ServerState>, now: Instant) {
        server.failures.fetch_add(1, Ordering::Relaxed);
        let mut pool = self.pool();
        if let Some(i) = position(&pool, server) {
            pool.failed(i, now);
            server.suspect.store(true, Ordering::Relaxed);
        }
    }

    /// `server` sent a response head. Takes the lock only when the server
    /// has failures on record.
    pub fn succeeded(&self, server: &Arc<ServerState>) {
        if !server.suspect.load(Ordering::Relaxed) {
            return;
        }
        let mut pool = self.pool();
        if let Some(i) = position(&pool, server) {
            pool.succeeded(i);
            if !pool.has_fails(i) {
                server.suspect.store(false, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self, now: Instant) -> UpstreamStats {
        let pool = self.pool();
        UpstreamStats {
            name: self.name.to_string(),
            servers: pool
                .members()
                .iter()
                .map(|m| ServerStats {
                    addr: m.key.state.addr.to_string(),
                    node: m.key.node.clone(),
                    weight: m.params.weight,
                    backup: m.params.backup,
                    requests: m.key.state.requests.load(Ordering::Relaxed),
                    in_flight: m.key.state.in_flight.load(Ordering::Relaxed),
                    failures: m.key.state.failures.load(Ordering::Relaxed),
                    ejected_for: m
                        .ejected_until(now)
                        .map(|u| u.saturating_duration_since(now)),
                })
                .collect(),
        }
    }
}

fn position(pool: &Pool<Backend>, server: &Arc<ServerState>) -> Option<usize> {
    pool.members()
        .iter()
        .position(|m| Arc::ptr_eq(&m.key.state, server))
}
