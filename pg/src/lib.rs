//! genki-pg: the storage seam on PostgreSQL 15, for many genki nodes on
//! one database (`[storage] engine = "postgres"`), made highly available
//! by Patroni (docs/deploy.md).
//!
//! [`PgStore`] implements [`genki_store::CheckLog`], [`AlertLog`] and
//! [`Directory`] with SQL of its own (not the key-value lifecycle of
//! `genki_store::Store`, whose locks live in one process):
//! - planning is `INSERT … ON CONFLICT DO NOTHING` on (person, slot), so
//!   every node may plan;
//! - a claim is a conditional `UPDATE … WHERE status = pending` that sets
//!   the owner, a lease on the **database's clock** (`now()`) and bumps
//!   the row's claim generation; the dispatcher's batched claim picks due
//!   rows `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other;
//! - finishing an attempt locks the row and is accepted only from the
//!   claim this process made (its generation), or over a lease that has
//!   run out (a take-over); anything else is a zombie's late write,
//!   refused with [`StoreError::Fenced`]. A finished check keeps its first
//!   outcome;
//! - the alert inbox row is written in the outcome's transaction, and an
//!   alert step that consumes an inbox row another node consumed first is
//!   refused (no case opened twice);
//! - one node at a time leads a role ([`Directory::lead`], a lease row).
//!
//! The seam is synchronous (RocksDB's calls are); this engine runs
//! tokio-postgres on a small runtime of its own and the caller's thread
//! waits for the answer (as it waits for RocksDB's fsync), so it may be
//! called from any thread, async or not. Connections come from a
//! deadpool pool; a URL with several hosts and
//! `target_session_attrs=read-write` follows a Patroni switchover.
//!
//! Depends on: genki-store (records, seam), tokio-postgres, deadpool-postgres.
//! Knows nothing of SIP, RTP or HTTP.

mod alert_log;
mod check_log;
mod directory;
pub mod schema;
pub mod testing;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
pub use genki_store::*;
use tokio_postgres::NoTls;

/// The node's clock (unix ms), in which the seam's times are given.
pub type NodeClock = std::sync::Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn wall_clock() -> NodeClock {
    std::sync::Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// How the engine reaches its database.
#[derive(Clone)]
pub struct PgOptions {
    /// A libpq-style URL or key=value string; several hosts with
    /// `target_session_attrs=read-write` reach whichever is the primary.
    pub url: String,
    /// Connections in the pool (each node's; the primary's
    /// `max_connections` must hold every node's pool).
    pub pool_size: usize,
    /// This node's name: the owner of its claims (unique per node, stable
    /// across restarts, so a restarted node finds its own claims).
    pub node: String,
    /// The node's clock: a claim's `lease_until_ms` is turned into a
    /// length with it, and the lease then runs on the database's clock.
    pub clock: NodeClock,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("node", &self.node)
            .finish()
    }
}

/// Failures inside the engine, turned into [`StoreError`] at the seam.
#[derive(Debug)]
pub(crate) enum PgError {
    Pg(tokio_postgres::Error),
    Pool(String),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Pg(e)
    }
}

impl From<StoreError> for PgError {
    fn from(e: StoreError) -> Self {
        PgError::Store(e)
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PgError::Pool(e.to_string())
    }
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Pg(e) => StoreError::Db(format!("postgresql: {}", pg_message(&e))),
            PgError::Pool(m) => StoreError::Db(format!("postgresql: {m}")),
            PgError::Store(e) => e,
        }
    }
}

pub(crate) type R<T> = Result<T, PgError>;

/// A u64 of genki's records as PostgreSQL's bigint (times and ids stay
/// far below 2^63; `u64::MAX` as "no bound" becomes `i64::MAX`).
pub(crate) fn i(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// A bigint read back (never negative in genki's rows).
pub(crate) fn u(v: i64) -> u64 {
    v.max(0) as u64
}

/// A record's JSON. PostgreSQL's jsonb cannot hold U+0000, which a
/// peer's header or an API field may carry: it becomes U+FFFD (a write
/// refused for it would be retried for ever on the call path).
pub(crate) fn body<T: serde::Serialize>(v: &T) -> serde_json::Value {
    // Serialising our own plain structs cannot fail.
    let mut j = serde_json::to_value(v).expect("records serialise");
    scrub(&mut j);
    j
}

/// Replace U+0000 in every string (and key) of `v`.
pub(crate) fn scrub(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    scrub(&mut x);
                    o.insert(k.replace('\0', "\u{FFFD}"), x);
                }
            } else {
                o.values_mut().for_each(scrub);
            }
        }
        _ => {}
    }
}

/// A record read back from its JSON; `table` names it in the error.
pub(crate) fn record<T: serde::de::DeserializeOwned>(
    table: &'static str,
    v: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt {
        cf: table,
        reason: e.to_string(),
    })
}

