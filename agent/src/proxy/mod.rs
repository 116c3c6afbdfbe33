//! The reverse proxy a `balancer` node runs: HTTP/1.1 in, routed by `Host`
//! through the master's route chains ([`cluster_balancer::RouteTable`]) to
//! an upstream, balanced over its servers the way nginx does it.
//!
//! The agent owns a [`Proxy`] for the node's life: it feeds it each
//! configuration the master sends ([`Proxy::update`], atomic, never failing
//! a request in flight), serves it on its listeners ([`Proxy::serve`]), and
//! watches [`Proxy::changes`] / [`Proxy::draining`] to tell the master when
//! a removed server has really stopped receiving traffic.
//!
//! Client connections are served on the proxy's own threads, one
//! single-threaded tokio runtime each (one per CPU unless
//! [`Options::workers`] says otherwise), started by the first `serve` and
//! stopped when the `Proxy` is dropped: like nginx's workers, a connection
//! and everything its requests touch stay on one thread.
//!
//! # Layout
//!
//! - `balance` — pure: smooth weighted round robin, passive ejection.
//! - `upstream` — an upstream at run time: the balancer behind a lock,
//!   kept across configurations.
//! - `backend` — one server: counters, keep-alive connections, the lease a
//!   request holds on it until its response body ends.
//! - `h1` — HTTP/1.1 on the wire: heads, framing, the chunked coding.
//! - `forward` — one request: routing, tries, the response.
//! - `answer` — the proxy's own answers, `/health` among them.
//! - `access_log` — a line per request, off the request path.
//! - `metrics` — requests by upstream and code, their durations, failed
//!   tries: atomics each upstream owns, written out at a scrape.
//! - `body` — bodies moved from socket to socket.
//! - `tunnel` — an upgraded connection (WebSocket): bytes both ways.
//! - `listen` — the accept loop and graceful shutdown.
//! - `workers` — the threads connections run on, one tokio runtime each.
//!
//! See `LIFECYCLE.md` beside this file for what happens to a request across
//! a configuration change.

mod access_log;
mod answer;
mod backend;
mod balance;
mod body;
mod forward;
mod h1;
mod listen;
mod metrics;
mod tunnel;
mod upstream;
mod workers;

pub use access_log::{AccessLog, Format as AccessLogFormat, Target as AccessLogTarget};
pub use forward::MAX_REPLAY_BODY;
pub use metrics::Metrics;

use backend::{Hub, ServerState};
use cluster_balancer::RouteTable;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use upstream::Upstream;
use workers::Workers;

/// Kept-alive connections per server, at most; more are closed when their
/// response ends.
pub const MAX_IDLE_PER_SERVER: usize = 512;

/// What the proxy routes with; built by the agent from the master's state.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub generation: u64,
    /// Compiled routes by domain.
    pub routes: Arc<RouteTable>,
    /// Upstream name → its servers, in order.
    pub upstreams: BTreeMap<String, Vec<UpstreamServer>>,
}

/// One server of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    pub server: cluster_balancer::Server,
    /// The node's name when the server comes from a role.
    pub node: Option<String>,
}

/// Answers `GET <path>[?node=NAME]`; the argument is `node`'s value. A body
/// starting with `{` or `[` is sent as `application/json`, any other as
/// `text/plain`.
pub type HealthFn = Arc<dyn Fn(Option<&str>) -> (http::StatusCode, String) + Send + Sync>;

/// The node's health, answered on the traffic port so a load balancer in
/// front of the proxy sees a drain.
#[derive(Clone)]
pub struct HealthEndpoint {
    /// Starts with `/`; matched exactly against the request's path.
    pub path: String,
    pub answer: HealthFn,
}

/// The proxy's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect to a backend; a timeout counts as a failure (nginx's
    /// `proxy_connect_timeout`).
    pub connect: Duration,
    /// From handing the request to a backend connection to its response
    /// head (a streamed upload is included); then 504 (nginx's
    /// `proxy_read_timeout` for the head; a body that stalls is bounded by
    /// `client_idle`).
    pub response_head: Duration,
    /// An unused keep-alive connection to a backend is closed after at
    /// most this (and at least half of it).
    pub idle: Duration,
    /// A client connection on which no byte moves for this long, with no
    /// request waiting for its response head, is closed — checked every
    /// `client_idle`, so after up to twice as long. That bounds an idle
    /// keep-alive connection, a request head that never completes, and a
    /// response body that stalls (nginx's `keepalive_timeout`,
    /// `client_header_timeout`, `send_timeout` and body
    /// `proxy_read_timeout` in one).
    pub client_idle: Duration,
    /// On shutdown, how long client connections get to finish.
    pub shutdown_grace: Duration,
    /// An upgraded connection (WebSocket) on which no byte moves either
    /// way for this long is closed — checked every `tunnel_idle`, so after
    /// up to twice as long (HAProxy's `timeout tunnel`).
    pub tunnel_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            response_head: Duration::from_secs(60),
            idle: Duration::from_secs(90),
            client_idle: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            tunnel_idle: Duration::from_secs(3600),
        }
    }
}

