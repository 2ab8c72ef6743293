//! Tenants, tokens, people, prompts, audit, watchers, ladders, staff and
//! sessions on PostgreSQL ([`Directory`] for [`PgStore`]), with erasure,
//! retention and the role leases of many nodes.
//!
//! Depends on: the crate root (the bridge), [`crate::check_log`] and
//! [`crate::alert_log`] (keys, ids), genki-store's records.

use deadpool_postgres::GenericClient;
use genki_store::alerts::{Ladder, LadderOf, Watcher};
use genki_store::budget::{share, Held, Share};
use genki_store::records::{Outcome, Subscriber, Tenant};
use genki_store::staff::{Session, Staff};
use genki_store::{Directory, Erased, Pruned, StoreError};

use crate::alert_log::next_ids;
use crate::{body, i, record, u, PgError, PgStore, R};

fn ladder_key(of: LadderOf) -> (i8, i64) {
    match of {
        LadderOf::Tenant(t) => (b't' as i8, i(t)),
        LadderOf::Subscriber(s) => (b's' as i8, i(s)),
    }
}

fn hash_of(v: &[u8]) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(v).ok()
}

/// Turn the Done checks among `rows` (tenant, at_ms, body with outcome)
/// into anonymous counts; how many.
async fn tally(c: &impl GenericClient, tenant_id: i64, done: &[(i64, Outcome)]) -> R<u64> {
    if done.is_empty() {
        return Ok(0);
    }
    let ats: Vec<i64> = done.iter().map(|(a, _)| *a).collect();
    let outs: Vec<&str> = done.iter().map(|(_, o)| o.as_str()).collect();
    Ok(c.execute(
        "INSERT INTO tallies (tenant_id, at_ms, outcome)
         SELECT $1, a, o FROM unnest($2::bigint[], $3::text[]) AS u(a, o)",
        &[&tenant_id, &ats, &outs],
    )
    .await?)
}

