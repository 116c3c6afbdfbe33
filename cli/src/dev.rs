//! `clusterctl dev`: an embedded master (store in a temporary directory) and
//! a few agents on 127.0.0.2, 127.0.0.3, … in this one process, like
//! `consul agent -dev`. Everything speaks mutual TLS as in production: the
//! master makes its CA, the agents enroll with a join token. Writes a `dev`
//! context (with a copy of the admin credentials) and makes it current, so
//! `clusterctl nodes` in another terminal just works. Ctrl-C stops it all.

use crate::args::DevArgs;
use crate::client::Client;
use crate::context::{self, Context, Target};
use crate::{Env, Failure};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ROLES: [&str; 3] = ["web", "web", "db"];

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            "\nhint: another `clusterctl dev` or master may be running; pass a different port, or 0 for any free one"
        } else {
            ""
        };
        Failure::bad_input(format!("cannot listen for {what} on {addr}: {e}{hint}"))
    })
}

pub async fn run(args: &DevArgs, env: &Env, out: &mut dyn Write) -> Result<(), Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,cluster_master=info,cluster_agent=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        // A closed stderr must not take down the task that handles SIGTERM.
        .log_internal_errors(false)
        .with_target(false)
        .try_init();
    let io = |e: std::io::Error| Failure::partial(format!("cannot set up the dev cluster: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("clusterctl-dev-")
        .tempdir()
        .map_err(io)?;
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let grpc = bind((loopback, args.port).into(), "the master (gRPC)").await?;
    let http = bind((loopback, args.http_port).into(), "the master (HTTP)").await?;
    let master_addr = grpc.local_addr().map_err(io)?;
    let http_addr = http.local_addr().map_err(io)?;
    let master_url = format!("https://{master_addr}");
    let mut healths = Vec::new();
    for i in 0..args.agents {
        let ip = IpAddr::from([127, 0, 0, 2 + i]);
        healths.push(bind((ip, args.health_port).into(), "an agent's health checks").await?);
    }

    let token = CancellationToken::new();
    let mut tasks = Vec::new();
    let master_config = cluster_master::Config {
        listen: master_addr,
        http_listen: Some(http_addr),
        data_dir: dir.path().join("master"),
        down_after: Duration::from_secs(6),
        server_names: vec!["127.0.0.1".into(), "localhost".into()],
        cluster_name: "dev".into(),
        job_output_limit: 64 * 1024,
        base_domain: None,
        name_expiry: None,
        role_aliases: Default::default(),
        store: cluster_master::config::StoreConfig::Sled,
        name: "dev".into(),
        advertise: master_url.clone(),
    };
    let pki = dir.path().join("master").join("pki");
    let stop = token.clone();
    tasks.push(tokio::spawn(async move {
        let listeners = cluster_master::Listeners {
            grpc,
            http: Some(http),
        };
        if let Err(e) =
            cluster_master::run(
                listeners,
                master_config,
                async move { stop.cancelled().await },
            )
            .await
        {
            tracing::error!(error = %e, "master failed");
        }
    }));
    let admin = Target {
        masters: vec![master_url.clone()],
        origin: "clusterctl dev".into(),
        ca: Some(pki.join("ca.crt")),
        cert: Some(pki.join("admin.crt")),
        key: Some(pki.join("admin.key")),
    };
    let mut client = connect_when_ready(&admin).await?;
    let join = client
        .create_token(Duration::from_secs(600), u32::from(args.agents), Vec::new())
        .await?;
    let mut nodes = Vec::new();
    for (i, health) in healths.into_iter().enumerate() {
        let id = format!("node{}", i + 1);
        let role = ROLES[i % ROLES.len()].to_owned();
        let addr = health.local_addr().map_err(io)?;
        let mut grains = serde_json::Map::new();
        grains.insert("environment".into(), "dev".into());
        let config = cluster_agent::Config {
            id: cluster_model::NodeId::new(id.clone()).expect("dev node ids are valid"),
            masters: vec![master_url.clone()],
            data_dir: dir.path().join(&id),
            health_listen: addr,
            advertise: Some(addr.ip()),
            report_interval: Duration::from_secs(2),
            roles: vec![role.clone()],
            grains,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            join_token: Some(join.token.clone()),
            ca_fingerprint: Some(join.ca_fingerprint.clone()),
            ca_file: None,
            remote_exec: true,
            service: None,
            naming: cluster_model::naming::Naming::Iterative,
            aliases: Vec::new(),
            // Each dev node keeps its hosts block beside its data, never in /etc/hosts.
            manage_hosts: true,
            hosts_file: dir.path().join(&id).join("hosts"),
            hosts_legacy_file: None,
            set_hostname: false,
            dry_run: false,
            checks: Vec::new(),
            agent_check: None,
            haproxy_stats_socket: None,
            proxy: None,
        };
        nodes.push((id, format!("http://{addr}/health"), role));
        let stop = token.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) =
                cluster_agent::run(config, health, async move { stop.cancelled().await }).await
            {
                tracing::error!(error = %e, "agent failed");
            }
        }));
    }

    wait_until_registered(&mut client, nodes.len()).await?;
    let config_path = context::path(env);
    let creds = keep_credentials(&pki, &config_path)?;
    context::set_current(
        &config_path,
        "dev",
        Context {
            master: master_url.clone(),
            ..creds
        },
    )?;

    let mut banner = format!(
        "clusterctl dev: a master and {} agents are running. Ctrl-C stops them.\n\n\
         \x20 master  {master_url}  (HTTP: http://{http_addr}/metrics)\n",
        nodes.len()
    );
    for (id, url, role) in &nodes {
        banner.push_str(&format!("  {id:<6}  {url}  (role {role})\n"));
    }
    let (first, first_url, _) = &nodes[0];
    banner.push_str(&format!(
        "\nContext \"dev\" written to {} and made current.\n\n\
         Try, in another terminal:\n\
         \x20 clusterctl nodes\n\
         \x20 clusterctl drain {first} --reason deploy --wait\n\
         \x20 curl -i {first_url}\n\
         \x20 clusterctl undrain {first} --wait\n\
         \x20 clusterctl events\n\n",
        config_path.display()
    ));
    crate::commands::write_out(out, &banner)?;

    shutdown_signal().await;
    crate::commands::write_out(out, "stopping the dev cluster…\n")?;
    token.cancel();
    for t in tasks {
        let _ = t.await;
    }
    crate::commands::write_out(out, "stopped.\n")?;
    Ok(())
}

