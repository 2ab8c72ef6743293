//! The conformance suite: the check lifecycle and alert invariants that
//! every storage engine must keep, as plain functions over a [`Backend`]
//! so that each engine's crate runs the same suite unchanged (the
//! in-memory engine here, RocksDB in genki-storage, a shared database
//! later).
//!
//! Depends on: [`crate::store`], [`crate::alerts`], [`crate::records`].

use crate::alerts::{
    AlertCase, AlertWrite, CaseState, Channel, Ladder, LadderOf, Notification, NotifyKind,
    NotifyState, Tier, Watcher,
};
use crate::records::{Attempt, Check, CheckId, CheckStatus, Outcome, Schedule, Subscriber, Tenant};
use crate::seam::Storage;
use crate::vocab::{Cause, EndReason};
use crate::Next;

/// An engine under test: every [`Backend::open`] opens the same data, as
/// a restarted process would (the previous store is dropped first).
pub trait Backend {
    fn open(&self) -> Box<dyn Storage>;
}

/// One case of the suite.
pub type Case = fn(&dyn Backend);

/// Run every case, each on a fresh backend from `fresh`.
pub fn run_all(fresh: &dyn Fn() -> Box<dyn Backend>) {
    let cases: &[(&str, Case)] = &[
        ("tenants_tokens_subscribers", tenants_tokens_subscribers),
        (
            "due_scans_skip_claimed_checks_and_still_see_late_inserts",
            due_scans_skip_claimed_checks_and_still_see_late_inserts,
        ),
        (
            "check_lifecycle_retry_then_final_once",
            check_lifecycle_retry_then_final_once,
        ),
        (
            "survives_reopen_and_keeps_prompts",
            survives_reopen_and_keeps_prompts,
        ),
        (
            "a_final_outcome_lands_in_the_alert_inbox_in_the_same_batch",
            a_final_outcome_lands_in_the_alert_inbox_in_the_same_batch,
        ),
        (
            "notifications_move_in_the_outbox_and_cases_close",
            notifications_move_in_the_outbox_and_cases_close,
        ),
        ("watchers_and_ladders", watchers_and_ladders),
        ("a_persons_history_is_theirs", a_persons_history_is_theirs),
        (
            "a_day_at_a_glance_follows_every_change",
            a_day_at_a_glance_follows_every_change,
        ),
        (
            "staff_logins_are_unique_and_sessions_end",
            staff_logins_are_unique_and_sessions_end,
        ),
        (
            "concurrent_claims_give_a_check_to_one_owner",
            concurrent_claims_give_a_check_to_one_owner,
        ),
        (
            "a_crash_mid_call_leaves_the_check_in_flight_for_recovery",
            a_crash_mid_call_leaves_the_check_in_flight_for_recovery,
        ),
        (
            "settling_a_claimed_check_changes_nothing",
            settling_a_claimed_check_changes_nothing,
        ),
        (
            "erasing_a_person_leaves_counts_and_nothing_of_them",
            erasing_a_person_leaves_counts_and_nothing_of_them,
        ),
        (
            "retention_forgets_old_checks_and_keeps_counts",
            retention_forgets_old_checks_and_keeps_counts,
        ),
        (
            "leases_are_renewed_and_a_dead_owners_run_out",
            leases_are_renewed_and_a_dead_owners_run_out,
        ),
    ];
    for (name, case) in cases {
        eprintln!("conformance: {name}");
        case(fresh().as_ref());
    }
}

fn tenant() -> Tenant {
    Tenant::with_defaults("matsudo", 1)
}

