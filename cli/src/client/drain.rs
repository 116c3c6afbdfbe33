//! The drain call: one stream that says what was stored and, when waiting,
//! follows the nodes until they are really out (or back in). Opened again
//! on the next master when its master goes away, with the same request id
//! and what is left of the wait: a drain makes nodes *be* out, so a second
//! delivery changes nothing, and the id makes the store see it once.

use super::failover::{Call, Outage, went_away};
use super::{Client, RequestId, Targeting, target_pb, unreadable};
use crate::Failure;
use cluster_model::rotation::DrainEvent;
use cluster_proto as pb;
use std::time::{Duration, Instant};

/// What a drain asks for.
#[derive(Debug, Clone)]
pub struct DrainAsk<'a> {
    pub target: &'a Targeting,
    pub offline: bool,
    pub maintenance: bool,
    pub reason: &'a str,
    pub by: &'a str,
    /// Follow until really out (or back in), for at most this long.
    pub wait: Option<Duration>,
}

/// What is left of a wait of `wait` that began `elapsed` ago, when a drain
/// is opened again: at least a second, so the master still says how it
/// ended.
fn left(wait: Duration, elapsed: Duration) -> Duration {
    wait.saturating_sub(elapsed).max(Duration::from_secs(1))
}

impl Client {
    /// Takes nodes out of service (or back in); calls `event` with each
    /// event of the drain as it happens: what was stored first, then, when
    /// waiting, acknowledgements, what is pending, and how it ended. A
    /// drain opened again on another master starts its events again.
    pub async fn drain(
        &mut self,
        ask: DrainAsk<'_>,
        mut event: impl FnMut(DrainEvent) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let id = RequestId::random();
        let started = Instant::now();
        let mut outage: Option<Outage> = None;
        loop {
            let wait = ask.wait.map(|w| left(w, started.elapsed()));
            let mut request = tonic::Request::new(pb::DrainRequest {
                names: Vec::new(),
                target: Some(target_pb(ask.target)),
                offline: ask.offline,
                reason: ask.reason.to_owned(),
                by: ask.by.to_owned(),
                maintenance: ask.maintenance,
                wait: wait.is_some(),
                timeout_ms: wait.map_or(0, |d| d.as_millis() as u64),
            });
            id.attach(&mut request);
            if let Some(w) = wait {
                // The master owns the deadline; this only bounds a master
                // that went silent (and then another master is asked).
                request.set_timeout(w + Duration::from_secs(10));
            }
            let failed = match self.control.drain(request).await {
                Err(status) => status,
                Ok(response) => {
                    let mut stream = response.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(ev)) => {
                                outage = None;
                                let ev = DrainEvent::try_from(ev).map_err(unreadable)?;
                                let done = matches!(ev, DrainEvent::Done { .. });
                                event(ev)?;
                                if done {
                                    return Ok(());
                                }
                            }
                            Ok(None) => return Ok(()),
                            Err(status) => break status,
                        }
                    }
                }
            };
            if !went_away(&failed) {
                return Err(Failure::from_status(failed));
            }
            let outage = outage.get_or_insert_with(|| Outage::new(Call::Write));
            self.failover(outage, &failed).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::left;
    use std::time::Duration;

    #[test]
    fn a_drain_opened_again_waits_for_what_is_left() {
        let s = Duration::from_secs;
        assert_eq!(left(s(30), s(0)), s(30));
        assert_eq!(left(s(30), s(12)), s(18));
        assert_eq!(left(s(30), s(29)), s(1));
        assert_eq!(left(s(30), s(45)), s(1));
    }
}