/// The master makes its CA and admin identity as it starts: connect once
/// they are there.
async fn connect_when_ready(admin: &Target) -> Result<Client, Failure> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match Client::connect(admin).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn wait_until_registered(client: &mut Client, want: usize) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(nodes) = client.nodes(&crate::client::Targeting::All).await
            && nodes.iter().filter(|n| n.connected).count() >= want
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::partial(
                "the dev agents did not all enroll and register within 30s".to_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Copies the dev cluster's CA and admin identity beside clusterctl's
/// config file (the originals go with the temporary directory).
fn keep_credentials(pki: &std::path::Path, config: &std::path::Path) -> Result<Context, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let dir = config
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("dev");
    let io = |e: std::io::Error| {
        Failure::partial(format!(
            "cannot keep the dev credentials in {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    for (from, mode) in [
        ("ca.crt", 0o644),
        ("admin.crt", 0o644),
        ("admin.key", 0o600),
    ] {
        let to = dir.join(from);
        let _ = std::fs::remove_file(&to);
        std::fs::copy(pki.join(from), &to).map_err(io)?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    Ok(Context {
        master: String::new(),
        masters: Vec::new(),
        ca: Some(dir.join("ca.crt")),
        cert: Some(dir.join("admin.crt")),
        key: Some(dir.join("admin.key")),
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
