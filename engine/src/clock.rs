//! Where the engine's time comes from. Wall time (calendars, records) is
//! read only through [`Clock`]; monotonic time (rates, deadlines, sleeps)
//! only through tokio's clock ([`monotonic`], `tokio::time::sleep`). Both
//! can be virtual: under a paused tokio clock [`ShiftedClock`] moves with
//! tokio's time, so a test advances wall and monotonic time together
//! (`genki serve --clock-start` runs the same clock on real time).
//!
//! Depends on: std, tokio (its clock).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The engine's monotonic now: tokio's clock (paused and advanced in
/// virtual-time tests), as a std `Instant` for the sans-IO cores.
pub fn monotonic() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Unix time in milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Wall time from a chosen start, moving with tokio's clock: real time
/// passing (`--clock-start`), or virtual time when tokio's clock is paused.
pub struct ShiftedClock {
    start_ms: u64,
    origin: tokio::time::Instant,
    /// Clock milliseconds per real millisecond (1: real speed).
    rate: u64,
}

impl ShiftedClock {
    pub fn starting_at(start_ms: u64) -> ShiftedClock {
        ShiftedClock::fast(start_ms, 1)
    }

    /// A clock that runs `rate` times faster than real time (tests of
    /// schedules over days through the real binary: at 60, a minute of
    /// the calendar passes each second). Only the calendar runs fast:
    /// calls, SIP timers and media keep real time.
    pub fn fast(start_ms: u64, rate: u64) -> ShiftedClock {
        ShiftedClock {
            start_ms,
            origin: tokio::time::Instant::now(),
            rate: rate.max(1),
        }
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> u64 {
        self.start_ms + self.origin.elapsed().as_millis() as u64 * self.rate
    }
}

/// A clock tests set by hand (virtual time).
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn at(ms: u64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicU64::new(ms))
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
