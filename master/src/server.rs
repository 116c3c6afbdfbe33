//! Starting and stopping the master: open the store, serve gRPC and HTTP on
//! listeners the caller bound, run the liveness sweep, and on the shutdown
//! signal end every session and return once all is closed (so the store's
//! lock is released and a restart in the same process works).

use crate::cluster::{Cluster, Me};
use crate::config::{Config, StoreConfig};
use crate::pki::files::{self, FilesError, Pki};
use crate::store::{Role, SledStore, Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the leader deletes history past its retention, and compacts
/// the store's own history of revisions (to what it saw the time before,
/// as Kubernetes' API server does).
const RETAIN_EVERY: Duration = Duration::from_secs(30);
const COMPACT_EVERY: Duration = Duration::from_secs(300);

/// How long a starting master waits for its store to answer.
#[cfg(feature = "etcd")]
const STORE_PATIENCE: Duration = Duration::from_secs(30);

/// How long a stopping master waits for jobs to store their records.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(10);

/// The sockets the master serves on, bound by the caller (so a busy port is
/// the caller's clear error, and tests can use port 0).
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the certificate authority: {0}")]
    Pki(#[from] FilesError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
    #[error(
        "this cluster-master was built without etcd support (store = \"etcd\"); \
         build it with `cargo build --release --features cluster-master/etcd` \
         (its build needs protoc: apt-get install protobuf-compiler)"
    )]
    NoEtcd,
    #[error("the cluster's CA in the store is unreadable: {0}")]
    SharedCa(String),
    #[error("cannot start alert delivery: {0}")]
    Notify(#[from] crate::notify::StartError),
}

/// The store, the PKI, and (with etcd) how to reach the other masters.
struct Opened {
    store: Arc<dyn Store>,
    pki: Pki,
    peers: Option<Arc<crate::grpc::masters::GrpcPeers>>,
    /// Starts campaigning for leadership, once this master serves.
    campaign: Option<Box<dyn FnOnce() + Send>>,
}

/// Opens the configured store and the PKI that goes with it: the data
/// directory's own CA with sled; with etcd, the cluster's, which the first
/// master put in the store and every other one adopts.
async fn open(config: &Config, master_url: &str) -> Result<Opened, RunError> {
    let pki_dir = config.data_dir.join("pki");
    let now = std::time::SystemTime::now();
    match &config.store {
        StoreConfig::Sled => {
            let store = SledStore::open(&config.data_dir.join("store"))?;
            let pki = files::load_or_init(
                &pki_dir,
                &config.cluster_name,
                &config.server_names,
                master_url,
                now,
            )?;
            Ok(Opened {
                store: Arc::new(store),
                pki,
                peers: None,
                campaign: None,
            })
        }
        #[cfg(not(feature = "etcd"))]
        StoreConfig::Etcd(_) => Err(RunError::NoEtcd),
        #[cfg(feature = "etcd")]
        StoreConfig::Etcd(settings) => open_etcd(config, settings, master_url, now).await,
    }
}

