//! The two deployments compared: one master on sled in its data
//! directory ([`Sled`]), and three masters on a real 3-member etcd cluster
//! with a 2 s lease ([`Ha`]), each with its own agents on loopback
//! addresses of its own (`127.0.<net>.1`, `.2`, …), reporting at the real
//! agent's default interval. Agents of [`Ha`] are given every master and
//! spread over them in the random order each agent tries them in.

use crate::REPORT_INTERVAL;
use crate::probe::{all_connected, sessions_opened};
use cluster_tests::ha::session_master;
use cluster_tests::{Admin, AgentProc, EtcdCluster, MasterProc, Masters};
use std::time::Duration;

/// How long a deployment may take to settle (leader agreed, every agent
/// connected) between measurements.
pub const SETTLE: Duration = Duration::from_secs(30);

pub struct Sled {
    pub agents: Vec<AgentProc>,
    pub master: MasterProc,
}

impl Sled {
    /// One master on sled and `agents` agents on `127.0.<net>.x`, named
    /// `<prefix>-1`, `<prefix>-2`, …; returns once all are connected.
    pub async fn start(agents: usize, net: u8, prefix: &str) -> Sled {
        let master = MasterProc::builder().spawn();
        let agents = tokio::task::block_in_place(|| {
            (0..agents)
                .map(|i| {
                    AgentProc::builder(&format!("{prefix}-{}", i + 1), &master)
                        .addr(&format!("127.0.{net}.{}", i + 1))
                        .report_interval(REPORT_INTERVAL)
                        .spawn()
                })
                .collect()
        });
        let sled = Sled { agents, master };
        sled.settle().await;
        sled
    }

    pub fn admin(&self) -> Admin {
        self.master.admin()
    }

    /// Waits until every agent has a session and is listed as connected.
    pub async fn settle(&self) {
        wait_sessions(&self.agents, &[self.master.url()]).await;
        all_connected(&self.admin(), self.agents.len(), SETTLE)
            .await
            .unwrap_or_else(|e| panic!("sled: {e}"));
    }
}

/// Declared in drop order: the agents, then the masters, then etcd.
pub struct Ha {
    pub agents: Vec<AgentProc>,
    pub masters: Masters,
    /// Kept running while the masters use it.
    pub _etcd: EtcdCluster,
}

impl Ha {
    /// A 3-member etcd cluster, masters `m0`–`m2` on it (lease 2 s), and
    /// `agents` agents given all three, on `127.0.<net>.x`.
    pub async fn start(agents: usize, net: u8, prefix: &str) -> Ha {
        let etcd = EtcdCluster::start(3).await;
        let masters = tokio::task::block_in_place(|| Masters::spawn(3, &etcd));
        masters.wait_for_leader(SETTLE, |_| true).await;
        let agents = tokio::task::block_in_place(|| {
            (0..agents)
                .map(|i| {
                    masters
                        .agent(&format!("{prefix}-{}", i + 1))
                        .addr(&format!("127.0.{net}.{}", i + 1))
                        .report_interval(REPORT_INTERVAL)
                        .spawn()
                })
                .collect()
        });
        let ha = Ha {
            agents,
            masters,
            _etcd: etcd,
        };
        ha.settle().await;
        ha
    }

    /// Waits until the running masters agree on a leader, every agent has
    /// a session on a running master, and every running master lists
    /// every node connected; returns the leader.
    pub async fn settle(&self) -> usize {
        let (leader, _) = self.masters.wait_for_leader(SETTLE, |_| true).await;
        let up: Vec<usize> = (0..self.masters.len())
            .filter(|&i| self.masters[i].is_up())
            .collect();
        let urls: Vec<String> = up.iter().map(|&i| self.masters[i].url()).collect();
        wait_sessions(&self.agents, &urls).await;
        for &i in &up {
            all_connected(&self.masters.admin_of(i), self.agents.len(), SETTLE)
                .await
                .unwrap_or_else(|e| panic!("etcd, m{i}: {e}"));
        }
        leader
    }

    /// Restarts every agent, so each picks a master afresh in its own
    /// random order (a killed master, restarted, would otherwise be left
    /// with none), then settles; returns the leader.
    pub async fn reshuffle(&mut self) -> usize {
        tokio::task::block_in_place(|| {
            for a in &mut self.agents {
                a.restart();
            }
        });
        self.settle().await
    }

    /// How many agents have their session on each master, in order.
    pub fn spread(&self) -> Vec<usize> {
        let urls = self.masters.urls();
        let mut on = vec![0; urls.len()];
        for a in &self.agents {
            if let Some(i) = session_master(a).and_then(|m| urls.iter().position(|u| *u == m)) {
                on[i] += 1;
            }
        }
        on
    }

    /// clusterctl given the masters `which`, with the first one's identity.
    pub fn admin_of_all(&self, which: &[usize]) -> Admin {
        let urls: Vec<String> = which.iter().map(|&i| self.masters[i].url()).collect();
        Admin {
            url: urls.join(","),
            ..self.masters.admin_of(which[0])
        }
    }
}

/// Waits until every agent has logged a session open with one of `urls`.
async fn wait_sessions(agents: &[AgentProc], urls: &[String]) {
    cluster_tests::eventually("every agent has a session", SETTLE, || async {
        agents
            .iter()
            .all(|a| sessions_opened(a) > 0 && session_master(a).is_some_and(|m| urls.contains(&m)))
    })
    .await;
}
