//! What each subcommand does: resolve the master, call it, render.

use crate::args::{Cli, Command, DrainArgs, GrainsArgs, Output, UndrainArgs, WaitArgs};
use crate::client::{Client, NodeResult};
use crate::{Env, Failure, context, dev, render};
use std::io::Write;

pub async fn dispatch(cli: Cli, env: &Env, out: &mut dyn Write) -> Result<(), Failure> {
    let output = cli.output;
    if let Command::Dev(args) = &cli.command {
        return dev::run(args, env, out).await;
    }
    let target = context::resolve(cli.master.as_deref(), cli.context.as_deref(), env)?;
    let mut client = Client::connect(&target.master, &target.origin).await?;
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
        Command::Dev(_) => unreachable!("handled above"),
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
