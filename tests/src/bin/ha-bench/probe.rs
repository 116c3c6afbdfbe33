//! What the benchmarks ask while they measure: which master says it
//! leads (its `/metrics` gauge `cluster_master_leader`), how many sessions
//! an agent has opened, whether a master lists every node connected, and
//! a runtime of its own for a probe on a thread (clusterctl's future is
//! not `Send`, so each probe that runs it runs on its own thread).

use cluster_tests::{Admin, AgentProc, ctl};
use std::time::{Duration, Instant};

/// How often a probe asks again.
pub const POLL: Duration = Duration::from_millis(5);

/// A current-thread runtime for one probe's thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// How many sessions the agent's process has logged as open.
pub fn sessions_opened(agent: &AgentProc) -> usize {
    agent.log().matches("session open").count()
}

/// Whether the master serving `http_url` says on `/metrics` that it leads.
pub async fn leads(http_url: &str) -> bool {
    let (status, body) = cluster_tests::get(&format!("{http_url}/metrics")).await;
    status == 200
        && body
            .lines()
            .any(|l| l.starts_with("cluster_master_leader{") && l.trim_end().ends_with(" 1"))
}

/// `(listed, connected)` of `clusterctl nodes` as `admin`; `None` when
/// the call fails.
pub async fn listed(admin: &Admin) -> Option<(usize, usize)> {
    let out = ctl(admin, &["nodes", "-o", "json"]).await;
    if out.code != 0 {
        return None;
    }
    let nodes = out.json().as_array()?.clone();
    let connected = nodes.iter().filter(|n| n["connected"] == true).count();
    Some((nodes.len(), connected))
}

/// Waits until `admin` lists `n` nodes, all connected.
pub async fn all_connected(admin: &Admin, n: usize, patience: Duration) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    loop {
        let now = listed(admin).await;
        if now == Some((n, n)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} does not list {n} nodes connected after {patience:?}: (listed, connected) = {now:?}",
                admin.url
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lines a process logged after its first `from` bytes that contain
/// one of `marks`, at most `limit` of them (the last ones), each cut to
/// [`LINE`] characters.
pub fn lines_since(log: &str, from: usize, marks: &[&str], limit: usize) -> Vec<String> {
    let tail = log.get(from..).unwrap_or_default();
    let found: Vec<&str> = tail
        .lines()
        .filter(|l| marks.iter().any(|m| l.contains(m)))
        .collect();
    found[found.len().saturating_sub(limit)..]
        .iter()
        .map(|l| l.chars().take(LINE).collect())
        .collect()
}

/// How much of a log line evidence shows.
const LINE: usize = 200;
