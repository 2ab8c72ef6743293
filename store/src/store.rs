//! [`Store`]: every read and write genki makes, on any [`Kv`] engine.
//!
//! Column families (names in [`cf`]): records by id, plus indexes whose
//! keys carry everything and whose values are empty. Writes that belong
//! together go in one [`Batch`]; every write is synced to the WAL before
//! it returns (RocksDB groups concurrent synced writers into one fsync: the
//! group commit the design asks for; a check's read-modify-write holds
//! only that check's lock so that different checks commit together), so
//! nothing is acknowledged that a crash could lose.
//!
//! The check lifecycle maps onto a shared database later (leases,
//! first-outcome-wins): `claim` moves a Pending check to Dialing with an
//! owner and a lease; `finish_attempt` records the attempt and either
//! re-queues the check or writes its final outcome exactly once.
//!
//! Depends on: [`crate::kv`], [`crate::records`].

use std::sync::Mutex;

use std::sync::Arc;

use crate::dayview::Snap;
use crate::kv::{Batch, Kv, MemKv};

use crate::alerts::AlertInput;
use crate::records::{
    decode, encode, Attempt, Check, CheckId, CheckStatus, Outcome, Subscriber, Tenant,
};
use crate::vocab::{Cause, CheckKind};
use crate::StoreError;

/// Column family names.
pub mod cf {
    /// u64 name → u64 counter (id sequences).
    pub const META: &str = "meta";
    /// tenant_id → Tenant.
    pub const TENANTS: &str = "tenants";
    /// sha256(token) → tenant_id (0 marks an operator token).
    pub const TOKENS: &str = "tokens";
    /// subscriber_id → Subscriber.
    pub const SUBSCRIBERS: &str = "subscribers";
    /// tenant_id | subscriber_id → ().
    pub const TENANT_SUBSCRIBERS: &str = "tenant_subscribers";
    /// check key → Check.
    pub const CHECKS: &str = "checks";
    /// due_at_ms | check key → (): Pending checks in time order.
    pub const DUE: &str = "due";
    /// check key → (): checks being dialled (found again after a crash).
    pub const INFLIGHT: &str = "inflight";
    /// check key | attempt n → Attempt.
    pub const ATTEMPTS: &str = "attempts";
    /// tenant_id | finished_at_ms | check key → (): final outcomes in time order.
    pub const OUTCOMES: &str = "outcomes";
    /// tenant_id | slot-time ms | check key → (): all checks of a tenant by time.
    pub const TENANT_CHECKS: &str = "tenant_checks";
    /// tenant_id | name → WAV bytes.
    pub const PROMPTS: &str = "prompts";
    /// tenant_id | at_ms | seq → JSON entry.
    pub const AUDIT: &str = "audit";
    /// watcher_id → Watcher.
    pub const WATCHERS: &str = "watchers";
    /// tenant_id | watcher_id → ().
    pub const TENANT_WATCHERS: &str = "tenant_watchers";
    /// b't' | tenant_id (the tenant's default) or b's' | subscriber_id → Ladder.
    pub const LADDERS: &str = "ladders";
    /// check key → AlertInput: final outcomes the alert engine has not yet
    /// applied (written in the same batch as the outcome).
    pub const ALERT_INBOX: &str = "alert_inbox";
    /// case_id → AlertCase.
    pub const ALERTS: &str = "alerts";
    /// tenant_id | case_id → ().
    pub const TENANT_ALERTS: &str = "tenant_alerts";
    /// subscriber_id → case_id of the subscriber's one open case.
    pub const OPEN_ALERTS: &str = "open_alerts";
    /// deadline_ms | case_id → (): tier deadlines of open cases.
    pub const ALERT_TIMERS: &str = "alert_timers";
    /// notification_id → Notification (the outbox).
    pub const OUTBOX: &str = "outbox";
    /// next_at_ms | notification_id → (): pending notifications in time order.
    pub const OUTBOX_DUE: &str = "outbox_due";
    /// case_id | notification_id → ().
    pub const CASE_NOTIFICATIONS: &str = "case_notifications";
    /// cf name | 0 | original key → the undecodable bytes, moved aside.
    pub const QUARANTINE: &str = "quarantine";
    /// tenant_id | slot-time ms | seq → outcome word: what an erased
    /// person's finished check leaves behind, so that the tenant's counts
    /// do not change (nothing in it names anyone).
    pub const TALLIES: &str = "tallies";
    /// b'i' | staff_id → Staff; b'l' | login → staff_id; b's' |
    /// sha256(session token) → Session (the console's sign-in, issue 15).
    pub const STAFF: &str = "staff";
    pub const ALL: [&str; 27] = [
        STAFF,
        TALLIES,
        QUARANTINE,
        META,
        TENANTS,
        TOKENS,
        SUBSCRIBERS,
        TENANT_SUBSCRIBERS,
        CHECKS,
        DUE,
        INFLIGHT,
        ATTEMPTS,
        OUTCOMES,
        TENANT_CHECKS,
        PROMPTS,
        AUDIT,
        WATCHERS,
        TENANT_WATCHERS,
        LADDERS,
        ALERT_INBOX,
        ALERTS,
        TENANT_ALERTS,
        OPEN_ALERTS,
        ALERT_TIMERS,
        OUTBOX,
        OUTBOX_DUE,
        CASE_NOTIFICATIONS,
    ];
}

/// What happens to a check after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Try again at this time (unix ms), with the cause of this failure.
    Retry { due_at_ms: u64, cause: Cause },
    /// The check is over.
    Final {
        outcome: Outcome,
        cause: Option<Cause>,
    },
}

/// What erasing a person removed ([`Store::erase_subscriber`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub checks: u64,
    pub attempts: u64,
    pub cases: u64,
    pub notifications: u64,
    pub prompts: u64,
    /// Audit entries whose reference to the person was replaced by "erased".
    pub audit_entries: u64,
    /// Finished checks kept as anonymous counts.
    pub tallied: u64,
}

/// What a retention pass forgot ([`Store::prune`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub checks: u64,
    pub attempts: u64,
    pub cases: u64,
    pub notifications: u64,
}

