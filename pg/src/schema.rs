//! The PostgreSQL schema as numbered migrations, applied in order at
//! start-up (and by `genki migrate`) under an advisory lock, so that
//! nodes starting together apply each one once; `genki_schema` records
//! what was applied and when.
//!
//! Tables keep a record's JSON (`body`, the same serde form the RocksDB
//! engine writes) beside the columns the database must query, lock or
//! update by itself: a check's status, due time, owner, lease and claim
//! generation; a case's open timer; a notification's due time. Those
//! columns are the truth where both exist (see `checks::CHECK_COLS`).
//!
//! Depends on: nothing (SQL text).

/// One step of the schema.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add
/// the next.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records, the check lifecycle, alerts, staff, leases",
        sql: r#"
CREATE SEQUENCE tenant_ids;
CREATE SEQUENCE subscriber_ids;
CREATE SEQUENCE watcher_ids;
CREATE SEQUENCE case_ids;
CREATE SEQUENCE notification_ids;
CREATE SEQUENCE staff_ids;
CREATE SEQUENCE audit_seq;

CREATE TABLE tenants (id bigint PRIMARY KEY, body jsonb NOT NULL);
CREATE TABLE tokens (hash bytea PRIMARY KEY, tenant_id bigint NOT NULL);
CREATE TABLE subscribers (
    id bigint PRIMARY KEY,
    tenant_id bigint NOT NULL,
    body jsonb NOT NULL
);
CREATE INDEX subscribers_of ON subscribers (tenant_id, id);
-- People erased on request (APPI): no planner pass, claim or late write
-- may bring them back.
CREATE TABLE erased (subscriber_id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());

-- kind: the byte of genki_store::CheckKind ('s' 115, 'o' 111).
-- status: 0 pending, 1 dialing (claimed), 2 done.
-- lease_until: the database's clock, never a node's.
-- claim_gen: bumped by every claim; a node may finish only the claim it made
-- (or one whose lease ran out): the fence against a paused node.
-- word, rank: genki_store::dayview::standing (the console's day view).
CREATE TABLE checks (
    subscriber_id bigint NOT NULL,
    kind smallint NOT NULL,
    slot bigint NOT NULL,
    tenant_id bigint NOT NULL,
    at_ms bigint NOT NULL,
    status smallint NOT NULL,
    due_at_ms bigint NOT NULL,
    owner text,
    lease_until timestamptz,
    claim_gen bigint NOT NULL DEFAULT 0,
    finished_at_ms bigint,
    word smallint NOT NULL,
    rank smallint,
    body jsonb NOT NULL,
    PRIMARY KEY (subscriber_id, kind, slot)
);
CREATE INDEX checks_due ON checks (due_at_ms) WHERE status = 0;
CREATE INDEX checks_claimed ON checks (lease_until) WHERE status = 1;
CREATE INDEX checks_of ON checks (tenant_id, at_ms);
CREATE INDEX checks_finished ON checks (tenant_id, finished_at_ms) WHERE status = 2;

CREATE TABLE attempts (
    subscriber_id bigint NOT NULL,
    kind smallint NOT NULL,
    slot bigint NOT NULL,
    n integer NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (subscriber_id, kind, slot, n)
);
-- Final outcomes not yet applied by the alert engine (written with the outcome).
CREATE TABLE alert_inbox (
    subscriber_id bigint NOT NULL,
    kind smallint NOT NULL,
    slot bigint NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (subscriber_id, kind, slot)
);
CREATE TABLE tallies (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    at_ms bigint NOT NULL,
    outcome text NOT NULL
);
CREATE INDEX tallies_of ON tallies (tenant_id, at_ms);

-- timer_at: the tier deadline of an open case (NULL otherwise).
CREATE TABLE cases (
    id bigint PRIMARY KEY,
    tenant_id bigint NOT NULL,
    subscriber_id bigint NOT NULL,
    timer_at bigint,
    resolved_at_ms bigint,
    body jsonb NOT NULL
);
CREATE INDEX cases_of ON cases (tenant_id, id);
CREATE INDEX case_timers ON cases (timer_at) WHERE timer_at IS NOT NULL;
CREATE TABLE open_cases (subscriber_id bigint PRIMARY KEY, case_id bigint NOT NULL);
-- due_at: next_at_ms of a pending notification (NULL otherwise).
CREATE TABLE notifications (
    id bigint PRIMARY KEY,
    case_id bigint NOT NULL,
    due_at bigint,
    body jsonb NOT NULL
);
CREATE INDEX outbox_due ON notifications (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX notifications_of ON notifications (case_id, id);

CREATE TABLE prompts (
    tenant_id bigint NOT NULL,
    name text NOT NULL,
    wav bytea NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE audit (
    tenant_id bigint NOT NULL,
    at_ms bigint NOT NULL,
    seq bigint NOT NULL,
    entry jsonb NOT NULL,
    PRIMARY KEY (tenant_id, at_ms, seq)
);
CREATE TABLE watchers (id bigint PRIMARY KEY, tenant_id bigint NOT NULL, body jsonb NOT NULL);
CREATE INDEX watchers_of ON watchers (tenant_id, id);
-- whose: 't' a tenant's default ladder, 's' a subscriber's own.
CREATE TABLE ladders (whose "char" NOT NULL, id bigint NOT NULL, body jsonb NOT NULL, PRIMARY KEY (whose, id));
CREATE TABLE staff (
    id bigint PRIMARY KEY,
    tenant_id bigint NOT NULL,
    login text NOT NULL UNIQUE,
    body jsonb NOT NULL
);
CREATE INDEX staff_of ON staff (tenant_id, id);
CREATE TABLE sessions (hash bytea PRIMARY KEY, expires_at_ms bigint NOT NULL, body jsonb NOT NULL);
-- Roles one node plays at a time (the alert engine), on the database's clock.
CREATE TABLE leases (name text PRIMARY KEY, owner text NOT NULL, until timestamptz NOT NULL);
-- A row the write probe touches (is the primary writable again?).
CREATE TABLE probe (id integer PRIMARY KEY, at timestamptz NOT NULL);
"#,
    },
    Migration {
        version: 2,
        name: "the trunk's limits shared by the nodes",
        sql: r#"
-- Each node's share of the trunk (genki_store::budget), on the database's
-- clock: live while until > now(), its calls counted until until + hold.
CREATE TABLE trunk_shares (
    node text PRIMARY KEY,
    calls integer NOT NULL,
    cps double precision NOT NULL,
    until timestamptz NOT NULL
);
"#,
    },
];

/// The newest schema this release knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_run_one_two_three() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }
}
