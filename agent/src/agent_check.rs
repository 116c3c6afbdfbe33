//! HAProxy's agent-check responder: HAProxy connects, maybe sends its
//! `agent-send` text, reads one line, and applies it to the server. We
//! write the line at once (not waiting for that text), then read and throw
//! away whatever comes until HAProxy closes, within [`PER_CONNECTION`].
//!
//! The line ([`line()`]) always states everything — the administrative state,
//! the operational state, and with `ready up` the weight — because HAProxy
//! changes only what a line names and keeps the rest: after `drain`, a bare
//! `up` leaves the server in DRAIN (only `ready` ends DRAIN and MAINT), and
//! after `down` only `up` brings it back. So:
//!
//! | node                    | line                              | HAProxy shows |
//! |-------------------------|-----------------------------------|---------------|
//! | online, checks pass     | `ready up 100%`                   | UP            |
//! | online, a check fails   | `ready down #check app failing`   | DOWN (agent)  |
//! | drained                 | `drain up`                        | DRAIN (agent) |
//! | drained, a check fails  | `drain down #check app failing`   | DOWN (agent)  |
//! | in maintenance          | `maint up` / `maint down #…`      | MAINT         |
//!
//! The reason follows `#` after a space: HAProxy takes `#` as the start of
//! the description only at the start of a word; `down#reason` is one word
//! it does not know, and it changes nothing. With `weight_from_load`, `ready
//! up N%` with N = 100 − CPU busy %, between 10 and 100 ([`weight_for`]);
//! HAProxy scales the server's configured weight by it, so give servers a
//! weight such as 100 for the percentage to matter (1 × 50% is 0).

use crate::checks::CheckStatus;
use crate::state::{Desired, Shared};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long one connection may take, so a stuck peer holds nothing long.
pub const PER_CONNECTION: Duration = Duration::from_secs(2);
/// HAProxy keeps its check description short; so is ours.
const REASON_MAX: usize = 120;
/// The shortest span CPU use is measured over.
const CPU_SPAN: Duration = Duration::from_secs(1);

/// The line (without its newline) HAProxy reads. `weight` is the
/// percentage to announce with `ready up` (100 when `None`).
pub fn line(desired: &Desired, checks: &CheckStatus, weight: Option<u8>) -> String {
    let admin = match &desired.offline {
        None => "ready",
        Some(off) if off.maintenance => "maint",
        Some(_) => "drain",
    };
    match checks.failing() {
        Some(failing) => format!(
            "{admin} down #{}",
            // Its name only: the output may hold secrets.
            reason(&format!("check {} failing", failing.name))
        ),
        None if admin == "ready" => format!("ready up {}%", weight.unwrap_or(100).min(100)),
        None => format!("{admin} up"),
    }
}

/// One line's worth of `text`: no control characters, at most
/// [`REASON_MAX`] bytes.
fn reason(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > REASON_MAX {
            break;
        }
        out.push(c);
    }
    out
}

/// The weight for a CPU `busy` percentage: 100 − busy, from 10 to 100.
pub fn weight_for(busy: f64) -> u8 {
    if busy.is_nan() {
        return 100;
    }
    (100.0 - busy).round().clamp(10.0, 100.0) as u8
}

/// CPU use since the previous reading at least [`CPU_SPAN`] ago, read when
/// HAProxy asks rather than on a timer.
struct Cpu(Mutex<Option<(sysinfo::System, Instant, u8)>>);

impl Cpu {
    fn new() -> Cpu {
        let sys = sysinfo::System::new().ok().map(|mut sys| {
            sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            sys.refresh_cpu_usage();
            (sys, Instant::now(), 100)
        });
        if sys.is_none() {
            tracing::warn!("cannot read CPU use; the agent check announces full weight");
        }
        Cpu(Mutex::new(sys))
    }

    fn weight(&self) -> u8 {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some((sys, read_at, weight)) = guard.as_mut() else {
            return 100;
        };
        if read_at.elapsed() >= CPU_SPAN {
            sys.refresh_cpu_usage();
            *read_at = Instant::now();
            *weight = weight_for(f64::from(sys.global_cpu_usage()));
        }
        *weight
    }
}

