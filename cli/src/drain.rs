//! `drain` and `undrain`: one call to the master that stores the change
//! and, with `--wait`, follows the nodes until they are really out of
//! rotation (or back in) — printing what is still pending as it goes, and
//! how it ended.

use crate::args::{DrainArgs, Output, UndrainArgs, WaitArgs};
use crate::client::{Client, DrainAsk, NodeResult};
use crate::commands::{print_json, write_out};
use crate::targeting::targeting;
use crate::{Env, Failure, render};
use cluster_model::rotation::DrainEvent;
use std::io::Write;

pub async fn drain(
    client: &mut Client,
    a: DrainArgs,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let reason = a.reason.unwrap_or_else(|| "drained with clusterctl".into());
    let target = targeting(&a.how, &a.names)?;
    let verb = if a.maint { "in maintenance" } else { "drained" };
    let ask = DrainAsk {
        target: &target,
        offline: true,
        maintenance: a.maint,
        reason: &reason,
        by: &env.user,
        wait: wait(&a.wait),
    };
    follow(
        client,
        ask,
        verb,
        "out of rotation",
        "still in rotation",
        output,
        out,
    )
    .await
}

pub async fn undrain(
    client: &mut Client,
    a: UndrainArgs,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let target = targeting(&a.how, &a.names)?;
    let ask = DrainAsk {
        target: &target,
        offline: false,
        maintenance: false,
        reason: "",
        by: &env.user,
        wait: wait(&a.wait),
    };
    let (done, pending) = ("back in rotation", "not back in rotation");
    follow(client, ask, "in service", done, pending, output, out).await
}

/// Runs a drain or undrain and shows it: each node's result, with
/// `--wait` what is still pending while it is, and how it ended. Fails
/// (exit 1) naming every node that did not acknowledge, or what was still
/// pending at the deadline.
async fn follow(
    client: &mut Client,
    ask: DrainAsk<'_>,
    verb: &str,
    done_word: &str,
    pending_word: &str,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let waiting = ask.wait;
    let table = output == Output::Table;
    let mut results: Vec<NodeResult> = Vec::new();
    let mut ended: Option<(bool, Vec<String>, u64)> = None;
    client
        .drain(ask, |event| {
            match event {
                DrainEvent::Stored { results: r, .. } => {
                    results = r.into_iter().map(NodeResult::from).collect();
                }
                DrainEvent::Applied { .. } => {}
                DrainEvent::Pending { pending, .. } => {
                    if table && !pending.is_empty() {
                        let text: String = pending
                            .iter()
                            .map(|p| format!("  waiting: {p}\n"))
                            .collect();
                        write_out(out, &text)?;
                    }
                }
                DrainEvent::Done {
                    complete,
                    pending,
                    elapsed_ms,
                    results: r,
                } => {
                    results = r.into_iter().map(NodeResult::from).collect();
                    let pending = pending.iter().map(ToString::to_string).collect();
                    ended = Some((complete, pending, elapsed_ms));
                }
            }
            Ok(())
        })
        .await?;
    if waiting.is_some() && ended.is_none() {
        return Err(Failure::partial(
            "the master ended the drain without saying how it ended",
        ));
    }
    let names: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
    match output {
        Output::Json => match &ended {
            None => print_json(out, &results)?,
            Some((complete, pending, elapsed_ms)) => print_json(
                out,
                &serde_json::json!({
                    "results": results,
                    "complete": complete,
                    "pending": pending,
                    "seconds": *elapsed_ms as f64 / 1000.0,
                }),
            )?,
        },
        Output::Table => write_out(out, &render::results_lines(verb, &results))?,
    }
    not_acknowledged(&results)?;
    let Some((complete, pending, elapsed_ms)) = ended else {
        return Ok(());
    };
    if !complete {
        return Err(Failure::partial(format!(
            "{pending_word} after {}: {}",
            humantime::format_duration(waiting.unwrap_or_default()),
            pending.join("; ")
        )));
    }
    if table {
        let secs = elapsed_ms as f64 / 1000.0;
        write_out(
            out,
            &format!("{done_word}: {} ({secs:.2}s)\n", names.join(", ")),
        )?;
    }
    Ok(())
}

fn wait(w: &WaitArgs) -> Option<std::time::Duration> {
    w.wait.then_some(w.timeout)
}

/// Fails (exit 1) naming every node that did not acknowledge.
fn not_acknowledged(results: &[NodeResult]) -> Result<(), Failure> {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.status.is_failure())
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
