//! Choosing a server, pure: nginx's smooth weighted round robin and its
//! passive health (`max_fails` / `fail_timeout`), over plain data with the
//! time passed in. Locking, connections and counters live in
//! [`super::upstream`]; this file only decides.
//!
//! The state machine is `ngx_http_upstream_round_robin.c`'s:
//!
//! - a pick adds each eligible server's *effective* weight to its *current*
//!   weight, takes the largest (the first one on a tie) and subtracts the
//!   total from it;
//! - a failure bumps `fails`, stamps `accessed` and `checked`, and lowers the
//!   effective weight by `weight / max_fails` (it climbs back by one per pick);
//! - a server with `fails >= max_fails` is out until `fail_timeout` after
//!   `checked`; the first pick after that moves `checked` to now, so exactly
//!   one request probes it, and everything else keeps avoiding it until the
//!   probe's answer: success resets `fails`, failure starts another
//!   `fail_timeout`;
//! - backups are considered only when no primary is eligible.
//!
//! Two deliberate differences, both documented on [`Pool::pick`] and
//! [`Pool::failed`]: failures older than `fail_timeout` are forgotten
//! (nginx only forgets them after a later success), and when *every* server
//! is out the pool resets them all and tries anyway (old nginx's "mark them
//! as live for quick recovery"; a 502 without even trying would turn a blip
//! into an outage).

use std::time::{Duration, Instant};

/// A server's balancing parameters, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub weight: u32,
    /// 0: never out.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub backup: bool,
}

impl From<&cluster_balancer::Server> for Params {
    fn from(s: &cluster_balancer::Server) -> Params {
        Params {
            weight: s.weight.max(1),
            max_fails: s.max_fails,
            fail_timeout: Duration::from_millis(s.fail_timeout_ms),
            backup: s.backup,
        }
    }
}

/// One server and its balancing state; `key` is whatever the caller
/// identifies servers by.
#[derive(Debug, Clone)]
pub struct Member<K> {
    pub key: K,
    pub params: Params,
    current: i64,
    effective: i64,
    fails: u32,
    /// When the last failure happened.
    accessed: Option<Instant>,
    /// When the last failure happened or the last probe was let through.
    checked: Option<Instant>,
}

impl<K> Member<K> {
    pub fn new(key: K, params: Params) -> Member<K> {
        Member {
            key,
            params,
            current: 0,
            effective: i64::from(params.weight),
            fails: 0,
            accessed: None,
            checked: None,
        }
    }

    /// Until when the server is out, if it is now.
    pub fn ejected_until(&self, now: Instant) -> Option<Instant> {
        let until = self.checked? + self.params.fail_timeout;
        (self.is_out_at(now)).then_some(until)
    }

    /// `now` is `None` when no server of the pool has failures on record.
    fn is_out(&self, now: Option<Instant>) -> bool {
        now.is_some_and(|now| self.is_out_at(now))
    }

    fn is_out_at(&self, now: Instant) -> bool {
        self.params.max_fails > 0
            && self.fails >= self.params.max_fails
            && self
                .checked
                .is_some_and(|c| now.saturating_duration_since(c) <= self.params.fail_timeout)
    }

    /// Takes the parameters of a new configuration, keeping the state.
    fn reconfigure(&mut self, params: Params) {
        if params.weight != self.params.weight {
            self.effective = i64::from(params.weight);
        }
        self.params = params;
    }
}

/// The servers of one upstream, in configuration order.
#[derive(Debug, Clone)]
pub struct Pool<K> {
    members: Vec<Member<K>>,
}

impl<K> Default for Pool<K> {
    fn default() -> Self {
        Pool {
            members: Vec::new(),
        }
    }
}

impl<K> Pool<K> {
    pub fn members(&self) -> &[Member<K>] {
        &self.members
    }

    /// Replaces the server list. A server that stays (same `same(old, new)`)
    /// keeps its weights and failure counters; the ones that go are returned.
    pub fn replace(
        &mut self,
        servers: impl IntoIterator<Item = (K, Params)>,
        same: impl Fn(&K, &K) -> bool,
    ) -> Vec<Member<K>> {
        let mut old = std::mem::take(&mut self.members);
        for (key, params) in servers {
            match old.iter().position(|m| same(&m.key, &key)) {
                Some(i) => {
                    let mut m = old.swap_remove(i);
                    m.key = key;
                    m.reconfigure(params);
                    self.members.push(m);
                }
                None => self.members.push(Member::new(key, params)),
            }
        }
        old
    }

