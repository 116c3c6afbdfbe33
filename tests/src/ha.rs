//! Several masters on one etcd cluster, and what their tests watch.
//!
//! - [`Masters`] — masters `m0`, `m1`, … sharing an [`EtcdCluster`] with a
//!   lease of [`LEASE_TTL`]. Their URLs are fixed before any of them runs,
//!   so an agent can be given the whole list while only some are up. The
//!   first to start puts the cluster's CA in etcd; the others adopt it.
//! - [`HealthWatch`] — polls agents' health endpoints for as long as a
//!   test runs, and keeps every answer that disagreed with what the test
//!   said it should be.

use crate::etcd::EtcdCluster;
use crate::procs::{AgentBuilder, AgentProc, MasterBuilder, MasterProc};
use crate::{Admin, ctl};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The leader's lease in these tests: etcd's minimum.
pub const LEASE_TTL: Duration = Duration::from_secs(2);

/// What a master logs when it starts to lead.
pub const LEADS: &str = "this master leads";

pub struct Masters {
    procs: Vec<MasterProc>,
}

impl Masters {
    /// `n` masters on `etcd`, configured but none started.
    pub fn build(n: usize, etcd: &EtcdCluster) -> Masters {
        Masters::build_with(n, etcd, |_, b| b)
    }

    /// As [`Masters::build`], with `tune(i, builder)` changing master
    /// `i`'s configuration (say, the etcd endpoints it is given).
    pub fn build_with(
        n: usize,
        etcd: &EtcdCluster,
        tune: impl Fn(usize, MasterBuilder) -> MasterBuilder,
    ) -> Masters {
        let procs = (0..n)
            .map(|i| {
                let b = MasterProc::builder()
                    .etcd(&etcd.client_urls())
                    .name(&format!("m{i}"))
                    .lease_ttl(LEASE_TTL);
                tune(i, b).build()
            })
            .collect();
        Masters { procs }
    }

    /// `n` masters on `etcd`, started one after another.
    pub fn spawn(n: usize, etcd: &EtcdCluster) -> Masters {
        let mut masters = Masters::build(n, etcd);
        for i in 0..n {
            masters.start(i);
        }
        masters
    }

