//! genki-storage: the only crate that knows RocksDB.
//!
//! Tenants, API tokens (hashes only), subscribers, checks with their due
//! index and leases, attempts, outcomes, prompts, audit entries, and the
//! alert engine's records (watchers, ladders, cases, the outbox), in
//! column families named by constants ([`store::cf`]), with big-endian keys
//! and a format byte on every record ([`records`]). Every write is synced
//! before it returns.
//!
//! Dependency rule: knows nothing of SIP, RTP or HTTP; depends on rocksdb
//! and serde only. The engine reaches the database through [`Store`], the
//! seam where a shared-database backend can come later.

pub mod alerts;
pub mod records;
pub mod store;
pub mod vocab;

pub use alerts::{
    AlertCase, AlertInput, AlertWrite, CaseEvent, CaseOutcome, CaseState, Channel, Ladder,
    LadderOf, Notification, NotifyKind, NotifyState, Severity, Tier, Told, Watcher,
};
pub use records::{
    AlertRules, Attempt, Check, CheckId, CheckStatus, Outcome, RetryPolicy, Schedule, Subscriber,
    Tenant,
};
pub use store::{Next, Store};
pub use vocab::{Cause, CheckKind, DtmfTransport, EndReason, EventKind};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (path, permissions, lock held by another process).
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: String, reason: String },
    /// RocksDB reported an IO or corruption error.
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
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
}

