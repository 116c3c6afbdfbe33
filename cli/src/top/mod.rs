//! `clusterctl top`: every node's usage at a glance, like glances or htop
//! for a fleet. On a terminal a full-screen view refreshed every
//! `--interval`, sorted and filtered by keys (`screen`); otherwise, or
//! with `--once`, one table or (`-o json`) one JSON array of rows.
//!
//! - `rows` — the rows, their levels, counts, sorts and text, pure.
//! - `app` — what the screen shows and what each key does, pure.
//! - `screen` — the terminal, the key reader, the fetcher, drawing.

mod app;
pub mod rows;
mod screen;

use crate::args::{Output, TopArgs};
use crate::client::Client;
use crate::commands::{print_json, write_out};
use crate::targeting::targeting;
use crate::{Env, Failure};
use std::io::Write;

pub async fn run(
    client: &mut Client,
    a: TopArgs,
    env: &Env,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let target = targeting(&a.how, &a.target)?;
    if !a.once && !env.terminal {
        eprintln!("stdout is not a terminal: printing the table once, as with --once");
    }
    if !(a.once || !env.terminal || output == Output::Json) {
        return screen::run(client, target, a.target.join(" "), a.interval).await;
    }
    let nodes = client.nodes(&target).await?;
    let mut rows: Vec<rows::Row> = nodes
        .iter()
        .map(|n| rows::Row::of(n, n.levels.clone().unwrap_or_default()))
        .collect();
    rows::sort(&mut rows, rows::Sort::Cpu, false);
    match output {
        Output::Json => print_json(out, &rows),
        Output::Table => {
            let c = rows::counts(&rows);
            write_out(
                out,
                &format!(
                    "nodes {}  up {}  down {}  drained {}  master {}\n{}",
                    c.total,
                    c.up,
                    c.down,
                    c.drained,
                    client.master(),
                    rows::text(&rows)
                ),
            )
        }
    }
}