/// The database. Cheap to share behind an `Arc`.
pub struct Store {
    pub(crate) kv: Arc<dyn Kv>,
    /// Serialises read-modify-write of checks and id sequences (one process
    /// owns the database; the shared-database mode will use leases instead).
    lock: Mutex<()>,
    /// Every live key of the due index is at or above this time: scans
    /// seek here instead of stepping over the tombstones that claimed
    /// checks leave at the front of the index (measured: at 2,000 calls
    /// the dispatcher spent its time walking them).
    due_floor: std::sync::atomic::AtomicU64,
    /// Bumped (under the write lock) by every insert into the due index,
    /// so a scan knows whether it may raise the floor.
    due_gen: std::sync::atomic::AtomicU64,
    /// Due-index inserts written into a batch but not yet committed.
    due_inflight: std::sync::atomic::AtomicU64,
    /// Per-check locks for a check's read-modify-write: different checks
    /// commit concurrently, so RocksDB groups their WAL syncs into one
    /// fsync (group commit); one lock for all serialised every fsync
    /// (measured: ~4,000 commits/s whatever the number of writers).
    stripes: Vec<Mutex<()>>,
    /// The last write failed (cleared by the next that succeeds).
    writes_failing: std::sync::atomic::AtomicBool,
    write_failures: std::sync::atomic::AtomicU64,
    /// People erased by this process: a planner pass or a call that read
    /// them before the erasure cannot write them back (checks for them are
    /// not created, their record is not put again).
    erased: Mutex<std::collections::HashSet<u64>>,
    quarantined: std::sync::atomic::AtomicU64,
    /// Writes of tenants and people by this process (the planner skips a
    /// re-plan when neither these nor the days changed).
    directory_changes: std::sync::atomic::AtomicU64,
    /// Each tenant's day at a glance, kept with every write of a check
    /// ([`crate::dayview`]).
    pub(crate) views: crate::dayview::Views,
    /// Test hook run between the generation check and the floor's raise.
    #[cfg(test)]
    pub(crate) raise_hook: Mutex<Option<std::sync::Arc<dyn Fn() + Send + Sync>>>,
}

/// A raw key and value read from a column family.
pub(crate) type KeyValue = (Box<[u8]>, Box<[u8]>);

pub(crate) fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

impl Store {
    /// A store on `kv` (RocksDB from genki-storage, or [`MemKv`]).
    pub fn new(kv: Arc<dyn Kv>) -> Store {
        Store {
            kv,
            lock: Mutex::new(()),
            due_floor: std::sync::atomic::AtomicU64::new(0),
            due_gen: std::sync::atomic::AtomicU64::new(0),
            due_inflight: std::sync::atomic::AtomicU64::new(0),
            stripes: (0..64).map(|_| Mutex::new(())).collect(),
            writes_failing: std::sync::atomic::AtomicBool::new(false),
            write_failures: std::sync::atomic::AtomicU64::new(0),
            erased: Mutex::new(std::collections::HashSet::new()),
            views: crate::dayview::Views::default(),
            quarantined: std::sync::atomic::AtomicU64::new(0),
            directory_changes: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            raise_hook: Mutex::new(None),
        }
    }

    /// A store in memory (unit tests, the demo's throwaway state).
    pub fn in_memory() -> Store {
        Store::new(Arc::new(MemKv::new()))
    }

