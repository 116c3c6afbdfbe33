//! `cluster-agent`: parse flags and config, bind the health port, and hand
//! over to `cluster_agent::run`.

use anyhow::Context;
use clap::Parser;
use cluster_agent::config::{self, Config, RawConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// The cluster agent: facts, usage, health, and the desired state.
#[derive(Parser, Debug, Clone)]
#[command(name = "cluster-agent", version)]
struct Args {
    /// Config file (TOML). Missing is fine at the default path.
    #[arg(long, short, env = "CLUSTERCTL_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Node id [default: the host name].
    #[arg(long, env = "CLUSTERCTL_ID")]
    id: Option<String>,
    /// The masters' gRPC addresses, comma-separated; tried in a random
    /// order, the next one when a session ends [default: https://127.0.0.1:7440].
    #[arg(long, env = "CLUSTERCTL_MASTER")]
    master: Option<String>,
    /// Where the desired state is cached [default: /var/lib/clusterctl/agent].
    #[arg(long, env = "CLUSTERCTL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Health endpoint address [default: 0.0.0.0:7442].
    #[arg(long, env = "CLUSTERCTL_HEALTH_LISTEN")]
    health_listen: Option<String>,
    /// Address others reach this node on [default: the health address if specific].
    #[arg(long, env = "CLUSTERCTL_ADVERTISE")]
    advertise: Option<String>,
    /// Seconds between usage reports [default: 5s].
    #[arg(long, env = "CLUSTERCTL_REPORT_INTERVAL")]
    report_interval: Option<String>,
    /// Roles of this node (repeat or comma-separate).
    #[arg(long = "role", env = "CLUSTERCTL_ROLES", value_delimiter = ',')]
    roles: Vec<String>,
    /// Join token: admitted at once on first start (`clusterctl token create`).
    /// Prefer CLUSTERCTL_JOIN_TOKEN or --token-file: an argument shows in `ps`.
    #[arg(long = "token", env = "CLUSTERCTL_JOIN_TOKEN")]
    join_token: Option<String>,
    /// A file holding the join token (read once, at start).
    #[arg(long = "token-file", env = "CLUSTERCTL_JOIN_TOKEN_FILE")]
    join_token_file: Option<PathBuf>,
    /// The CA to trust, by its fingerprint ("sha256:…", printed with the token).
    #[arg(long, env = "CLUSTERCTL_CA_FINGERPRINT")]
    ca_fingerprint: Option<String>,
    /// The CA to trust, as a PEM file.
    #[arg(long, env = "CLUSTERCTL_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The service this node runs; the master names it from it.
    #[arg(long, env = "CLUSTERCTL_SERVICE")]
    service: Option<String>,
    /// The hosts file to manage [default: /etc/hosts].
    #[arg(long, env = "CLUSTERCTL_HOSTS_FILE")]
    hosts_file: Option<PathBuf>,
    /// Connect, print the change the hosts file would get, and exit.
    #[arg(long)]
    dry_run: bool,
}

const DEFAULT_CONFIG: &str = "/etc/clusterctl/agent.toml";

/// The configuration from `args` and the file they name (or the default
/// one), with how a facts refresh reads its roles and grains again.
fn load(args: Args) -> anyhow::Result<Config> {
    let again = args.clone();
    let mut config = read(args)?;
    config.reread = Some(cluster_agent::config::Reread(std::sync::Arc::new(
        move || {
            read(again.clone())
                .map(|c| cluster_agent::config::Statics {
                    roles: c.roles,
                    grains: c.grains,
                })
                .map_err(|e| format!("{e:#}"))
        },
    )));
    Ok(config)
}

fn read(args: Args) -> anyhow::Result<Config> {
    let dry_run = args.dry_run;
    let (file, path) = match &args.config {
        Some(p) => (config::read_file(p)?, Some(p.clone())),
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            (config::read_file(&p)?, Some(p))
        }
        None => (RawConfig::default(), None),
    };
    let over = RawConfig {
        id: args.id,
        master: args.master.map(config::MasterList::from),
        data_dir: args.data_dir,
        health_listen: args.health_listen,
        advertise: args.advertise,
        report_interval: args.report_interval,
        roles: (!args.roles.is_empty()).then_some(args.roles),
        join_token: args.join_token,
        join_token_file: args.join_token_file,
        ca_fingerprint: args.ca_fingerprint,
        ca_file: args.ca_file,
        service: args.service,
        hosts_file: args.hosts_file,
        ..RawConfig::default()
    };
    let host = sysinfo::System::host_name().unwrap_or_default();
    let mut config = Config::validate(file.merge(over), path.as_deref(), &host)?;
    config.dry_run = dry_run;
    Ok(config)
}

async fn main_inner() -> anyhow::Result<()> {
    let on_argv = std::env::args().any(|a| a == "--token" || a.starts_with("--token="));
    let config = load(Args::parse())?;
    if on_argv {
        tracing::warn!(
            "the join token was given as an argument, which every user can read in `ps`; use CLUSTERCTL_JOIN_TOKEN or --token-file"
        );
    }
    let health = tokio::net::TcpListener::bind(config.health_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for health checks on {}",
                config.health_listen
            )
        })?;
    cluster_agent::run(config, health, shutdown_signal()).await?;
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

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        // A closed stderr must not take down the task that handles SIGTERM.
        .log_internal_errors(false)
        .init();
    // Two workers are plenty for a session, a health server and a timer.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(main_inner()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-agent: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
