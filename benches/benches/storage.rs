//! Storage and scheduler: synced outcome commits per second with many
//! concurrent writers (does group commit happen?), planning a day of
//! checks for many subscribers, and the due scan.
//! Run: `cargo bench -p genki-benches --bench storage`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use genki_engine::checks::schedule::Calendar;
use genki_storage::{Attempt, Check, CheckId, Next, Outcome, Schedule, Store, Subscriber, Tenant};

fn check(sub: u64, slot: u64) -> Check {
    Check::pending(CheckId::scheduled(sub, slot), 1, slot * 1000, 0)
}

fn subscriber(tenant: u64) -> Subscriber {
    Subscriber {
        id: 0,
        tenant_id: tenant,
        name: "x".into(),
        phone: "sip:1@127.0.0.1".into(),
        schedule: Some(Schedule {
            days: vec![1, 2, 3, 4, 5, 6, 7],
            times: vec!["09:30".into()],
        }),
        paused_until: None,
        notes: String::new(),
        created_at_ms: 0,
    }
}

/// `writers` threads each finish `per_writer` claimed checks (one synced batch each).
fn commits(store: &Arc<Store>, writers: u64, per_writer: u64, base: u64) -> Duration {
    let checks: Vec<Check> = (0..writers * per_writer)
        .map(|i| check(base + i, 1))
        .collect();
    store.create_checks(&checks).unwrap();
    for c in &checks {
        store.claim(&c.id, "bench", u64::MAX).unwrap();
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let store = store.clone();
            let checks = &checks;
            s.spawn(move || {
                for c in &checks[(w * per_writer) as usize..((w + 1) * per_writer) as usize] {
                    let a = Attempt {
                        n: 1,
                        answered: true,
                        digits: "1".into(),
                        end_reason: genki_storage::EndReason::ScriptDone,
                        outcome: Some(Outcome::Fine),
                        ..Default::default()
                    };
                    store
                        .finish_attempt(
                            &c.id,
                            &a,
                            Next::Final {
                                outcome: Outcome::Fine,
                                cause: None,
                            },
                            2,
                        )
                        .unwrap();
                }
            });
        }
    });
    start.elapsed()
}

fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(genki_storage::open(dir.path()).unwrap());
    let mut g = c.benchmark_group("storage");
    g.sample_size(10);
    let mut base = 1_000_000u64;
    for writers in [1u64, 16, 64] {
        let per = 2000 / writers;
        g.throughput(Throughput::Elements(writers * per));
        g.bench_function(format!("synced outcome commits, {writers} writers"), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    t += commits(&store, writers, per, base);
                    base += writers * per;
                }
                t
            })
        });
    }
    // The due scan over 100,000 pending checks, 2,000 at a time.
    let due_dir = tempfile::tempdir().unwrap();
    let due_store = genki_storage::open(due_dir.path()).unwrap();
    let checks: Vec<Check> = (0..100_000u64).map(|i| check(i + 1, 1_000 + i)).collect();
    for chunk in checks.chunks(10_000) {
        due_store.create_checks(chunk).unwrap();
    }
    g.throughput(Throughput::Elements(2000));
    g.bench_function("due scan: 2,000 of 100,000 pending", |b| {
        b.iter(|| due_store.due(u64::MAX, 2000).unwrap().len())
    });
    g.finish();
}

fn planning(c: &mut Criterion) {
    let mut g = c.benchmark_group("planning");
    g.sample_size(10);
    let n = 100_000u64;
    g.throughput(Throughput::Elements(n));
    let tenant = Tenant::with_defaults("bench", 0);
    let cal = Calendar::of(&tenant).unwrap();
    let date: jiff::civil::Date = "2026-11-24".parse().unwrap();
    g.bench_function(
        "plan a day: 100,000 subscribers (slots + synced batches of 1,000)",
        |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let store = genki_storage::open(dir.path()).unwrap();
                    let t = store.create_tenant(tenant.clone()).unwrap();
                    let subs = store
                        .create_subscribers((0..n).map(|_| subscriber(t.id)).collect())
                        .unwrap();
                    (dir, store, subs)
                },
                |(dir, store, subs)| {
                    for page in subs.chunks(1000) {
                        let checks: Vec<Check> = page
                            .iter()
                            .flat_map(|s| {
                                cal.slots(s, date)
                                    .into_iter()
                                    .map(move |slot| check(s.id, slot))
                            })
                            .collect();
                        store.create_checks(&checks).unwrap();
                    }
                    drop(store);
                    drop(dir);
                },
                BatchSize::PerIteration,
            )
        },
    );
    g.finish();
}

criterion_group!(benches, storage, planning);
criterion_main!(benches);
