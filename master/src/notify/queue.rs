//! One destination's bounded queue and the worker task that empties it:
//! the only place that retries, gives up, and reports.
//!
//! Whoever enqueues ([`Queue::push`]) takes a short lock and never waits
//! for the network. The worker delivers the oldest notices (one, or all
//! of them for Alertmanager, [`Deliver::batch`]); a failure is retried
//! after [`Retry::delay`] — exponential, with jitter — until the sink
//! works again or the notice is older than `give_up_after`. A full queue
//! drops its oldest notice, as Prometheus's notifier does. What is
//! reported ([`DeliveryReport`]): a notice's first failure, its giving up
//! or dropping, and the sink's recovery; never each retry.

use super::{DeliveryFailure, DeliveryReport, GiveUp, SinkName};
use cluster_model::alerts::Notice;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Deliveries per sink kind and result (`ok`, `failed`, `given_up`,
/// `dropped`), for `/metrics`.
pub type Deliveries = Family<[(&'static str, &'static str); 2], Counter>;

/// A destination: how it delivers, and how much at a time.
#[async_trait::async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// How many waiting notices one delivery carries.
    fn batch(&self) -> usize {
        1
    }

    /// Delivery on its own every so often, with nothing queued
    /// (Alertmanager's re-send of the firing alerts).
    fn resend(&self) -> Option<Duration> {
        None
    }

    /// What an empty delivery (a re-send) is about, for a report.
    fn resend_summary(&self) -> String {
        String::new()
    }

    /// Delivers `notices` (empty: a re-send); `now` is the wall clock.
    async fn deliver(&self, notices: &[Notice], now: SystemTime)
    -> Result<(), super::DeliverError>;
}

/// The retry schedule: `first`, doubling to `max`, each delay drawn
/// between half and all of it so that sinks failing together do not retry
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub first: Duration,
    pub max: Duration,
}