    /// Picks a server among those `skip` does not exclude (the ones this
    /// request already tried): an eligible primary by smooth weighted round
    /// robin, else an eligible backup. When no server of the whole pool is
    /// eligible, every failure counter is reset and the pick is made as if
    /// all were in; `None` only when every server has been tried.
    ///
    /// `now` is asked only when some server has failures on record: with
    /// none, time plays no part.
    pub fn pick(
        &mut self,
        now: impl FnOnce() -> Instant,
        skip: impl Fn(&K) -> bool,
    ) -> Option<usize> {
        let now = self.members.iter().any(|m| m.fails > 0).then(now);
        if let Some(i) = self.pick_among(now, &skip, false) {
            return Some(i);
        }
        if let Some(i) = self.pick_among(now, &skip, true) {
            return Some(i);
        }
        if self.members.iter().any(|m| !m.is_out(now)) {
            // Some server is in but this request has tried it already.
            return None;
        }
        for m in &mut self.members {
            m.fails = 0;
        }
        self.pick_among(now, &skip, false)
            .or_else(|| self.pick_among(now, &skip, true))
    }

    fn pick_among(
        &mut self,
        now: Option<Instant>,
        skip: &impl Fn(&K) -> bool,
        backup: bool,
    ) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        let mut total = 0i64;
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.params.backup != backup || skip(&m.key) || m.is_out(now) {
                continue;
            }
            m.current += m.effective;
            total += m.effective;
            if m.effective < i64::from(m.params.weight) {
                m.effective += 1;
            }
            if best.is_none_or(|(_, current)| m.current > current) {
                best = Some((i, m.current));
            }
        }
        let (i, _) = best?;
        let chosen = &mut self.members[i];
        chosen.current -= total;
        // Without failures on record `checked` is never read.
        if let Some(now) = now.filter(|_| chosen.fails > 0)
            && chosen
                .checked
                .is_none_or(|c| now.saturating_duration_since(c) > chosen.params.fail_timeout)
        {
            chosen.checked = Some(now);
        }
        Some(i)
    }

    /// The request to `members()[i]` failed (connect error or timeout, or
    /// no response head). A failure more than `fail_timeout` after the
    /// previous one starts the count again, so `max_fails` failures must
    /// fall within `fail_timeout` of each other to put the server out.
    pub fn failed(&mut self, i: usize, now: Instant) {
        let Some(m) = self.members.get_mut(i) else {
            return;
        };
        let stale = m
            .accessed
            .is_some_and(|a| now.saturating_duration_since(a) > m.params.fail_timeout);
        if stale && m.fails < m.params.max_fails {
            m.fails = 0;
        }
        m.fails = m.fails.saturating_add(1);
        m.accessed = Some(now);
        m.checked = Some(now);
        if let Some(step) = m.params.weight.checked_div(m.params.max_fails) {
            m.effective -= i64::from(step);
        }
        m.effective = m.effective.max(0);
    }

    /// The request to `members()[i]` got a response head: a probe that
    /// succeeded puts the server back in.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(m) = self.members.get_mut(i)
            && m.accessed < m.checked
        {
            m.fails = 0;
        }
    }

    /// Whether `members()[i]` has failures on record (so a success must be
    /// reported to clear them).
    pub fn has_fails(&self, i: usize) -> bool {
        self.members.get(i).is_some_and(|m| m.fails > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(weight: u32) -> Params {
        Params {
            weight,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
        }
    }

    fn pool(servers: &[(&'static str, Params)]) -> Pool<&'static str> {
        let mut p = Pool::default();
        p.replace(servers.iter().copied(), |a, b| a == b);
        p
    }

    /// `n` picks at `now`, none skipped, as a string of keys.
    fn picks(p: &mut Pool<&'static str>, now: Instant, n: usize) -> String {
        (0..n)
            .map(|_| {
                p.pick(|| now, |_| false)
                    .map_or("-", |i| p.members()[i].key)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn weights_5_1_1_give_nginx_sequence() {
        let mut p = pool(&[("a", params(5)), ("b", params(1)), ("c", params(1))]);
        let now = Instant::now();
        assert_eq!(picks(&mut p, now, 7), "a a b a c a a");
        assert_eq!(picks(&mut p, now, 7), "a a b a c a a");
    }

    #[test]
    fn equal_weights_alternate() {
        let mut p = pool(&[("a", params(1)), ("b", params(1)), ("c", params(1))]);
        assert_eq!(picks(&mut p, Instant::now(), 6), "a b c a b c");
    }

    #[test]
    fn backups_serve_only_while_every_primary_is_out() {
        let backup = Params {
            backup: true,
            ..params(1)
        };
        let mut p = pool(&[("a", params(1)), ("b", params(1)), ("z", backup)]);
        let t0 = Instant::now();
        assert_eq!(picks(&mut p, t0, 4), "a b a b");
        p.failed(0, t0);
        assert_eq!(picks(&mut p, t0, 2), "b b");
        p.failed(1, t0);
        assert_eq!(picks(&mut p, t0, 2), "z z");
        let later = t0 + Duration::from_secs(11);
        let first = picks(&mut p, later, 1);
        assert!(first == "a" || first == "b", "{first}");
    }

    #[test]
    fn max_fails_within_fail_timeout_ejects_and_one_probe_returns_it() {
        let two = Params {
            max_fails: 2,
            ..params(1)
        };
        let mut p = pool(&[("a", two), ("b", two)]);
        let t0 = Instant::now();
        p.failed(0, t0);
        assert_eq!(p.members()[0].ejected_until(t0), None, "one failure of two");
        p.failed(0, t0 + Duration::from_secs(1));
        let out_until = t0 + Duration::from_secs(11);
        assert_eq!(
            p.members()[0].ejected_until(t0 + Duration::from_secs(1)),
            Some(out_until)
        );
        assert_eq!(picks(&mut p, t0 + Duration::from_secs(5), 3), "b b b");
        assert_eq!(
            picks(&mut p, out_until, 2),
            "b b",
            "still out at the boundary"
        );

        // After fail_timeout one request probes "a"; the others avoid it
        // until the probe answers.
        let t1 = out_until + Duration::from_millis(1);
        let probe = p.pick(|| t1, |_| false).unwrap();
        let probe = if p.members()[probe].key == "a" {
            probe
        } else {
            p.pick(|| t1, |_| false).unwrap()
        };
        assert_eq!(p.members()[probe].key, "a");
        assert_eq!(picks(&mut p, t1, 3), "b b b");
        p.succeeded(probe);
        assert!(!p.has_fails(probe));
        let seq = picks(&mut p, t1, 4);
        assert_eq!(seq.matches('a').count(), 2, "{seq}");
    }

    #[test]
    fn a_failed_probe_keeps_the_server_out_for_another_fail_timeout() {
        let mut p = pool(&[("a", params(1)), ("b", params(1))]);
        let t0 = Instant::now();
        p.failed(0, t0);
        let t1 = t0 + Duration::from_secs(11);
        let probe = (0..2).find_map(|_| p.pick(|| t1, |_| false).filter(|&i| i == 0));
        assert_eq!(probe, Some(0));
        p.failed(0, t1);
        assert_eq!(picks(&mut p, t1 + Duration::from_secs(9), 3), "b b b");
    }

    #[test]
    fn failures_further_apart_than_fail_timeout_do_not_add_up() {
        let three = Params {
            max_fails: 2,
            ..params(1)
        };
        let mut p = pool(&[("a", three), ("b", three)]);
        let t0 = Instant::now();
        p.failed(0, t0);
        p.failed(0, t0 + Duration::from_secs(11));
        assert_eq!(
            p.members()[0].ejected_until(t0 + Duration::from_secs(11)),
            None
        );
    }

    #[test]
    fn max_fails_zero_never_ejects() {
        let never = Params {
            max_fails: 0,
            ..params(1)
        };
        let mut p = pool(&[("a", never), ("b", never)]);
        let t0 = Instant::now();
        for _ in 0..10 {
            p.failed(0, t0);
        }
        assert_eq!(picks(&mut p, t0, 4), "a b a b");
    }

    #[test]
    fn when_every_server_is_out_all_are_reset_and_tried() {
        let mut p = pool(&[("a", params(1)), ("b", params(1))]);
        let t0 = Instant::now();
        p.failed(0, t0);
        p.failed(1, t0);
        // Both effective weights fell to 0 with the failures and climb
        // back one per pick: "a" wins the first two ties.
        assert_eq!(picks(&mut p, t0, 3), "a a b");
        assert!(!p.has_fails(0) && !p.has_fails(1));
    }

    #[test]
    fn tried_servers_are_skipped_and_none_is_left_at_the_end() {
        let mut p = pool(&[("a", params(1)), ("b", params(1))]);
        let t0 = Instant::now();
        assert_eq!(
            p.pick(|| t0, |k| *k == "a").map(|i| p.members()[i].key),
            Some("b")
        );
        assert_eq!(p.pick(|| t0, |_| true), None);
        // "a" failed and is out, "b" is in but tried: nothing left.
        p.failed(0, t0);
        assert_eq!(p.pick(|| t0, |k| *k == "b"), None);
    }

    #[test]
    fn replace_keeps_the_state_of_servers_that_stay() {
        let mut p = pool(&[("a", params(5)), ("b", params(1)), ("c", params(1))]);
        let t0 = Instant::now();
        assert_eq!(picks(&mut p, t0, 3), "a a b");
        p.failed(2, t0);
        let gone = p.replace([("c", params(1)), ("a", params(5))], |x, y| x == y);
        assert_eq!(gone.iter().map(|m| m.key).collect::<Vec<_>>(), ["b"]);
        assert_eq!(
            p.members()[0].ejected_until(t0),
            Some(t0 + Duration::from_secs(10))
        );
        assert_eq!(picks(&mut p, t0, 2), "a a");
    }

    #[test]
    fn a_failure_lowers_the_effective_weight_which_climbs_back() {
        let mut p = pool(&[
            (
                "a",
                Params {
                    max_fails: 5,
                    ..params(5)
                },
            ),
            (
                "b",
                Params {
                    max_fails: 5,
                    ..params(5)
                },
            ),
        ]);
        let t0 = Instant::now();
        p.failed(0, t0);
        assert_eq!(p.members()[0].effective, 4);
        p.pick(|| t0, |_| false);
        assert_eq!(p.members()[0].effective, 5);
    }
}