pub(crate) fn sub(tenant_id: u64) -> Subscriber {
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

pub fn tenants_tokens_subscribers(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(tenant()).unwrap();
    let t2 = s.create_tenant(tenant()).unwrap();
    assert_eq!((t.id, t2.id), (1, 2));
    assert_eq!(s.tenant(1).unwrap().unwrap().name, "matsudo");
    s.put_token(&[7; 32], t.id).unwrap();
    assert_eq!(s.token(&[7; 32]).unwrap(), Some(1));
    assert_eq!(s.token(&[8; 32]).unwrap(), None);
    s.put_token(&[9; 32], t.id).unwrap();
    s.put_token(&[10; 32], t2.id).unwrap();
    assert_eq!(s.tokens_of(t.id).unwrap(), vec![[7; 32], [9; 32]]);
    s.delete_token(&[7; 32]).unwrap();
    assert_eq!(s.token(&[7; 32]).unwrap(), None, "revoked");
    assert_eq!(s.tokens_of(t.id).unwrap(), vec![[9; 32]]);
    assert_eq!(s.tokens_of(t2.id).unwrap(), vec![[10; 32]]);
    let a = s.create_subscriber(sub(t.id)).unwrap();
    let many = s
        .create_subscribers(vec![sub(t.id), sub(t2.id), sub(t.id)])
        .unwrap();
    assert_eq!(many.iter().map(|x| x.id).collect::<Vec<_>>(), vec![2, 3, 4]);
    let next = s.create_subscriber(sub(t.id)).unwrap();
    assert_eq!(next.id, 5, "the sequence continues after a batch");
    // One-off checks are counted per person from a time on; scheduled
    // ones and other people's are not.
    for at in [100, 200, 300] {
        s.create_check(&Check::pending(CheckId::one_off(a.id, at), t.id, at, at))
            .unwrap();
    }
    s.create_check(&check(&a, 400)).unwrap();
    s.create_check(&Check::pending(
        CheckId::one_off(next.id, 250),
        t.id,
        250,
        250,
    ))
    .unwrap();
    assert_eq!(s.one_offs_since(a.id, 0).unwrap(), 3);
    assert_eq!(s.one_offs_since(a.id, 200).unwrap(), 2);
    assert_eq!(s.one_offs_since(a.id, 301).unwrap(), 0);
    let page = s.subscribers_of(t.id, 0, 2).unwrap();
    assert_eq!(page.iter().map(|x| x.id).collect::<Vec<_>>(), vec![1, 2]);
    let page = s.subscribers_of(t.id, 2, 10).unwrap();
    assert_eq!(page.iter().map(|x| x.id).collect::<Vec<_>>(), vec![4, 5]);
    s.delete_subscriber(&a).unwrap();
    assert!(s.subscriber(a.id).unwrap().is_none());
    assert_eq!(s.subscribers_of(t.id, 0, 10).unwrap().len(), 3);
}

pub fn due_scans_skip_claimed_checks_and_still_see_late_inserts(b: &dyn Backend) {
    let s = b.open();
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

pub fn check_lifecycle_retry_then_final_once(b: &dyn Backend) {
    let s = b.open();
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
    let outs = s.outcomes(t.id, 0, u64::MAX, 100, None).unwrap();
    assert_eq!(outs.len(), 1, "exactly one outcome row");
    assert!(s
        .outcomes(t.id, 2_000_001, u64::MAX, 100, None)
        .unwrap()
        .is_empty());
    assert_eq!(s.checks_of(t.id, 0, u64::MAX, 100).unwrap().len(), 1);
}

pub fn survives_reopen_and_keeps_prompts(b: &dyn Backend) {
    {
        let s = b.open();
        let t = s.create_tenant(tenant()).unwrap();
        let p = s.create_subscriber(sub(t.id)).unwrap();
        s.create_check(&check(&p, 5)).unwrap();
        s.claim(&CheckId::scheduled(p.id, 5), "me", 10).unwrap();
        s.put_prompt(t.id, "greeting", b"RIFF").unwrap();
        s.audit(t.id, 1, &serde_json::json!({"did": "x"})).unwrap();
    }
    let s = b.open();
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

fn case(sub: u64) -> AlertCase {
    AlertCase {
        tier_deadline_ms: Some(5000),
        ..AlertCase::open(1, sub, 10)
    }
}

fn notif(at: u64) -> Notification {
    Notification {
        id: 0,
        case_id: 0,
        tenant_id: 1,
        watcher_id: 1,
        channel: Channel::Webhook,
        kind: NotifyKind::Alert,
        tier: 0,
        state: NotifyState::Pending,
        tries: 0,
        next_at_ms: at,
        sending_until_ms: None,
        last_error: None,
        response: None,
        created_at_ms: 10,
        updated_at_ms: 10,
    }
}

pub fn a_final_outcome_lands_in_the_alert_inbox_in_the_same_batch(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(Tenant::with_defaults("t", 1)).unwrap();
    let sub = s
        .create_subscriber(Subscriber {
            id: 0,
            tenant_id: t.id,
            name: "a".into(),
            phone: "sip:1@127.0.0.1".into(),
            schedule: None,
            paused_until: None,
            notes: String::new(),
            created_at_ms: 1,
        })
        .unwrap();
    let id = CheckId::one_off(sub.id, 100);
    s.create_check(&Check::pending(id, t.id, 100, 100)).unwrap();
    assert!(s.alert_inbox(10).unwrap().is_empty());
    s.settle_pending(
        &id,
        Next::Final {
            outcome: Outcome::Missed,
            cause: None,
        },
        200,
    )
    .unwrap();
    let inbox = s.alert_inbox(10).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].outcome, Outcome::Missed);
    assert_eq!(inbox[0].subscriber_id, sub.id);
    assert_eq!(s.next_alert_work_ms().unwrap(), Some(0));
    // Consuming it with a new case is one step.
    let (c, ns) = s
        .alert_commit(AlertWrite {
            case: Some(case(sub.id)),
            notifications: vec![notif(300), notif(100)],
            inbox_done: Some(id),
        })
        .unwrap();
    let c = c.unwrap();
    assert_eq!(c.id, 1);
    assert_eq!(
        ns.iter().map(|n| (n.id, n.case_id)).collect::<Vec<_>>(),
        vec![(1, 1), (2, 1)]
    );
    assert!(s.alert_inbox(10).unwrap().is_empty());
    assert_eq!(s.open_case_of(sub.id).unwrap().unwrap().id, c.id);
    assert_eq!(s.next_alert_work_ms().unwrap(), Some(100));
    assert_eq!(s.due_notifications(150, 10).unwrap().len(), 1);
    assert_eq!(s.due_case_timers(4999, 10).unwrap(), Vec::<u64>::new());
    assert_eq!(s.due_case_timers(5000, 10).unwrap(), vec![c.id]);
}

pub fn notifications_move_in_the_outbox_and_cases_close(b: &dyn Backend) {
    let s = b.open();
    let (c, ns) = s
        .alert_commit(AlertWrite {
            case: Some(case(7)),
            notifications: vec![notif(100)],
            inbox_done: None,
        })
        .unwrap();
    let mut c = c.unwrap();
    let mut n = ns[0].clone();
    // A lease moves it out of the way; recovery makes it due again.
    n.sending_until_ms = Some(10_000);
    n.next_at_ms = 10_000;
    s.alert_commit(AlertWrite {
        notifications: vec![n.clone()],
        ..Default::default()
    })
    .unwrap();
    assert!(s.due_notifications(9_999, 10).unwrap().is_empty());
    assert_eq!(s.recover_notifications(500).unwrap(), 1);
    let due = s.due_notifications(500, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].sending_until_ms, None);
    // Delivered: leaves the due index, stays readable.
    let mut n = due[0].clone();
    n.state = NotifyState::Delivered;
    s.alert_commit(AlertWrite {
        notifications: vec![n],
        ..Default::default()
    })
    .unwrap();
    assert!(s.due_notifications(u64::MAX, 10).unwrap().is_empty());
    assert_eq!(
        s.notifications_of(c.id).unwrap()[0].state,
        NotifyState::Delivered
    );
    // Resolving clears the timer and the open pointer; a new case may open.
    c.state = CaseState::Resolved;
    s.alert_commit(AlertWrite {
        case: Some(c.clone()),
        ..Default::default()
    })
    .unwrap();
    assert!(s.open_case_of(7).unwrap().is_none());
    assert!(s.due_case_timers(u64::MAX, 10).unwrap().is_empty());
    assert_eq!(s.next_alert_work_ms().unwrap(), None);
    assert_eq!(s.cases_of(1, 0, 10).unwrap().len(), 1);
}

