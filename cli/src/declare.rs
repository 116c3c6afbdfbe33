//! `clusterctl plan | apply | export`: the whole cluster in one TOML file.
//! The file is read here (every problem with its line); the master checks
//! it again against the live cluster and applies it in one change.

use crate::args::Output;
use crate::client::Client;
use crate::commands::{print_json, write_out};
use crate::{Env, Failure};
use cluster_model::clusterfile::{self, Change, ChangeKind, DesiredCluster};
use cluster_model::limits::MESSAGE_MAX_BYTES;
use std::io::Write;
use std::path::Path;

/// A file too big for the masters' message limit, refused before it is
/// read or parsed.
fn too_big(path: &Path, bytes: usize, what: &str) -> Failure {
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    Failure::bad_input(format!(
        "{} is {:.1} MiB{what}; a cluster file may be at most {:.0} MiB (the masters' message limit); nothing was applied",
        path.display(),
        mib(bytes),
        mib(MESSAGE_MAX_BYTES)
    ))
}

fn read(path: &Path) -> Result<(String, DesiredCluster), Failure> {
    let cannot =
        |e: std::io::Error| Failure::bad_input(format!("cannot read {}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > MESSAGE_MAX_BYTES as u64 {
        return Err(too_big(path, size as usize, ""));
    }
    let text = std::fs::read_to_string(path).map_err(cannot)?;
    let desired = clusterfile::parse(&text).map_err(|errors| {
        Failure::bad_input(format!(
            "{} has {} problem{}; nothing was applied:\n{}",
            path.display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors
                .iter()
                .map(|e| match e.line {
                    Some(l) => format!("  {}:{l}: {}", path.display(), e.message),
                    None => format!("  {}: {}", path.display(), e.message),
                })
                .collect::<Vec<_>>()
                .join("\n")
        ))
    })?;
    // As sent (JSON), with room for the rest of the message.
    let sent = serde_json::to_string(&desired).map_or(0, |j| j.len()) + 1024;
    if sent > MESSAGE_MAX_BYTES {
        return Err(too_big(path, sent, " as sent"));
    }
    Ok((text, desired))
}

/// The master's refusal, with each problem placed at its line in the file.
fn placed(path: &Path, text: &str, f: Failure) -> Failure {
    let lines = clusterfile::locate(text);
    let message = f
        .message
        .lines()
        .map(|l| {
            let line = l
                .split_once(": ")
                .and_then(|(place, _)| lines.get(place))
                .map(|n| format!("{}:{n}: ", path.display()))
                .unwrap_or_default();
            format!("  {line}{l}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    Failure {
        code: f.code,
        message: format!(
            "the master refused {}; nothing was applied:\n{message}",
            path.display()
        ),
    }
}

fn changes_text(changes: &[Change], colour: bool) -> String {
    if changes.is_empty() {
        return "no changes: the cluster matches the file\n".into();
    }
    let mut text: String = changes
        .iter()
        .map(|c| {
            let line = c.to_string();
            if !colour {
                return format!("{line}\n");
            }
            let code = match c.kind {
                ChangeKind::Add => "32",
                ChangeKind::Change => "33",
                ChangeKind::Remove => "31",
            };
            format!("\x1b[{code}m{line}\x1b[0m\n")
        })
        .collect();
    let count = |k| changes.iter().filter(|c| c.kind == k).count();
    text.push_str(&format!(
        "{} to add, {} to change, {} to remove\n",
        count(ChangeKind::Add),
        count(ChangeKind::Change),
        count(ChangeKind::Remove)
    ));
    text
}

pub async fn plan(
    client: &mut Client,
    path: &Path,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (text, desired) = read(path)?;
    let changes = client
        .apply(&desired, true)
        .await
        .map_err(|f| placed(path, &text, f))?;
    match output {
        Output::Json => print_json(out, &changes),
        Output::Table => write_out(out, &changes_text(&changes, env.terminal)),
    }
}

pub async fn apply(
    client: &mut Client,
    path: &Path,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (text, desired) = read(path)?;
    let changes = client
        .apply(&desired, false)
        .await
        .map_err(|f| placed(path, &text, f))?;
    match output {
        Output::Json => print_json(out, &changes),
        Output::Table => {
            let mut t = changes_text(&changes, env.terminal);
            if !changes.is_empty() {
                t = t
                    .replace(" to add, ", " added, ")
                    .replace(" to change, ", " changed, ")
                    .replace(" to remove\n", " removed\n");
            }
            write_out(out, &t)
        }
    }
}

pub async fn export(
    client: &mut Client,
    file: Option<&Path>,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let desired = client.export().await?;
    if output == Output::Json {
        return print_json(out, &desired);
    }
    let text = clusterfile::to_toml(&desired);
    match file {
        Some(p) => {
            std::fs::write(p, &text)
                .map_err(|e| Failure::partial(format!("cannot write {}: {e}", p.display())))?;
            write_out(out, &format!("wrote {}\n", p.display()))
        }
        None => write_out(out, &text),
    }
}
