//! The conformance suite on a throw-away PostgreSQL, and what only many
//! nodes need: batched claims that never share a check, the fence against
//! a paused node's late write, one leader per role, migrations.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use genki_store::conformance::{self, Backend};
use genki_store::*;

use crate::testing::{Durability, TestPg};
use crate::{PgOptions, PgStore};

/// One server for the whole test binary.
fn server() -> &'static TestPg {
    static PG: OnceLock<TestPg> = OnceLock::new();
    PG.get_or_init(|| TestPg::start(Durability::Fast).expect("start PostgreSQL"))
}

/// A fresh database on the server.
fn fresh_db() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("t{}", N.fetch_add(1, Ordering::SeqCst));
    server().create_db(&name).expect("createdb");
    server().url(&name)
}

fn open(url: &str, node: &str) -> PgStore {
    PgStore::open(&PgOptions {
        url: url.to_string(),
        pool_size: 8,
        node: node.to_string(),
        clock: crate::wall_clock(),
    })
    .expect("open")
}

struct Pg(String);

impl Backend for Pg {
    fn open(&self) -> Box<dyn Storage> {
        Box::new(open(&self.0, "test-node"))
    }
}

#[test]
fn postgres_engine_passes_the_conformance_suite() {
    conformance::run_all(&|| Box::new(Pg(fresh_db())));
}

fn tenant_and_person(s: &PgStore) -> (Tenant, Subscriber) {
    let t = s.create_tenant(Tenant::with_defaults("t", 1)).unwrap();
    let p = s
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
    (t, p)
}

fn final_fine() -> Next {
    Next::Final {
        outcome: Outcome::Fine,
        cause: None,
    }
}

