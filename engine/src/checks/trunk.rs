//! The trunk's circuit breaker: tells a carrier outage apart from people
//! not answering, so that an outage holds the checks instead of running
//! every person through their retries into `missed` (one alert case per
//! person: a morning outage would page every watcher in the city).
//!
//! The breaker watches the results of recent calls. A *carrier fault* is
//! an attempt that never reached anyone's phone for a reason of the path
//! to it: a 500/502/503/504 from the trunk, no response at all (Timer B),
//! an ICMP error from the first hop, trunk credentials refused
//! ([`EndReason::is_carrier_fault`]). A *healthy* result is any answer
//! that came from beyond the carrier (ringing, answered, busy, 404, 480…).
//! Faults of genki's own media say nothing about the carrier.
//!
//! States (the usual circuit-breaker shape):
//! - **closed**: calls go out; when at least `min_faults` of the last
//!   [`WINDOW`] results within [`WINDOW_AGE`] are faults and they are at
//!   least half of them, it opens;
//! - **open** until a deadline (the back-off, doubling from `open_for` up
//!   to [`MAX_OPEN`], or the carrier's `Retry-After` (RFC 3261 §20.33) if
//!   longer): nothing is dialled, failed attempts are held;
//! - **probing** after the deadline: at most [`PROBES`] calls at a time;
//!   a healthy result closes it, a fault opens it again for longer.
//!
//! Opening from closed and closing after an outage are the two
//! [`Transition`]s the operator is told about (one notice per outage, not
//! one per probe).
//!
//! Pure logic with time passed in. Depends on: genki-store (end reasons).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use genki_store::EndReason;

/// Results remembered while closed.
pub const WINDOW: usize = 20;
/// Results older than this are forgotten (a fault an hour ago is not an outage now).
pub const WINDOW_AGE: Duration = Duration::from_secs(120);
/// Calls in flight at once while probing.
pub const PROBES: u32 = 2;
/// The longest the circuit stays open before probing again (a longer
/// `Retry-After` is capped to this).
pub const MAX_OPEN: Duration = Duration::from_secs(600);

/// What one finished call says about the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Something beyond the carrier answered (the path works).
    Healthy,
    /// The carrier failed; `retry_after` as it asked, if it did.
    Fault { retry_after: Option<Duration> },
    /// Says nothing about the carrier (a fault of genki's media, an
    /// invalid target, a call never placed).
    Neutral,
}

impl Signal {
    /// Classify an attempt by how it ended.
    pub fn of(end: &EndReason, retry_after: Option<Duration>) -> Signal {
        // Not dialled for want of a registration: the registration's own
        // state holds the calls, not the circuit.
        if *end == EndReason::Unregistered {
            Signal::Neutral
        } else if end.is_carrier_fault() {
            Signal::Fault { retry_after }
        } else if end.is_system()
            || matches!(
                end,
                EndReason::Unresolvable
                    | EndReason::InvalidTarget
                    | EndReason::SubscriberDeleted
                    | EndReason::Paused
                    | EndReason::Rescheduled
                    | EndReason::Other(_)
            )
        {
            Signal::Neutral
        } else {
            Signal::Healthy
        }
    }
}

/// The breaker's state, as `/healthz` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    Probing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::Probing => "probing",
        }
    }
}

/// A change the operator is told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The carrier is failing: dialling stopped until `until`.
    Opened {
        faults: usize,
        of: usize,
        until: Instant,
    },
    /// A probe got through: dialling resumed after an outage that began at `since`.
    Closed { since: Instant },
}

/// The circuit breaker of one trunk.
#[derive(Debug)]
pub struct Circuit {
    min_faults: usize,
    open_for: Duration,
    state: State,
    recent: VecDeque<(Instant, bool)>,
    /// While open: when probing may start.
    until: Instant,
    /// The next opening lasts this long (doubles while probes fail).
    backoff: Duration,
    /// When the outage began (the first opening).
    since: Option<Instant>,
    probes: u32,
}

