//! Alert records (watchers, ladders, cases, the notification outbox) and
//! their storage.
//!
//! Durability is the point of this module: a final outcome puts an
//! [`AlertInput`] into the alert inbox in the same synced batch as the
//! outcome itself ([`crate::Store::finish_attempt`]); the alert engine
//! applies it with [`Store::alert_commit`], which writes the case, its
//! tier timer, the notifications it queues (the outbox) and the removal of
//! the inbox entry in one synced batch. A crash at any point therefore
//! leaves either the input still in the inbox or its whole effect stored:
//! no case is lost and none is opened twice, no notification is lost.
//! Delivery is at-least-once: a notification being delivered when the
//! process dies is sent again after restart with the same id, which is the
//! webhook's idempotency key.
//!
//! Depends on: [`crate::store`], serde. Knows nothing of
//! SIP, HTTP or SMTP: channels are names here.

use crate::kv::Batch;
use serde::{Deserialize, Serialize};

use crate::records::{encode, CheckId, Outcome};
use crate::store::{be, cat, cf, Store};
use crate::vocab::{EventKind, WatcherAnswer};
use crate::StoreError;

/// Someone who watches over subscribers: a volunteer, a relative, a
/// welfare commissioner, an office. Each contact field is a channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Watcher {
    pub id: u64,
    pub tenant_id: u64,
    pub name: String,
    /// Called with the engine's own SIP/RTP (a SIP URI or a number).
    pub phone: Option<String>,
    pub email: Option<String>,
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key for webhook signatures; never returned by the API.
    pub webhook_secret: Option<String>,
    /// Local "HH:MM" times between which only urgent cases reach this
    /// watcher (may wrap midnight, e.g. 21:00–07:00). None: no quiet hours.
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
    pub created_at_ms: u64,
}

/// One rung of a ladder: watchers told together, and how long they have
/// to take the case before the next tier is told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tier {
    pub watchers: Vec<u64>,
    pub deadline_s: u64,
}

/// The ordered tiers told about a subscriber's case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ladder {
    pub tiers: Vec<Tier>,
}

/// Whose ladder: a tenant's default, or one subscriber's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LadderOf {
    Tenant(u64),
    Subscriber(u64),
}

impl LadderOf {
    pub(crate) fn key(self) -> [u8; 9] {
        let (tag, id) = match self {
            LadderOf::Tenant(t) => (b't', t),
            LadderOf::Subscriber(s) => (b's', s),
        };
        let mut k = [0u8; 9];
        k[0] = tag;
        k[1..].copy_from_slice(&id.to_be_bytes());
        k
    }
}

/// A final outcome waiting for the alert engine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertInput {
    pub check_id: CheckId,
    pub tenant_id: u64,
    pub subscriber_id: u64,
    pub outcome: Outcome,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Normal,
    /// Skips quiet hours (by the tenant's rules).
    Urgent,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CaseState {
    /// Nobody has taken it: the ladder climbs at each tier's deadline.
    Open,
    /// A watcher took it; waiting for them to resolve it.
    Acknowledged,
    /// Closed: by a watcher, or by the subscriber answering fine.
    Resolved,
}

impl CaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Acknowledged => "acknowledged",
            CaseState::Resolved => "resolved",
        }
    }
}

/// A bad outcome that belongs to a case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseOutcome {
    pub check_id: CheckId,
    pub outcome: Outcome,
    pub at_ms: u64,
    /// The tenant's local date of the check's slot (YYYY-MM-DD), for day rules.
    pub local_date: String,
}

/// One step of a case's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseEvent {
    pub at_ms: u64,
    pub kind: EventKind,
    pub detail: serde_json::Value,
}

/// A channel a watcher is reached on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Channel {
    Phone,
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
    pub const ALL: [Channel; 3] = [Channel::Phone, Channel::Email, Channel::Webhook];
}

/// A watcher who was told about the case on a channel (gets the all-clear there).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Told {
    pub watcher_id: u64,
    pub channel: Channel,
}

