//! A real etcd cluster on 127.0.0.1 for the masters to share: every member
//! is its own `etcd` process with its own data directory and ports the
//! harness picked, and `etcdctl` answers the questions a test asks of it
//! (is it healthy, who leads, what revision is it at). Members can be
//! killed, stopped and started again with their data; dropping the
//! cluster kills them all.
//!
//! Needs Debian's `etcd-server` and `etcd-client` (etcd 3.4 or later).

use crate::procs::{Proc, free_port};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a member (or the whole cluster) may take to answer healthy.
const HEALTHY_PATIENCE: Duration = Duration::from_secs(20);

/// How many times a cluster is started afresh when a port it was given
/// was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    proc: Option<Proc>,
    /// What the last process said, once it is gone.
    last_log: String,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    /// `--initial-cluster-token`: members of another test's cluster can
    /// never join this one.
    token: String,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers healthy.
    pub async fn start(n: usize) -> EtcdCluster {
        require("etcd", "etcd-server");
        require("etcdctl", "etcd-client");
        for attempt in 1..=PORT_ATTEMPTS {
            let mut cluster = EtcdCluster {
                dir: tempfile::tempdir().expect("tempdir"),
                token: format!(
                    "clusterctl-test-{}-{:x}",
                    std::process::id(),
                    fastrand::u64(..)
                ),
                members: (0..n)
                    .map(|i| Member {
                        name: format!("etcd{i}"),
                        client_port: free_port(LOCALHOST),
                        peer_port: free_port(LOCALHOST),
                        proc: None,
                        last_log: String::new(),
                    })
                    .collect(),
            };
            for i in 0..n {
                cluster.launch(i, "new");
            }
            match cluster.wait_healthy(&(0..n).collect::<Vec<_>>()).await {
                Ok(()) => return cluster,
                Err(e) if e.contains("address already in use") && attempt < PORT_ATTEMPTS => {
                    continue;
                }
                Err(e) => panic!("the etcd cluster did not start: {e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    pub fn client_url(&self, i: usize) -> String {
        self.members[i].client_url()
    }

    /// Whether member `i` runs (it may still be unhealthy).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].proc.is_some()
    }

    /// SIGKILL member `i`: a crash.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut p) = m.proc.take() {
            p.kill();
            m.last_log = p.log();
        }
    }

    /// SIGTERM member `i` and wait for it to exit.
    pub fn stop(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut p) = m.proc.take() {
            p.terminate();
            m.last_log = p.log();
        }
    }

    /// Starts member `i` again with its data directory and ports, and
    /// waits until it answers healthy (which needs a quorum with it).
    pub async fn start_member(&mut self, i: usize) {
        assert!(!self.is_running(i), "etcd member {i} is running already");
        self.launch(i, "existing");
        if let Err(e) = self.wait_healthy(&[i]).await {
            panic!("etcd member {i} did not come back: {e}");
        }
    }

    /// Which member leads now, as the running members say.
    pub async fn leader(&self) -> usize {
        let statuses = self.statuses().await;
        let leader_id = statuses
            .iter()
            .find_map(|s| s["Status"]["leader"].as_u64())
            .unwrap_or_else(|| panic!("no member names a leader: {statuses:?}"));
        let endpoint = statuses
            .iter()
            .find(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader_id))
            .and_then(|s| s["Endpoint"].as_str())
            .unwrap_or_else(|| panic!("the leader {leader_id:x} is not among {statuses:?}"));
        self.members
            .iter()
            .position(|m| m.client_url() == endpoint)
            .expect("an endpoint of this cluster")
    }

    /// The revision now.
    pub async fn revision(&self) -> i64 {
        let statuses = self.statuses().await;
        statuses
            .iter()
            .filter_map(|s| s["Status"]["header"]["revision"].as_i64())
            .max()
            .unwrap_or_else(|| panic!("no revision in {statuses:?}"))
    }

    /// Compacts the keyspace up to the revision now (physically: the
    /// history is gone from every member); returns that revision.
    pub async fn compact_to_latest(&self) -> i64 {
        let revision = self.revision().await;
        let out = self
            .etcdctl(
                &self.running_urls(),
                &["compact", &revision.to_string(), "--physical"],
            )
            .await;
        assert!(
            out.status.success(),
            "etcdctl compact {revision}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        revision
    }

    /// Every key under `prefix` with its value, as the running members
    /// hold them now.
    pub async fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self
            .etcdctl(&self.running_urls(), &["get", "--prefix", prefix])
            .await;
        assert!(
            out.status.success(),
            "etcdctl get --prefix {prefix}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .map(|kv| {
                (
                    kv[0].to_owned(),
                    kv.get(1).copied().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// What member `i` has logged (its running process's, or its last one's).
    pub fn log(&self, i: usize) -> String {
        let m = &self.members[i];
        match &m.proc {
            Some(p) => p.log(),
            None => m.last_log.clone(),
        }
    }

    fn running_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.proc.is_some())
            .map(Member::client_url)
            .collect()
    }

    /// `etcdctl endpoint status` of every running member.
    async fn statuses(&self) -> Vec<serde_json::Value> {
        let out = self
            .etcdctl(&self.running_urls(), &["endpoint", "status", "-w", "json"])
            .await;
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "etcdctl endpoint status: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    async fn etcdctl(&self, endpoints: &[String], args: &[&str]) -> std::process::Output {
        tokio::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(["--dial-timeout=1s", "--command-timeout=2s"])
            .args(args)
            .output()
            .await
            .expect("run etcdctl")
    }

    fn launch(&mut self, i: usize, state: &str) {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let m = &self.members[i];
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .arg("--listen-client-urls")
            .arg(m.client_url())
            .arg("--advertise-client-urls")
            .arg(m.client_url())
            .arg("--listen-peer-urls")
            .arg(m.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(m.peer_url())
            .arg("--initial-cluster")
            .arg(initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--initial-cluster-state")
            .arg(state)
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ]);
        let proc = Proc::spawn(cmd).unwrap_or_else(|e| panic!("{e}"));
        self.members[i].proc = Some(proc);
    }

    /// Waits until each of `members` answers `etcdctl endpoint health`;
    /// `Err` with their logs when one exits or the patience runs out.
    async fn wait_healthy(&mut self, members: &[usize]) -> Result<(), String> {
        let deadline = Instant::now() + HEALTHY_PATIENCE;
        let urls: Vec<String> = members.iter().map(|&i| self.client_url(i)).collect();
        loop {
            let out = self.etcdctl(&urls, &["endpoint", "health"]).await;
            if out.status.success() {
                return Ok(());
            }
            let exited: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| self.members[i].proc.as_mut().is_some_and(Proc::exited))
                .collect();
            if !exited.is_empty() || Instant::now() >= deadline {
                let why = String::from_utf8_lossy(&out.stderr).into_owned();
                for &i in members {
                    self.kill(i);
                }
                let logs: String = members
                    .iter()
                    .map(|&i| format!("--- etcd member {i} ---\n{}", self.log(i)))
                    .collect();
                return Err(format!(
                    "members {members:?} not healthy (exited: {exited:?}): {why}\n{logs}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if std::thread::panicking() && self.is_running(i) {
                // Its process's log follows, as every process's does.
                eprintln!("--- etcd member {i} ({}) ---", self.client_url(i));
            }
            self.kill(i);
        }
    }
}

/// Panics naming the Debian package when `program` is not on PATH.
fn require(program: &str, package: &str) {
    if let Err(e) = Command::new(program).arg("--version").output() {
        panic!(
            "{program} is needed for the etcd tests and cannot be run ({e}): \
             install Debian's {package} (apt-get install etcd-server etcd-client)"
        );
    }
}
