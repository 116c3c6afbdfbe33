//! `cluster-master`: parse flags and config, bind, and hand over to
//! `cluster_master::run`.

use anyhow::Context;
use clap::Parser;
use cluster_master::config::{self, Config, RawConfig};
use cluster_master::{Listeners, run};
use std::path::PathBuf;
use std::process::ExitCode;

/// The cluster master: desired state, agent sessions, the control API.
#[derive(Parser, Debug)]
#[command(name = "cluster-master", version)]
struct Args {
    /// Config file (TOML). Missing is fine at the default path.
    #[arg(long, short, env = "CLUSTERCTL_MASTER_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC address for agents and clusterctl [default: 127.0.0.1:7440].
    #[arg(long, env = "CLUSTERCTL_LISTEN")]
    listen: Option<String>,
    /// Read-only HTTP address (health, metrics), or "off" [default: 127.0.0.1:7441].
    #[arg(long, env = "CLUSTERCTL_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Where the store lives [default: /var/lib/clusterctl/master].
    #[arg(long, env = "CLUSTERCTL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Show a node as down after this long without a report [default: 15s].
    #[arg(long, env = "CLUSTERCTL_DOWN_AFTER")]
    down_after: Option<String>,
    /// Names and addresses clients use to reach the master (repeat or
    /// comma-separate) [default: localhost, 127.0.0.1, ::1, the listen address, the host name].
    #[arg(
        long = "server-name",
        env = "CLUSTERCTL_SERVER_NAMES",
        value_delimiter = ','
    )]
    server_names: Vec<String>,
}

const DEFAULT_CONFIG: &str = "/etc/clusterctl/master.toml";

fn load(args: Args) -> anyhow::Result<Config> {
    let (file, path) = match &args.config {
        Some(p) => (config::read_file::<RawConfig>(p)?, Some(p.clone())),
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            (config::read_file::<RawConfig>(&p)?, Some(p))
        }
        None => (RawConfig::default(), None),
    };
    let over = RawConfig {
        listen: args.listen,
        http_listen: args.http_listen,
        data_dir: args.data_dir,
        down_after: args.down_after,
        server_names: (!args.server_names.is_empty()).then_some(args.server_names),
        cluster_name: None,
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Ok(Config::validate(
        file.merge(over),
        path.as_deref(),
        host.trim(),
    )?)
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

async fn main_inner() -> anyhow::Result<()> {
    let config = load(Args::parse())?;
    let grpc = bind(config.listen, "gRPC").await?;
    let http = match config.http_listen {
        Some(a) => Some(bind(a, "HTTP").await?),
        None => None,
    };
    let http_addr = match &http {
        Some(l) => l.local_addr()?.to_string(),
        None => "off".into(),
    };
    tracing::info!(grpc = %grpc.local_addr()?, http = %http_addr, data_dir = %config.data_dir.display(), "starting master");
    run(Listeners { grpc, http }, config, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .init();
    match main_inner().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-master: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
