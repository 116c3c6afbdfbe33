//! Starting and stopping the master: open the store, serve gRPC and HTTP on
//! listeners the caller bound, run the liveness sweep, and on the shutdown
//! signal end every session and return once all is closed (so the store's
//! lock is released and a restart in the same process works).

use crate::cluster::Cluster;
use crate::config::Config;
use crate::pki::files::{self, FilesError};
use crate::store::{SledStore, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
}

pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| RunError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = SledStore::open(&config.data_dir.join("store"))?;
    let grpc_addr = listeners.grpc.local_addr().map_err(RunError::Http)?;
    let pki = files::load_or_init(
        &config.data_dir.join("pki"),
        &config.cluster_name,
        &config.server_names,
        &crate::init::master_url(&Config {
            listen: grpc_addr,
            ..config.clone()
        }),
        std::time::SystemTime::now(),
    )?;
    if let Some(admin) = &pki.created {
        tracing::info!(
            config = %admin.config.display(),
            "created the cluster CA and an admin identity; use it with: clusterctl --config-file {}",
            admin.config.display()
        );
    }
    let (refused_tx, refused_rx) = tokio::sync::mpsc::channel(256);
    let tls = crate::tls::server_config(
        &pki.server_cert_pem,
        &pki.server_key_pem,
        &pki.ca.cert_pem,
        refused_tx,
    )?;
    let hosts = crate::cluster::HostsNaming {
        base_domain: config.base_domain.clone(),
        role_aliases: config.role_aliases.clone(),
    };
    let cluster =
        Arc::new(Cluster::open(Arc::new(store), Arc::new(pki.ca), config.down_after, hosts).await?);
    let token = CancellationToken::new();
    // Rollouts halt first, so none acts on what the shutdown itself causes
    // (sessions ending, their jobs lost); then everything else stops.
    let halt = CancellationToken::new();
    {
        let (token, halt) = (token.clone(), halt.clone());
        tokio::spawn(async move {
            shutdown.await;
            halt.cancel();
            token.cancel();
        });
    }

    let liveness = tokio::spawn(liveness(cluster.clone(), config.name_expiry, token.clone()));
    let audit = tokio::spawn(crate::tls::audit_refusals(cluster.clone(), refused_rx));
    let http = listeners.http.map(|l| {
        let app = crate::http::router(cluster.clone());
        let token = token.clone();
        tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await
        })
    });

    let jobs = Arc::new(crate::jobs::Jobs::new(config.job_output_limit));
    let incoming = crate::tls::incoming(listeners.grpc, tls, token.clone());
    tracing::info!(generation = cluster.generation(), ca = %cluster.ca_fingerprint(), "master ready");
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // One peer cannot hog the master: bounded streams per connection,
        // bounded time per unary call.
        .max_concurrent_streams(Some(128))
        .concurrency_limit_per_connection(256);
    let rollouts = crate::rollout::Rollouts::open(cluster.clone(), jobs.clone(), halt).await;
    let sessions = TaskTracker::new();
    let served = crate::grpc::services(
        server,
        cluster.clone(),
        jobs.clone(),
        rollouts.clone(),
        token.clone(),
        sessions.clone(),
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

/// Writes `down` / `up` transitions to the event log.
async fn liveness(cluster: Arc<Cluster>, name_expiry: Option<Duration>, token: CancellationToken) {
    let every = (cluster.down_after() / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {
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
