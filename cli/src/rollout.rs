//! `clusterctl rollout`: start a rolling deploy on the master and follow
//! it — a progress bar on a terminal, plain lines otherwise, one JSON
//! object per event with `-o json`. Ctrl-C only stops following: the
//! master goes on, and `rollout status ID -f` picks it up again.

use crate::args::{Output, RolloutAction, RolloutArgs};
use crate::client::{Client, RolloutRequest};
use crate::commands::{print_json, write_out};
use crate::render::AddPrintable;
use crate::targeting::targeting;
use crate::{Env, Failure};
use cluster_model::rollout::{LogLine, RolloutRecord, RolloutState};
use std::io::Write;

pub async fn rollout(
    client: &mut Client,
    a: RolloutArgs,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match a.action {
        Some(RolloutAction::Status { id, follow: true }) => {
            follow(client, &id, env, output, out, 0).await
        }
        Some(RolloutAction::Status { id, follow: false }) => {
            let rec = client.rollout(&id).await?;
            match output {
                Output::Json => print_json(out, &rec),
                Output::Table => write_out(out, &status_text(&rec)),
            }
        }
        Some(RolloutAction::Resume { id }) => {
            let rec = client.resume_rollout(&id).await?;
            follow(client, &id, env, output, out, rec.log.len()).await
        }
        Some(RolloutAction::Abort { id }) => {
            let rec = client.abort_rollout(&id).await?;
            match output {
                Output::Json => print_json(out, &rec),
                Output::Table => write_out(out, &status_text(&rec)),
            }
        }
        Some(RolloutAction::List { limit }) => {
            let list = client.rollouts(limit).await?;
            match output {
                Output::Json => print_json(out, &list),
                Output::Table => write_out(out, &list_text(&list)),
            }
        }
        None => {
            let target = a.target.expect("clap requires a target");
            let rec = client
                .start_rollout(RolloutRequest {
                    target: targeting(&a.how, std::slice::from_ref(&target))?,
                    argv: a.command,
                    batch: a.batch,
                    max_failures: a.max_failures,
                    drain_timeout: a.drain_timeout,
                    healthy_for: a.healthy_for,
                    health_timeout: a.health_timeout,
                    command_timeout: a.timeout,
                    allow_last: a.allow_last,
                })
                .await?;
            if a.detach {
                return match output {
                    Output::Json => print_json(out, &rec),
                    Output::Table => write_out(
                        out,
                        &format!(
                            "rollout {} started on {} node(s); `clusterctl rollout status {} -f` follows it\n",
                            rec.id,
                            rec.order.len(),
                            rec.id
                        ),
                    ),
                };
            }
            follow(client, &rec.id, env, output, out, 0).await
        }
    }
}

fn clock(ms: u64) -> String {
    let s = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
    )
    .to_string();
    // 2026-11-21T22:31:09.343Z → 22:31:09.343
    s.get(11..23).unwrap_or(&s).to_owned()
}

fn line(l: &LogLine) -> String {
    match l.node.as_str() {
        "" => format!("{} {}", clock(l.time_ms), l.message),
        node => format!("{} {node}: {}", clock(l.time_ms), l.message),
    }
}

/// Follows the rollout until it stops, printing each new log line once.
async fn follow(
    client: &mut Client,
    id: &str,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
    already: usize,
) -> Result<(), Failure> {
    let mut watch = client.watch_rollout(id).await?;
    let bar = (env.terminal && output == Output::Table).then(|| {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} nodes  {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    });
    let mut seen = already;
    let mut last: Option<RolloutRecord> = None;
    loop {
        let next = tokio::select! {
            r = client.next_rollout(&mut watch) => r?,
            _ = tokio::signal::ctrl_c() => {
                if let Some(pb) = &bar {
                    pb.abandon();
                }
                return Err(Failure {
                    code: 130,
                    message: format!(
                        "stopped following; rollout {id} goes on on the master (`clusterctl rollout status {id} -f`)"
                    ),
                });
            }
        };
        let Some(rec) = next else { break };
        // The log keeps its newest lines; start over if it was trimmed.
        if rec.log.len() < seen {
            seen = 0;
        }
        for l in &rec.log[seen..] {
            match (output, &bar) {
                (Output::Json, _) => {
                    let ev = serde_json::json!({
                        "rollout": rec.id, "time_ms": l.time_ms, "node": l.node, "message": l.message,
                    });
                    write_out(out, &format!("{ev}\n"))?;
                }
                (Output::Table, Some(pb)) => pb.println(line(l)),
                (Output::Table, None) => write_out(out, &format!("{}\n", line(l)))?,
            }
        }
        seen = rec.log.len();
        if let Some(pb) = &bar {
            pb.set_length(rec.order.len() as u64);
            pb.set_position(rec.count(cluster_model::rollout::NodePhase::Done) as u64);
            let busy: Vec<String> = rec
                .order
                .iter()
                .filter_map(|n| {
                    let p = rec.nodes.get(n)?;
                    (p.is_out() && *p != cluster_model::rollout::NodePhase::Failed)
                        .then(|| format!("{n} {}", p.as_str()))
                })
                .collect();
            pb.set_message(busy.join(", "));
        }
        let stopped = rec.state != RolloutState::Running;
        last = Some(rec);
        if stopped {
            break;
        }
    }
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let rec = match last {
        Some(r) => r,
        None => client.rollout(id).await?,
    };
    match output {
        Output::Json => print_json(out, &rec)?,
        Output::Table => write_out(out, &format!("\n{}", status_text(&rec)))?,
    }
    match rec.state {
        RolloutState::Succeeded => Ok(()),
        RolloutState::Running => Err(Failure::partial(format!(
            "lost track of rollout {id}; it goes on on the master (`clusterctl rollout status {id} -f`)"
        ))),
        state => Err(Failure::partial(format!(
            "rollout {id} {}{}",
            state.as_str(),
            match state {
                RolloutState::Aborted => String::new(),
                _ => format!("; fix what failed, then `clusterctl rollout resume {id}`"),
            }
        ))),
    }
}

/// Where a rollout is: its state, every node's phase, and why failures
/// failed.
pub fn status_text(rec: &RolloutRecord) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(["NODE", "PHASE", "DETAIL"]);
    for n in &rec.order {
        let phase = rec.nodes.get(n).map_or("?", |p| p.as_str());
        let detail = rec.details.get(n).cloned().unwrap_or_default();
        t.add_printable(vec![n.clone(), phase.to_owned(), detail]);
    }
    let table: String = t
        .to_string()
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    format!(
        "rollout {}: {} — {} of {} done, {} at a time, at most {} out at once\ncommand: {}\n{table}",
        rec.id,
        rec.state.as_str(),
        rec.count(cluster_model::rollout::NodePhase::Done),
        rec.order.len(),
        rec.batch_size,
        rec.max_out,
        rec.argv.join(" "),
    )
}

fn list_text(list: &[RolloutRecord]) -> String {
    if list.is_empty() {
        return "no rollouts yet\n".into();
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(["ID", "STATE", "DONE", "TARGET", "BY", "COMMAND"]);
    for r in list {
        t.add_printable(vec![
            r.id.clone(),
            r.state.as_str().to_owned(),
            format!(
                "{}/{}",
                r.count(cluster_model::rollout::NodePhase::Done),
                r.order.len()
            ),
            r.target.clone(),
            r.by.clone(),
            r.argv.join(" "),
        ]);
    }
    t.to_string()
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}
