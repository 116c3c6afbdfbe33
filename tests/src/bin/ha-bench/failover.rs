//! Failover: the leading master killed (SIGKILL) again and again, and
//! what that costs the cluster's users.
//!
//! On etcd each cycle restarts the agents (so they spread afresh over the
//! three masters), settles, finds the leader on `/metrics`, kills it, and
//! watches at once, each on a thread of its own:
//!
//! - a survivor's `/metrics` gauge turning to 1 (the election);
//! - a stream of `clusterctl label` calls through the two survivors
//!   (clusterctl's own failover between them), one after another, begun
//!   before the kill; an invocation that exits non-zero is made again
//!   after [`RETRY_PAUSE`]. The figure is the first write *sent after* the
//!   kill that is acknowledged; the one in flight at the kill is recorded
//!   apart (it may have been committed by the dying leader);
//! - each agent that was on the killed master logging a new session with
//!   a survivor, then both survivors listing every node connected.
//!
//! The killed master is started again (same data directory) before the
//! next cycle, so there are always three. Some cycles run without the
//! writes, to tell what the writes cost the agents.
//!
//! On sled the one master is killed and restarted at once; the same
//! write stream and agent watch run while it restarts.

use crate::deploy::{Ha, Sled};
use crate::probe::{POLL, leads, lines_since, listed, runtime, sessions_opened};
use crate::{ms, ratio, report};
use cluster_tests::ha::{LEASE_TTL, session_master};
use cluster_tests::{Admin, AgentProc, ctl};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Agents served again within this after their master died.
const AGENTS_TARGET: Duration = Duration::from_millis(1500);
/// Writes back within the lease and a second.
const WRITE_TARGET: Duration = Duration::from_secs(3);
/// How long one watch waits before it records "never".
const PATIENCE: Duration = Duration::from_secs(30);
/// Pause before invoking clusterctl again after it exited non-zero (as a
/// script retrying would; clusterctl retries within one invocation only
/// once connected).
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// What one kill cost, from the moment of the kill.
#[derive(Default)]
struct Kill {
    /// etcd: a survivor says it leads; sled: the restarted master logged
    /// that it is ready.
    ready: Option<Duration>,
    /// The first write sent after the kill and acknowledged (None: not
    /// measured, or never).
    write: Option<Duration>,
    /// clusterctl invocations sent after the kill, until then.
    attempts: usize,
    /// The write in flight at the kill: acknowledged or not, and when it
    /// answered.
    in_flight: Option<(bool, Duration)>,
    /// Every agent of the killed master has a session on a live master.
    sessions: Option<Duration>,
    /// Each such agent's new session.
    per_agent: Vec<Duration>,
    /// … and every live master lists every node connected.
    listed: Option<Duration>,
    /// Agents whose master was killed.
    moved: usize,
    /// Invocations that failed, and what they said.
    failed: Vec<String>,
}

pub async fn run(kills: usize, quiet_kills: usize, agents: usize) {
    let mut ha = Ha::start(agents, 5, "ha").await;
    let mut sled = Sled::start(agents, 4, "one").await;
    let (mut on_etcd, mut on_etcd_quiet, mut on_sled) = (Vec::new(), Vec::new(), Vec::new());
    for cycle in 0..kills.max(quiet_kills) {
        if cycle < kills {
            on_sled.push(kill_sled(&mut sled, cycle, true).await);
            on_etcd.push(kill_leader(&mut ha, cycle, true).await);
        }
        if cycle < quiet_kills {
            on_etcd_quiet.push(kill_leader(&mut ha, kills + cycle, false).await);
        }
        eprintln!(
            "ha-bench: failover cycle {} of {} done",
            cycle + 1,
            kills.max(quiet_kills)
        );
    }

    println!(
        "failover, etcd: 3 masters on a 3-member etcd cluster (lease {}s), {agents} agents spread over them, \
         {kills} kills (SIGKILL) of the leader, writes through the 2 survivors:",
        LEASE_TTL.as_secs()
    );
    let etcd = print_kills(&on_etcd, "a survivor leads (/metrics)");
    println!("failover, etcd, no writes during the failover, {quiet_kills} kills of the leader:");
    let quiet = print_kills(&on_etcd_quiet, "a survivor leads (/metrics)");
    println!(
        "failover, sled: 1 master, {agents} agents, {kills} kills (SIGKILL), restarted at once (same data directory):"
    );
    let one = print_kills(&on_sled, "the restarted master is ready");
    ratio("  write back", &etcd.write, &one.write);
    ratio("  agents served again", &etcd.sessions, &one.sessions);
    ratio(
        "  agents served again (no writes)",
        &quiet.sessions,
        &one.sessions,
    );
    target("etcd: agents served again", &etcd.sessions, AGENTS_TARGET);
    target(
        "etcd, no writes: agents served again",
        &quiet.sessions,
        AGENTS_TARGET,
    );
    target("etcd: write back", &etcd.write, WRITE_TARGET);
}