    /// The engine under this store.
    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }

    pub(crate) fn raw(
        &self,
        name: &'static str,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(name, key.as_ref())
    }

    /// One synced put.
    pub(crate) fn put(
        &self,
        name: &'static str,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), StoreError> {
        let mut b = Batch::default();
        b.put(name, key, value);
        self.write(b)
    }

    /// One synced delete.
    pub(crate) fn delete(
        &self,
        name: &'static str,
        key: impl AsRef<[u8]>,
    ) -> Result<(), StoreError> {
        let mut b = Batch::default();
        b.delete(name, key);
        self.write(b)
    }

    pub(crate) fn get<T: serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.kv.get(name, key)? {
            Some(v) => self.decode_or_quarantine(name, key, &v),
            None => Ok(None),
        }
    }

    /// Decode a record; one that cannot be decoded (corruption, or a
    /// format from a newer release after a rollback) is moved aside to
    /// [`cf::QUARANTINE`], counted, and read as absent, so that one bad
    /// record never stops planning, dispatch, alerts or a start for all.
    pub(crate) fn decode_or_quarantine<T: serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match decode(name, bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e @ (StoreError::Corrupt { .. } | StoreError::UnknownFormat { .. })) => {
                let mut b = Batch::default();
                b.put(cf::QUARANTINE, cat(&[name.as_bytes(), &[0], key]), bytes);
                b.delete(name, key);
                self.write(b)?;
                let _ = e;
                self.quarantined
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Decode scanned records, moving undecodable ones aside.
    pub(crate) fn decode_all<T: serde::de::DeserializeOwned>(
        &self,
        name: &'static str,
        rows: Vec<KeyValue>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            out.extend(self.decode_or_quarantine(name, &k, &v)?);
        }
        Ok(out)
    }

    /// Records moved to quarantine since the start.
    pub fn quarantined(&self) -> u64 {
        self.quarantined.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.write_with(batch, false)
    }

    pub(crate) fn write_lazy(&self, batch: Batch) -> Result<(), StoreError> {
        self.write_with(batch, true)
    }

    fn write_with(&self, batch: Batch, lazy: bool) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let r = if lazy {
            self.kv.write_lazy(batch)
        } else {
            self.kv.write(batch)
        };
        match &r {
            Ok(()) => self.writes_failing.store(false, Ordering::SeqCst),
            Err(_) => {
                self.writes_failing.store(true, Ordering::SeqCst);
                self.write_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    /// False from a failed write until a write succeeds again (a full or
    /// failing disk): the due loop admits no call meanwhile and `/healthz`
    /// reports storage down.
    pub fn writes_ok(&self) -> bool {
        !self
            .writes_failing
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes that failed since the start.
    pub fn write_failures(&self) -> u64 {
        self.write_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Try one small synced write (a heartbeat in `meta`): how the engine
    /// finds out that storage accepts writes again.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        self.put(cf::META, b"probe", b"1")
    }

    pub(crate) fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic elsewhere while holding the lock leaves no partial write
        // (batches are atomic), so a poisoned lock is safe to take.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Next value of an id sequence (1, 2, …), durable.
    fn next_id(&self, seq: &str) -> Result<u64, StoreError> {
        let meta = cf::META;
        let cur = match self.raw(meta, seq.as_bytes())? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            _ => 0,
        };
        let next = cur + 1;
        self.put(meta, seq.as_bytes(), be(next))?;
        Ok(next)
    }

    /// Keys (and values) of a column family from `start` while they begin with `prefix`.
    pub(crate) fn scan(
        &self,
        name: &'static str,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        self.kv.scan(name, start, &mut |k, v| {
            if !k.starts_with(prefix) || out.len() >= limit {
                return false;
            }
            out.push((k.into(), v.into()));
            true
        })?;
        Ok(out)
    }

    // ---- tenants and tokens ----

    /// Create a tenant; its id is assigned here.
    pub fn create_tenant(&self, mut t: Tenant) -> Result<Tenant, StoreError> {
        let _g = self.guard();
        t.id = self.next_id("tenant")?;
        self.put(cf::TENANTS, be(t.id), encode(&t))?;
        self.directory_changed();
        Ok(t)
    }

    pub fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        self.put(cf::TENANTS, be(t.id), encode(t))?;
        self.directory_changed();
        Ok(())
    }

    /// Count a write of a tenant or a person (after it is stored: a
    /// planner that reads the count before its pass either sees the write
    /// in that pass or a new count after it).
    fn directory_changed(&self) {
        self.directory_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Writes of tenants and people by this process since it opened the
    /// store.
    pub fn directory_changes(&self) -> u64 {
        self.directory_changes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn tenant(&self, id: u64) -> Result<Option<Tenant>, StoreError> {
        self.get(cf::TENANTS, &be(id))
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.decode_all(cf::TENANTS, self.scan(cf::TENANTS, &[], &[], usize::MAX)?)
    }

    /// Store a token's hash for a tenant (0: operator).
    pub fn put_token(&self, hash: &[u8; 32], tenant_id: u64) -> Result<(), StoreError> {
        self.put(cf::TOKENS, hash, be(tenant_id))
    }

    /// The hashes of a tenant's tokens (a scan of every token: there are
    /// few, a handful a tenant).
    pub fn tokens_of(&self, tenant_id: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        Ok(self
            .scan(cf::TOKENS, &[], &[], usize::MAX)?
            .into_iter()
            .filter(|(_, v)| v.len() == 8 && v[..] == be(tenant_id))
            .filter_map(|(k, _)| <[u8; 32]>::try_from(&k[..]).ok())
            .collect())
    }

    /// Revoke a token: requests bearing it are refused from now on.
    pub fn delete_token(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.delete(cf::TOKENS, hash)
    }

    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        Ok(self
            .raw(cf::TOKENS, hash)?
            .filter(|v| v.len() == 8)
            .map(|v| u64::from_be_bytes(v[..8].try_into().expect("8 bytes"))))
    }

    // ---- subscribers ----

    pub fn create_subscriber(&self, mut s: Subscriber) -> Result<Subscriber, StoreError> {
        let _g = self.guard();
        s.id = self.next_id("subscriber")?;
        let mut b = Batch::default();
        b.put(cf::SUBSCRIBERS, be(s.id), encode(&s));
        b.put(
            cf::TENANT_SUBSCRIBERS,
            cat(&[&be(s.tenant_id), &be(s.id)]),
            [],
        );
        self.write(b)?;
        self.directory_changed();
        Ok(s)
    }

    /// Create many subscribers in one synced batch (CSV import).
    pub fn create_subscribers(&self, subs: Vec<Subscriber>) -> Result<Vec<Subscriber>, StoreError> {
        let _g = self.guard();
        let meta = cf::META;
        let first = match self.raw(meta, b"subscriber")? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            _ => 0,
        } + 1;
        let mut b = Batch::default();
        let mut out = Vec::with_capacity(subs.len());
        for (i, mut s) in subs.into_iter().enumerate() {
            s.id = first + i as u64;
            b.put(cf::SUBSCRIBERS, be(s.id), encode(&s));
            b.put(
                cf::TENANT_SUBSCRIBERS,
                cat(&[&be(s.tenant_id), &be(s.id)]),
                [],
            );
            out.push(s);
        }
        b.put(meta, b"subscriber", be(first + out.len() as u64 - 1));
        if !out.is_empty() {
            self.write(b)?;
            self.directory_changed();
        }
        Ok(out)
    }

    /// Change a person's record. A person deleted or erased meanwhile (a
    /// call or an edit that read them before) is not written back: the
    /// planner reads the people's table itself, and would plan them.
    pub fn put_subscriber(&self, s: &Subscriber) -> Result<(), StoreError> {
        let _g = self.guard();
        if self.was_erased(s.id) || self.raw(cf::SUBSCRIBERS, be(s.id))?.is_none() {
            return Err(StoreError::NotFound("subscriber"));
        }
        self.put(cf::SUBSCRIBERS, be(s.id), encode(s))?;
        self.directory_changed();
        Ok(())
    }

    pub(crate) fn was_erased(&self, id: u64) -> bool {
        self.erased
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    pub fn subscriber(&self, id: u64) -> Result<Option<Subscriber>, StoreError> {
        self.get(cf::SUBSCRIBERS, &be(id))
    }

    /// Remove a subscriber from its tenant's list (their checks and outcomes stay as history).
    pub fn delete_subscriber(&self, s: &Subscriber) -> Result<(), StoreError> {
        let _g = self.guard();
        let mut b = Batch::default();
        b.delete(cf::SUBSCRIBERS, be(s.id));
        b.delete(cf::TENANT_SUBSCRIBERS, cat(&[&be(s.tenant_id), &be(s.id)]));
        self.write(b)?;
        self.directory_changed();
        Ok(())
    }

    /// How many one-off checks of a person were requested at or after
    /// `from_ms` (unix ms; a one-off's slot is its request time).
    pub fn one_offs_since(&self, subscriber_id: u64, from_ms: u64) -> Result<u64, StoreError> {
        let prefix = cat(&[&be(subscriber_id), &[CheckKind::OneOff.byte()]]);
        let start = cat(&[&prefix, &be(from_ms)]);
        let mut n = 0;
        self.kv.scan(cf::CHECKS, &start, &mut |k, _| {
            if !k.starts_with(&prefix) {
                return false;
            }
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// Erase a person (APPI: a deletion on request): their record, every
    /// check, attempt, outcome and index entry, their alert cases and
    /// notifications, their own ladder, their name prompt, and every
    /// reference to them in the audit trail — one atomic batch. Finished
    /// checks leave an anonymous count (tenant, slot time, outcome) in
    /// [`cf::TALLIES`], so the tenant's day counts do not change.
    pub fn erase_subscriber(&self, s: &Subscriber) -> Result<Erased, StoreError> {
        let _g = self.guard();
        // Every check's lock too (after the global one, as nobody holding
        // a check's lock takes the global one): no claim, attempt or
        // settlement of the person's checks can land between the reads
        // below and the batch.
        let _stripes: Vec<_> = self
            .stripes
            .iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let _v = self.views.shared();
        let sid = be(s.id);
        if !self.scan(cf::INFLIGHT, &sid, &sid, 1)?.is_empty() {
            return Err(StoreError::Busy(
                "a call to this person is in progress; erase again in a minute",
            ));
        }
        // From here on no check of theirs is claimed (see `claim`).
        self.erased
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(s.id);
        let tenant = be(s.tenant_id);
        let mut b = Batch::default();
        let mut e = Erased::default();
        let mut tallies = Vec::new();
        let mut gone = Vec::new();
        for (k, v) in self.scan(cf::CHECKS, &sid, &sid, usize::MAX)? {
            self.forget_check(&mut b, &tenant, &k, &v, &mut tallies, &mut gone);
            e.checks += 1;
        }
        for (k, _) in self.scan(cf::ATTEMPTS, &sid, &sid, usize::MAX)? {
            b.delete(cf::ATTEMPTS, k);
            e.attempts += 1;
        }
        b.delete(cf::SUBSCRIBERS, sid);
        b.delete(cf::TENANT_SUBSCRIBERS, cat(&[&tenant, &sid]));
        let prompt = format!("name-{}", s.id);
        for (k, _) in self.scan(cf::PROMPTS, &tenant, &tenant, usize::MAX)? {
            if &k[8..] == prompt.as_bytes() {
                b.delete(cf::PROMPTS, k);
                e.prompts += 1;
            }
        }
        let (cases, notes) = self.erase_cases_of(s.tenant_id, s.id, &mut b)?;
        e.cases = cases.len() as u64;
        e.notifications = notes;
        for (k, v) in self.scan(cf::AUDIT, &tenant, &tenant, usize::MAX)? {
            let Ok(mut entry) = decode::<serde_json::Value>(cf::AUDIT, &v) else {
                continue;
            };
            let mut touched = false;
            if let Some(o) = entry.as_object_mut() {
                for (key, val) in o.iter_mut() {
                    let hit = match key.as_str() {
                        "id" | "subscriber" | "subscriber_id" => val.as_u64() == Some(s.id),
                        "case" => val.as_u64().is_some_and(|c| cases.contains(&c)),
                        _ => false,
                    };
                    if hit {
                        *val = serde_json::Value::from("erased");
                        touched = true;
                    }
                }
            }
            if touched {
                b.put(cf::AUDIT, k, encode(&entry));
                e.audit_entries += 1;
            }
        }
        e.tallied = self.put_tallies(&mut b, &tenant, &tallies)?;
        if let Err(err) = self.write(b) {
            self.erased
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&s.id);
            return Err(err);
        }
        self.forgotten(gone);
        Ok(e)
    }

    /// Put the removal of one check (key `k`, record `v`) and of its index
    /// entries into `b`; a finished one adds its anonymous count to
    /// `tallies`. Its attempts are the caller's (a prefix of `k`).
    fn forget_check(
        &self,
        b: &mut Batch,
        tenant: &[u8; 8],
        k: &[u8],
        v: &[u8],
        tallies: &mut Vec<(u64, Outcome)>,
        gone: &mut Vec<Snap>,
    ) {
        b.delete(cf::CHECKS, k);
        b.delete(cf::INFLIGHT, k);
        b.delete(cf::ALERT_INBOX, k);
        let Some(id) = CheckId::from_key(k) else {
            return;
        };
        let t = Self::check_time_ms(&id);
        b.delete(cf::TENANT_CHECKS, cat(&[tenant, &be(t), k]));
        if let Ok(c) = decode::<Check>(cf::CHECKS, v) {
            gone.push(Snap::of(&c, t));
            b.delete(cf::DUE, cat(&[&be(c.due_at_ms), k]));
            if let Some(f) = c.finished_at_ms {
                b.delete(cf::OUTCOMES, cat(&[tenant, &be(f), k]));
            }
            if let (CheckStatus::Done, Some(o)) = (c.status, c.outcome) {
                tallies.push((t, o));
            }
        }
    }

    /// Checks forgotten (erased or pruned) leave the views' rows; a
    /// finished one still counts (as its anonymous tally does).
    fn forgotten(&self, gone: Vec<Snap>) {
        for g in gone {
            let after = (g.word >= crate::dayview::FIRST_OUTCOME).then(|| g.tallied());
            self.views.change(Some(g), after);
        }
    }

    /// Put anonymous counts into `b`; how many.
    fn put_tallies(
        &self,
        b: &mut Batch,
        tenant: &[u8; 8],
        tallies: &[(u64, Outcome)],
    ) -> Result<u64, StoreError> {
        if tallies.is_empty() {
            return Ok(0);
        }
        let first = self.reserve_tally_ids(b, tallies.len() as u64)?;
        for (i, (t, o)) in tallies.iter().enumerate() {
            b.put(
                cf::TALLIES,
                cat(&[tenant, &be(*t), &be(first + i as u64)]),
                o.as_str().as_bytes(),
            );
        }
        Ok(tallies.len() as u64)
    }

    /// Retention: forget up to `max` of a tenant's checks that finished
    /// before `before_ms` — the check, its attempts and index entries —
    /// leaving their anonymous counts (the tenant's summaries do not
    /// change), and its resolved alert cases closed before then with their
    /// notifications. A check whose outcome the alert engine has not read
    /// yet is kept. Call again until it returns no checks.
    pub fn prune(&self, tenant_id: u64, before_ms: u64, max: usize) -> Result<Pruned, StoreError> {
        let _g = self.guard();
        let _v = self.views.shared();
        let mut gone = Vec::new();
        let tenant = be(tenant_id);
        let mut b = Batch::default();
        let mut p = Pruned::default();
        let mut tallies = Vec::new();
        let mut keys = Vec::new();
        self.kv.scan(cf::OUTCOMES, &tenant, &mut |k, _| {
            if !k.starts_with(&tenant) || k.len() != 8 + 8 + 17 || keys.len() >= max {
                return false;
            }
            if u64::from_be_bytes(k[8..16].try_into().expect("8 bytes")) >= before_ms {
                return false;
            }
            keys.push(k.to_vec());
            true
        })?;
        for ik in keys {
            let key = &ik[16..];
            if self.raw(cf::ALERT_INBOX, key)?.is_some() {
                continue;
            }
            match self.raw(cf::CHECKS, key)? {
                Some(v) => self.forget_check(&mut b, &tenant, key, &v, &mut tallies, &mut gone),
                // A stale index entry: drop it.
                None => b.delete(cf::OUTCOMES, &ik),
            }
            for (ak, _) in self.scan(cf::ATTEMPTS, key, key, usize::MAX)? {
                b.delete(cf::ATTEMPTS, ak);
                p.attempts += 1;
            }
            p.checks += 1;
        }
        // Cases once per round (the last pass), not once per 1,000 checks.
        if p.checks < max as u64 {
            let (cases, notes) = self.prune_cases(tenant_id, before_ms, &mut b)?;
            p.cases = cases;
            p.notifications = notes;
        }
        self.put_tallies(&mut b, &tenant, &tallies)?;
        self.write(b)?;
        self.forgotten(gone);
        Ok(p)
    }

    fn reserve_tally_ids(&self, b: &mut Batch, n: u64) -> Result<u64, StoreError> {
        let cur = match self.raw(cf::META, b"tally")? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            _ => 0,
        };
        b.put(cf::META, b"tally", be(cur + n));
        Ok(cur + 1)
    }

    /// The anonymous counts of a tenant's checks with slot times in
    /// `from_ms..to_ms` that were erased ([`Store::erase_subscriber`]).
    pub fn tallies_of(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut out = Vec::new();
        self.scan_tallies(tenant_id, from_ms, to_ms, &mut |_, o| out.push(o))?;
        Ok(out)
    }

    /// Each anonymous count of [from_ms, to_ms): its slot time and outcome.
    fn scan_tallies(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        each: &mut dyn FnMut(u64, Outcome),
    ) -> Result<(), StoreError> {
        let tenant = be(tenant_id);
        let start = cat(&[&tenant, &be(from_ms)]);
        self.kv.scan(cf::TALLIES, &start, &mut |k, v| {
            if !k.starts_with(&tenant) || k.len() < 16 {
                return false;
            }
            let at = u64::from_be_bytes(k[8..16].try_into().expect("8 bytes"));
            if at >= to_ms {
                return false;
            }
            if let Some(o) = std::str::from_utf8(v)
                .ok()
                .and_then(|w| Outcome::ALL.into_iter().find(|o| o.as_str() == w))
            {
                each(at, o);
            }
            true
        })
    }

    /// A page of a tenant's subscribers with ids greater than `after`.
    pub fn subscribers_of(
        &self,
        tenant_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Subscriber>, StoreError> {
        let start = cat(&[&be(tenant_id), &be(after.saturating_add(1))]);
        let mut keys = Vec::new();
        for (k, _) in self.scan(cf::TENANT_SUBSCRIBERS, &start, &be(tenant_id), limit)? {
            let id: [u8; 8] = k
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    cf: cf::TENANT_SUBSCRIBERS,
                    reason: "short key".into(),
                })?;
            keys.push(id);
        }
        // One batched read for the page (the planner reads every person).
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let mut out = Vec::with_capacity(keys.len());
        for (k, v) in keys.iter().zip(self.kv.multi_get(cf::SUBSCRIBERS, &refs)?) {
            if let Some(v) = v {
                out.extend(self.decode_or_quarantine(cf::SUBSCRIBERS, k, &v)?);
            }
        }
        Ok(out)
    }

    /// Every tenant's people in id order after `after`, at most `limit`:
    /// the planner reads them all in one pass over the table (in key
    /// order, with no index lookup a person).
    pub fn subscribers_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Subscriber>, StoreError> {
        let rows = self.scan(cf::SUBSCRIBERS, &be(after.saturating_add(1)), &[], limit)?;
        self.decode_all(cf::SUBSCRIBERS, rows)
    }

    // ---- checks ----

    /// The lock of one check's read-modify-write.
    fn stripe(&self, id: &CheckId) -> std::sync::MutexGuard<'_, ()> {
        let h = id.subscriber_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id.slot;
        self.stripes[(h % self.stripes.len() as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Put a due-index entry into `b`; the batch must then be written with
    /// [`Store::write_due`] counting it.
    fn put_due(&self, b: &mut Batch, due_at_ms: u64, key: &[u8]) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        // In flight first, then the generation: a scan reads them in the
        // other order, so it either sees this insert in flight or sees the
        // generation move, and then does not raise the floor.
        self.due_inflight.fetch_add(1, Ordering::SeqCst);
        self.due_gen.fetch_add(1, Ordering::SeqCst);
        self.due_floor.fetch_min(due_at_ms, Ordering::SeqCst);
        b.put_key(cf::DUE, &[&be(due_at_ms), key]);
        Ok(())
    }

    /// Write a batch holding `due_puts` due-index inserts.
    fn write_due(&self, b: Batch, due_puts: u64) -> Result<(), StoreError> {
        self.write_due_with(b, due_puts, false)
    }

    /// [`Store::write_due`], lazily synced if `lazy` (see [`Kv::write_lazy`]).
    fn write_due_with(&self, b: Batch, due_puts: u64, lazy: bool) -> Result<(), StoreError> {
        let r = if lazy {
            self.write_lazy(b)
        } else {
            self.write(b)
        };
        self.due_inflight
            .fetch_sub(due_puts, std::sync::atomic::Ordering::SeqCst);
        r
    }

    /// Raise the due floor to `to` if no insert was in flight when the scan
    /// began (`quiet`) and none began since (`gen` unchanged).
    ///
    /// An insert can begin between the comparison and the raise (it bumps
    /// the generation, then lowers the floor to its key): if the
    /// generation moved once the floor is raised, the raise is undone, so
    /// the insert's key is never left below the floor until a restart.
    fn raise_due_floor(&self, gen: u64, quiet: bool, to: u64) {
        use std::sync::atomic::Ordering;
        if quiet && self.due_gen.load(Ordering::SeqCst) == gen {
            #[cfg(test)]
            {
                let hook = self
                    .raise_hook
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(hook) = hook {
                    hook();
                }
            }
            let before = self.due_floor.fetch_max(to, Ordering::SeqCst);
            if self.due_gen.load(Ordering::SeqCst) != gen {
                self.due_floor.fetch_min(before, Ordering::SeqCst);
            }
        }
    }

    /// Time of a check for the tenant's time-ordered index: the scheduled slot, or the request.
    pub(crate) fn check_time_ms(id: &CheckId) -> u64 {
        id.time_ms()
    }

    /// Create many Pending checks in one synced batch, skipping ids that
    /// exist. Returns how many were created.
    pub fn create_checks(&self, checks: &[Check]) -> Result<u64, StoreError> {
        self.insert_checks(checks, false)
    }

    /// The planner's [`Store::create_checks`]: the batch is written to the
    /// log without waiting for the disk, and [`Store::sync`] at the end of
    /// a plan makes them all durable with one fsync. A process killed
    /// meanwhile loses nothing (the log is written); a power cut may lose
    /// the unsynced tail, which planning again re-creates (a check's id is
    /// its person and slot, so it is the same check).
    pub fn plan_checks(&self, checks: &[Check]) -> Result<u64, StoreError> {
        self.insert_checks(checks, true)
    }

    /// Make every write so far durable (after [`Store::plan_checks`]).
    pub fn sync(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let r = self.kv.sync();
        if r.is_err() {
            self.writes_failing.store(true, Ordering::SeqCst);
            self.write_failures.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn insert_checks(&self, checks: &[Check], lazy: bool) -> Result<u64, StoreError> {
        let _g = self.guard();
        let _v = self.views.shared();
        let cf_checks = cf::CHECKS;
        // Three changes a check, ~200 bytes: one buffer for the batch.
        let mut b = Batch::with_capacity(checks.len() * 3, checks.len() * 256);
        let mut created = 0;
        let mut snaps = Vec::with_capacity(checks.len());
        let mut seen = std::collections::HashSet::new();
        let keys: Vec<[u8; 17]> = checks.iter().map(|c| c.id.key()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let there = self.kv.multi_contains(cf_checks, &refs)?;
        // Held while the batch is built (nothing below takes it again).
        let erased = self.erased.lock().unwrap_or_else(|e| e.into_inner());
        for ((c, key), there) in checks.iter().zip(keys).zip(there) {
            if erased.contains(&c.id.subscriber_id) || !seen.insert(key) || there {
                continue;
            }
            snaps.push(Snap::of(c, Self::check_time_ms(&c.id)));
            b.put_record(cf_checks, &key, c);
            self.put_due(&mut b, c.due_at_ms, &key)?;
            b.put_key(
                cf::TENANT_CHECKS,
                &[&be(c.tenant_id), &be(Self::check_time_ms(&c.id)), &key],
            );
            created += 1;
        }
        drop(erased);
        if created > 0 {
            self.write_due_with(b, created, lazy)?;
        }
        for s in snaps {
            self.views.change(None, Some(s));
        }
        Ok(created)
    }

    /// Create a Pending check unless one with the same id exists (planning is
    /// idempotent: the id is subscriber + slot). Returns whether it was created.
    pub fn create_check(&self, c: &Check) -> Result<bool, StoreError> {
        let _g = self.guard();
        let _v = self.views.shared();
        if self.was_erased(c.id.subscriber_id) {
            return Ok(false);
        }
        let key = c.id.key();
        if self.raw(cf::CHECKS, key)?.is_some() {
            return Ok(false);
        }
        let mut b = Batch::default();
        b.put(cf::CHECKS, key, encode(c));
        self.put_due(&mut b, c.due_at_ms, &key)?;
        b.put(
            cf::TENANT_CHECKS,
            cat(&[&be(c.tenant_id), &be(Self::check_time_ms(&c.id)), &key]),
            [],
        );
        self.write_due(b, 1)?;
        self.views
            .change(None, Some(Snap::of(c, Self::check_time_ms(&c.id))));
        Ok(true)
    }

    pub fn check(&self, id: &CheckId) -> Result<Option<Check>, StoreError> {
        self.get(cf::CHECKS, &id.key())
    }

    /// Pending checks due at or before `now_ms`, oldest first.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<Check>, StoreError> {
        use std::sync::atomic::Ordering;
        let gen = self.due_gen.load(Ordering::SeqCst);
        let quiet = self.due_inflight.load(Ordering::SeqCst) == 0;
        let floor = be(self.due_floor.load(Ordering::SeqCst));
        let mut ids = Vec::new();
        // Index entries that name no readable check: removed, so that one
        // bad entry never holds up every check behind it.
        let mut stale: Vec<Vec<u8>> = Vec::new();
        let mut first: Option<u64> = None;
        self.kv.scan(cf::DUE, &floor, &mut |k, _| {
            if ids.len() >= limit {
                return false;
            }
            let id = (k.len() == 25)
                .then(|| CheckId::from_key(&k[8..]))
                .flatten();
            let Some(id) = id else {
                first.get_or_insert(0);
                stale.push(k.to_vec());
                return true;
            };
            let at = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            first.get_or_insert(at);
            if at > now_ms {
                return false;
            }
            ids.push((k.to_vec(), id));
            true
        })?;
        // One batched read for the whole page (RocksDB's MultiGet), not a
        // search from the top of the tree per check.
        let keys: Vec<[u8; 17]> = ids.iter().map(|(_, id)| id.key()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let values = self.kv.multi_get(cf::CHECKS, &refs)?;
        let mut out = Vec::with_capacity(ids.len());
        for ((k, _), (key, v)) in ids.into_iter().zip(keys.iter().zip(values)) {
            let c = match v {
                Some(v) => self.decode_or_quarantine::<Check>(cf::CHECKS, key, &v)?,
                None => None,
            };
            match c {
                Some(c) => out.push(c),
                None => stale.push(k),
            }
        }
        if !stale.is_empty() {
            let mut b = Batch::default();
            for k in &stale {
                b.delete(cf::DUE, k);
            }
            self.write(b)?;
        }
        // Nothing live lies below the first key seen (or anywhere, if none).
        self.raise_due_floor(gen, quiet, first.unwrap_or(u64::MAX));
        Ok(out)
    }

    /// When the earliest Pending check is due (unix ms), if any.
    pub fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        let floor = be(self.due_floor.load(std::sync::atomic::Ordering::SeqCst));
        let mut first = None;
        self.kv.scan(cf::DUE, &floor, &mut |k, _| {
            first = k
                .get(..8)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            false
        })?;
        Ok(first)
    }

    /// Load a Pending check (the caller holds its stripe lock) and start a
    /// batch that removes it from the due index. None when it is not Pending.
    fn take_pending(&self, id: &CheckId) -> Result<Option<(Check, Batch)>, StoreError> {
        let Some(c) = self.check(id)? else {
            return Ok(None);
        };
        if c.status != CheckStatus::Pending {
            return Ok(None);
        }
        let mut b = Batch::default();
        b.delete(cf::DUE, cat(&[&be(c.due_at_ms), &id.key()]));
        Ok(Some((c, b)))
    }

    /// Claim a Pending check for dialling: it leaves the due index and
    /// enters the in-flight set with `owner` and a lease. None when the
    /// check is not Pending any more (someone else took it, or it is done).
    pub fn claim(
        &self,
        id: &CheckId,
        owner: &str,
        lease_until_ms: u64,
    ) -> Result<Option<Check>, StoreError> {
        let _g = self.stripe(id);
        let _v = self.views.shared();
        if self.was_erased(id.subscriber_id) {
            return Ok(None);
        }
        let Some((mut c, mut b)) = self.take_pending(id)? else {
            return Ok(None);
        };
        let key = id.key();
        let before = Snap::of(&c, Self::check_time_ms(id));
        c.status = CheckStatus::Dialing;
        c.owner = Some(owner.to_string());
        c.lease_until_ms = Some(lease_until_ms);
        b.put(cf::CHECKS, key, encode(&c));
        b.put(cf::INFLIGHT, key, []);
        // Lazily synced (a synced write per call was ~a fifth of the
        // fsyncs of a round): a kill loses nothing of it (it is in the
        // log), and a power cut before the next synced write loses only
        // the claim, so the check is due again and is called — what an
        // interrupted claim leads to as well. The call's outcome is
        // written synced, which makes the claim durable first.
        self.write_lazy(b)?;
        self.views
            .change(Some(before), Some(Snap::of(&c, Self::check_time_ms(id))));
        Ok(Some(c))
    }

    /// Record an attempt of a Dialing check and decide its next step, in one
    /// synced batch. A check that is already Done is left alone and the
    /// attempt is still kept (first outcome wins).
    pub fn finish_attempt(
        &self,
        id: &CheckId,
        attempt: &Attempt,
        next: Next,
        now_ms: u64,
    ) -> Result<Check, StoreError> {
        let _g = self.stripe(id);
        let _v = self.views.shared();
        let mut c = self.check(id)?.ok_or(StoreError::NotFound("check"))?;
        let before = Snap::of(&c, Self::check_time_ms(id));
        let key = id.key();
        let mut b = Batch::default();
        b.put(
            cf::ATTEMPTS,
            cat(&[&key, &attempt.n.to_be_bytes()]),
            encode(attempt),
        );
        if c.status == CheckStatus::Done {
            // Already final (stored at the key, synced): only this
            // attempt's details (its end reason, duration) are new, and a
            // power cut that loses them keeps the outcome.
            self.write_lazy(b)?;
            return Ok(c);
        }
        b.delete(cf::INFLIGHT, key);
        if c.status == CheckStatus::Pending {
            b.delete(cf::DUE, cat(&[&be(c.due_at_ms), &key]));
        }
        c.attempts = c.attempts.max(attempt.n);
        c.owner = None;
        c.lease_until_ms = None;
        let puts = self.apply_next(&mut b, &mut c, next, now_ms)?;
        self.write_due(b, puts)?;
        self.views
            .change(Some(before), Some(Snap::of(&c, Self::check_time_ms(id))));
        Ok(c)
    }

    /// Put a check's next step into `b`: re-queued (Pending, due index) or
    /// final (Done, outcome index, written once), and the check itself.
    fn apply_next(
        &self,
        b: &mut Batch,
        c: &mut Check,
        next: Next,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let key = c.id.key();
        let mut due_puts = 0;
        match next {
            Next::Retry { due_at_ms, cause } => {
                c.status = CheckStatus::Pending;
                c.due_at_ms = due_at_ms;
                c.last_cause = Some(cause);
                self.put_due(b, due_at_ms, &key)?;
                due_puts = 1;
            }
            Next::Final { outcome, cause } => {
                c.status = CheckStatus::Done;
                c.outcome = Some(outcome);
                if cause.is_some() {
                    c.last_cause = cause;
                }
                c.finished_at_ms = Some(now_ms);
                // The alert engine hears of every final outcome through
                // this inbox, written in the same batch: a crash cannot
                // separate an outcome from its alert.
                b.put(
                    cf::ALERT_INBOX,
                    key,
                    encode(&AlertInput {
                        check_id: c.id,
                        tenant_id: c.tenant_id,
                        subscriber_id: c.id.subscriber_id,
                        outcome,
                        at_ms: now_ms,
                    }),
                );
                b.put(
                    cf::OUTCOMES,
                    cat(&[&be(c.tenant_id), &be(now_ms), &key]),
                    [],
                );
            }
        }
        b.put(cf::CHECKS, key, encode(c));
        Ok(due_puts)
    }

    /// Move a Pending check without a call (e.g. it came due outside the
    /// calling window): re-queue it at a new time, or finish it. Returns
    /// None when the check was not Pending.
    pub fn settle_pending(
        &self,
        id: &CheckId,
        next: Next,
        now_ms: u64,
    ) -> Result<Option<Check>, StoreError> {
        let _g = self.stripe(id);
        let _v = self.views.shared();
        let Some((mut c, mut b)) = self.take_pending(id)? else {
            return Ok(None);
        };
        let before = Snap::of(&c, Self::check_time_ms(id));
        let puts = self.apply_next(&mut b, &mut c, next, now_ms)?;
        self.write_due(b, puts)?;
        self.views
            .change(Some(before), Some(Snap::of(&c, Self::check_time_ms(id))));
        Ok(Some(c))
    }

    /// Checks that were being dialled when the process stopped.
    pub fn inflight(&self) -> Result<Vec<Check>, StoreError> {
        let mut out = Vec::new();
        for (k, _) in self.scan(cf::INFLIGHT, &[], &[], usize::MAX)? {
            if let Some(id) = CheckId::from_key(&k) {
                if let Some(c) = self.check(&id)? {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// Extend the leases of `owner`'s claims on `ids` to `now_ms +
    /// lease_ms`; how many. Each is read and written under its check's
    /// lock (a call ending meanwhile must not be overwritten by the older
    /// copy read here).
    pub fn renew_leases(
        &self,
        owner: &str,
        ids: &[CheckId],
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<u64, StoreError> {
        let _v = self.views.shared();
        let mut n = 0;
        for id in ids {
            let _g = self.stripe(id);
            let Some(mut c) = self.check(id)? else {
                continue;
            };
            if c.status != CheckStatus::Dialing || c.owner.as_deref() != Some(owner) {
                continue;
            }
            c.lease_until_ms = Some(now_ms.saturating_add(lease_ms));
            self.put(cf::CHECKS, id.key(), encode(&c))?;
            n += 1;
        }
        Ok(n)
    }

    /// Claimed checks whose lease ran out at or before `now_ms`.
    pub fn expired_claims(&self, now_ms: u64, limit: usize) -> Result<Vec<Check>, StoreError> {
        let mut out = self.inflight()?;
        out.retain(|c| c.lease_until_ms.is_none_or(|l| l <= now_ms));
        out.truncate(limit);
        Ok(out)
    }

    /// One process alone on its database holds the whole trunk.
    pub fn trunk_share(
        &self,
        _owner: &str,
        limit: crate::budget::Share,
        _active: u32,
        _lease_ms: u64,
        _hold_ms: u64,
    ) -> Result<crate::budget::Share, StoreError> {
        Ok(limit)
    }

    /// One process alone on its database plays every role.
    pub fn lead(&self, _role: &str, _owner: &str, _lease_ms: u64) -> Result<bool, StoreError> {
        Ok(true)
    }

    pub fn attempts(&self, id: &CheckId) -> Result<Vec<Attempt>, StoreError> {
        let key = id.key();
        self.decode_all(
            cf::ATTEMPTS,
            self.scan(cf::ATTEMPTS, &key, &key, usize::MAX)?,
        )
    }

    /// Final outcomes of a tenant finished in [from_ms, to_ms), in time
    /// order (then check id); with `after`, those finished at `from_ms`
    /// with a check id up to `after` are left out (the next page of a page
    /// whose last row was `after`, finished at `from_ms`).
    pub fn outcomes(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        after: Option<&CheckId>,
    ) -> Result<Vec<Check>, StoreError> {
        self.checks_by_time(cf::OUTCOMES, tenant_id, from_ms, to_ms, limit, after)
    }

    /// All checks of a tenant whose slot (or request) time is in [from_ms, to_ms).
    pub fn checks_of(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<Check>, StoreError> {
        self.checks_by_time(cf::TENANT_CHECKS, tenant_id, from_ms, to_ms, limit, None)
    }

    /// A person's checks (scheduled and one-off) whose slot or request
    /// time is in [from_ms, to_ms), oldest first: their history page.
    pub fn checks_of_subscriber(
        &self,
        subscriber_id: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Check>, StoreError> {
        let sid = be(subscriber_id);
        let rows = self.scan(cf::CHECKS, &sid, &sid, usize::MAX)?;
        let mut out: Vec<Check> = self
            .decode_all::<Check>(cf::CHECKS, rows)?
            .into_iter()
            .filter(|c| (from_ms..to_ms).contains(&Self::check_time_ms(&c.id)))
            .collect();
        out.sort_by_key(|c| (Self::check_time_ms(&c.id), c.id.key()));
        Ok(out)
    }

    /// Checks listed in a `tenant_id | time_ms | check key` index, in [from_ms, to_ms).
    fn checks_by_time(
        &self,
        index: &'static str,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        after: Option<&CheckId>,
    ) -> Result<Vec<Check>, StoreError> {
        let start = match after {
            Some(a) => cat(&[&be(tenant_id), &be(from_ms), &a.key()]),
            None => cat(&[&be(tenant_id), &be(from_ms)]),
        };
        let mut out = Vec::new();
        // One more key when the first may be `after` itself.
        let rows = self.scan(
            index,
            &start,
            &be(tenant_id),
            limit + after.is_some() as usize,
        )?;
        for (k, _) in rows
            .into_iter()
            .skip_while(|(k, _)| after.is_some() && **k == *start)
        {
            if out.len() >= limit {
                break;
            }
            let (Some(at), Some(id)) = (k.get(8..16), k.get(16..).and_then(CheckId::from_key))
            else {
                return Err(StoreError::Corrupt {
                    cf: index,
                    reason: "short index key".into(),
                });
            };
            if u64::from_be_bytes(at.try_into().expect("8 bytes")) >= to_ms {
                break;
            }
            if let Some(c) = self.check(&id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    // ---- prompts and audit ----

    pub fn put_prompt(&self, tenant_id: u64, name: &str, wav: &[u8]) -> Result<(), StoreError> {
        let key = cat(&[&be(tenant_id), name.as_bytes()]);
        self.put(cf::PROMPTS, key, wav)
    }

    pub fn prompt(&self, tenant_id: u64, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = cat(&[&be(tenant_id), name.as_bytes()]);
        self.raw(cf::PROMPTS, key)
    }

    /// Names of a tenant's uploaded prompts.
    pub fn prompt_names(&self, tenant_id: u64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .scan(cf::PROMPTS, &be(tenant_id), &be(tenant_id), usize::MAX)?
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(&k[8..]).into_owned())
            .collect())
    }

    /// Append an audit entry (who did what, as JSON) for a tenant.
    pub fn audit(
        &self,
        tenant_id: u64,
        at_ms: u64,
        entry: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let _g = self.guard();
        let seq = self.next_id("audit")?;
        let key = cat(&[&be(tenant_id), &be(at_ms), &be(seq)]);
        self.put(cf::AUDIT, key, encode(entry))
    }

    /// A tenant's audit entries from `(at_ms, sequence)` = `from` on
    /// (inclusive), oldest first, at most `limit`: (at_ms, sequence,
    /// entry). An entry that cannot be read is returned as a string saying
    /// so (the trail is never cut short).
    pub fn audit_of(
        &self,
        tenant_id: u64,
        from: (u64, u64),
        limit: usize,
    ) -> Result<Vec<(u64, u64, serde_json::Value)>, StoreError> {
        let tenant = be(tenant_id);
        let start = cat(&[&tenant, &be(from.0), &be(from.1)]);
        Ok(self
            .scan(cf::AUDIT, &start, &tenant, limit)?
            .into_iter()
            .filter(|(k, _)| k.len() == 24)
            .map(|(k, v)| {
                let at = u64::from_be_bytes(k[8..16].try_into().expect("8 bytes"));
                let seq = u64::from_be_bytes(k[16..24].try_into().expect("8 bytes"));
                let entry = decode::<serde_json::Value>(cf::AUDIT, &v)
                    .unwrap_or_else(|_| serde_json::Value::from("(unreadable entry)"));
                (at, seq, entry)
            })
            .collect())
    }

    /// Flush memtables (clean shutdown); the WAL already holds everything.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush()
    }

    /// A consistent copy of the database in `dir` (which must not exist),
    /// taken while genki runs ([`Kv::checkpoint`]).
    pub fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        self.kv.checkpoint(dir)
    }
}

// ---- the day at a glance (crate::dayview) ----

impl Store {
    /// A tenant's checks with slot (or request) times in [from_ms, to_ms)
    /// at a glance ([`DayView`]): from memory after the first call for the
    /// tenant (one scan from two days before `from_ms`), by a scan for a
    /// range older than that.
    pub fn day_view(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        after: Option<&crate::dayview::RowAt>,
    ) -> Result<crate::DayView, StoreError> {
        let since = {
            let mut t = self.views.tenants.lock().unwrap_or_else(|e| e.into_inner());
            match t.get_mut(&tenant_id) {
                Some(v) => {
                    if from_ms <= v.latest.saturating_add(86_400_000) {
                        v.trim(from_ms.saturating_sub(crate::dayview::KEEP_BEFORE * 2));
                    }
                    Some(v.since)
                }
                None => None,
            }
        };
        let (counts, total, keys, next) = match since {
            Some(s) if from_ms >= s => self.read_view(tenant_id, from_ms, to_ms, limit, after),
            Some(_) => self
                .scan_view(tenant_id, from_ms, to_ms)?
                .read(from_ms, to_ms, limit, after),
            None => {
                let since = from_ms.saturating_sub(crate::dayview::KEEP_BEFORE);
                let _alone = self.views.gate.write().unwrap_or_else(|e| e.into_inner());
                // Another caller may have built it while this one waited.
                let built = self
                    .views
                    .tenants
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&tenant_id);
                if !built {
                    let v = self.scan_view(tenant_id, since, u64::MAX)?;
                    self.views
                        .tenants
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(tenant_id, v);
                }
                drop(_alone);
                self.read_view(tenant_id, from_ms, to_ms, limit, after)
            }
        };
        let mut waiting = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(c) = CheckId::from_key(&k)
                .map(|id| self.check(&id))
                .transpose()?
                .flatten()
            {
                waiting.push(c);
            }
        }
        Ok(crate::DayView {
            counts,
            total,
            waiting,
            next,
        })
    }

    fn read_view(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        after: Option<&crate::dayview::RowAt>,
    ) -> crate::dayview::ViewPage {
        let t = self.views.tenants.lock().unwrap_or_else(|e| e.into_inner());
        t.get(&tenant_id)
            .map(|v| v.read(from_ms, to_ms, limit, after))
            .unwrap_or_default()
    }

    /// A view of [from_ms, to_ms) built from the checks and tallies on disk.
    fn scan_view(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<crate::dayview::TenantView, StoreError> {
        let mut v = crate::dayview::TenantView::new(from_ms);
        let tenant = be(tenant_id);
        let start = [&tenant[..], &be(from_ms)].concat();
        let mut index = Vec::new();
        self.kv.scan(cf::TENANT_CHECKS, &start, &mut |k, _| {
            if !k.starts_with(&tenant) || k.len() != 8 + 8 + 17 {
                return false;
            }
            let at = u64::from_be_bytes(k[8..16].try_into().expect("8 bytes"));
            if at >= to_ms {
                return false;
            }
            index.push((at, k[16..].to_vec()));
            true
        })?;
        for (at, key) in index {
            if let Some(c) = CheckId::from_key(&key)
                .map(|id| self.check(&id))
                .transpose()?
                .flatten()
            {
                v.add(&Snap::of(&c, at));
            }
        }
        self.scan_tallies(tenant_id, from_ms, to_ms, &mut |at, o| v.add_tally(at, o))?;
        Ok(v)
    }
}
