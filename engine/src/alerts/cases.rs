//! Alert cases and the escalation ladder (PRODUCT.md: a missed answer
//! must reach someone, and someone must take the case).
//!
//! Every final outcome arrives through the storage inbox (written with the
//! outcome itself). [`Alerts`] turns it into a case step: a bad outcome
//! opens the subscriber's one open case or adds to it, and the tenant's
//! rules decide its severity ("missed on N consecutive days" and
//! "answered but silent" make it urgent); a `fine` closes an open case and
//! tells everyone who was told the all-clear on the same channel. Each
//! case climbs its ladder: a tier's watchers are notified on every channel
//! they have (non-urgent messages wait out their quiet hours), and if
//! nobody takes the case by the tier's deadline (or all of them pass it
//! on) the next tier is told. Every step is one synced storage batch
//! ([`genki_store::Store::alert_commit`]); the case keeps a timeline of
//! all of them.
//!
//! All state changes go through [`Alerts`] under one lock (the worker and
//! the API both call it), with time read from the [`Clock`], so the rules
//! are tested on virtual time. [`run`] is the worker: inbox, tier
//! deadlines, and the outbox, whose deliveries ([`crate::alerts::notify`]) run in
//! tasks and report back here.
//!
//! Depends on: genki-storage, [`crate::checks::schedule`], [`crate::clock`],
//! [`crate::metrics`], [`crate::alerts::notify`], tokio.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use genki_store::{
    AlertCase, AlertInput, AlertRules, AlertWrite, CaseOutcome, CaseState, Channel, CheckId,
    CheckKind, EventKind, Ladder, LadderOf, Notification, NotifyKind, NotifyState, Outcome,
    Severity, Storage, StoreError, Tenant, Told, Watcher, WatcherAnswer,
};
use serde_json::json;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tracing::{debug, error, info, warn};

use crate::alerts::notify::{Delivery, Notifier};
use crate::checks::schedule::{parse_hhmm, Calendar};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// How notifications are retried.
#[derive(Debug, Clone)]
pub struct RetryRule {
    /// Deliveries tried in all before a notification is given up.
    pub max_tries: u32,
    /// First wait after a failure; doubles each time, at most an hour.
    pub backoff: Duration,
}

/// Why an API action on a case was refused.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("alert case not found")]
    NotFound,
    /// The action does not fit the case's state (e.g. resolve before ack).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The alert engine's state; shared by the worker and the API.
pub struct Alerts {
    pub store: Arc<dyn Storage>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub retry: RetryRule,
    /// Wakes the worker (a final outcome was stored, an API action).
    pub wake: Arc<Notify>,
    lock: Mutex<()>,
}