pub fn watchers_and_ladders(b: &dyn Backend) {
    let s = b.open();
    let w = s
        .put_watcher(Watcher {
            id: 0,
            tenant_id: 3,
            name: "民生委員".into(),
            phone: Some("sip:2001@127.0.0.1".into()),
            email: None,
            webhook_url: None,
            webhook_secret: None,
            quiet_start: None,
            quiet_end: None,
            created_at_ms: 1,
        })
        .unwrap();
    assert_eq!(w.id, 1);
    assert_eq!(s.watchers_of(3).unwrap(), vec![w.clone()]);
    assert!(s.watchers_of(4).unwrap().is_empty());
    let l = Ladder {
        tiers: vec![Tier {
            watchers: vec![w.id],
            deadline_s: 600,
        }],
    };
    s.put_ladder(LadderOf::Subscriber(9), &l).unwrap();
    assert_eq!(s.ladder(LadderOf::Subscriber(9)).unwrap(), Some(l));
    assert_eq!(s.ladder(LadderOf::Tenant(9)).unwrap(), None);
    s.delete_watcher(&w).unwrap();
    assert!(s.watchers_of(3).unwrap().is_empty());
}

/// A person's history holds their checks, scheduled and one-off, in
/// time order, and nobody else's.
pub fn a_persons_history_is_theirs(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(tenant()).unwrap();
    let p = s.create_subscriber(sub(t.id)).unwrap();
    let other = s.create_subscriber(sub(t.id)).unwrap();
    let late = check(&p, 3000);
    let early = check(&p, 1000);
    let one_off = Check::pending(CheckId::one_off(p.id, 2_000_000), t.id, 2_000_000, 1);
    for c in [&late, &early, &one_off, &check(&other, 2000)] {
        assert!(s.create_check(c).unwrap());
    }
    let ids = |from, to| -> Vec<CheckId> {
        s.checks_of_subscriber(p.id, from, to)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(ids(0, u64::MAX), vec![early.id, one_off.id, late.id]);
    assert_eq!(ids(1_500_000, 3_000_000), vec![one_off.id]);
}

/// The day view counts every state and lists the checks to look at
/// first, and it follows claims, retries, outcomes, settlements and an
/// erasure, whether it was first asked for before them or after.
pub fn a_day_at_a_glance_follows_every_change(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(tenant()).unwrap();
    let other = s.create_tenant(tenant()).unwrap();
    let people: Vec<Subscriber> = (0..6)
        .map(|_| s.create_subscriber(sub(t.id)).unwrap())
        .collect();
    let stranger = s.create_subscriber(sub(other.id)).unwrap();
    // Slots at 1000 s; the day is [0, 2_000_000) ms.
    let checks: Vec<Check> = people.iter().map(|p| check(p, 1000)).collect();
    assert_eq!(s.create_checks(&checks).unwrap(), 6);
    assert!(s.create_check(&check(&stranger, 1000)).unwrap());
    assert!(
        s.create_check(&check(&people[0], 5000)).unwrap(),
        "another day"
    );
    let day = |s: &dyn Storage| s.day_view(t.id, 0, 2_000_000, 10, None).unwrap();
    let counts = |v: &crate::DayView| -> Vec<(String, u64)> {
        v.counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    };
    let first = day(s.as_ref());
    assert_eq!(first.total, 6);
    assert_eq!(counts(&first), vec![("pending".to_string(), 6)]);
    assert!(
        first.waiting.is_empty(),
        "none called yet: counted, not listed"
    );
    let fin = |i: usize, n: u32, next: Next| {
        s.claim(&checks[i].id, "n", 9_000_000).unwrap().unwrap();
        let a = Attempt {
            n,
            call_id: format!("c{i}-{n}"),
            started_at_ms: 1_000_000,
            answered: true,
            sip_status: Some(200),
            ring_ms: 1,
            talk_ms: 1,
            digits: String::new(),
            dtmf_transport: None,
            end_reason: EndReason::ScriptDone,
            outcome: None,
            held: false,
            early_media_ms: None,
            answered_by: None,
            hearing: None,
            recorded_ms: None,
            inbound: false,
        };
        s.finish_attempt(&checks[i].id, &a, next, 1_100_000)
            .unwrap();
    };
    fin(
        0,
        1,
        Next::Final {
            outcome: Outcome::Fine,
            cause: None,
        },
    );
    fin(
        1,
        1,
        Next::Final {
            outcome: Outcome::NeedsContact,
            cause: None,
        },
    );
    fin(
        2,
        1,
        Next::Final {
            outcome: Outcome::Missed,
            cause: Some(Cause::NoAnswer),
        },
    );
    fin(
        3,
        1,
        Next::Retry {
            due_at_ms: 1_500_000,
            cause: Cause::Busy,
        },
    );
    s.claim(&checks[4].id, "n", 9_000_000).unwrap().unwrap();
    s.settle_pending(
        &checks[5].id,
        Next::Final {
            outcome: Outcome::NotAttempted,
            cause: Some(Cause::Paused),
        },
        1_100_000,
    )
    .unwrap()
    .unwrap();
    let expect = vec![
        ("dialing".to_string(), 1),
        ("fine".to_string(), 1),
        ("missed".to_string(), 1),
        ("needs_contact".to_string(), 1),
        ("not_attempted".to_string(), 1),
        ("retrying".to_string(), 1),
    ];
    let v = day(s.as_ref());
    assert_eq!(counts(&v), expect);
    assert_eq!(v.total, 6);
    let order: Vec<u64> = v.waiting.iter().map(|c| c.id.subscriber_id).collect();
    // needs contact, missed, not attempted, in a call, retry due.
    let ids = |ix: &[usize]| ix.iter().map(|i| people[*i].id).collect::<Vec<_>>();
    assert_eq!(order, ids(&[1, 2, 5, 4, 3]));
    // The outcomes paged one at a time: all four ended in the same
    // millisecond, so each page starts after the last row's time and id.
    let all: Vec<CheckId> = s
        .outcomes(t.id, 0, u64::MAX, 100, None)
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all.len(), 4);
    let (mut paged, mut from, mut after) = (Vec::new(), 0, None);
    while let Some(c) = s
        .outcomes(t.id, from, u64::MAX, 1, after.as_ref())
        .unwrap()
        .first()
    {
        assert!(paged.len() < all.len(), "paging goes on past the last row");
        paged.push(c.id);
        from = c.finished_at_ms.expect("a finished check has its time");
        after = Some(c.id);
    }
    assert_eq!(paged, all);
    assert_eq!(
        s.day_view(t.id, 0, 2_000_000, 2, None)
            .unwrap()
            .waiting
            .len(),
        2
    );
    // Paged one row at a time, each page after the place the last one
    // gave: the same rows in the same order, and no place after the last.
    assert_eq!(v.next, None, "all five rows fit in a page of ten");
    let mut paged = Vec::new();
    let mut after: Option<crate::RowAt> = None;
    loop {
        let page = s.day_view(t.id, 0, 2_000_000, 1, after.as_ref()).unwrap();
        assert_eq!(page.total, 6, "a page still counts the whole day");
        paged.extend(page.waiting.iter().map(|c| c.id.subscriber_id));
        let Some(at) = page.next else { break };
        assert_eq!(at.to_string().parse::<crate::RowAt>(), Ok(at));
        assert_eq!(Some(at), page.waiting.last().and_then(crate::RowAt::of));
        after = Some(at);
        assert!(paged.len() <= 10, "paging goes on past the last row");
    }
    assert_eq!(paged, order);
    // A fresh open (nothing in memory) sees the same.
    drop(s);
    let s = b.open();
    let v2 = day(s.as_ref());
    assert_eq!((counts(&v2), v2.total), (expect.clone(), 6));
    // Erasing the missed person: their outcome still counts, no row.
    s.erase_subscriber(&people[2]).unwrap();
    let v3 = day(s.as_ref());
    assert_eq!((counts(&v3), v3.total), (expect, 6));
    assert_eq!(
        v3.waiting
            .iter()
            .map(|c| c.id.subscriber_id)
            .collect::<Vec<_>>(),
        ids(&[1, 5, 4, 3])
    );
    assert_eq!(
        s.day_view(other.id, 0, 2_000_000, 10, None).unwrap().total,
        1
    );
    assert_eq!(
        s.day_view(t.id, 4_000_000, 6_000_000, 10, None)
            .unwrap()
            .total,
        1
    );
}