/// The summaries [`print_kills`] printed that others compare.
struct Printed {
    write: Option<crate::Summary>,
    sessions: Option<crate::Summary>,
}

fn print_kills(kills: &[Kill], ready: &str) -> Printed {
    // The kills that left agents without a master: the agents' figures
    // are of these alone (a kill of a master holding none costs them
    // nothing, and would count as 0 ms).
    let moving: Vec<&Kill> = kills.iter().filter(|k| k.moved > 0).collect();
    let of = |kills: &[&Kill], f: fn(&Kill) -> Option<Duration>| -> (Vec<Duration>, usize, usize) {
        let got: Vec<Duration> = kills.iter().filter_map(|k| f(k)).collect();
        let missing = kills.len() - got.len();
        (got, missing, kills.len())
    };
    let every: Vec<&Kill> = kills.iter().collect();
    let all = |f: fn(&Kill) -> Option<Duration>| of(&every, f);
    let line = |name: &str, (v, missing, n): (Vec<Duration>, usize, usize)| {
        let s = report(&format!("  kill → {name}"), v);
        if missing > 0 {
            println!("    ({missing} of {n} never within {PATIENCE:?})");
        }
        s
    };
    line(ready, all(|k| k.ready));
    let write = kills.iter().any(|k| k.attempts > 0).then(|| {
        let s = line(
            "first write sent after it acknowledged (clusterctl label)",
            all(|k| k.write),
        );
        let attempts: Vec<usize> = kills.iter().map(|k| k.attempts).collect();
        let failed: usize = kills.iter().map(|k| k.failed.len()).sum();
        println!(
            "    clusterctl invocations sent after the kill per write: max {}; {failed} invocations exited non-zero in all",
            attempts.iter().max().unwrap_or(&0)
        );
        let in_flight: Vec<(bool, Duration)> = kills.iter().filter_map(|k| k.in_flight).collect();
        let acked = in_flight.iter().filter(|(ok, _)| *ok).count();
        report(
            &format!(
                "    the write in flight at the kill ({acked} of {} acknowledged) answered at",
                in_flight.len()
            ),
            in_flight.iter().map(|(_, t)| *t).collect(),
        );
        for (i, k) in kills.iter().enumerate() {
            for f in k.failed.iter().take(3) {
                println!("    kill {i}: {f}");
            }
        }
        s
    });
    let moved: Vec<usize> = kills.iter().map(|k| k.moved).collect();
    println!(
        "    agents of the killed master per kill: mean {:.1}, min {}, max {}",
        moved.iter().sum::<usize>() as f64 / moved.len().max(1) as f64,
        moved.iter().min().unwrap_or(&0),
        moved.iter().max().unwrap_or(&0)
    );
    let sessions = line(
        &format!(
            "every agent of the killed master has a session on a live master ({} kills that left agents)",
            moving.len()
        ),
        of(&moving, |k| k.sessions),
    );
    report(
        "  kill → each such agent's new session",
        kills.iter().flat_map(|k| k.per_agent.clone()).collect(),
    );
    line(
        "… and every live master lists every node connected",
        all(|k| k.listed),
    );
    Printed {
        write: write.flatten(),
        sessions,
    }
}

fn target(name: &str, s: &Option<crate::Summary>, target: Duration) {
    let Some(s) = s else {
        println!("target {name} ≤ {:.1}s: not measured", target.as_secs_f64());
        return;
    };
    let verdict = |d: Duration| {
        if d <= target {
            "met".to_owned()
        } else {
            format!("missed by {:.0}ms", ms(d - target))
        }
    };
    println!(
        "target {name} ≤ {:.1}s: p50 {:.0}ms ({}), p99 {:.0}ms ({})",
        target.as_secs_f64(),
        ms(s.p50),
        verdict(s.p50),
        ms(s.p99),
        verdict(s.p99)
    );
}

