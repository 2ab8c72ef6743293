//! A tenant's day at a glance without reading the day's checks: how many
//! checks are pending, in a call, or ended with each outcome, and the few
//! a coordinator must look at first (the console's Today page, which must
//! stay fast with a million people enrolled).
//!
//! [`crate::Store`] keeps the counts and the "look at first" rows of each
//! tenant in memory, built by one scan the first time the tenant is asked
//! for (from two days before the day asked on) and then changed by every
//! write of a check in the same step as the write: creation, claim, an
//! attempt's end, a settlement, an erasure or a pruning. A range before
//! what memory holds is answered by a scan, with the same rules. Nothing
//! here is stored: the checks are the record, this is an index of them
//! that a restart rebuilds.
//!
//! Depends on: [`crate::records`]. ([`crate::Store`] builds and reads the
//! views: `Store::day_view`.)

use std::collections::{BTreeMap, HashMap};

use crate::records::{Check, CheckId, CheckStatus, Outcome};

/// A day (or any range of slot times) of a tenant, at a glance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayView {
    /// Checks by state: `pending` (waiting for their first call),
    /// `dialing`, `retrying` (a retry is due), and each outcome word; an
    /// erased person's finished checks still count in their outcome.
    pub counts: BTreeMap<String, u64>,
    /// Every check of the range (the sum of `counts`).
    pub total: u64,
    /// At most the `limit` asked for of the checks not (yet) fine that a
    /// coordinator looks at first, in this order: needs contact, no
    /// response, missed, spoke, not attempted, then in a call, then
    /// waiting for a retry; by due time within each. Checks still waiting
    /// for their first call are only counted (in `pending`).
    pub waiting: Vec<Check>,
    /// More rows remain after these: where the next page starts after
    /// (taken from the order itself, not from the rows as read again, which
    /// a live round may have moved meanwhile).
    pub next: Option<RowAt>,
}

/// A row's place in the order of rows to look at first (rank, due time,
/// check): where a page of them ended, so that the next page starts after
/// it even when rows before it changed meanwhile (a check that moves while
/// a coordinator pages is seen at its new place or its old, never twice
/// on one page). Written `rank.due_ms.check_id`, e.g. `0.1764000000000.12-s1764000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowAt {
    pub rank: u8,
    pub due_ms: u64,
    pub check: CheckId,
}

impl RowAt {
    /// Where `c` stands among the rows (None: it is no row: fine, or not
    /// called yet).
    pub fn of(c: &Check) -> Option<RowAt> {
        standing(c).1.map(|rank| RowAt {
            rank,
            due_ms: c.due_at_ms,
            check: c.id,
        })
    }

    /// The in-memory order's key.
    pub(crate) fn key(&self) -> (u8, u64, [u8; 17]) {
        (self.rank, self.due_ms, self.check.key())
    }
}

impl std::fmt::Display for RowAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.rank, self.due_ms, self.check)
    }
}

impl std::str::FromStr for RowAt {
    type Err = ();
    fn from_str(s: &str) -> Result<RowAt, ()> {
        let mut parts = s.splitn(3, '.');
        let rank = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        let due_ms = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        let check = parts.next().ok_or(())?.parse()?;
        Ok(RowAt {
            rank,
            due_ms,
            check,
        })
    }
}

/// What a check counts as: 0 pending, 1 dialing, 2 retrying, 3 + the
/// outcome's place in [`Outcome::ALL`].
pub type Word = u8;

/// The name of a [`Word`] in [`DayView::counts`].
pub fn word_name(w: Word) -> &'static str {
    match w {
        0 => "pending",
        1 => "dialing",
        2 => "retrying",
        n => Outcome::ALL
            .get(n as usize - FIRST_OUTCOME as usize)
            .map(|o| o.as_str())
            .unwrap_or("unknown"),
    }
}

/// The first word that is an outcome (a finished check).
pub const FIRST_OUTCOME: Word = 3;

pub(crate) fn outcome_word(o: Outcome) -> Word {
    FIRST_OUTCOME + Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0) as Word
}

/// Where a check stands in a tenant's view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Snap {
    pub tenant: u64,
    pub key: [u8; 17],
    /// Its slot (or request) time.
    pub slot: u64,
    pub word: Word,
    /// (rank, due) when it is one to look at first.
    pub row: Option<(u8, u64)>,
}

/// What a check counts as, and its rank among the rows to look at first
/// (None: not listed): the rule every engine's day view follows (a
/// shared-database engine keeps both as columns of the check).
pub fn standing(c: &Check) -> (Word, Option<u8>) {
    let word = match (c.status, c.outcome) {
        (CheckStatus::Done, Some(o)) => outcome_word(o),
        (CheckStatus::Dialing, _) => 1,
        _ if c.attempts > 0 => 2,
        _ => 0,
    };
    let rank = match (c.status, c.outcome) {
        (CheckStatus::Done, Some(Outcome::Fine)) => None,
        (CheckStatus::Done, Some(Outcome::NeedsContact)) => Some(0),
        (CheckStatus::Done, Some(Outcome::NoResponse)) => Some(1),
        (CheckStatus::Done, Some(Outcome::Missed)) => Some(2),
        (CheckStatus::Done, Some(Outcome::Spoke)) => Some(3),
        (CheckStatus::Done, _) => Some(4),
        (CheckStatus::Dialing, _) => Some(5),
        (CheckStatus::Pending, _) if c.attempts > 0 => Some(6),
        (CheckStatus::Pending, _) => None,
    };
    (word, rank)
}