/// Console users: a login is unique across tenants, the record survives a
/// reopen with its lockout, a deleted user's login is free again, and a
/// session is found by its hash until it is deleted or pruned after its end.
pub fn staff_logins_are_unique_and_sessions_end(b: &dyn Backend) {
    use crate::{Session, Staff, StaffRole};
    let s = b.open();
    let new = |tenant_id: u64, login: &str| Staff {
        id: 0,
        tenant_id,
        login: login.into(),
        name: "見守り 太郎".into(),
        role: StaffRole::Coordinator,
        password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        failed: 0,
        locked_until_ms: None,
        disabled: false,
        created_at_ms: 5,
        generation: 0,
    };
    let a = s.create_staff(new(1, "taro")).unwrap();
    let b2 = s.create_staff(new(2, "hanako")).unwrap();
    assert_ne!(a.id, b2.id);
    assert!(matches!(
        s.create_staff(new(2, "taro")),
        Err(crate::StoreError::Exists(_))
    ));
    let mut locked = a.clone();
    locked.failed = 10;
    locked.locked_until_ms = Some(99);
    s.put_staff(&locked).unwrap();
    drop(s);
    let s = b.open();
    assert_eq!(s.staff_by_login("taro").unwrap(), Some(locked.clone()));
    assert_eq!(s.staff(b2.id).unwrap(), Some(b2.clone()));
    assert_eq!(s.staff_of(1).unwrap(), vec![locked.clone()]);
    assert!(s.staff_of(3).unwrap().is_empty());
    let session = Session {
        staff_id: a.id,
        tenant_id: 1,
        csrf: "c".into(),
        locale: "ja".into(),
        created_at_ms: 10,
        expires_at_ms: 100,
        generation: 0,
    };
    let (h1, h2) = ([1u8; 32], [2u8; 32]);
    s.put_session(&h1, &session).unwrap();
    s.put_session(
        &h2,
        &Session {
            expires_at_ms: 1000,
            ..session.clone()
        },
    )
    .unwrap();
    assert_eq!(s.session(&h1).unwrap(), Some(session));
    assert_eq!(s.prune_sessions(500).unwrap(), 1);
    assert_eq!(s.session(&h1).unwrap(), None);
    assert!(s.session(&h2).unwrap().is_some());
    s.delete_session(&h2).unwrap();
    assert_eq!(s.session(&h2).unwrap(), None);
    // Concurrent changes each see the other's (no lost update).
    std::thread::scope(|sc| {
        for _ in 0..8 {
            sc.spawn(|| {
                s.update_staff(locked.id, &|m| m.failed += 1)
                    .unwrap()
                    .unwrap();
            });
        }
    });
    assert_eq!(s.staff(locked.id).unwrap().unwrap().failed, 18);
    assert_eq!(s.update_staff(999, &|m| m.failed = 0).unwrap(), None);
    let locked = s.staff(locked.id).unwrap().unwrap();
    s.delete_staff(&locked).unwrap();
    assert_eq!(s.staff_by_login("taro").unwrap(), None);
    assert_eq!(s.create_staff(new(1, "taro")).unwrap().login, "taro");
}

