//! Refused handshakes into the audit log, without a write per packet.
//!
//! The first refusal from a source address is recorded at once (an
//! operator sees it when it happens); the ones that follow within the
//! window are counted, and one event per source says how many there were
//! when the window ends ("37 more TLS handshakes from 10.0.0.9 refused in
//! the last 60s; the last: …"). At most [`MAX_SOURCES`] addresses are told
//! apart; beyond them, refusals are counted together. A flood of bad
//! handshakes costs one write per source per window, not one each.

use crate::cluster::Cluster;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Addresses told apart within one window.
pub const MAX_SOURCES: usize = 256;
/// Refusals waiting to be counted; more are dropped (and counted as such).
pub const QUEUE: usize = 1024;

/// One refused handshake: from where (when known), and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub from: Option<IpAddr>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Ip(IpAddr),
    Unknown,
    /// Every address past [`MAX_SOURCES`].
    Others,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ip(ip) => write!(f, "from {ip}"),
            Source::Unknown => f.write_str("from an unknown address"),
            Source::Others => write!(f, "from more than {MAX_SOURCES} other addresses"),
        }
    }
}

struct Window {
    opened: Instant,
    /// Refusals since the one recorded.
    more: u64,
    last: String,
}

/// The counting, pure (time is passed in).
pub struct Aggregator {
    window: Duration,
    sources: HashMap<Source, Window>,
}

impl Aggregator {
    pub fn new(window: Duration) -> Aggregator {
        Aggregator {
            window,
            sources: HashMap::new(),
        }
    }

    /// What to record now, if anything: the first refusal from a source
    /// in a window.
    pub fn refused(&mut self, r: Refusal, now: Instant) -> Option<String> {
        let mut source = r.from.map_or(Source::Unknown, Source::Ip);
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_SOURCES {
            source = Source::Others;
        }
        match self.sources.get_mut(&source) {
            Some(w) => {
                w.more += 1;
                w.last = r.detail;
                None
            }
            None => {
                self.sources.insert(
                    source,
                    Window {
                        opened: now,
                        more: 0,
                        last: String::new(),
                    },
                );
                Some(format!("TLS handshake {source} refused: {}", r.detail))
            }
        }
    }

    /// The counts of the windows that ended by `now` (those with more
    /// refusals than the one recorded); their sources are forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let window = self.window;
        let ended: Vec<Source> = self
            .sources
            .iter()
            .filter(|(_, w)| now.duration_since(w.opened) >= window)
            .map(|(s, _)| *s)
            .collect();
        ended.into_iter().filter_map(|s| self.close(s)).collect()
    }

    /// Every count still open (at shutdown).
    pub fn flush(&mut self) -> Vec<String> {
        let all: Vec<Source> = self.sources.keys().copied().collect();
        all.into_iter().filter_map(|s| self.close(s)).collect()
    }

    fn close(&mut self, source: Source) -> Option<String> {
        let w = self.sources.remove(&source)?;
        (w.more > 0).then(|| {
            format!(
                "{} more TLS handshake{} {source} refused in the last {}; the last: {}",
                w.more,
                if w.more == 1 { "" } else { "s" },
                humantime::format_duration(self.window),
                w.last
            )
        })
    }
}

/// Writes the refusals the verifier reports into the event log, counted
/// per source per `window`.
pub async fn audit(
    cluster: Arc<Cluster>,
    mut refused: mpsc::Receiver<Refusal>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    window: Duration,
) {
    let mut counts = Aggregator::new(window);
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(window));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = refused.recv() => match r {
                Some(r) => {
                    if let Some(detail) = counts.refused(r, Instant::now()) {
                        cluster.deny("", "tls", detail).await;
                    }
                }
                None => {
                    for detail in counts.flush() {
                        cluster.deny("", "tls", detail).await;
                    }
                    return;
                }
            },
            _ = tick.tick() => {
                for detail in counts.due(Instant::now()) {
                    cluster.deny("", "tls", detail).await;
                }
                let lost = dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
                if lost > 0 {
                    tracing::warn!(lost, "refused handshakes came faster than they could be counted");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str, detail: &str) -> Refusal {
        Refusal {
            from: Some(ip.parse().unwrap()),
            detail: detail.into(),
        }
    }

    #[test]
    fn the_first_refusal_is_recorded_and_the_rest_counted_per_source() {
        let window = Duration::from_secs(60);
        let mut a = Aggregator::new(window);
        let t0 = Instant::now();
        assert_eq!(
            a.refused(from("10.0.0.9", "self-signed"), t0).as_deref(),
            Some("TLS handshake from 10.0.0.9 refused: self-signed")
        );
        for i in 0..999 {
            assert_eq!(a.refused(from("10.0.0.9", &format!("n{i}")), t0), None);
        }
        assert!(a.refused(from("10.0.0.7", "expired"), t0).is_some());
        assert!(a.due(t0 + Duration::from_secs(59)).is_empty());
        let due = a.due(t0 + window);
        assert_eq!(
            due,
            ["999 more TLS handshakes from 10.0.0.9 refused in the last 1m; the last: n998"]
        );
        // A new window: the next is recorded at once again.
        assert!(a.refused(from("10.0.0.9", "again"), t0 + window).is_some());
    }

    #[test]
    fn sources_are_bounded_and_the_rest_counted_together() {
        let mut a = Aggregator::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let mut recorded = 0;
        for i in 0..(MAX_SOURCES as u32 + 500) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if a.refused(
                Refusal {
                    from: Some(ip),
                    detail: "x".into(),
                },
                t0,
            )
            .is_some()
            {
                recorded += 1;
            }
        }
        assert_eq!(
            recorded,
            MAX_SOURCES + 1,
            "each bounded source, then one for the others"
        );
        assert_eq!(a.sources.len(), MAX_SOURCES + 1);
        let flushed = a.flush();
        assert_eq!(flushed.len(), 1);
        assert!(
            flushed[0].starts_with("499 more TLS handshakes from more than 256 other addresses"),
            "{flushed:?}"
        );
    }
}
