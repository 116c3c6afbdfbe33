//! External facts, as Facter has them: the files of one directory
//! (`facts_dir`, `/etc/clusterctl/facts.d` by default), each a source of
//! top-level facts that [`collect`] gathers into [`ExternalFacts`].
//!
//! - An executable (any execute bit, whatever its name) is run directly,
//!   no shell, stdin null, each with its own timeout, at most
//!   [`PARALLEL`] at once; it prints a JSON object or `key=value` lines.
//! - A data file is read by its extension: `.json` (an object),
//!   `.yaml`/`.yml` (a mapping), `.toml` (a table, datetimes as strings),
//!   `.txt` (`key=value` lines). `key=value` values are strings; the
//!   others keep their types. Other files, hidden ones and `~` backups are
//!   ignored.
//!
//! **Precedence.** Sources are taken in name order (the names' bytes);
//! when two define the same top-level fact, the later one wins whole (no
//! deep merge). Facter's fact weights are not had here: name files
//! `10-…`, `20-…` to order them.
//!
//! **Failures never hide the others.** A source that times out, exits
//! other than 0, prints or holds more than 256 KiB, or does not parse
//! gives no facts and one [`SourceProblem`]; a refused name or line gives
//! a problem and the rest of its source still counts. A missing directory
//! has no facts and no problem (the default one usually does not exist);
//! one that cannot be read is one problem. Every problem is logged as a
//! warning naming its file.
//!
//! **Bounds.** A fact name is 1 to 128 bytes without control characters;
//! a source is at most 256 KiB; all external facts together at most
//! [`TOTAL_MAX`] of JSON — the source that would pass it, and every one
//! after it in name order, is dropped with a problem.
//!
//! - `source` — which file is which kind of source; reading one.
//! - `parse` — a source's bytes to facts, pure; the rule for names.
//! - `run` — running an executable: its process group, timeout, output.
//! - `merge` — outcomes in name order to [`ExternalFacts`], pure.

mod parse;
mod run;
mod source;

use parse::Parsed;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// At most this many executables run at once.
pub const PARALLEL: usize = 4;
/// All external facts together, as compact JSON, take at most this.
pub const TOTAL_MAX: usize = 1024 * 1024;

/// What the directory gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExternalFacts {
    /// Top-level facts, each from the last source in name order that has it.
    pub facts: Map<String, Value>,
    /// In name order of their sources; a source may have several.
    pub problems: Vec<SourceProblem>,
}

/// Why a source, or part of it, did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The file's name within the directory; the directory's path when it
    /// could not be read.
    pub source: String,
    /// "timed out after 10s", "exited with status 3: disk on fire",
    /// "not a JSON object: expected value at line 1 column 5".
    pub problem: String,
}

/// The external facts in `dir` (none when it is empty or missing), each
/// executable bounded by `timeout`. Dropping the future kills whatever it
/// was running.
pub async fn collect(dir: &Path, timeout: Duration) -> ExternalFacts {
    let external = if dir.as_os_str().is_empty() {
        ExternalFacts::default()
    } else {
        match source::list(dir).await {
            Ok(sources) => merge(read_all(sources, timeout).await),
            Err(problem) => ExternalFacts {
                facts: Map::new(),
                problems: vec![SourceProblem {
                    source: dir.display().to_string(),
                    problem,
                }],
            },
        }
    };
    for p in &external.problems {
        tracing::warn!(dir = %dir.display(), source = %p.source, problem = %p.problem, "external facts: a source did not count");
    }
    external
}

/// Every source read, concurrently; the outcomes in the sources' order.
async fn read_all(
    sources: Vec<source::Source>,
    timeout: Duration,
) -> Vec<(String, Result<Parsed, String>)> {
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = JoinSet::new();
    let mut outcomes = Vec::with_capacity(sources.len());
    for (index, s) in sources.into_iter().enumerate() {
        let outcome = match s.kind {
            Ok(kind) => {
                let gate = gate.clone();
                tasks.spawn(
                    async move { (index, source::read(&s.path, kind, timeout, gate).await) },
                );
                // Until its task says otherwise (it can only fail to by panicking).
                Err("reading it failed unexpectedly".to_owned())
            }
            Err(problem) => Err(problem),
        };
        outcomes.push((s.name, outcome));
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((index, outcome)) = done {
            outcomes[index].1 = outcome;
        }
    }
    outcomes
}

/// The outcomes of the sources, in name order, laid over each other: a
/// later source's fact replaces an earlier one's; past [`TOTAL_MAX`] the
/// remaining sources are dropped.
fn merge(outcomes: Vec<(String, Result<Parsed, String>)>) -> ExternalFacts {
    let mut external = ExternalFacts::default();
    let problem = |source: &str, problem: String| SourceProblem {
        source: source.to_owned(),
        problem,
    };
    // The compact JSON of `external.facts`: braces, and each entry with its comma.
    let mut size = 2;
    let mut full = false;
    for (source, outcome) in outcomes {
        let parsed = match outcome {
            Ok(parsed) => parsed,
            Err(p) => {
                external.problems.push(problem(&source, p));
                continue;
            }
        };
        for p in parsed.problems {
            external.problems.push(problem(&source, p));
        }
        let added: usize = parsed.facts.iter().map(|(k, v)| entry_size(k, v)).sum();
        let replaced: usize = parsed
            .facts
            .keys()
            .filter_map(|k| external.facts.get_key_value(k))
            .map(|(k, v)| entry_size(k, v))
            .sum();
        full = full || size + added - replaced > TOTAL_MAX;
        if full {
            external.problems.push(problem(
                &source,
                format!(
                    "dropped: the external facts would pass {} MiB of JSON",
                    TOTAL_MAX / (1024 * 1024)
                ),
            ));
            continue;
        }
        size = size + added - replaced;
        external.facts.extend(parsed.facts);
    }
    external
}

/// `"name":value,` in compact JSON.
fn entry_size(name: &str, value: &Value) -> usize {
    let name = serde_json::to_vec(name).map_or(0, |b| b.len());
    let value = serde_json::to_vec(value).map_or(0, |b| b.len());
    name + 1 + value + 1
}

#[cfg(test)]
mod tests;
