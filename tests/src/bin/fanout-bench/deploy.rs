//! Where the simulated agents connect: one master on sled (the default),
//! or masters on a real 3-member etcd cluster. With several masters the
//! sessions are either all on the master the bench calls or spread over
//! every master round-robin (node `i` on master `i mod n`), and the bench
//! calls (enrollment, `Run`) go to the leader or to a standby.

use super::*;
use cluster_tests::{EtcdCluster, Masters};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Sled,
    Etcd,
}

/// Which masters hold the simulated agents' sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sessions {
    /// All on the master the bench calls.
    One,
    /// Round-robin over every master.
    Spread,
}

/// Which master the bench calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Leader,
    Standby,
}

enum Kind {
    Sled(MasterProc),
    /// Declared in drop order: the masters, then etcd.
    Etcd {
        masters: Masters,
        _etcd: EtcdCluster,
    },
}

pub(crate) struct Deployment {
    kind: Kind,
    /// The master the bench calls.
    called: usize,
    /// Whether the called master leads (always, on sled).
    called_leads: bool,
}

/// How long the masters may take to agree on a leader.
const LEADER_PATIENCE: Duration = Duration::from_secs(30);

impl Deployment {
    pub(crate) async fn start(
        store: Store,
        masters: usize,
        via: Via,
    ) -> Result<Deployment, String> {
        match store {
            Store::Sled if masters > 1 => Err(format!(
                "{masters} masters need --store etcd: sled serves one"
            )),
            Store::Sled if via == Via::Standby => Err("--via standby needs --store etcd".into()),
            Store::Sled => Ok(Deployment {
                kind: Kind::Sled(MasterProc::builder().spawn()),
                called: 0,
                called_leads: true,
            }),
            Store::Etcd => {
                if via == Via::Standby && masters < 2 {
                    return Err("--via standby needs --masters 2 or more".into());
                }
                let etcd = EtcdCluster::start(3).await;
                let procs = Masters::spawn(masters, &etcd);
                let (leader, _) = procs.wait_for_leader(LEADER_PATIENCE, |_| true).await;
                let called = match via {
                    Via::Leader => leader,
                    Via::Standby => (leader + 1) % masters,
                };
                Ok(Deployment {
                    kind: Kind::Etcd {
                        masters: procs,
                        _etcd: etcd,
                    },
                    called,
                    called_leads: called == leader,
                })
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.kind {
            Kind::Sled(_) => 1,
            Kind::Etcd { masters, .. } => masters.len(),
        }
    }

    pub(crate) fn master(&self, i: usize) -> &MasterProc {
        match &self.kind {
            Kind::Sled(m) => m,
            Kind::Etcd { masters, .. } => &masters[i],
        }
    }

    /// The master the bench calls.
    pub(crate) fn called(&self) -> &MasterProc {
        self.master(self.called)
    }

    /// The URLs sessions are opened with: node `i` with `urls[i % len]`.
    pub(crate) fn session_urls(&self, sessions: Sessions) -> Vec<String> {
        match sessions {
            Sessions::One => vec![self.called().url()],
            Sessions::Spread => (0..self.len()).map(|i| self.master(i).url()).collect(),
        }
    }

    /// One line saying what runs where.
    pub(crate) fn describe(&self, sessions: Sessions, agents: usize) -> String {
        let role = if self.called_leads {
            "the leader"
        } else {
            "a standby"
        };
        match &self.kind {
            Kind::Sled(_) => "deployment: 1 master on sled".to_owned(),
            Kind::Etcd { masters, .. } => {
                let n = masters.len();
                let on = match sessions {
                    Sessions::One => format!("all {agents} sessions on m{}", self.called),
                    Sessions::Spread => {
                        let per: Vec<usize> = (0..n)
                            .map(|m| (0..agents).filter(|i| i % n == m).count())
                            .collect();
                        format!("sessions round-robin over the {n} masters {per:?}")
                    }
                };
                format!(
                    "deployment: {n} master(s) on a 3-member etcd cluster (lease {}s), {on}, \
                     calls through m{} ({role})",
                    cluster_tests::ha::LEASE_TTL.as_secs(),
                    self.called
                )
            }
        }
    }
}
