//! genki-store: genki's records and the storage seam, with no database
//! dependency.
//!
//! Tenants, API tokens (hashes only), subscribers, checks with their due
//! index and leases, attempts, outcomes, prompts, audit entries, and the
//! alert engine's records (watchers, ladders, cases, the outbox), the
//! console's staff and sessions ([`staff`]), in
//! column families named by constants ([`store::cf`]), with big-endian keys
//! and a format byte on every record ([`records`]); their vocabulary
//! ([`vocab`]). The seam is named by [`seam`]'s traits; [`Store`] writes the check lifecycle (claim with owner and
//! lease, finish an attempt, settle a pending check, first outcome wins)
//! and the alert invariants (the inbox written with the outcome, the
//! outbox commit) once, over a [`kv::Kv`] engine: RocksDB in genki-storage,
//! [`kv::MemKv`] here. [`conformance`] is the one suite every engine must
//! pass (a later shared-database engine included).
//!
//! Dependency rule: knows nothing of SIP, RTP, HTTP or any database;
//! depends on serde only.

pub mod alerts;
pub mod budget;
pub mod conformance;
pub mod dayview;
pub mod kv;
pub mod records;
pub mod seam;
pub mod staff;
pub mod store;
pub mod vocab;

pub use alerts::{
    AlertCase, AlertInput, AlertWrite, CaseEvent, CaseOutcome, CaseState, Channel, Ladder,
    LadderOf, Notification, NotifyKind, NotifyState, Severity, Tier, Told, Watcher,
};
pub use dayview::{DayView, RowAt};
pub use kv::{FaultyKv, Kv, MemKv};
pub use records::{
    AlertRules, Attempt, Check, CheckId, CheckStatus, HeardTone, Hearing, Outcome, RetryPolicy,
    Schedule, SpokePolicy, Subscriber, Tenant,
};
pub use seam::{AlertLog, CheckLog, Directory, Storage};
pub use staff::{Session, Staff, StaffRole};
pub use store::{Erased, Next, Pruned, Store};
pub use vocab::{AnsweredBy, Cause, CheckKind, DtmfTransport, EndReason, EventKind, WatcherAnswer};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (path, permissions, lock held by another process).
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: String, reason: String },
    /// The engine reported an IO or corruption error.
    #[error("database error: {0}")]
    Db(String),
    /// A column family this release needs is missing.
    #[error("column family {0} is missing")]
    MissingColumnFamily(&'static str),
    /// A record could not be decoded.
    #[error("corrupt record in {cf}: {reason}")]
    Corrupt { cf: &'static str, reason: String },
    /// A record written by a newer release.
    #[error("record in {cf} has unknown format {format}")]
    UnknownFormat { cf: &'static str, format: u8 },
    /// The record an operation needs does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The engine cannot do this.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A record with this unique name exists (a staff login).
    #[error("{0} already exists")]
    Exists(&'static str),
    /// The records are in use (e.g. a call to the person is in progress).
    #[error("{0}")]
    Busy(&'static str),
    /// The record changed since the caller read it (another node wrote
    /// it meanwhile): read it again and retry.
    #[error("{0}")]
    Conflict(&'static str),
    /// A late write of a node whose claim ended: its lease ran out and
    /// the check was taken over (or finished) by another node, so the
    /// write is refused and the other node's record stands (the shared
    /// database's fence against a paused or partitioned node).
    #[error(
        "check {0}: this node's claim ended (lease expired and taken over); late write refused"
    )]
    Fenced(String),
}

#[cfg(test)]
mod golden_tests;

#[cfg(test)]
mod tests {
    use crate::conformance::{self, Backend};
    use crate::{MemKv, Storage, Store};
    use std::sync::Arc;

    /// The in-memory engine: every open sees the same data (a crash is
    /// dropping the store and opening another on it).
    struct Memory(Arc<MemKv>);

    impl Backend for Memory {
        fn open(&self) -> Box<dyn Storage> {
            Box::new(Store::new(self.0.clone()))
        }
    }

    /// Counts which writes wait for the disk.
    #[derive(Default)]
    struct Syncs {
        inner: MemKv,
        synced: std::sync::atomic::AtomicU32,
        lazy: std::sync::atomic::AtomicU32,
    }

    impl crate::Kv for Syncs {
        fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, crate::StoreError> {
            self.inner.get(cf, key)
        }
        fn write(&self, batch: crate::kv::Batch) -> Result<(), crate::StoreError> {
            self.synced
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.write(batch)
        }
        fn write_lazy(&self, batch: crate::kv::Batch) -> Result<(), crate::StoreError> {
            self.lazy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.write(batch)
        }
        fn scan(
            &self,
            cf: &'static str,
            from: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), crate::StoreError> {
            self.inner.scan(cf, from, visit)
        }
    }

    impl Syncs {
        /// (synced, lazy) writes since the last call.
        fn take(&self) -> (u32, u32) {
            use std::sync::atomic::Ordering::SeqCst;
            (self.synced.swap(0, SeqCst), self.lazy.swap(0, SeqCst))
        }
    }

    /// A call's path writes lazily only what a power cut may lose: the
    /// claim (the check is due again), the end details of an attempt whose
    /// outcome is stored, an alert input with nothing to do. The outcome,
    /// and anything a watcher is told, always waits for the disk.
    #[test]
    fn only_what_a_power_cut_may_lose_is_written_lazily() {
        use crate::{Attempt, Check, CheckId, EndReason, Next, Outcome, Tenant};
        let kv = Arc::new(Syncs::default());
        let s = Store::new(kv.clone());
        let t = s.create_tenant(Tenant::with_defaults("t", 1)).unwrap();
        let p = s.create_subscriber(crate::conformance::sub(t.id)).unwrap();
        let checks: Vec<Check> = (1..=2)
            .map(|i| Check::pending(CheckId::one_off(p.id, i), t.id, i, 1))
            .collect();
        for c in &checks {
            s.create_check(c).unwrap();
        }
        kv.take();
        let (fine, missed) = (&checks[0], &checks[1]);
        s.claim(&fine.id, "me", 60_000).unwrap().unwrap();
        assert_eq!(kv.take(), (0, 1), "a claim is lazy");
        let attempt = Attempt {
            n: 1,
            outcome: Some(Outcome::Fine),
            ..Default::default()
        };
        let final_fine = || Next::Final {
            outcome: Outcome::Fine,
            cause: None,
        };
        let done = s
            .finish_attempt(&fine.id, &attempt, final_fine(), 10)
            .unwrap();
        assert_eq!(done.outcome, Some(Outcome::Fine));
        assert_eq!(kv.take(), (1, 0), "the outcome waits for the disk");
        let ended = Attempt {
            end_reason: EndReason::ScriptDone,
            ..attempt.clone()
        };
        s.finish_attempt(&fine.id, &ended, final_fine(), 20)
            .unwrap();
        assert_eq!(
            kv.take(),
            (0, 1),
            "the end details after the outcome are lazy"
        );
        assert_eq!(
            s.attempts(&fine.id).unwrap()[0].end_reason,
            EndReason::ScriptDone
        );
        // The alert engine consumes the fine outcome with nothing to do.
        let input = s.alert_inbox(10).unwrap().pop().unwrap();
        s.alert_commit(crate::AlertWrite {
            inbox_done: Some(input.check_id),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(kv.take(), (0, 1), "an input with nothing to do is lazy");
        assert!(s.alert_inbox(10).unwrap().is_empty());
        // A case opened is written synced.
        s.claim(&missed.id, "me", 60_000).unwrap().unwrap();
        let missed_done = s
            .finish_attempt(
                &missed.id,
                &Attempt {
                    n: 1,
                    ..Default::default()
                },
                Next::Final {
                    outcome: Outcome::Missed,
                    cause: None,
                },
                30,
            )
            .unwrap();
        assert_eq!(missed_done.outcome, Some(Outcome::Missed));
        kv.take();
        let case = crate::AlertCase::open(t.id, p.id, 30);
        s.alert_commit(crate::AlertWrite {
            case: Some(case),
            notifications: Vec::new(),
            inbox_done: Some(missed.id),
        })
        .unwrap();
        assert_eq!(kv.take(), (1, 0), "a case is written synced");
    }

    #[test]
    fn memory_engine_passes_the_conformance_suite() {
        conformance::run_all(&|| Box::new(Memory(Arc::new(MemKv::new()))));
    }

    /// A write the engine refuses changes nothing, and the store says so
    /// until a write succeeds again.
    #[test]
    fn a_refused_write_changes_nothing_and_is_reported_until_one_succeeds() {
        let kv = Arc::new(crate::FaultyKv::new());
        let s = Store::new(kv.clone());
        let t = s
            .create_tenant(crate::Tenant::with_defaults("t", 0))
            .unwrap();
        assert!(s.writes_ok());
        kv.set_failing(true);
        assert!(s
            .create_tenant(crate::Tenant::with_defaults("u", 0))
            .is_err());
        assert!(!s.writes_ok());
        assert_eq!(s.write_failures(), 1);
        assert_eq!(s.tenants().unwrap().len(), 1, "nothing half-written");
        assert!(s.probe_write().is_err());
        kv.set_failing(false);
        s.probe_write().unwrap();
        assert!(s.writes_ok());
        assert_eq!(s.tenant(t.id).unwrap().unwrap().name, "t");
    }

    /// Undecodable bytes in a tenant, a due check and an alert input (the
    /// index entry of a check, too): each is moved aside and counted, and
    /// every other tenant, check and input is still read.
    #[test]
    fn poison_records_are_quarantined_and_the_rest_is_read() {
        use crate::kv::{Batch, Kv};
        use crate::store::cf;
        use crate::{Check, CheckId, Next, Outcome, Tenant};
        let kv = Arc::new(MemKv::new());
        let s = Store::new(kv.clone());
        let good = s.create_tenant(Tenant::with_defaults("good", 0)).unwrap();
        let ok = CheckId::one_off(1, 5);
        let bad = CheckId::one_off(2, 5);
        s.create_check(&Check::pending(ok, good.id, 5, 5)).unwrap();
        s.create_check(&Check::pending(bad, good.id, 5, 5)).unwrap();
        let done = CheckId::one_off(3, 5);
        s.create_check(&Check::pending(done, good.id, 5, 5))
            .unwrap();
        s.settle_pending(
            &done,
            Next::Final {
                outcome: Outcome::Missed,
                cause: None,
            },
            6,
        )
        .unwrap();
        let mut b = Batch::default();
        b.put(cf::TENANTS, 99u64.to_be_bytes(), b"\x01{not json");
        b.put(cf::CHECKS, bad.key(), [9u8, 1, 2]); // a format from the future
        b.put(cf::ALERT_INBOX, CheckId::one_off(4, 5).key(), b"\x01[]");
        b.put(cf::DUE, [0u8; 3], b""); // a malformed index key
        kv.write(b).unwrap();
        assert_eq!(
            s.tenants().unwrap().len(),
            1,
            "the good tenant is still planned"
        );
        let due = s.due(u64::MAX, 10).unwrap();
        assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ok]);
        assert_eq!(
            s.alert_inbox(10).unwrap().len(),
            1,
            "the good input is still applied"
        );
        assert_eq!(s.quarantined(), 3);
        assert!(
            s.due(u64::MAX, 10).unwrap().len() == 1,
            "and stays out of the way"
        );
        let mut kept = 0;
        kv.scan(cf::QUARANTINE, &[], &mut |_, _| {
            kept += 1;
            true
        })
        .unwrap();
        assert_eq!(kept, 3, "nothing is lost: the bytes are kept aside");
    }

    /// The due-floor race, made deterministic: a check inserted (due
    /// below the floor) between a scan's generation check and its raise of
    /// the floor is still dispatched, without a restart.
    #[test]
    fn an_insert_racing_the_floor_raise_is_still_found() {
        use crate::{Check, CheckId};
        use std::sync::Barrier;
        let s = Arc::new(Store::in_memory());
        let late = CheckId::one_off(1, 1000);
        s.create_check(&Check::pending(late, 1, 1000, 0)).unwrap();
        let paused = Arc::new(Barrier::new(2));
        let resume = Arc::new(Barrier::new(2));
        let (p, r) = (paused.clone(), resume.clone());
        *s.raise_hook.lock().unwrap() = Some(Arc::new(move || {
            p.wait();
            r.wait();
        }));
        // A scan at 500 finds nothing due and raises the floor to 1000…
        let scanner = {
            let s = s.clone();
            std::thread::spawn(move || s.due(500, 10).unwrap())
        };
        paused.wait();
        // …while a check due at 10 is inserted between its check and its raise.
        *s.raise_hook.lock().unwrap() = None;
        let early = CheckId::one_off(2, 10);
        s.create_check(&Check::pending(early, 1, 10, 0)).unwrap();
        resume.wait();
        assert!(scanner.join().unwrap().is_empty());
        let due: Vec<CheckId> = s.due(u64::MAX, 10).unwrap().iter().map(|c| c.id).collect();
        assert_eq!(
            due,
            vec![early, late],
            "the early check is not hidden below the floor"
        );
    }
}