    /// Starts master `i` (again, after a kill), on its own port and data
    /// directory.
    pub fn start(&mut self, i: usize) {
        self.procs[i].restart();
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn urls(&self) -> Vec<String> {
        self.procs.iter().map(MasterProc::url).collect()
    }

    /// Which master serves at `url`.
    pub fn index_of(&self, url: &str) -> Option<usize> {
        self.procs.iter().position(|m| m.url() == url)
    }

    /// clusterctl with `--master` naming every master (the first master's
    /// admin identity: any master accepts it).
    pub fn admin(&self) -> Admin {
        Admin {
            url: self.urls().join(","),
            ..self.procs[0].admin()
        }
    }

    /// clusterctl talking to master `i` alone, with its own admin identity.
    pub fn admin_of(&self, i: usize) -> Admin {
        self.procs[i].admin()
    }

    /// An agent given every master, enrolling with the first one's token.
    pub fn agent(&self, id: &str) -> AgentBuilder {
        AgentProc::builder(id, &self.procs[0]).masters(&self.urls())
    }

    /// How many times master `i` has logged that it leads.
    pub fn times_led(&self, i: usize) -> usize {
        self.procs[i].log().matches(LEADS).count()
    }

    /// The master every running one names as the leader (`clusterctl
    /// masters`, asked of each alone), if they agree and it runs.
    pub async fn leader(&self) -> Option<usize> {
        let mut named = None;
        for (i, m) in self.procs.iter().enumerate() {
            if !m.is_up() {
                continue;
            }
            let out = ctl(&self.admin_of(i), &["masters", "-o", "json"]).await;
            if out.code != 0 {
                return None;
            }
            let view = out.json();
            let leader = view["masters"]
                .as_array()?
                .iter()
                .find(|m| m["leader"] == true)?["name"]
                .as_str()?
                .strip_prefix('m')?
                .parse::<usize>()
                .ok()?;
            if named.is_some_and(|n| n != leader) {
                return None;
            }
            named = Some(leader);
        }
        named.filter(|&l| self.procs[l].is_up())
    }

    /// Waits until the running masters agree on a leader that `ok`
    /// accepts; panics after `patience`. Returns it and how long it took.
    pub async fn wait_for_leader(
        &self,
        patience: Duration,
        ok: impl Fn(usize) -> bool,
    ) -> (usize, Duration) {
        let start = Instant::now();
        loop {
            if let Some(l) = self.leader().await
                && ok(l)
            {
                return (l, start.elapsed());
            }
            if start.elapsed() >= patience {
                panic!(
                    "no acceptable leader after {patience:?} (now: {:?})",
                    self.leader().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl std::ops::Index<usize> for Masters {
    type Output = MasterProc;
    fn index(&self, i: usize) -> &MasterProc {
        &self.procs[i]
    }
}

impl std::ops::IndexMut<usize> for Masters {
    fn index_mut(&mut self, i: usize) -> &mut MasterProc {
        &mut self.procs[i]
    }
}

/// The master URL of an agent's newest "session open" line.
pub fn session_master(agent: &AgentProc) -> Option<String> {
    let log = agent.log();
    let line = log.lines().rev().find(|l| l.contains("session open"))?;
    let start = line.find("master=")? + "master=".len();
    line[start..].split_whitespace().next().map(str::to_owned)
}

/// What an agent's health endpoint should answer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 200: in service.
    Up,
    /// 503: drained.
    Down,
    /// Either, while a drain or undrain is on its way.
    Either,
}

impl Expect {
    fn allows(self, status: u16) -> bool {
        match self {
            Expect::Up => status == 200,
            Expect::Down => status == 503,
            Expect::Either => status == 200 || status == 503,
        }
    }
}

/// Polls agents' health endpoints every [`HealthWatch::INTERVAL`] until
/// finished.
pub struct HealthWatch {
    ids: Vec<String>,
    expect: Arc<Mutex<Vec<Expect>>>,
    wrong: Arc<Mutex<Vec<String>>>,
    polls: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthWatch {
    pub const INTERVAL: Duration = Duration::from_millis(25);

    /// Starts watching `agents`, each expected [`Expect::Up`].
    pub fn start(agents: &[&AgentProc]) -> HealthWatch {
        let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
        let urls: Vec<String> = agents.iter().map(|a| a.health_url.clone()).collect();
        let expect = Arc::new(Mutex::new(vec![Expect::Up; agents.len()]));
        let wrong = Arc::new(Mutex::new(Vec::new()));
        let polls = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (ids, expect, wrong, polls, stop) = (
                ids.clone(),
                expect.clone(),
                wrong.clone(),
                polls.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    for (i, url) in urls.iter().enumerate() {
                        // What was expected when the question was asked,
                        // and still when the answer came: a change of
                        // expectation in between allows either.
                        let before = expect.lock().unwrap()[i];
                        let (status, body) = crate::get(url).await;
                        let after = expect.lock().unwrap()[i];
                        let allowed = if before == after {
                            before
                        } else {
                            Expect::Either
                        };
                        if !allowed.allows(status) {
                            wrong.lock().unwrap().push(format!(
                                "{:?} {}: expected {allowed:?}, got {status} {body}",
                                start.elapsed(),
                                ids[i]
                            ));
                        }
                    }
                    polls.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(HealthWatch::INTERVAL).await;
                }
            })
        };
        HealthWatch {
            ids,
            expect,
            wrong,
            polls,
            stop,
            task,
        }
    }

    /// From now on agent `id` should answer as `e` says.
    pub fn expect(&self, id: &str, e: Expect) {
        let i = self
            .ids
            .iter()
            .position(|x| x == id)
            .unwrap_or_else(|| panic!("{id} is not watched"));
        self.expect.lock().unwrap()[i] = e;
    }

    /// Rounds of polls so far.
    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::Relaxed)
    }

    /// Stops polling; how many rounds there were and every answer that
    /// was not what was expected.
    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let wrong = self.wrong.lock().unwrap().clone();
        (self.polls.load(Ordering::Relaxed), wrong)
    }
}

/// Every node as `nodes -o json` shows it; empty when the call fails.
pub async fn nodes(admin: &Admin) -> Vec<serde_json::Value> {
    let out = ctl(admin, &["nodes", "-o", "json"]).await;
    if out.code != 0 {
        return Vec::new();
    }
    out.json().as_array().cloned().unwrap_or_default()
}

pub async fn node(admin: &Admin, name: &str) -> Option<serde_json::Value> {
    nodes(admin)
        .await
        .into_iter()
        .find(|n| n["name"] == name || n["id"] == name)
}

/// The whole event log.
pub async fn events(admin: &Admin) -> Vec<serde_json::Value> {
    ctl(admin, &["events", "--limit", "1000000", "-o", "json"])
        .await
        .ok()
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}
