//! `clusterctl run`: start a job, print its output as it comes, prefixed
//! per node the way Fabric does (`[web-1] out: …`, `[web-1] err: …`), then a
//! summary; exit non-zero when any node failed, timed out or was not
//! connected. Ctrl-C cancels the job on every node.

use crate::args::{GrainsRefreshArgs, Output, RunArgs};
use crate::client::{Client, Job, JobResultView, RunEvent};
use crate::commands::{print_json, write_out};
use crate::targeting::targeting;
use crate::{Failure, render};
use cluster_model::job::Builtin;
use std::collections::HashMap;
use std::io::Write;

/// Complete lines per (node, stream); what is left waits for more.
#[derive(Default)]
struct Lines {
    partial: HashMap<(String, bool), Vec<u8>>,
}

fn prefix(node: &str, stderr: bool) -> String {
    format!("[{node}] {}: ", if stderr { "err" } else { "out" })
}

impl Lines {
    fn push(&mut self, node: &str, stderr: bool, data: &[u8]) -> String {
        let buf = self.partial.entry((node.to_owned(), stderr)).or_default();
        buf.extend_from_slice(data);
        let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
            return String::new();
        };
        let rest = buf.split_off(last_nl + 1);
        let complete = std::mem::replace(buf, rest);
        String::from_utf8_lossy(&complete)
            .lines()
            .map(|l| format!("{}{l}\n", prefix(node, stderr)))
            .collect()
    }

    fn flush(&mut self, node: &str) -> String {
        let mut out = String::new();
        for stderr in [false, true] {
            if let Some(buf) = self.partial.remove(&(node.to_owned(), stderr))
                && !buf.is_empty()
            {
                out.push_str(&format!(
                    "{}{}\n",
                    prefix(node, stderr),
                    String::from_utf8_lossy(&buf)
                ));
            }
        }
        out
    }
}

pub async fn run(
    client: &mut Client,
    a: RunArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let target = targeting(&a.how, std::slice::from_ref(&a.target))?;
    let job = Job::Command(a.command);
    let stream = client.run(&target, job, a.timeout, a.batch).await?;
    follow(stream, output, out).await
}

/// `clusterctl grains refresh TARGET`: the built-in job that has each
/// agent collect its grains and facts again; each node's output says what
/// changed, and when it is done the master has them.
pub async fn refresh_facts(
    client: &mut Client,
    a: GrainsRefreshArgs,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let target = targeting(&a.how, std::slice::from_ref(&a.target))?;
    let job = Job::Builtin(Builtin::RefreshFacts);
    let stream = client.run(&target, job, a.timeout, a.batch).await?;
    follow(stream, output, out).await
}

/// Prints a started job's events as they come, then its summary.
async fn follow(
    mut stream: tonic::Streaming<cluster_proto::RunEvent>,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let table = output == Output::Table;
    let mut lines = Lines::default();
    let mut job_id = String::new();
    let mut results: Vec<JobResultView> = Vec::new();
    let mut finished = None;
    loop {
        let ev = tokio::select! {
            ev = Client::next_event(&mut stream) => ev.map_err(|mut f| {
                if f.code == Failure::UNREACHABLE && !job_id.is_empty() {
                    f.message.push_str(&format!("\n`clusterctl job {job_id}` shows what ran"));
                }
                f
            })?,
            _ = tokio::signal::ctrl_c() => {
                drop(stream);
                return Err(Failure {
                    code: 130,
                    message: format!(
                        "interrupted: job {job_id} is being cancelled on every node; `clusterctl job {job_id}` shows what ran"
                    ),
                });
            }
        };
        let Some(ev) = ev else { break };
        match ev {
            RunEvent::Started {
                job_id: id,
                matched,
                not_connected,
            } => {
                job_id = id;
                if table {
                    write_out(
                        out,
                        &format!(
                            "job {job_id}: {} node(s) matched, {} not connected\n",
                            matched.len(),
                            not_connected.len()
                        ),
                    )?;
                }
            }
            RunEvent::Output { node, stderr, data } => {
                if table {
                    write_out(out, &lines.push(&node, stderr, &data))?;
                }
            }
            RunEvent::NodeDone(r) => {
                if table {
                    let mut text = lines.flush(&r.node);
                    text.push_str(&format!("[{}] {}\n", r.node, render::job_outcome(&r)));
                    write_out(out, &text)?;
                }
                results.push(r);
            }
            RunEvent::Finished(job) => finished = Some(job),
        }
    }
    let Some(mut job) = finished else {
        return Err(Failure::partial(format!(
            "the master ended job {job_id} without a summary"
        )));
    };
    // The summary from the master carries no output; the per-node events did.
    results.sort_by(|a, b| a.node.cmp(&b.node));
    job.results = results;
    match output {
        Output::Json => print_json(out, &job)?,
        Output::Table => write_out(
            out,
            &format!("\n{}", render::job_results_table(&job.results)),
        )?,
    }
    let bad: Vec<String> = job
        .results
        .iter()
        .filter(|r| r.status != "ok")
        .map(|r| format!("{} ({})", r.node, render::job_outcome(r)))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Failure::partial(format!(
            "{} of {} nodes did not succeed: {}",
            bad.len(),
            job.results.len(),
            bad.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn output_is_printed_by_whole_lines_per_node_and_stream() {
        let mut l = Lines::default();
        assert_eq!(l.push("web-1", false, b"hel"), "");
        assert_eq!(l.push("web-2", true, b"boom\n"), "[web-2] err: boom\n");
        assert_eq!(l.push("web-1", false, b"lo\nwor"), "[web-1] out: hello\n");
        assert_eq!(l.flush("web-1"), "[web-1] out: wor\n");
        assert_eq!(l.flush("web-1"), "");
    }
}
