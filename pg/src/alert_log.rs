//! The alert invariants on PostgreSQL ([`AlertLog`] for [`PgStore`]): the
//! inbox (written with each final outcome), case timers, the outbox, and
//! one transaction per alert step. A step that consumes an inbox entry
//! another node consumed first is refused ([`StoreError::Fenced`]), so a
//! paused alert node that wakes cannot open a case twice.
//!
//! Depends on: the crate root (the bridge), [`crate::check_log`] (check keys),
//! genki-store's alert records.

use deadpool_postgres::GenericClient;
use genki_store::alerts::{
    AlertCase, AlertInput, AlertWrite, CaseState, Notification, NotifyState,
};
use genki_store::{AlertLog, StoreError};

use crate::check_log::key;
use crate::{body, i, record, u, PgError, PgStore, R};

/// The tier timer of a case: its deadline while open.
fn timer_at(c: &AlertCase) -> Option<i64> {
    match (c.state, c.tier_deadline_ms) {
        (CaseState::Open, Some(at)) => Some(i(at)),
        _ => None,
    }
}

/// When a notification is due: while pending.
fn due_at(n: &Notification) -> Option<i64> {
    (n.state == NotifyState::Pending).then(|| i(n.next_at_ms))
}

async fn notification_of(c: &impl GenericClient, id: u64) -> R<Option<Notification>> {
    let row = c
        .query_opt("SELECT body FROM notifications WHERE id = $1", &[&i(id)])
        .await?;
    Ok(row.map(|r| record("notifications", r.get(0))).transpose()?)
}

async fn case_of(c: &impl GenericClient, id: u64) -> R<Option<AlertCase>> {
    let row = c
        .query_opt("SELECT body FROM cases WHERE id = $1", &[&i(id)])
        .await?;
    Ok(row.map(|r| record("cases", r.get(0))).transpose()?)
}

/// Ids of a sequence, `n` of them, in order.
pub(crate) async fn next_ids(c: &impl GenericClient, seq: &str, n: usize) -> R<Vec<u64>> {
    let rows = c
        .query(
            &format!("SELECT nextval('{seq}') FROM generate_series(1, $1::bigint)"),
            &[&(n as i64)],
        )
        .await?;
    let mut ids: Vec<u64> = rows.iter().map(|r| u(r.get(0))).collect();
    ids.sort_unstable();
    Ok(ids)
}

