//! Remote execution as stored: a job and each node's result.

use serde::{Deserialize, Serialize};

/// How a job ended on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Exit code 0.
    Ok,
    /// Ran and exited non-zero.
    Failed,
    TimedOut,
    Cancelled,
    /// Matched, but without a session: never sent.
    NotConnected,
    /// Could not run (not found, remote execution disabled on the node).
    Error,
    /// The session ended before the node answered.
    Lost,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed out",
            JobStatus::Cancelled => "cancelled",
            JobStatus::NotConnected => "not connected",
            JobStatus::Error => "error",
            JobStatus::Lost => "lost",
        }
    }

    /// As a metric's label value: `timed_out`, `not_connected`, …
    pub fn label(self) -> &'static str {
        match self {
            JobStatus::TimedOut => "timed_out",
            JobStatus::NotConnected => "not_connected",
            other => other.as_str(),
        }
    }
}

/// One node's part of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobNodeResult {
    pub node: String,
    pub status: JobStatus,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub error: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output beyond the stored limit was cut.
    pub truncated: bool,
}

/// A job the agent does itself, running no program (Salt's
/// `saltutil.refresh_grains`). Allowed on a node whose `remote_exec` is
/// off, and to operators: it changes nothing but what the master knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// Collect grains and facts again (external facts included) and send
    /// them before the job's result: when the job is done, the master has
    /// them. `clusterctl grains refresh`.
    RefreshFacts,
}

impl Builtin {
    /// The name on the wire and in records.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::RefreshFacts => "refresh_facts",
        }
    }

    /// The job by its wire name: `Ok(None)` for none (empty), an error
    /// naming the unknown one.
    pub fn parse(name: &str) -> Result<Option<Builtin>, String> {
        match name {
            "" => Ok(None),
            "refresh_facts" => Ok(Some(Builtin::RefreshFacts)),
            other => Err(format!(
                "unknown built-in job {:?} (known: refresh_facts)",
                crate::limits::excerpt(other)
            )),
        }
    }

    /// As people ask for it.
    pub fn command(self) -> &'static str {
        match self {
            Builtin::RefreshFacts => "clusterctl grains refresh",
        }
    }
}

/// A remote execution, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Time-ordered (Salt's jid shape): `YYYYMMDDhhmmssffffff`.
    pub id: String,
    /// Empty for a built-in job.
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<Builtin>,
    /// The target as typed, for people.
    pub target: String,
    pub by: String,
    pub started_ms: u64,
    /// 0 while running.
    pub finished_ms: u64,
    pub results: Vec<JobNodeResult>,
}

impl JobRecord {
    /// What ran, for people: the command line, or the built-in job's.
    pub fn command(&self) -> String {
        match self.builtin {
            Some(b) => b.command().to_owned(),
            None => self.argv.join(" "),
        }
    }
}

/// Which of a command's outputs a chunk is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What the master tells an agent about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCommand {
    Run {
        job_id: String,
        /// Empty for a built-in job.
        argv: Vec<String>,
        builtin: Option<Builtin>,
        timeout: Option<std::time::Duration>,
        /// The agent drops (and counts) output beyond this.
        output_limit: u64,
    },
    Cancel {
        job_id: String,
    },
}

/// How a job ended on one node, as its agent says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobDone {
    pub job_id: String,
    /// 128 + N when killed by signal N; 127 when it could not start.
    pub exit_code: i32,
    pub timed_out: bool,
    pub cancelled: bool,
    /// Set when the command could not run at all.
    pub error: String,
    pub duration_ms: u64,
    /// Output not sent because the job's limit was reached.
    pub dropped_bytes: u64,
}

/// A chunk of a running job's output, as an agent sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutput {
    pub job_id: String,
    pub stream: OutputStream,
    pub data: Vec<u8>,
}

/// What the caller of a job (`clusterctl run`) sees, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    Started {
        job_id: String,
        matched: Vec<String>,
        /// Matched but without a session: reported at once, never run.
        not_connected: Vec<String>,
    },
    Output {
        node: String,
        stream: OutputStream,
        data: Vec<u8>,
    },
    NodeDone(JobNodeResult),
    Finished(JobRecord),
}