/// An alert case: one per subscriber while open.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertCase {
    pub id: u64,
    pub tenant_id: u64,
    pub subscriber_id: u64,
    pub state: CaseState,
    pub severity: Severity,
    pub opened_at_ms: u64,
    pub outcomes: Vec<CaseOutcome>,
    /// Index of the tier told last.
    pub tier: u32,
    /// When the current tier's time runs out (Open cases only).
    pub tier_deadline_ms: Option<u64>,
    /// Every tier was told and nobody took the case.
    pub exhausted: bool,
    /// Watchers of the current tier who passed it on.
    pub passed: Vec<u64>,
    pub told: Vec<Told>,
    pub acked_by: Option<String>,
    pub acked_at_ms: Option<u64>,
    pub resolved_by: Option<String>,
    pub resolved_at_ms: Option<u64>,
    pub note: Option<String>,
    pub timeline: Vec<CaseEvent>,
}

impl AlertCase {
    /// A new open case (id assigned on commit), at tier 0 with nothing told yet.
    pub fn open(tenant_id: u64, subscriber_id: u64, now_ms: u64) -> AlertCase {
        AlertCase {
            id: 0,
            tenant_id,
            subscriber_id,
            state: CaseState::Open,
            severity: Severity::Normal,
            opened_at_ms: now_ms,
            outcomes: vec![],
            tier: 0,
            tier_deadline_ms: None,
            exhausted: false,
            passed: vec![],
            told: vec![],
            acked_by: None,
            acked_at_ms: None,
            resolved_by: None,
            resolved_at_ms: None,
            note: None,
            timeline: vec![],
        }
    }

