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
    #[command(subcommand)]
    command: Option<Sub>,
    /// Config file (TOML). Missing is fine at the default path.
    #[arg(long, short, global = true, env = "CLUSTERCTL_MASTER_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC address for agents and clusterctl [default: 127.0.0.1:7440].
    #[arg(long, global = true, env = "CLUSTERCTL_LISTEN")]
    listen: Option<String>,
    /// Read-only HTTP address (health, metrics), or "off" [default: 127.0.0.1:7441].
    #[arg(long, global = true, env = "CLUSTERCTL_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Where the store lives [default: /var/lib/clusterctl/master].
    #[arg(long, global = true, env = "CLUSTERCTL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Show a node as down after this long without a report [default: 15s].
    #[arg(long, global = true, env = "CLUSTERCTL_DOWN_AFTER")]
    down_after: Option<String>,
    /// Names and addresses clients use to reach the master (repeat or
    /// comma-separate) [default: localhost, 127.0.0.1, ::1, the listen address, the host name].
    #[arg(
        long = "server-name",
        global = true,
        env = "CLUSTERCTL_SERVER_NAMES",
        value_delimiter = ','
    )]
    server_names: Vec<String>,
    /// Where the state lives: "sled" (one master) or "etcd" (several) [default: sled].
    #[arg(long, global = true, env = "CLUSTERCTL_STORE")]
    store: Option<String>,
    /// etcd's client URLs, with --store etcd (repeat or comma-separate).
    #[arg(
        long = "etcd-endpoint",
        global = true,
        env = "CLUSTERCTL_ETCD_ENDPOINTS",
        value_delimiter = ','
    )]
    etcd_endpoints: Vec<String>,
    /// This master's name among several [default: the host name].
    #[arg(long, global = true, env = "CLUSTERCTL_NAME")]
    name: Option<String>,
    /// The URL other masters reach this one at [default: https://LISTEN].
    #[arg(long, global = true, env = "CLUSTERCTL_ADVERTISE")]
    advertise: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Make the data directory, the CA and an admin identity, put an admin
    /// context into your clusterctl config, and exit.
    Init {
        /// Do not touch your clusterctl config file.
        #[arg(long)]
        no_user_config: bool,
    },
}

const DEFAULT_CONFIG: &str = "/etc/clusterctl/master.toml";

fn load(args: &mut Args) -> anyhow::Result<Config> {
    let (file, path) = match &args.config {
        Some(p) => (config::read_file::<RawConfig>(p)?, Some(p.clone())),
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            (config::read_file::<RawConfig>(&p)?, Some(p))
        }
        None => (RawConfig::default(), None),
    };
    let over = RawConfig {
        listen: args.listen.take(),
        http_listen: args.http_listen.take(),
        data_dir: args.data_dir.take(),
        down_after: args.down_after.take(),
        server_names: (!args.server_names.is_empty())
            .then(|| std::mem::take(&mut args.server_names)),
        cluster_name: None,
        job_output_limit: None,
        base_domain: None,
        name_expiry: None,
        role_aliases: None,
        store: args.store.take(),
        etcd_endpoints: (!args.etcd_endpoints.is_empty())
            .then(|| std::mem::take(&mut args.etcd_endpoints)),
        etcd_prefix: None,
        lease_ttl: None,
        name: args.name.take(),
        advertise: args.advertise.take(),
        ..RawConfig::default()
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
    let mut args = Args::parse();
    let config = load(&mut args)?;
    if let Some(Sub::Init { no_user_config }) = args.command {
        return init(&config, no_user_config);
    }
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

fn init(config: &Config, no_user_config: bool) -> anyhow::Result<()> {
    let user_config = (!no_user_config).then(|| {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("CLUSTERCTL_CONFIG").unwrap_or_else(|| {
            var("XDG_CONFIG_HOME")
                .unwrap_or_else(|| {
                    var("HOME")
                        .unwrap_or_else(|| "/root".into())
                        .join(".config")
                })
                .join("clusterctl/config.toml")
        })
    });
    let r = cluster_master::init::init(config, user_config.as_deref())?;
    println!(
        "{} the cluster CA in {}\nCA fingerprint: {}\nadmin identity: {} (key {})",
        if r.created { "Created" } else { "Found" },
        config.data_dir.join("pki").display(),
        r.ca_fingerprint,
        r.admin.cert.display(),
        r.admin.key.display(),
    );
    match r.user_config {
        Some(p) => println!(
            "Context {:?} is now current in {}",
            config.cluster_name,
            p.display()
        ),
        None => println!("clusterctl config for it: {}", r.admin.config.display()),
    }
    println!("Next: start cluster-master, then `clusterctl token create` for agents to join with.");
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
        // A closed stderr must not take down the task that handles SIGTERM.
        .log_internal_errors(false)
        .init();
    match main_inner().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-master: error: {}", chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each cause once: one whose text the message
/// already carries is not repeated.
fn chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