#[cfg(feature = "etcd")]
async fn open_etcd(
    config: &Config,
    settings: &crate::config::EtcdSettings,
    master_url: &str,
    now: std::time::SystemTime,
) -> Result<Opened, RunError> {
    use crate::pki::{Ca, Subject, new_key_and_csr};
    use crate::store::etcd::{EtcdConfig, EtcdStore};

    #[derive(serde::Serialize, serde::Deserialize)]
    struct SharedCa {
        cert_pem: String,
        key_pem: String,
    }
    let store = EtcdStore::connect(EtcdConfig {
        endpoints: settings.endpoints.clone(),
        prefix: settings.prefix.clone(),
        lease_ttl: settings.lease_ttl,
        name: config.name.clone(),
        advertise: config.advertise.clone(),
    })
    .await?;
    let pki_dir = config.data_dir.join("pki");
    // This master's CA if it has one, else a new one: the store keeps the
    // first master's, and every master adopts what the store keeps.
    let (cert_pem, key_pem) = match files::local_ca(&pki_dir)? {
        Some(pair) => pair,
        None => {
            let (ca, key) = Ca::generate(&config.cluster_name, now)
                .map_err(|e| RunError::SharedCa(e.to_string()))?;
            (ca.cert_pem, key)
        }
    };
    let proposal = serde_json::to_vec(&SharedCa { cert_pem, key_pem }).expect("serialises");
    // etcd may still be electing its own leader (started alongside):
    // try for a while before giving up.
    let deadline = tokio::time::Instant::now() + STORE_PATIENCE;
    let claimed = loop {
        match store.claim("ca", proposal.clone()).await {
            Ok(v) => break v,
            Err(StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "the store does not answer yet; trying again");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let shared: SharedCa =
        serde_json::from_slice(&claimed).map_err(|e| RunError::SharedCa(e.to_string()))?;
    let adopted = claimed != proposal && files::local_ca(&pki_dir)?.is_none();
    let admin = files::adopt(&pki_dir, &shared.cert_pem, &shared.key_pem, master_url, now)?;
    let mut pki = files::load_or_init(
        &pki_dir,
        &config.cluster_name,
        &config.server_names,
        master_url,
        now,
    )?;
    pki.created = pki.created.or(admin);
    pki.adopted = adopted;
    // This master's own identity towards the others.
    let pki_error = |e: crate::pki::PkiError| RunError::SharedCa(e.to_string());
    let (key, csr) = new_key_and_csr(&config.name).map_err(pki_error)?;
    let (cert, _) = pki
        .ca
        .issue_client(&csr, &Subject::Master(config.name.clone()), now)
        .map_err(pki_error)?;
    let peers = crate::grpc::masters::GrpcPeers::new(&pki.ca.cert_pem, &cert, &key);
    let store = Arc::new(store);
    let campaigner = store.clone();
    Ok(Opened {
        store,
        pki,
        peers: Some(Arc::new(peers)),
        campaign: Some(Box::new(move || campaigner.campaign())),
    })
}

pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    cluster_model::fs::private_dir(&config.data_dir).map_err(|source| RunError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let grpc_addr = listeners.grpc.local_addr().map_err(RunError::Http)?;
    let master_url = crate::init::master_url(&Config {
        listen: grpc_addr,
        ..config.clone()
    });
    let Opened {
        store,
        pki,
        peers,
        campaign,
    } = open(&config, &master_url).await?;
    if let Some(admin) = &pki.created {
        let what = if pki.adopted {
            "adopted the cluster's CA from the store and made an admin identity"
        } else {
            "created the cluster CA and an admin identity"
        };
        tracing::info!(
            config = %admin.config.display(),
            "{what}; use it with: clusterctl --config-file {}",
            admin.config.display()
        );
    }
    let (refused, refused_rx) = crate::tls::RefusalSink::new();
    let dropped = refused.dropped.clone();
    let tls = crate::tls::server_config(
        &pki.server_cert_pem,
        &pki.server_key_pem,
        &pki.ca.cert_pem,
        refused,
    )?;
    let https = if config.http_tls {
        Some(crate::tls::http_server_config(
            &pki.server_cert_pem,
            &pki.server_key_pem,
            &pki.ca.cert_pem,
        )?)
    } else {
        None
    };
    let hosts = crate::cluster::HostsNaming {
        base_domain: config.base_domain.clone(),
        role_aliases: config.role_aliases.clone(),
    };
    let me = Me {
        name: config.name.clone(),
        address: config.advertise.clone(),
    };
    let cluster = Cluster::open(
        store.clone(),
        Arc::new(pki.ca.with_node_validity(config.node_certificate_lifetime)),
        config.down_after,
        hosts,
    )
    .await?;
    let cluster = Arc::new(match &peers {
        Some(peers) => cluster.with_peers(peers.clone(), me),
        None => cluster.with_peers(Arc::new(crate::cluster::Alone), me),
    });
    let token = CancellationToken::new();
    // Rollouts halt first, so none acts on what the shutdown itself causes
    // (sessions ending, their jobs lost); then everything else stops.
    let halt = CancellationToken::new();
    {
        let (token, halt, store) = (token.clone(), halt.clone(), store.clone());
        tokio::spawn(async move {
            shutdown.await;
            halt.cancel();
            // A planned stop hands leadership over at once, not after the
            // lease runs out.
            store.resign().await;
            token.cancel();
        });
    }
    let follow = {
        let (cluster, token) = (cluster.clone(), token.clone());
        tokio::spawn(async move { cluster.follow_store(token).await })
    };

    let liveness = tokio::spawn(liveness(cluster.clone(), config.name_expiry, token.clone()));
    let audit = tokio::spawn(crate::tls::refusals::audit(
        cluster.clone(),
        refused_rx,
        dropped,
        config.refusal_window,
    ));
    // Alerts go out from the leader; what cannot be delivered is an event.
    let (reports_tx, reports) = tokio::sync::mpsc::unbounded_channel();
    let notifier = Arc::new(crate::notify::Notifier::start(
        &config.notify,
        &config.cluster_name,
        external_url(&config).as_deref(),
        reports_tx,
        token.clone(),
    )?);
    let delivery_events = tokio::spawn(delivery_events(cluster.clone(), reports));
    let monitor = Arc::new(crate::monitor::Monitor::new(
        config.monitor.clone(),
        notifier.clone(),
    ));
    let watching = tokio::spawn(crate::monitor::run(
        monitor.clone(),
        cluster.clone(),
        token.clone(),
    ));
    let jobs = Arc::new(crate::jobs::Jobs::new(config.job_output_limit));
    if let Some(peers) = &peers {
        peers.set_jobs(jobs.clone());
    }
    let incoming = crate::tls::incoming(listeners.grpc, tls, token.clone());
    if let Some(campaign) = campaign {
        campaign();
    }
    tracing::info!(generation = cluster.generation(), ca = %cluster.ca_fingerprint(), "master ready");
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // One peer cannot hog the master: bounded streams per connection,
        // bounded time per unary call.
        .max_concurrent_streams(Some(128))
        .concurrency_limit_per_connection(256);
    let rollouts = crate::rollout::Rollouts::open(cluster.clone(), jobs.clone(), halt).await;
    let http = listeners.http.map(|l| {
        let mut state = crate::http::Http::new(cluster.clone(), Some(rollouts.clone()));
        state.https = https.is_some();
        state.jobs = Some(jobs.clone());
        state.monitor = Some(monitor.clone());
        state.notifier = Some(notifier.clone());
        let app = crate::http::router(state);
        let token = token.clone();
        let https = https.clone();
        tokio::spawn(async move {
            // The peer's address: refusals name it, and are counted by it.
            let stop = token.clone();
            match https {
                Some(config) => {
                    let l = crate::tls::HttpsListener::new(l, config, token.clone())?;
                    let app = app.into_make_service_with_connect_info::<crate::tls::HttpsPeer>();
                    axum::serve(l, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                }
                None => {
                    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                    axum::serve(l, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                }
            }
        })
    });
    let housekeeping = tokio::spawn(housekeeping(
        cluster.clone(),
        rollouts.clone(),
        config.retention,
        token.clone(),
    ));
    let sessions = TaskTracker::new();
    let served = crate::grpc::services(
        server,
        crate::grpc::Parts {
            cluster: cluster.clone(),
            jobs: jobs.clone(),
            rollouts: rollouts.clone(),
            monitor: monitor.clone(),
            shutdown: token.clone(),
            sessions: sessions.clone(),
            allow_nat: config.allow_nat,
        },
    )
    .serve_with_incoming_shutdown(incoming, {
        let token = token.clone();
        async move { token.cancelled().await }
    })
    .await;
    token.cancel();
    // Nothing touches the store once this returns: sessions end (their
    // jobs hear it), rollouts stop where they are (held as interrupted on
    // the next start), jobs store their records, the sweep stops.
    sessions.close();
    sessions.wait().await;
    rollouts.shutdown().await;
    jobs.wait(SHUTDOWN_PATIENCE).await;
    let _ = liveness.await;
    let _ = housekeeping.await;
    let _ = watching.await;
    notifier.stopped().await;
    let _ = delivery_events.await;
    let _ = follow.await;
    // Ends with the TLS acceptor, which the server dropped.
    let _ = tokio::time::timeout(SHUTDOWN_PATIENCE, audit).await;
    if let Some(http) = http
        && let Ok(Err(e)) = http.await
    {
        return Err(RunError::Http(e));
    }
    served?;
    tracing::info!("master stopped");
    Ok(())
}

/// Where people reach this master's dashboard (alerts link to it).
fn external_url(config: &Config) -> Option<String> {
    let http = config.http_listen?;
    let scheme = if config.http_tls { "https" } else { "http" };
    Some(if http.ip().is_unspecified() {
        let host = config
            .server_names
            .first()
            .map_or("localhost", String::as_str);
        format!("{scheme}://{host}:{}", http.port())
    } else {
        format!("{scheme}://{http}")
    })
}

/// Records what alert delivery reports (a failure, a giving up, a
/// recovery) in the event log, until delivery stops.
async fn delivery_events(
    cluster: Arc<Cluster>,
    mut reports: tokio::sync::mpsc::UnboundedReceiver<crate::notify::DeliveryReport>,
) {
    while let Some(r) = reports.recv().await {
        let detail = crate::notify::report_text(&r);
        tracing::warn!("{detail}");
        let cmd = crate::state::plan::DeliveryFailed { detail };
        if let Err(e) = cluster.execute(&cmd).await {
            tracing::error!(error = %e, "cannot record an alert delivery's failure");
        }
    }
}

/// Writes `down` / `up` transitions to the event log.
async fn liveness(cluster: Arc<Cluster>, name_expiry: Option<Duration>, token: CancellationToken) {
    let every = (cluster.down_after() / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {
                // The leader's work: one event log, one sweep.
                if !matches!(*cluster.role().borrow(), Role::Leader { .. }) {
                    continue;
                }
                match cluster.sweep_liveness().await {
                    Ok(events) => for e in events {
                        tracing::warn!(node = %e.node, kind = e.kind.as_str(), detail = %e.detail, "liveness");
                    },
                    Err(e) => tracing::error!(error = %e, "cannot record liveness events"),
                }
                if let Some(expiry) = name_expiry {
                    for name in cluster.expire_names(expiry).await {
                        tracing::warn!(node = %name, "forgot a node down too long; its name is free");
                    }
                }

            }
        }
    }
}

/// The leader's housekeeping: history past its retention, the store's own
/// history of revisions, rollouts whose master is gone.
async fn housekeeping(
    cluster: Arc<Cluster>,
    rollouts: Arc<crate::rollout::Rollouts>,
    retention_kept: crate::cluster::Retention,
    token: CancellationToken,
) {
    let mut retention = tokio::time::interval(RETAIN_EVERY);
    let mut compaction = tokio::time::interval(COMPACT_EVERY);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    compaction.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    compaction.tick().await; // the first compaction only notes the revision
    loop {
        let compact = tokio::select! {
            _ = token.cancelled() => return,
            _ = retention.tick() => false,
            _ = compaction.tick() => true,
        };
        if !matches!(*cluster.role().borrow(), Role::Leader { .. }) {
            continue;
        }
        if compact {
            if let Err(e) = cluster.compact().await {
                tracing::warn!(error = %e, "cannot compact the store");
            }
            continue;
        }
        match cluster.retain(&retention_kept).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "deleted history past its retention"),
            Err(e) => tracing::warn!(error = %e, "cannot enforce retention"),
        }
        match rollouts.orphans().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(rollouts = n, "held rollouts whose master is gone"),
            Err(e) => tracing::warn!(error = %e, "cannot look for orphaned rollouts"),
        }
    }
}