/// The claims this process made: check → the row's claim generation.
/// Finishing is accepted for these; kept a while after a final outcome
/// (the call's end writes its whole attempt after the key's early write).
#[derive(Default)]
pub(crate) struct Claims {
    held: HashMap<CheckId, (i64, Instant)>,
    pruned: Option<Instant>,
}

/// How long a finished claim is remembered for its end-of-call write
/// (longer than any call).
const CLAIM_MEMORY: Duration = Duration::from_secs(3600);

impl Claims {
    pub fn insert(&mut self, id: CheckId, gen: i64) {
        let now = Instant::now();
        if self.held.len() > 10_000
            && self
                .pruned
                .is_none_or(|p| now.duration_since(p) > Duration::from_secs(60))
        {
            self.held
                .retain(|_, (_, at)| now.duration_since(*at) < CLAIM_MEMORY);
            self.pruned = Some(now);
        }
        self.held.insert(id, (gen, now));
    }
    pub fn get(&self, id: &CheckId) -> Option<i64> {
        self.held.get(id).map(|(g, _)| *g)
    }
    pub fn remove(&mut self, id: &CheckId) {
        self.held.remove(id);
    }
}

/// The longest one call of the seam may take (a batch of 10,000 planned
/// checks takes well under a second).
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// genki's records in PostgreSQL. Cheap to share behind an `Arc`.
pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    pub(crate) node: String,
    pub(crate) clock: NodeClock,
    pub(crate) claims: Mutex<Claims>,
    writes_failing: AtomicBool,
    write_failures: AtomicU64,
    pub(crate) quarantined: AtomicU64,
    fenced: AtomicU64,
    /// Writes of tenants and people through this node
    /// ([`genki_store::Directory::directory_changes`]).
    pub(crate) directory_changes: AtomicU64,
    /// How to connect (for the node-name lock's own connection).
    cfg: tokio_postgres::Config,
    /// The connection holding this node's name ([`PgStore::hold_node_name`]).
    name_lock: Mutex<Option<tokio_postgres::Client>>,
}

impl PgStore {
    /// Connect, and apply the schema's migrations that are missing.
    pub fn open(opts: &PgOptions) -> Result<PgStore, StoreError> {
        let s = PgStore::connect(opts)?;
        s.migrate()?;
        Ok(s)
    }