/// One upstream's servers, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStats {
    pub name: String,
    pub servers: Vec<ServerStats>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    pub addr: String,
    pub node: Option<String>,
    pub weight: u32,
    pub backup: bool,
    /// Requests sent to it (tries, retries included) since it joined the
    /// upstream.
    pub requests: u64,
    /// Picked and not yet finished (response body included).
    pub in_flight: u64,
    /// Failures counted towards `max_fails`.
    pub failures: u64,
    /// How much longer it is out, when ejected.
    pub ejected_for: Option<Duration>,
}

/// The configuration in force: swapped whole by `update`.
struct Snapshot {
    generation: u64,
    routes: Arc<RouteTable>,
    upstreams: HashMap<String, Arc<Upstream>>,
    /// Every configured server address, to tell a draining one.
    addrs: HashSet<String>,
}

pub struct Proxy {
    /// Tells proxies apart in the workers' snapshot caches.
    id: u64,
    current: RwLock<Arc<Snapshot>>,
    /// Bumped after `current` changes: a worker whose cached snapshot is of
    /// an older version reads `current` again.
    version: AtomicU64,
    /// Serialises `update`s (reads never take it).
    updating: Mutex<()>,
    /// Servers configurations dropped, while anything still refers to them:
    /// what `draining` looks at.
    retired: Mutex<Vec<Weak<ServerState>>>,
    hub: Arc<Hub>,
    health: Option<HealthEndpoint>,
    timeouts: Timeouts,
    worker_count: usize,
    /// Started by the first `serve`.
    workers: OnceLock<Workers>,
    /// Whether a `serve` is sweeping idle backend connections.
    sweeping: AtomicBool,
    /// Shared with `/metrics`, which must not keep the proxy (its worker
    /// threads) alive.
    metrics: Arc<Metrics>,
    /// Off unless set.
    access_log: OnceLock<AccessLog>,
}

/// How a proxy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub timeouts: Timeouts,
    /// Threads serving client connections; 0: one per CPU.
    pub workers: usize,
}

impl Proxy {
    pub fn new(config: ProxyConfig, health: Option<HealthEndpoint>) -> Arc<Proxy> {
        Proxy::with_options(config, health, Options::default())
    }