impl Retry {
    pub const DEFAULT: Retry = Retry {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    /// The wait after the `failures`-th failure in a row (from 1);
    /// `random` is uniform in [0, 1).
    pub fn delay(&self, failures: u32, random: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = self.first.saturating_mul(1 << doublings).min(self.max);
        full.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    notice: Notice,
    queued_at: Instant,
    /// Failed deliveries that carried it.
    attempts: u32,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    /// Pushed out of a full queue, to be reported by the worker (so that
    /// pushing never waits on the report channel).
    dropped: Vec<Entry>,
    next_seq: u64,
    /// Deliver now even with nothing queued (a restored firing set).
    kick: bool,
}

pub struct Queue {
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            inner: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues without waiting; when full, the oldest notice makes room.
    pub fn push(&self, notice: Notice) {
        let mut inner = self.lock();
        if inner.entries.len() >= self.capacity
            && let Some(old) = inner.entries.pop_front()
        {
            inner.dropped.push(old);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.push_back(Entry {
            seq,
            notice,
            queued_at: Instant::now(),
            attempts: 0,
        });
        drop(inner);
        self.wake.notify_one();
    }

    /// Asks for a delivery now, queued notices or not.
    pub fn kick(&self) {
        self.lock().kick = true;
        self.wake.notify_one();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// The task that empties one queue.
pub struct Worker {
    pub sink: Arc<dyn Deliver>,
    pub name: SinkName,
    pub queue: Arc<Queue>,
    pub reports: UnboundedSender<DeliveryReport>,
    pub retry: Retry,
    pub give_up_after: Duration,
    pub deliveries: Deliveries,
}

impl Worker {
    /// Runs until `shutdown`; what is still queued then is reported given
    /// up. A delivery in flight is finished first (each is bounded by its
    /// client's timeout).
    pub async fn run(self, shutdown: CancellationToken) {
        let resend = self.sink.resend();
        let mut next_resend = resend.map(|r| Instant::now() + r);
        let mut failures = 0u32;
        loop {
            self.report_dropped();
            let (batch, kicked) = {
                let mut inner = self.queue.lock();
                let batch: Vec<Entry> = inner
                    .entries
                    .iter()
                    .take(self.sink.batch())
                    .cloned()
                    .collect();
                (batch, std::mem::take(&mut inner.kick))
            };
            if batch.is_empty() && !kicked {
                let resend_due = async {
                    match next_resend {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.queue.wake.notified() => continue,
                    _ = resend_due => {}
                }
            }
            let notices: Vec<Notice> = batch.iter().map(|e| e.notice.clone()).collect();
            let result = self.sink.deliver(&notices, SystemTime::now()).await;
            match result {
                Ok(()) => {
                    self.delivered(&batch);
                    self.count("ok", batch.len().max(1));
                    if failures > 0 {
                        let _ = self.reports.send(DeliveryReport::Recovered {
                            sink: self.name.clone(),
                            failed_attempts: failures,
                        });
                    }
                    failures = 0;
                    next_resend = resend.map(|r| Instant::now() + r);
                }
                Err(error) => {
                    failures += 1;
                    self.count("failed", batch.len().max(1));
                    self.failed(&batch, failures, &error.to_string());
                    let delay = self.retry.delay(failures, fastrand::f64());
                    if self.backoff(delay, &shutdown).await.is_break() {
                        break;
                    }
                }
            }
        }
        self.stopping();
    }

    /// Removes what was delivered; a notice pushed out of the queue while
    /// it was on its way is not reported as dropped.
    fn delivered(&self, batch: &[Entry]) {
        let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
        let mut inner = self.queue.lock();
        inner.entries.retain(|e| !seqs.contains(&e.seq));
        inner.dropped.retain(|e| !seqs.contains(&e.seq));
    }

    /// Reports each notice's first failure (a re-send's, once per run of
    /// failures), then gives up what is too old.
    fn failed(&self, batch: &[Entry], failures: u32, error: &str) {
        if batch.is_empty() && failures == 1 {
            self.report(self.sink.resend_summary(), 1, error, None);
        }
        let mut expired = Vec::new();
        {
            let mut inner = self.queue.lock();
            let give_up_after = self.give_up_after;
            for e in inner.entries.iter_mut() {
                if batch.iter().any(|b| b.seq == e.seq) {
                    e.attempts += 1;
                    if e.attempts == 1 {
                        self.report(e.notice.summary(), 1, error, None);
                    }
                }
            }
            inner.entries.retain(|e| {
                let keep = e.queued_at.elapsed() < give_up_after;
                if !keep {
                    expired.push(e.clone());
                }
                keep
            });
        }
        self.count("given_up", expired.len());
        for e in expired {
            let why = format!(
                "given up after {}: {error}",
                humantime::format_duration(self.give_up_after)
            );
            self.report(e.notice.summary(), e.attempts, &why, Some(GiveUp::Expired));
        }
    }

    /// Waits out a retry delay; what is dropped meanwhile is reported at
    /// once (what is pushed waits: the main loop reads the queue after).
    async fn backoff(
        &self,
        delay: Duration,
        shutdown: &CancellationToken,
    ) -> std::ops::ControlFlow<()> {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return std::ops::ControlFlow::Break(()),
                _ = tokio::time::sleep_until(until) => return std::ops::ControlFlow::Continue(()),
                _ = self.queue.wake.notified() => self.report_dropped(),
            }
        }
    }

    fn report_dropped(&self) {
        let dropped = std::mem::take(&mut self.queue.lock().dropped);
        self.count("dropped", dropped.len());
        for e in dropped {
            let why = format!(
                "the queue is full ({} notices): the oldest is dropped",
                self.queue.capacity
            );
            self.report(
                e.notice.summary(),
                e.attempts,
                &why,
                Some(GiveUp::QueueFull),
            );
        }
    }

    fn stopping(&self) {
        self.report_dropped();
        let left: Vec<Entry> = self.queue.lock().entries.drain(..).collect();
        self.count("given_up", left.len());
        for e in left {
            self.report(
                e.notice.summary(),
                e.attempts,
                "the master is stopping",
                Some(GiveUp::Stopped),
            );
        }
    }

    fn report(&self, notice: String, attempt: u32, error: &str, given_up: Option<GiveUp>) {
        let _ = self.reports.send(DeliveryReport::Failure(DeliveryFailure {
            sink: self.name.clone(),
            notice,
            attempt,
            error: error.to_owned(),
            given_up,
        }));
    }

    fn count(&self, result: &'static str, n: usize) {
        if n > 0 {
            self.deliveries
                .get_or_create(&[("sink", self.name.kind.as_str()), ("result", result)])
                .inc_by(n as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{DeliverError, SinkKind};
    use cluster_model::alerts::{Metric, NoticeStatus, Severity};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    #[test]
    fn the_backoff_doubles_from_a_second_to_a_minute_with_jitter() {
        let r = Retry::DEFAULT;
        let secs = |failures, random| r.delay(failures, random).as_secs_f64();
        // The longest wait after each failure in a row …
        let longest: Vec<f64> = (1..=9).map(|n| secs(n, 1.0)).collect();
        assert_eq!(longest, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
        // … and the shortest, half of it.
        let shortest: Vec<f64> = (1..=8).map(|n| secs(n, 0.0)).collect();
        assert_eq!(shortest, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
        assert_eq!(secs(4, 0.5), 6.0);
        assert_eq!(secs(u32::MAX, 1.0), 60.0);
    }

    /// Fails while `down`, counting attempts.
    struct Fake {
        down: AtomicBool,
        attempts: AtomicUsize,
        delivered: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Deliver for Fake {
        async fn deliver(&self, notices: &[Notice], _: SystemTime) -> Result<(), DeliverError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(DeliverError::Status {
                    status: 503,
                    body: "down".into(),
                });
            }
            let mut d = self.delivered.lock().unwrap();
            d.extend(notices.iter().map(|n| n.node.clone()));
            Ok(())
        }
    }

    fn notice(node: &str) -> Notice {
        Notice {
            status: NoticeStatus::Firing,
            node: node.into(),
            roles: vec![],
            metric: Metric::Cpu,
            device: String::new(),
            severity: Severity::Critical,
            value: 97.0,
            threshold: 90.0,
            starts_at_ms: 0,
            ends_at_ms: None,
            why: String::new(),
        }
    }

    struct Rig {
        fake: Arc<Fake>,
        queue: Arc<Queue>,
        reports: mpsc::UnboundedReceiver<DeliveryReport>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn rig(capacity: usize, down: bool, give_up_after: Duration) -> Rig {
        let fake = Arc::new(Fake {
            down: AtomicBool::new(down),
            attempts: AtomicUsize::new(0),
            delivered: Mutex::default(),
        });
        let queue = Arc::new(Queue::new(capacity));
        let (tx, reports) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let worker = Worker {
            sink: fake.clone(),
            name: SinkName {
                kind: SinkKind::Webhook,
                target: "http://x".into(),
            },
            queue: queue.clone(),
            reports: tx,
            retry: Retry::DEFAULT,
            give_up_after,
            deliveries: Deliveries::default(),
        };
        let task = tokio::spawn(worker.run(shutdown.clone()));
        Rig {
            fake,
            queue,
            reports,
            shutdown,
            task,
        }
    }

    fn failure(r: DeliveryReport) -> DeliveryFailure {
        match r {
            DeliveryReport::Failure(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_reported_once_then_the_recovery() {
        let mut r = rig(10, true, Duration::from_secs(3600));
        r.queue.push(notice("web-1"));
        let first = failure(r.reports.recv().await.unwrap());
        assert_eq!(first.notice, "web-1 cpu critical: 97.0% ≥ 90.0%");
        assert_eq!((first.attempt, first.given_up), (1, None));
        assert!(first.error.contains("503"), "{}", first.error);
        // Retries go on (1 s, 2 s, 4 s …) without a report each.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let attempts = r.fake.attempts.load(Ordering::SeqCst);
        assert!((4..=7).contains(&attempts), "{attempts} attempts in 20s");
        assert!(r.reports.try_recv().is_err(), "a retry was reported");
        r.fake.down.store(false, Ordering::SeqCst);
        match r.reports.recv().await.unwrap() {
            DeliveryReport::Recovered {
                failed_attempts, ..
            } => assert_eq!(failed_attempts as usize, attempts),
            other => panic!("{other:?}"),
        }
        assert_eq!(*r.fake.delivered.lock().unwrap(), ["web-1"]);
        assert_eq!(r.queue.len(), 0);
        r.shutdown.cancel();
        r.task.await.unwrap();
        assert!(r.reports.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_notice_is_given_up() {
        let mut r = rig(10, true, Duration::from_secs(30));
        r.queue.push(notice("web-1"));
        assert_eq!(failure(r.reports.recv().await.unwrap()).attempt, 1);
        let gave_up = failure(r.reports.recv().await.unwrap());
        assert_eq!(gave_up.given_up, Some(GiveUp::Expired));
        assert!(gave_up.attempt > 1);
        assert!(
            gave_up.error.starts_with("given up after 30s: "),
            "{}",
            gave_up.error
        );
        assert_eq!(r.queue.len(), 0);
        r.shutdown.cancel();
        r.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_its_oldest_and_says_so() {
        let mut r = rig(2, true, Duration::from_secs(3600));
        r.queue.push(notice("web-1"));
        assert_eq!(
            failure(r.reports.recv().await.unwrap()).notice,
            "web-1 cpu critical: 97.0% ≥ 90.0%"
        );
        // While the worker waits to retry: web-2 fits, web-3 pushes web-1 out.
        r.queue.push(notice("web-2"));
        r.queue.push(notice("web-3"));
        let dropped = failure(r.reports.recv().await.unwrap());
        assert_eq!(dropped.given_up, Some(GiveUp::QueueFull));
        assert!(dropped.notice.starts_with("web-1 "), "{}", dropped.notice);
        assert_eq!(dropped.attempt, 1);
        assert!(
            dropped.error.contains("the queue is full (2 notices)"),
            "{}",
            dropped.error
        );
        assert_eq!(r.queue.len(), 2);
        r.fake.down.store(false, Ordering::SeqCst);
        // web-2's first failure may come before the recovery.
        loop {
            match r.reports.recv().await.unwrap() {
                DeliveryReport::Recovered { .. } => break,
                DeliveryReport::Failure(f) => assert_eq!((f.attempt, f.given_up), (1, None)),
            }
        }
        tokio_wait(|| r.fake.delivered.lock().unwrap().len() == 2).await;
        assert_eq!(*r.fake.delivered.lock().unwrap(), ["web-2", "web-3"]);
        r.shutdown.cancel();
        r.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_left_at_shutdown_is_reported() {
        let mut r = rig(10, true, Duration::from_secs(3600));
        r.queue.push(notice("web-1"));
        assert_eq!(failure(r.reports.recv().await.unwrap()).attempt, 1);
        r.shutdown.cancel();
        r.task.await.unwrap();
        let left = failure(r.reports.recv().await.unwrap());
        assert_eq!(left.given_up, Some(GiveUp::Stopped));
    }

    async fn tokio_wait(mut done: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not done within 100 s of paused time");
    }
}
