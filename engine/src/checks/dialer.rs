//! Admission of calls: a calls-per-second token bucket and a concurrent-call
//! limit, for the trunk and for each tenant, with tenants served in turn so
//! that one municipality's 09:00 burst cannot starve another's.
//! Pure logic with time passed in.
//!
//! Depends on: nothing outside std.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, at most `burst` saved.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        let burst = burst.max(1.0);
        TokenBucket {
            rate: rate.max(0.001),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Take a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn has(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    /// Give back a token taken for nothing (at most the burst is saved).
    pub fn give_back(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }

    /// When the next token will be there.
    pub fn next_token(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[derive(Debug)]
struct Lane {
    bucket: Option<TokenBucket>,
    max_calls: Option<u32>,
    active: u32,
}

/// The dialer's admission state.
#[derive(Debug)]
pub struct Admission {
    trunk: TokenBucket,
    trunk_max: u32,
    active: u32,
    tenants: HashMap<u64, Lane>,
}

/// Why a call was not admitted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Come back at this instant (a token will be there).
    RateUntil(Instant),
    /// Wait for a call to end.
    Concurrency,
}

impl Admission {
    pub fn new(trunk_cps: f64, trunk_max_calls: u32, now: Instant) -> Admission {
        Admission {
            // A burst of one second's worth: 09:00 starts at the rate, not all at once.
            trunk: TokenBucket::new(trunk_cps, trunk_cps, now),
            trunk_max: trunk_max_calls.max(1),
            active: 0,
            tenants: HashMap::new(),
        }
    }

    /// Change the trunk's limits (this node's share of them, with many
    /// nodes): calls up beyond a lowered `max_calls` go on; new ones wait.
    pub fn set_trunk(&mut self, cps: f64, max_calls: u32, now: Instant) {
        if (self.trunk.rate - cps.max(0.001)).abs() > 1e-9 {
            // One token of burst: the nodes' sum must hold in any second.
            self.trunk = TokenBucket::new(cps, 1.0, now);
            self.trunk.tokens = 0.0;
        }
        self.trunk_max = max_calls;
    }

    /// Set (or change) a tenant's own limits.
    pub fn set_tenant(
        &mut self,
        tenant: u64,
        cps: Option<f64>,
        max_calls: Option<u32>,
        now: Instant,
    ) {
        let lane = self.tenants.entry(tenant).or_insert(Lane {
            bucket: None,
            max_calls: None,
            active: 0,
        });
        lane.bucket = cps.map(|r| TokenBucket::new(r, r, now));
        lane.max_calls = max_calls;
    }

    pub fn active(&self) -> u32 {
        self.active
    }

    /// The trunk has free call slots, so what holds calls back is its
    /// rate: the next token ([`Admission::trunk_next_token`]) is worth
    /// waiting for (else a call's end is).
    pub fn trunk_waits_for_token(&self) -> bool {
        self.active < self.trunk_max
    }

    /// When the trunk's next rate token comes.
    pub fn trunk_next_token(&mut self, now: Instant) -> Instant {
        self.trunk.next_token(now)
    }

    /// How many calls the trunk's limits would admit at `now` (free call
    /// slots and whole rate tokens, whichever is fewer; tenants' own
    /// limits may admit fewer): 0 when nothing can start before a call
    /// ends or a token comes.
    pub fn trunk_headroom(&mut self, now: Instant) -> u32 {
        self.trunk.refill(now);
        let free = self.trunk_max.saturating_sub(self.active);
        free.min(self.trunk.tokens.max(0.0).floor().min(u32::MAX as f64) as u32)
    }

    /// Admit one call for `tenant` at `now`, or say why not.
    pub fn try_admit(&mut self, tenant: u64, now: Instant) -> Result<(), Refusal> {
        if self.active >= self.trunk_max {
            return Err(Refusal::Concurrency);
        }
        let lane = self.tenants.entry(tenant).or_insert(Lane {
            bucket: None,
            max_calls: None,
            active: 0,
        });
        if lane.max_calls.is_some_and(|m| lane.active >= m) {
            return Err(Refusal::Concurrency);
        }
        if let Some(b) = lane.bucket.as_mut() {
            if !b.has(now) {
                return Err(Refusal::RateUntil(b.next_token(now)));
            }
        }
        if !self.trunk.has(now) {
            return Err(Refusal::RateUntil(self.trunk.next_token(now)));
        }
        self.trunk.try_take(now);
        if let Some(b) = lane.bucket.as_mut() {
            b.try_take(now);
        }
        lane.active += 1;
        self.active += 1;
        Ok(())
    }

    /// The call admitted for `tenant` was not placed after all (its check
    /// was taken by another node): its rate tokens go back (call
    /// [`Admission::release`] for its slot).
    pub fn refund(&mut self, tenant: u64, now: Instant) {
        self.trunk.give_back(now);
        if let Some(b) = self
            .tenants
            .get_mut(&tenant)
            .and_then(|l| l.bucket.as_mut())
        {
            b.give_back(now);
        }
    }

    /// A call of `tenant` ended.
    pub fn release(&mut self, tenant: u64) {
        self.active = self.active.saturating_sub(1);
        if let Some(l) = self.tenants.get_mut(&tenant) {
            l.active = l.active.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_the_fewer_of_free_slots_and_whole_tokens() {
        let t0 = Instant::now();
        // A burst of 10 tokens, 3 calls at most.
        let mut a = Admission::new(10.0, 3, t0);
        assert_eq!(a.trunk_headroom(t0), 3);
        a.try_admit(1, t0).unwrap();
        a.try_admit(1, t0).unwrap();
        assert_eq!(a.trunk_headroom(t0), 1);
        a.try_admit(1, t0).unwrap();
        assert_eq!(a.trunk_headroom(t0), 0, "every slot taken");
        a.release(1);
        a.release(1);
        a.release(1);
        // 7 tokens left: 3 slots free.
        assert_eq!(a.trunk_headroom(t0), 3);
        let mut b = Admission::new(10.0, 100, t0);
        for _ in 0..10 {
            b.try_admit(1, t0).unwrap();
        }
        assert_eq!(b.trunk_headroom(t0), 0, "no whole token");
        assert_eq!(b.trunk_headroom(t0 + Duration::from_millis(250)), 2);
    }

    #[test]
    fn a_lowered_trunk_share_holds_new_calls_back() {
        let t0 = Instant::now();
        let mut a = Admission::new(50.0, 200, t0);
        for _ in 0..3 {
            a.try_admit(1, t0).unwrap();
        }
        a.set_trunk(10.0, 2, t0);
        assert_eq!(a.try_admit(1, t0), Err(Refusal::Concurrency));
        a.release(1);
        a.release(1);
        // Below the share again; the new rate paces (no saved burst).
        assert!(matches!(a.try_admit(1, t0), Err(Refusal::RateUntil(_))));
        a.try_admit(1, t0 + Duration::from_millis(100)).unwrap();
        // A claim lost to another node: the token comes back (without it
        // the second admission at t1 would wait for the next token).
        a.release(1);
        let t1 = t0 + Duration::from_millis(200);
        a.try_admit(1, t1).unwrap();
        a.refund(1, t1);
        a.release(1);
        a.try_admit(1, t1).unwrap();
        a.set_trunk(0.0, 0, t0);
        a.release(1);
        assert_eq!(
            a.try_admit(1, t0 + Duration::from_secs(5)),
            Err(Refusal::Concurrency),
            "no share: nothing"
        );
    }

    #[test]
    fn bucket_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 10.0, t0);
        let mut admitted = 0;
        // 3 s of virtual time in 1 ms steps: 10 at once, then 10 per second.
        for ms in 0..3000 {
            let now = t0 + Duration::from_millis(ms);
            while b.try_take(now) {
                admitted += 1;
            }
        }
        assert!((39..=41).contains(&admitted), "{admitted}");
        let end = t0 + Duration::from_millis(3000);
        while b.try_take(end) {}
        let next = b.next_token(end);
        assert!(
            next > end && next <= end + Duration::from_millis(100),
            "one token per 100 ms"
        );
    }

    #[test]
    fn ten_thousand_due_at_once_go_no_faster_than_the_limits() {
        let t0 = Instant::now();
        let mut a = Admission::new(50.0, 200, t0);
        a.set_tenant(2, Some(5.0), Some(10), t0);
        let (mut t1, mut t2, mut max_active) = (0u32, 0u32, 0u32);
        let mut in_call: Vec<(Instant, u64)> = Vec::new();
        // Each call lasts 40 s; both tenants have 5,000 due at 09:00.
        for ms in (0..120_000).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            in_call.retain(|(end, tenant)| {
                if *end <= now {
                    a.release(*tenant);
                    false
                } else {
                    true
                }
            });
            // Fair turns: alternate tenants while either can go.
            loop {
                let mut progressed = false;
                for tenant in [1u64, 2] {
                    let left = if tenant == 1 { 5000 - t1 } else { 5000 - t2 };
                    if left > 0 && a.try_admit(tenant, now).is_ok() {
                        if tenant == 1 {
                            t1 += 1
                        } else {
                            t2 += 1
                        }
                        in_call.push((now + Duration::from_secs(40), tenant));
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
            max_active = max_active.max(a.active());
        }
        assert!(max_active <= 200, "trunk concurrency {max_active}");
        // Tenant 2: at most 10 at once, so ≤ 10 per 40 s → ≤ 40 in 120 s; and
        // tenant 1's burst does not starve it.
        assert!((10..=40).contains(&t2), "tenant 2 admitted {t2}");
        // The trunk: 200 concurrent × 40 s calls → ~200 in the first 40 s, then as calls end.
        assert!((400..=650).contains(&(t1 + t2)), "admitted {}", t1 + t2);
    }
}