    /// Connect without touching the schema (`genki migrate` applies it).
    pub fn connect(opts: &PgOptions) -> Result<PgStore, StoreError> {
        let bad = |reason: String| StoreError::Open {
            path: redact(&opts.url),
            reason,
        };
        let mut cfg =
            tokio_postgres::Config::from_str(&opts.url).map_err(|e| bad(e.to_string()))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        // A primary whose host died (not just its process) must not hold
        // a query for TCP's quarter of an hour: keep-alives find it out.
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(5));
        cfg.keepalives_interval(Duration::from_secs(2));
        cfg.keepalives_retries(3);
        if cfg.get_application_name().is_none() {
            cfg.application_name(format!("genki {}", opts.node));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("genki-pg")
            .enable_all()
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let mgr = Manager::from_config(
            cfg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(opts.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let s = PgStore {
            handle: rt.handle().clone(),
            rt: Some(rt),
            pool,
            node: opts.node.clone(),
            clock: opts.clock.clone(),
            claims: Mutex::new(Claims::default()),
            writes_failing: AtomicBool::new(false),
            write_failures: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
            directory_changes: AtomicU64::new(0),
            cfg,
            name_lock: Mutex::new(None),
        };
        // Fail now, clearly, when the database cannot be reached.
        s.run(|c| async move {
            c.simple_query("SELECT 1").await?;
            Ok(())
        })
        .map_err(|e| bad(e.to_string()))?;
        Ok(s)
    }

    /// Apply every migration not yet applied, in order, each in its own
    /// transaction, under an advisory lock (nodes starting together apply
    /// each once). Returns the versions applied now.
    pub fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        self.run(|mut c| async move {
            let tx = c.transaction().await?;
            tx.batch_execute(
                "SET LOCAL client_min_messages = warning;
                 SELECT pg_advisory_xact_lock(7305942);
                 CREATE TABLE IF NOT EXISTS genki_schema (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
            let have: i32 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM genki_schema", &[])
                .await?
                .get(0);
            if have > schema::latest() {
                return Err(StoreError::Open {
                    path: "postgresql".into(),
                    reason: format!(
                        "the database has schema version {have}, newer than this genki's {}: upgrade genki",
                        schema::latest()
                    ),
                }
                .into());
            }
            let mut applied = Vec::new();
            for m in schema::MIGRATIONS.iter().filter(|m| m.version > have) {
                tx.batch_execute(m.sql).await?;
                tx.execute(
                    "INSERT INTO genki_schema (version, name) VALUES ($1, $2)",
                    &[&m.version, &m.name],
                )
                .await?;
                applied.push(m.version);
            }
            tx.commit().await?;
            Ok(applied)
        })
    }

    /// Hold this node's name for as long as this store lives (a session
    /// lock on a connection of its own): two processes with one name — a
    /// cloned machine, a new process while the old one drains — would take
    /// each other's calls for their own, so the second is refused.
    pub fn hold_node_name(&self) -> Result<(), StoreError> {
        let (cfg, node) = (self.cfg.clone(), self.node.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let r = async {
                let (client, conn) = cfg.connect(NoTls).await?;
                tokio::spawn(conn);
                let got: bool = client
                    .query_one(
                        "SELECT pg_try_advisory_lock(7305944, hashtext($1))",
                        &[&node],
                    )
                    .await?
                    .get(0);
                Ok::<_, tokio_postgres::Error>((client, got))
            }
            .await;
            let _ = tx.send(r);
        });
        match rx.recv() {
            Ok(Ok((client, true))) => {
                *self.name_lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
                Ok(())
            }
            Ok(Ok((_, false))) => Err(StoreError::Open {
                path: "postgresql".into(),
                reason: format!(
                    "another genki node named {:?} is connected to this database: give each node its own [storage] node",
                    self.node
                ),
            }),
            Ok(Err(e)) => Err(PgError::Pg(e).into()),
            Err(_) => Err(StoreError::Db("the database task stopped".into())),
        }
    }

    /// The schema version the database has (0: none).
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        self.run(|c| async move {
            let exists: bool = c
                .query_one("SELECT to_regclass('genki_schema') IS NOT NULL", &[])
                .await?
                .get(0);
            if !exists {
                return Ok(0);
            }
            Ok(
                c.query_one("SELECT coalesce(max(version), 0) FROM genki_schema", &[])
                    .await?
                    .get(0),
            )
        })
    }

    /// Late writes refused since the start (a zombie's, [`StoreError::Fenced`]).
    pub fn fenced(&self) -> u64 {
        self.fenced.load(Ordering::Relaxed)
    }

    /// Run `f` with a pooled connection on the engine's runtime and wait
    /// for its answer on this thread.
    pub(crate) fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = R<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let work = async {
                match pool.get().await {
                    Ok(c) => f(c).await,
                    Err(e) => Err(e.into()),
                }
            };
            // No call of the seam waits for ever on a database that went
            // silent (the caller's own retries take over).
            let r = match tokio::time::timeout(CALL_LIMIT, work).await {
                Ok(r) => r,
                Err(_) => Err(PgError::Pool(format!(
                    "no answer from the database in {} s",
                    CALL_LIMIT.as_secs()
                ))),
            };
            let _ = tx.send(r);
        });
        let r = rx
            .recv()
            .unwrap_or_else(|_| Err(PgError::Pool("the database task stopped".into())));
        match r {
            Ok(v) => {
                self.writes_failing.store(false, Ordering::Relaxed);
                Ok(v)
            }
            Err(PgError::Store(e)) => {
                if matches!(e, StoreError::Fenced(_)) {
                    self.fenced.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
            Err(e) => {
                // The database cannot be reached or written (a lost
                // connection, a pool timeout, a primary turned read-only
                // by a switchover): writes are failing until one works. A
                // statement the database refused (a deadlock, a bad value)
                // is that call's error only.
                let unreachable = match &e {
                    PgError::Pg(p) => {
                        p.is_closed()
                            || p.as_db_error().is_none_or(|d| {
                                let c = d.code().code();
                                c.starts_with("08") || c.starts_with("57") || c == "25006"
                            })
                    }
                    _ => true,
                };
                if unreachable {
                    // A broken connection is not used again: the next call
                    // connects to the (new) primary.
                    self.pool.retain(|c, _| !c.is_closed());
                    self.writes_failing.store(true, Ordering::Relaxed);
                    self.write_failures.fetch_add(1, Ordering::Relaxed);
                }
                Err(e.into())
            }
        }
    }

    pub(crate) fn writes_ok_now(&self) -> bool {
        !self.writes_failing.load(Ordering::Relaxed)
    }

    pub(crate) fn write_failure_count(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids on an async
        // thread: let its threads finish in the background instead.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The URL without its password (for messages and logs).
pub fn redact(url: &str) -> String {
    let url = redact_authority(url);
    // …and any `password=` parameter (`?password=…`, `&password=…`).
    let mut out = String::with_capacity(url.len());
    let mut rest = url.as_str();
    while let Some(at) = rest.find("password=") {
        let (head, tail) = rest.split_at(at + "password=".len());
        out.push_str(head);
        out.push_str("***");
        let end = tail.find(['&', ' ']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn redact_authority(url: &str) -> String {
    // postgresql://user:secret@host/… → postgresql://user:***@host/…
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((cred, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = cred.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return url.to_string();
    }
    // key=value form: hide password=…
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
