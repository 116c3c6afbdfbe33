//! Retrying a list of masters, the same for agents and clusterctl: the
//! order each process tries them in, and the wait after a whole pass of
//! them failed.

use std::time::Duration;

/// `masters` shuffled (Fisher–Yates) with `below(n)`, a random number in
/// `0..n`.
pub fn shuffled(masters: &[String], mut below: impl FnMut(usize) -> usize) -> Vec<String> {
    let mut order = masters.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, below(i + 1).min(i));
    }
    order
}

/// The wait after `pass` (0-based) whole passes failed in a row: "full
/// jitter", anywhere from `min` up to a window that doubles from `2 × min`
/// to `max`, so a fleet that lost its masters does not come back in
/// lockstep. `unit` is a random number in [0, 1).
pub fn backoff(pass: u32, min: Duration, max: Duration, unit: f64) -> Duration {
    let top = min
        .saturating_mul(1u32 << (pass.min(20) + 1))
        .min(max)
        .max(min);
    min + (top - min).mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_between_min_and_a_doubling_cap() {
        let ms = Duration::from_millis;
        let (min, max) = (ms(100), ms(5000));
        assert_eq!(backoff(0, min, max, 0.0), ms(100));
        assert_eq!(backoff(0, min, max, 0.5), ms(150));
        assert_eq!(backoff(0, min, max, 1.0), ms(200));
        assert_eq!(backoff(2, min, max, 1.0), ms(800));
        assert_eq!(backoff(4, min, max, 1.0), ms(3200));
        assert_eq!(backoff(5, min, max, 1.0), ms(5000));
        assert_eq!(backoff(5, min, max, 0.0), ms(100));
        assert_eq!(backoff(u32::MAX, min, max, 0.5), ms(2550));
        for pass in 0..40 {
            for unit in [0.0, 0.3, 0.999, 1.0, 7.0, -1.0] {
                let d = backoff(pass, min, max, unit);
                assert!(d >= min && d <= max, "{pass} {unit}: {d:?}");
            }
        }
        // min == max: always that.
        assert_eq!(backoff(3, ms(50), ms(50), 0.9), ms(50));
    }

    #[test]
    fn a_shuffle_keeps_every_master_once() {
        let all: Vec<String> = (1..=5).map(|i| format!("m{i}")).collect();
        let mut state = 7usize;
        let mut below = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let mut order = shuffled(&all, &mut below);
        order.sort();
        assert_eq!(order, all);
        // below(n) = n - 1 everywhere: the identity.
        assert_eq!(shuffled(&all, |n| n - 1), all);
    }
}
