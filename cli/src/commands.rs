//! What each subcommand does: resolve the master, call it, render.

use crate::args::{
    CaCommand, Cli, Command, FactsArgs, GrainsAction, GrainsArgs, KeysCommand, LabelArgs,
    NodegroupCommand, NodesAction, Output, TokenCommand, UserAddArgs, UserCommand, UserRole,
};
use crate::client::{Client, KeyDecision};
use crate::context::{Context, Target};
use crate::targeting::targeting;
use crate::{Env, Failure, context, render};
use std::io::Write;

pub async fn dispatch(cli: Cli, env: &Env, out: &mut dyn Write) -> Result<(), Failure> {
    let output = cli.output;
    match &cli.command {
        #[cfg(feature = "dev")]
        Command::Dev(args) => return crate::dev::run(args, env, out).await,
        #[cfg(feature = "etcd")]
        Command::DevMaster(args) => return crate::dev::run_master(args).await,
        #[cfg(not(feature = "etcd"))]
        Command::DevMaster(_) => {
            return Err(Failure::bad_input(
                "this clusterctl was built without etcd support (the cargo feature \"etcd\")",
            ));
        }
        #[cfg(not(feature = "dev"))]
        Command::Dev(_) => {
            return Err(Failure::bad_input(
                "this clusterctl was built without `dev` (the cargo feature \"dev\")",
            ));
        }
        Command::Target(args) => return crate::targeting::offline_target(args, output, out),
        _ => {}
    }
    let env = &Env {
        config_file: cli.config_file.clone().or_else(|| env.config_file.clone()),
        ..env.clone()
    };
    let target = context::resolve(cli.master.as_deref(), cli.context.as_deref(), env)?;
    let mut client = Client::connect(&target).await?;
    match cli.command {
        Command::Nodes(a) if a.action.is_some() => match a.action.expect("checked") {
            NodesAction::Remove { node } => {
                client.remove_node(&node).await?;
                write_out(out, &format!("removed {node}; its name is free\n"))
            }
        },
        Command::Nodes(a) if a.watch => {
            let target = targeting(&a.how, &a.target)?;
            crate::follow::nodes(&mut client, &target, output, out).await
        }
        Command::Nodes(a) => {
            let nodes = client.nodes(&targeting(&a.how, &a.target)?).await?;
            match output {
                Output::Json => print_json(out, &nodes),
                Output::Table => write_out(out, &render::nodes_table(&nodes, now_ms())),
            }
        }
        Command::Grains(a) => grains(&mut client, a, output, out).await,
        Command::Facts(a) => facts(&mut client, a, output, out).await,
        Command::Drain(a) => crate::drain::drain(&mut client, a, env, output, out).await,
        Command::Upstream(c) => crate::balancing::upstream(&mut client, c, output, out).await,
        Command::Route(c) => crate::balancing::route(&mut client, c, output, out).await,
        Command::Rollout(a) => crate::rollout::rollout(&mut client, a, env, output, out).await,
        Command::Plan { file } => crate::declare::plan(&mut client, &file, env, output, out).await,
        Command::Apply { file } => {
            crate::declare::apply(&mut client, &file, env, output, out).await
        }
        Command::Export { file } => {
            crate::declare::export(&mut client, file.as_deref(), output, out).await
        }
        Command::Undrain(a) => crate::drain::undrain(&mut client, a, env, output, out).await,
        Command::Masters => {
            let masters = client.masters().await?;
            match output {
                Output::Json => print_json(out, &masters),
                Output::Table => write_out(out, &render::masters_text(&masters)),
            }
        }
        Command::Usage(a) => crate::usage::usage(&mut client, &a, output, out).await,
        Command::Alerts(a) => {
            crate::usage::alerts(&mut client, &targeting(&a.how, &a.target)?, output, out).await
        }
        Command::Events(a) if a.follow => {
            crate::follow::events(&mut client, a.node.as_deref(), a.limit, output, out).await
        }
        Command::Top(a) => crate::top::run(&mut client, a, env, output, out).await,
        Command::Events(a) => {
            let events = client.events(a.node.as_deref(), a.limit).await?;
            match output {
                Output::Json => print_json(out, &events),
                Output::Table => write_out(out, &render::events_table(&events)),
            }
        }
        Command::Token(TokenCommand::Create(a)) if a.api => {
            let name = a.name.unwrap_or_default();
            let t = client
                .create_token(a.ttl, 0, Vec::new(), Some((name, a.role)))
                .await?;
            match output {
                Output::Json => print_json(out, &t),
                // The token alone on its first line: `| head -1` takes it.
                Output::Table => write_out(
                    out,
                    &format!(
                        "{}\n\nholder:   {}\nrole:     {}\nexpires:  {}\n\n\
                         Shown once: only its hash is kept. Use it as\n  \
                         curl -H \"Authorization: Bearer $TOKEN\" http://MASTER:HTTP_PORT/api/v1/nodes\n\
                         or log in with it on the dashboard. `clusterctl token delete {}` withdraws it.\n",
                        t.token,
                        t.holder.as_deref().unwrap_or_default(),
                        t.role.as_deref().unwrap_or_default(),
                        t.expires,
                        t.token.split('.').next().unwrap_or_default(),
                    ),
                ),
            }
        }
        Command::Token(TokenCommand::Create(a)) => {
            let ttl = a.ttl.unwrap_or(std::time::Duration::from_secs(3600));
            let t = client
                .create_token(Some(ttl), a.uses.unwrap_or(0), a.roles, None)
                .await?;
            match output {
                Output::Json => print_json(out, &t),
                Output::Table => write_out(
                    out,
                    &format!(
                        "token:           {}\nca fingerprint:  {}\nexpires:         {}\n\n\
                         Join a node with (the token in the environment, not in `ps`):\n  CLUSTERCTL_JOIN_TOKEN={} cluster-agent --master {} --ca-fingerprint {}\n",
                        t.token,
                        t.ca_fingerprint,
                        t.expires,
                        t.token,
                        target.masters.join(","),
                        t.ca_fingerprint
                    ),
                ),
            }
        }
        Command::Token(t @ (TokenCommand::List | TokenCommand::Delete(_))) => {
            let tokens = match t {
                TokenCommand::Delete(a) => client.delete_tokens(&a.ids).await?,
                _ => client.tokens().await?,
            };
            match output {
                Output::Json => print_json(out, &tokens),
                Output::Table => write_out(out, &render::tokens_table(&tokens)),
            }
        }
        Command::Keys(k) => {
            let keys = match k {
                KeysCommand::List => client.keys().await?,
                KeysCommand::Accept(n) => {
                    client
                        .decide_keys(&n.nodes, KeyDecision::Accept, n.fingerprint.as_deref())
                        .await?
                }
                KeysCommand::Reject(n) => {
                    client
                        .decide_keys(&n.nodes, KeyDecision::Reject, n.fingerprint.as_deref())
                        .await?
                }
                KeysCommand::Delete(n) => {
                    client
                        .decide_keys(&n.nodes, KeyDecision::Delete, n.fingerprint.as_deref())
                        .await?
                }
            };
            match output {
                Output::Json => print_json(out, &keys),
                Output::Table => write_out(out, &render::keys_table(&keys)),
            }
        }
        Command::User(UserCommand::Add(a)) => add_user(&mut client, &target, a, output, out).await,
        Command::Ca(CaCommand::Status) => {
            let certificates = client.certificates().await?;
            match output {
                Output::Json => print_json(out, &certificates),
                Output::Table => write_out(
                    out,
                    &render::certificates_table(&certificates, cluster_model::time::now_ms()),
                ),
            }
        }
        Command::User(UserCommand::List) => {
            let users = client.users().await?;
            match output {
                Output::Json => print_json(out, &users),
                Output::Table => write_out(out, &render::users_table(&users)),
            }
        }
        Command::User(UserCommand::Revoke(a)) => {
            let user = client.revoke_user(&a.name).await?;
            match output {
                Output::Json => print_json(out, &user),
                Output::Table => write_out(out, &render::users_table(&[user])),
            }
        }
        Command::Run(a) => crate::run::run(&mut client, a, output, out).await,
        Command::Jobs(a) => {
            let jobs = client.jobs(a.limit).await?;
            match output {
                Output::Json => print_json(out, &jobs),
                Output::Table => write_out(out, &render::jobs_table(&jobs)),
            }
        }
        Command::Job(a) => {
            let job = client.job(&a.id).await?;
            match output {
                Output::Json => print_json(out, &job),
                Output::Table => write_out(out, &render::job_text(&job)),
            }
        }
        Command::Label(a) => label(&mut client, a, output, out).await,
        Command::Promote { node } => {
            let renames = client.promote(&node).await?;
            print_renames(&renames, output, out)
        }
        Command::Rename { node, new_name } => {
            let renames = client.rename(&node, &new_name).await?;
            print_renames(&renames, output, out)
        }
        Command::Hosts { node } => {
            let lines = client.hosts(node.as_deref()).await?;
            match output {
                Output::Json => print_json(
                    out,
                    &lines
                        .iter()
                        .map(|(a, n)| serde_json::json!({ "address": a, "names": n }))
                        .collect::<Vec<_>>(),
                ),
                Output::Table => {
                    let text: String = lines
                        .iter()
                        .map(|(a, n)| format!("{a}\t{}\n", n.join(" ")))
                        .collect();
                    write_out(out, &text)
                }
            }
        }
        Command::Nodegroup(g) => match g {
            NodegroupCommand::List => {
                let groups = client.groups().await?;
                match output {
                    Output::Json => print_json(out, &groups),
                    Output::Table => {
                        let text: String =
                            groups.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
                        write_out(out, &text)
                    }
                }
            }
            NodegroupCommand::Set { name, expr } => client.set_group(&name, &expr).await,
            NodegroupCommand::Rm { name } => client.set_group(&name, "").await,
        },
        Command::Dev(_) | Command::DevMaster(_) | Command::Target(_) => {
            unreachable!("handled above")
        }
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
    let (key_pem, csr_pem) =
        crate::keys::new_key_and_csr(&a.name).map_err(|e| Failure::partial(e.to_string()))?;
    let (cert_pem, ca_pem) = client
        .add_user(
            &a.name,
            match a.role {
                UserRole::Admin => cluster_model::Role::Admin,
                UserRole::Operator => cluster_model::Role::Operator,
                UserRole::Read => cluster_model::Role::Read,
            },
            csr_pem,
        )
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
            Context::for_masters(
                &target.masters,
                Some(ca.clone()),
                Some(cert.clone()),
                Some(key.clone()),
            ),
        )]
        .into(),
    };
    context::save(&config, &file)?;
    let role = match a.role {
        UserRole::Admin => "admin",
        UserRole::Operator => "operator",
        UserRole::Read => "read",
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
    let target = match (a.action, a.target) {
        (Some(GrainsAction::Refresh(r)), _) => {
            return crate::run::refresh_facts(client, r, output, out).await;
        }
        (None, Some(target)) => target,
        (None, None) => return Err(Failure::bad_input("grains: a target is required")),
    };
    let nodes = client
        .nodes(&targeting(&a.how, std::slice::from_ref(&target))?)
        .await?;
    let at = Lookup {
        what: "grain",
        of: |n| &n.grains,
        find: render::grain_at,
    };
    at.show(&nodes, a.key.as_deref(), output, out)
}

