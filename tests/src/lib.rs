//! The end-to-end harness: real `cluster-master` and `cluster-agent`
//! processes on loopback addresses (127.0.0.2, 127.0.0.3, … need no setup on
//! Linux), clusterctl run in-process through the same `run` the binary
//! calls, and [`eventually`] for convergence with a bounded patience.
//!
//! - [`process`] — [`Proc`], one child process with its log kept.
//! - [`procs`] — [`MasterProc`] and [`AgentProc`] builders; kill, stop, restart.
//! - [`ctl`] — run clusterctl and capture its exit code and output.
//! - [`http`] — a plain HTTP GET for health endpoints.
//! - [`lb`] — backend apps, steady client load, real HAProxy/Varnish/nginx.
//! - [`prom`] — a sample of `/metrics` text, and `promtool check metrics`.
//! - [`etcd`] — a real etcd cluster of several members, for masters to share.
//! - [`ha`] — several masters on one etcd cluster; a watch on agents' health.
//! - [`notify`] — receivers of alerts: Alertmanager, an SMTP server, a webhook.

pub mod access;
pub mod ctl;
pub mod etcd;
pub mod ha;
pub mod http;
pub mod lb;
pub mod notify;
pub mod process;
pub mod procs;
pub mod prom;
pub mod python;
pub mod readme;

pub use ctl::{Admin, Ctl, api_token, busy_loop, ctl};
pub use etcd::EtcdCluster;
pub use ha::{Expect, HealthWatch, Masters};
pub use http::get;
pub use procs::{AgentProc, MasterProc, Proc};

use std::future::Future;
use std::time::{Duration, Instant};

/// Installs the process-wide crypto provider (ring) once.
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Polls `check` until it returns true, or panics naming `what` after
/// `patience`. The poll interval is short; the patience is the bound.
pub async fn eventually<F, Fut>(what: &str, patience: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
    loop {
        if check().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("gave up after {patience:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the master lists `n` connected agents.
pub async fn connected(admin: &Admin, n: usize) {
    eventually(
        &format!("{n} agents connected"),
        Duration::from_secs(30),
        || async {
            let out = ctl(admin, &["nodes", "-o", "json"]).await;
            out.code == 0
                && out
                    .json()
                    .as_array()
                    .is_some_and(|a| a.iter().filter(|node| node["connected"] == true).count() == n)
        },
    )
    .await;
}

/// Directory of the workspace's built binaries (next to the test binary's
/// `deps/`), e.g. `target/debug`.
pub fn bin_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a workspace binary; panics with a hint when it was not built.
pub fn bin(name: &str) -> std::path::PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (`cargo test --workspace` does)",
        path.display()
    );
    path
}