#[test]
fn batched_claims_on_three_nodes_never_share_a_check() {
    let url = fresh_db();
    let nodes: Vec<Arc<PgStore>> = (0..3)
        .map(|n| Arc::new(open(&url, &format!("node-{n}"))))
        .collect();
    let (t, p) = tenant_and_person(&nodes[0]);
    let checks: Vec<Check> = (0..900)
        .map(|i| Check::pending(CheckId::scheduled(p.id, 1000 + i), t.id, 1000, 1))
        .collect();
    assert_eq!(nodes[0].create_checks(&checks).unwrap(), 900);
    let won: Vec<Vec<CheckId>> = std::thread::scope(|sc| {
        let hs: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, s)| {
                sc.spawn(move || {
                    let mut mine = vec![];
                    loop {
                        let got = s
                            .claim_due(5_000, 25, &format!("node-{n}"), 60_000)
                            .unwrap();
                        if got.is_empty() {
                            break mine;
                        }
                        mine.extend(got.iter().map(|c| c.id));
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<CheckId> = won.iter().flatten().copied().collect();
    assert_eq!(all.len(), 900);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 900, "no check claimed twice");
    assert!(
        won.iter().all(|w| !w.is_empty()),
        "each node got work: {:?}",
        won.iter().map(|w| w.len()).collect::<Vec<_>>()
    );
}

/// Node A claims and pauses past its lease; node B takes the check over
/// and finishes it; A's late outcome is refused and counted, and B's
/// stands. A's write before anyone took over (its lease ran out but
/// nobody claimed) would have been accepted: only a take-over fences.
#[test]
fn a_paused_nodes_late_outcome_is_refused() {
    let url = fresh_db();
    let a = open(&url, "node-a");
    let b = open(&url, "node-b");
    let (t, p) = tenant_and_person(&a);
    let id = CheckId::scheduled(p.id, 1000);
    a.create_check(&Check::pending(id, t.id, 1000, 1)).unwrap();
    assert_eq!(a.claim_due(5_000, 10, "node-a", 300).unwrap().len(), 1);
    // B cannot finish A's live claim.
    let attempt = |n| Attempt {
        n,
        ..Default::default()
    };
    assert!(matches!(
        b.finish_attempt(&id, &attempt(1), final_fine(), 2_000),
        Err(StoreError::Fenced(_))
    ));
    std::thread::sleep(std::time::Duration::from_millis(400));
    // A's lease ran out: B's sweeper takes the check back, B claims and
    // calls, and the person presses 2.
    let expired = b.expired_claims(0, 10).unwrap();
    assert_eq!(expired.len(), 1);
    b.finish_attempt(
        &id,
        &Attempt {
            end_reason: EndReason::Interrupted,
            ..attempt(1)
        },
        Next::Retry {
            due_at_ms: 1_000,
            cause: Cause::Interrupted,
        },
        2_000,
    )
    .unwrap();
    assert_eq!(b.claim_due(5_000, 10, "node-b", 60_000).unwrap().len(), 1);
    // A wakes and writes its old call's outcome: refused while B holds it…
    assert!(matches!(
        a.finish_attempt(&id, &attempt(1), final_fine(), 3_000),
        Err(StoreError::Fenced(_))
    ));
    let done = b
        .finish_attempt(
            &id,
            &attempt(2),
            Next::Final {
                outcome: Outcome::NeedsContact,
                cause: None,
            },
            4_000,
        )
        .unwrap();
    assert_eq!(done.outcome, Some(Outcome::NeedsContact));
    // …and after B finished.
    assert!(matches!(
        a.finish_attempt(&id, &attempt(1), final_fine(), 5_000),
        Err(StoreError::Fenced(_))
    ));
    assert_eq!(a.fenced(), 2);
    assert_eq!(b.fenced(), 1);
    let c = a.check(&id).unwrap().unwrap();
    assert_eq!(c.outcome, Some(Outcome::NeedsContact), "B's outcome stands");
    assert_eq!(a.alert_inbox(10).unwrap().len(), 1, "one alert input");
    // B's own end-of-call write after its early outcome is accepted.
    b.finish_attempt(&id, &attempt(2), final_fine(), 6_000)
        .unwrap();
    assert_eq!(
        a.check(&id).unwrap().unwrap().outcome,
        Some(Outcome::NeedsContact)
    );
}

#[test]
fn one_node_leads_a_role_until_its_lease_runs_out() {
    let url = fresh_db();
    let a = open(&url, "a");
    let b = open(&url, "b");
    assert!(a.lead("alerts", "a", 300).unwrap());
    assert!(!b.lead("alerts", "b", 300).unwrap());
    assert!(a.lead("alerts", "a", 300).unwrap(), "renewed");
    assert!(b.lead("other", "b", 300).unwrap(), "roles are apart");
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(
        b.lead("alerts", "b", 300).unwrap(),
        "taken over once run out"
    );
    assert!(!a.lead("alerts", "a", 300).unwrap());
}

/// Two nodes apply one alert step each for the same outcome (a paused
/// alert node): the second is refused, so the case opens once.
#[test]
fn an_outcome_opens_one_case_whichever_nodes_apply_it() {
    let url = fresh_db();
    let a = open(&url, "a");
    let b = open(&url, "b");
    let (t, p) = tenant_and_person(&a);
    let id = CheckId::scheduled(p.id, 1000);
    a.create_check(&Check::pending(id, t.id, 1000, 1)).unwrap();
    a.settle_pending(
        &id,
        Next::Final {
            outcome: Outcome::Missed,
            cause: None,
        },
        2_000,
    )
    .unwrap();
    let step = || AlertWrite {
        case: Some(AlertCase::open(t.id, p.id, 2_000)),
        notifications: vec![],
        inbox_done: Some(id),
    };
    assert!(a.alert_commit(step()).unwrap().0.is_some());
    assert!(matches!(b.alert_commit(step()), Err(StoreError::Fenced(_))));
    assert_eq!(a.cases_of(t.id, 0, 10).unwrap().len(), 1);
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let url = fresh_db();
    let s = PgStore::connect(&PgOptions {
        url: url.clone(),
        pool_size: 2,
        node: "m".into(),
        clock: crate::wall_clock(),
    })
    .unwrap();
    assert_eq!(s.schema_version().unwrap(), 0);
    assert_eq!(s.migrate().unwrap(), vec![1, 2]);
    assert_eq!(s.migrate().unwrap(), Vec::<i32>::new(), "nothing twice");
    assert_eq!(s.schema_version().unwrap(), crate::schema::latest());
    let db = url.rsplit('=').next().unwrap();
    server()
        .psql(
            db,
            "INSERT INTO genki_schema (version, name) VALUES (99, 'from the future')",
        )
        .unwrap();
    let e = s.migrate().unwrap_err().to_string();
    assert!(e.contains("newer than this genki"), "{e}");
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let e = PgStore::open(&PgOptions {
        url: "host=127.0.0.1 port=1 user=genki dbname=x connect_timeout=2".into(),
        pool_size: 1,
        node: "n".into(),
        clock: crate::wall_clock(),
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("cannot open the database"), "{e}");
    let e = PgStore::open(&PgOptions {
        url: "postgresql://genki:s3cret@[::1".into(),
        pool_size: 1,
        node: "n".into(),
        clock: crate::wall_clock(),
    })
    .err()
    .unwrap()
    .to_string();
    assert!(!e.contains("s3cret"), "the password is not shown: {e}");
}

#[test]
fn urls_lose_their_password_in_messages() {
    assert_eq!(
        crate::redact("postgresql://genki:pw@db1,db2/genki?target_session_attrs=read-write"),
        "postgresql://genki:***@db1,db2/genki?target_session_attrs=read-write"
    );
    assert_eq!(
        crate::redact("host=db user=genki password=pw dbname=g"),
        "host=db user=genki password=*** dbname=g"
    );
    assert_eq!(
        crate::redact("postgresql://db/genki?user=genki&password=pw&sslmode=require"),
        "postgresql://db/genki?user=genki&password=***&sslmode=require"
    );
    assert_eq!(
        crate::redact("postgresql://genki:p@ss@db/genki"),
        "postgresql://genki:***@db/genki"
    );
}

/// Three nodes share a trunk of 300 calls and 50 calls a second: their
/// shares never add up to more, a newcomer gets its part, and a dead
/// node's rate is taken over at once while its calls stay counted.
#[test]
fn the_trunk_is_shared_and_never_oversubscribed() {
    use genki_store::budget::Share;
    let url = fresh_db();
    let s = open(&url, "x");
    let limit = Share {
        calls: 300,
        cps: 50.0,
    };
    let sum = |v: &[Share]| -> (u32, f64) {
        (
            v.iter().map(|x| x.calls).sum(),
            v.iter().map(|x| x.cps).sum(),
        )
    };
    let mut shares = vec![Share::default(); 3];
    for _ in 0..3 {
        for (i, sh) in shares.iter_mut().enumerate() {
            *sh = s
                .trunk_share(&format!("n{i}"), limit, 0, 60_000, 60_000)
                .unwrap();
        }
    }
    let (calls, cps) = sum(&shares);
    assert_eq!(calls, 300, "{shares:?}");
    assert!((cps - 50.0).abs() < 1e-6, "{shares:?}");
    assert!(shares.iter().all(|x| x.calls == 100), "{shares:?}");
    // n2 dies (its lease of 1 ms runs out) with calls up: its rate frees
    // at once, its calls stay counted for the hold.
    s.trunk_share("n2", limit, 100, 1, 60_000).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let a = s.trunk_share("n0", limit, 0, 60_000, 60_000).unwrap();
    assert_eq!(a.calls, 100, "n2's calls may still be up: {a:?}");
    assert!((a.cps - 25.0).abs() < 1e-6, "{a:?}");
}

/// Two nodes change one case from the same reading (a take from the
/// console and a tier climb of the alert node): the second is refused,
/// not silently undoing the first.
#[test]
fn a_case_changed_by_another_node_is_not_overwritten() {
    use genki_store::vocab::EventKind;
    let url = fresh_db();
    let a = open(&url, "a");
    let b = open(&url, "b");
    let (t, p) = tenant_and_person(&a);
    let (c, _) = a
        .alert_commit(AlertWrite {
            case: Some(AlertCase::open(t.id, p.id, 1)),
            ..Default::default()
        })
        .unwrap();
    let read = c.unwrap();
    let mut took = read.clone();
    took.state = CaseState::Acknowledged;
    took.event(
        2,
        EventKind::Acknowledged,
        serde_json::json!({"by": "console"}),
    );
    a.alert_commit(AlertWrite {
        case: Some(took),
        ..Default::default()
    })
    .unwrap();
    let mut climbed = read.clone();
    climbed.tier = 1;
    climbed.event(3, EventKind::Tier, serde_json::json!({}));
    assert!(matches!(
        b.alert_commit(AlertWrite {
            case: Some(climbed),
            ..Default::default()
        }),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        a.alert_case(read.id).unwrap().unwrap().state,
        CaseState::Acknowledged,
        "the take stands"
    );
}

/// A NUL from the network or the API (jsonb cannot hold one) is stored as
/// U+FFFD, not refused for ever.
#[test]
fn a_nul_in_a_record_is_stored() {
    let url = fresh_db();
    let s = open(&url, "n");
    let (t, p) = tenant_and_person(&s);
    let id = CheckId::scheduled(p.id, 1000);
    s.create_check(&Check::pending(id, t.id, 1000, 1)).unwrap();
    s.claim(&id, "n", u64::MAX).unwrap().unwrap();
    s.finish_attempt(
        &id,
        &Attempt {
            n: 1,
            call_id: "a\0b".into(),
            ..Default::default()
        },
        final_fine(),
        2_000,
    )
    .unwrap();
    assert_eq!(s.attempts(&id).unwrap()[0].call_id, "a\u{FFFD}b");
    s.audit(t.id, 1, &serde_json::json!({"who": "x\0"}))
        .unwrap();
    assert_eq!(
        s.audit_of(t.id, (0, 0), 1).unwrap()[0].2["who"],
        "x\u{FFFD}"
    );
    assert!(s.writes_ok());
}

#[test]
fn two_processes_cannot_share_a_node_name() {
    let url = fresh_db();
    let a = open(&url, "same");
    let b = open(&url, "same");
    a.hold_node_name().unwrap();
    let e = b.hold_node_name().unwrap_err().to_string();
    assert!(e.contains("another genki node named"), "{e}");
    drop(a);
    std::thread::sleep(std::time::Duration::from_millis(300));
    b.hold_node_name().unwrap();
}
