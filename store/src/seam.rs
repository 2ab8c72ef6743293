//! The storage seam as traits: what genki asks of any storage engine,
//! named by what it means. [`CheckLog`] is the check lifecycle (planning
//! is idempotent; a claim takes a Pending check with an owner and a lease;
//! finishing an attempt records it and either re-queues the check or ends
//! it once: the first outcome wins; a Pending check can be settled without
//! a call; claimed checks survive a crash). [`AlertLog`] is the alert
//! invariants (a final outcome's alert input is stored with the outcome;
//! one commit applies a case, its timer, its outbox changes and the inbox
//! entry it consumed, together or not at all). [`Directory`] is the rest:
//! tenants, tokens, people, prompts, audit, watchers and ladders, and
//! the console's staff and sessions.
//!
//! [`crate::Store`] (the lifecycle written once over a [`crate::Kv`]
//! engine: RocksDB, or memory) implements all three; a shared-database
//! engine would implement them itself. Either way
//! [`crate::conformance`] is the contract: it runs against `dyn Storage`.
//!
//! Depends on: [`crate::store`], [`crate::records`], [`crate::alerts`], [`crate::staff`].

use crate::alerts::{AlertCase, AlertInput, AlertWrite, Ladder, LadderOf, Notification, Watcher};
use crate::records::{Attempt, Check, CheckId, Outcome, Subscriber, Tenant};
use crate::staff::{Session, Staff};
use crate::{Next, Store, StoreError};