impl Alerts {
    pub fn new(
        store: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        retry: RetryRule,
        wake: Arc<Notify>,
    ) -> Alerts {
        Alerts {
            store,
            metrics,
            clock,
            retry,
            wake,
            lock: Mutex::new(()),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ladder a subscriber's cases climb: their own, else the tenant's.
    pub fn ladder_for(&self, tenant_id: u64, subscriber_id: u64) -> Result<Ladder, StoreError> {
        Ok(
            match self.store.ladder(LadderOf::Subscriber(subscriber_id))? {
                Some(l) => l,
                None => self
                    .store
                    .ladder(LadderOf::Tenant(tenant_id))?
                    .unwrap_or_default(),
            },
        )
    }

    /// When a notification to `w` may go out: now, or when their quiet hours end.
    fn not_before(w: &Watcher, cal: Option<&Calendar>, now_ms: u64, skip_quiet: bool) -> u64 {
        if skip_quiet {
            return now_ms;
        }
        let (Some(cal), Some(s), Some(e)) = (cal, &w.quiet_start, &w.quiet_end) else {
            return now_ms;
        };
        match (parse_hhmm("quiet_start", s), parse_hhmm("quiet_end", e)) {
            (Ok(s), Ok(e)) => cal.quiet_until(now_ms, s, e).unwrap_or(now_ms),
            _ => now_ms,
        }
    }

    fn new_notification(
        case: &AlertCase,
        w: &Watcher,
        channel: Channel,
        kind: NotifyKind,
        at_ms: u64,
        now_ms: u64,
    ) -> Notification {
        Notification {
            id: 0,
            case_id: case.id,
            tenant_id: case.tenant_id,
            watcher_id: w.id,
            channel,
            kind,
            tier: case.tier,
            state: NotifyState::Pending,
            tries: 0,
            next_at_ms: at_ms,
            sending_until_ms: None,
            last_error: None,
            response: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    fn channels(w: &Watcher) -> Vec<Channel> {
        let mut out = Vec::new();
        if w.phone.is_some() {
            out.push(Channel::Phone);
        }
        if w.email.is_some() {
            out.push(Channel::Email);
        }
        if w.webhook_url.is_some() {
            out.push(Channel::Webhook);
        }
        out
    }

    /// Notify the case's current tier; sets the tier deadline. Returns the
    /// notifications queued.
    fn notify_tier(
        &self,
        case: &mut AlertCase,
        ladder: &Ladder,
        kind: NotifyKind,
        rules: &AlertRules,
        cal: Option<&Calendar>,
        now_ms: u64,
    ) -> Result<Vec<Notification>, StoreError> {
        let Some(tier) = ladder.tiers.get(case.tier as usize) else {
            return Ok(vec![]);
        };
        let skip_quiet = case.severity == Severity::Urgent && rules.urgent_skips_quiet_hours;
        let mut out = Vec::new();
        let mut earliest: Option<u64> = None;
        for wid in &tier.watchers {
            let Some(w) = self
                .store
                .watcher(*wid)?
                .filter(|w| w.tenant_id == case.tenant_id)
            else {
                case.event(
                    now_ms,
                    EventKind::WatcherMissing,
                    json!({"watcher_id": wid}),
                );
                continue;
            };
            let at = Self::not_before(&w, cal, now_ms, skip_quiet);
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
            for ch in Self::channels(&w) {
                out.push(Self::new_notification(case, &w, ch, kind, at, now_ms));
                case.event(
                    now_ms,
                    EventKind::NotificationQueued,
                    json!({"watcher_id": w.id, "watcher": w.name, "channel": ch, "kind": kind,
                           "tier": case.tier, "not_before_ms": at}),
                );
            }
        }
        // The deadline runs from when the tier can first be reached.
        case.tier_deadline_ms =
            Some(earliest.unwrap_or(now_ms) + tier.deadline_s.saturating_mul(1000));
        Ok(out)
    }

    /// Move an open case to its next tier, or mark the ladder exhausted.
    fn escalate(
        &self,
        case: &mut AlertCase,
        rules: &AlertRules,
        cal: Option<&Calendar>,
        reason: &str,
        now_ms: u64,
    ) -> Result<Vec<Notification>, StoreError> {
        let ladder = self.ladder_for(case.tenant_id, case.subscriber_id)?;
        let next = case.tier + 1;
        if (next as usize) < ladder.tiers.len() {
            case.tier = next;
            case.passed.clear();
            case.event(
                now_ms,
                EventKind::Tier,
                json!({"tier": next, "reason": reason}),
            );
            self.metrics.alert_escalations.inc();
            let kind = match case.severity {
                Severity::Urgent => NotifyKind::Urgent,
                Severity::Normal => NotifyKind::Alert,
            };
            self.notify_tier(case, &ladder, kind, rules, cal, now_ms)
        } else {
            case.exhausted = true;
            case.tier_deadline_ms = None;
            case.event(
                now_ms,
                EventKind::LadderExhausted,
                json!({"reason": reason}),
            );
            warn!(
                case = case.id,
                "every tier was told and nobody took the case"
            );
            Ok(vec![])
        }
    }

    /// The case's severity by the tenant's rules.
    pub fn severity_of(case: &AlertCase, rules: &AlertRules) -> Severity {
        if case
            .outcomes
            .iter()
            .any(|o| rules.urgent_on.contains(&o.outcome))
        {
            return Severity::Urgent;
        }
        if rules.urgent_after_missed_days > 0 {
            let days: BTreeSet<jiff::civil::Date> = case
                .outcomes
                .iter()
                .filter(|o| o.outcome == Outcome::Missed)
                .filter_map(|o| o.local_date.parse().ok())
                .collect();
            let mut run = 0u32;
            let mut prev: Option<jiff::civil::Date> = None;
            for d in days {
                run = match prev.and_then(|p| p.tomorrow().ok()) {
                    Some(next) if next == d => run + 1,
                    _ => 1,
                };
                if run >= rules.urgent_after_missed_days {
                    return Severity::Urgent;
                }
                prev = Some(d);
            }
        }
        Severity::Normal
    }

    fn tenant_rules(t: Option<&Tenant>) -> (AlertRules, Option<Calendar>) {
        match t {
            Some(t) => (t.alerts.clone(), Calendar::of(t).ok()),
            None => (AlertRules::default(), None),
        }
    }

    /// The time of the check an outcome belongs to (its slot, or the request).
    fn check_time_ms(id: &CheckId) -> u64 {
        if id.kind == CheckKind::Scheduled {
            id.slot.saturating_mul(1000)
        } else {
            id.slot
        }
    }

    /// Apply one final outcome from the inbox.
    pub fn apply_input(&self, input: &AlertInput) -> Result<(), StoreError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        // A person deleted before their check ran (it ends missed with
        // cause subscriber_deleted) or since: their watchers are never
        // alerted about someone the organisation no longer watches over.
        if input.outcome == Outcome::NotAttempted
            || self.store.subscriber(input.subscriber_id)?.is_none()
        {
            info!(check = %input.check_id, "outcome of a paused or deleted subscriber; no alert");
            self.store.alert_commit(AlertWrite {
                inbox_done: Some(input.check_id),
                ..Default::default()
            })?;
            return Ok(());
        }
        let tenant = self.store.tenant(input.tenant_id)?;
        let (rules, cal) = Self::tenant_rules(tenant.as_ref());
        let open = self.store.open_case_of(input.subscriber_id)?;
        let mut write = AlertWrite {
            inbox_done: Some(input.check_id),
            ..Default::default()
        };
        let bad = rules.open_on.contains(&input.outcome);
        match (input.outcome, open) {
            (Outcome::Fine, Some(mut case)) => {
                let mut ns = self.close(
                    &mut case,
                    "subscriber",
                    Some("answered fine"),
                    None,
                    cal.as_ref(),
                    now,
                )?;
                write.notifications.append(&mut ns);
                write.case = Some(case);
            }
            (o, open) if bad => {
                let local_date = cal
                    .as_ref()
                    .map(|c| {
                        c.local_date(Self::check_time_ms(&input.check_id))
                            .to_string()
                    })
                    .unwrap_or_default();
                let item = CaseOutcome {
                    check_id: input.check_id,
                    outcome: o,
                    at_ms: input.at_ms,
                    local_date,
                };
                let ladder = self.ladder_for(input.tenant_id, input.subscriber_id)?;
                match open {
                    None => {
                        let mut case = AlertCase {
                            outcomes: vec![item],
                            ..AlertCase::open(input.tenant_id, input.subscriber_id, now)
                        };
                        case.severity = Self::severity_of(&case, &rules);
                        case.event(
                            now,
                            EventKind::Opened,
                            json!({"check_id": input.check_id, "outcome": o, "severity": case.severity}),
                        );
                        if ladder.tiers.is_empty() {
                            case.event(now, EventKind::NoLadder, json!({"message": "no watchers are set for this subscriber or tenant"}));
                            warn!(
                                subscriber = input.subscriber_id,
                                "alert case opened but no ladder is set"
                            );
                        }
                        let kind = match case.severity {
                            Severity::Urgent => NotifyKind::Urgent,
                            Severity::Normal => NotifyKind::Alert,
                        };
                        write.notifications =
                            self.notify_tier(&mut case, &ladder, kind, &rules, cal.as_ref(), now)?;
                        self.metrics.alerts_opened.inc();
                        self.metrics.alerts_open.add(1);
                        info!(subscriber = input.subscriber_id, outcome = o.as_str(), severity = ?case.severity, "alert case opened");
                        write.case = Some(case);
                    }
                    Some(mut case) => {
                        case.outcomes.push(item);
                        case.event(
                            now,
                            EventKind::Outcome,
                            json!({"check_id": input.check_id, "outcome": o}),
                        );
                        let sev = Self::severity_of(&case, &rules);
                        if sev > case.severity {
                            case.severity = sev;
                            case.event(now, EventKind::Severity, json!({"severity": sev}));
                            if case.state == CaseState::Open && !case.exhausted {
                                write.notifications = self.notify_tier(
                                    &mut case,
                                    &ladder,
                                    NotifyKind::Urgent,
                                    &rules,
                                    cal.as_ref(),
                                    now,
                                )?;
                            }
                        }
                        write.case = Some(case);
                    }
                }
            }
            _ => {}
        }
        self.store.alert_commit(write)?;
        Ok(())
    }

    /// Pending notifications of a case that are no longer needed once it
    /// is taken or closed (deliveries under way finish and are recorded).
    fn cancel_pending(
        &self,
        case: &mut AlertCase,
        now_ms: u64,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut out = Vec::new();
        for mut n in self.store.notifications_of(case.id)? {
            if n.state == NotifyState::Pending
                && n.sending_until_ms.is_none()
                && n.kind != NotifyKind::AllClear
            {
                n.state = NotifyState::Cancelled;
                n.updated_at_ms = now_ms;
                case.event(
                    now_ms,
                    EventKind::Cancelled,
                    json!({"notification": n.event_id(), "watcher_id": n.watcher_id, "channel": n.channel}),
                );
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Close a case and queue the all-clear to everyone who was told
    /// (except `skip`, who closed it on that channel).
    fn close(
        &self,
        case: &mut AlertCase,
        by: &str,
        note: Option<&str>,
        skip: Option<Told>,
        cal: Option<&Calendar>,
        now_ms: u64,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut out = self.cancel_pending(case, now_ms)?;
        case.state = CaseState::Resolved;
        case.tier_deadline_ms = None;
        case.resolved_by = Some(by.to_string());
        case.resolved_at_ms = Some(now_ms);
        if let Some(n) = note {
            case.note = Some(n.to_string());
        }
        case.event(now_ms, EventKind::Resolved, json!({"by": by, "note": note}));
        let told = case.told.clone();
        for t in told {
            if Some(t) == skip {
                continue;
            }
            let Some(w) = self.store.watcher(t.watcher_id)? else {
                continue;
            };
            let at = Self::not_before(&w, cal, now_ms, false);
            out.push(Self::new_notification(
                case,
                &w,
                t.channel,
                NotifyKind::AllClear,
                at,
                now_ms,
            ));
            case.event(
                now_ms,
                EventKind::AllClearQueued,
                json!({"watcher_id": w.id, "watcher": w.name, "channel": t.channel, "not_before_ms": at}),
            );
        }
        self.metrics.alerts_open.add(-1);
        self.metrics.alerts_resolved.inc();
        Ok(out)
    }

    fn acknowledge(
        &self,
        case: &mut AlertCase,
        by: &str,
        note: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<Notification>, StoreError> {
        case.state = CaseState::Acknowledged;
        case.acked_by = Some(by.to_string());
        case.acked_at_ms = Some(now_ms);
        case.tier_deadline_ms = None;
        if let Some(n) = note {
            case.note = Some(n.to_string());
        }
        case.event(
            now_ms,
            EventKind::Acknowledged,
            json!({"by": by, "note": note}),
        );
        self.metrics.time_to_ack.record_us(
            now_ms
                .saturating_sub(case.opened_at_ms)
                .saturating_mul(1000),
        );
        self.cancel_pending(case, now_ms)
    }

    /// A tier deadline passed: climb the ladder.
    pub fn apply_timer(&self, case_id: u64) -> Result<(), StoreError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        let Some(mut case) = self.store.alert_case(case_id)? else {
            return Ok(());
        };
        let mut write = AlertWrite::default();
        if case.state == CaseState::Open && case.tier_deadline_ms.is_some_and(|d| d <= now) {
            let tenant = self.store.tenant(case.tenant_id)?;
            let (rules, cal) = Self::tenant_rules(tenant.as_ref());
            write.notifications =
                self.escalate(&mut case, &rules, cal.as_ref(), "deadline", now)?;
        } else {
            case.tier_deadline_ms = None;
        }
        write.case = Some(case);
        self.store.alert_commit(write)?;
        Ok(())
    }

    /// Take a due notification for delivery: a sending lease keeps it out
    /// of the due scan (and marks it for recovery after a crash). None when
    /// it is no longer pending.
    pub fn claim(&self, id: u64, lease: Duration) -> Result<Option<Notification>, StoreError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        let Some(mut n) = self.store.notification(id)? else {
            return Ok(None);
        };
        if n.state != NotifyState::Pending || n.next_at_ms > now {
            return Ok(None);
        }
        let until = now + lease.as_millis() as u64;
        n.sending_until_ms = Some(until);
        n.next_at_ms = until;
        n.tries += 1;
        n.updated_at_ms = now;
        let (_, mut ns) = self.store.alert_commit(AlertWrite {
            notifications: vec![n],
            ..Default::default()
        })?;
        Ok(ns.pop())
    }

    /// Record how a delivery went, and what the watcher answered.
    pub fn apply_delivery(&self, id: u64, d: &Delivery) -> Result<(), StoreError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        let Some(mut n) = self.store.notification(id)? else {
            return Ok(());
        };
        let Some(mut case) = self.store.alert_case(n.case_id)? else {
            return Ok(());
        };
        let tenant = self.store.tenant(case.tenant_id)?;
        let (rules, cal) = Self::tenant_rules(tenant.as_ref());
        let watcher = self.store.watcher(n.watcher_id)?;
        let who = watcher
            .as_ref()
            .map(|w| w.name.clone())
            .unwrap_or_else(|| format!("watcher {}", n.watcher_id));
        n.sending_until_ms = None;
        n.updated_at_ms = now;
        let mut write = AlertWrite::default();
        match d {
            Delivery::Delivered { response } => {
                n.state = NotifyState::Delivered;
                n.response = response.clone();
                n.last_error = None;
                n.next_at_ms = now;
                self.metrics.notification(n.channel, "delivered");
                case.event(
                    now,
                    EventKind::Delivered,
                    json!({"notification": n.event_id(), "watcher_id": n.watcher_id, "watcher": who,
                           "channel": n.channel, "kind": n.kind, "tries": n.tries, "response": response}),
                );
                let told = Told {
                    watcher_id: n.watcher_id,
                    channel: n.channel,
                };
                if n.kind != NotifyKind::AllClear && !case.told.contains(&told) {
                    case.told.push(told);
                }
                let by = format!("{who} (phone)");
                match response.as_ref() {
                    Some(WatcherAnswer::Ack | WatcherAnswer::Resolve)
                        if case.state == CaseState::Open =>
                    {
                        write
                            .notifications
                            .extend(self.acknowledge(&mut case, &by, None, now)?);
                    }
                    Some(WatcherAnswer::Pass) if case.state == CaseState::Open => {
                        case.event(
                            now,
                            EventKind::Passed,
                            json!({"watcher_id": n.watcher_id, "watcher": who}),
                        );
                        if !case.passed.contains(&n.watcher_id) {
                            case.passed.push(n.watcher_id);
                        }
                        let ladder = self.ladder_for(case.tenant_id, case.subscriber_id)?;
                        let all_passed = ladder
                            .tiers
                            .get(case.tier as usize)
                            .is_some_and(|t| t.watchers.iter().all(|w| case.passed.contains(w)));
                        if all_passed && !case.exhausted {
                            write.notifications.extend(self.escalate(
                                &mut case,
                                &rules,
                                cal.as_ref(),
                                "all_passed",
                                now,
                            )?);
                        }
                    }
                    _ => {}
                }
                if response == &Some(WatcherAnswer::Resolve)
                    && case.state == CaseState::Acknowledged
                {
                    let ns = self.close(
                        &mut case,
                        &by,
                        Some("confirmed safe by phone"),
                        Some(told),
                        cal.as_ref(),
                        now,
                    )?;
                    write.notifications.extend(ns);
                }
            }
            Delivery::Failed { error, retry } => {
                n.last_error = Some(error.clone());
                let cancelled = n.state == NotifyState::Cancelled;
                if *retry && !cancelled && n.tries < self.retry.max_tries {
                    let wait = self
                        .retry
                        .backoff
                        .saturating_mul(1 << (n.tries.saturating_sub(1)).min(16))
                        .min(Duration::from_secs(3600));
                    n.next_at_ms = now + wait.as_millis() as u64;
                    n.state = NotifyState::Pending;
                    self.metrics.notification(n.channel, "failed");
                    case.event(
                        now,
                        EventKind::Failed,
                        json!({"notification": n.event_id(), "watcher_id": n.watcher_id, "watcher": who,
                               "channel": n.channel, "tries": n.tries, "error": error, "retry_at_ms": n.next_at_ms}),
                    );
                } else {
                    if !cancelled {
                        n.state = NotifyState::GivenUp;
                    }
                    n.next_at_ms = now;
                    self.metrics.notification(n.channel, "given_up");
                    case.event(
                        now,
                        EventKind::GivenUp,
                        json!({"notification": n.event_id(), "watcher_id": n.watcher_id, "watcher": who,
                               "channel": n.channel, "tries": n.tries, "error": error}),
                    );
                }
            }
        }
        write.notifications.push(n);
        write.case = Some(case);
        self.store.alert_commit(write)?;
        Ok(())
    }

    /// A watcher takes the case (API).
    pub fn ack(&self, case_id: u64, by: &str, note: Option<&str>) -> Result<AlertCase, CaseError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        let mut case = self.store.alert_case(case_id)?.ok_or(CaseError::NotFound)?;
        match case.state {
            CaseState::Open => {}
            CaseState::Acknowledged => {
                return Err(CaseError::Conflict(format!(
                    "already acknowledged by {}",
                    case.acked_by.as_deref().unwrap_or("someone")
                )))
            }
            CaseState::Resolved => return Err(CaseError::Conflict("the case is resolved".into())),
        }
        let ns = self.acknowledge(&mut case, by, note, now)?;
        let (c, _) = self.store.alert_commit(AlertWrite {
            case: Some(case),
            notifications: ns,
            inbox_done: None,
        })?;
        self.wake.notify_one();
        Ok(c.expect("committed case"))
    }

    /// Staff pass an open case on (console, API): the event is in the
    /// timeline and the next tier of the ladder is told now instead of at
    /// its deadline. A case every tier was told of cannot be passed.
    pub fn pass(&self, case_id: u64, by: &str, note: Option<&str>) -> Result<AlertCase, CaseError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        let mut case = self.store.alert_case(case_id)?.ok_or(CaseError::NotFound)?;
        match case.state {
            CaseState::Open => {}
            CaseState::Acknowledged => {
                return Err(CaseError::Conflict(format!(
                    "already acknowledged by {}",
                    case.acked_by.as_deref().unwrap_or("someone")
                )))
            }
            CaseState::Resolved => return Err(CaseError::Conflict("the case is resolved".into())),
        }
        if case.exhausted {
            return Err(CaseError::Conflict(
                "every tier of the ladder has been told: take the case instead".into(),
            ));
        }
        case.event(now, EventKind::Passed, json!({"by": by, "note": note}));
        let tenant = self.store.tenant(case.tenant_id)?;
        let (rules, cal) = Self::tenant_rules(tenant.as_ref());
        let ns = self.escalate(&mut case, &rules, cal.as_ref(), "passed", now)?;
        let (c, _) = self.store.alert_commit(AlertWrite {
            case: Some(case),
            notifications: ns,
            inbox_done: None,
        })?;
        self.wake.notify_one();
        Ok(c.expect("committed case"))
    }

    /// The watcher who took the case closes it (API).
    /// Close the person's open case because genki no longer watches over
    /// them (deleted, or paused): pending notifications are cancelled and
    /// nobody is told anything after it (no all-clear: nothing was found
    /// out about the person). Returns the case closed, if there was one.
    pub fn close_for_lifecycle(
        &self,
        subscriber_id: u64,
        reason: &str,
    ) -> Result<Option<AlertCase>, StoreError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        let Some(mut case) = self.store.open_case_of(subscriber_id)? else {
            return Ok(None);
        };
        let ns = self.cancel_pending(&mut case, now)?;
        case.state = CaseState::Resolved;
        case.tier_deadline_ms = None;
        case.resolved_by = Some("genki".into());
        case.resolved_at_ms = Some(now);
        case.note = Some(reason.to_string());
        case.event(
            now,
            EventKind::Resolved,
            json!({"by": "genki", "note": reason}),
        );
        let (c, _) = self.store.alert_commit(AlertWrite {
            case: Some(case),
            notifications: ns,
            inbox_done: None,
        })?;
        self.metrics.alerts_open.add(-1);
        self.metrics.alerts_resolved.inc();
        Ok(c)
    }

    pub fn resolve(
        &self,
        case_id: u64,
        by: &str,
        note: Option<&str>,
    ) -> Result<AlertCase, CaseError> {
        let _g = self.guard();
        let now = self.clock.now_ms();
        let mut case = self.store.alert_case(case_id)?.ok_or(CaseError::NotFound)?;
        match case.state {
            CaseState::Acknowledged => {}
            CaseState::Open => {
                return Err(CaseError::Conflict(
                    "acknowledge the case first (POST /v1/alerts/{id}/ack)".into(),
                ))
            }
            CaseState::Resolved => return Err(CaseError::Conflict("the case is resolved".into())),
        }
        let tenant = self.store.tenant(case.tenant_id)?;
        let (_, cal) = Self::tenant_rules(tenant.as_ref());
        let ns = self.close(&mut case, by, note, None, cal.as_ref(), now)?;
        let (c, _) = self.store.alert_commit(AlertWrite {
            case: Some(case),
            notifications: ns,
            inbox_done: None,
        })?;
        self.wake.notify_one();
        Ok(c.expect("committed case"))
    }

    /// One pass over the inbox and the tier deadlines. Returns how many steps were applied.
    pub fn step(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for input in self.store.alert_inbox(500)? {
            self.apply_input(&input)?;
            n += 1;
        }
        for case_id in self.store.due_case_timers(self.clock.now_ms(), 500)? {
            self.apply_timer(case_id)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Who runs the alert worker: with many nodes on one database one node
/// at a time leads it (a lease on the database's clock, renewed each
/// pass), so a case is opened and a watcher told by one node only.
#[derive(Debug, Clone)]
pub struct Lead {
    pub owner: String,
    pub lease: Duration,
}

/// How many deliveries the alert worker has in progress at once.
#[derive(Debug, Clone, Copy)]
pub struct Parallel {
    /// Webhook POSTs and e-mails (each a second or less).
    pub messages: usize,
    /// Watcher calls: each holds its slot for the whole call, so a morning
    /// with many cases at once needs many (a pool shared with the POSTs
    /// rang 1,000 first watchers over 4.5 minutes, 16 calls at a time).
    pub calls: usize,
}

/// The alert worker: applies the inbox and tier deadlines, and delivers
/// the outbox with at most `parallel` deliveries of each kind at once,
/// until `shutdown`, while this node leads it.
pub async fn run(
    alerts: Arc<Alerts>,
    notifier: Arc<Notifier>,
    parallel: Parallel,
    lead: Lead,
    mut shutdown: watch::Receiver<bool>,
) {
    let lease_ms = lead.lease.as_millis() as u64;
    let pass = (lead.lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut leading = false;
    let message_slots = Arc::new(Semaphore::new(parallel.messages.max(1)));
    let call_slots = Arc::new(Semaphore::new(parallel.calls.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u64, Delivery)>();
    let mut sending: HashSet<u64> = HashSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match crate::rt::blocking(|| alerts.store.lead("alerts", &lead.owner, lease_ms)) {
            Ok(true) if !leading => {
                leading = true;
                info!(node = %lead.owner, "this node runs the alert worker");
                // Deliveries cut short (by a stop, or a leader that died)
                // are sent again, with the same event ids.
                match crate::rt::blocking(|| {
                    alerts.store.recover_notifications(alerts.clock.now_ms())
                }) {
                    Ok(0) => {}
                    Ok(n) => warn!(n, "notifications were being delivered when their node stopped; sending again (same event ids)"),
                    Err(e) => error!(error = %e, "cannot recover the outbox"),
                }
            }
            Ok(true) => {}
            Ok(false) | Err(_) => {
                if leading {
                    warn!(node = %lead.owner, "another node runs the alert worker now");
                }
                leading = false;
                tokio::select! {
                    _ = tokio::time::sleep(pass) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        if let Err(e) = crate::rt::blocking(|| alerts.step()) {
            error!(error = %e, "alert step failed");
        }
        // The outbox.
        let now = alerts.clock.now_ms();
        match alerts.store.due_notifications(now, 200) {
            Ok(due) => {
                for n in due {
                    if sending.contains(&n.id) {
                        continue;
                    }
                    let slots = match n.channel {
                        Channel::Phone => &call_slots,
                        Channel::Email | Channel::Webhook => &message_slots,
                    };
                    // Full for this kind: the next due one may be of the other.
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        continue;
                    };
                    let lease = notifier.lease(n.channel);
                    match crate::rt::blocking(|| alerts.claim(n.id, lease)) {
                        Ok(Some(n)) => {
                            sending.insert(n.id);
                            let (alerts2, notifier2, tx) =
                                (alerts.clone(), notifier.clone(), done_tx.clone());
                            tokio::spawn(async move {
                                let d = notifier2.deliver(alerts2.store.as_ref(), &n).await;
                                debug!(notification = n.id, ?d, "delivery finished");
                                drop(permit);
                                let _ = tx.send((n.id, d));
                            });
                        }
                        Ok(None) => {}
                        Err(e) => error!(error = %e, "cannot claim a notification"),
                    }
                }
            }
            Err(e) => error!(error = %e, "outbox scan failed"),
        }
        let wait = match alerts.store.next_alert_work_ms() {
            Ok(Some(at)) => Duration::from_millis(at.saturating_sub(alerts.clock.now_ms())),
            _ => Duration::from_secs(5),
        }
        .clamp(Duration::from_millis(20), pass);
        tokio::select! {
            Some((id, d)) = done_rx.recv() => {
                sending.remove(&id);
                if let Err(e) = crate::rt::blocking(|| alerts.apply_delivery(id, &d)) {
                    error!(notification = id, error = %e, "cannot record a delivery");
                }
            }
            _ = alerts.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use genki_store::Store;
    use genki_store::{Subscriber, Tier};

    fn jst(s: &str) -> u64 {
        let z: jiff::Zoned = format!("{s}[Asia/Tokyo]").parse().unwrap();
        z.timestamp().as_millisecond() as u64
    }

    struct World {
        alerts: Alerts,
        clock: Arc<ManualClock>,
        tenant: u64,
        sub: u64,
        w: Vec<u64>,
    }

    /// A tenant, a subscriber, three watchers (the second with quiet hours
    /// 21:00–07:00) on a two-tier ladder: [w0, w1] 10 min, [w2] 30 min.
    fn world(at: &str) -> World {
        let store: Arc<dyn Storage> = Arc::new(Store::in_memory());
        let clock = Arc::new(ManualClock::at(jst(at)));
        let t = store.create_tenant(Tenant::with_defaults("t", 0)).unwrap();
        let sub = store
            .create_subscriber(Subscriber {
                id: 0,
                tenant_id: t.id,
                name: "山田".into(),
                phone: "sip:1@127.0.0.1".into(),
                schedule: None,
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .unwrap();
        let mut w = vec![];
        for (i, quiet) in [(0, false), (1, true), (2, false)] {
            let x = store
                .put_watcher(Watcher {
                    id: 0,
                    tenant_id: t.id,
                    name: format!("w{i}"),
                    phone: Some(format!("sip:20{i}@127.0.0.1")),
                    email: None,
                    webhook_url: (i == 0).then(|| "http://127.0.0.1:1/hook".to_string()),
                    webhook_secret: (i == 0).then(|| "0123456789abcdef".to_string()),
                    quiet_start: quiet.then(|| "21:00".to_string()),
                    quiet_end: quiet.then(|| "07:00".to_string()),
                    created_at_ms: 0,
                })
                .unwrap();
            w.push(x.id);
        }
        store
            .put_ladder(
                LadderOf::Tenant(t.id),
                &Ladder {
                    tiers: vec![
                        Tier {
                            watchers: vec![w[0], w[1]],
                            deadline_s: 600,
                        },
                        Tier {
                            watchers: vec![w[2]],
                            deadline_s: 1800,
                        },
                    ],
                },
            )
            .unwrap();
        let alerts = Alerts::new(
            store,
            Arc::new(Metrics::default()),
            clock.clone(),
            RetryRule {
                max_tries: 3,
                backoff: Duration::from_secs(60),
            },
            Arc::new(Notify::new()),
        );
        World {
            alerts,
            clock,
            tenant: t.id,
            sub: sub.id,
            w,
        }
    }

    impl World {
        /// A final outcome for a scheduled check at local time `slot`, applied.
        fn outcome(&self, slot: &str, o: Outcome) {
            let input = AlertInput {
                check_id: CheckId::scheduled(self.sub, jst(slot) / 1000),
                tenant_id: self.tenant,
                subscriber_id: self.sub,
                outcome: o,
                at_ms: self.clock.now_ms(),
            };
            self.alerts.apply_input(&input).unwrap();
        }
        /// Claim a notification and record `d` as its delivery.
        fn deliver(&self, id: u64, d: Delivery) {
            let n = self
                .alerts
                .claim(id, Duration::from_secs(60))
                .unwrap()
                .expect("due");
            self.alerts.apply_delivery(n.id, &d).unwrap();
        }
        fn case(&self) -> Option<AlertCase> {
            self.alerts.store.open_case_of(self.sub).unwrap()
        }
        fn pending(&self, case: u64) -> Vec<Notification> {
            self.alerts
                .store
                .notifications_of(case)
                .unwrap()
                .into_iter()
                .filter(|n| n.state == NotifyState::Pending)
                .collect()
        }
    }

    /// A person paused or removed: a not_attempted outcome never opens a
    /// case, and their open case closes with the reason, its pending
    /// notifications cancelled and no all-clear to anyone.
    #[test]
    fn paused_or_removed_people_close_their_case_and_nobody_is_told() {
        let w = world("2026-11-24T10:00");
        w.outcome("2026-11-24T09:30", Outcome::NotAttempted);
        assert!(w.alerts.store.open_case_of(w.sub).unwrap().is_none());
        w.outcome("2026-11-24T09:30", Outcome::Missed);
        let case = w.alerts.store.open_case_of(w.sub).unwrap().expect("a case");
        let closed = w
            .alerts
            .close_for_lifecycle(w.sub, "the person is paused")
            .unwrap()
            .expect("closed");
        assert_eq!(closed.id, case.id);
        assert_eq!(closed.state, CaseState::Resolved);
        assert_eq!(closed.note.as_deref(), Some("the person is paused"));
        assert!(w.alerts.store.open_case_of(w.sub).unwrap().is_none());
        let ns = w.alerts.store.notifications_of(case.id).unwrap();
        assert!(!ns.is_empty());
        assert!(ns.iter().all(|n| n.state != NotifyState::Pending), "{ns:?}");
        assert!(ns.iter().all(|n| n.kind != NotifyKind::AllClear));
        assert!(w
            .alerts
            .store
            .due_notifications(u64::MAX, 10)
            .unwrap()
            .is_empty());
    }

    /// An outcome that arrives for a person deleted meanwhile (a call that
    /// was already under way) never opens a case.
    #[test]
    fn a_deleted_subscriber_never_opens_a_case() {
        let w = world("2026-11-24T10:00");
        let sub = w.alerts.store.subscriber(w.sub).unwrap().unwrap();
        w.alerts.store.delete_subscriber(&sub).unwrap();
        w.outcome("2026-11-24T09:30", Outcome::Missed);
        assert!(w.alerts.store.open_case_of(w.sub).unwrap().is_none());
        assert!(w
            .alerts
            .store
            .due_notifications(u64::MAX, 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn missed_two_days_in_a_row_is_urgent_and_skips_quiet_hours() {
        let w = world("2026-11-24T22:00");
        w.outcome("2026-11-24T09:30", Outcome::Missed);
        let c = w.case().expect("a missed check opens a case");
        assert_eq!(
            (c.state, c.severity, c.tier),
            (CaseState::Open, Severity::Normal, 0)
        );
        let ns = w.pending(c.id);
        // w0 by phone and webhook now; w1 (quiet 21:00–07:00) waits for 07:00.
        assert_eq!(ns.len(), 3);
        let w1 = ns.iter().find(|n| n.watcher_id == w.w[1]).unwrap();
        assert_eq!(w1.next_at_ms, jst("2026-11-25T07:00"));
        assert!(ns
            .iter()
            .filter(|n| n.watcher_id == w.w[0])
            .all(|n| n.next_at_ms == jst("2026-11-24T22:00")));
        // The deadline runs from the first reachable watcher.
        assert_eq!(c.tier_deadline_ms, Some(jst("2026-11-24T22:10")));
        // Not two days yet: a second miss the same day stays normal.
        w.outcome("2026-11-24T18:00", Outcome::Missed);
        assert_eq!(w.case().unwrap().severity, Severity::Normal);
        // The next day's miss makes it urgent; the current tier is told
        // again, quiet hours or not.
        w.clock.set(jst("2026-11-25T23:00"));
        w.outcome("2026-11-25T09:30", Outcome::Missed);
        let c = w.case().unwrap();
        assert_eq!(c.severity, Severity::Urgent);
        assert_eq!(c.outcomes.len(), 3);
        let urgent: Vec<_> = w
            .pending(c.id)
            .into_iter()
            .filter(|n| n.kind == NotifyKind::Urgent)
            .collect();
        assert_eq!(urgent.len(), 3);
        assert!(
            urgent
                .iter()
                .all(|n| n.next_at_ms == jst("2026-11-25T23:00")),
            "urgent skips quiet hours"
        );
        assert!(c.timeline.iter().any(|e| e.kind == EventKind::Severity));
    }

    #[test]
    fn missed_days_with_a_gap_are_not_in_a_row() {
        let w = world("2026-11-24T12:00");
        w.outcome("2026-11-24T09:30", Outcome::Missed);
        w.outcome("2026-11-26T09:30", Outcome::Missed);
        assert_eq!(w.case().unwrap().severity, Severity::Normal);
        w.outcome("2026-11-27T09:30", Outcome::Missed);
        assert_eq!(w.case().unwrap().severity, Severity::Urgent);
    }

    #[test]
    fn no_response_is_urgent_at_once_and_fine_outcomes_open_nothing() {
        let w = world("2026-11-24T23:30");
        w.outcome("2026-11-24T09:30", Outcome::Fine);
        assert!(w.case().is_none());
        w.outcome("2026-11-24T10:30", Outcome::NoResponse);
        let c = w.case().unwrap();
        assert_eq!(c.severity, Severity::Urgent);
        assert!(w
            .pending(c.id)
            .iter()
            .all(|n| n.kind == NotifyKind::Urgent && n.next_at_ms == jst("2026-11-24T23:30")));
        // The inbox is consumed with the step.
        assert!(w.alerts.store.alert_inbox(10).unwrap().is_empty());
    }

    #[test]
    fn the_ladder_climbs_at_the_deadline_and_stops_when_taken() {
        let w = world("2026-11-24T12:00");
        w.outcome("2026-11-24T09:30", Outcome::Missed);
        let c = w.case().unwrap();
        // Before the deadline nothing moves.
        w.clock.set(jst("2026-11-24T12:09"));
        assert_eq!(w.alerts.step().unwrap(), 0);
        w.clock.set(jst("2026-11-24T12:10"));
        assert_eq!(w.alerts.step().unwrap(), 1);
        let c2 = w.alerts.store.alert_case(c.id).unwrap().unwrap();
        assert_eq!(c2.tier, 1);
        assert_eq!(c2.tier_deadline_ms, Some(jst("2026-11-24T12:40")));
        let tier2: Vec<_> = w
            .pending(c.id)
            .into_iter()
            .filter(|n| n.tier == 1)
            .collect();
        assert_eq!(tier2.len(), 1);
        assert_eq!(tier2[0].watcher_id, w.w[2]);
        // w2 presses 1 on the phone: acknowledged, others cancelled, no more climbing.
        w.deliver(
            tier2[0].id,
            Delivery::Delivered {
                response: Some(WatcherAnswer::Ack),
            },
        );
        let c3 = w.alerts.store.alert_case(c.id).unwrap().unwrap();
        assert_eq!(c3.state, CaseState::Acknowledged);
        assert_eq!(c3.acked_by.as_deref(), Some("w2 (phone)"));
        assert!(w.pending(c.id).is_empty(), "the rest are cancelled");
        w.clock.set(jst("2026-11-24T13:30"));
        assert_eq!(w.alerts.step().unwrap(), 0, "no timer after ack");
        // Resolve by API: the all-clear goes to those told (w2 by phone).
        assert!(matches!(
            w.alerts.ack(c.id, "x", None),
            Err(CaseError::Conflict(_))
        ));
        let closed = w.alerts.resolve(c.id, "w2", Some("visited; fine")).unwrap();
        assert_eq!(closed.state, CaseState::Resolved);
        let clear: Vec<_> = w.pending(c.id);
        assert_eq!(clear.len(), 1);
        assert_eq!(
            (clear[0].kind, clear[0].watcher_id, clear[0].channel),
            (NotifyKind::AllClear, w.w[2], Channel::Phone)
        );
        assert!(w.case().is_none());
    }

    #[test]
    fn a_fine_answer_closes_the_case_and_everyone_told_hears_all_clear() {
        let w = world("2026-11-24T12:00");
        w.outcome("2026-11-24T09:30", Outcome::NeedsContact);
        let c = w.case().unwrap();
        let ns = w.pending(c.id);
        // The webhook is delivered, the phone call is not answered (retried).
        for n in &ns {
            let d = match n.channel {
                Channel::Webhook => Delivery::Delivered { response: None },
                _ => Delivery::Failed {
                    error: "busy".into(),
                    retry: true,
                },
            };
            w.deliver(n.id, d);
        }
        let c = w.alerts.store.alert_case(c.id).unwrap().unwrap();
        assert_eq!(
            c.told,
            vec![Told {
                watcher_id: w.w[0],
                channel: Channel::Webhook
            }]
        );
        let retry = w.pending(c.id);
        assert_eq!(retry.len(), 2);
        assert!(retry
            .iter()
            .all(|n| n.next_at_ms == jst("2026-11-24T12:01") && n.tries == 1));
        w.clock.set(jst("2026-11-25T09:31"));
        w.outcome("2026-11-25T09:30", Outcome::Fine);
        assert!(w.case().is_none());
        let c = w.alerts.store.alert_case(c.id).unwrap().unwrap();
        assert_eq!(
            (c.state, c.resolved_by.as_deref()),
            (CaseState::Resolved, Some("subscriber"))
        );
        let all: Vec<_> = w.alerts.store.notifications_of(c.id).unwrap();
        let pending: Vec<_> = all
            .iter()
            .filter(|n| n.state == NotifyState::Pending)
            .collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].kind, pending[0].channel),
            (NotifyKind::AllClear, Channel::Webhook)
        );
        assert_eq!(
            all.iter()
                .filter(|n| n.state == NotifyState::Cancelled)
                .count(),
            2
        );
        // A new bad outcome later opens a new case.
        w.outcome("2026-11-26T09:30", Outcome::Missed);
        assert_ne!(w.case().unwrap().id, c.id);
    }

    #[test]
    fn failed_deliveries_back_off_then_give_up_visibly() {
        let w = world("2026-11-24T12:00");
        w.outcome("2026-11-24T09:30", Outcome::Missed);
        let c = w.case().unwrap();
        let id = w
            .pending(c.id)
            .iter()
            .find(|n| n.channel == Channel::Webhook)
            .unwrap()
            .id;
        let mut waits = vec![];
        for _ in 0..3 {
            let now = w.clock.now_ms();
            w.deliver(
                id,
                Delivery::Failed {
                    error: "connection refused".into(),
                    retry: true,
                },
            );
            let n = w.alerts.store.notification(id).unwrap().unwrap();
            waits.push((n.state, n.next_at_ms.saturating_sub(now) / 1000));
            w.clock.set(n.next_at_ms);
        }
        assert_eq!(
            waits,
            vec![
                (NotifyState::Pending, 60),
                (NotifyState::Pending, 120),
                (NotifyState::GivenUp, 0)
            ]
        );
        let c = w.alerts.store.alert_case(c.id).unwrap().unwrap();
        assert_eq!(
            c.timeline
                .iter()
                .filter(|e| e.kind == EventKind::Failed)
                .count(),
            2
        );
        assert_eq!(
            c.timeline
                .iter()
                .filter(|e| e.kind == EventKind::GivenUp)
                .count(),
            1
        );
        // A refusal that retrying cannot fix is given up at once.
        let other = w.pending(c.id)[0].id;
        w.deliver(
            other,
            Delivery::Failed {
                error: "HTTP 400".into(),
                retry: false,
            },
        );
        assert_eq!(
            w.alerts.store.notification(other).unwrap().unwrap().state,
            NotifyState::GivenUp
        );
    }

    #[test]
    fn everyone_in_a_tier_passing_climbs_at_once_and_safe_by_phone_closes() {
        let w = world("2026-11-24T12:00");
        w.clock.set(jst("2026-11-25T08:00"));
        w.outcome("2026-11-25T07:30", Outcome::Missed);
        let c = w.case().unwrap();
        for wid in [w.w[0], w.w[1]] {
            let n = w
                .pending(c.id)
                .into_iter()
                .find(|n| n.watcher_id == wid && n.channel == Channel::Phone)
                .unwrap();
            w.deliver(
                n.id,
                Delivery::Delivered {
                    response: Some(WatcherAnswer::Pass),
                },
            );
        }
        let c = w.alerts.store.alert_case(c.id).unwrap().unwrap();
        assert_eq!(
            c.tier, 1,
            "both of tier 1 passed: tier 2 is told before the deadline"
        );
        let n = w
            .pending(c.id)
            .into_iter()
            .find(|n| n.watcher_id == w.w[2])
            .unwrap();
        w.deliver(
            n.id,
            Delivery::Delivered {
                response: Some(WatcherAnswer::Resolve),
            },
        );
        let c = w.alerts.store.alert_case(c.id).unwrap().unwrap();
        assert_eq!(c.state, CaseState::Resolved);
        // All-clear to w0 and w1 (told by phone), not to w2 who closed it.
        let mut clear: Vec<u64> = w
            .pending(c.id)
            .iter()
            .filter(|n| n.kind == NotifyKind::AllClear)
            .map(|n| n.watcher_id)
            .collect();
        clear.sort();
        assert_eq!(clear, vec![w.w[0], w.w[1]]);
    }

    /// The alert worker on tokio's paused clock, with no socket and no
    /// disk: a missed check opens a case on tier 0 (a 10-minute deadline);
    /// its watcher's calls are not answered; the case moves to tier 1 at
    /// exactly its deadline, and not a millisecond before.
    #[tokio::test(start_paused = true)]
    async fn a_tier_deadline_escalates_at_exactly_its_instant() {
        use crate::alerts::notify::Notifier;
        use crate::telephony::call::testing::FakePlacer;
        use crate::telephony::context::CallContext;
        use genki_store::{Check, Next};
        let clock = Arc::new(crate::clock::ShiftedClock::starting_at(jst(
            "2026-11-24T10:00",
        )));
        let store: Arc<dyn Storage> = Arc::new(Store::in_memory());
        let t = store.create_tenant(Tenant::with_defaults("t", 0)).unwrap();
        let sub = store
            .create_subscriber(Subscriber {
                id: 0,
                tenant_id: t.id,
                name: "山田".into(),
                phone: "1001".into(),
                schedule: None,
                paused_until: None,
                notes: String::new(),
                created_at_ms: 0,
            })
            .unwrap();
        let watcher = |name: &str| {
            store
                .put_watcher(Watcher {
                    id: 0,
                    tenant_id: t.id,
                    name: name.into(),
                    phone: Some(format!("sip:{name}@127.0.0.1")),
                    email: None,
                    webhook_url: None,
                    webhook_secret: None,
                    quiet_start: None,
                    quiet_end: None,
                    created_at_ms: 0,
                })
                .unwrap()
                .id
        };
        let (w0, w1) = (watcher("first"), watcher("second"));
        store
            .put_ladder(
                LadderOf::Tenant(t.id),
                &Ladder {
                    tiers: vec![
                        Tier {
                            watchers: vec![w0],
                            deadline_s: 600,
                        },
                        Tier {
                            watchers: vec![w1],
                            deadline_s: 600,
                        },
                    ],
                },
            )
            .unwrap();
        let placer = Arc::new(FakePlacer::new(None, Duration::from_secs(20)));
        let calls = Arc::new(CallContext::new(
            placer.clone(),
            "127.0.0.1".into(),
            store.clone(),
            Arc::new(std::collections::HashMap::new()),
        ));
        let alerts = Arc::new(Alerts::new(
            store.clone(),
            Arc::new(Metrics::default()),
            clock.clone(),
            RetryRule {
                max_tries: 2,
                backoff: Duration::from_secs(60),
            },
            Arc::new(Notify::new()),
        ));
        let notifier = Arc::new(Notifier {
            calls,
            clock: clock.clone(),
            http: reqwest::Client::new(),
            webhook_guard: Default::default(),
            webhook_timeout: Duration::from_secs(10),
            smtp: None,
            secrets: Arc::new(crate::secrets::SecretBox::ephemeral()),
        });
        // The check ends missed: its alert input is stored with it.
        let now = clock.now_ms();
        let id = CheckId::one_off(sub.id, now);
        store
            .create_check(&Check::pending(id, t.id, now, now))
            .unwrap();
        store
            .settle_pending(
                &id,
                Next::Final {
                    outcome: Outcome::Missed,
                    cause: None,
                },
                now,
            )
            .unwrap();
        let (stop, rx) = watch::channel(false);
        let worker = tokio::spawn(run(
            alerts.clone(),
            notifier,
            Parallel {
                messages: 4,
                calls: 4,
            },
            Lead {
                owner: "test".into(),
                lease: Duration::from_secs(60),
            },
            rx,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let case = store.open_case_of(sub.id).unwrap().expect("a case opened");
        assert_eq!(case.tier, 0);
        let deadline = case.tier_deadline_ms.expect("tier 0 has a deadline");
        assert_eq!(deadline, now + 600_000);
        // Just before the deadline: still tier 0 (the watcher was called).
        tokio::time::sleep(Duration::from_millis(deadline - clock.now_ms() - 1)).await;
        assert_eq!(store.alert_case(case.id).unwrap().unwrap().tier, 0);
        assert!(placer
            .placed()
            .iter()
            .all(|(to, _)| to == "sip:first@127.0.0.1"));
        tokio::time::sleep(Duration::from_millis(2)).await;
        let c = store.alert_case(case.id).unwrap().unwrap();
        assert_eq!(c.tier, 1, "escalated at the deadline");
        let step = c
            .timeline
            .iter()
            .find(|e| e.kind == EventKind::Tier)
            .expect("a tier event");
        assert_eq!(step.at_ms, deadline, "at exactly its instant");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            placer
                .placed()
                .iter()
                .any(|(to, _)| to == "sip:second@127.0.0.1"),
            "tier 1's watcher is called"
        );
        stop.send(true).unwrap();
        worker.await.unwrap();
    }
}