/// Answers HAProxy on `listener` until `shutdown`, then lets the
/// connections in flight finish (each within [`PER_CONNECTION`]).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    weight_from_load: bool,
    shutdown: CancellationToken,
) {
    let cpu = weight_from_load.then(|| Arc::new(Cpu::new()));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                let cpu = cpu.clone();
                connections.spawn(async move {
                    let said = {
                        let weight = cpu.map(|c| c.weight());
                        line(&shared.desired.borrow(), &shared.checks.borrow(), weight)
                    };
                    match tokio::time::timeout(PER_CONNECTION, respond(stream, &said)).await {
                        Ok(Ok(())) => tracing::debug!(%peer, line = %said, "agent check answered"),
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "agent check connection failed")
                        }
                        Err(_) => tracing::debug!(%peer, "agent check connection timed out"),
                    }
                });
            }
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::warn!(error = %e, "agent check: cannot accept");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn respond(mut stream: TcpStream, said: &str) -> std::io::Result<()> {
    stream.write_all(format!("{said}\n").as_bytes()).await?;
    // HAProxy closes once it has the line (with a reset, often: errors from
    // here on are of no interest). Reading until then keeps its agent-send
    // text from arriving at a closed socket, which would reset the
    // connection and could lose the line.
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 512];
    while let Ok(1..) = stream.read(&mut sink).await {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckState;
    use crate::state::OfflineFlag;

    /// `offline`: "", "drained" or "maintenance"; `checks`: one letter per
    /// check, `+` passing, `-` failing, `?` not run yet.
    fn check(offline: &str, checks: &str, weight: Option<u8>, want: &str) {
        let mut desired = Desired::initial("web-1");
        desired.offline = (!offline.is_empty()).then(|| OfflineFlag {
            reason: "deploy".into(),
            since_ms: 1,
            by: "alice".into(),
            maintenance: offline == "maintenance",
        });
        let checks = CheckStatus {
            checks: checks
                .chars()
                .zip(["app", "db"])
                .map(|(c, name)| CheckState {
                    name: name.into(),
                    kind: "http",
                    passing: c != '-',
                    ran: c != '?',
                    output: format!("GET http://127.0.0.1:8080/{name}: 500 Internal Server Error"),
                    since_ms: 0,
                })
                .collect(),
        };
        assert_eq!(
            line(&desired, &checks, weight),
            want,
            "{offline:?} {checks:?}"
        );
    }

    #[test]
    fn lines() {
        // The check's name, never its output (the URL it tried).
        let app = "check app failing";
        let db = "check db failing";
        check("", "", None, "ready up 100%");
        check("", "", Some(40), "ready up 40%");
        check("", "+?", Some(40), "ready up 40%");
        check("", "-", Some(40), &format!("ready down #{app}"));
        check("", "+-", None, &format!("ready down #{db}"));
        check("drained", "", Some(40), "drain up");
        check("drained", "+", None, "drain up");
        check("drained", "?-", None, &format!("drain down #{db}"));
        check("maintenance", "", None, "maint up");
        check("maintenance", "-", Some(40), &format!("maint down #{app}"));
    }

    #[test]
    fn reasons_stay_on_one_short_line() {
        assert_eq!(reason("a\r\nb\tc"), "a  b c");
        let long = "é".repeat(100);
        assert_eq!(reason(&long), "é".repeat(REASON_MAX / 2));
    }

    #[test]
    fn weights_from_cpu_use() {
        for (busy, want) in [
            (0.0, 100),
            (-3.0, 100),
            (25.4, 75),
            (25.6, 74),
            (89.0, 11),
            (90.0, 10),
            (99.9, 10),
            (250.0, 10),
            (f64::NAN, 100),
        ] {
            assert_eq!(weight_for(busy), want, "{busy}");
        }
    }

    async fn read_line(addr: std::net::SocketAddr, send: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(send).await.unwrap();
        let mut got = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut got))
            .await
            .expect("the responder closes")
            .unwrap();
        got
    }

    #[tokio::test]
    async fn one_line_per_connection_with_or_without_agent_send_text() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::new(Desired::initial("web-1")));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, shared.clone(), false, shutdown.clone()));
        assert_eq!(read_line(addr, b"").await, "ready up 100%\n");
        shared.desired.send_modify(|d| {
            d.offline = Some(OfflineFlag {
                reason: "deploy".into(),
                since_ms: 1,
                by: "alice".into(),
                maintenance: false,
            })
        });
        assert_eq!(read_line(addr, b"backend=web\n").await, "drain up\n");
        // A peer that never closes gets its line, and is let go within
        // PER_CONNECTION: serve returns after shutdown all the same.
        let mut stuck = TcpStream::connect(addr).await.unwrap();
        let mut got = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(5), stuck.read_exact(&mut got))
            .await
            .expect("the line comes at once")
            .unwrap();
        assert_eq!(&got, b"drain up\n");
        shutdown.cancel();
        tokio::time::timeout(PER_CONNECTION * 2, server)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
        drop(stuck);
    }

    #[tokio::test]
    async fn the_weight_follows_the_cpu_when_asked_to() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::new(Desired::initial("web-1")));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, shared, true, shutdown.clone()));
        let got = read_line(addr, b"").await;
        let weight: u8 = got
            .strip_prefix("ready up ")
            .and_then(|w| w.strip_suffix("%\n"))
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{got:?}"));
        assert!((10..=100).contains(&weight), "{got:?}");
        shutdown.cancel();
    }
}
