//! The check lifecycle on PostgreSQL ([`CheckLog`] for [`PgStore`]):
//! idempotent planning, claims with a lease on the database's clock,
//! finishing fenced by the claim's generation, first outcome wins.
//!
//! Depends on: the crate root (the bridge, errors), genki-store's records
//! and its day-view rule ([`genki_store::dayview::standing`]).

use deadpool_postgres::GenericClient;
use genki_store::dayview::{standing, word_name};
use genki_store::records::{Attempt, Check, CheckId, CheckStatus};
use genki_store::{AlertInput, CheckLog, DayView, Next, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_postgres::Row;

use crate::{body, i, record, u, PgError, PgStore, R};

/// The columns a [`Check`] is read from: its JSON, then the columns that
/// are the truth for what the database changes by itself (status, due
/// time, owner and lease, finish time), then the claim generation.
pub(crate) const CHECK_COLS: &str = "body, status, due_at_ms, owner, \
     (extract(epoch from lease_until) * 1000)::bigint, finished_at_ms, claim_gen";

/// [`CHECK_COLS`] of the table named `c`.
const CHECK_COLS_C: &str = "c.body, c.status, c.due_at_ms, c.owner, \
     (extract(epoch from c.lease_until) * 1000)::bigint, c.finished_at_ms, c.claim_gen";

/// Where a check's row is.
pub(crate) const WHERE_ID: &str = "subscriber_id = $1 AND kind = $2 AND slot = $3";

pub(crate) fn status_code(s: CheckStatus) -> i16 {
    match s {
        CheckStatus::Pending => 0,
        CheckStatus::Dialing => 1,
        CheckStatus::Done => 2,
    }
}

/// A check's id as its three key columns.
pub(crate) fn key(id: &CheckId) -> (i64, i16, i64) {
    (i(id.subscriber_id), id.kind.byte() as i16, i(id.slot))
}

/// A check from a row selected with [`CHECK_COLS`] (and its generation).
pub(crate) fn check_of(row: &Row) -> Result<(Check, i64), StoreError> {
    let mut c: Check = record("checks", row.get(0))?;
    let status: i16 = row.get(1);
    c.status = match status {
        0 => CheckStatus::Pending,
        1 => CheckStatus::Dialing,
        _ => CheckStatus::Done,
    };
    c.due_at_ms = u(row.get(2));
    if c.status == CheckStatus::Dialing {
        c.owner = row.get(3);
        c.lease_until_ms = row.get::<_, Option<i64>>(4).map(u);
    } else {
        c.owner = None;
        c.lease_until_ms = None;
    }
    c.finished_at_ms = row.get::<_, Option<i64>>(5).map(u);
    Ok((c, row.get(6)))
}

fn checks_of_rows(rows: &[Row]) -> Result<Vec<Check>, StoreError> {
    rows.iter().map(|r| check_of(r).map(|(c, _)| c)).collect()
}

/// The day-view columns of a check.
fn standing_cols(c: &Check) -> (i16, Option<i16>) {
    let (w, r) = standing(c);
    (w as i16, r.map(|r| r as i16))
}

/// The standing of a claimed check.
fn dialing_standing() -> (i16, Option<i16>) {
    let mut c = Check::pending(CheckId::one_off(0, 0), 0, 0, 0);
    c.status = CheckStatus::Dialing;
    standing_cols(&c)
}

/// Insert checks unless their id exists or their person was erased; how many.
async fn insert_checks(c: &impl GenericClient, checks: &[Check]) -> R<u64> {
    let mut n = 0;
    for chunk in checks.chunks(5_000) {
        let (mut subs, mut kinds, mut slots, mut tenants, mut ats) = (
            Vec::<i64>::new(),
            Vec::<i16>::new(),
            Vec::<i64>::new(),
            Vec::<i64>::new(),
            Vec::<i64>::new(),
        );
        let (mut dues, mut words, mut ranks, mut bodies) = (vec![], vec![], vec![], vec![]);
        for ch in chunk {
            let (s, k, sl) = key(&ch.id);
            subs.push(s);
            kinds.push(k);
            slots.push(sl);
            tenants.push(i(ch.tenant_id));
            ats.push(i(ch.id.time_ms()));
            dues.push(i(ch.due_at_ms));
            let (w, r) = standing_cols(ch);
            words.push(w);
            ranks.push(r);
            bodies.push(body(ch));
        }
        n += c
            .execute(
                "INSERT INTO checks (subscriber_id, kind, slot, tenant_id, at_ms, status, due_at_ms, word, rank, body)
                 SELECT s, k, sl, t, a, 0, d, w, r, b
                 FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[],
                             $6::bigint[], $7::smallint[], $8::smallint[], $9::jsonb[])
                      AS u(s, k, sl, t, a, d, w, r, b)
                 WHERE NOT EXISTS (SELECT 1 FROM erased e WHERE e.subscriber_id = u.s)
                 ON CONFLICT DO NOTHING",
                &[&subs, &kinds, &slots, &tenants, &ats, &dues, &words, &ranks, &bodies],
            )
            .await?;
    }
    Ok(n)
}