/// Declares a trait and implements it for [`Store`] by its inherent
/// methods of the same names (so code holding a `Store` needs no import).
macro_rules! seam {
    ($(#[$doc:meta])* pub trait $tr:ident {
        $($(#[$mdoc:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty;)*
    }) => {
        $(#[$doc])*
        pub trait $tr: Send + Sync {
            $($(#[$mdoc])* fn $name(&self $(, $arg: $ty)*) -> $ret;)*
        }
        impl $tr for Store {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret { Store::$name(self $(, $arg)*) })*
        }
    };
}

seam! {
    /// The check lifecycle.
    pub trait CheckLog {
        /// Create Pending checks, skipping ids that exist; how many were new.
        fn create_checks(&self, checks: &[Check]) -> Result<u64, StoreError>;
        /// [`CheckLog::create_checks`] for the planner, which may be
        /// durable only once [`CheckLog::sync`] returns: planning is
        /// idempotent (a check's id is its person and slot), so what a
        /// crash loses before then, planning again re-creates identically.
        fn plan_checks(&self, checks: &[Check]) -> Result<u64, StoreError>;
        /// Make every write so far durable.
        fn sync(&self) -> Result<(), StoreError>;
        /// Create one Pending check unless its id exists (planning twice creates nothing).
        fn create_check(&self, c: &Check) -> Result<bool, StoreError>;
        fn check(&self, id: &CheckId) -> Result<Option<Check>, StoreError>;
        /// Pending checks due at or before `now_ms`, oldest first.
        fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<Check>, StoreError>;
        /// When the earliest Pending check is due.
        fn next_due_ms(&self) -> Result<Option<u64>, StoreError>;
        /// Take a Pending check for dialling (owner, lease); None if anyone
        /// else has it or it is done: each check goes to one owner.
        fn claim(&self, id: &CheckId, owner: &str, lease_until_ms: u64) -> Result<Option<Check>, StoreError>;
        /// Record an attempt and the check's next step in one durable
        /// write; a Done check keeps its outcome (the first one wins).
        fn finish_attempt(&self, id: &CheckId, attempt: &Attempt, next: Next, now_ms: u64) -> Result<Check, StoreError>;
        /// Move a Pending check without a call; None if it is not Pending.
        fn settle_pending(&self, id: &CheckId, next: Next, now_ms: u64) -> Result<Option<Check>, StoreError>;
        /// Checks claimed and not finished (after a crash: to recover).
        fn inflight(&self) -> Result<Vec<Check>, StoreError>;
        /// Extend the leases of `owner`'s claims on `ids` (its calls in
        /// progress) to `lease_ms` from now, so only a dead node's claims,
        /// or one no call holds any more, run out; how many. A shared
        /// database times it by its own clock.
        fn renew_leases(&self, owner: &str, ids: &[CheckId], now_ms: u64, lease_ms: u64) -> Result<u64, StoreError>;
        /// Claimed checks whose lease has run out (by the database's
        /// clock where it has one, else `now_ms`), at most `limit`: their
        /// owner is gone, and whoever finishes them now takes them over.
        fn expired_claims(&self, now_ms: u64, limit: usize) -> Result<Vec<Check>, StoreError>;
        fn attempts(&self, id: &CheckId) -> Result<Vec<Attempt>, StoreError>;
        /// Final outcomes of a tenant finished in [from, to), in time order
        /// then check id; with `after`, those finished at `from_ms` with a
        /// check id up to `after` are left out (the next page).
        fn outcomes(&self, tenant_id: u64, from_ms: u64, to_ms: u64, limit: usize, after: Option<&CheckId>) -> Result<Vec<Check>, StoreError>;
        /// A tenant's checks by slot time in [from, to).
        fn checks_of(&self, tenant_id: u64, from_ms: u64, to_ms: u64, limit: usize) -> Result<Vec<Check>, StoreError>;
        /// A person's checks by slot (or request) time in [from, to), oldest first.
        fn checks_of_subscriber(&self, subscriber_id: u64, from_ms: u64, to_ms: u64) -> Result<Vec<Check>, StoreError>;
        /// A tenant's checks of [from, to) at a glance: counts by state and
        /// the first `limit` not yet fine after `after` (None: from the
        /// first) in the order to look at them (the console's Today page,
        /// the API's summary).
        fn day_view(&self, tenant_id: u64, from_ms: u64, to_ms: u64, limit: usize, after: Option<&crate::RowAt>) -> Result<crate::DayView, StoreError>;
        /// One-off checks of a person requested at or after `from_ms`.
        fn one_offs_since(&self, subscriber_id: u64, from_ms: u64) -> Result<u64, StoreError>;
    }
}

seam! {
    /// The alert invariants: the inbox, case timers and the outbox.
    pub trait AlertLog {
        /// Final outcomes not yet applied by the alert engine.
        fn alert_inbox(&self, limit: usize) -> Result<Vec<AlertInput>, StoreError>;
        fn due_case_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<u64>, StoreError>;
        fn due_notifications(&self, now_ms: u64, limit: usize) -> Result<Vec<Notification>, StoreError>;
        /// When the alert engine next has work (0: now).
        fn next_alert_work_ms(&self) -> Result<Option<u64>, StoreError>;
        /// Make notifications that were being sent at a crash due again.
        fn recover_notifications(&self, now_ms: u64) -> Result<usize, StoreError>;
        fn open_case_count(&self) -> Result<u64, StoreError>;
        fn alert_case(&self, id: u64) -> Result<Option<AlertCase>, StoreError>;
        /// The person's one open case.
        fn open_case_of(&self, subscriber_id: u64) -> Result<Option<AlertCase>, StoreError>;
        fn cases_of(&self, tenant_id: u64, after: u64, limit: usize) -> Result<Vec<AlertCase>, StoreError>;
        fn notification(&self, id: u64) -> Result<Option<Notification>, StoreError>;
        fn notifications_of(&self, case_id: u64) -> Result<Vec<Notification>, StoreError>;
        /// Apply one step of the alert engine, all of it or nothing.
        fn alert_commit(&self, w: AlertWrite) -> Result<(Option<AlertCase>, Vec<Notification>), StoreError>;
    }
}

seam! {
    /// Tenants, tokens, people, prompts, audit, watchers and ladders.
    pub trait Directory {
        fn create_tenant(&self, t: Tenant) -> Result<Tenant, StoreError>;
        fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError>;
        fn tenant(&self, id: u64) -> Result<Option<Tenant>, StoreError>;
        fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
        fn put_token(&self, hash: &[u8; 32], tenant_id: u64) -> Result<(), StoreError>;
        fn token(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError>;
        /// The hashes of a tenant's tokens.
        fn tokens_of(&self, tenant_id: u64) -> Result<Vec<[u8; 32]>, StoreError>;
        /// Revoke a token.
        fn delete_token(&self, hash: &[u8; 32]) -> Result<(), StoreError>;
        fn create_subscriber(&self, s: Subscriber) -> Result<Subscriber, StoreError>;
        fn create_subscribers(&self, subs: Vec<Subscriber>) -> Result<Vec<Subscriber>, StoreError>;
        fn put_subscriber(&self, s: &Subscriber) -> Result<(), StoreError>;
        fn subscriber(&self, id: u64) -> Result<Option<Subscriber>, StoreError>;
        fn delete_subscriber(&self, s: &Subscriber) -> Result<(), StoreError>;
        /// Erase a person and everything about them; anonymous counts stay.
        fn erase_subscriber(&self, s: &Subscriber) -> Result<crate::Erased, StoreError>;
        /// Retention: forget up to `max` checks finished before `before_ms` (and resolved cases).
        fn prune(&self, tenant_id: u64, before_ms: u64, max: usize) -> Result<crate::Pruned, StoreError>;
        /// Anonymous counts of erased checks with slot times in `from_ms..to_ms`.
        fn tallies_of(&self, tenant_id: u64, from_ms: u64, to_ms: u64) -> Result<Vec<Outcome>, StoreError>;
        fn subscribers_of(&self, tenant_id: u64, after: u64, limit: usize) -> Result<Vec<Subscriber>, StoreError>;
        /// Every tenant's people in id order after `after` (the planner's one pass).
        fn subscribers_after(&self, after: u64, limit: usize) -> Result<Vec<Subscriber>, StoreError>;
        /// Writes of tenants and people through this process since it
        /// started: the planner skips a re-plan when neither this nor the
        /// days to plan changed (a write through another node is planned
        /// by that node's planner).
        fn directory_changes(&self) -> u64;
        fn put_prompt(&self, tenant_id: u64, name: &str, wav: &[u8]) -> Result<(), StoreError>;
        fn prompt(&self, tenant_id: u64, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
        fn prompt_names(&self, tenant_id: u64) -> Result<Vec<String>, StoreError>;
        fn audit(&self, tenant_id: u64, at_ms: u64, entry: &serde_json::Value) -> Result<(), StoreError>;
        /// A tenant's audit entries from (at_ms, sequence) on: (at_ms, sequence, entry).
        fn audit_of(&self, tenant_id: u64, from: (u64, u64), limit: usize) -> Result<Vec<(u64, u64, serde_json::Value)>, StoreError>;
        fn put_watcher(&self, w: Watcher) -> Result<Watcher, StoreError>;
        fn watcher(&self, id: u64) -> Result<Option<Watcher>, StoreError>;
        fn watchers_of(&self, tenant_id: u64) -> Result<Vec<Watcher>, StoreError>;
        fn delete_watcher(&self, w: &Watcher) -> Result<(), StoreError>;
        fn put_ladder(&self, of: LadderOf, l: &Ladder) -> Result<(), StoreError>;
        fn ladder(&self, of: LadderOf) -> Result<Option<Ladder>, StoreError>;
        fn delete_ladder(&self, of: LadderOf) -> Result<(), StoreError>;
        /// Add a console user; `StoreError::Exists` when the login is taken.
        fn create_staff(&self, s: Staff) -> Result<Staff, StoreError>;
        fn put_staff(&self, s: &Staff) -> Result<(), StoreError>;
        /// Change a staff member's record as it is now, atomically; None if gone.
        fn update_staff(&self, id: u64, change: &dyn Fn(&mut Staff)) -> Result<Option<Staff>, StoreError>;
        fn staff(&self, id: u64) -> Result<Option<Staff>, StoreError>;
        fn staff_by_login(&self, login: &str) -> Result<Option<Staff>, StoreError>;
        /// A tenant's console users (0: the operator's).
        fn staff_of(&self, tenant_id: u64) -> Result<Vec<Staff>, StoreError>;
        fn delete_staff(&self, s: &Staff) -> Result<(), StoreError>;
        /// A console session by the hash of its cookie's token.
        fn put_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError>;
        fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>, StoreError>;
        fn delete_session(&self, hash: &[u8; 32]) -> Result<(), StoreError>;
        /// Forget sessions that ended before `now_ms`; how many.
        fn prune_sessions(&self, now_ms: u64) -> Result<usize, StoreError>;
        /// Hold (or take, once free or run out) the lease on a role only
        /// one node plays at a time (`"alerts"`: the alert engine), for
        /// `lease_ms`; whether `owner` holds it now. One process alone on
        /// its database always does.
        fn lead(&self, role: &str, owner: &str, lease_ms: u64) -> Result<bool, StoreError>;
        /// This node's share of the trunk's `limit` ([`crate::budget`]),
        /// renewed for `lease_ms` with `active` calls up; a dead node's
        /// calls count against the others for `hold_ms` after its lease.
        /// One process alone on its database holds the whole trunk.
        fn trunk_share(&self, owner: &str, limit: crate::budget::Share, active: u32, lease_ms: u64, hold_ms: u64) -> Result<crate::budget::Share, StoreError>;
        /// Make everything cheap to reopen (a clean shutdown).
        fn flush(&self) -> Result<(), StoreError>;
        /// A consistent copy of the database in `dir` (a backup).
        fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError>;
        /// False while writes fail (from a failed write until one succeeds).
        fn writes_ok(&self) -> bool;
        /// Writes that failed since the start.
        fn write_failures(&self) -> u64;
        /// One small synced write, to find out whether writes work again.
        fn probe_write(&self) -> Result<(), StoreError>;
        /// Undecodable records moved aside since the start.
        fn quarantined(&self) -> u64;
    }
}

/// Everything genki asks of a storage engine.
pub trait Storage: CheckLog + AlertLog + Directory {}

impl<T: CheckLog + AlertLog + Directory> Storage for T {}