async fn facts(
    client: &mut Client,
    a: FactsArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut nodes = client
        .nodes(&targeting(&a.how, std::slice::from_ref(&a.target))?)
        .await?;
    // The stored facts hold only what stays put; load, free memory and
    // space, uptime come from the last usage report, now.
    for n in &mut nodes {
        if let (serde_json::Value::Object(facts), Some(u)) = (&mut n.facts, &n.raw_usage) {
            cluster_model::facts::with_usage(facts, u);
        }
    }
    let at = Lookup {
        what: "fact",
        of: |n| &n.facts,
        find: render::fact_at,
    };
    at.show(&nodes, a.path.as_deref(), output, out)
}

/// Where `grains` and `facts` find a node's values and one of them.
struct Lookup {
    what: &'static str,
    of: fn(&crate::client::NodeView) -> &serde_json::Value,
    find: for<'v> fn(&'v serde_json::Value, &str) -> Option<&'v serde_json::Value>,
}

impl Lookup {
    /// Every node's values, or the one at `key`; one node: just the value
    /// (handy in scripts, as `facter PATH` prints it); more: by node.
    fn show(
        &self,
        nodes: &[crate::client::NodeView],
        key: Option<&str>,
        output: Output,
        out: &mut dyn Write,
    ) -> Result<(), Failure> {
        let mut found = serde_json::Map::new();
        for node in nodes {
            let all = (self.of)(node);
            let value = match key {
                None => Some(all),
                Some(key) => (self.find)(all, key),
            };
            match (value, key) {
                (Some(v), _) => {
                    found.insert(node.name.clone(), v.clone());
                }
                (None, Some(key)) if nodes.len() == 1 => {
                    return Err(Failure::bad_input(format!(
                        "node {} has no {} {key:?}",
                        node.name, self.what
                    )));
                }
                (None, _) => {
                    found.insert(node.name.clone(), serde_json::Value::Null);
                }
            }
        }
        match output {
            Output::Json => print_json(out, &found),
            Output::Table if nodes.len() == 1 => {
                write_out(out, &render::grains_text(&found[&nodes[0].name]))
            }
            Output::Table => {
                write_out(out, &render::grains_text(&serde_json::Value::Object(found)))
            }
        }
    }
}

