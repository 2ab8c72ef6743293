//! Where the engine's wall-clock time comes from. The service reads time
//! only through [`Clock`], so tests can run a schedule at a chosen instant
//! (`genki serve --clock-start`) or on fully virtual time.
//!
//! Depends on: std.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

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

/// Real time passing from a chosen start (for tests of calendars).
pub struct ShiftedClock {
    start_ms: u64,
    origin: Instant,
}

impl ShiftedClock {
    pub fn starting_at(start_ms: u64) -> ShiftedClock {
        ShiftedClock {
            start_ms,
            origin: Instant::now(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> u64 {
        self.start_ms + self.origin.elapsed().as_millis() as u64
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
