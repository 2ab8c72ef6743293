//! What one PostgreSQL primary carries for genki (docs/capacity.md, "Many
//! nodes"): planning, batched claims (`claim_due`, `FOR UPDATE SKIP
//! LOCKED`), the dispatcher's one-check claims, and outcome commits, with
//! fsync and synchronous commit on, on a throw-away server started here.
//!
//! `cargo run --release -p genki-pg --example capacity -- [checks] [workers] [batch]`
//! (defaults 100000 16 50); prints one JSON object.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use genki_pg::testing::{Durability, TestPg};
use genki_pg::{wall_clock, PgOptions, PgStore};
use genki_store::*;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let n = *args.first().unwrap_or(&100_000);
    let workers = *args.get(1).unwrap_or(&16);
    let batch = *args.get(2).unwrap_or(&50);
    let pg = TestPg::start(Durability::Durable)?;
    pg.create_db("genki")?;
    let store = Arc::new(PgStore::open(&PgOptions {
        url: pg.url("genki"),
        pool_size: workers + 2,
        node: "bench".into(),
        clock: wall_clock(),
    })?);
    let t = store.create_tenant(Tenant::with_defaults("bench", 1))?;
    let person = |i: usize| Subscriber {
        id: 0,
        tenant_id: t.id,
        name: format!("p{i}"),
        phone: format!("sip:{i}@127.0.0.1"),
        schedule: None,
        paused_until: None,
        notes: String::new(),
        created_at_ms: 1,
    };
    let mut people = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        people.extend(store.create_subscribers(chunk.iter().map(|i| person(*i)).collect())?);
    }
    // Planning: a day's checks, idempotent inserts in batches.
    let checks: Vec<Check> = people
        .iter()
        .map(|p| Check::pending(CheckId::scheduled(p.id, 1000), t.id, 1_000_000, 1))
        .collect();
    let started = Instant::now();
    let mut planned = 0;
    for chunk in checks.chunks(10_000) {
        planned += store.create_checks(chunk)?;
    }
    let plan_s = started.elapsed().as_secs_f64();
    let replan = Instant::now();
    let again: u64 = checks
        .chunks(10_000)
        .map(|c| store.create_checks(c))
        .sum::<Result<u64, _>>()?;
    let replan_s = replan.elapsed().as_secs_f64();

    // Batched claims and outcome commits by `workers` threads (as many
    // nodes' dispatchers and call ends).
    let claim_lat = Mutex::new(Vec::new());
    let commit_lat = Mutex::new(Vec::new());
    let claimed = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|sc| {
        for w in 0..workers {
            let (store, claim_lat, commit_lat, claimed) =
                (&store, &claim_lat, &commit_lat, &claimed);
            sc.spawn(move || {
                let owner = format!("node-{w}");
                let (mut cl, mut co) = (Vec::new(), Vec::new());
                loop {
                    let t0 = Instant::now();
                    let got = store
                        .claim_due(2_000_000, batch, &owner, 600_000)
                        .expect("claim");
                    cl.push(t0.elapsed());
                    if got.is_empty() {
                        break;
                    }
                    claimed.fetch_add(got.len() as u64, Ordering::Relaxed);
                    for c in got {
                        let a = Attempt {
                            n: 1,
                            answered: true,
                            digits: "1".into(),
                            outcome: Some(Outcome::Fine),
                            ..Default::default()
                        };
                        let t1 = Instant::now();
                        store
                            .finish_attempt(
                                &c.id,
                                &a,
                                Next::Final {
                                    outcome: Outcome::Fine,
                                    cause: None,
                                },
                                1_500_000,
                            )
                            .expect("finish");
                        co.push(t1.elapsed());
                    }
                }
                claim_lat.lock().unwrap().extend(cl);
                commit_lat.lock().unwrap().extend(co);
            });
        }
    });
    let round_s = started.elapsed().as_secs_f64();
    let mut cl = claim_lat.into_inner().unwrap();
    let mut co = commit_lat.into_inner().unwrap();

    // The dispatcher's path: one conditional UPDATE a check.
    let m = (n / 10).max(1_000).min(people.len());
    let single: Vec<Check> = people[..m]
        .iter()
        .map(|p| Check::pending(CheckId::scheduled(p.id, 2000), t.id, 3_000_000, 1))
        .collect();
    for chunk in single.chunks(10_000) {
        store.create_checks(chunk)?;
    }
    let one_lat = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|sc| {
        for w in 0..workers {
            let (store, single, one_lat) = (&store, &single, &one_lat);
            sc.spawn(move || {
                let mut v = Vec::new();
                for c in single.iter().skip(w).step_by(workers) {
                    let t0 = Instant::now();
                    store
                        .claim(&c.id, &format!("node-{w}"), u64::MAX)
                        .expect("claim");
                    v.push(t0.elapsed());
                }
                one_lat.lock().unwrap().extend(v);
            });
        }
    });
    let one_s = started.elapsed().as_secs_f64();
    let mut one = one_lat.into_inner().unwrap();
    let done = claimed.load(Ordering::Relaxed);
    let out = serde_json::json!({
        "checks": n,
        "workers": workers,
        "batch": batch,
        "fsync": true,
        "plan_checks_per_s": (planned as f64 / plan_s).round(),
        "replan_created": again,
        "replan_s": (replan_s * 10.0).round() / 10.0,
        "claimed": done,
        "claims_per_s": (done as f64 / round_s).round(),
        "outcome_commits_per_s": (co.len() as f64 / round_s).round(),
        "claim_due_ms": {"p50": pct(&mut cl, 0.5), "p99": pct(&mut cl, 0.99)},
        "commit_ms": {"p50": pct(&mut co, 0.5), "p99": pct(&mut co, 0.99)},
        "single_claims_per_s": (one.len() as f64 / one_s).round(),
        "single_claim_ms": {"p50": pct(&mut one, 0.5), "p99": pct(&mut one, 0.99)},
    });
    println!("{out}");
    Ok(())
}