async fn label(
    client: &mut Client,
    a: LabelArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut labels = std::collections::HashMap::new();
    for l in &a.labels {
        if let Some((k, v)) = l.split_once('=') {
            if v.is_empty() {
                return Err(Failure::bad_input(format!(
                    "label {l:?}: empty value (KEY- removes a label)"
                )));
            }
            labels.insert(k.to_owned(), v.to_owned());
        } else if let Some(k) = l.strip_suffix('-') {
            labels.insert(k.to_owned(), String::new());
        } else {
            return Err(Failure::bad_input(format!(
                "label {l:?}: expected KEY=VALUE, or KEY- to remove"
            )));
        }
    }
    let target = targeting(&a.how, std::slice::from_ref(&a.target))?;
    let nodes = client.set_labels(&target, labels).await?;
    match output {
        Output::Json => print_json(out, &nodes),
        Output::Table => write_out(out, &format!("labelled {}\n", nodes.join(", "))),
    }
}

fn print_renames(
    renames: &[(String, String)],
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match output {
        Output::Json => print_json(
            out,
            &renames
                .iter()
                .map(|(f, t)| serde_json::json!({ "from": f, "to": t }))
                .collect::<Vec<_>>(),
        ),
        Output::Table => write_out(
            out,
            &renames
                .iter()
                .map(|(f, t)| format!("{f} → {t}\n"))
                .collect::<String>(),
        ),
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