impl AlertLog for PgStore {
    fn alert_inbox(&self, limit: usize) -> Result<Vec<AlertInput>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM alert_inbox ORDER BY subscriber_id, kind, slot LIMIT $1",
                    &[&(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("alert_inbox", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn due_case_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT id FROM cases WHERE timer_at IS NOT NULL AND timer_at <= $1
                     ORDER BY timer_at, id LIMIT $2",
                    &[&i(now_ms), &(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(rows.iter().map(|r| u(r.get(0))).collect())
        })
    }

    fn due_notifications(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM notifications WHERE due_at IS NOT NULL AND due_at <= $1
                     ORDER BY due_at, id LIMIT $2",
                    &[&i(now_ms), &(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("notifications", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn next_alert_work_ms(&self) -> Result<Option<u64>, StoreError> {
        self.run(|c| async move {
            let row = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM alert_inbox),
                            (SELECT min(timer_at) FROM cases WHERE timer_at IS NOT NULL),
                            (SELECT min(due_at) FROM notifications WHERE due_at IS NOT NULL)",
                    &[],
                )
                .await?;
            if row.get::<_, bool>(0) {
                return Ok(Some(0));
            }
            let a: Option<i64> = row.get(1);
            let b: Option<i64> = row.get(2);
            Ok(match (a, b) {
                (Some(a), Some(b)) => Some(u(a.min(b))),
                (x, y) => x.or(y).map(u),
            })
        })
    }

    fn recover_notifications(&self, now_ms: u64) -> Result<usize, StoreError> {
        let stale: Vec<Notification> = self.run(|c| async move {
            let rows = c
                .query(
                    "SELECT body FROM notifications WHERE due_at IS NOT NULL
                       AND body->'sending_until_ms' IS NOT NULL
                       AND body->'sending_until_ms' <> 'null'::jsonb",
                    &[],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("notifications", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })?;
        let stale: Vec<Notification> = stale
            .into_iter()
            .map(|mut n| {
                n.sending_until_ms = None;
                n.next_at_ms = now_ms;
                n
            })
            .collect();
        let count = stale.len();
        if count > 0 {
            self.alert_commit(AlertWrite {
                notifications: stale,
                ..Default::default()
            })?;
        }
        Ok(count)
    }

    fn open_case_count(&self) -> Result<u64, StoreError> {
        self.run(|c| async move {
            Ok(u(c
                .query_one("SELECT count(*) FROM open_cases", &[])
                .await?
                .get(0)))
        })
    }

    fn alert_case(&self, id: u64) -> Result<Option<AlertCase>, StoreError> {
        self.run(move |c| async move { case_of(&c, id).await })
    }

    fn open_case_of(&self, subscriber_id: u64) -> Result<Option<AlertCase>, StoreError> {
        self.run(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT c.body FROM open_cases o JOIN cases c ON c.id = o.case_id
                     WHERE o.subscriber_id = $1",
                    &[&i(subscriber_id)],
                )
                .await?;
            Ok(row.map(|r| record("cases", r.get(0))).transpose()?)
        })
    }

    fn cases_of(
        &self,
        tenant_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AlertCase>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM cases WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    &[
                        &i(tenant_id),
                        &i(after),
                        &(limit.min(i64::MAX as usize) as i64),
                    ],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("cases", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn notification(&self, id: u64) -> Result<Option<Notification>, StoreError> {
        self.run(move |c| async move { notification_of(&c, id).await })
    }

    fn notifications_of(&self, case_id: u64) -> Result<Vec<Notification>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM notifications WHERE case_id = $1 ORDER BY id",
                    &[&i(case_id)],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("notifications", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn alert_commit(
        &self,
        mut w: AlertWrite,
    ) -> Result<(Option<AlertCase>, Vec<Notification>), StoreError> {
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            // A case that is gone (its person erased meanwhile), or a new
            // one about an erased person, is not brought back, nor its
            // notifications: only the inbox entry is consumed.
            if let Some(cs) = w.case.as_ref() {
                let erased = tx
                    .query_opt(
                        "SELECT 1 FROM erased WHERE subscriber_id = $1",
                        &[&i(cs.subscriber_id)],
                    )
                    .await?
                    .is_some();
                let stored = if cs.id != 0 {
                    tx.query_opt("SELECT body FROM cases WHERE id = $1 FOR UPDATE", &[&i(cs.id)])
                        .await?
                        .map(|r| record::<AlertCase>("cases", r.get(0)))
                        .transpose()?
                } else {
                    None
                };
                let missing = cs.id != 0 && stored.is_none();
                // Another node changed the case since this one read it (a
                // take from the console while the alert node climbed a
                // tier): a case's timeline only grows, so the stored one
                // must begin the one written; else this write would undo
                // the other's, and is refused for a fresh read.
                if let Some(old) = &stored {
                    if !cs.timeline.starts_with(&old.timeline) {
                        return Err(PgError::Store(StoreError::Conflict(
                            "this case was changed meanwhile by another node; read it again",
                        )));
                    }
                }
                if erased || missing {
                    if let Some(id) = w.inbox_done {
                        let (s, k, sl) = key(&id);
                        tx.execute(
                            "DELETE FROM alert_inbox WHERE subscriber_id = $1 AND kind = $2 AND slot = $3",
                            &[&s, &k, &sl],
                        )
                        .await?;
                    }
                    tx.commit().await?;
                    return Ok((None, Vec::new()));
                }
            }
            if let Some(id) = w.inbox_done {
                let (s, k, sl) = key(&id);
                let gone = tx
                    .query_opt(
                        "SELECT 1 FROM alert_inbox WHERE subscriber_id = $1 AND kind = $2 AND slot = $3
                         FOR UPDATE",
                        &[&s, &k, &sl],
                    )
                    .await?
                    .is_none();
                // Another node applied this outcome first: this step is a
                // late copy of that one.
                if gone {
                    return Err(PgError::Store(StoreError::Fenced(id.to_string())));
                }
                tx.execute(
                    "DELETE FROM alert_inbox WHERE subscriber_id = $1 AND kind = $2 AND slot = $3",
                    &[&s, &k, &sl],
                )
                .await?;
            }
            if let Some(cs) = w.case.as_mut() {
                if cs.id == 0 {
                    cs.id = next_ids(&tx, "case_ids", 1).await?[0];
                }
                tx.execute(
                    "INSERT INTO cases (id, tenant_id, subscriber_id, timer_at, resolved_at_ms, body)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) DO UPDATE SET timer_at = EXCLUDED.timer_at,
                         resolved_at_ms = EXCLUDED.resolved_at_ms, body = EXCLUDED.body",
                    &[
                        &i(cs.id),
                        &i(cs.tenant_id),
                        &i(cs.subscriber_id),
                        &timer_at(cs),
                        &cs.resolved_at_ms.map(i),
                        &body(&*cs),
                    ],
                )
                .await?;
                if cs.state == CaseState::Resolved {
                    // Only this case's pointer: a newer case may own it already.
                    tx.execute(
                        "DELETE FROM open_cases WHERE subscriber_id = $1 AND case_id = $2",
                        &[&i(cs.subscriber_id), &i(cs.id)],
                    )
                    .await?;
                } else {
                    tx.execute(
                        "INSERT INTO open_cases (subscriber_id, case_id) VALUES ($1, $2)
                         ON CONFLICT (subscriber_id) DO UPDATE SET case_id = EXCLUDED.case_id",
                        &[&i(cs.subscriber_id), &i(cs.id)],
                    )
                    .await?;
                }
            }
            let new = w.notifications.iter().filter(|n| n.id == 0).count();
            let mut ids = next_ids(&tx, "notification_ids", new).await?.into_iter();
            let case_id = w.case.as_ref().map(|c| c.id).unwrap_or(0);
            let mut gone = Vec::new();
            for n in w.notifications.iter_mut() {
                if n.id != 0 {
                    let exists = tx
                        .query_opt(
                            "SELECT 1 FROM notifications WHERE id = $1 FOR UPDATE",
                            &[&i(n.id)],
                        )
                        .await?
                        .is_some();
                    if !exists {
                        // Erased with its case: not brought back.
                        gone.push(n.id);
                        continue;
                    }
                } else {
                    n.id = ids.next().ok_or(StoreError::Db("no notification id".into()))?;
                }
                if n.case_id == 0 {
                    n.case_id = case_id;
                }
                tx.execute(
                    "INSERT INTO notifications (id, case_id, due_at, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET case_id = EXCLUDED.case_id,
                         due_at = EXCLUDED.due_at, body = EXCLUDED.body",
                    &[&i(n.id), &i(n.case_id), &due_at(n), &body(&*n)],
                )
                .await?;
            }
            tx.commit().await?;
            w.notifications.retain(|n| !gone.contains(&n.id));
            Ok((w.case, w.notifications))
        })
    }
}