/// One etcd cycle: reshuffle the agents, start the writes, kill the
/// leader, watch, start it again.
async fn kill_leader(ha: &mut Ha, cycle: usize, writes: bool) -> Kill {
    let leader = ha.reshuffle().await;
    let urls = ha.masters.urls();
    let live: Vec<usize> = (0..ha.masters.len()).filter(|&i| i != leader).collect();
    let live_urls: Vec<String> = live.iter().map(|&i| urls[i].clone()).collect();
    let moving: Vec<(usize, usize)> = ha
        .agents
        .iter()
        .enumerate()
        .filter(|(_, a)| session_master(a).as_deref() == Some(urls[leader].as_str()))
        .map(|(i, a)| (i, sessions_opened(a)))
        .collect();
    let writer = ha.admin_of_all(&live);
    let admins: Vec<Admin> = live.iter().map(|&i| ha.masters.admin_of(i)).collect();
    let http: Vec<String> = live.iter().map(|&i| ha.masters[i].http_url()).collect();
    let node = ha.agents[0].id.clone();
    let marks = Marks::take(ha, &live, &moving);
    let spread = ha.spread();

    let Ha {
        agents, masters, ..
    } = &mut *ha;
    let agents = &*agents;
    let stream = Stream::default();
    let mut kill = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let wrote = writes.then(|| s.spawn(|| write_stream(&writer, &node, cycle, &stream)));
            if writes {
                stream.wait_for_acks();
            }
            let t0 = Instant::now();
            stream.killed(t0);
            masters[leader].kill();
            let (http, moving, live_urls, admins) = (&http, &moving, &live_urls, &admins);
            let elected = s.spawn(move || runtime().block_on(elected(http, t0)));
            let back = s.spawn(move || {
                runtime().block_on(reconnected(agents, moving, live_urls, admins, t0))
            });
            let mut kill = Kill {
                moved: moving.len(),
                ..Kill::default()
            };
            (kill.sessions, kill.per_agent, kill.listed) = back.join().expect("agent watch");
            kill.ready = elected.join().expect("election watch");
            if let Some(w) = wrote {
                w.join().expect("writer").fill(&mut kill);
            }
            kill
        })
    });
    let slow = kill.write.is_none_or(|w| w > WRITE_TARGET) && writes
        || kill.sessions.is_none_or(|a| a > AGENTS_TARGET);
    if slow && SHOWN.fetch_add(1, Ordering::Relaxed) < EVIDENCE_CYCLES {
        marks.evidence(
            ha,
            &format!(
                "etcd cycle {cycle} (m{leader} killed, spread {spread:?}, writes {writes}): \
                 elected {:?}, write {:?}, in flight {:?}, agents {:?}",
                kill.ready, kill.write, kill.in_flight, kill.sessions
            ),
        );
    }
    kill.failed.truncate(20);
    tokio::task::block_in_place(|| ha.masters.start(leader));
    kill
}

/// One sled cycle: start the writes, kill the master, start it again at
/// once.
async fn kill_sled(sled: &mut Sled, cycle: usize, writes: bool) -> Kill {
    sled.settle().await;
    let Sled { agents, master } = sled;
    let moving: Vec<(usize, usize)> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (i, sessions_opened(a)))
        .collect();
    let admin = master.admin();
    let urls = [master.url()];
    let node = agents[0].id.clone();
    let agents = &*agents;
    let stream = Stream::default();
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let wrote = writes.then(|| s.spawn(|| write_stream(&admin, &node, cycle, &stream)));
            if writes {
                stream.wait_for_acks();
            }
            let t0 = Instant::now();
            stream.killed(t0);
            master.kill();
            let (moving, urls, admins) = (&moving, &urls, std::slice::from_ref(&admin));
            let back =
                s.spawn(move || runtime().block_on(reconnected(agents, moving, urls, admins, t0)));
            master.restart();
            let mut kill = Kill {
                ready: Some(t0.elapsed()),
                moved: moving.len(),
                ..Kill::default()
            };
            (kill.sessions, kill.per_agent, kill.listed) = back.join().expect("agent watch");
            if let Some(w) = wrote {
                w.join().expect("writer").fill(&mut kill);
            }
            kill.failed.truncate(20);
            kill
        })
    })
}

/// Writes acknowledged before the kill is made.
const ACKS_BEFORE: usize = 3;

/// Between a cycle and its write stream: how many writes were
/// acknowledged before the kill, and when the kill was made.
#[derive(Default)]
struct Stream {
    acked: AtomicUsize,
    kill: OnceLock<Instant>,
}

