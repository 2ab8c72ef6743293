//! The watch service at run time: plans checks from schedules, finds due
//! checks, admits calls through the dialer, runs them, and writes each
//! attempt and final outcome before anything else hears of it. At start-up
//! it finds the checks that were in flight when the process stopped and
//! re-queues them, so every due check ends with exactly one final outcome.
//!
//! Depends on: genki-storage, [`crate::telephony::call`], [`crate::checks::dialer`],
//! [`crate::checks::schedule`], [`crate::checks::script`], [`crate::clock`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use genki_store::{
    Attempt, Cause, Check, CheckId, CheckKind, CheckStatus, EndReason, Next, Outcome, SpokePolicy,
    Storage, StoreError, Subscriber, Tenant,
};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, error, info, warn};

use crate::checks::dialer::{Admission, Refusal};
use crate::checks::schedule::{Calendar, SlotCache};
use crate::checks::script::{Action, Flow, Script};
use crate::checks::trunk::{self, Circuit, Signal, Transition};
use crate::clock::{monotonic, Clock};
use crate::metrics::Metrics;
use crate::notices::{Notice, Notices};
use crate::telephony::call::CallResult;
use crate::telephony::call::Dial;
use crate::telephony::context::CallContext;

/// How long a claim is held before another owner may take the check over.
pub const LEASE: Duration = Duration::from_secs(600);
/// A check interrupted this many times (genki died mid-call) ends
/// `not_attempted`: genki's fault, never an alert about the person.
pub const MAX_INTERRUPTIONS: u32 = 3;

/// Shared state of the service (the API holds it too).
pub struct Service {
    pub store: Arc<dyn Storage>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// What placing a call needs (shared with the alert notifier).
    pub calls: Arc<CallContext>,
    /// Wakes the due loop (a one-off check was requested).
    pub wake: Notify,
    /// Wakes the alert worker when a final outcome is stored.
    pub alert_wake: Arc<Notify>,
    pub owner: String,
    pub plan_days: u32,
    pub tick: Duration,
    /// Many nodes share the database: recover only this node's claims at
    /// start (the others' are taken over when their leases run out).
    pub shared: bool,
    /// How long a claim lasts unless renewed ([`LEASE`] by default).
    pub lease: Duration,
    /// How long a dead node's calls may still be up at the carrier after
    /// its lease ran out (the longest call, and a BYE nobody answers):
    /// its part of the trunk's concurrent calls stays counted so long.
    pub trunk_hold: Duration,
    /// The trunk's circuit breaker: holds checks through a carrier outage.
    pub trunk: std::sync::Mutex<Circuit>,
    /// Where faults of the service itself are told to the operator.
    pub notices: Arc<Notices>,
}

/// Faults among recent calls that open the trunk's circuit by default.
pub const CIRCUIT_FAULTS: usize = 5;
/// How long the circuit first stays open by default.
pub const CIRCUIT_OPEN: Duration = Duration::from_secs(30);