impl Snap {
    pub fn of(c: &Check, slot: u64) -> Snap {
        let (word, rank) = standing(c);
        Snap {
            tenant: c.tenant_id,
            key: c.id.key(),
            slot,
            word,
            row: rank.map(|r| (r, c.due_at_ms)),
        }
    }

    /// The same check as an anonymous count (erased or pruned): it still
    /// counts, it is no row.
    pub fn tallied(self) -> Snap {
        Snap { row: None, ..self }
    }
}

/// One tenant's view: exact for slot times at or after `since`.
#[derive(Default)]
pub(crate) struct TenantView {
    pub since: u64,
    /// The latest slot time ever added (a range asked beyond it does not
    /// trim the view: a date far ahead must not empty today's).
    pub latest: u64,
    counts: BTreeMap<(u64, Word), u64>,
    rows: BTreeMap<(u8, u64, [u8; 17]), u64>,
    at: HashMap<[u8; 17], (u8, u64)>,
}

impl TenantView {
    pub fn new(since: u64) -> TenantView {
        TenantView {
            since,
            ..TenantView::default()
        }
    }

    pub fn add(&mut self, s: &Snap) {
        if s.slot < self.since {
            return;
        }
        self.latest = self.latest.max(s.slot);
        *self.counts.entry((s.slot, s.word)).or_default() += 1;
        if let Some((rank, due)) = s.row {
            self.rows.insert((rank, due, s.key), s.slot);
            self.at.insert(s.key, (rank, due));
        }
    }

    pub fn remove(&mut self, s: &Snap) {
        if s.slot < self.since {
            return;
        }
        if let Some(n) = self.counts.get_mut(&(s.slot, s.word)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(&(s.slot, s.word));
            }
        }
        if let Some((rank, due)) = self.at.remove(&s.key) {
            self.rows.remove(&(rank, due, s.key));
        }
    }

    /// An anonymous count of an erased person's finished check.
    pub fn add_tally(&mut self, slot: u64, o: Outcome) {
        if slot >= self.since {
            *self.counts.entry((slot, outcome_word(o))).or_default() += 1;
        }
    }

    /// Forget what lies before `since` (a view only moves forward).
    pub fn trim(&mut self, since: u64) {
        if since <= self.since {
            return;
        }
        self.since = since;
        self.counts = self.counts.split_off(&(since, 0));
        let old: Vec<_> = self
            .rows
            .iter()
            .filter(|(_, slot)| **slot < since)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.rows.remove(&k);
            self.at.remove(&k.2);
        }
    }

    /// Counts, the keys of the first `limit` rows of [from, to) after
    /// `after` (None: from the first), and the last one's place when more
    /// remain.
    pub fn read(&self, from: u64, to: u64, limit: usize, after: Option<&RowAt>) -> ViewPage {
        use std::ops::Bound;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0;
        for ((_, w), n) in self.counts.range((from, 0)..(to, 0)) {
            *counts.entry(word_name(*w).to_string()).or_default() += n;
            total += n;
        }
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.key()));
        let mut rows: Vec<(u8, u64, [u8; 17])> = self
            .rows
            .range((start, Bound::Unbounded))
            .filter(|(_, slot)| (from..to).contains(*slot))
            .take(limit.saturating_add(1))
            .map(|(k, _)| *k)
            .collect();
        let next = (rows.len() > limit)
            .then(|| limit.checked_sub(1).and_then(|i| rows.get(i)))
            .flatten()
            .and_then(|(rank, due, key)| {
                CheckId::from_key(key).map(|check| RowAt {
                    rank: *rank,
                    due_ms: *due,
                    check,
                })
            });
        rows.truncate(limit);
        (
            counts,
            total,
            rows.into_iter().map(|(_, _, k)| k).collect(),
            next,
        )
    }
}

/// What [`TenantView::read`] gives: counts, total, the page's keys, and
/// the place of its last row when more remain.
pub(crate) type ViewPage = (BTreeMap<String, u64>, u64, Vec<[u8; 17]>, Option<RowAt>);

/// The views of every tenant asked for, and the gate that makes building
/// one exclusive with the writes of checks (a write holds it shared, from
/// its read of the check to its change of the view; a build holds it
/// alone, so no write falls between the scan and the view).
#[derive(Default)]
pub(crate) struct Views {
    pub gate: std::sync::RwLock<()>,
    pub tenants: std::sync::Mutex<HashMap<u64, TenantView>>,
}

/// How far before the range first asked for memory holds a tenant's view
/// (yesterday's late retries are still on Today's page), and how far it
/// may lag behind the ranges asked since before it is trimmed.
pub(crate) const KEEP_BEFORE: u64 = 2 * 86_400_000;

impl Views {
    pub fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A check changed from `before` to `after` (None: created, or gone).
    pub fn change(&self, before: Option<Snap>, after: Option<Snap>) {
        let mut t = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let tenant = before.or(after).map(|s| s.tenant);
        let Some(v) = tenant.and_then(|id| t.get_mut(&id)) else {
            return;
        };
        if let Some(b) = before {
            v.remove(&b);
        }
        if let Some(a) = after {
            v.add(&a);
        }
    }
}
