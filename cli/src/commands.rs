//! What each subcommand does: resolve the master, call it, render.

use crate::args::{
    Cli, Command, DrainArgs, GrainsArgs, KeysCommand, Output, TokenCommand, UndrainArgs,
    UserAddArgs, UserCommand, UserRole, WaitArgs,
};
use crate::client::{Client, KeyDecision, NodeResult};
use crate::context::{Context, Target};
use crate::{Env, Failure, context, dev, render};
use std::io::Write;

pub async fn dispatch(cli: Cli, env: &Env, out: &mut dyn Write) -> Result<(), Failure> {
    let output = cli.output;
    if let Command::Dev(args) = &cli.command {
        return dev::run(args, env, out).await;
    }
    let env = &Env {
        config_file: cli.config_file.clone().or_else(|| env.config_file.clone()),
        ..env.clone()
    };
    let target = context::resolve(cli.master.as_deref(), cli.context.as_deref(), env)?;
    let mut client = Client::connect(&target).await?;
    match cli.command {
        Command::Nodes(a) => {
            let nodes = client.nodes(&a.names).await?;
            match output {
                Output::Json => print_json(out, &nodes),
                Output::Table => write_out(out, &render::nodes_table(&nodes, now_ms())),
            }
        }
        Command::Grains(a) => grains(&mut client, a, output, out).await,
        Command::Drain(a) => drain(&mut client, a, env, output, out).await,
        Command::Undrain(a) => undrain(&mut client, a, env, output, out).await,
        Command::Events(a) => {
            let events = client.events(a.node.as_deref(), a.limit).await?;
            match output {
                Output::Json => print_json(out, &events),
                Output::Table => write_out(out, &render::events_table(&events)),
            }
        }
        Command::Token(TokenCommand::Create(a)) => {
            let t = client
                .create_token(a.ttl, a.uses.unwrap_or(0), a.roles)
                .await?;
            match output {
                Output::Json => print_json(out, &t),
                Output::Table => write_out(
                    out,
                    &format!(
                        "token:           {}\nca fingerprint:  {}\nexpires:         {}\n\n\
                         Join a node with:\n  cluster-agent --master {} --token {} --ca-fingerprint {}\n",
                        t.token,
                        t.ca_fingerprint,
                        t.expires,
                        target.master,
                        t.token,
                        t.ca_fingerprint
                    ),
                ),
            }
        }
        Command::Keys(k) => {
            let keys = match k {
                KeysCommand::List => client.keys().await?,
                KeysCommand::Accept(n) => client.decide_keys(&n.nodes, KeyDecision::Accept).await?,
                KeysCommand::Reject(n) => client.decide_keys(&n.nodes, KeyDecision::Reject).await?,
                KeysCommand::Delete(n) => client.decide_keys(&n.nodes, KeyDecision::Delete).await?,
            };
            match output {
                Output::Json => print_json(out, &keys),
                Output::Table => write_out(out, &render::keys_table(&keys)),
            }
        }
        Command::User(UserCommand::Add(a)) => add_user(&mut client, &target, a, output, out).await,
        Command::Dev(_) => unreachable!("handled above"),
    }
}

/// Makes the user's key here, has the master sign it, and writes the files
/// and a config file using them.
async fn add_user(
    client: &mut Client,
    target: &Target,
    a: UserAddArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (key_pem, csr_pem) = cluster_master::pki::new_key_and_csr(&a.name)
        .map_err(|e| Failure::partial(e.to_string()))?;
    let (cert_pem, ca_pem) = client
        .add_user(&a.name, a.role == UserRole::Admin, csr_pem)
        .await?;
    let dir = &a.out;
    let io =
        |e: std::io::Error| Failure::partial(format!("cannot write into {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let dir = std::fs::canonicalize(dir).map_err(io)?;
    let (key, cert, ca, config) = (
        dir.join(format!("{}.key", a.name)),
        dir.join(format!("{}.crt", a.name)),
        dir.join("ca.crt"),
        dir.join(format!("{}.toml", a.name)),
    );
    let write = |path: &std::path::Path, text: &str, mode: u32| {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| Failure::partial(format!("cannot write {}: {e}", path.display())))
    };
    write(&key, &key_pem, 0o600)?;
    write(&cert, &cert_pem, 0o644)?;
    write(&ca, &ca_pem, 0o644)?;
    let file = context::ConfigFile {
        current_context: Some(a.name.clone()),
        contexts: [(
            a.name.clone(),
            Context {
                master: target.master.clone(),
                ca: Some(ca.clone()),
                cert: Some(cert.clone()),
                key: Some(key.clone()),
            },
        )]
        .into(),
    };
    context::save(&config, &file)?;
    let role = match a.role {
        UserRole::Admin => "admin",
        UserRole::Operator => "operator",
    };
    match output {
        Output::Json => print_json(
            out,
            &serde_json::json!({ "name": a.name, "role": role, "key": key, "cert": cert, "ca": ca, "config": config }),
        ),
        Output::Table => write_out(
            out,
            &format!(
                "{} is now a cluster {role}.\n  key:    {}\n  cert:   {}\n  ca:     {}\n  config: {}\nHand over the files; they use them with `clusterctl --config-file {}`.\n",
                a.name,
                key.display(),
                cert.display(),
                ca.display(),
                config.display(),
                config.display()
            ),
        ),
    }
}

async fn grains(
    client: &mut Client,
    a: GrainsArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let node = client.nodes(std::slice::from_ref(&a.node)).await?.remove(0);
    let value = match &a.key {
        None => &node.grains,
        Some(key) => render::grain_at(&node.grains, key).ok_or_else(|| {
            Failure::bad_input(format!("node {} has no grain {key:?}", node.name))
        })?,
    };
    match output {
        Output::Json => print_json(out, &serde_json::json!({ node.name.clone(): value })),
        Output::Table => write_out(out, &render::grains_text(value)),
    }
}

async fn drain(
    client: &mut Client,
    a: DrainArgs,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let reason = a.reason.unwrap_or_else(|| "drained with clusterctl".into());
    let results = client
        .set_offline(&a.names, true, &reason, &env.user, wait(&a.wait))
        .await?;
    report("drained", &results, output, out)
}

async fn undrain(
    client: &mut Client,
    a: UndrainArgs,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let results = client
        .set_offline(&a.names, false, "", &env.user, wait(&a.wait))
        .await?;
    report("in service", &results, output, out)
}

fn wait(w: &WaitArgs) -> Option<std::time::Duration> {
    w.wait.then_some(w.timeout)
}

/// Prints per-node results; fails (exit 1) naming every node that did not
/// acknowledge.
fn report(
    verb: &str,
    results: &[NodeResult],
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match output {
        Output::Json => print_json(out, &results)?,
        Output::Table => write_out(out, &render::results_lines(verb, results))?,
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.status, "timed out" | "not connected" | "unknown"))
        .map(|r| format!("{} ({})", r.name, r.status))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::partial(format!(
            "{} of {} node{} did not acknowledge: {}",
            failed.len(),
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            failed.join(", ")
        )))
    }
}

pub fn print_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).expect("views always serialise");
    write_out(out, &format!("{text}\n"))
}

pub fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Failure::partial(format!("cannot write output: {e}")))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
