//! How many enrollment requests that cost a write — a new pending key, a
//! refusal's audit event — one source address may make: a fixed window
//! per address, in memory. A pending agent asking again with its key, or
//! any request with a valid token, is not counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Requests that cost a write, per source address and minute.
pub const JOINS_PER_MINUTE: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past that, ended windows are forgotten
/// first, then every address.
const MAX_ADDRESSES: usize = 10_000;

pub struct JoinLimits {
    per_minute: u32,
    windows: std::sync::Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Default for JoinLimits {
    fn default() -> JoinLimits {
        JoinLimits::per_minute(JOINS_PER_MINUTE)
    }
}

impl JoinLimits {
    /// `n` a minute per address (the same counting serves other writes a
    /// caller can provoke, such as the audit event of a held session).
    pub fn per_minute(n: u32) -> JoinLimits {
        JoinLimits {
            per_minute: n,
            windows: Default::default(),
        }
    }

    /// Whether one more request from `ip` is allowed at `now`.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_ADDRESSES && !windows.contains_key(&ip) {
            windows.retain(|_, (opened, _)| now.duration_since(*opened) < WINDOW);
            if windows.len() >= MAX_ADDRESSES {
                windows.clear();
            }
        }
        let (opened, used) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*opened) >= WINDOW {
            (*opened, *used) = (now, 0);
        }
        if *used >= self.per_minute {
            return false;
        }
        *used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_share_per_minute() {
        let limits = JoinLimits::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..JOINS_PER_MINUTE {
            assert!(limits.admit(a, t0));
        }
        assert!(!limits.admit(a, t0 + Duration::from_secs(59)));
        assert!(limits.admit(b, t0), "another address is not held up");
        assert!(limits.admit(a, t0 + WINDOW), "a new minute");
    }
}
