//! `clusterctl dev`: an embedded master (store in a temporary directory) and
//! a few agents on 127.0.0.2, 127.0.0.3, … in this one process, like
//! `consul agent -dev`. Everything speaks mutual TLS as in production: the
//! master makes its CA, the agents enroll with a join token. Writes a `dev`
//! context (with a copy of the admin credentials) and makes it current, so
//! `clusterctl nodes` in another terminal just works. Ctrl-C stops it all.

#[cfg(feature = "etcd")]
mod ha;

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
    if args.masters > 1 && !cfg!(feature = "etcd") {
        return Err(Failure::bad_input(
            "`clusterctl dev --masters` needs a clusterctl built with etcd support:\n\
             \x20 cargo run --release --features cluster-cli/etcd --bin clusterctl -- dev --masters 3\n\
             hint: its build needs protoc (apt-get install protobuf-compiler), running it etcd \
             (apt-get install etcd-server)",
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("clusterctl-dev-")
        .tempdir()
        .map_err(io)?;
    let mut healths = Vec::new();
    for i in 0..args.agents {
        let ip = IpAddr::from([127, 0, 0, 2 + i]);
        healths.push(bind((ip, args.health_port).into(), "an agent's health checks").await?);
    }

    let token = CancellationToken::new();
    let mut tasks = Vec::new();
    // Masters: (name, gRPC URL, HTTP URL, pid when its own process).
    let mut masters: Vec<(String, String, String, Option<u32>)> = Vec::new();
    #[cfg(feature = "etcd")]
    let mut children: Vec<ha::Managed> = Vec::new();
    #[cfg(feature = "etcd")]
    let mut etcd_urls: Vec<String> = Vec::new();
    let pki;
    if args.masters == 1 {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let grpc = bind((loopback, args.port).into(), "the master (gRPC)").await?;
        let http = bind((loopback, args.http_port).into(), "the master (HTTP)").await?;
        let master_addr = grpc.local_addr().map_err(io)?;
        let http_addr = http.local_addr().map_err(io)?;
        let master_url = format!("https://{master_addr}");
        masters.push((
            "dev".into(),
            master_url.clone(),
            format!("http://{http_addr}"),
            None,
        ));
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
            retention: Default::default(),
            refusal_window: Duration::from_secs(60),
            node_certificate_lifetime: cluster_master::pki::LEAF_VALIDITY,
            allow_nat: false,
            http_tls: false,
            monitor: Default::default(),
            notify: Default::default(),
        };
        pki = dir.path().join("master").join("pki");
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
    } else {
        #[cfg(feature = "etcd")]
        {
            let (members, urls) = ha::start_etcd(dir.path())?;
            children.extend(members);
            etcd_urls = urls;
            let mut specs = ha::plan_masters(args.masters, args.port, args.http_port, dir.path())?;
            for spec in &mut specs {
                let child = ha::start_master_serving(spec, &etcd_urls, dir.path()).await?;
                masters.push((
                    spec.name.clone(),
                    format!("https://{}", spec.grpc),
                    format!("http://{}", spec.http),
                    Some(child.pid()),
                ));
                children.push(child);
            }
            pki = specs[0].data_dir.join("pki");
            // The first master's admin identity is there once it serves.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !pki.join("admin.key").exists() {
                if let Some(c) = children
                    .iter_mut()
                    .find_map(|c| c.exited().is_some().then_some(c))
                {
                    return Err(Failure::partial(format!(
                        "{} stopped while starting; its log ({}):\n{}",
                        c.what,
                        c.log.display(),
                        ha::tail(&c.log)
                    )));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Failure::partial(format!(
                        "the first master did not start within 30s; its log:\n{}",
                        ha::tail(&dir.path().join("m1.log"))
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        #[cfg(not(feature = "etcd"))]
        unreachable!("refused above");
    }
    let urls: Vec<String> = masters.iter().map(|m| m.1.clone()).collect();
    let admin = Target {
        masters: urls.clone(),
        origin: "clusterctl dev".into(),
        ca: Some(pki.join("ca.crt")),
        cert: Some(pki.join("admin.crt")),
        key: Some(pki.join("admin.key")),
    };
    let mut client = connect_when_ready(&admin).await?;
    let join = client
        .create_token(
            Some(Duration::from_secs(600)),
            u32::from(args.agents),
            Vec::new(),
            None,
        )
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
            masters: urls.clone(),
            data_dir: dir.path().join(&id),
            health_listen: addr,
            advertise: Some(addr.ip()),
            report_interval: Duration::from_secs(2),
            facts_interval: Duration::from_secs(600),
            // A signal to `clusterctl dev` is its own (SIGHUP ends it).
            facts_on_sighup: false,
            roles: vec![role.clone()],
            grains,
            reread: None,
            // Beside the node's data, never /etc/clusterctl/facts.d.
            facts_dir: dir.path().join(&id).join("facts.d"),
            facts_timeout: Duration::from_secs(10),
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
            redact: Default::default(),
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
    // The dashboard's login: an admin's API token, for this dev cluster only.
    let dashboard = client
        .create_token(
            None,
            0,
            Vec::new(),
            Some(("dev".into(), cluster_model::Role::Admin)),
        )
        .await?;
    let config_path = context::path(env);
    let creds = keep_credentials(&pki, &config_path)?;
    let context = match urls.as_slice() {
        [one] => Context {
            master: one.clone(),
            ..creds
        },
        many => Context {
            masters: many.to_vec(),
            ..creds
        },
    };
    context::set_current(&config_path, "dev", context)?;

    let mut banner = if masters.len() == 1 {
        format!(
            "clusterctl dev: a master and {} agents are running. Ctrl-C stops them.\n\n\
             \x20 master  {}  (HTTP: {}/metrics)\n",
            nodes.len(),
            masters[0].1,
            masters[0].2
        )
    } else {
        let mut b = format!(
            "clusterctl dev: {} masters on a 3-member etcd cluster, and {} agents, are running. \
             Ctrl-C stops them.\n\n",
            masters.len(),
            nodes.len()
        );
        for (name, url, http, pid) in &masters {
            b.push_str(&format!(
                "  master {name:<4} {url}  (HTTP: {http}/metrics)  pid {}\n",
                pid.unwrap_or_default()
            ));
        }
        #[cfg(feature = "etcd")]
        for (i, url) in etcd_urls.iter().enumerate() {
            let pid = children
                .iter()
                .find(|c| c.what == format!("etcd member e{}", i + 1))
                .map_or(0, |c| c.pid());
            b.push_str(&format!("  etcd   e{}   {url}  pid {pid}\n", i + 1));
        }
        b
    };
    for (id, url, role) in &nodes {
        banner.push_str(&format!("  {id:<6}  {url}  (role {role})\n"));
    }
    let (first, first_url, _) = &nodes[0];
    banner.push_str(&format!(
        "\nDashboard: {}/ — log in with the API token\n  {}\n",
        masters[0].2, dashboard.token
    ));
    banner.push_str(&format!(
        "\nContext \"dev\" written to {} and made current.\n\n\
         Try, in another terminal:\n\
         \x20 clusterctl nodes\n\
         \x20 clusterctl drain {first} --reason deploy --wait\n\
         \x20 curl -i {first_url}\n\
         \x20 clusterctl undrain {first} --wait\n\
         \x20 clusterctl events\n",
        config_path.display()
    ));
    if masters.len() > 1 {
        banner.push_str(
            "\x20 clusterctl masters                       # who leads, each one's revision\n\
             \x20 kill -9 <the leader's pid>; clusterctl masters   # another takes over in ~2 s\n",
        );
    }
    banner.push('\n');
    crate::commands::write_out(out, &banner)?;

    shutdown_signal().await;
    crate::commands::write_out(out, "stopping the dev cluster…\n")?;
    token.cancel();
    for t in tasks {
        let _ = t.await;
    }
    // Masters before etcd, so they resign and stop cleanly.
    #[cfg(feature = "etcd")]
    for c in children.iter_mut().rev() {
        c.stop();
    }
    crate::commands::write_out(out, "stopped.\n")?;
    Ok(())
}

/// One master of `dev --masters`, in its own process: on the dev etcd
/// cluster, until SIGTERM.
#[cfg(feature = "etcd")]
pub async fn run_master(args: &crate::args::DevMasterArgs) -> Result<(), Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .log_internal_errors(false)
        .try_init();
    let grpc = bind(args.listen, "the master (gRPC)").await?;
    let http = bind(args.http_listen, "the master (HTTP)").await?;
    let url = format!("https://{}", args.listen);
    let config = cluster_master::Config {
        listen: args.listen,
        http_listen: Some(args.http_listen),
        data_dir: args.data_dir.clone(),
        down_after: Duration::from_secs(6),
        server_names: vec!["127.0.0.1".into(), "localhost".into()],
        cluster_name: "dev".into(),
        job_output_limit: 64 * 1024,
        base_domain: None,
        name_expiry: None,
        role_aliases: Default::default(),
        store: cluster_master::config::StoreConfig::Etcd(cluster_master::config::EtcdSettings {
            endpoints: args.etcd_endpoint.clone(),
            prefix: "/clusterctl/v1/".into(),
            lease_ttl: ha::LEASE_TTL,
        }),
        name: args.name.clone(),
        advertise: url,
        retention: Default::default(),
        refusal_window: Duration::from_secs(60),
        node_certificate_lifetime: cluster_master::pki::LEAF_VALIDITY,
        allow_nat: false,
        http_tls: false,
        monitor: Default::default(),
        notify: Default::default(),
    };
    let listeners = cluster_master::Listeners {
        grpc,
        http: Some(http),
    };
    cluster_master::run(listeners, config, shutdown_signal())
        .await
        .map_err(|e| Failure::partial(format!("master {} failed: {e}", args.name)))
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
