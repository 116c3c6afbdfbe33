//! `events --follow` and `nodes --watch`: what is there, then each
//! change as the master pushes it, until interrupted (exit 130). Tables
//! for people — the usual table, then one line per event or changed
//! node — and one JSON object a line (NDJSON) with `-o json`. A break in
//! the stream is said on stderr; the follow resumes by itself (see
//! `client::follow`).

use crate::args::Output;
use crate::client::{Client, Connection, EventsBatch, NodesChange, Targeting};
use crate::commands::write_out;
use crate::{Failure, render};
use cluster_model::watch::{Seen, Watched};
use std::collections::BTreeMap;
use std::io::Write;

fn interrupted() -> Failure {
    Failure {
        code: 130,
        message: "interrupted".into(),
    }
}

/// Said on stderr: the stream broke, or is open again.
fn notice(c: Connection) {
    match c {
        Connection::Lost { master, why } => {
            eprintln!("lost the master {master} ({why}); reconnecting")
        }
        Connection::Resumed { master } => eprintln!("resumed on {master}"),
    }
}

fn json_line<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(value).expect("views always serialise");
    write_out(out, &format!("{text}\n"))
}

pub async fn events(
    client: &mut Client,
    node: Option<&str>,
    limit: u32,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut first = true;
    let on = |batch: EventsBatch| -> Result<(), Failure> {
        let table_first = std::mem::take(&mut first) && output == Output::Table;
        if table_first {
            return write_out(out, &render::events_table(&batch.events));
        }
        for e in &batch.events {
            match output {
                Output::Json => json_line(out, e)?,
                Output::Table => write_out(out, &format!("{}\n", render::event_line(e)))?,
            }
        }
        Ok(())
    };
    tokio::select! {
        r = client.follow_events(node, limit, on, notice) => r,
        _ = tokio::signal::ctrl_c() => Err(interrupted()),
    }
}

/// What a node watch has printed: every node's watched part, and names
/// for the ids of nodes that go.
#[derive(Default)]
struct Shown {
    seen: Seen,
    names: BTreeMap<String, String>,
    /// Whether the first table is out.
    started: bool,
}

pub async fn nodes(
    client: &mut Client,
    target: &Targeting,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut shown = Shown::default();
    let on = |change: NodesChange| -> Result<(), Failure> {
        let first = !shown.started;
        shown.started = true;
        if first && output == Output::Table {
            let views: Vec<_> = change.nodes.iter().map(|n| n.view.clone()).collect();
            write_out(out, &render::nodes_table(&views, crate::commands::now_ms()))?;
        }
        // After a reconnection the snapshot is compared with what was
        // shown: only what changed in the gap is printed.
        let mut gone = change.gone.clone();
        if change.snapshot && !first {
            let ids: std::collections::BTreeSet<&str> =
                change.nodes.iter().map(|n| n.view.id.as_str()).collect();
            gone.extend(
                shown
                    .seen
                    .keys()
                    .filter(|id| !ids.contains(id.as_str()))
                    .cloned(),
            );
        }
        for n in &change.nodes {
            let before: Option<&Watched> = shown.seen.get(&n.view.id);
            let news = before != Some(&n.watched);
            shown.seen.insert(n.view.id.clone(), n.watched.clone());
            shown.names.insert(n.view.id.clone(), n.view.name.clone());
            if !news || (first && output == Output::Table) {
                continue;
            }
            match output {
                Output::Json => json_line(out, &n.view)?,
                Output::Table => write_out(out, &format!("{}\n", render::node_line(&n.view)))?,
            }
        }
        for id in gone {
            shown.seen.remove(&id);
            let name = shown.names.remove(&id).unwrap_or_else(|| id.clone());
            match output {
                Output::Json => json_line(
                    out,
                    &serde_json::json!({ "id": id, "name": name, "gone": true }),
                )?,
                Output::Table => write_out(out, &format!("{}\n", render::gone_line(&name)))?,
            }
        }
        Ok(())
    };
    tokio::select! {
        r = client.watch_nodes(target, on, notice) => r,
        _ = tokio::signal::ctrl_c() => Err(interrupted()),
    }
}
