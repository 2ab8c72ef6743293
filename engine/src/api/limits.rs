//! Per-caller request rates: a token bucket per bearer token (or per
//! client address for requests without one), answered 429 with
//! `Retry-After` (RFC 6585 §4) when empty. The operator's token is not
//! limited (it is the operator's own automation, and the way out of an
//! incident); every tenant token and every unauthenticated client is.
//!
//! The bucket table is bounded: at [`MAX_KEYS`] callers the stale ones
//! (full buckets) are dropped, so a client cycling through random tokens
//! cannot grow it without bound.
//!
//! Depends on: std only (the middleware that keys and answers is
//! `api::rate_limit`, beside the router).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Callers tracked at most.
pub const MAX_KEYS: usize = 10_000;

/// Who a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A bearer token (its SHA-256; valid or not).
    Token([u8; 32]),
    /// A client that sent no token.
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets: `rate` requests a second, bursts of `burst`.
pub struct RateLimiter {
    pub(crate) rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl RateLimiter {
    /// `rate` 0 turns limiting off.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request from `key`'s bucket at `now`: `Ok` or how long to wait.
    pub fn take(&self, key: Key, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_KEYS && !b.contains_key(&key) {
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, v| {
                v.tokens + now.saturating_duration_since(v.at).as_secs_f64() * rate < burst
            });
            if b.len() >= MAX_KEYS {
                b.clear();
            }
        }
        let e = b.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(e.at).as_secs_f64() * self.rate;
        e.tokens = (e.tokens + refill).min(self.burst);
        e.at = now;
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - e.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_callers_apart() {
        let l = RateLimiter::new(10, 20);
        let t0 = Instant::now();
        let a = Key::Token([1; 32]);
        let b = Key::Token([2; 32]);
        for _ in 0..20 {
            assert!(l.take(a, t0).is_ok());
        }
        let wait = l.take(a, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(l.take(b, t0).is_ok(), "another caller has its own bucket");
        // A second later, ten more.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..10 {
            assert!(l.take(a, t1).is_ok());
        }
        assert!(l.take(a, t1).is_err());
        assert!(RateLimiter::new(0, 1).take(a, t0).is_ok(), "0 is off");
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u32 * 2) {
            let _ = l.take(Key::Addr(IpAddr::from(i.to_be_bytes())), t0);
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