impl Service {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        calls: Arc<CallContext>,
        owner: String,
        plan_days: u32,
        tick: Duration,
    ) -> Service {
        Service {
            store,
            metrics,
            clock,
            calls,
            wake: Notify::new(),
            alert_wake: Arc::new(Notify::new()),
            owner,
            plan_days,
            tick,
            shared: false,
            lease: LEASE,
            trunk_hold: Duration::from_secs(300 + 32),
            trunk: std::sync::Mutex::new(Circuit::new(CIRCUIT_FAULTS, CIRCUIT_OPEN, monotonic())),
            notices: Arc::new(Notices::log_only()),
        }
    }

    /// The trunk's circuit (a poisoned lock is still a valid state: every
    /// change to it is one assignment).
    pub fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.trunk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record what a finished call says about the carrier, tell the
    /// operator when the circuit opens or closes, and return the circuit's
    /// state after it with when a held check should be tried again.
    fn record_carrier(&self, r: &CallResult) -> (trunk::State, u64) {
        let now = monotonic();
        let signal = Signal::of(&r.attempt.end_reason, r.stats.retry_after);
        let (transition, state, hold) = {
            let mut c = self.circuit();
            let t = c.record(signal, now);
            (t, c.state(), c.hold_until(now))
        };
        let state_gauge = match state {
            trunk::State::Closed => 0,
            trunk::State::Probing => 1,
            trunk::State::Open => 2,
        };
        self.metrics.trunk_circuit.set(state_gauge);
        let at_ms = self.clock.now_ms();
        match transition {
            Some(Transition::Opened { faults, of, until }) => {
                self.metrics.trunk_circuit_opened.inc();
                self.notices.raise(
                    at_ms,
                    Notice::TrunkDown {
                        faults,
                        of,
                        probe_in_s: until.saturating_duration_since(now).as_secs(),
                    },
                );
            }
            Some(Transition::Closed { since }) => {
                // Held checks are due now: wake the due loop.
                self.wake.notify_one();
                self.notices.raise(
                    at_ms,
                    Notice::TrunkRecovered {
                        down_s: now.saturating_duration_since(since).as_secs(),
                    },
                )
            }
            None => {}
        }
        let hold_ms = at_ms + hold.saturating_duration_since(now).as_millis() as u64;
        (state, hold_ms)
    }

    /// The script a tenant's calls run (the default one built once and
    /// shared by every call that runs it).
    pub fn script_for(t: &Tenant) -> Arc<Script> {
        static DEFAULT: std::sync::OnceLock<Arc<Script>> = std::sync::OnceLock::new();
        t.script
            .as_ref()
            .and_then(|v| serde_json::from_value::<Script>(v.clone()).ok())
            .map(Arc::new)
            .unwrap_or_else(|| {
                DEFAULT
                    .get_or_init(|| Arc::new(Script::default_watch()))
                    .clone()
            })
    }

    /// Build every tenant's day at a glance (the console's Today page)
    /// now, before any call is placed: the build scans the day's checks
    /// and holds off writes of checks while it does (seconds at a million
    /// people), which costs nothing at start-up and would delay outcomes
    /// mid-round. How many tenants.
    pub fn warm_day_views(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut n = 0;
        for t in self.store.tenants()? {
            let Some((from, to)) = Calendar::of(&t).ok().and_then(|c| c.day_of(now)) else {
                continue;
            };
            self.store.day_view(t.id, from, to, 0, None)?;
            n += 1;
        }
        Ok(n)
    }

    /// Re-queue checks that were in flight when the process stopped (with
    /// many nodes: this node's own).
    pub fn recover(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut inflight = self.store.inflight()?;
        if self.shared {
            inflight.retain(|c| c.owner.as_deref() == Some(self.owner.as_str()));
        }
        for c in &inflight {
            info!(check = %c.id, "recovering a check that was in flight");
            match self.requeue_interrupted(c, now) {
                Ok(_) => {}
                // Another node took it over first (this node was down
                // longer than its lease).
                Err(StoreError::Fenced(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(inflight.len())
    }

    /// Checks whose lease ran out while no call of this process holds
    /// them (a call task that died, another node that did): re-queued now,
    /// as after a restart, so nobody waits for the next start to be called.
    /// This node's calls in progress (`running`) keep their claims: their
    /// leases are renewed first (a node paused past its lease finds those
    /// taken over already gone from it).
    pub fn recover_expired(&self, running: &HashSet<CheckId>) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        // One process alone on its database needs no renewal: its claims
        // are all its own, found again at its start, and the lease is
        // longer than any call.
        if self.shared {
            let mine: Vec<CheckId> = running.iter().copied().collect();
            self.store
                .renew_leases(&self.owner, &mine, now, self.lease.as_millis() as u64)?;
        }
        let mut n = 0;
        for c in self.store.expired_claims(now, 1_000)? {
            if running.contains(&c.id) {
                continue;
            }
            warn!(check = %c.id, owner = ?c.owner, "lease expired with no call holding the check; re-queued");
            match self.requeue_interrupted(&c, now) {
                Ok(_) => {}
                // Another node took it over first.
                Err(StoreError::Fenced(_)) => continue,
                Err(e) => return Err(e),
            }
            if c.owner.as_deref() != Some(self.owner.as_str()) {
                self.metrics.leases_taken_over.inc();
            }
            n += 1;
        }
        Ok(n)
    }

    /// Record an interrupted attempt for an in-flight check and call it
    /// again now (or end it after `MAX_INTERRUPTIONS`).
    fn requeue_interrupted(&self, c: &Check, now: u64) -> Result<Check, StoreError> {
        {
            let n = c.attempts + 1;
            let attempt = Attempt {
                n,
                started_at_ms: now,
                end_reason: EndReason::Interrupted,
                ..Default::default()
            };
            let interrupted = self
                .store
                .attempts(&c.id)?
                .iter()
                .filter(|a| a.end_reason == EndReason::Interrupted)
                .count() as u32
                + 1;
            // Interrupted again and again is genki's fault, never the
            // person's silence: it ends not_attempted (no alert to the
            // watchers; coordinators see it among those not yet fine).
            let next = if interrupted >= MAX_INTERRUPTIONS {
                Next::Final {
                    outcome: Outcome::NotAttempted,
                    cause: Some(Cause::Interrupted),
                }
            } else {
                Next::Retry {
                    due_at_ms: now,
                    cause: Cause::Interrupted,
                }
            };
            let done = self.store.finish_attempt(&c.id, &attempt, next, now)?;
            self.count_final(&done);
            self.metrics.recovered_inflight.inc();
            Ok(done)
        }
    }

    fn count_final(&self, c: &Check) {
        if c.status != CheckStatus::Done {
            return;
        }
        self.alert_wake.notify_one();
        match c.outcome {
            Some(Outcome::Fine) => self.metrics.outcome_fine.inc(),
            Some(Outcome::NeedsContact) => self.metrics.outcome_needs_contact.inc(),
            Some(Outcome::NoResponse) => self.metrics.outcome_no_response.inc(),
            Some(Outcome::Missed) => self.metrics.outcome_missed.inc(),
            Some(Outcome::Spoke) => self.metrics.outcome_spoke.inc(),
            Some(Outcome::NotAttempted) => self.metrics.outcome_not_attempted.inc(),
            None => {}
        }
    }

    /// What a plan depends on besides the clock: the count of writes of
    /// tenants and people, and each tenant's local date. While neither
    /// changes, planning again creates nothing (a slot already past is
    /// never invented), so the due loop's minute re-plan is skipped — at a
    /// million people it read every person and probed every check each
    /// minute, seconds during which no call was dispatched.
    pub fn plan_inputs(&self) -> Result<PlanInputs, StoreError> {
        // The count first: a write after it is seen by the next minute's.
        let changes = self.store.directory_changes();
        let now = self.clock.now_ms();
        let days = self
            .store
            .tenants()?
            .iter()
            .filter_map(|t| Calendar::of(t).ok().map(|c| (t.id, c.local_date(now))))
            .collect();
        Ok(PlanInputs { changes, days })
    }

    /// Create the checks of every schedule for today and the next days
    /// (idempotent: a check's id is its subscriber and slot).
    pub fn plan(&self) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        // Each tenant's calendar, local days and whether each is a
        // holiday, once; a tenant whose calendar does not parse plans
        // nothing (the API refuses such settings; this is defence).
        let mut tenants = HashMap::new();
        for t in self.store.tenants()? {
            let Ok(cal) = Calendar::of(&t) else { continue };
            let mut days = Vec::new();
            let mut date = cal.local_date(now);
            for _ in 0..self.plan_days {
                days.push((date, crate::checks::holidays::is_holiday(date)));
                match date.tomorrow() {
                    Ok(d) => date = d,
                    Err(_) => break,
                }
            }
            tenants.insert(t.id, (t, cal, days));
        }
        // Everyone in one pass over the people in id order (this thread),
        // overlapped with turning each page into checks and writing them
        // (writer threads). The batches are written without waiting for
        // the disk, and one sync at the end makes the plan durable (see
        // `CheckLog::plan_checks`).
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Subscriber>>(4);
        let rx = std::sync::Mutex::new(rx);
        // Set by the first writer whose write fails: the reader stops, and
        // the writers only drain what is queued (so nothing blocks).
        let failed = AtomicBool::new(false);
        // Writers still running (a panicking one counts itself out too).
        let alive = AtomicUsize::new(PLAN_WRITERS);
        struct Leaving<'a>(&'a AtomicUsize);
        impl Drop for Leaving<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let write_pages = || {
            let _leaving = Leaving(&alive);
            let mut caches: HashMap<u64, SlotCache> = HashMap::new();
            let mut n = 0;
            let mut error = None;
            loop {
                let page = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(page) = page else { break };
                if error.is_some() || failed.load(Ordering::SeqCst) {
                    continue;
                }
                let mut checks = Vec::with_capacity(page.len() * self.plan_days as usize);
                for s in &page {
                    let Some((t, cal, days)) = tenants.get(&s.tenant_id) else {
                        continue;
                    };
                    let cache = caches.entry(t.id).or_default();
                    checks.extend(plan_subscriber(t, cal, days, cache, s, now));
                }
                match self.store.plan_checks(&checks) {
                    Ok(k) => n += k,
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        error = Some(e);
                    }
                }
            }
            error.map_or(Ok(n), Err)
        };
        let planned = std::thread::scope(|scope| {
            // Several writers: turning people into checks is spread over
            // them (the store serialises the inserts themselves).
            let writers: Vec<_> = (0..PLAN_WRITERS)
                .map(|_| scope.spawn(write_pages))
                .collect();
            let mut after = 0;
            let mut people = 0usize;
            let read = 'pages: loop {
                if failed.load(Ordering::SeqCst) {
                    break Ok(());
                }
                let page = match self.store.subscribers_after(after, 1000) {
                    Ok(p) => p,
                    Err(e) => break Err(e),
                };
                let Some(last) = page.last() else {
                    break Ok(());
                };
                after = last.id;
                // Progress on a long plan (a million people take seconds).
                if (people + page.len()) / 100_000 > people / 100_000 {
                    info!(people = people + page.len(), "planning");
                }
                people += page.len();
                // Never block for good on a full queue: stop when every
                // writer has gone (failed or panicked).
                let mut page = page;
                loop {
                    match tx.try_send(page) {
                        Ok(()) => break,
                        Err(std::sync::mpsc::TrySendError::Full(p)) => {
                            if alive.load(Ordering::SeqCst) == 0 || failed.load(Ordering::SeqCst) {
                                break 'pages Ok(());
                            }
                            page = p;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => break 'pages Ok(()),
                    }
                }
            };
            drop(tx);
            let mut total = read.map(|_| 0);
            for w in writers {
                let n = w
                    .join()
                    .unwrap_or_else(|_| Err(StoreError::Db("a planner's writer panicked".into())));
                total = total.and_then(|t| n.map(|n| t + n));
            }
            total
        });
        // Whatever was written is made durable, a failed plan's part too
        // (the next plan completes it; a slot passed meanwhile would not be
        // re-created).
        let synced = self.store.sync();
        let created = planned?;
        synced?;
        self.metrics.checks_planned.add(created);
        Ok(created)
    }

    /// Request a check of `subscriber` now (the API's one-off check).
    ///
    /// A one-off check's id is the person and the millisecond it was asked
    /// for, so two requests in the same millisecond would be one check
    /// (and the daily limit would count one): the second takes the next
    /// free millisecond instead.
    pub fn request_check(&self, s: &Subscriber) -> Result<CheckId, StoreError> {
        let now = self.clock.now_ms();
        let id = self.new_one_off(s, now, now)?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Create a one-off check of `s` asked for at `now`, due at `due_ms`.
    fn new_one_off(&self, s: &Subscriber, now: u64, due_ms: u64) -> Result<CheckId, StoreError> {
        for later in 0..1_000 {
            let id = CheckId::one_off(s.id, now + later);
            if self
                .store
                .create_check(&new_check(id, s.tenant_id, due_ms, now))?
            {
                return Ok(id);
            }
            if self.store.check(&id)?.is_none() {
                // Not created and not there: the person was erased.
                return Err(StoreError::NotFound("subscriber"));
            }
        }
        Err(StoreError::Busy(
            "too many checks asked for this person at once",
        ))
    }

    /// The person called genki's number and answered its check-in menu
    /// (`outcome`: `fine` or `needs_contact`). Recorded as a check of its
    /// own — a one-off created and finished at once, the inbound call its
    /// attempt — and every check of theirs still pending today (a retry
    /// included) is settled with it, so nobody calls them again today. The
    /// alert engine then treats it as any outcome: a `fine` closes their
    /// open case with the all-clear, `needs_contact` opens one.
    pub fn check_in(
        &self,
        s: &Subscriber,
        outcome: Outcome,
        attempt: &Attempt,
    ) -> Result<CheckId, StoreError> {
        let now = self.clock.now_ms();
        // Due a day ahead: the due loop must not dial it before it is done.
        let id = self.new_one_off(s, now, now + 86_400_000)?;
        if let Some(_claimed) = self.store.claim(&id, &self.owner, now + 60_000)? {
            let c = self.store.finish_attempt(
                &id,
                attempt,
                Next::Final {
                    outcome,
                    cause: None,
                },
                now,
            )?;
            self.count_final(&c);
        }
        let t = self.store.tenant(s.tenant_id)?;
        let day = t
            .as_ref()
            .and_then(|t| Calendar::of(t).ok())
            .and_then(|cal| cal.day_of(now));
        if let Some((from, to)) = day {
            for c in self.store.checks_of(s.tenant_id, from, to, 100_000)? {
                if c.id.subscriber_id != s.id || c.id == id || c.status != CheckStatus::Pending {
                    continue;
                }
                let next = Next::Final {
                    outcome,
                    cause: None,
                };
                if let Some(done) = self.store.settle_pending(&c.id, next, now)? {
                    info!(check = %c.id, "settled by the person's call-in");
                    self.count_final(&done);
                }
            }
        }
        Ok(id)
    }

    /// The person whose phone is `number` (a caller's presented number),
    /// if genki watches over them: compared as national digits (+81 → 0,
    /// separators and a SIP URI's host ignored). Reads every subscriber:
    /// call-ins are rare; an index by number is for a larger scale.
    pub fn identify(&self, number: &str) -> Result<Option<Subscriber>, StoreError> {
        let want = national_digits(number);
        if want.len() < 3 {
            return Ok(None);
        }
        for t in self.store.tenants()? {
            let mut after = 0;
            loop {
                let page = self.store.subscribers_of(t.id, after, 1000)?;
                let Some(last) = page.last() else { break };
                after = last.id;
                if let Some(s) = page.into_iter().find(|s| national_digits(&s.phone) == want) {
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }

    /// What to do after an attempt, by the tenant's policy and calendar.
    /// `held` counts the check's earlier attempts that do not count
    /// against the person ([`not_counted`]).
    fn next_after(
        &self,
        t: &Tenant,
        check: &Check,
        r: &CallResult,
        earlier: &[Attempt],
        now_ms: u64,
    ) -> Next {
        if let Some(o) = r.outcome {
            return Next::Final {
                outcome: o,
                cause: None,
            };
        }
        let mut cause = r.cause.clone().unwrap_or(Cause::Failed);
        // A carrier fault that repeats on this check while the trunk
        // carries everyone else's calls is this line's: counted as failed.
        if cause == Cause::Carrier {
            cause = Cause::Failed;
        }
        // A voice but no key: the tenant says what it becomes.
        if cause == Cause::Spoke {
            match t.retry.on_spoke {
                SpokePolicy::Fine => {
                    return Next::Final {
                        outcome: Outcome::Fine,
                        cause: Some(cause),
                    }
                }
                SpokePolicy::Review => {
                    return Next::Final {
                        outcome: Outcome::Spoke,
                        cause: Some(cause),
                    }
                }
                SpokePolicy::Retry => {}
            }
        }
        // A wrong number, or a refusal only the presented number can
        // change (433): calling again changes nothing. The coordinator's
        // to act on, never the watchers'.
        if matches!(cause, Cause::InvalidNumber | Cause::Fax)
            || r.attempt.end_reason == EndReason::Rejected(433)
        {
            return Next::Final {
                outcome: Outcome::NotAttempted,
                cause: Some(cause),
            };
        }
        let held = earlier.iter().filter(|a| not_counted(a)).count() as u32;
        let made = (check.attempts + 1).saturating_sub(held);
        let retry = Calendar::of(t)
            .ok()
            .and_then(|cal| cal.retry_due(&t.retry, made, &cause, now_ms));
        // `missed` (an alert to the watchers) says the person's phone was
        // really tried and nobody took the call: at least one attempt
        // rang it out or found it busy. A check whose every attempt failed
        // for genki's, the network's or the line's own reasons (media,
        // an unresolvable or refused call) ends not_attempted with the
        // last cause, for the coordinator and the operator.
        let rang = std::iter::once(&r.attempt)
            .chain(earlier)
            .any(|a| !not_counted(a) && reached_the_line(a));
        match retry {
            Some(due_at_ms) => Next::Retry { due_at_ms, cause },
            None if cause == Cause::NoInput => Next::Final {
                outcome: Outcome::NoResponse,
                cause: Some(cause),
            },
            None if cause == Cause::Spoke => Next::Final {
                outcome: Outcome::Spoke,
                cause: Some(cause),
            },
            None if rang => Next::Final {
                outcome: Outcome::Missed,
                cause: Some(cause),
            },
            None => Next::Final {
                outcome: Outcome::NotAttempted,
                cause: Some(cause),
            },
        }
    }

    fn apply_actions(&self, sub: &Subscriber, actions: &[Action], now_ms: u64, t: &Tenant) {
        for a in actions {
            if let Action::PauseDays(days) = *a {
                let Ok(cal) = Calendar::of(t) else { continue };
                let until = cal
                    .local_date(now_ms)
                    .checked_add(jiff::Span::new().days(i32::from(days)))
                    .ok();
                if let (Some(until), Ok(Some(mut s))) = (until, self.store.subscriber(sub.id)) {
                    s.paused_until = Some(until.to_string());
                    if let Err(e) = self.store.put_subscriber(&s) {
                        warn!(error = %e, "cannot pause subscriber");
                    }
                }
            }
        }
    }
}

/// Threads writing a plan's checks (besides the one reading people).
const PLAN_WRITERS: usize = 3;

/// What a plan depends on besides the clock ([`Service::plan_inputs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInputs {
    /// [`genki_store::Directory::directory_changes`] before the plan.
    changes: u64,
    /// Each tenant's local date.
    days: Vec<(u64, jiff::civil::Date)>,
}

/// A full re-plan at least this often, even with nothing changed here.
const FULL_PLAN_EVERY: Duration = Duration::from_secs(15 * 60);

/// The checks a subscriber's schedule yields on the planned local `days`.
fn plan_subscriber(
    t: &Tenant,
    cal: &Calendar,
    days: &[(jiff::civil::Date, bool)],
    cache: &mut SlotCache,
    s: &Subscriber,
    now_ms: u64,
) -> Vec<Check> {
    let mut out = Vec::new();
    for (date, holiday) in days {
        for slot in cal.slots_with(s, *date, *holiday, cache) {
            // A slot already past when first planned is not invented afterwards.
            if slot * 1000 >= now_ms {
                out.push(new_check(
                    CheckId::scheduled(s.id, slot),
                    t.id,
                    slot * 1000,
                    now_ms,
                ));
            }
        }
    }
    out
}

fn new_check(id: CheckId, tenant_id: u64, due_at_ms: u64, now_ms: u64) -> Check {
    Check::pending(id, tenant_id, due_at_ms, now_ms)
}

/// A plan pass running on the blocking pool, and what it was started for.
struct Planning {
    started: Instant,
    inputs: Option<PlanInputs>,
    /// The pass's result and how long it took (timed in the task: the
    /// loop may collect it a tick later).
    task: tokio::task::JoinHandle<(Result<u64, StoreError>, u64)>,
}

/// A plan pass and its length in milliseconds (on the loop's clock).
fn timed(plan: impl FnOnce() -> Result<u64, StoreError>) -> (Result<u64, StoreError>, u64) {
    let started = monotonic();
    let r = plan();
    (
        r,
        monotonic().saturating_duration_since(started).as_millis() as u64,
    )
}

/// Log a pass's result; the inputs it planned for, if it succeeded (the
/// next pass is skipped while they stay the same).
fn planned_after(
    (r, ms): (Result<u64, StoreError>, u64),
    started: Instant,
    inputs: Option<PlanInputs>,
) -> Option<(Instant, PlanInputs)> {
    match r {
        Ok(n) => {
            // What a pass made, or what a slow one cost (a second or more).
            if n > 0 || ms >= 1000 {
                info!(created = n, ms, "planned checks");
            } else {
                debug!(created = n, ms, "planned checks");
            }
            inputs.map(|i| (started, i))
        }
        Err(e) => {
            error!(error = %e, "planning failed");
            None
        }
    }
}

/// The due loop: runs until `shutdown`, then lets calls in progress finish
/// for at most `drain`. Returns the number of calls still running when it gave up.
pub async fn run(
    svc: Arc<Service>,
    trunk_cps: f64,
    trunk_max_calls: u32,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> usize {
    let mut admission = Admission::new(trunk_cps, trunk_max_calls, monotonic());
    // Many nodes: this node dials within its share of the trunk, renewed
    // every few seconds; without a valid share (the database unreachable
    // for a lease) it dials nothing.
    let limit = genki_store::budget::Share {
        calls: trunk_max_calls,
        cps: trunk_cps,
    };
    let share_every = (svc.lease / 3).min(Duration::from_secs(2));
    let mut share_renewed: Option<Instant> = None;
    let mut share_tried: Option<Instant> = None;
    if svc.shared {
        admission.set_trunk(0.0, 0, monotonic());
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, CheckId)>();
    // Checks a call task of this process holds (their leases are ours).
    let mut running: HashSet<CheckId> = HashSet::new();
    let mut last_lease_scan = monotonic();
    let mut storage_failing = false;
    let mut active = 0usize;
    let mut last_plan: Option<Instant> = None;
    // The inputs of the last plan that completed, and when it started.
    let mut planned: Option<(Instant, PlanInputs)> = None;
    // A pass running beside the loop (the daemon's runtime): at a million
    // people a pass takes seconds, and inside the loop no call was
    // dispatched meanwhile. Tests on a current-thread runtime plan inline.
    let mut planning: Option<Planning> = None;
    let mut tenant_limits: BTreeMap<u64, (Option<f64>, Option<u32>)> = BTreeMap::new();
    let mut scans = DueScans::default();
    loop {
        if *shutdown.borrow() {
            break;
        }
        if planning.as_ref().is_some_and(|p| p.task.is_finished()) {
            if let Some(p) = planning.take() {
                let r = p.task.await.unwrap_or_else(|e| {
                    (
                        Err(StoreError::Db(format!("the planning task failed: {e}"))),
                        0,
                    )
                });
                planned = planned_after(r, p.started, p.inputs);
            }
        }
        if planning.is_none()
            && last_plan
                .is_none_or(|t| monotonic().saturating_duration_since(t) > Duration::from_secs(60))
        {
            let inputs = crate::rt::blocking(|| svc.plan_inputs()).ok();
            // Unchanged inputs skip the pass, but a full one runs at least
            // every quarter of an hour whatever (a person enrolled through
            // another node that stopped before its own plan ran).
            let stale = planned
                .as_ref()
                .is_none_or(|(at, _)| monotonic().saturating_duration_since(*at) > FULL_PLAN_EVERY);
            if stale || inputs.is_none() || planned.as_ref().map(|(_, i)| i) != inputs.as_ref() {
                // On the loop's clock, like `last_plan` (tokio's, which tests pause).
                let started = monotonic();
                if matches!(
                    tokio::runtime::Handle::current().runtime_flavor(),
                    tokio::runtime::RuntimeFlavor::MultiThread
                ) {
                    let svc = svc.clone();
                    let task = tokio::task::spawn_blocking(move || {
                        let r = timed(|| svc.plan());
                        // What it made may be due now.
                        svc.wake.notify_one();
                        r
                    });
                    planning = Some(Planning {
                        started,
                        inputs,
                        task,
                    });
                } else {
                    planned = planned_after(timed(|| svc.plan()), started, inputs);
                }
            }
            last_plan = Some(monotonic());
        }
        if svc.shared
            && share_tried.is_none_or(|t| monotonic().saturating_duration_since(t) >= share_every)
        {
            share_tried = Some(monotonic());
            let held = admission.active();
            match crate::rt::blocking(|| {
                svc.store.trunk_share(
                    &svc.owner,
                    limit,
                    held,
                    svc.lease.as_millis() as u64,
                    svc.trunk_hold.as_millis() as u64,
                )
            }) {
                Ok(s) => {
                    admission.set_trunk(s.cps, s.calls, monotonic());
                    share_renewed = Some(monotonic());
                }
                Err(e) => {
                    error!(error = %e, "cannot renew this node's share of the trunk");
                    if share_renewed
                        .is_none_or(|t| monotonic().saturating_duration_since(t) >= svc.lease)
                    {
                        admission.set_trunk(0.0, 0, monotonic());
                    }
                }
            }
        }
        if monotonic().saturating_duration_since(last_lease_scan)
            >= Duration::from_secs(30).min(svc.lease / 3)
        {
            last_lease_scan = monotonic();
            match crate::rt::blocking(|| svc.recover_expired(&running)) {
                Ok(0) => {}
                Ok(n) => info!(n, "re-queued checks whose lease expired"),
                Err(e) => error!(error = %e, "lease scan failed"),
            }
        }
        let mut wait = svc.tick;
        // While storage refuses writes nobody is dialled: a call whose
        // outcome cannot be stored must not start. Probe until it works.
        let refused = if svc.store.writes_ok() {
            None
        } else {
            crate::rt::blocking(|| svc.store.probe_write()).err()
        };
        match (&refused, storage_failing) {
            (Some(e), false) => {
                storage_failing = true;
                svc.notices.raise(
                    svc.clock.now_ms(),
                    Notice::StorageFailing {
                        error: e.to_string(),
                    },
                );
            }
            (None, true) => {
                storage_failing = false;
                svc.notices
                    .raise(svc.clock.now_ms(), Notice::StorageRecovered);
            }
            _ => {}
        }
        if refused.is_some() {
            tokio::select! {
                Some((tenant, id)) = done_rx.recv() => {
                    admission.release(tenant);
                    running.remove(&id);
                    active -= 1;
                    svc.metrics.active_calls.add(-1);
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        // Claims are synced writes: keep them off the async workers.
        let mut held = false;
        match crate::rt::blocking(|| {
            dispatch(
                &svc,
                &mut admission,
                &mut tenant_limits,
                &done_tx,
                &mut active,
                &mut running,
                &mut scans,
            )
        }) {
            Ok(pass) => {
                held = pass.held;
                if let Some(until) = pass.retry_at {
                    wait = wait.min(until.saturating_duration_since(monotonic()));
                }
            }
            Err(e) => error!(error = %e, "due scan failed"),
        }
        // While the circuit holds, past-due checks wait for it (and for
        // the tick, which settles those whose window closes), not in a spin.
        // So do checks held by the limits (a call's end or the next rate
        // token wakes the loop; checks coming due meanwhile are looked at
        // within HELD_POLL): only a pass that left nothing behind looks
        // again at once for what is due next.
        if held {
            wait = wait.min(HELD_POLL);
        } else if svc.circuit().state() == trunk::State::Closed
            && svc.calls.placer.registration().allows_calls()
        {
            if let Ok(Some(next)) = svc.store.next_due_ms() {
                let ms = next.saturating_sub(svc.clock.now_ms());
                wait = wait.min(Duration::from_millis(ms));
            }
        }
        tokio::select! {
            Some((tenant, id)) = done_rx.recv() => {
                admission.release(tenant);
                running.remove(&id);
                active -= 1;
                svc.metrics.active_calls.add(-1);
            }
            _ = svc.wake.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            _ = shutdown.changed() => {}
        }
    }
    // A pass under way finishes first (it is idempotent, and a kill
    // mid-pass loses nothing, but a clean stop should not cut it).
    if let Some(p) = planning.take() {
        if let Ok(r) = p.task.await {
            planned_after(r, p.started, p.inputs);
        }
    }
    info!(
        active,
        "stopping: no new calls; letting calls in progress finish"
    );
    let deadline = tokio::time::Instant::now() + drain;
    // Many nodes: the calls still up keep their leases while they finish
    // (else another node would take them over and call the people again).
    let renew_every = (svc.lease / 3).max(Duration::from_millis(500));
    let mut next_renewal = tokio::time::Instant::now() + renew_every;
    while active > 0 {
        tokio::select! {
            Some((_, id)) = done_rx.recv() => {
                active -= 1;
                running.remove(&id);
                svc.metrics.active_calls.add(-1);
            }
            _ = tokio::time::sleep_until(next_renewal), if svc.shared => {
                next_renewal = tokio::time::Instant::now() + renew_every;
                let mine: Vec<CheckId> = running.iter().copied().collect();
                let now = svc.clock.now_ms();
                if let Err(e) = crate::rt::blocking(|| {
                    svc.store
                        .renew_leases(&svc.owner, &mine, now, svc.lease.as_millis() as u64)
                }) {
                    error!(error = %e, "cannot renew the leases of the calls still up");
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    active
}

/// Most due checks one scan reads.
const SCAN_MAX: usize = 2000;
/// Fewest due checks a scan reads when the limits admit any call now.
const SCAN_MIN: usize = 64;
/// Due checks read per call the trunk would admit now (beyond them, the
/// ones of tenants at their own limits, or of people already on a call).
const SCAN_PER_ADMISSIBLE: usize = 8;
/// A full scan at least this often, whatever the limits say: it settles
/// checks whose window closed and sees other tenants' checks.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

/// How long the due loop waits at most while due checks are held by the
/// limits (the next due time is past, so it cannot tell the loop when to
/// look again for checks coming due meanwhile).
const HELD_POLL: Duration = Duration::from_millis(100);

/// The dispatcher's memory of its scans.
#[derive(Default)]
struct DueScans {
    last_full: Option<Instant>,
}

/// What a dispatch pass left for the loop.
struct Pass {
    /// Come back then (a rate token, a probe of the carrier).
    retry_at: Option<Instant>,
    /// Due checks were left for the limits (rate, concurrency, one call
    /// per person, the carrier): the loop waits for a call's end, a
    /// token or its tick, not for the next due time (already past).
    held: bool,
}

/// Admit and start as many due checks as the limits allow, tenants in turn.
///
/// How many due checks a pass reads follows how many calls the trunk
/// would admit now: with a round of thousands held by the trunk's limits
/// (10 calls a second by default), a pass per token or per call's end
/// read 2,000 checks to start one. A full scan still runs every
/// [`FULL_SCAN_EVERY`].
fn dispatch(
    svc: &Arc<Service>,
    admission: &mut Admission,
    limits: &mut BTreeMap<u64, (Option<f64>, Option<u32>)>,
    done_tx: &mpsc::UnboundedSender<(u64, CheckId)>,
    active: &mut usize,
    running: &mut HashSet<CheckId>,
    scans: &mut DueScans,
) -> Result<Pass, StoreError> {
    let now_ms = svc.clock.now_ms();
    let at = monotonic();
    let full = scans
        .last_full
        .is_none_or(|t| at.saturating_duration_since(t) >= FULL_SCAN_EVERY);
    let headroom = admission.trunk_headroom(at) as usize;
    let limit = if full {
        scans.last_full = Some(at);
        SCAN_MAX
    } else if headroom == 0 {
        // Nothing can start: no read until a token or a call's end.
        let retry_at = admission
            .trunk_waits_for_token()
            .then(|| admission.trunk_next_token(at));
        return Ok(Pass {
            retry_at,
            held: svc.store.next_due_ms()?.is_some_and(|d| d <= now_ms),
        });
    } else {
        (headroom * SCAN_PER_ADMISSIBLE).clamp(SCAN_MIN, SCAN_MAX)
    };
    let due = svc.store.due(now_ms, limit)?;
    if due.is_empty() {
        return Ok(Pass {
            retry_at: None,
            held: false,
        });
    }
    let mut by_tenant: BTreeMap<u64, VecDeque<Check>> = BTreeMap::new();
    for c in due {
        by_tenant.entry(c.tenant_id).or_default().push_back(c);
    }
    // Shared by this scan's calls (each call's task holds it for the
    // call's length: a pointer, not a copy of the tenant a call).
    let mut tenants: HashMap<u64, Arc<Tenant>> = HashMap::new();
    for id in by_tenant.keys() {
        if let Some(t) = svc.store.tenant(*id)? {
            let want = (t.cps, t.max_calls);
            if limits.get(id) != Some(&want) {
                admission.set_tenant(*id, t.cps, t.max_calls, monotonic());
                limits.insert(*id, want);
            }
            tenants.insert(*id, Arc::new(t));
        }
    }
    let mut retry_at: Option<Instant> = None;
    // Set once the trunk's circuit refuses: from then on this scan only
    // settles checks whose window closed (held checks are not forgotten).
    let mut circuit_holds = false;
    let mut held = false;
    // Checks ended or moved for their window, and calls started.
    let mut settled = false;
    let mut started = 0usize;
    // People on a call now (one call at a time per person).
    let mut busy: HashSet<u64> = running.iter().map(|r| r.subscriber_id).collect();
    // Round-robin over tenants: one call each per turn.
    loop {
        let mut progressed = false;
        for (tid, queue) in by_tenant.iter_mut() {
            let Some(check) = queue.front().cloned() else {
                continue;
            };
            let Some(t) = tenants.get(tid) else {
                queue.pop_front();
                continue;
            };
            // Outside the calling window: move to the next opening the same day, or end.
            if let Ok(cal) = Calendar::of(t) {
                // A scheduled slot whose day is over (genki was down, or
                // far behind): ended, not called days late beside the
                // person's checks of today.
                let stale = check.id.kind == CheckKind::Scheduled
                    && cal.local_date(check.due_at_ms) < cal.local_date(now_ms);
                if stale || !cal.in_window(now_ms) {
                    queue.pop_front();
                    if stale {
                        let next = final_at_window_close(svc, &check)?;
                        if let Some(done) = svc.store.settle_pending(&check.id, next, now_ms)? {
                            warn!(check = %check.id, "a slot of a past day was never called; ended not_attempted");
                            svc.count_final(&done);
                        }
                    } else {
                        reschedule_outside_window(svc, &cal, &check, now_ms)?;
                    }
                    settled = true;
                    progressed = true;
                    continue;
                }
            }
            // One call at a time per person: a slot coming due while a
            // retry (or a one-off) is still on the line waits for it,
            // instead of finding the line busy and ending missed.
            if busy.contains(&check.id.subscriber_id) {
                queue.pop_front();
                held = true;
                continue;
            }
            if circuit_holds {
                queue.pop_front();
                held = true;
                progressed = true;
                continue;
            }
            // The trunk requires registration and genki's binding does
            // not hold: nobody is dialled (looked at again each second;
            // the held checks end not_attempted/carrier at window close).
            if !svc.calls.placer.registration().allows_calls() {
                circuit_holds = true;
                let at = monotonic() + Duration::from_secs(1);
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
                continue;
            }
            // The carrier is failing: nobody is dialled but a few probes.
            if let Err(at) = svc.circuit().admit(monotonic()) {
                circuit_holds = true;
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
                continue;
            }
            match admission.try_admit(*tid, monotonic()) {
                Ok(()) => {
                    queue.pop_front();
                    progressed = true;
                    let lease = now_ms + svc.lease.as_millis() as u64;
                    let claimed = match svc.store.claim(&check.id, &svc.owner, lease) {
                        Ok(Some(c)) => c,
                        Ok(None) => {
                            // Another node took it (or it is done): the
                            // rate token goes back with the slot.
                            admission.refund(*tid, monotonic());
                            admission.release(*tid);
                            svc.circuit().abandon();
                            continue;
                        }
                        // The slot goes back: a failing disk must not use
                        // up the concurrency limit for good.
                        Err(e) => {
                            admission.release(*tid);
                            svc.circuit().abandon();
                            return Err(e);
                        }
                    };
                    *active += 1;
                    svc.metrics.active_calls.add(1);
                    svc.metrics.calls_admitted.inc();
                    svc.metrics
                        .scheduler_lag
                        .record_us(now_ms.saturating_sub(claimed.due_at_ms) * 1000);
                    running.insert(claimed.id);
                    busy.insert(claimed.id.subscriber_id);
                    spawn_call(svc.clone(), t.clone(), claimed, done_tx.clone());
                    started += 1;
                }
                Err(Refusal::RateUntil(at)) => {
                    svc.circuit().abandon();
                    retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
                }
                Err(Refusal::Concurrency) => {
                    svc.circuit().abandon();
                }
            }
        }
        if !progressed {
            break;
        }
    }
    // What the limits refused is still at the front of its queue.
    held |= by_tenant.values().any(|q| !q.is_empty());
    // The next pass reads everything again when this one may have seen too
    // little: a short read that started nothing although the trunk had
    // room (the first due checks all belong to a tenant at its own limits
    // or to people on a call, and other tenants' lie behind them), or a
    // full read that settled checks (more may wait behind them).
    if (!full && started == 0 && held && headroom > 0) || (full && settled) {
        scans.last_full = None;
    }
    Ok(Pass { retry_at, held })
}

fn reschedule_outside_window(
    svc: &Service,
    cal: &Calendar,
    c: &Check,
    now_ms: u64,
) -> Result<(), StoreError> {
    let slot_date = cal.local_date(c.due_at_ms);
    // A scheduled slot moves within its own day; a one-off request waits for the next window.
    let next = cal
        .next_window_open(now_ms)
        .filter(|open| c.id.kind == CheckKind::OneOff || cal.local_date(*open) == slot_date);
    let next = match next {
        Some(at) => Next::Retry {
            due_at_ms: at,
            cause: c.last_cause.clone().unwrap_or(Cause::OutsideWindow),
        },
        None => final_at_window_close(svc, c)?,
    };
    if let Some(done) = svc.store.settle_pending(&c.id, next, now_ms)? {
        svc.count_final(&done);
    }
    Ok(())
}

/// How a check ends when its window closed before it could be dialled
/// again. Missed (an alert) only when the person was really tried: the
/// carrier keeping genki from calling (the circuit is not closed, the
/// trunk's registration does not hold, or the last attempt was held) ends `not_attempted` cause `carrier`; a check
/// no call ever reached the person for (genki was behind, or only
/// interrupted) ends `not_attempted` cause `outside_window`.
fn final_at_window_close(svc: &Service, c: &Check) -> Result<Next, StoreError> {
    let carrier = c.last_cause == Some(Cause::Carrier)
        || svc.circuit().state() != trunk::State::Closed
        || !svc.calls.placer.registration().allows_calls();
    let reached = c.attempts > 0
        && svc
            .store
            .attempts(&c.id)?
            .iter()
            .any(|a| !a.held && a.end_reason != EndReason::Interrupted);
    Ok(if carrier {
        Next::Final {
            outcome: Outcome::NotAttempted,
            cause: Some(Cause::Carrier),
        }
    } else if !reached {
        Next::Final {
            outcome: Outcome::NotAttempted,
            cause: Some(Cause::OutsideWindow),
        }
    } else {
        Next::Final {
            outcome: Outcome::Missed,
            cause: Some(Cause::OutsideWindow),
        }
    })
}

/// Whether a scheduled check's slot is still in the person's schedule (it
/// may have changed since the check was planned; the planner adds the new
/// slots, and a slot that is gone must not be called as well). One-off
/// checks always are.
pub fn still_scheduled(s: &Subscriber, t: &Tenant, id: &CheckId) -> bool {
    if id.kind != CheckKind::Scheduled {
        return true;
    }
    let Ok(cal) = Calendar::of(t) else {
        return true;
    };
    let date = cal.local_date(id.slot * 1000);
    // Only the schedule decides here; a pause is its own cause.
    let unpaused = Subscriber {
        paused_until: None,
        ..s.clone()
    };
    cal.slots_with(
        &unpaused,
        date,
        crate::checks::holidays::is_holiday(date),
        &mut SlotCache::default(),
    )
    .contains(&id.slot)
}

/// Whether the person is paused (`paused_until`, set by the API or by a
/// `pause_days` key) on the tenant's local date at `now_ms`.
pub fn is_paused(s: &Subscriber, t: &Tenant, now_ms: u64) -> bool {
    let Some(until) = s.paused_until.as_deref() else {
        return false;
    };
    let (Ok(until), Ok(cal)) = (until.parse::<jiff::civil::Date>(), Calendar::of(t)) else {
        return false;
    };
    cal.local_date(now_ms) <= until
}

/// An attempt that does not count against the person's retries: one the
/// carrier failed (held), or one genki itself cut short by stopping
/// (interrupted; those are bounded by [`MAX_INTERRUPTIONS`] instead).
fn not_counted(a: &Attempt) -> bool {
    a.held || a.end_reason == EndReason::Interrupted
}

/// A phone number as national digits: the user part of a SIP/tel URI,
/// separators dropped, `+81` (Japan's country code) as the trunk prefix 0.
pub fn national_digits(phone: &str) -> String {
    let user = phone
        .trim()
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .trim_start_matches("tel:");
    let user = user.split(['@', ';']).next().unwrap_or("");
    let digits: String = user
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    match digits.strip_prefix("+81") {
        Some(rest) => format!("0{rest}"),
        None => digits.trim_start_matches('+').to_string(),
    }
}

/// Whether an attempt reached the person's line: it was answered, rang
/// out (genki's ring timeout, 480, 408, 487), or found the line busy
/// (486, 600). Only such attempts make a check `missed`.
///
/// An answer that genki's or the network's own fault cut short (no media,
/// media stopped, session expired: [`EndReason::is_system`]) does not
/// count: the person may have been there and nobody heard them.
///
/// An answer by the network (an announcement) or a fax is not the
/// person's line either; an answering machine, or a call recorder that
/// rang the handset for nobody, is.
fn reached_the_line(a: &Attempt) -> bool {
    (a.answered
        && !a.end_reason.is_system()
        && !matches!(a.end_reason, EndReason::Announcement | EndReason::Fax))
        || matches!(
            a.end_reason,
            EndReason::NoAnswer | EndReason::Rejected(480 | 408 | 487 | 486 | 600)
        )
}

/// A dialogue that reports the moment its script reaches an outcome (the
/// key that says "fine" or "needs contact"), so that the outcome is stored
/// then — before the acknowledgement prompt plays and the line is hung up
/// — and a crash in those seconds cannot call the person again.
struct OutcomeTap<'a> {
    flow: &'a mut Flow,
    reached: Option<tokio::sync::oneshot::Sender<Attempt>>,
}

impl crate::telephony::call::Dialogue for OutcomeTap<'_> {
    fn start(&mut self, now: Instant) {
        self.flow.start(now);
    }
    fn on_digit(&mut self, d: char, now: Instant) {
        self.flow.on_digit(d, now);
    }
    fn on_play_finished(&mut self, now: Instant) {
        self.flow.on_play_finished(now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.flow.handle_timeout(now);
    }
    fn poll_cmd(&mut self) -> Option<crate::telephony::call::FlowCmd> {
        self.flow.poll_cmd()
    }
    fn has_cmd(&self) -> bool {
        self.flow.has_cmd()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.flow.poll_timeout()
    }
    fn outcome(&self) -> Option<Outcome> {
        self.flow.outcome()
    }
    fn is_done(&self) -> bool {
        self.flow.is_done()
    }
    fn digits(&self) -> &str {
        self.flow.digits()
    }
    fn reached(&mut self, attempt: &Attempt) {
        if let Some(tx) = self.reached.take() {
            let _ = tx.send(attempt.clone());
        }
    }
}

/// Store the outcome the call's script reached, as soon as it is reached,
/// with the attempt as far as it went (answered, the keys; its end reason
/// is empty until the call ends). None when the call ended without one,
/// or storage refused it (then the call's end stores it, retrying).
async fn store_early(
    svc: Arc<Service>,
    check: Check,
    reached: tokio::sync::oneshot::Receiver<Attempt>,
) -> Option<Check> {
    let attempt = reached.await.ok()?;
    let outcome = attempt.outcome?;
    let at = svc.clock.now_ms();
    let next = Next::Final {
        outcome,
        cause: None,
    };
    match crate::rt::blocking(|| svc.store.finish_attempt(&check.id, &attempt, next, at)) {
        Ok(c) => {
            svc.count_final(&c);
            debug!(check = %check.id, ?outcome, "outcome stored at the key");
            Some(c)
        }
        Err(e) => {
            warn!(check = %check.id, error = %e, "could not store the outcome at the key; stored at the call's end");
            None
        }
    }
}

fn spawn_call(
    svc: Arc<Service>,
    t: Arc<Tenant>,
    check: Check,
    done: mpsc::UnboundedSender<(u64, CheckId)>,
) {
    tokio::spawn(async move {
        let tenant = t.id;
        // Whether the call reported to the trunk's circuit, which admitted
        // it (and, while probing, counts it as one of its probes).
        let mut reported = false;
        let result = async {
            let sub = svc.store.subscriber(check.id.subscriber_id)?;
            let now = svc.clock.now_ms();
            // Deleted or paused since the check was planned: nobody is
            // called and nobody alerted (`not_attempted`, never a case).
            let skip = match &sub {
                None => Some((EndReason::SubscriberDeleted, Cause::SubscriberDeleted)),
                Some(s) if is_paused(s, &t, now) => Some((EndReason::Paused, Cause::Paused)),
                Some(s) if !still_scheduled(s, &t, &check.id) => {
                    Some((EndReason::Rescheduled, Cause::Rescheduled))
                }
                // A SIP URI, or a number outside the tenant's dial plan,
                // enrolled before the operator's rule: not dialled, and
                // not the person's silence either (the enrolment API
                // refuses such phones now).
                Some(s)
                    if !(svc.calls.may_dial(&s.phone)
                        && crate::telephony::context::in_dial_plan(
                            t.dial_allow.as_deref(),
                            &s.phone,
                        )) =>
                {
                    warn!(check = %check.id, "the person's phone is outside what the operator allows ([trunk] uri_phones, the tenant's dial_allow); not dialled");
                    Some((EndReason::InvalidTarget, Cause::NotAllowed))
                }
                Some(_) => None,
            };
            if let Some((end_reason, cause)) = skip {
                let a = Attempt {
                    n: check.attempts + 1,
                    started_at_ms: now,
                    end_reason,
                    ..Default::default()
                };
                let c = svc.store.finish_attempt(
                    &check.id,
                    &a,
                    Next::Final {
                        outcome: Outcome::NotAttempted,
                        cause: Some(cause),
                    },
                    now,
                )?;
                svc.count_final(&c);
                return Ok::<(), StoreError>(());
            }
            let Some(sub) = sub else {
                return Ok(());
            };
            let prompts = svc.calls.prompts_for(tenant)?;
            let script = Service::script_for(&t);
            let to = svc.calls.dial_uri(&sub.phone);
            svc.metrics.attempts.inc();
            let mut flow = Flow::new(script);
            let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
            let early = tokio::spawn(store_early(svc.clone(), check.clone(), reached_rx));
            let mut tap = OutcomeTap {
                flow: &mut flow,
                reached: Some(reached_tx),
            };
            let r = svc
                .calls
                .placer
                .place(
                    Dial {
                        to: &to,
                        caller_id: t.caller_id.as_deref(),
                        keep_as: Some(&format!("{}-{}", check.id, check.attempts + 1)),
                        record_s: t.record_answers_s,
                        listen_first: t.listen_first,
                    },
                    check.attempts + 1,
                    now,
                    &mut tap,
                    &prompts,
                )
                .await;
            drop(tap);
            // The outcome already stored at the key: the end only adds the
            // whole attempt (the store keeps the first outcome).
            let stored_early = matches!(early.await, Ok(Some(_)));
            let end_ms = svc.clock.now_ms();
            let (circuit, hold_ms) = svc.record_carrier(&r);
            reported = true;
            let mut attempt = r.attempt.clone();
            // The check's earlier attempts, when they matter (no outcome yet).
            let earlier = if r.outcome.is_none() && check.attempts > 0 {
                crate::rt::blocking(|| svc.store.attempts(&check.id))?
            } else {
                Vec::new()
            };
            let next = if r.outcome.is_none() && r.cause.as_ref() == Some(&Cause::Carrier) {
                // The carrier failed. Held (not counted against the person)
                // while it fails for everyone, and the first time on this
                // check (it may be the start of an outage); counted as this
                // line's failure when it repeats on a healthy trunk.
                let first = !earlier.iter().any(|a| a.end_reason.is_carrier_fault());
                if circuit != trunk::State::Closed || first {
                    attempt.held = true;
                    svc.metrics.attempts_held.inc();
                    Next::Retry {
                        due_at_ms: hold_ms,
                        cause: Cause::Carrier,
                    }
                } else {
                    svc.next_after(&t, &check, &r, &earlier, end_ms)
                }
            } else {
                svc.next_after(&t, &check, &r, &earlier, end_ms)
            };
            if matches!(next, Next::Retry { .. }) {
                svc.metrics.retries_scheduled.inc();
            }
            let started = Instant::now();
            // The attempt (perhaps a "needs contact" key) must not be lost
            // to a failing disk: try again until storage takes it. The
            // check's admission slot stays taken meanwhile, and the check
            // stays in flight (recovered at the next start if genki stops).
            let mut backoff = Duration::from_millis(200);
            let c = loop {
                match crate::rt::blocking(|| {
                    svc.store
                        .finish_attempt(&check.id, &attempt, next.clone(), end_ms)
                }) {
                    Ok(c) => break c,
                    // Only a refused write is worth waiting out; a check
                    // that is gone (quarantined) cannot take the attempt.
                    Err(e) if !matches!(e, StoreError::Db(_)) => return Err(e),
                    Err(e) => {
                        error!(check = %check.id, error = %e, "could not store the attempt; trying again");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            };
            svc.metrics
                .storage_write
                .record_us(started.elapsed().as_micros() as u64);
            if !stored_early {
                svc.count_final(&c);
            }
            svc.apply_actions(&sub, flow.actions(), end_ms, &t);
            debug!(check = %check.id, status = ?c.status, outcome = ?c.outcome, "attempt stored");
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            // This node was paused past its lease and another took the
            // check over: its record stands, this call's is dropped.
            Err(StoreError::Fenced(_)) => {
                svc.metrics.fenced_writes.inc();
                warn!(check = %check.id, "this node's claim was taken over while it was paused; its late result is refused (the other node's stands)");
            }
            // The check stays in flight and is recovered at the next start.
            Err(e) => error!(check = %check.id, error = %e, "could not store the attempt"),
        }
        // Not placed after all (the person was deleted, paused or
        // rescheduled, or storage failed first): the circuit's admission
        // goes back, or a probe slot would be taken for ever and nobody
        // dialled again until a restart.
        if !reported {
            svc.circuit().abandon();
        }
        let _ = done.send((tenant, check.id));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::telephony::call::testing::FakePlacer;
    use genki_store::Schedule;
    use genki_store::Store;

    fn jst(s: &str) -> u64 {
        let z: jiff::Zoned = format!("{s}[Asia/Tokyo]").parse().unwrap();
        z.timestamp().as_millisecond() as u64
    }

    /// A service on the in-memory store whose calls are placed by `placer`
    /// (no socket, no media thread, no disk).
    fn service_with(clock: Arc<dyn Clock>, placer: Arc<FakePlacer>) -> Arc<Service> {
        service_on(clock, placer, Arc::new(Store::in_memory()))
    }

    fn service_on(
        clock: Arc<dyn Clock>,
        placer: Arc<FakePlacer>,
        store: Arc<dyn Storage>,
    ) -> Arc<Service> {
        service_ticking(clock, placer, store, Duration::from_millis(100))
    }

    fn service_ticking(
        clock: Arc<dyn Clock>,
        placer: Arc<FakePlacer>,
        store: Arc<dyn Storage>,
        tick: Duration,
    ) -> Arc<Service> {
        let metrics = Arc::new(Metrics::default());
        let calls = Arc::new(CallContext::new(
            placer,
            "127.0.0.1".into(),
            store.clone(),
            Arc::new(HashMap::new()),
        ));
        Arc::new(Service::new(
            store,
            metrics,
            clock,
            calls,
            "test".into(),
            2,
            tick,
        ))
    }

    #[test]
    fn a_call_in_settles_the_days_pending_checks_and_is_a_check_of_its_own() {
        let clock = Arc::new(ManualClock::at(jst("2026-11-24T10:00")));
        let svc = service_with(
            clock.clone(),
            Arc::new(FakePlacer::new(None, Duration::ZERO)),
        );
        let t = svc
            .store
            .create_tenant(Tenant::with_defaults("t", 0))
            .unwrap();
        let s = svc
            .store
            .create_subscriber(Subscriber {
                id: 0,
                tenant_id: t.id,
                name: "x".into(),
                phone: "+81 47-123-4567".into(),
                schedule: None,
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .unwrap();
        let pending = svc.request_check(&s).unwrap();
        clock.set(jst("2026-11-24T10:05"));
        for number in ["0471234567", "+81471234567", "sip:0471234567@10.0.0.1:5060"] {
            assert_eq!(
                svc.identify(number).unwrap().map(|x| x.id),
                Some(s.id),
                "{number}"
            );
        }
        for stranger in ["0399999999", "", "anonymous"] {
            assert!(svc.identify(stranger).unwrap().is_none(), "{stranger}");
        }
        let heard = Attempt {
            n: 1,
            answered: true,
            digits: "1".into(),
            inbound: true,
            ..Default::default()
        };
        let id = svc.check_in(&s, Outcome::Fine, &heard).unwrap();
        let own = svc.store.check(&id).unwrap().unwrap();
        assert_eq!(
            (own.status, own.outcome),
            (CheckStatus::Done, Some(Outcome::Fine))
        );
        assert!(svc.store.attempts(&id).unwrap()[0].inbound);
        let settled = svc.store.check(&pending).unwrap().unwrap();
        assert_eq!(
            (settled.status, settled.outcome),
            (CheckStatus::Done, Some(Outcome::Fine)),
            "the day's pending check is not called any more"
        );
        assert!(svc
            .store
            .due(jst("2026-11-26T10:00"), 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn call_now_twice_in_one_millisecond_is_two_checks() {
        let clock = Arc::new(ManualClock::at(jst("2026-11-22T10:00")));
        let svc = service_with(
            clock.clone(),
            Arc::new(FakePlacer::new(None, Duration::ZERO)),
        );
        let t = svc
            .store
            .create_tenant(Tenant::with_defaults("t", 0))
            .unwrap();
        let s = svc
            .store
            .create_subscriber(Subscriber {
                id: 0,
                tenant_id: t.id,
                name: "x".into(),
                phone: "sip:1@127.0.0.1".into(),
                schedule: None,
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .unwrap();
        let a = svc.request_check(&s).unwrap();
        let b = svc.request_check(&s).unwrap();
        assert_ne!(a, b, "the clock did not move, the checks are still two");
        let since = clock.now_ms() - 1;
        assert_eq!(svc.store.one_offs_since(s.id, since).unwrap(), 2);
        assert_eq!(svc.store.due(clock.now_ms(), 10).unwrap().len(), 2);
    }

    #[test]
    fn a_plans_inputs_change_with_people_tenants_and_the_day_only() {
        let clock = Arc::new(ManualClock::at(jst("2026-11-22T07:00")));
        let svc = service_with(
            clock.clone(),
            Arc::new(FakePlacer::new(None, Duration::ZERO)),
        );
        let t = svc
            .store
            .create_tenant(Tenant::with_defaults("t", 0))
            .unwrap();
        let a = svc.plan_inputs().unwrap();
        clock.set(jst("2026-11-22T23:00"));
        assert_eq!(
            svc.plan_inputs().unwrap(),
            a,
            "the same day, nothing written"
        );
        let s = svc
            .store
            .create_subscriber(Subscriber {
                id: 0,
                tenant_id: t.id,
                name: "x".into(),
                phone: "sip:1@127.0.0.1".into(),
                schedule: None,
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .unwrap();
        let b = svc.plan_inputs().unwrap();
        assert_ne!(b, a, "a person enrolled");
        svc.store
            .put_subscriber(&Subscriber {
                name: "y".into(),
                ..s
            })
            .unwrap();
        let c = svc.plan_inputs().unwrap();
        assert_ne!(c, b, "a person changed");
        svc.store.put_tenant(&t).unwrap();
        let d = svc.plan_inputs().unwrap();
        assert_ne!(d, c, "a tenant changed");
        svc.request_check(&svc.store.subscriber(1).unwrap().unwrap())
            .unwrap();
        assert_eq!(svc.plan_inputs().unwrap(), d, "a check is no input");
        clock.set(jst("2026-11-23T00:01"));
        assert_ne!(svc.plan_inputs().unwrap(), d, "a new day in Tokyo");
    }

    #[test]
    fn schedules_fire_at_their_time_on_virtual_time() {
        let clock = Arc::new(ManualClock::at(jst("2026-11-22T07:00")));
        let svc = service_with(
            clock.clone(),
            Arc::new(FakePlacer::new(None, Duration::ZERO)),
        );
        let t = svc
            .store
            .create_tenant(Tenant::with_defaults("t", 0))
            .unwrap();
        let sub = |days: Vec<u8>| Subscriber {
            id: 0,
            tenant_id: t.id,
            name: "x".into(),
            phone: "sip:1@127.0.0.1".into(),
            schedule: Some(Schedule {
                days,
                times: vec!["09:30".into()],
            }),
            paused_until: None,
            notes: String::new(),
            created_at_ms: 0,
        };
        let weekdays = svc
            .store
            .create_subscriber(sub(vec![1, 2, 3, 4, 5]))
            .unwrap();
        let sunday = svc.store.create_subscriber(sub(vec![7])).unwrap();
        // Sunday 2026-11-22 07:00: today (Sunday) and Monday 11-23, a holiday.
        assert_eq!(
            svc.plan().unwrap(),
            1,
            "only the Sunday subscriber today; Monday is 勤労感謝の日"
        );
        assert_eq!(svc.plan().unwrap(), 0, "planning again creates nothing");
        assert!(svc.store.due(clock.now_ms(), 10).unwrap().is_empty());
        clock.set(jst("2026-11-22T09:30"));
        let due = svc.store.due(clock.now_ms(), 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0].id,
            CheckId::scheduled(sunday.id, jst("2026-11-22T09:30") / 1000)
        );
        // A day later: Tuesday is planned for the weekday subscriber.
        clock.set(jst("2026-11-23T12:00"));
        assert_eq!(svc.plan().unwrap(), 1);
        clock.set(jst("2026-11-24T09:29:59"));
        assert_eq!(
            svc.store.due(clock.now_ms(), 10).unwrap().len(),
            1,
            "only Sunday's, still due"
        );
        clock.set(jst("2026-11-24T09:30"));
        let due = svc.store.due(clock.now_ms(), 10).unwrap();
        assert!(due.iter().any(|c| c.id.subscriber_id == weekdays.id));
        // A retry that would fall after the window ends as missed (default policy).
        let c = svc
            .store
            .check(&CheckId::scheduled(
                weekdays.id,
                jst("2026-11-24T09:30") / 1000,
            ))
            .unwrap()
            .unwrap();
        let r = CallResult {
            attempt: Attempt {
                n: 1,
                end_reason: EndReason::Rejected(486),
                ..Default::default()
            },
            outcome: None,
            cause: Some(Cause::Busy),
            stats: Default::default(),
        };
        let late = jst("2026-11-24T19:50");
        assert_eq!(
            svc.next_after(&t, &c, &r, &[], late),
            Next::Final {
                outcome: Outcome::Missed,
                cause: Some(Cause::Busy)
            }
        );
        assert_eq!(
            svc.next_after(&t, &c, &r, &[], jst("2026-11-24T10:00")),
            Next::Retry {
                due_at_ms: jst("2026-11-24T10:15"),
                cause: Cause::Busy
            }
        );
        let answered_silent = CallResult {
            cause: Some(Cause::NoInput),
            ..r.clone()
        };
        assert_eq!(
            svc.next_after(&t, &c, &answered_silent, &[], jst("2026-11-24T10:00")),
            Next::Final {
                outcome: Outcome::NoResponse,
                cause: Some(Cause::NoInput)
            }
        );
        // Causes from the network: a wrong number and an anonymity
        // refusal end at once, for the coordinator (never an alert).
        let ended = |status: u16, cause: Cause| CallResult {
            attempt: Attempt {
                n: 1,
                end_reason: EndReason::Rejected(status),
                ..Default::default()
            },
            cause: Some(cause),
            ..r.clone()
        };
        for (status, cause) in [
            (404, Cause::InvalidNumber),
            (410, Cause::InvalidNumber),
            (484, Cause::InvalidNumber),
            (433, Cause::Rejected),
        ] {
            assert_eq!(
                svc.next_after(
                    &t,
                    &c,
                    &ended(status, cause.clone()),
                    &[],
                    jst("2026-11-24T10:00")
                ),
                Next::Final {
                    outcome: Outcome::NotAttempted,
                    cause: Some(cause)
                },
                "{status}"
            );
        }
        // 603 is retried like a failure…
        assert!(matches!(
            svc.next_after(
                &t,
                &c,
                &ended(603, Cause::Rejected),
                &[],
                jst("2026-11-24T10:00")
            ),
            Next::Retry { .. }
        ));
        // …and when the window closes on attempts that never reached the
        // line (refused, or genki's own media failing), the check is not
        // `missed`: nobody's phone was tried.
        let media = CallResult {
            attempt: Attempt {
                n: 2,
                end_reason: EndReason::NoMedia,
                answered: true,
                ..Default::default()
            },
            cause: Some(Cause::Failed),
            ..r.clone()
        };
        let refused = ended(603, Cause::Rejected).attempt;
        assert_eq!(
            svc.next_after(&t, &c, &ended(603, Cause::Rejected), &[], late),
            Next::Final {
                outcome: Outcome::NotAttempted,
                cause: Some(Cause::Rejected)
            }
        );
        let no_media_only = CallResult {
            attempt: Attempt {
                answered: false,
                end_reason: EndReason::MediaSetupFailed,
                ..media.attempt.clone()
            },
            ..media.clone()
        };
        assert_eq!(
            svc.next_after(&t, &c, &no_media_only, std::slice::from_ref(&refused), late),
            Next::Final {
                outcome: Outcome::NotAttempted,
                cause: Some(Cause::Failed)
            }
        );
        // Answered, but genki never heard the line (its media failed):
        // were every call of a round to end so — genki's own firewall —
        // nobody may be reported silent.
        assert_eq!(
            svc.next_after(&t, &c, &media, std::slice::from_ref(&media.attempt), late),
            Next::Final {
                outcome: Outcome::NotAttempted,
                cause: Some(Cause::Failed)
            }
        );
        // Heard after the answer: a fax ends the check at once (a wrong
        // number); an announcement never makes it `missed`; a machine is
        // the person not answering, retried as such, and `missed` at the end.
        let heard = |reason: EndReason, cause: Cause| CallResult {
            attempt: Attempt {
                n: 2,
                answered: true,
                end_reason: reason,
                ..Default::default()
            },
            cause: Some(cause),
            ..r.clone()
        };
        let noon = jst("2026-11-24T12:00");
        assert_eq!(
            svc.next_after(&t, &c, &heard(EndReason::Fax, Cause::Fax), &[], noon),
            Next::Final {
                outcome: Outcome::NotAttempted,
                cause: Some(Cause::Fax)
            }
        );
        let announced = heard(EndReason::Announcement, Cause::Announcement);
        assert_eq!(
            svc.next_after(
                &t,
                &c,
                &announced,
                std::slice::from_ref(&announced.attempt),
                late
            ),
            Next::Final {
                outcome: Outcome::NotAttempted,
                cause: Some(Cause::Announcement)
            }
        );
        let machine = heard(EndReason::Machine, Cause::Machine);
        assert!(matches!(
            svc.next_after(&t, &c, &machine, &[], noon),
            Next::Retry {
                cause: Cause::Machine,
                ..
            }
        ));
        assert_eq!(
            svc.next_after(&t, &c, &machine, &[], late),
            Next::Final {
                outcome: Outcome::Missed,
                cause: Some(Cause::Machine)
            }
        );
        // A voice but no key: by the tenant's policy.
        let spoke = heard(EndReason::ScriptDone, Cause::Spoke);
        let mut t2 = t.clone();
        for (policy, at, want) in [
            (SpokePolicy::Fine, noon, Some(Outcome::Fine)),
            (SpokePolicy::Review, noon, Some(Outcome::Spoke)),
            (SpokePolicy::Retry, noon, None),
            (SpokePolicy::Retry, late, Some(Outcome::Spoke)),
        ] {
            t2.retry.on_spoke = policy;
            match (svc.next_after(&t2, &c, &spoke, &[], at), want) {
                (Next::Final { outcome, cause }, Some(w)) => {
                    assert_eq!((outcome, cause), (w, Some(Cause::Spoke)), "{policy:?}")
                }
                (Next::Retry { cause, .. }, None) => assert_eq!(cause, Cause::Spoke),
                (other, w) => panic!("{policy:?}: {other:?}, wanted {w:?}"),
            }
        }
        // One attempt that rang out is enough for `missed`.
        let rang_out = Attempt {
            end_reason: EndReason::NoAnswer,
            ..refused.clone()
        };
        assert_eq!(
            svc.next_after(&t, &c, &no_media_only, &[rang_out], late),
            Next::Final {
                outcome: Outcome::Missed,
                cause: Some(Cause::Failed)
            }
        );
    }

    /// `n` people of a new tenant, each with a one-off check due now.
    fn due_now(svc: &Service, n: usize, cps: Option<f64>) -> Vec<CheckId> {
        let mut t = Tenant::with_defaults("t", 0);
        t.cps = cps;
        due_in(svc, t, n, "10")
    }

    /// `n` people of a new tenant `t`, phones `{phones}{i}`, each with a
    /// one-off check due now.
    fn due_in(svc: &Service, t: Tenant, n: usize, phones: &str) -> Vec<CheckId> {
        let t = svc.store.create_tenant(t).unwrap();
        let now = svc.clock.now_ms();
        (0..n)
            .map(|i| {
                let sub = svc
                    .store
                    .create_subscriber(Subscriber {
                        id: 0,
                        tenant_id: t.id,
                        name: format!("p{i}"),
                        phone: format!("{phones}{i}"),
                        schedule: None,
                        paused_until: None,
                        notes: String::new(),
                        created_at_ms: 0,
                    })
                    .unwrap();
                let id = CheckId::one_off(sub.id, now);
                svc.store
                    .create_check(&Check::pending(id, t.id, now, now))
                    .unwrap();
                id
            })
            .collect()
    }

    /// The due loop on tokio's paused clock, with no socket and no disk:
    /// a trunk of 2 calls per second starts six due checks at 0, 0 (its
    /// one-second burst), then one every 500 ms; every check ends fine.
    #[tokio::test(start_paused = true)]
    async fn trunk_cps_2_dispatches_two_checks_per_second() {
        // Tuesday 10:00 in Tokyo: inside the default calling window.
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(3)));
        let svc = service_with(clock, placer.clone());
        let ids = due_now(&svc, 6, None);
        let (stop, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let run = tokio::spawn(run(svc.clone(), 2.0, 100, rx, Duration::from_secs(10)));
        while placer.placed().len() < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.send(true).unwrap();
        assert_eq!(run.await.unwrap(), 0, "no call left when stopped");
        let at: Vec<u64> = placer
            .placed()
            .iter()
            .map(|(_, t)| (*t - start).as_millis() as u64)
            .collect();
        let want = [0, 0, 500, 1000, 1500, 2000];
        for (got, want) in at.iter().zip(want) {
            assert!(
                got.abs_diff(want) <= 10,
                "placed at {at:?} ms, want {want:?} ±10"
            );
        }
        for id in ids {
            let c = svc.store.check(&id).unwrap().unwrap();
            assert_eq!(c.outcome, Some(Outcome::Fine), "{id}");
        }
    }

    /// A carrier answering 503 to everything for a minute, with a tenant
    /// that tries each person once: the trunk's circuit opens after a few
    /// faults, nobody is dialled but probes, no check ends (no `missed`,
    /// so no alert case), the operator is told once; when the carrier
    /// recovers a probe closes the circuit and every held check is called
    /// and ends fine.
    #[tokio::test(start_paused = true)]
    async fn a_carrier_outage_holds_every_check_and_calls_them_after() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        placer.set_failing(Some(EndReason::Rejected(503)));
        let svc = service_with(clock, placer.clone());
        let ids = due_now(&svc, 30, None);
        let mut t = svc.store.tenants().unwrap().remove(0);
        t.retry.max_attempts = 1;
        svc.store.put_tenant(&t).unwrap();
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 10.0, 100, rx, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_ne!(svc.circuit().state(), trunk::State::Closed);
        let during = placer.placed().len();
        // Five faults open it; the calls of its first second were already
        // admitted; then a few probes (two at a time, backing off).
        assert!(during <= 20, "{during} calls placed during the outage");
        for id in &ids {
            let c = svc.store.check(id).unwrap().unwrap();
            assert_eq!(c.status, CheckStatus::Pending, "held, not ended: {c:?}");
        }
        assert_eq!(svc.metrics.trunk_circuit_opened.get(), 1);
        assert_eq!(svc.notices.raised.get(), 1, "one notice: trunk down");
        placer.set_failing(None);
        for _ in 0..1200 {
            let done = ids
                .iter()
                .filter(|id| svc.store.check(id).unwrap().unwrap().status == CheckStatus::Done)
                .count();
            if done == ids.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.send(true).unwrap();
        run.await.unwrap();
        for id in &ids {
            let c = svc.store.check(id).unwrap().unwrap();
            assert_eq!(c.outcome, Some(Outcome::Fine), "{c:?}");
            let held = svc
                .store
                .attempts(id)
                .unwrap()
                .iter()
                .filter(|a| a.held)
                .count();
            assert_eq!(
                held as u32 + 1,
                c.attempts,
                "every failed attempt held: {c:?}"
            );
        }
        assert_eq!(svc.circuit().state(), trunk::State::Closed);
        assert_eq!(svc.notices.raised.get(), 2, "trunk down, then recovered");
        assert_eq!(svc.metrics.outcome_missed.get(), 0);
    }

    /// The window closes while the carrier is still failing: the held
    /// checks end `not_attempted` cause `carrier` (the operator's, never
    /// an alert). A check nobody could dial before its window closed ends
    /// `not_attempted` too, not `missed`.
    #[tokio::test(start_paused = true)]
    async fn checks_the_carrier_kept_from_calling_end_not_attempted_at_window_close() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T19:58",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        placer.set_failing(Some(EndReason::Timeout));
        let svc = service_with(clock, placer.clone());
        let mut t = Tenant::with_defaults("t", 0);
        t.window_end = "20:00".into();
        let t = svc.store.create_tenant(t).unwrap();
        let now = svc.clock.now_ms();
        let mut ids = Vec::new();
        for i in 0..10 {
            let sub = svc
                .store
                .create_subscriber(Subscriber {
                    id: 0,
                    tenant_id: t.id,
                    name: format!("p{i}"),
                    phone: format!("10{i}"),
                    schedule: Some(Schedule {
                        days: (1..=7).collect(),
                        times: vec!["19:58".into()],
                    }),
                    paused_until: None,
                    notes: String::new(),
                    created_at_ms: 0,
                })
                .unwrap();
            let id = CheckId::scheduled(sub.id, now / 1000);
            svc.store
                .create_check(&Check::pending(id, t.id, now, now))
                .unwrap();
            ids.push(id);
        }
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 10.0, 100, rx, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(240)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        for id in &ids {
            let c = svc.store.check(id).unwrap().unwrap();
            assert_eq!(
                (c.status, c.outcome, c.last_cause.clone()),
                (
                    CheckStatus::Done,
                    Some(Outcome::NotAttempted),
                    Some(Cause::Carrier)
                ),
                "{c:?}"
            );
        }
        assert_eq!(svc.metrics.outcome_missed.get(), 0);
    }

    /// The outcome is stored when the key is pressed, while the call still
    /// plays its acknowledgement: a crash then cannot call the person
    /// again. The call's end adds the whole attempt and counts nothing twice.
    #[tokio::test(start_paused = true)]
    async fn the_outcome_is_stored_at_the_key_not_at_the_end_of_the_call() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(None, Duration::from_secs(10)));
        placer.set_press(Some('2'));
        let svc = service_with(clock, placer.clone());
        let ids = due_now(&svc, 1, None);
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 10.0, 100, rx, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let c = svc.store.check(&ids[0]).unwrap().unwrap();
        assert_eq!(
            (c.status, c.outcome),
            (CheckStatus::Done, Some(Outcome::NeedsContact)),
            "stored at the key, the call still up"
        );
        assert!(
            svc.store.inflight().unwrap().is_empty(),
            "nothing to recover"
        );
        let a = &svc.store.attempts(&ids[0]).unwrap()[0];
        assert_eq!(
            (a.digits.as_str(), a.end_reason.to_string().as_str()),
            ("2", "")
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        let attempts = svc.store.attempts(&ids[0]).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            attempts[0].end_reason,
            EndReason::ScriptDone,
            "the whole attempt"
        );
        assert_eq!(svc.metrics.outcome_needs_contact.get(), 1, "counted once");
        assert_eq!(placer.placed().len(), 1);
    }

    /// genki was down for two days: the slots of those days are not called
    /// days late (the person gets today's call, once); they end
    /// `not_attempted`, cause `outside_window`, never an alert.
    #[tokio::test(start_paused = true)]
    async fn slots_of_past_days_are_ended_not_called_days_late() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-26T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        let svc = service_with(clock, placer.clone());
        let t = svc
            .store
            .create_tenant(Tenant::with_defaults("t", 0))
            .unwrap();
        let sub = svc
            .store
            .create_subscriber(Subscriber {
                id: 0,
                tenant_id: t.id,
                name: "p".into(),
                phone: "100".into(),
                schedule: Some(Schedule {
                    days: (1..=7).collect(),
                    times: vec!["10:00".into()],
                }),
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .unwrap();
        let mut ids = Vec::new();
        for day in ["2026-11-24T10:00", "2026-11-25T10:00", "2026-11-26T10:00"] {
            let at = jst(day);
            let id = CheckId::scheduled(sub.id, at / 1000);
            svc.store
                .create_check(&Check::pending(id, t.id, at, at - 86_400_000))
                .unwrap();
            ids.push(id);
        }
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 10.0, 100, rx, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        assert_eq!(placer.placed().len(), 1, "only today's slot is called");
        for id in &ids[..2] {
            let c = svc.store.check(id).unwrap().unwrap();
            assert_eq!(
                (c.outcome, c.last_cause),
                (Some(Outcome::NotAttempted), Some(Cause::OutsideWindow)),
                "{id}"
            );
        }
        let today = svc.store.check(&ids[2]).unwrap().unwrap();
        assert_eq!(today.outcome, Some(Outcome::Fine));
        assert_eq!(svc.metrics.outcome_missed.get(), 0);
    }

    /// A person's schedule changes after their checks were planned: the
    /// old slot is not called (`not_attempted`, cause `rescheduled`), the
    /// new one is, once.
    #[tokio::test(start_paused = true)]
    async fn a_changed_schedule_moves_the_planned_call() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T09:50",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        let svc = service_ticking(
            clock,
            placer.clone(),
            Arc::new(Store::in_memory()),
            Duration::from_secs(5),
        );
        let t = svc
            .store
            .create_tenant(Tenant::with_defaults("t", 0))
            .unwrap();
        let mut sub = svc
            .store
            .create_subscriber(Subscriber {
                id: 0,
                tenant_id: t.id,
                name: "p".into(),
                phone: "100".into(),
                schedule: Some(Schedule {
                    days: (1..=7).collect(),
                    times: vec!["10:00".into()],
                }),
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .unwrap();
        svc.plan().unwrap();
        sub.schedule = Some(Schedule {
            days: (1..=7).collect(),
            times: vec!["10:20".into()],
        });
        svc.store.put_subscriber(&sub).unwrap();
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 10.0, 100, rx, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(40 * 60)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        assert_eq!(placer.placed().len(), 1, "called once, at the new time");
        let old = svc
            .store
            .check(&CheckId::scheduled(sub.id, jst("2026-11-24T10:00") / 1000))
            .unwrap()
            .unwrap();
        assert_eq!(
            (old.outcome, old.last_cause),
            (Some(Outcome::NotAttempted), Some(Cause::Rescheduled))
        );
        let new = svc
            .store
            .check(&CheckId::scheduled(sub.id, jst("2026-11-24T10:20") / 1000))
            .unwrap()
            .unwrap();
        assert_eq!(new.outcome, Some(Outcome::Fine));
    }

    /// Probes that find their person deleted are never placed: the
    /// circuit must get its probe slots back, or dialling would never
    /// resume after the outage (found in review: it stayed probing with
    /// both slots taken).
    #[tokio::test(start_paused = true)]
    async fn probes_that_are_not_placed_give_their_slot_back() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        placer.set_failing(Some(EndReason::Rejected(503)));
        let svc = service_with(clock, placer.clone());
        let ids = due_now(&svc, 10, None);
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 10.0, 100, rx, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_ne!(svc.circuit().state(), trunk::State::Closed);
        // Everyone held is deleted meanwhile; the carrier recovers.
        for id in &ids {
            if let Some(s) = svc.store.subscriber(id.subscriber_id).unwrap() {
                svc.store.delete_subscriber(&s).unwrap();
            }
        }
        placer.set_failing(None);
        // A new person is due a minute later, after the probes have found
        // the deleted people: those must not keep the circuit from calling.
        let new = due_now(&svc, 1, None)[0];
        let tenant_id = svc.store.check(&new).unwrap().unwrap().tenant_id;
        let later = svc.clock.now_ms() + 60_000;
        let moved = CheckId::one_off(new.subscriber_id, later);
        svc.store
            .create_check(&Check::pending(moved, tenant_id, later, later))
            .unwrap();
        svc.store
            .settle_pending(
                &new,
                Next::Final {
                    outcome: Outcome::NotAttempted,
                    cause: Some(Cause::Paused),
                },
                svc.clock.now_ms(),
            )
            .unwrap();
        let new = moved;
        tokio::time::sleep(Duration::from_secs(300)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        let c = svc.store.check(&new).unwrap().unwrap();
        assert_eq!(c.outcome, Some(Outcome::Fine), "{c:?}");
        assert_eq!(svc.circuit().state(), trunk::State::Closed);
    }

    /// A tenant's own rate applies beside the trunk's: at 1 call per
    /// second, three checks start at 0, 1 and 2 s though the trunk allows 10.
    #[tokio::test(start_paused = true)]
    async fn a_tenant_rate_below_the_trunk_rate_paces_its_checks() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(None, Duration::from_millis(100)));
        let svc = service_with(clock, placer.clone());
        due_now(&svc, 3, Some(1.0));
        let (stop, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let run = tokio::spawn(run(svc.clone(), 10.0, 100, rx, Duration::from_secs(10)));
        while placer.placed().len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        run.await.unwrap();
        let at: Vec<u64> = placer
            .placed()
            .iter()
            .map(|(_, t)| (*t - start).as_millis() as u64)
            .collect();
        for (got, want) in at.iter().zip([0, 1000, 2000]) {
            assert!(got.abs_diff(want) <= 10, "placed at {at:?} ms");
        }
    }

    /// A tenant at its own call limit, with 100 due checks in front, does
    /// not hide another tenant's check until the once-a-second full scan:
    /// a short read that started nothing while the trunk had room reads
    /// every due check at the next pass (at most 100 ms later).
    #[tokio::test(start_paused = true)]
    async fn a_tenant_at_its_limit_does_not_hide_another_tenants_check() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(
            Some(Outcome::Fine),
            Duration::from_secs(10),
        ));
        let svc = service_with(clock, placer.clone());
        let mut a = Tenant::with_defaults("a", 0);
        a.max_calls = Some(1);
        due_in(&svc, a, 100, "20");
        let (stop, rx) = watch::channel(false);
        // 5 calls a second: a short read is 64 checks, fewer than a's 100.
        let run = tokio::spawn(run(svc.clone(), 5.0, 100, rx, Duration::from_secs(1)));
        // Past the first (full) pass: tenant a's one call is up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(placer.placed().len(), 1, "{:?}", placer.placed());
        due_in(&svc, Tenant::with_defaults("b", 0), 1, "30");
        let due = tokio::time::Instant::now();
        while placer.placed().len() < 2 && due.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let placed = placer.placed();
        stop.send(true).unwrap();
        run.await.unwrap();
        let b = placed
            .iter()
            .find(|(to, _)| to.contains("300"))
            .unwrap_or_else(|| panic!("tenant b never called: {placed:?}"));
        let waited = b.1 - due;
        assert!(
            waited <= Duration::from_millis(300),
            "tenant b's check waited {waited:?} behind tenant a's queue"
        );
    }

    /// A disk that refuses every write for 10 s in the middle of a round
    /// (ENOSPC, injected under the store): nobody is dialled while it does,
    /// storage reports unhealthy, no admission slot is lost, and once
    /// writes work again every check ends with exactly one outcome, each
    /// person called once — without a restart.
    #[tokio::test(start_paused = true)]
    async fn while_storage_refuses_writes_nobody_is_dialled_and_every_check_ends_after() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let kv = Arc::new(genki_store::FaultyKv::new());
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(2)));
        let svc = service_on(clock, placer.clone(), Arc::new(Store::new(kv.clone())));
        let ids = due_now(&svc, 20, None);
        let (stop, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        // At most 4 calls at once: a leaked slot would show as a stall.
        let run = tokio::spawn(run(svc.clone(), 20.0, 4, rx, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        kv.set_failing(true);
        let failing_from = tokio::time::Instant::now();
        let placed_before = placer.placed().len();
        assert!(placed_before >= 4, "the round had started: {placed_before}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!svc.store.writes_ok(), "storage reports the failing writes");
        tokio::time::sleep(Duration::from_secs(7)).await;
        let failing_to = tokio::time::Instant::now();
        kv.set_failing(false);
        let late: Vec<_> = placer
            .placed()
            .iter()
            .filter(|(_, t)| *t > failing_from && *t < failing_to)
            .map(|(_, t)| (*t - start).as_millis())
            .collect();
        assert!(
            late.is_empty(),
            "calls started while writes failed, at {late:?} ms"
        );
        // Everything ends, without a restart.
        for _ in 0..600 {
            let done = ids
                .iter()
                .filter(|id| svc.store.check(id).unwrap().unwrap().status == CheckStatus::Done)
                .count();
            if done == ids.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(svc.store.writes_ok());
        for id in &ids {
            let c = svc.store.check(id).unwrap().unwrap();
            assert_eq!(
                (c.status, c.outcome),
                (CheckStatus::Done, Some(Outcome::Fine)),
                "{id}"
            );
            assert_eq!(
                svc.store.attempts(id).unwrap().len(),
                1,
                "{id}: one attempt stored"
            );
        }
        assert_eq!(placer.placed().len(), 20, "each person called exactly once");
        stop.send(true).unwrap();
        assert_eq!(run.await.unwrap(), 0);
    }

    /// A plan whose writes fail returns the error instead of hanging (its
    /// reader must not wait for good on writers that have stopped), and
    /// the next plan, once writes work, creates every check.
    #[test]
    fn a_plan_whose_writes_fail_returns_and_the_next_one_completes() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let kv = Arc::new(genki_store::FaultyKv::new());
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        let svc = service_on(clock, placer, Arc::new(Store::new(kv.clone())));
        let t = svc
            .store
            .create_tenant(Tenant::with_defaults("t", 0))
            .unwrap();
        let people: Vec<Subscriber> = (0..12_000)
            .map(|i| Subscriber {
                id: 0,
                tenant_id: t.id,
                name: format!("p{i}"),
                phone: format!("10{i}"),
                schedule: Some(Schedule {
                    days: (1..=7).collect(),
                    times: vec!["11:00".into()],
                }),
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .collect();
        svc.store.create_subscribers(people).unwrap();
        kv.set_failing(true);
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = svc.clone();
        std::thread::spawn(move || {
            let _ = tx.send(s2.plan());
        });
        let r = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the plan hung on failing writes");
        assert!(r.is_err(), "{r:?}");
        kv.set_failing(false);
        let made = svc.plan().unwrap();
        assert_eq!(made, 12_000 * svc.plan_days as u64);
    }

    /// Writes already failing when checks come due: nobody is dialled, and
    /// failed claims give their admission slots back, so the round runs in
    /// full once storage recovers (a leaked slot per failed claim would
    /// stop all dialling at the concurrency limit, for good).
    #[tokio::test(start_paused = true)]
    async fn a_disk_failing_when_checks_come_due_loses_no_admission_slot() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let kv = Arc::new(genki_store::FaultyKv::new());
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        let store = Arc::new(Store::new(kv.clone()));
        let svc = service_on(clock, placer.clone(), store.clone());
        let ids = due_now(&svc, 8, None);
        kv.set_failing(true);
        // The store has not failed a write yet: only the loop's own
        // attempts (claims, or its probe) can find out.
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 20.0, 2, rx, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            placer.placed().is_empty(),
            "nobody dialled while writes fail"
        );
        assert!(!store.writes_ok());
        kv.set_failing(false);
        for _ in 0..300 {
            if placer.placed().len() == 8 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            placer.placed().len(),
            8,
            "every check dialled once storage works"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        for id in &ids {
            assert_eq!(
                svc.store.check(id).unwrap().unwrap().outcome,
                Some(Outcome::Fine)
            );
        }
        stop.send(true).unwrap();
        run.await.unwrap();
    }

    /// Two days of two slots planned for three people; then one is
    /// deleted and one paused for three days. Three days of virtual time
    /// later only the third was ever called; the others' checks all ended
    /// not_attempted (deleted, paused), which never opens a case.
    #[tokio::test(start_paused = true)]
    async fn deleted_and_paused_people_are_never_called_again() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T07:00",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(5)));
        let store: Arc<dyn Storage> = Arc::new(Store::in_memory());
        let svc = service_ticking(
            clock.clone(),
            placer.clone(),
            store.clone(),
            Duration::from_secs(30),
        );
        let t = store.create_tenant(Tenant::with_defaults("t", 0)).unwrap();
        let person = |name: &str, phone: &str| {
            store
                .create_subscriber(Subscriber {
                    id: 0,
                    tenant_id: t.id,
                    name: name.into(),
                    phone: phone.into(),
                    schedule: Some(Schedule {
                        days: vec![1, 2, 3, 4, 5, 6, 7],
                        times: vec!["09:30".into(), "17:00".into()],
                    }),
                    paused_until: None,
                    notes: String::new(),
                    created_at_ms: 0,
                })
                .unwrap()
        };
        let gone = person("removed", "sip:gone@127.0.0.1");
        let mut away = person("away", "sip:away@127.0.0.1");
        let here = person("here", "sip:here@127.0.0.1");
        assert!(
            svc.plan().unwrap() >= 12,
            "two days, two slots, three people"
        );
        store.delete_subscriber(&gone).unwrap();
        away.paused_until = Some("2026-11-27".into());
        store.put_subscriber(&away).unwrap();
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 5.0, 10, rx, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(3 * 86_400)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        let called: Vec<String> = placer.placed().into_iter().map(|(to, _)| to).collect();
        assert!(!called.is_empty(), "the third person was called");
        assert!(
            called.iter().all(|to| to == "sip:here@127.0.0.1"),
            "{called:?}"
        );
        let mut seen = 0;
        for (sub, cause) in [
            (gone.id, Cause::SubscriberDeleted),
            (away.id, Cause::Paused),
        ] {
            for c in store.checks_of(t.id, 0, u64::MAX, 1000).unwrap() {
                if c.id.subscriber_id == sub && c.status == CheckStatus::Done {
                    assert_eq!(c.outcome, Some(Outcome::NotAttempted), "{}", c.id);
                    assert_eq!(c.last_cause, Some(cause.clone()), "{}", c.id);
                    seen += 1;
                }
            }
        }
        assert!(seen >= 8, "their due checks ended not_attempted: {seen}");
        assert!(store
            .alert_inbox(100)
            .unwrap()
            .iter()
            .all(|i| i.subscriber_id == here.id || i.outcome == Outcome::NotAttempted));
    }

    /// A check left dialling with no call holding it (its call task died):
    /// when its lease runs out it is re-queued and called while genki
    /// runs, not at the next start.
    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_with_no_call_is_requeued_at_run_time() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(Some(Outcome::Fine), Duration::from_secs(1)));
        let svc = service_with(clock.clone(), placer.clone());
        let ids = due_now(&svc, 1, None);
        // Claimed by this node with a 60 s lease, and then nobody calls.
        let lease = clock.now_ms() + 60_000;
        svc.store
            .claim(&ids[0], &svc.owner, lease)
            .unwrap()
            .unwrap();
        let (stop, rx) = watch::channel(false);
        let run = tokio::spawn(run(svc.clone(), 2.0, 10, rx, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(placer.placed().is_empty(), "the lease still holds");
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        assert_eq!(placer.placed().len(), 1, "called once the lease ran out");
        let c = svc.store.check(&ids[0]).unwrap().unwrap();
        assert_eq!(c.outcome, Some(Outcome::Fine));
        let reasons: Vec<EndReason> = svc
            .store
            .attempts(&ids[0])
            .unwrap()
            .into_iter()
            .map(|a| a.end_reason)
            .collect();
        assert_eq!(reasons, [EndReason::Interrupted, EndReason::ScriptDone]);
    }

    /// Two checks of one person due together (a slot and a one-off): one
    /// call, then the other after it ends — never two at once.
    #[tokio::test(start_paused = true)]
    async fn one_call_at_a_time_per_person() {
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let placer = Arc::new(FakePlacer::new(
            Some(Outcome::Fine),
            Duration::from_secs(20),
        ));
        let svc = service_with(clock.clone(), placer.clone());
        let first = due_now(&svc, 1, None)[0];
        let now = clock.now_ms();
        let t = svc.store.check(&first).unwrap().unwrap().tenant_id;
        let second = CheckId::one_off(first.subscriber_id, now + 1);
        svc.store
            .create_check(&Check::pending(second, t, now, now))
            .unwrap();
        let (stop, rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let run = tokio::spawn(run(svc.clone(), 10.0, 10, rx, Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.send(true).unwrap();
        run.await.unwrap();
        let at: Vec<u64> = placer
            .placed()
            .iter()
            .map(|(_, t)| (*t - start).as_secs())
            .collect();
        assert_eq!(at.len(), 2, "both checks called: {at:?}");
        assert!(
            at[1] >= at[0] + 20,
            "the second call waited for the first: {at:?}"
        );
        for id in [first, second] {
            assert_eq!(
                svc.store.check(&id).unwrap().unwrap().outcome,
                Some(Outcome::Fine)
            );
        }
    }

    /// A check genki keeps interrupting (it died mid-call three times)
    /// ends not_attempted, which never alerts the person's watchers.
    #[test]
    fn a_check_interrupted_again_and_again_is_not_the_persons_silence() {
        let clock = Arc::new(ManualClock::at(jst("2026-11-24T10:00")));
        let svc = service_with(
            clock.clone(),
            Arc::new(FakePlacer::new(None, Duration::ZERO)),
        );
        let id = due_now(&svc, 1, None)[0];
        for round in 1..=MAX_INTERRUPTIONS {
            svc.store.claim(&id, &svc.owner, u64::MAX).unwrap().unwrap();
            assert_eq!(svc.recover().unwrap(), 1, "round {round}");
        }
        let c = svc.store.check(&id).unwrap().unwrap();
        assert_eq!(c.status, CheckStatus::Done);
        assert_eq!(c.outcome, Some(Outcome::NotAttempted));
        assert_eq!(c.last_cause, Some(Cause::Interrupted));
        let inbox = svc.store.alert_inbox(10).unwrap();
        assert!(inbox.iter().all(|i| i.outcome == Outcome::NotAttempted));
    }
}