impl Stream {
    /// Waits (bounded) until [`ACKS_BEFORE`] writes were acknowledged.
    fn wait_for_acks(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.acked.load(Ordering::Relaxed) < ACKS_BEFORE && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn killed(&self, at: Instant) {
        let _ = self.kill.set(at);
    }
}

/// What the write stream saw after the kill.
#[derive(Default)]
struct Written {
    write: Option<Duration>,
    attempts: usize,
    in_flight: Option<(bool, Duration)>,
    failed: Vec<String>,
}

impl Written {
    fn fill(self, kill: &mut Kill) {
        kill.write = self.write;
        kill.attempts = self.attempts;
        kill.in_flight = self.in_flight;
        kill.failed = self.failed;
    }
}

/// `clusterctl label NODE bench-failover=…` as `admin`, one after
/// another, until one sent after the kill is acknowledged (or
/// [`PATIENCE`] after the kill).
fn write_stream(admin: &Admin, node: &str, cycle: usize, stream: &Stream) -> Written {
    runtime().block_on(async {
        let mut w = Written::default();
        for attempt in 1.. {
            let sent = Instant::now();
            let label = format!("bench-failover=c{cycle}a{attempt}");
            let out = ctl(admin, &["label", node, &label]).await;
            let ok = out.code == 0;
            let Some(&t0) = stream.kill.get() else {
                if ok {
                    stream.acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                continue;
            };
            let answered = t0.elapsed();
            if sent < t0 {
                w.in_flight = Some((ok, answered));
            } else {
                w.attempts += 1;
                if ok {
                    w.write = Some(answered);
                    return w;
                }
            }
            if !ok {
                let when = |t: Instant| {
                    let ahead = t.saturating_duration_since(t0);
                    let behind = t0.saturating_duration_since(t);
                    ms(ahead) - ms(behind)
                };
                w.failed.push(format!(
                    "sent {:+.0}ms, answered {:+.0}ms, exit {}: {}",
                    when(sent),
                    ms(answered),
                    out.code,
                    out.stderr.lines().next().unwrap_or_default()
                ));
                if answered >= PATIENCE {
                    return w;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        unreachable!("the loop returns")
    })
}

/// When one of the masters at `http_urls` first says it leads.
async fn elected(http_urls: &[String], t0: Instant) -> Option<Duration> {
    loop {
        for url in http_urls {
            if leads(url).await {
                return Some(t0.elapsed());
            }
        }
        if t0.elapsed() >= PATIENCE {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until each agent of `moving` (its index, and how many sessions
/// it had opened before the kill) has opened another with one of `live`,
/// then until each of `admins` lists every node connected: (all of them
/// back, each one's time, all listed).
async fn reconnected(
    agents: &[AgentProc],
    moving: &[(usize, usize)],
    live: &[String],
    admins: &[Admin],
    t0: Instant,
) -> (Option<Duration>, Vec<Duration>, Option<Duration>) {
    let mut back: Vec<Option<Duration>> = vec![None; moving.len()];
    loop {
        for (k, &(i, before)) in moving.iter().enumerate() {
            let a = &agents[i];
            if back[k].is_none()
                && sessions_opened(a) > before
                && session_master(a).is_some_and(|m| live.contains(&m))
            {
                back[k] = Some(t0.elapsed());
            }
        }
        if back.iter().all(Option::is_some) {
            break;
        }
        if t0.elapsed() >= PATIENCE {
            return (None, back.into_iter().flatten().collect(), None);
        }
        tokio::time::sleep(POLL).await;
    }
    let per_agent: Vec<Duration> = back.into_iter().flatten().collect();
    let all_back = per_agent.iter().max().copied().unwrap_or_default();
    let n = agents.len();
    loop {
        let mut all = true;
        for admin in admins {
            if listed(admin).await != Some((n, n)) {
                all = false;
                break;
            }
        }
        if all {
            return (Some(all_back), per_agent, Some(t0.elapsed()));
        }
        if t0.elapsed() >= PATIENCE {
            return (Some(all_back), per_agent, None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Slow cycles whose logs are shown (stderr); the rest are only counted
/// in the figures.
const EVIDENCE_CYCLES: usize = 4;
static SHOWN: AtomicUsize = AtomicUsize::new(0);

/// How long each log was when a kill was made, to show what was said
/// after it when a cycle was slow.
struct Marks {
    masters: Vec<(usize, usize)>,
    agents: Vec<(usize, usize)>,
}

impl Marks {
    fn take(ha: &Ha, live: &[usize], moving: &[(usize, usize)]) -> Marks {
        Marks {
            masters: live
                .iter()
                .map(|&i| (i, ha.masters[i].log().len()))
                .collect(),
            agents: moving
                .iter()
                .map(|&(i, _)| (i, ha.agents[i].log().len()))
                .collect(),
        }
    }

    /// Prints (stderr) the survivors' warnings and the moved agents'
    /// session lines since the kill.
    fn evidence(&self, ha: &Ha, what: &str) {
        eprintln!("[evidence] {what}");
        for &(i, from) in &self.masters {
            for l in lines_since(
                &ha.masters[i].log(),
                from,
                &[" WARN ", " ERROR ", " INFO "],
                30,
            ) {
                eprintln!("[evidence]   m{i}: {l}");
            }
        }
        for &(i, from) in &self.agents {
            let a = &ha.agents[i];
            for l in lines_since(&a.log(), from, &["session", "master"], 4) {
                eprintln!("[evidence]   {}: {l}", a.id);
            }
        }
    }
}
