//! Which master the agent tries next, and how long it waits first. The
//! configured masters are tried in a random order of this agent's own (so
//! a fleet spreads over them), each in turn: an attempt that failed and a
//! session that ended both move on to the next master at once. Only a
//! whole pass of failures makes the agent wait, with full jitter, before
//! the next pass. Pure: randomness is an argument.

use std::time::Duration;

/// How long reaching one master may take — TCP, TLS and HTTP/2 — before
/// the next one is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The masters in the order this agent tries them, and where it is.
#[derive(Debug, Clone)]
pub struct Rotation {
    order: Vec<String>,
    at: usize,
    /// Attempts that failed in a row: a pass is over when every master
    /// failed once.
    failed: usize,
    /// Whole passes that failed in a row: the backoff's exponent.
    passes: u32,
}

impl Rotation {
    /// `masters` shuffled with `below(n)`, a random number in `0..n`.
    /// There is always at least one master (the configuration makes sure).
    pub fn new(masters: &[String], below: impl FnMut(usize) -> usize) -> Rotation {
        assert!(!masters.is_empty(), "at least one master");
        Rotation {
            order: cluster_model::retry::shuffled(masters, below),
            at: 0,
            failed: 0,
            passes: 0,
        }
    }

    /// The master to try now.
    pub fn current(&self) -> &str {
        &self.order[self.at]
    }

    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// The current master answered (an enrollment accepted or pending):
    /// stay with it; failures count afresh.
    pub fn answered(&mut self) {
        self.failed = 0;
        self.passes = 0;
    }

    /// A good session ended: on to the next master, at once.
    pub fn ended(&mut self) {
        self.answered();
        self.advance();
    }

    /// The attempt failed: on to the next master. `Some(pass)` when that
    /// was the last of a whole pass of failures — wait
    /// [`backoff`]`(pass, …)` first; `pass` counts such passes in a row
    /// from 0.
    pub fn failed(&mut self) -> Option<u32> {
        self.advance();
        self.failed += 1;
        if self.failed < self.order.len() {
            return None;
        }
        self.failed = 0;
        let pass = self.passes;
        self.passes = self.passes.saturating_add(1);
        Some(pass)
    }

    fn advance(&mut self) {
        self.at = (self.at + 1) % self.order.len();
    }
}

pub use cluster_model::retry::backoff;

#[cfg(test)]
mod tests {
    use super::*;

    fn masters(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("https://m{i}:7440")).collect()
    }

    /// The masters tried, by number, as `steps` happen: `f` a failed
    /// attempt, `e` a good session that ended, `a` an answer; `|` marks a
    /// backoff (with its pass) after a whole pass failed.
    fn walk(n: usize, steps: &str) -> String {
        let mut r = Rotation::new(&masters(n), |_| 0);
        let mut out = String::new();
        for step in steps.chars() {
            out.push_str(&r.current()["https://m".len()..][..1]);
            match step {
                'f' => {
                    if let Some(pass) = r.failed() {
                        out.push_str(&format!("|{pass}"));
                    }
                }
                'e' => r.ended(),
                'a' => r.answered(),
                _ => unreachable!(),
            }
            out.push(' ');
        }
        out.trim_end().to_owned()
    }

    #[test]
    fn every_master_is_tried_before_a_backoff() {
        // `below` always 0: the order is 2 3 1.
        assert_eq!(walk(3, "fff"), "2 3 1|0");
        assert_eq!(walk(3, "ffffff"), "2 3 1|0 2 3 1|1");
        // A session that ended moves on to the next master, without a wait.
        assert_eq!(walk(3, "effe"), "2 3 1 2");
        // After a good session, a pass starts afresh: three more failures.
        assert_eq!(walk(3, "ffefff"), "2 3 1 2 3 1|0");
        // One master: every failure is a whole pass.
        assert_eq!(walk(1, "fffe"), "1|0 1|1 1|2 1");
        // An answer (a pending enrollment) stays with the master and
        // resets the passes.
        assert_eq!(walk(2, "ffaff"), "2 1|0 2 2 1|0");
    }

    #[test]
    fn the_order_is_a_shuffle_of_every_master() {
        let all = masters(5);
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let r = Rotation::new(&all, |n| rng.usize(..n));
            let mut sorted = r.order().to_vec();
            sorted.sort();
            assert_eq!(sorted, all);
            seen.insert(r.order()[0].clone());
        }
        assert_eq!(seen.len(), 5, "every master comes first sometimes");
        // `below` that returns its largest value keeps the order.
        let r = Rotation::new(&all, |n| n - 1);
        assert_eq!(r.order(), all);
    }
}