/// Many threads claim the same due checks: each check goes to exactly
/// one of them, and every check to someone.
pub fn concurrent_claims_give_a_check_to_one_owner(b: &dyn Backend) {
    let s = std::sync::Arc::new(b.open());
    let t = s.create_tenant(tenant()).unwrap();
    let p = s.create_subscriber(sub(t.id)).unwrap();
    let checks: Vec<Check> = (1..=200).map(|i| check(&p, 10_000 + i)).collect();
    assert_eq!(s.create_checks(&checks).unwrap(), 200);
    let won: Vec<Vec<CheckId>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                let checks = &checks;
                scope.spawn(move || {
                    let mut mine = vec![];
                    for c in checks {
                        if let Some(got) = s.claim(&c.id, &format!("node-{w}"), 9).unwrap() {
                            assert_eq!(got.owner.as_deref(), Some(format!("node-{w}").as_str()));
                            mine.push(c.id);
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<CheckId> = won.into_iter().flatten().collect();
    assert_eq!(all.len(), 200, "every check claimed exactly once");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200, "no check claimed twice");
    assert!(s.due(u64::MAX, 1000).unwrap().is_empty());
    assert_eq!(s.inflight().unwrap().len(), 200);
}

/// A process dies between claiming a check and finishing it: after a
/// restart the check is found in flight, with its owner, and finishing
/// it then ends it exactly once.
pub fn a_crash_mid_call_leaves_the_check_in_flight_for_recovery(b: &dyn Backend) {
    let id;
    {
        let s = b.open();
        let t = s.create_tenant(tenant()).unwrap();
        let p = s.create_subscriber(sub(t.id)).unwrap();
        let c = check(&p, 77);
        s.create_check(&c).unwrap();
        s.claim(&c.id, "dead-node", 1_000).unwrap().unwrap();
        id = c.id;
    }
    let s = b.open();
    let inflight = s.inflight().unwrap();
    assert_eq!(inflight.len(), 1);
    assert_eq!(inflight[0].id, id);
    assert_eq!(inflight[0].status, CheckStatus::Dialing);
    assert_eq!(inflight[0].owner.as_deref(), Some("dead-node"));
    let done = s
        .finish_attempt(
            &id,
            &Attempt {
                n: 1,
                end_reason: EndReason::Interrupted,
                ..Default::default()
            },
            Next::Final {
                outcome: Outcome::Missed,
                cause: Some(Cause::Interrupted),
            },
            2_000,
        )
        .unwrap();
    assert_eq!(done.status, CheckStatus::Done);
    assert!(s.inflight().unwrap().is_empty());
    assert_eq!(s.alert_inbox(10).unwrap().len(), 1, "its alert input too");
    drop(s);
    let s = b.open();
    assert!(
        s.inflight().unwrap().is_empty(),
        "and stays done after another restart"
    );
    assert_eq!(
        s.check(&id).unwrap().unwrap().outcome,
        Some(Outcome::Missed)
    );
}

/// `settle_pending` only moves Pending checks: a claimed (Dialing) or
/// finished one is left alone, so a window closing cannot race a call.
pub fn settling_a_claimed_check_changes_nothing(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(tenant()).unwrap();
    let p = s.create_subscriber(sub(t.id)).unwrap();
    let c = check(&p, 88);
    s.create_check(&c).unwrap();
    s.claim(&c.id, "me", 9).unwrap().unwrap();
    let r = s
        .settle_pending(
            &c.id,
            Next::Final {
                outcome: Outcome::Missed,
                cause: Some(Cause::OutsideWindow),
            },
            5,
        )
        .unwrap();
    assert!(r.is_none());
    assert_eq!(
        s.check(&c.id).unwrap().unwrap().status,
        CheckStatus::Dialing
    );
    assert!(s.alert_inbox(10).unwrap().is_empty());
}

/// Erasure (APPI): every record of the person goes, in one step; their
/// finished checks stay as anonymous counts; another person of the tenant
/// is untouched; a late write for an erased case does not bring it back.
pub fn erasing_a_person_leaves_counts_and_nothing_of_them(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(tenant()).unwrap();
    let gone = s.create_subscriber(sub(t.id)).unwrap();
    let kept = s.create_subscriber(sub(t.id)).unwrap();
    let mut finished = Vec::new();
    for (who, slot, outcome) in [
        (&gone, 1_000, Outcome::Fine),
        (&gone, 2_000, Outcome::Missed),
        (&kept, 1_000, Outcome::Fine),
    ] {
        let c = check(who, slot);
        s.create_check(&c).unwrap();
        s.claim(&c.id, "node", u64::MAX).unwrap().unwrap();
        s.finish_attempt(
            &c.id,
            &Attempt {
                n: 1,
                ..Default::default()
            },
            Next::Final {
                outcome,
                cause: None,
            },
            slot * 1000 + 5,
        )
        .unwrap();
        finished.push(c.id);
    }
    let pending = check(&gone, 3_000);
    s.create_check(&pending).unwrap();
    let (case, _) = s
        .alert_commit(AlertWrite {
            case: Some(AlertCase {
                tenant_id: t.id,
                ..case(gone.id)
            }),
            notifications: vec![notif(100)],
            inbox_done: Some(finished[1]),
        })
        .unwrap();
    let case = case.unwrap();
    s.put_prompt(t.id, &format!("name-{}", gone.id), b"RIFF")
        .unwrap();
    s.put_prompt(t.id, "greeting", b"RIFF").unwrap();
    s.put_ladder(LadderOf::Subscriber(gone.id), &Ladder { tiers: vec![] })
        .unwrap();
    s.audit(
        t.id,
        1,
        &serde_json::json!({"did": "read_subscriber", "id": gone.id}),
    )
    .unwrap();
    s.audit(
        t.id,
        2,
        &serde_json::json!({"did": "ack_alert", "case": case.id}),
    )
    .unwrap();
    let day = (0, 10_000_000);
    let before: Vec<u64> = s
        .checks_of(t.id, day.0, day.1, 100)
        .unwrap()
        .iter()
        .filter_map(|c| c.outcome)
        .map(|_| 1)
        .collect();
    assert_eq!(before.len(), 3);

    let trail = s.audit_of(t.id, (0, 0), 10).unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].2["id"], gone.id);
    assert_eq!(
        s.audit_of(t.id, (2, 0), 10).unwrap().len(),
        1,
        "from a time on"
    );
    let first = &s.audit_of(t.id, (0, 0), 1).unwrap()[0];
    let next = s.audit_of(t.id, (first.0, first.1 + 1), 10).unwrap();
    assert_eq!(next.len(), 1, "a cursor passes the entry it ends on");
    let e = s.erase_subscriber(&gone).unwrap();
    let trail = s.audit_of(t.id, (0, 0), 10).unwrap();
    assert_eq!(trail[0].2["id"], "erased");
    assert_eq!(trail[1].2["case"], "erased");
    assert_eq!(
        (
            e.checks,
            e.attempts,
            e.cases,
            e.notifications,
            e.prompts,
            e.tallied,
            e.audit_entries
        ),
        (3, 2, 1, 1, 1, 2, 2),
        "{e:?}"
    );
    assert!(s.subscriber(gone.id).unwrap().is_none());
    assert!(s.check(&finished[0]).unwrap().is_none());
    assert!(s.check(&pending.id).unwrap().is_none());
    assert!(s.attempts(&finished[0]).unwrap().is_empty());
    assert!(s.alert_case(case.id).unwrap().is_none());
    assert!(s.notifications_of(case.id).unwrap().is_empty());
    assert!(s.open_case_of(gone.id).unwrap().is_none());
    assert!(s.ladder(LadderOf::Subscriber(gone.id)).unwrap().is_none());
    assert!(s
        .prompt(t.id, &format!("name-{}", gone.id))
        .unwrap()
        .is_none());
    assert!(s.prompt(t.id, "greeting").unwrap().is_some());
    assert!(
        s.due(u64::MAX, 100).unwrap().is_empty(),
        "nothing left to dial"
    );
    let left = s.checks_of(t.id, day.0, day.1, 100).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id.subscriber_id, kept.id);
    assert_eq!(s.outcomes(t.id, 0, u64::MAX, 100, None).unwrap().len(), 1);
    let mut tallied = s.tallies_of(t.id, day.0, day.1).unwrap();
    tallied.sort_by_key(|o| o.as_str());
    assert_eq!(tallied, vec![Outcome::Fine, Outcome::Missed]);
    assert_eq!(
        s.tallies_of(t.id, 1_500_000, day.1).unwrap(),
        vec![Outcome::Missed]
    );
    assert!(s.tallies_of(t.id + 1, day.0, day.1).unwrap().is_empty());
    assert!(s.subscriber(kept.id).unwrap().is_some());
    // A planner pass or a call that read the person before the erasure
    // cannot write them back.
    assert_eq!(s.create_checks(&[check(&gone, 9_000)]).unwrap(), 0);
    assert!(!s.create_check(&check(&gone, 9_001)).unwrap());
    assert!(s.put_subscriber(&gone).is_err());
    assert!(s.subscriber(gone.id).unwrap().is_none());
    // Nor an edit of a person deleted meanwhile (the planner reads every
    // person's record, and would plan them).
    s.delete_subscriber(&kept).unwrap();
    assert!(s.put_subscriber(&kept).is_err());
    assert!(s.subscriber(kept.id).unwrap().is_none());
    assert!(s
        .subscribers_after(0, 100)
        .unwrap()
        .iter()
        .all(|p| p.id != kept.id));
    // A delivery that finishes after the erasure does not bring the case back.
    let (back, ns) = s
        .alert_commit(AlertWrite {
            case: Some(case.clone()),
            notifications: vec![Notification {
                id: 1,
                case_id: case.id,
                ..notif(100)
            }],
            inbox_done: None,
        })
        .unwrap();
    assert!(back.is_none() && ns.is_empty());
    assert!(s.alert_case(case.id).unwrap().is_none());
    // Nor can the alert engine open a new case about them from an outcome
    // it read before the erasure.
    let (new, ns) = s
        .alert_commit(AlertWrite {
            case: Some(AlertCase {
                tenant_id: t.id,
                ..crate::conformance::case(gone.id)
            }),
            notifications: vec![notif(100)],
            inbox_done: Some(finished[0]),
        })
        .unwrap();
    assert!(new.is_none() && ns.is_empty());
    assert!(s.open_case_of(gone.id).unwrap().is_none());
    assert!(s.due_notifications(u64::MAX, 10).unwrap().is_empty());
    // It survives a restart.
    drop(s);
    let s = b.open();
    assert!(s.subscriber(gone.id).unwrap().is_none());
    assert_eq!(s.tallies_of(t.id, day.0, day.1).unwrap().len(), 2);
}