/// Apply `next` to `c` (as `Store::apply_next` does) and write the row,
/// the alert inbox entry of a final outcome with it.
async fn write_next(
    tx: &impl GenericClient,
    c: &mut Check,
    next: Next,
    now_ms: u64,
    take_over: bool,
) -> R<()> {
    match next {
        Next::Retry { due_at_ms, cause } => {
            c.status = CheckStatus::Pending;
            c.due_at_ms = due_at_ms;
            c.last_cause = Some(cause);
        }
        Next::Final { outcome, cause } => {
            c.status = CheckStatus::Done;
            c.outcome = Some(outcome);
            if cause.is_some() {
                c.last_cause = cause;
            }
            c.finished_at_ms = Some(now_ms);
            let (s, k, sl) = key(&c.id);
            let input = AlertInput {
                check_id: c.id,
                tenant_id: c.tenant_id,
                subscriber_id: c.id.subscriber_id,
                outcome,
                at_ms: now_ms,
            };
            tx.execute(
                "INSERT INTO alert_inbox (subscriber_id, kind, slot, body) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&s, &k, &sl, &body(&input)],
            )
            .await?;
        }
    }
    c.owner = None;
    c.lease_until_ms = None;
    let (s, k, sl) = key(&c.id);
    let (w, r) = standing_cols(c);
    tx.execute(
        &format!(
            "UPDATE checks SET status = $4, due_at_ms = $5, finished_at_ms = $6, word = $7, rank = $8,
                 body = $9, owner = NULL, lease_until = NULL,
                 claim_gen = claim_gen + $10 WHERE {WHERE_ID}"
        ),
        &[
            &s,
            &k,
            &sl,
            &crate::check_log::status_code(c.status),
            &i(c.due_at_ms),
            &c.finished_at_ms.map(i),
            &w,
            &r,
            &body(&*c),
            &(take_over as i64),
        ],
    )
    .await?;
    Ok(())
}

/// A lease until `lease_until_ms` (the node's clock, `now_ms` now) as a
/// length from the database's now (at most a week, at least nothing).
fn lease_len_ms(lease_until_ms: u64, now_ms: u64) -> i64 {
    lease_until_ms.saturating_sub(now_ms).min(7 * 86_400_000) as i64
}

impl PgStore {
    fn remember(&self, id: CheckId, gen: i64) {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, gen);
    }

    fn forget(&self, id: &CheckId) {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    fn mine(&self, id: &CheckId) -> Option<i64> {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
    }

    /// Claim up to `limit` due checks at once, picked `FOR UPDATE SKIP
    /// LOCKED` (nodes claiming together never wait on each other nor
    /// take the same check), oldest due first.
    pub fn claim_due(
        &self,
        now_ms: u64,
        limit: usize,
        owner: &str,
        lease_ms: u64,
    ) -> Result<Vec<Check>, StoreError> {
        let owner = owner.to_string();
        let (w, r) = dialing_standing();
        let got: Vec<(Check, i64)> = self.run(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "WITH picked AS (
                             SELECT subscriber_id, kind, slot FROM checks
                             WHERE status = 0 AND due_at_ms <= $1
                             ORDER BY due_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)
                         UPDATE checks c SET status = 1, owner = $3,
                             lease_until = now() + $4::bigint * interval '1 millisecond',
                             claim_gen = claim_gen + 1, word = $5, rank = $6
                         FROM picked p
                         WHERE c.subscriber_id = p.subscriber_id AND c.kind = p.kind AND c.slot = p.slot
                           AND NOT EXISTS (SELECT 1 FROM erased e WHERE e.subscriber_id = c.subscriber_id)
                         RETURNING {CHECK_COLS_C}"
                    ),
                    &[&i(now_ms), &(limit as i64), &owner, &(lease_ms.min(7 * 86_400_000) as i64), &w, &r],
                )
                .await?;
            Ok(rows
                .iter()
                .map(check_of)
                .collect::<Result<Vec<_>, StoreError>>()?)
        })?;
        let mut out = Vec::with_capacity(got.len());
        for (c, gen) in got {
            self.remember(c.id, gen);
            out.push(c);
        }
        out.sort_by_key(|c| c.due_at_ms);
        Ok(out)
    }
}