impl Circuit {
    /// A closed breaker that opens on `min_faults` faults (0: never) and
    /// first stays open `open_for`.
    pub fn new(min_faults: usize, open_for: Duration, now: Instant) -> Circuit {
        Circuit {
            min_faults,
            open_for: open_for.max(Duration::from_secs(1)),
            state: State::Closed,
            recent: VecDeque::with_capacity(WINDOW),
            until: now,
            backoff: open_for,
            since: None,
            probes: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// While not closed: when the outage began.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// May a call start now? `Err(at)`: not before `at`. A call admitted
    /// here must be reported to [`Circuit::record`] when it ends (or to
    /// [`Circuit::abandon`] if it never started).
    pub fn admit(&mut self, now: Instant) -> Result<(), Instant> {
        match self.state {
            State::Closed => Ok(()),
            State::Open if now < self.until => Err(self.until),
            State::Open | State::Probing => {
                self.state = State::Probing;
                if self.probes < PROBES {
                    self.probes += 1;
                    Ok(())
                } else {
                    // Wait for a probe's result (one wakes the caller).
                    Err(now + Duration::from_secs(1))
                }
            }
        }
    }

    /// An admitted call did not start after all (its claim failed).
    pub fn abandon(&mut self) {
        self.probes = self.probes.saturating_sub(1);
    }

    /// When a held check should be tried again: the end of the opening,
    /// or (closed) after the first opening's length.
    pub fn hold_until(&self, now: Instant) -> Instant {
        match self.state {
            State::Open => self.until.max(now),
            State::Probing => now + self.backoff,
            State::Closed => now + self.open_for,
        }
    }

    /// A call admitted by [`Circuit::admit`] ended with `signal`.
    pub fn record(&mut self, signal: Signal, now: Instant) -> Option<Transition> {
        match self.state {
            State::Closed => {
                let fault = match signal {
                    Signal::Neutral => return None,
                    Signal::Healthy => false,
                    Signal::Fault { .. } => true,
                };
                while self.recent.len() >= WINDOW
                    || self
                        .recent
                        .front()
                        .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW_AGE)
                {
                    self.recent.pop_front();
                }
                self.recent.push_back((now, fault));
                let faults = self.recent.iter().filter(|(_, f)| *f).count();
                let of = self.recent.len();
                if self.min_faults == 0 || faults < self.min_faults || faults * 2 < of {
                    return None;
                }
                self.backoff = self.open_for;
                self.since = Some(now);
                self.open(now, signal);
                Some(Transition::Opened {
                    faults,
                    of,
                    until: self.until,
                })
            }
            // Calls that were in flight when it opened: their faults are
            // the same outage, their successes a sign to probe soon.
            State::Open => {
                if signal == Signal::Healthy {
                    self.until = self.until.min(now);
                }
                None
            }
            State::Probing => {
                self.probes = self.probes.saturating_sub(1);
                match signal {
                    Signal::Neutral => None,
                    Signal::Healthy => {
                        let since = self.since.take().unwrap_or(now);
                        self.state = State::Closed;
                        self.recent.clear();
                        self.probes = 0;
                        Some(Transition::Closed { since })
                    }
                    Signal::Fault { .. } => {
                        self.backoff = (self.backoff * 2).min(MAX_OPEN);
                        self.open(now, signal);
                        None
                    }
                }
            }
        }
    }

    fn open(&mut self, now: Instant, signal: Signal) {
        let asked = match signal {
            Signal::Fault {
                retry_after: Some(d),
            } => d.min(MAX_OPEN),
            _ => Duration::ZERO,
        };
        self.state = State::Open;
        self.until = now + self.backoff.max(asked);
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAULT: Signal = Signal::Fault { retry_after: None };

    #[test]
    fn classifies_carrier_faults_apart_from_people() {
        for e in [
            EndReason::Rejected(503),
            EndReason::Rejected(500),
            EndReason::Rejected(504),
            EndReason::Timeout,
            EndReason::Unreachable,
            EndReason::AuthFailed(401),
        ] {
            assert_eq!(Signal::of(&e, None), FAULT, "{e}");
        }
        for e in [
            EndReason::ScriptDone,
            EndReason::RemoteBye,
            EndReason::NoAnswer,
            EndReason::Rejected(486),
            EndReason::Rejected(404),
            EndReason::Rejected(480),
            EndReason::Rejected(408),
        ] {
            assert_eq!(Signal::of(&e, None), Signal::Healthy, "{e}");
        }
        assert_eq!(Signal::of(&EndReason::NoMedia, None), Signal::Neutral);
    }

    #[test]
    fn a_few_faults_among_many_answers_do_not_open_it() {
        let t0 = Instant::now();
        let mut c = Circuit::new(5, Duration::from_secs(30), t0);
        for i in 0..100u64 {
            let s = if i % 3 == 0 { FAULT } else { Signal::Healthy };
            assert_eq!(c.admit(t0), Ok(()));
            assert_eq!(c.record(s, t0 + Duration::from_millis(i)), None, "{i}");
        }
        assert_eq!(c.state(), State::Closed);
    }

    #[test]
    fn an_outage_opens_once_probes_and_closes_with_one_notice_each_way() {
        let t0 = Instant::now();
        let mut c = Circuit::new(5, Duration::from_secs(30), t0);
        let mut transitions = Vec::new();
        for i in 0..5u64 {
            transitions.extend(c.record(FAULT, t0 + Duration::from_millis(i)));
        }
        assert_eq!(c.state(), State::Open);
        assert!(matches!(
            transitions[..],
            [Transition::Opened {
                faults: 5,
                of: 5,
                ..
            }]
        ));
        // Calls in flight keep failing: no new notice, still open 30 s.
        let t = t0 + Duration::from_secs(1);
        assert_eq!(c.record(FAULT, t), None);
        assert_eq!(
            c.admit(t),
            Err(t0 + Duration::from_millis(4) + Duration::from_secs(30))
        );
        // Probing: two at a time; a failed probe opens it for twice as long.
        let t = t0 + Duration::from_secs(31);
        assert_eq!(c.admit(t), Ok(()));
        assert_eq!(c.admit(t), Ok(()));
        assert!(c.admit(t).is_err(), "only two probes at once");
        assert_eq!(c.state(), State::Probing);
        assert_eq!(c.record(FAULT, t), None);
        assert_eq!(c.state(), State::Open);
        assert_eq!(c.admit(t + Duration::from_secs(59)).ok(), None);
        // The other probe's fault arrives while open: same outage.
        assert_eq!(c.record(FAULT, t), None);
        let t = t + Duration::from_secs(60);
        assert_eq!(c.admit(t), Ok(()));
        assert_eq!(
            c.record(Signal::Healthy, t),
            Some(Transition::Closed {
                since: t0 + Duration::from_millis(4)
            })
        );
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.admit(t), Ok(()));
    }

    #[test]
    fn retry_after_lengthens_the_opening_up_to_the_cap() {
        let t0 = Instant::now();
        let mut c = Circuit::new(2, Duration::from_secs(30), t0);
        c.record(FAULT, t0);
        let asked = Signal::Fault {
            retry_after: Some(Duration::from_secs(120)),
        };
        assert!(c.record(asked, t0).is_some());
        assert_eq!(c.admit(t0), Err(t0 + Duration::from_secs(120)));
        let mut c = Circuit::new(1, Duration::from_secs(30), t0);
        let huge = Signal::Fault {
            retry_after: Some(Duration::from_secs(86_400)),
        };
        c.record(huge, t0);
        assert_eq!(c.admit(t0), Err(t0 + MAX_OPEN));
    }

    #[test]
    fn old_faults_are_forgotten_and_zero_disables() {
        let t0 = Instant::now();
        let mut c = Circuit::new(5, Duration::from_secs(30), t0);
        for i in 0..4u64 {
            c.record(FAULT, t0 + Duration::from_secs(i));
        }
        // The fifth fault comes after the first four aged out.
        assert_eq!(c.record(FAULT, t0 + Duration::from_secs(200)), None);
        assert_eq!(c.state(), State::Closed);
        let mut off = Circuit::new(0, Duration::from_secs(30), t0);
        for _ in 0..50 {
            assert_eq!(off.record(FAULT, t0), None);
        }
        assert_eq!(off.admit(t0), Ok(()));
    }
}