/// Retention: checks finished before the cut go with their attempts and
/// leave anonymous counts; one whose outcome the alert engine has not
/// read yet stays until it has; later ones stay; resolved old cases go,
/// open ones stay.
pub fn retention_forgets_old_checks_and_keeps_counts(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(tenant()).unwrap();
    let p = s.create_subscriber(sub(t.id)).unwrap();
    let mut ids = Vec::new();
    for (slot, finished) in [
        (1_000u64, 10_000u64),
        (2_000, 20_000),
        (3_000, 30_000),
        (4_000, 40_000),
    ] {
        let c = check(&p, slot);
        s.create_check(&c).unwrap();
        s.claim(&c.id, "node", u64::MAX).unwrap().unwrap();
        s.finish_attempt(
            &c.id,
            &Attempt {
                n: 1,
                ..Default::default()
            },
            Next::Final {
                outcome: Outcome::Fine,
                cause: None,
            },
            finished,
        )
        .unwrap();
        ids.push(c.id);
    }
    // The alert engine read the first three outcomes, not the fourth.
    for id in &ids[..3] {
        s.alert_commit(AlertWrite {
            inbox_done: Some(*id),
            ..Default::default()
        })
        .unwrap();
    }
    let mut old = AlertCase {
        tenant_id: t.id,
        ..case(p.id)
    };
    let (c, _) = s
        .alert_commit(AlertWrite {
            case: Some(old.clone()),
            notifications: vec![notif(100)],
            inbox_done: None,
        })
        .unwrap();
    old = c.unwrap();
    old.state = CaseState::Resolved;
    old.resolved_at_ms = Some(15_000);
    s.alert_commit(AlertWrite {
        case: Some(old.clone()),
        ..Default::default()
    })
    .unwrap();
    let open = s
        .alert_commit(AlertWrite {
            case: Some(AlertCase {
                tenant_id: t.id,
                ..case(p.id)
            }),
            ..Default::default()
        })
        .unwrap()
        .0
        .unwrap();

    let pruned = s.prune(t.id, 45_000, 2).unwrap();
    assert_eq!(
        (pruned.checks, pruned.attempts),
        (2, 2),
        "at most max a pass"
    );
    assert_eq!(pruned.cases, 0, "cases on the round's last pass");
    let pruned = s.prune(t.id, 45_000, 100).unwrap();
    assert_eq!(pruned.checks, 1, "the unread fourth stays: {pruned:?}");
    assert_eq!((pruned.cases, pruned.notifications), (1, 1));
    assert_eq!(s.prune(t.id, 45_000, 100).unwrap().checks, 0);
    for id in &ids[..3] {
        assert!(s.check(id).unwrap().is_none());
        assert!(s.attempts(id).unwrap().is_empty());
    }
    assert!(s.check(&ids[3]).unwrap().is_some());
    assert!(s.alert_case(old.id).unwrap().is_none());
    assert!(s.alert_case(open.id).unwrap().is_some());
    assert_eq!(s.tallies_of(t.id, 0, u64::MAX).unwrap().len(), 3);
    assert_eq!(s.checks_of(t.id, 0, u64::MAX, 10).unwrap().len(), 1);
}