    pub fn with_options(
        config: ProxyConfig,
        health: Option<HealthEndpoint>,
        options: Options,
    ) -> Arc<Proxy> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let worker_count = match options.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let proxy = Proxy {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            current: RwLock::new(Arc::new(Snapshot {
                generation: 0,
                routes: Arc::default(),
                upstreams: HashMap::new(),
                addrs: HashSet::new(),
            })),
            updating: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            hub: Arc::new(Hub {
                changes: watch::Sender::new(0),
                idle_round: AtomicU64::new(0),
                pools: worker_count + 1,
            }),
            health,
            timeouts: options.timeouts,
            worker_count,
            workers: OnceLock::new(),
            sweeping: AtomicBool::new(false),
            metrics: Arc::default(),
            access_log: OnceLock::new(),
        };
        proxy.update(config);
        Arc::new(proxy)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("proxy config").clone()
    }

    /// Runs `f` on the configuration in force, as cached by this thread:
    /// on the request path that costs one atomic load, not a lock.
    fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        thread_local! {
            static CACHE: RefCell<Option<(u64, u64, Arc<Snapshot>)>> = const { RefCell::new(None) };
        }
        let version = self.version.load(Ordering::Acquire);
        CACHE.with(|cache| {
            let fresh =
                matches!(&*cache.borrow(), Some((id, v, _)) if *id == self.id && *v == version);
            if !fresh {
                *cache.borrow_mut() = Some((self.id, version, self.snapshot()));
            }
            let cache = cache.borrow();
            let (_, _, snapshot) = cache.as_ref().expect("just filled");
            f(snapshot)
        })
    }

    fn workers(&self) -> std::io::Result<&Workers> {
        if let Some(w) = self.workers.get() {
            return Ok(w);
        }
        let started = Workers::start(self.worker_count)?;
        // Two first `serve`s at once: the loser's threads stop as it drops.
        let _ = self.workers.set(started);
        Ok(self.workers.get().expect("just set"))
    }

    /// Applies a configuration. Servers that stay in an upstream (same
    /// address) keep their state; requests already sent finish where they
    /// are; once this returns, no new try goes to a removed server.
    pub fn update(&self, config: ProxyConfig) {
        let _serial = self.updating.lock().expect("proxy update");
        let old = self.snapshot();
        let mut upstreams = HashMap::with_capacity(config.upstreams.len());
        let mut gone = Vec::new();
        for (name, servers) in &config.upstreams {
            let up = old
                .upstreams
                .get(name)
                .cloned()
                .unwrap_or_else(|| Arc::new(Upstream::new(name)));
            gone.extend(up.set_servers(servers, &self.hub));
            upstreams.insert(name.clone(), up);
        }
        for (name, up) in &old.upstreams {
            if !config.upstreams.contains_key(name) {
                // Requests routed with the old routes may still pick
                // these; they are counted as draining meanwhile.
                gone.extend(up.servers());
            }
        }
        self.metrics
            .set_upstreams(upstreams.values().map(|u| u.metrics.clone()).collect());
        let addrs = config
            .upstreams
            .values()
            .flatten()
            .map(|s| s.server.addr.clone())
            .collect();
        {
            let mut retired = self.retired.lock().expect("retired servers");
            retired.retain(|w| w.strong_count() > 0);
            for s in &gone {
                s.retire();
                retired.push(Arc::downgrade(s));
            }
        }
        let next = Arc::new(Snapshot {
            generation: config.generation,
            routes: config.routes,
            upstreams,
            addrs,
        });
        *self.current.write().expect("proxy config") = next;
        self.version.fetch_add(1, Ordering::AcqRel);
        drop(old);
        drop(gone);
        self.hub.changes.send_modify(|n| *n += 1);
        tracing::debug!(
            generation = config.generation,
            "proxy configuration applied"
        );
    }

    /// The generation of the configuration in force.
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// Serves `listener` until `shutdown`; then stops accepting and lets
    /// requests in flight finish, for at most `Timeouts::shutdown_grace`.
    /// Call once per listener.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        listen::serve(self, listener, shutdown).await
    }

    /// The proxy's figures, for `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Writes a line per request to `log` from now on (once; a second log
    /// is refused and returned). Its dropped lines show in `/metrics`.
    pub fn set_access_log(&self, log: AccessLog) -> Result<(), AccessLog> {
        let dropped = log.dropped_counter();
        self.access_log.set(log)?;
        let _ = self.metrics.access_log_dropped.set(dropped);
        Ok(())
    }

    /// Backend addresses no longer configured that still have requests in
    /// flight, with their count, sorted by address.
    pub fn draining(&self) -> Vec<(String, u64)> {
        let snapshot = self.snapshot();
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        let mut retired = self.retired.lock().expect("retired servers");
        retired.retain(|w| {
            let Some(s) = w.upgrade() else { return false };
            let n = s.in_flight.load(Ordering::Acquire);
            if n > 0 && !snapshot.addrs.contains(&*s.addr) {
                *out.entry(s.addr.to_string()).or_default() += n;
            }
            true
        });
        out.into_iter().collect()
    }

    /// Bumped when a configuration is applied and whenever a server no
    /// longer configured finishes its last request in flight. The value is
    /// a counter, not a generation: look at `draining()` when it moves.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.hub.changes.subscribe()
    }

    /// Every configured upstream and its servers, sorted by name.
    pub fn stats(&self) -> Vec<UpstreamStats> {
        let snapshot = self.snapshot();
        let now = tokio::time::Instant::now().into_std();
        let mut out: Vec<UpstreamStats> =
            snapshot.upstreams.values().map(|u| u.stats(now)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Starts a new idle round and closes the backend connections put back
    /// two rounds ago or earlier; run every `Timeouts::idle / 2`, so an
    /// unused connection lives between half and all of `idle`.
    fn close_idle(&self) {
        let round = self.hub.idle_round.fetch_add(1, Ordering::Relaxed) + 1;
        for up in self.snapshot().upstreams.values() {
            for s in up.servers() {
                s.close_idle(round.saturating_sub(1));
            }
        }
    }
}