impl CheckLog for PgStore {
    fn create_checks(&self, checks: &[Check]) -> Result<u64, StoreError> {
        let checks = checks.to_vec();
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let n = insert_checks(&tx, &checks).await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Each statement commits synchronously already (10,000 rows a
    /// round trip), so the planner's batches are durable as they return.
    fn plan_checks(&self, checks: &[Check]) -> Result<u64, StoreError> {
        self.create_checks(checks)
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn create_check(&self, ch: &Check) -> Result<bool, StoreError> {
        let ch = ch.clone();
        self.run(move |c| async move { Ok(insert_checks(&c, &[ch]).await? == 1) })
    }

    fn check(&self, id: &CheckId) -> Result<Option<Check>, StoreError> {
        let (s, k, sl) = key(id);
        self.run(move |c| async move {
            let row = c
                .query_opt(
                    &format!("SELECT {CHECK_COLS} FROM checks WHERE {WHERE_ID}"),
                    &[&s, &k, &sl],
                )
                .await?;
            Ok(row.map(|r| check_of(&r).map(|(c, _)| c)).transpose()?)
        })
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<Check>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {CHECK_COLS} FROM checks WHERE status = 0 AND due_at_ms <= $1
                         ORDER BY due_at_ms, subscriber_id, kind, slot LIMIT $2"
                    ),
                    &[&i(now_ms), &(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(checks_of_rows(&rows)?)
        })
    }

    fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        self.run(|c| async move {
            let row = c
                .query_one("SELECT min(due_at_ms) FROM checks WHERE status = 0", &[])
                .await?;
            Ok(row.get::<_, Option<i64>>(0).map(u))
        })
    }

    fn claim(
        &self,
        id: &CheckId,
        owner: &str,
        lease_until_ms: u64,
    ) -> Result<Option<Check>, StoreError> {
        let (s, k, sl) = key(id);
        let owner = owner.to_string();
        let len = lease_len_ms(lease_until_ms, (self.clock)());
        let (w, r) = dialing_standing();
        let got = self.run(move |c| async move {
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE checks SET status = 1, owner = $4,
                             lease_until = now() + $5::bigint * interval '1 millisecond',
                             claim_gen = claim_gen + 1, word = $6, rank = $7
                         WHERE {WHERE_ID} AND status = 0
                           AND NOT EXISTS (SELECT 1 FROM erased e WHERE e.subscriber_id = $1)
                         RETURNING {CHECK_COLS}"
                    ),
                    &[&s, &k, &sl, &owner, &len, &w, &r],
                )
                .await?;
            Ok(row.map(|r| check_of(&r)).transpose()?)
        })?;
        Ok(got.map(|(c, gen)| {
            self.remember(c.id, gen);
            c
        }))
    }

    fn finish_attempt(
        &self,
        id: &CheckId,
        attempt: &Attempt,
        next: Next,
        now_ms: u64,
    ) -> Result<Check, StoreError> {
        let (s, k, sl) = key(id);
        let id = *id;
        let mine = self.mine(&id);
        let attempt = attempt.clone();
        let retry = matches!(next, Next::Retry { .. });
        let was_done = std::sync::Arc::new(AtomicBool::new(false));
        let done_flag = was_done.clone();
        let r = self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT {CHECK_COLS}, lease_until <= now() FROM checks
                         WHERE {WHERE_ID} FOR UPDATE"
                    ),
                    &[&s, &k, &sl],
                )
                .await?
                .ok_or(StoreError::NotFound("check"))?;
            let (mut ch, gen) = check_of(&row)?;
            let expired: Option<bool> = row.get(7);
            let ours = mine == Some(gen);
            let allowed = match ch.status {
                CheckStatus::Dialing => ours || expired == Some(true),
                // The call's end after the key's early write: the attempt
                // only, the first outcome stays.
                CheckStatus::Done => ours,
                CheckStatus::Pending => false,
            };
            if !allowed {
                return Err(PgError::Store(StoreError::Fenced(id.to_string())));
            }
            tx.execute(
                "INSERT INTO attempts (subscriber_id, kind, slot, n, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (subscriber_id, kind, slot, n) DO UPDATE SET body = EXCLUDED.body",
                &[&s, &k, &sl, &(attempt.n as i32), &body(&attempt)],
            )
            .await?;
            if ch.status != CheckStatus::Done {
                ch.attempts = ch.attempts.max(attempt.n);
                // A take-over ends the old claim: its owner, if it wakes,
                // no longer matches the row's generation.
                write_next(&tx, &mut ch, next, now_ms, !ours).await?;
            } else {
                done_flag.store(true, Ordering::Relaxed);
            }
            tx.commit().await?;
            Ok(ch)
        });
        // Forgotten once the claim is over: re-queued, or the second
        // (end-of-call) write of a finished check, or fenced. Not after a
        // failed write: the caller tries again with the same claim.
        let over = match &r {
            Ok(c) => retry || c.status == CheckStatus::Done && was_done.load(Ordering::Relaxed),
            Err(StoreError::Fenced(_)) => true,
            Err(_) => false,
        };
        if over {
            self.forget(&id);
        }
        r
    }

    fn settle_pending(
        &self,
        id: &CheckId,
        next: Next,
        now_ms: u64,
    ) -> Result<Option<Check>, StoreError> {
        let (s, k, sl) = key(id);
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_opt(
                    &format!("SELECT {CHECK_COLS} FROM checks WHERE {WHERE_ID} FOR UPDATE"),
                    &[&s, &k, &sl],
                )
                .await?
            else {
                return Ok(None);
            };
            let (mut ch, _) = check_of(&row)?;
            if ch.status != CheckStatus::Pending {
                return Ok(None);
            }
            write_next(&tx, &mut ch, next, now_ms, false).await?;
            tx.commit().await?;
            Ok(Some(ch))
        })
    }

    fn inflight(&self) -> Result<Vec<Check>, StoreError> {
        let rows: Vec<(Check, i64)> = self.run(|c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {CHECK_COLS} FROM checks WHERE status = 1
                         ORDER BY subscriber_id, kind, slot"
                    ),
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(check_of)
                .collect::<Result<Vec<_>, StoreError>>()?)
        })?;
        // This node's own claims (found again after its restart) are its
        // to finish.
        Ok(rows
            .into_iter()
            .map(|(c, gen)| {
                if c.owner.as_deref() == Some(self.node.as_str()) {
                    self.remember(c.id, gen);
                }
                c
            })
            .collect())
    }

    fn renew_leases(
        &self,
        owner: &str,
        ids: &[CheckId],
        _now_ms: u64,
        lease_ms: u64,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let owner = owner.to_string();
        let (mut subs, mut kinds, mut slots) = (vec![], vec![], vec![]);
        for id in ids {
            let (s, k, sl) = key(id);
            subs.push(s);
            kinds.push(k);
            slots.push(sl);
        }
        self.run(move |c| async move {
            Ok(c.execute(
                "UPDATE checks c SET lease_until = now() + $2::bigint * interval '1 millisecond'
                 FROM unnest($3::bigint[], $4::smallint[], $5::bigint[]) AS g(s, k, sl)
                 WHERE c.subscriber_id = g.s AND c.kind = g.k AND c.slot = g.sl
                   AND c.status = 1 AND c.owner = $1",
                &[
                    &owner,
                    &(lease_ms.min(7 * 86_400_000) as i64),
                    &subs,
                    &kinds,
                    &slots,
                ],
            )
            .await?)
        })
    }

    fn expired_claims(&self, _now_ms: u64, limit: usize) -> Result<Vec<Check>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {CHECK_COLS} FROM checks WHERE status = 1 AND lease_until <= now()
                         ORDER BY lease_until LIMIT $1"
                    ),
                    &[&(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(checks_of_rows(&rows)?)
        })
    }

    fn attempts(&self, id: &CheckId) -> Result<Vec<Attempt>, StoreError> {
        let (s, k, sl) = key(id);
        self.run(move |c| async move {
            let rows = c
                .query(
                    &format!("SELECT body FROM attempts WHERE {WHERE_ID} ORDER BY n"),
                    &[&s, &k, &sl],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("attempts", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn outcomes(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        after: Option<&CheckId>,
    ) -> Result<Vec<Check>, StoreError> {
        // No `after`: from the first check id (none is below 0, 0, 0).
        let (sid, kind, slot) = after.map_or((-1, -1, -1), key);
        self.run(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {CHECK_COLS} FROM checks
                         WHERE status = 2 AND tenant_id = $1 AND finished_at_ms >= $2 AND finished_at_ms < $3
                           AND (finished_at_ms, subscriber_id, kind, slot) > ($2, $5, $6, $7)
                         ORDER BY finished_at_ms, subscriber_id, kind, slot LIMIT $4"
                    ),
                    &[
                        &i(tenant_id),
                        &i(from_ms),
                        &i(to_ms),
                        &(limit.min(i64::MAX as usize) as i64),
                        &sid,
                        &kind,
                        &slot,
                    ],
                )
                .await?;
            Ok(checks_of_rows(&rows)?)
        })
    }

    fn checks_of(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<Check>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {CHECK_COLS} FROM checks
                         WHERE tenant_id = $1 AND at_ms >= $2 AND at_ms < $3
                         ORDER BY at_ms, subscriber_id, kind, slot LIMIT $4"
                    ),
                    &[
                        &i(tenant_id),
                        &i(from_ms),
                        &i(to_ms),
                        &(limit.min(i64::MAX as usize) as i64),
                    ],
                )
                .await?;
            Ok(checks_of_rows(&rows)?)
        })
    }

    fn checks_of_subscriber(
        &self,
        subscriber_id: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Check>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {CHECK_COLS} FROM checks
                         WHERE subscriber_id = $1 AND at_ms >= $2 AND at_ms < $3
                         ORDER BY at_ms, kind, slot"
                    ),
                    &[&i(subscriber_id), &i(from_ms), &i(to_ms)],
                )
                .await?;
            Ok(checks_of_rows(&rows)?)
        })
    }

    fn day_view(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        after: Option<&genki_store::RowAt>,
    ) -> Result<DayView, StoreError> {
        let after = after.map(|a| (a.rank as i16, i(a.due_ms), key(&a.check)));
        self.run(move |c| async move {
            let mut v = DayView::default();
            let (t, f, to) = (i(tenant_id), i(from_ms), i(to_ms));
            for r in c
                .query(
                    "SELECT word, count(*) FROM checks
                     WHERE tenant_id = $1 AND at_ms >= $2 AND at_ms < $3 GROUP BY word",
                    &[&t, &f, &to],
                )
                .await?
            {
                let n = u(r.get(1));
                *v.counts
                    .entry(word_name(r.get::<_, i16>(0) as u8).to_string())
                    .or_default() += n;
                v.total += n;
            }
            for r in c
                .query(
                    "SELECT outcome, count(*) FROM tallies
                     WHERE tenant_id = $1 AND at_ms >= $2 AND at_ms < $3 GROUP BY outcome",
                    &[&t, &f, &to],
                )
                .await?
            {
                let n = u(r.get(1));
                *v.counts.entry(r.get::<_, String>(0)).or_default() += n;
                v.total += n;
            }
            // One more row than asked: whether another page follows.
            let lim = limit.saturating_add(1).min(i64::MAX as usize) as i64;
            // The rows after a page's last, in the same order (a row
            // comparison on the day's rows, found by `checks_of`).
            let rows = match after {
                None => {
                    c.query(
                        &format!(
                            "SELECT {CHECK_COLS} FROM checks
                             WHERE tenant_id = $1 AND at_ms >= $2 AND at_ms < $3 AND rank IS NOT NULL
                             ORDER BY rank, due_at_ms, subscriber_id, kind, slot LIMIT $4"
                        ),
                        &[&t, &f, &to, &lim],
                    )
                    .await?
                }
                Some((rank, due, (sid, kind, slot))) => {
                    c.query(
                        &format!(
                            "SELECT {CHECK_COLS} FROM checks
                             WHERE tenant_id = $1 AND at_ms >= $2 AND at_ms < $3 AND rank IS NOT NULL
                               AND (rank, due_at_ms, subscriber_id, kind, slot) > ($5, $6, $7, $8, $9)
                             ORDER BY rank, due_at_ms, subscriber_id, kind, slot LIMIT $4"
                        ),
                        &[
                            &t,
                            &f,
                            &to,
                            &lim,
                            &rank,
                            &due,
                            &sid,
                            &kind,
                            &slot,
                        ],
                    )
                    .await?
                }
            };
            v.waiting = checks_of_rows(&rows)?;
            if v.waiting.len() > limit {
                v.waiting.truncate(limit);
                // The ordered rows' own place (rank and due are columns
                // computed from the same record).
                v.next = v.waiting.last().and_then(genki_store::RowAt::of);
            }
            Ok(v)
        })
    }

    fn one_offs_since(&self, subscriber_id: u64, from_ms: u64) -> Result<u64, StoreError> {
        let kind = genki_store::CheckKind::OneOff.byte() as i16;
        self.run(move |c| async move {
            let row = c
                .query_one(
                    "SELECT count(*) FROM checks WHERE subscriber_id = $1 AND kind = $2 AND slot >= $3",
                    &[&i(subscriber_id), &kind, &i(from_ms)],
                )
                .await?;
            Ok(u(row.get(0)))
        })
    }
}