/// A node renews the leases of its calls; a dead node's claim runs out
/// (by the wall clock: a shared database times leases by its own), is
/// found, and can be finished by whoever takes it over. The one process
/// on a database leads.
pub fn leases_are_renewed_and_a_dead_owners_run_out(b: &dyn Backend) {
    let s = b.open();
    let t = s.create_tenant(tenant()).unwrap();
    let p = s.create_subscriber(sub(t.id)).unwrap();
    let (live, dead) = (check(&p, 100), check(&p, 200));
    s.create_checks(&[live.clone(), dead.clone()]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    s.claim(&live.id, "live", now + 1_000).unwrap().unwrap();
    s.claim(&dead.id, "dead", now + 1_000).unwrap().unwrap();
    assert!(s.expired_claims(now, 10).unwrap().is_empty(), "not yet");
    assert_eq!(
        s.renew_leases("live", &[live.id, dead.id], now, 600_000)
            .unwrap(),
        1,
        "only the owner's"
    );
    assert_eq!(
        s.renew_leases("nobody", &[live.id], now, 600_000).unwrap(),
        0
    );
    std::thread::sleep(std::time::Duration::from_millis(1_300));
    let later = now + 1_300;
    let gone = s.expired_claims(later, 10).unwrap();
    assert_eq!(
        gone.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![dead.id],
        "only the claim nobody renewed"
    );
    let back = s
        .finish_attempt(
            &dead.id,
            &Attempt {
                n: 1,
                end_reason: EndReason::Interrupted,
                ..Default::default()
            },
            Next::Retry {
                due_at_ms: later,
                cause: Cause::Interrupted,
            },
            later,
        )
        .unwrap();
    assert_eq!(back.status, CheckStatus::Pending, "taken over");
    assert!(s.expired_claims(later, 10).unwrap().is_empty());
    assert_eq!(s.inflight().unwrap().len(), 1);
    assert!(s.lead("alerts", "live", 10_000).unwrap());
    assert!(s.lead("alerts", "live", 10_000).unwrap(), "and keeps it");
}