/// Delete a tenant's cases chosen by `filter` (SQL over `cases`), with
/// their notifications and open pointers; (case ids, notifications).
async fn forget_cases(
    c: &impl GenericClient,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> R<(Vec<i64>, u64)> {
    let ids: Vec<i64> = c
        .query(
            &format!("DELETE FROM cases WHERE {filter} RETURNING id"),
            params,
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        return Ok((ids, 0));
    }
    let notes = c
        .execute("DELETE FROM notifications WHERE case_id = ANY($1)", &[&ids])
        .await?;
    c.execute("DELETE FROM open_cases WHERE case_id = ANY($1)", &[&ids])
        .await?;
    Ok((ids, notes))
}

impl PgStore {
    /// Count a write of a tenant or a person once it is stored.
    fn changed<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_ok() {
            self.directory_changes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }
}

impl Directory for PgStore {
    fn create_tenant(&self, mut t: Tenant) -> Result<Tenant, StoreError> {
        let r = self.run(move |c| async move {
            t.id = next_ids(&c, "tenant_ids", 1).await?[0];
            c.execute(
                "INSERT INTO tenants (id, body) VALUES ($1, $2)",
                &[&i(t.id), &body(&t)],
            )
            .await?;
            Ok(t)
        });
        self.changed(r)
    }

    fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        let (id, b) = (i(t.id), body(t));
        let r = self.run(move |c| async move {
            c.execute(
                "INSERT INTO tenants (id, body) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
                &[&id, &b],
            )
            .await?;
            Ok(())
        });
        self.changed(r)
    }

    fn tenant(&self, id: u64) -> Result<Option<Tenant>, StoreError> {
        self.run(move |c| async move {
            let row = c
                .query_opt("SELECT body FROM tenants WHERE id = $1", &[&i(id)])
                .await?;
            Ok(row.map(|r| record("tenants", r.get(0))).transpose()?)
        })
    }

    fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.run(|c| async move {
            let rows = c.query("SELECT body FROM tenants ORDER BY id", &[]).await?;
            Ok(rows
                .into_iter()
                .map(|r| record("tenants", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn put_token(&self, hash: &[u8; 32], tenant_id: u64) -> Result<(), StoreError> {
        let h = hash.to_vec();
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO tokens (hash, tenant_id) VALUES ($1, $2)
                 ON CONFLICT (hash) DO UPDATE SET tenant_id = EXCLUDED.tenant_id",
                &[&h, &i(tenant_id)],
            )
            .await?;
            Ok(())
        })
    }

    fn token(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let h = hash.to_vec();
        self.run(move |c| async move {
            let row = c
                .query_opt("SELECT tenant_id FROM tokens WHERE hash = $1", &[&h])
                .await?;
            Ok(row.map(|r| u(r.get(0))))
        })
    }

    fn tokens_of(&self, tenant_id: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT hash FROM tokens WHERE tenant_id = $1 ORDER BY hash",
                    &[&i(tenant_id)],
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|r| hash_of(r.get::<_, &[u8]>(0)))
                .collect())
        })
    }

    fn delete_token(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        let h = hash.to_vec();
        self.run(move |c| async move {
            c.execute("DELETE FROM tokens WHERE hash = $1", &[&h])
                .await?;
            Ok(())
        })
    }

    fn create_subscriber(&self, s: Subscriber) -> Result<Subscriber, StoreError> {
        Ok(self.create_subscribers(vec![s])?.remove(0))
    }

    fn create_subscribers(&self, subs: Vec<Subscriber>) -> Result<Vec<Subscriber>, StoreError> {
        if subs.is_empty() {
            return Ok(subs);
        }
        let r = self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            let ids = next_ids(&tx, "subscriber_ids", subs.len()).await?;
            let mut out = Vec::with_capacity(subs.len());
            for chunk in subs.chunks(5_000) {
                let (mut idv, mut tv, mut bv) = (vec![], vec![], vec![]);
                for s in chunk {
                    let mut s = s.clone();
                    s.id = ids[out.len()];
                    idv.push(i(s.id));
                    tv.push(i(s.tenant_id));
                    bv.push(body(&s));
                    out.push(s);
                }
                tx.execute(
                    "INSERT INTO subscribers (id, tenant_id, body)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[])",
                    &[&idv, &tv, &bv],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(out)
        });
        self.changed(r)
    }

    fn put_subscriber(&self, s: &Subscriber) -> Result<(), StoreError> {
        let (id, t, b) = (s.id, i(s.tenant_id), body(s));
        let r = self.run(move |c| async move {
            // A person deleted or erased meanwhile is not written back (a
            // call or an edit that read them before): only an update.
            let n = c
                .execute(
                    "UPDATE subscribers SET tenant_id = $2, body = $3
                     WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM erased WHERE subscriber_id = $1)",
                    &[&i(id), &t, &b],
                )
                .await?;
            if n == 0 {
                return Err(PgError::Store(StoreError::NotFound("subscriber")));
            }
            Ok(())
        });
        self.changed(r)
    }

    fn directory_changes(&self) -> u64 {
        self.directory_changes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn subscriber(&self, id: u64) -> Result<Option<Subscriber>, StoreError> {
        self.run(move |c| async move {
            let row = c
                .query_opt("SELECT body FROM subscribers WHERE id = $1", &[&i(id)])
                .await?;
            Ok(row.map(|r| record("subscribers", r.get(0))).transpose()?)
        })
    }

    fn delete_subscriber(&self, s: &Subscriber) -> Result<(), StoreError> {
        let id = i(s.id);
        let r = self.run(move |c| async move {
            c.execute("DELETE FROM subscribers WHERE id = $1", &[&id])
                .await?;
            Ok(())
        });
        self.changed(r)
    }

    fn erase_subscriber(&self, s: &Subscriber) -> Result<Erased, StoreError> {
        let (sid, tid) = (i(s.id), i(s.tenant_id));
        let prompt = format!("name-{}", s.id);
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            // Lock their checks first: a claim waiting on one finds it gone.
            let rows = tx
                .query(
                    "SELECT status, at_ms, body->>'outcome' FROM checks WHERE subscriber_id = $1 FOR UPDATE",
                    &[&sid],
                )
                .await?;
            if rows.iter().any(|r| r.get::<_, i16>(0) == 1) {
                return Err(PgError::Store(StoreError::Busy(
                    "a call to this person is in progress; erase again in a minute",
                )));
            }
            tx.execute(
                "INSERT INTO erased (subscriber_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&sid],
            )
            .await?;
            let mut e = Erased::default();
            let done: Vec<(i64, Outcome)> = rows
                .iter()
                .filter(|r| r.get::<_, i16>(0) == 2)
                .filter_map(|r| {
                    let o: Option<String> = r.get(2);
                    let o = o.and_then(|w| Outcome::ALL.into_iter().find(|x| x.as_str() == w))?;
                    Some((r.get::<_, i64>(1), o))
                })
                .collect();
            e.tallied = tally(&tx, tid, &done).await?;
            e.checks = tx
                .execute("DELETE FROM checks WHERE subscriber_id = $1", &[&sid])
                .await?;
            e.attempts = tx
                .execute("DELETE FROM attempts WHERE subscriber_id = $1", &[&sid])
                .await?;
            tx.execute("DELETE FROM alert_inbox WHERE subscriber_id = $1", &[&sid])
                .await?;
            tx.execute("DELETE FROM subscribers WHERE id = $1", &[&sid])
                .await?;
            e.prompts = tx
                .execute(
                    "DELETE FROM prompts WHERE tenant_id = $1 AND name = $2",
                    &[&tid, &prompt],
                )
                .await?;
            let (cases, notes) = forget_cases(
                &tx,
                "tenant_id = $1 AND subscriber_id = $2",
                &[&tid, &sid],
            )
            .await?;
            e.cases = cases.len() as u64;
            e.notifications = notes;
            tx.execute("DELETE FROM open_cases WHERE subscriber_id = $1", &[&sid])
                .await?;
            tx.execute(
                "DELETE FROM ladders WHERE whose = 's' AND id = $1",
                &[&sid],
            )
            .await?;
            let hits = tx
                .query(
                    "SELECT at_ms, seq, entry FROM audit WHERE tenant_id = $1 AND (
                         entry->'id' = to_jsonb($2::bigint)
                         OR entry->'subscriber' = to_jsonb($2::bigint)
                         OR entry->'subscriber_id' = to_jsonb($2::bigint)
                         OR entry->'case' IN (SELECT to_jsonb(x) FROM unnest($3::bigint[]) x))
                     FOR UPDATE",
                    &[&tid, &sid, &cases],
                )
                .await?;
            for r in hits {
                let mut entry: serde_json::Value = r.get(2);
                if let Some(o) = entry.as_object_mut() {
                    for (k, v) in o.iter_mut() {
                        let hit = match k.as_str() {
                            "id" | "subscriber" | "subscriber_id" => v.as_i64() == Some(sid),
                            "case" => v.as_i64().is_some_and(|c| cases.contains(&c)),
                            _ => false,
                        };
                        if hit {
                            *v = serde_json::Value::from("erased");
                        }
                    }
                }
                tx.execute(
                    "UPDATE audit SET entry = $4 WHERE tenant_id = $1 AND at_ms = $2 AND seq = $3",
                    &[&tid, &r.get::<_, i64>(0), &r.get::<_, i64>(1), &entry],
                )
                .await?;
                e.audit_entries += 1;
            }
            tx.commit().await?;
            Ok(e)
        })
    }

    fn prune(&self, tenant_id: u64, before_ms: u64, max: usize) -> Result<Pruned, StoreError> {
        let (tid, before) = (i(tenant_id), i(before_ms));
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            // Finished before the cut, and already read by the alert engine.
            let rows = tx
                .query(
                    "DELETE FROM checks c USING (
                         SELECT subscriber_id, kind, slot FROM checks k
                         WHERE status = 2 AND tenant_id = $1 AND finished_at_ms < $2
                           AND NOT EXISTS (SELECT 1 FROM alert_inbox a WHERE a.subscriber_id = k.subscriber_id
                                           AND a.kind = k.kind AND a.slot = k.slot)
                         ORDER BY finished_at_ms LIMIT $3 FOR UPDATE) p
                     WHERE c.subscriber_id = p.subscriber_id AND c.kind = p.kind AND c.slot = p.slot
                     RETURNING c.subscriber_id, c.kind, c.slot, c.at_ms, c.body->>'outcome'",
                    &[&tid, &before, &(max.min(i64::MAX as usize) as i64)],
                )
                .await?;
            let mut p = Pruned {
                checks: rows.len() as u64,
                ..Default::default()
            };
            let done: Vec<(i64, Outcome)> = rows
                .iter()
                .filter_map(|r| {
                    let o: Option<String> = r.get(4);
                    let o = o.and_then(|w| Outcome::ALL.into_iter().find(|x| x.as_str() == w))?;
                    Some((r.get::<_, i64>(3), o))
                })
                .collect();
            tally(&tx, tid, &done).await?;
            if !rows.is_empty() {
                let s: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                let k: Vec<i16> = rows.iter().map(|r| r.get(1)).collect();
                let sl: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
                p.attempts = tx
                    .execute(
                        "DELETE FROM attempts a USING unnest($1::bigint[], $2::smallint[], $3::bigint[]) AS g(s, k, sl)
                         WHERE a.subscriber_id = g.s AND a.kind = g.k AND a.slot = g.sl",
                        &[&s, &k, &sl],
                    )
                    .await?;
            }
            // Cases once per round (the last pass).
            if p.checks < max as u64 {
                let (cases, notes) = forget_cases(
                    &tx,
                    "tenant_id = $1 AND resolved_at_ms < $2 AND body->>'state' = 'resolved'",
                    &[&tid, &before],
                )
                .await?;
                p.cases = cases.len() as u64;
                p.notifications = notes;
            }
            tx.commit().await?;
            Ok(p)
        })
    }

    fn tallies_of(
        &self,
        tenant_id: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Outcome>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT outcome FROM tallies WHERE tenant_id = $1 AND at_ms >= $2 AND at_ms < $3
                     ORDER BY at_ms, id",
                    &[&i(tenant_id), &i(from_ms), &i(to_ms)],
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let w: &str = r.get(0);
                    Outcome::ALL.into_iter().find(|o| o.as_str() == w)
                })
                .collect())
        })
    }

    fn subscribers_of(
        &self,
        tenant_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Subscriber>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM subscribers WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    &[&i(tenant_id), &i(after), &(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("subscribers", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn subscribers_after(&self, after: u64, limit: usize) -> Result<Vec<Subscriber>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM subscribers WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&i(after), &(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("subscribers", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn put_prompt(&self, tenant_id: u64, name: &str, wav: &[u8]) -> Result<(), StoreError> {
        let (name, wav) = (name.to_string(), wav.to_vec());
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO prompts (tenant_id, name, wav) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET wav = EXCLUDED.wav",
                &[&i(tenant_id), &name, &wav],
            )
            .await?;
            Ok(())
        })
    }

    fn prompt(&self, tenant_id: u64, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_string();
        self.run(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT wav FROM prompts WHERE tenant_id = $1 AND name = $2",
                    &[&i(tenant_id), &name],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn prompt_names(&self, tenant_id: u64) -> Result<Vec<String>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT name FROM prompts WHERE tenant_id = $1 ORDER BY name COLLATE \"C\"",
                    &[&i(tenant_id)],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn audit(
        &self,
        tenant_id: u64,
        at_ms: u64,
        entry: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut entry = entry.clone();
        crate::scrub(&mut entry);
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO audit (tenant_id, at_ms, seq, entry) VALUES ($1, $2, nextval('audit_seq'), $3)",
                &[&i(tenant_id), &i(at_ms), &entry],
            )
            .await?;
            Ok(())
        })
    }

    fn audit_of(
        &self,
        tenant_id: u64,
        from: (u64, u64),
        limit: usize,
    ) -> Result<Vec<(u64, u64, serde_json::Value)>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT at_ms, seq, entry FROM audit WHERE tenant_id = $1 AND (at_ms, seq) >= ($2, $3)
                     ORDER BY at_ms, seq LIMIT $4",
                    &[&i(tenant_id), &i(from.0), &i(from.1), &(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| (u(r.get(0)), u(r.get(1)), r.get(2)))
                .collect())
        })
    }

    fn put_watcher(&self, mut w: Watcher) -> Result<Watcher, StoreError> {
        self.run(move |c| async move {
            if w.id == 0 {
                w.id = next_ids(&c, "watcher_ids", 1).await?[0];
            }
            c.execute(
                "INSERT INTO watchers (id, tenant_id, body) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, body = EXCLUDED.body",
                &[&i(w.id), &i(w.tenant_id), &body(&w)],
            )
            .await?;
            Ok(w)
        })
    }

    fn watcher(&self, id: u64) -> Result<Option<Watcher>, StoreError> {
        self.run(move |c| async move {
            let row = c
                .query_opt("SELECT body FROM watchers WHERE id = $1", &[&i(id)])
                .await?;
            Ok(row.map(|r| record("watchers", r.get(0))).transpose()?)
        })
    }

    fn watchers_of(&self, tenant_id: u64) -> Result<Vec<Watcher>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM watchers WHERE tenant_id = $1 ORDER BY id",
                    &[&i(tenant_id)],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("watchers", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn delete_watcher(&self, w: &Watcher) -> Result<(), StoreError> {
        let id = i(w.id);
        self.run(move |c| async move {
            c.execute("DELETE FROM watchers WHERE id = $1", &[&id])
                .await?;
            Ok(())
        })
    }

    fn put_ladder(&self, of: LadderOf, l: &Ladder) -> Result<(), StoreError> {
        let ((whose, id), b) = (ladder_key(of), body(l));
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO ladders (whose, id, body) VALUES ($1, $2, $3)
                 ON CONFLICT (whose, id) DO UPDATE SET body = EXCLUDED.body",
                &[&whose, &id, &b],
            )
            .await?;
            Ok(())
        })
    }

    fn ladder(&self, of: LadderOf) -> Result<Option<Ladder>, StoreError> {
        let (whose, id) = ladder_key(of);
        self.run(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT body FROM ladders WHERE whose = $1 AND id = $2",
                    &[&whose, &id],
                )
                .await?;
            Ok(row.map(|r| record("ladders", r.get(0))).transpose()?)
        })
    }

    fn delete_ladder(&self, of: LadderOf) -> Result<(), StoreError> {
        let (whose, id) = ladder_key(of);
        self.run(move |c| async move {
            c.execute(
                "DELETE FROM ladders WHERE whose = $1 AND id = $2",
                &[&whose, &id],
            )
            .await?;
            Ok(())
        })
    }

    fn create_staff(&self, mut s: Staff) -> Result<Staff, StoreError> {
        self.run(move |c| async move {
            s.id = next_ids(&c, "staff_ids", 1).await?[0];
            let n = c
                .execute(
                    "INSERT INTO staff (id, tenant_id, login, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (login) DO NOTHING",
                    &[&i(s.id), &i(s.tenant_id), &s.login, &body(&s)],
                )
                .await?;
            if n == 0 {
                return Err(PgError::Store(StoreError::Exists("login")));
            }
            Ok(s)
        })
    }

    fn put_staff(&self, s: &Staff) -> Result<(), StoreError> {
        let s = s.clone();
        self.run(move |c| async move {
            let r = c
                .execute(
                    "INSERT INTO staff (id, tenant_id, login, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
                         login = EXCLUDED.login, body = EXCLUDED.body",
                    &[&i(s.id), &i(s.tenant_id), &s.login, &body(&s)],
                )
                .await;
            match r {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                    Err(PgError::Store(StoreError::Exists("login")))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn update_staff(
        &self,
        id: u64,
        change: &dyn Fn(&mut Staff),
    ) -> Result<Option<Staff>, StoreError> {
        // Compare and set: the change is made here (it may not cross to
        // the engine's threads) and written only over the record it was
        // made from; a concurrent change makes it start again.
        loop {
            let Some(old) = self.run(move |c| async move {
                let row = c
                    .query_opt("SELECT body FROM staff WHERE id = $1", &[&i(id)])
                    .await?;
                Ok(row.map(|r| r.get::<_, serde_json::Value>(0)))
            })?
            else {
                return Ok(None);
            };
            let mut s: Staff = record("staff", old.clone())?;
            change(&mut s);
            let new = body(&s);
            let login = s.login.clone();
            let done = self.run(move |c| async move {
                Ok(c.execute(
                    "UPDATE staff SET login = $3, body = $4 WHERE id = $1 AND body = $2",
                    &[&i(id), &old, &login, &new],
                )
                .await?
                    == 1)
            })?;
            if done {
                return Ok(Some(s));
            }
        }
    }

    fn staff(&self, id: u64) -> Result<Option<Staff>, StoreError> {
        self.run(move |c| async move {
            let row = c
                .query_opt("SELECT body FROM staff WHERE id = $1", &[&i(id)])
                .await?;
            Ok(row.map(|r| record("staff", r.get(0))).transpose()?)
        })
    }

    fn staff_by_login(&self, login: &str) -> Result<Option<Staff>, StoreError> {
        let login = login.to_string();
        self.run(move |c| async move {
            let row = c
                .query_opt("SELECT body FROM staff WHERE login = $1", &[&login])
                .await?;
            Ok(row.map(|r| record("staff", r.get(0))).transpose()?)
        })
    }

    fn staff_of(&self, tenant_id: u64) -> Result<Vec<Staff>, StoreError> {
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT body FROM staff WHERE tenant_id = $1 ORDER BY id",
                    &[&i(tenant_id)],
                )
                .await?;
            Ok(rows
                .into_iter()
                .map(|r| record("staff", r.get(0)))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn delete_staff(&self, s: &Staff) -> Result<(), StoreError> {
        let id = i(s.id);
        self.run(move |c| async move {
            c.execute("DELETE FROM staff WHERE id = $1", &[&id]).await?;
            Ok(())
        })
    }

    fn put_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError> {
        let (h, exp, b) = (hash.to_vec(), i(s.expires_at_ms), body(s));
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO sessions (hash, expires_at_ms, body) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO UPDATE SET expires_at_ms = EXCLUDED.expires_at_ms, body = EXCLUDED.body",
                &[&h, &exp, &b],
            )
            .await?;
            Ok(())
        })
    }

    fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        let h = hash.to_vec();
        self.run(move |c| async move {
            let row = c
                .query_opt("SELECT body FROM sessions WHERE hash = $1", &[&h])
                .await?;
            Ok(row.map(|r| record("sessions", r.get(0))).transpose()?)
        })
    }

    fn delete_session(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        let h = hash.to_vec();
        self.run(move |c| async move {
            c.execute("DELETE FROM sessions WHERE hash = $1", &[&h])
                .await?;
            Ok(())
        })
    }

    fn prune_sessions(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.run(move |c| async move {
            Ok(c.execute(
                "DELETE FROM sessions WHERE expires_at_ms < $1",
                &[&i(now_ms)],
            )
            .await? as usize)
        })
    }

    fn lead(&self, role: &str, owner: &str, lease_ms: u64) -> Result<bool, StoreError> {
        let (role, owner) = (role.to_string(), owner.to_string());
        self.run(move |c| async move {
            let row = c
                .query_opt(
                    "INSERT INTO leases (name, owner, until)
                     VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
                     ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
                     WHERE leases.owner = EXCLUDED.owner OR leases.until < now()
                     RETURNING owner",
                    &[&role, &owner, &(lease_ms.min(7 * 86_400_000) as i64)],
                )
                .await?;
            Ok(row.is_some())
        })
    }

    fn trunk_share(
        &self,
        owner: &str,
        limit: Share,
        active: u32,
        lease_ms: u64,
        hold_ms: u64,
    ) -> Result<Share, StoreError> {
        let owner = owner.to_string();
        let (lease, hold) = (
            lease_ms.min(7 * 86_400_000) as i64,
            hold_ms.min(7 * 86_400_000) as i64,
        );
        self.run(move |mut c| async move {
            let tx = c.transaction().await?;
            // One node at a time: the rule reads every share and writes one.
            tx.execute("SELECT pg_advisory_xact_lock(7305943)", &[])
                .await?;
            let rows = tx
                .query(
                    "SELECT node, calls, cps, until > now(),
                            until + $1::bigint * interval '1 millisecond' > now()
                     FROM trunk_shares",
                    &[&hold],
                )
                .await?;
            let mut prev = Share::default();
            let mut others = Vec::new();
            for r in &rows {
                let s = Share {
                    calls: r.get::<_, i32>(1).max(0) as u32,
                    cps: r.get(2),
                };
                if r.get::<_, &str>(0) == owner {
                    prev = s;
                } else {
                    others.push(Held {
                        share: s,
                        live: r.get(3),
                        reserved: r.get(4),
                    });
                }
            }
            let next = share(limit, prev, active, &others);
            tx.execute(
                "INSERT INTO trunk_shares (node, calls, cps, until)
                 VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
                 ON CONFLICT (node) DO UPDATE SET calls = EXCLUDED.calls, cps = EXCLUDED.cps,
                     until = EXCLUDED.until",
                &[&owner, &(next.calls as i32), &next.cps, &lease],
            )
            .await?;
            tx.execute(
                "DELETE FROM trunk_shares
                 WHERE until + $1::bigint * interval '1 millisecond' < now()",
                &[&hold],
            )
            .await?;
            tx.commit().await?;
            Ok(next)
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn checkpoint(&self, _dir: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "a PostgreSQL database is backed up by PostgreSQL (pg_basebackup, or Patroni's replicas), not by genki",
        ))
    }

    fn writes_ok(&self) -> bool {
        self.writes_ok_now()
    }

    fn write_failures(&self) -> u64 {
        self.write_failure_count()
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        self.run(|c| async move {
            c.execute(
                "INSERT INTO probe (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()",
                &[],
            )
            .await?;
            Ok(())
        })
    }

    fn quarantined(&self) -> u64 {
        self.quarantined.load(std::sync::atomic::Ordering::Relaxed)
    }
}