#[cfg(test)]
mod golden_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant::with_defaults("matsudo", 1)
    }

    fn sub(tenant_id: u64) -> Subscriber {
        Subscriber {
            id: 0,
            tenant_id,
            name: "山田 花子".into(),
            phone: "sip:1001@127.0.0.1:5080".into(),
            schedule: Some(Schedule {
                days: vec![1, 2, 3, 4, 5],
                times: vec!["09:30".into()],
            }),
            paused_until: None,
            notes: String::new(),
            created_at_ms: 1,
        }
    }

    fn check(sub: &Subscriber, slot: u64) -> Check {
        Check::pending(
            CheckId::scheduled(sub.id, slot),
            sub.tenant_id,
            slot * 1000,
            1,
        )
    }

    #[test]
    fn tenants_tokens_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t = s.create_tenant(tenant()).unwrap();
        let t2 = s.create_tenant(tenant()).unwrap();
        assert_eq!((t.id, t2.id), (1, 2));
        assert_eq!(s.tenant(1).unwrap().unwrap().name, "matsudo");
        s.put_token(&[7; 32], t.id).unwrap();
        assert_eq!(s.token(&[7; 32]).unwrap(), Some(1));
        assert_eq!(s.token(&[8; 32]).unwrap(), None);
        let a = s.create_subscriber(sub(t.id)).unwrap();
        let many = s
            .create_subscribers(vec![sub(t.id), sub(t2.id), sub(t.id)])
            .unwrap();
        assert_eq!(many.iter().map(|x| x.id).collect::<Vec<_>>(), vec![2, 3, 4]);
        let next = s.create_subscriber(sub(t.id)).unwrap();
        assert_eq!(next.id, 5, "the sequence continues after a batch");
        let page = s.subscribers_of(t.id, 0, 2).unwrap();
        assert_eq!(page.iter().map(|x| x.id).collect::<Vec<_>>(), vec![1, 2]);
        let page = s.subscribers_of(t.id, 2, 10).unwrap();
        assert_eq!(page.iter().map(|x| x.id).collect::<Vec<_>>(), vec![4, 5]);
        s.delete_subscriber(&a).unwrap();
        assert!(s.subscriber(a.id).unwrap().is_none());
        assert_eq!(s.subscribers_of(t.id, 0, 10).unwrap().len(), 3);
    }

    #[test]
    fn due_scans_skip_claimed_checks_and_still_see_late_inserts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t = s.create_tenant(tenant()).unwrap();
        let p = s.create_subscriber(sub(t.id)).unwrap();
        let checks: Vec<Check> = (1..=50).map(|i| check(&p, 1000 + i)).collect();
        assert_eq!(s.create_checks(&checks).unwrap(), 50);
        assert_eq!(s.due(2_000_000, 100).unwrap().len(), 50);
        for c in &checks[..40] {
            s.claim(&c.id, "me", 9).unwrap().unwrap();
        }
        // The scan moves its floor past the claimed (deleted) entries…
        let left = s.due(2_000_000, 100).unwrap();
        assert_eq!(left.len(), 10);
        assert_eq!(left[0].id, checks[40].id);
        assert_eq!(s.next_due_ms().unwrap(), Some(1041 * 1000));
        // …and an entry inserted below the floor afterwards (a retry due in
        // the past, a one-off request) is still found.
        let early = s
            .finish_attempt(
                &checks[0].id,
                &Attempt {
                    n: 1,
                    ..Default::default()
                },
                Next::Retry {
                    due_at_ms: 5,
                    cause: Cause::Busy,
                },
                10,
            )
            .unwrap();
        assert_eq!(early.due_at_ms, 5);
        let due = s.due(2_000_000, 100).unwrap();
        assert_eq!(due.len(), 11);
        assert_eq!(due[0].id, checks[0].id);
        assert_eq!(s.next_due_ms().unwrap(), Some(5));
    }

    #[test]
    fn check_lifecycle_retry_then_final_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t = s.create_tenant(tenant()).unwrap();
        let p = s.create_subscriber(sub(t.id)).unwrap();
        let c = check(&p, 1000);
        assert!(s.create_check(&c).unwrap());
        assert!(
            !s.create_check(&c).unwrap(),
            "planning twice creates nothing"
        );
        assert!(s.due(999_999, 10).unwrap().is_empty());
        assert_eq!(s.next_due_ms().unwrap(), Some(1_000_000));
        assert_eq!(s.due(1_000_000, 10).unwrap().len(), 1);
        let claimed = s.claim(&c.id, "node-a", 2_000_000).unwrap().unwrap();
        assert_eq!(claimed.status, CheckStatus::Dialing);
        assert!(
            s.claim(&c.id, "node-b", 2_000_000).unwrap().is_none(),
            "one claim only"
        );
        assert!(s.due(u64::MAX, 10).unwrap().is_empty());
        assert_eq!(s.inflight().unwrap().len(), 1);
        let a1 = Attempt {
            n: 1,
            end_reason: EndReason::NoAnswer,
            ..Default::default()
        };
        let c1 = s
            .finish_attempt(
                &c.id,
                &a1,
                Next::Retry {
                    due_at_ms: 1_900_000,
                    cause: Cause::NoAnswer,
                },
                1_100_000,
            )
            .unwrap();
        assert_eq!(c1.status, CheckStatus::Pending);
        assert!(s.inflight().unwrap().is_empty());
        assert_eq!(s.due(u64::MAX, 10).unwrap()[0].due_at_ms, 1_900_000);
        s.claim(&c.id, "node-a", 3_000_000).unwrap().unwrap();
        let a2 = Attempt {
            n: 2,
            end_reason: EndReason::ScriptDone,
            digits: "1".into(),
            outcome: Some(Outcome::Fine),
            ..Default::default()
        };
        let done = s
            .finish_attempt(
                &c.id,
                &a2,
                Next::Final {
                    outcome: Outcome::Fine,
                    cause: None,
                },
                2_000_000,
            )
            .unwrap();
        assert_eq!(done.outcome, Some(Outcome::Fine));
        // A late second final (e.g. a stale owner) does not change the outcome.
        let a3 = Attempt {
            n: 3,
            end_reason: EndReason::Hangup,
            ..Default::default()
        };
        let still = s
            .finish_attempt(
                &c.id,
                &a3,
                Next::Final {
                    outcome: Outcome::Missed,
                    cause: None,
                },
                2_100_000,
            )
            .unwrap();
        assert_eq!(still.outcome, Some(Outcome::Fine));
        assert_eq!(s.attempts(&c.id).unwrap().len(), 3);
        let outs = s.outcomes(t.id, 0, u64::MAX, 100).unwrap();
        assert_eq!(outs.len(), 1, "exactly one outcome row");
        assert!(s
            .outcomes(t.id, 2_000_001, u64::MAX, 100)
            .unwrap()
            .is_empty());
        assert_eq!(s.checks_of(t.id, 0, u64::MAX, 100).unwrap().len(), 1);
    }

    #[test]
    fn survives_reopen_and_keeps_prompts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let t = s.create_tenant(tenant()).unwrap();
            let p = s.create_subscriber(sub(t.id)).unwrap();
            s.create_check(&check(&p, 5)).unwrap();
            s.claim(&CheckId::scheduled(p.id, 5), "me", 10).unwrap();
            s.put_prompt(t.id, "greeting", b"RIFF").unwrap();
            s.audit(t.id, 1, &serde_json::json!({"did": "x"})).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.inflight().unwrap().len(),
            1,
            "in-flight checks are found after a restart"
        );
        assert_eq!(s.prompt(1, "greeting").unwrap().unwrap(), b"RIFF");
        assert_eq!(s.prompt_names(1).unwrap(), vec!["greeting".to_string()]);
        assert_eq!(
            s.create_tenant(tenant()).unwrap().id,
            2,
            "sequences survive"
        );
    }

    #[test]
    fn open_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("cannot open the database"), "{e}");
    }
}