    pub fn event(&mut self, at_ms: u64, kind: EventKind, detail: serde_json::Value) {
        self.timeline.push(CaseEvent {
            at_ms,
            kind,
            detail,
        });
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NotifyKind {
    Alert,
    /// The case became urgent.
    Urgent,
    AllClear,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Alert => "alert",
            NotifyKind::Urgent => "urgent",
            NotifyKind::AllClear => "all_clear",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NotifyState {
    /// In the outbox, due at `next_at_ms` (retried with backoff).
    Pending,
    Delivered,
    /// Retried `tries` times and abandoned; visible in the case.
    GivenUp,
    /// No longer needed (the case was taken or closed first).
    Cancelled,
}

/// One message to one watcher on one channel: an outbox entry. Its id is
/// the event id (the webhook's idempotency key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    pub id: u64,
    pub case_id: u64,
    pub tenant_id: u64,
    pub watcher_id: u64,
    pub channel: Channel,
    pub kind: NotifyKind,
    pub tier: u32,
    pub state: NotifyState,
    pub tries: u32,
    pub next_at_ms: u64,
    /// Set while a delivery is under way (a lease; reset at start-up).
    pub sending_until_ms: Option<u64>,
    pub last_error: Option<String>,
    /// What a watcher answered on the phone: ack, pass, resolve, none.
    pub response: Option<WatcherAnswer>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Notification {
    /// The event id sent to receivers.
    pub fn event_id(&self) -> String {
        format!("ntf-{}", self.id)
    }
}

/// Everything one step of the alert engine changes, committed in one
/// synced batch by [`Store::alert_commit`]. A case or notification with
/// id 0 is new and gets its id here; new notifications with case_id 0
/// belong to the case of this write.
#[derive(Debug, Default)]
pub struct AlertWrite {
    pub case: Option<AlertCase>,
    pub notifications: Vec<Notification>,
    /// The inbox entry this step consumed.
    pub inbox_done: Option<CheckId>,
}

impl Store {
    /// Reserve `n` ids of a sequence, the counter update going into `b`.
    pub(crate) fn reserve_ids(&self, b: &mut Batch, seq: &str, n: u64) -> Result<u64, StoreError> {
        let meta = cf::META;
        let cur = match self.raw(meta, seq.as_bytes())? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            _ => 0,
        };
        b.put(meta, seq.as_bytes(), be(cur + n));
        Ok(cur + 1)
    }

    fn u64_at(name: &'static str, k: &[u8], at: usize) -> Result<u64, StoreError> {
        k.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or(StoreError::Corrupt {
                cf: name,
                reason: "short index key".into(),
            })
    }

    // ---- watchers and ladders ----

    /// Create or replace a watcher (id 0: create and assign an id).
    pub fn put_watcher(&self, mut w: Watcher) -> Result<Watcher, StoreError> {
        let _g = self.guard();
        let mut b = Batch::default();
        if w.id == 0 {
            w.id = self.reserve_ids(&mut b, "watcher", 1)?;
        }
        b.put(cf::WATCHERS, be(w.id), encode(&w));
        b.put(cf::TENANT_WATCHERS, cat(&[&be(w.tenant_id), &be(w.id)]), []);
        self.write(b)?;
        Ok(w)
    }

    pub fn watcher(&self, id: u64) -> Result<Option<Watcher>, StoreError> {
        self.get(cf::WATCHERS, &be(id))
    }

    pub fn watchers_of(&self, tenant_id: u64) -> Result<Vec<Watcher>, StoreError> {
        let mut out = Vec::new();
        for (k, _) in self.scan(
            cf::TENANT_WATCHERS,
            &be(tenant_id),
            &be(tenant_id),
            usize::MAX,
        )? {
            if let Some(w) = self.watcher(Self::u64_at(cf::TENANT_WATCHERS, &k, 8)?)? {
                out.push(w);
            }
        }
        Ok(out)
    }

    pub fn delete_watcher(&self, w: &Watcher) -> Result<(), StoreError> {
        let mut b = Batch::default();
        b.delete(cf::WATCHERS, be(w.id));
        b.delete(cf::TENANT_WATCHERS, cat(&[&be(w.tenant_id), &be(w.id)]));
        self.write(b)
    }

    pub fn put_ladder(&self, of: LadderOf, l: &Ladder) -> Result<(), StoreError> {
        self.put(cf::LADDERS, of.key(), encode(l))
    }

    pub fn ladder(&self, of: LadderOf) -> Result<Option<Ladder>, StoreError> {
        self.get(cf::LADDERS, &of.key())
    }

    pub fn delete_ladder(&self, of: LadderOf) -> Result<(), StoreError> {
        self.delete(cf::LADDERS, of.key())
    }

    // ---- the engine's inputs ----

    /// Outcomes not yet applied by the alert engine, in check order.
    pub fn alert_inbox(&self, limit: usize) -> Result<Vec<AlertInput>, StoreError> {
        self.decode_all(
            cf::ALERT_INBOX,
            self.scan(cf::ALERT_INBOX, &[], &[], limit)?,
        )
    }

    /// Cases whose tier deadline is at or before `now_ms`.
    pub fn due_case_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for (k, _) in self.scan(cf::ALERT_TIMERS, &[], &[], limit)? {
            if Self::u64_at(cf::ALERT_TIMERS, &k, 0)? > now_ms {
                break;
            }
            out.push(Self::u64_at(cf::ALERT_TIMERS, &k, 8)?);
        }
        Ok(out)
    }

    /// Pending notifications due at or before `now_ms`.
    pub fn due_notifications(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut out = Vec::new();
        for (k, _) in self.scan(cf::OUTBOX_DUE, &[], &[], limit)? {
            if Self::u64_at(cf::OUTBOX_DUE, &k, 0)? > now_ms {
                break;
            }
            if let Some(n) = self.notification(Self::u64_at(cf::OUTBOX_DUE, &k, 8)?)? {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// The earliest time the alert engine has work: now for an inbox
    /// entry, else the first tier deadline or pending notification.
    pub fn next_alert_work_ms(&self) -> Result<Option<u64>, StoreError> {
        if !self.scan(cf::ALERT_INBOX, &[], &[], 1)?.is_empty() {
            return Ok(Some(0));
        }
        let mut at: Option<u64> = None;
        for name in [cf::ALERT_TIMERS, cf::OUTBOX_DUE] {
            if let Some((k, _)) = self.scan(name, &[], &[], 1)?.first() {
                let t = Self::u64_at(name, k, 0)?;
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        }
        Ok(at)
    }

    /// Pending notifications that carry a sending lease (deliveries cut
    /// short by a stop): made due at `now_ms` again. Call once at start-up.
    pub fn recover_notifications(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut stale = Vec::new();
        for (k, _) in self.scan(cf::OUTBOX_DUE, &[], &[], usize::MAX)? {
            if let Some(mut n) = self.notification(Self::u64_at(cf::OUTBOX_DUE, &k, 8)?)? {
                if n.sending_until_ms.is_some() {
                    n.sending_until_ms = None;
                    n.next_at_ms = now_ms;
                    stale.push(n);
                }
            }
        }
        let count = stale.len();
        if count > 0 {
            self.alert_commit(AlertWrite {
                notifications: stale,
                ..Default::default()
            })?;
        }
        Ok(count)
    }

    // ---- cases and notifications ----

    /// How many subscribers have an open (unresolved) case.
    pub fn open_case_count(&self) -> Result<u64, StoreError> {
        Ok(self.scan(cf::OPEN_ALERTS, &[], &[], usize::MAX)?.len() as u64)
    }

    pub fn alert_case(&self, id: u64) -> Result<Option<AlertCase>, StoreError> {
        self.get(cf::ALERTS, &be(id))
    }

    /// The subscriber's open (or acknowledged, not yet resolved) case.
    pub fn open_case_of(&self, subscriber_id: u64) -> Result<Option<AlertCase>, StoreError> {
        match self.raw(cf::OPEN_ALERTS, be(subscriber_id))? {
            Some(v) if v.len() == 8 => {
                self.alert_case(u64::from_be_bytes(v[..8].try_into().expect("8 bytes")))
            }
            _ => Ok(None),
        }
    }

    /// A tenant's cases with ids greater than `after`, oldest first.
    pub fn cases_of(
        &self,
        tenant_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AlertCase>, StoreError> {
        let start = cat(&[&be(tenant_id), &be(after.saturating_add(1))]);
        let mut out = Vec::new();
        for (k, _) in self.scan(cf::TENANT_ALERTS, &start, &be(tenant_id), limit)? {
            if let Some(c) = self.alert_case(Self::u64_at(cf::TENANT_ALERTS, &k, 8)?)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    pub fn notification(&self, id: u64) -> Result<Option<Notification>, StoreError> {
        self.get(cf::OUTBOX, &be(id))
    }

    pub fn notifications_of(&self, case_id: u64) -> Result<Vec<Notification>, StoreError> {
        let mut out = Vec::new();
        for (k, _) in self.scan(
            cf::CASE_NOTIFICATIONS,
            &be(case_id),
            &be(case_id),
            usize::MAX,
        )? {
            if let Some(n) = self.notification(Self::u64_at(cf::CASE_NOTIFICATIONS, &k, 8)?)? {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Commit one step of the alert engine in one synced batch; returns the
    /// case and notifications as stored (with their ids).
    pub fn alert_commit(
        &self,
        mut w: AlertWrite,
    ) -> Result<(Option<AlertCase>, Vec<Notification>), StoreError> {
        let _g = self.guard();
        let mut b = Batch::default();
        // A case that is gone (its person erased meanwhile, e.g. while a
        // delivery was in flight) is not brought back, nor its
        // notifications: only the inbox entry is consumed.
        if let Some(c) = w.case.as_ref() {
            // Also a new case about a person erased meanwhile (from an
            // outcome the engine read before the erasure).
            if self.was_erased(c.subscriber_id)
                || (c.id != 0 && self.get::<AlertCase>(cf::ALERTS, &be(c.id))?.is_none())
            {
                if let Some(id) = w.inbox_done {
                    b.delete(cf::ALERT_INBOX, id.key());
                    self.write(b)?;
                }
                return Ok((None, Vec::new()));
            }
        }
        if let Some(c) = w.case.as_mut() {
            if c.id == 0 {
                c.id = self.reserve_ids(&mut b, "alert", 1)?;
            }
            let key = be(c.id);
            // Replace the tier timer and the open-case pointer.
            let old: Option<AlertCase> = self.get(cf::ALERTS, &key)?;
            if let Some(at) = old.as_ref().and_then(|o| o.tier_deadline_ms) {
                b.delete(cf::ALERT_TIMERS, cat(&[&be(at), &key]));
            }
            if let (CaseState::Open, Some(at)) = (c.state, c.tier_deadline_ms) {
                b.put(cf::ALERT_TIMERS, cat(&[&be(at), &key]), []);
            }
            if c.state == CaseState::Resolved {
                // Only this case's pointer: a newer case may own it already.
                if self.open_case_of(c.subscriber_id)?.map(|o| o.id) == Some(c.id) {
                    b.delete(cf::OPEN_ALERTS, be(c.subscriber_id));
                }
            } else {
                b.put(cf::OPEN_ALERTS, be(c.subscriber_id), key);
            }
            b.put(cf::ALERTS, key, encode(c));
            b.put(cf::TENANT_ALERTS, cat(&[&be(c.tenant_id), &key]), []);
        }
        let new = w.notifications.iter().filter(|n| n.id == 0).count() as u64;
        let mut next_id = if new > 0 {
            self.reserve_ids(&mut b, "notification", new)?
        } else {
            0
        };
        let case_id = w.case.as_ref().map(|c| c.id).unwrap_or(0);
        let mut gone = Vec::new();
        for n in w.notifications.iter_mut() {
            if n.id != 0 && self.notification(n.id)?.is_none() {
                // Erased with its case: not brought back.
                gone.push(n.id);
                continue;
            }
            if n.id == 0 {
                n.id = next_id;
                next_id += 1;
            } else if let Some(old) = self.notification(n.id)? {
                if old.state == NotifyState::Pending {
                    b.delete(cf::OUTBOX_DUE, cat(&[&be(old.next_at_ms), &be(n.id)]));
                }
            }
            if n.case_id == 0 {
                n.case_id = case_id;
            }
            if n.state == NotifyState::Pending {
                b.put(cf::OUTBOX_DUE, cat(&[&be(n.next_at_ms), &be(n.id)]), []);
            }
            b.put(cf::OUTBOX, be(n.id), encode(n));
            b.put(
                cf::CASE_NOTIFICATIONS,
                cat(&[&be(n.case_id), &be(n.id)]),
                [],
            );
        }
        if let Some(id) = w.inbox_done {
            b.delete(cf::ALERT_INBOX, id.key());
        }
        if w.case.is_none() && w.notifications.is_empty() {
            // Only an input consumed with nothing to do (a fine answer, no
            // case open): lost in a power cut, it is applied again with
            // nothing to do. Lazily synced: one fsync per outcome less.
            self.write_lazy(b)?;
        } else {
            self.write(b)?;
        }
        w.notifications.retain(|n| !gone.contains(&n.id));
        Ok((w.case, w.notifications))
    }

    /// Put the removal of a tenant's cases that `pick` chooses — each with
    /// its tier timer, tenant index entry and notifications (outbox, due
    /// index, case index) — into `b`. Returns their ids and how many
    /// notifications go.
    fn forget_cases(
        &self,
        tenant_id: u64,
        b: &mut Batch,
        pick: impl Fn(&AlertCase) -> bool,
    ) -> Result<(Vec<u64>, u64), StoreError> {
        let mut cases = Vec::new();
        let mut notes = 0;
        let t = be(tenant_id);
        for (k, _) in self.scan(cf::TENANT_ALERTS, &t, &t, usize::MAX)? {
            let id = Self::u64_at(cf::TENANT_ALERTS, &k, 8)?;
            let key = be(id);
            let Some(c) = self.get::<AlertCase>(cf::ALERTS, &key)? else {
                continue;
            };
            if !pick(&c) {
                continue;
            }
            if let Some(at) = c.tier_deadline_ms {
                b.delete(cf::ALERT_TIMERS, cat(&[&be(at), &key]));
            }
            b.delete(cf::ALERTS, key);
            b.delete(cf::TENANT_ALERTS, k);
            for (nk, _) in self.scan(cf::CASE_NOTIFICATIONS, &key, &key, usize::MAX)? {
                let nid = Self::u64_at(cf::CASE_NOTIFICATIONS, &nk, 8)?;
                if let Some(n) = self.notification(nid)? {
                    b.delete(cf::OUTBOX_DUE, cat(&[&be(n.next_at_ms), &be(nid)]));
                }
                b.delete(cf::OUTBOX, be(nid));
                b.delete(cf::CASE_NOTIFICATIONS, nk);
                notes += 1;
            }
            cases.push(id);
        }
        Ok((cases, notes))
    }

    /// Put the removal of a tenant's cases resolved before `before_ms`, and
    /// of their notifications, into `b` (retention). Returns how many of each.
    pub(crate) fn prune_cases(
        &self,
        tenant_id: u64,
        before_ms: u64,
        b: &mut Batch,
    ) -> Result<(u64, u64), StoreError> {
        let (cases, notes) = self.forget_cases(tenant_id, b, |c| {
            c.state == CaseState::Resolved && c.resolved_at_ms.is_some_and(|r| r < before_ms)
        })?;
        Ok((cases.len() as u64, notes))
    }

    /// Put the removal of every alert case of `subscriber_id` (in
    /// `tenant_id`) and of their notifications into `b` (an erasure).
    /// Returns the case ids and how many notifications go.
    pub(crate) fn erase_cases_of(
        &self,
        tenant_id: u64,
        subscriber_id: u64,
        b: &mut Batch,
    ) -> Result<(Vec<u64>, u64), StoreError> {
        let (cases, notes) =
            self.forget_cases(tenant_id, b, |c| c.subscriber_id == subscriber_id)?;
        b.delete(cf::OPEN_ALERTS, be(subscriber_id));
        b.delete(cf::LADDERS, LadderOf::Subscriber(subscriber_id).key());
        Ok((cases, notes))
    }
}
