//! The storage engine seam (in the manner of TiKV's `engine_traits`): the
//! few operations genki's records need from an ordered key-value store
//! with named column families, atomic synced batches and forward scans.
//! [`crate::Store`] writes the check lifecycle and the alert invariants
//! once over it; RocksDB (genki-storage) and [`MemKv`] (tests, and anything
//! that needs no disk) are engines.
//!
//! Depends on: std only.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

use crate::StoreError;

/// One change in a [`Batch`], borrowed from the batch's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Put {
        cf: &'static str,
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        cf: &'static str,
        key: &'a [u8],
    },
}

/// Where one change's key and value lie in [`Batch::bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    cf: &'static str,
    /// A put (else a delete).
    put: bool,
    start: usize,
    key_end: usize,
    end: usize,
}

/// Changes applied all together or not at all.
///
/// Every key and value is appended to one buffer, and a change records
/// only where its bytes lie: the planner puts three entries per check for
/// a million checks, and a `Vec` per key and per value (plus the encoding
/// buffer's growth) made small allocations a fifth of its CPU. Records
/// are serialised straight into the buffer ([`Batch::put_record`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Batch {
    /// An empty batch with room for about `ops` changes of `bytes` bytes
    /// in all (no reallocation while it stays within them).
    pub fn with_capacity(ops: usize, bytes: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(ops),
        }
    }

    /// Record the change whose key begins at `start` and value at `key_end`.
    fn push(&mut self, cf: &'static str, put: bool, start: usize, key_end: usize) {
        self.entries.push(Entry {
            cf,
            put,
            start,
            key_end,
            end: self.bytes.len(),
        });
    }

    pub fn put(&mut self, cf: &'static str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key.as_ref());
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(value.as_ref());
        self.push(cf, true, start, key_end);
    }

    /// Put a key made of `parts` (joined) with an empty value: an index
    /// entry, whose key is all it says.
    pub fn put_key(&mut self, cf: &'static str, parts: &[&[u8]]) {
        let start = self.bytes.len();
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
        let key_end = self.bytes.len();
        self.push(cf, true, start, key_end);
    }

    /// Put `value` encoded as a record (see [`crate::records`]) under `key`,
    /// serialised in place.
    pub fn put_record<T: serde::Serialize>(&mut self, cf: &'static str, key: &[u8], value: &T) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        crate::records::encode_into(&mut self.bytes, value);
        self.push(cf, true, start, key_end);
    }

    pub fn delete(&mut self, cf: &'static str, key: impl AsRef<[u8]>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key.as_ref());
        let key_end = self.bytes.len();
        self.push(cf, false, start, key_end);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The changes, in the order they were made.
    pub fn ops(&self) -> impl Iterator<Item = Op<'_>> + '_ {
        self.entries.iter().map(|e| {
            let key = &self.bytes[e.start..e.key_end];
            if e.put {
                Op::Put {
                    cf: e.cf,
                    key,
                    value: &self.bytes[e.key_end..e.end],
                }
            } else {
                Op::Delete { cf: e.cf, key }
            }
        })
    }
}

/// An ordered key-value engine with column families.
///
/// Contract (the conformance suite holds every engine to it): keys are
/// ordered bytewise; [`Kv::write`] applies a batch atomically and is
/// durable when it returns (a crash after it returns loses nothing of it,
/// one during it leaves all or nothing); a write visible to one reader is
/// visible to all; [`Kv::scan`] visits keys at or after `from` in order,
/// seeing at least every write that returned before it began.
/// [`Kv::write_lazy`] is the one exception to durability: visible at once,
/// durable only once [`Kv::sync`] or a later [`Kv::write`] returns.
pub trait Kv: Send + Sync {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Many point reads at once (the planner reads a page of keys): the
    /// same answers as [`Kv::get`] of each, in the order of `keys`.
    fn multi_get(
        &self,
        cf: &'static str,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(cf, k)).collect()
    }
    /// Which of `keys` exist, in their order: [`Kv::multi_get`] without
    /// copying the values out (the planner asks it of a page of checks
    /// that, on every plan but the first, all exist).
    fn multi_contains(&self, cf: &'static str, keys: &[&[u8]]) -> Result<Vec<bool>, StoreError> {
        Ok(self
            .multi_get(cf, keys)?
            .into_iter()
            .map(|v| v.is_some())
            .collect())
    }
    fn write(&self, batch: Batch) -> Result<(), StoreError>;
    /// Apply a batch atomically and visibly, without waiting for the disk:
    /// it survives the process being killed (it is in the log, in the
    /// operating system's hands) and becomes durable against a power cut
    /// once [`Kv::sync`] or any later synced [`Kv::write`] returns (the log
    /// is one sequence, so syncing it covers everything before, and a
    /// power cut leaves a prefix of it). Only for writes whose loss in a
    /// power cut leaves a state the daemon already handles: planning (it
    /// is idempotent and runs again), a claim (the check is due again and
    /// is called, as after an interrupted claim), an attempt's end details
    /// after its outcome was stored synced, an alert input consumed with
    /// nothing to do (it is applied again, again with nothing to do).
    /// Nothing seen outside the process may depend on one: whatever a
    /// watcher or a coordinator is told is written synced first, which
    /// makes every lazy write before it durable too.
    fn write_lazy(&self, batch: Batch) -> Result<(), StoreError> {
        self.write(batch)
    }
    /// Make every write so far durable (one fsync of the log).
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Visit `(key, value)` from `from` on, in key order, while `visit`
    /// returns true.
    fn scan(
        &self,
        cf: &'static str,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// Make everything written cheap to reopen (a clean shutdown); writes
    /// are already durable without it.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Write a consistent copy of everything written so far into `dir`
    /// (which must not exist) while writes go on: a backup that opens as a
    /// database of its own.
    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        let _ = dir;
        Err(StoreError::Unsupported(
            "this storage engine keeps nothing on disk to back up",
        ))
    }
}

/// An engine in memory: `BTreeMap`s behind one lock. Durable for as long
/// as the value lives, so a "crash" in tests is dropping the [`crate::Store`]
/// above it and opening another on the same `MemKv`.
#[derive(Debug, Default)]
pub struct MemKv {
    cfs: RwLock<HashMap<&'static str, Family>>,
}

/// One column family in memory.
type Family = BTreeMap<Vec<u8>, Vec<u8>>;

impl MemKv {
    pub fn new() -> MemKv {
        MemKv::default()
    }
}

impl Kv for MemKv {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cfs = self.cfs.read().unwrap_or_else(|e| e.into_inner());
        Ok(cfs.get(cf).and_then(|m| m.get(key)).cloned())
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut cfs = self.cfs.write().unwrap_or_else(|e| e.into_inner());
        for op in batch.ops() {
            match op {
                Op::Put { cf, key, value } => {
                    cfs.entry(cf)
                        .or_default()
                        .insert(key.to_vec(), value.to_vec());
                }
                Op::Delete { cf, key } => {
                    if let Some(m) = cfs.get_mut(cf) {
                        m.remove(key);
                    }
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        cf: &'static str,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // Visit in chunks copied out under the lock, so that `visit` may
        // read (or write) the engine itself without deadlocking.
        let mut start: Bound<Vec<u8>> = Bound::Included(from.to_vec());
        loop {
            let chunk: Vec<(Vec<u8>, Vec<u8>)> = {
                let cfs = self.cfs.read().unwrap_or_else(|e| e.into_inner());
                let Some(m) = cfs.get(cf) else {
                    return Ok(());
                };
                m.range((start.clone(), Bound::Unbounded))
                    .take(256)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            let Some(last) = chunk.last().map(|(k, _)| k.clone()) else {
                return Ok(());
            };
            for (k, v) in &chunk {
                if !visit(k, v) {
                    return Ok(());
                }
            }
            start = Bound::Excluded(last);
        }
    }
}

/// Fault injection for tests (a failpoint on the write path): an engine
/// whose writes fail with an IO error while [`FaultyKv::set_failing`] is
/// on, or while a trigger file exists (the daemon's hidden
/// `--fail-writes-while <file>`, for tests through the real binary), as a
/// full disk (ENOSPC) or a dying one (EIO) would; reads go on.
pub struct FaultyKv {
    inner: std::sync::Arc<dyn Kv>,
    failing: std::sync::atomic::AtomicBool,
    trigger: Option<std::path::PathBuf>,
}

impl Default for FaultyKv {
    fn default() -> Self {
        FaultyKv::over(std::sync::Arc::new(MemKv::new()), None)
    }
}

impl FaultyKv {
    /// Over an engine in memory.
    pub fn new() -> FaultyKv {
        FaultyKv::default()
    }
    /// Over `inner`; writes also fail while `trigger` exists.
    pub fn over(inner: std::sync::Arc<dyn Kv>, trigger: Option<std::path::PathBuf>) -> FaultyKv {
        FaultyKv {
            inner,
            failing: Default::default(),
            trigger,
        }
    }
    pub fn set_failing(&self, on: bool) {
        self.failing.store(on, std::sync::atomic::Ordering::SeqCst);
    }
    fn fails(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::SeqCst)
            || self.trigger.as_deref().is_some_and(|p| p.exists())
    }
}

impl Kv for FaultyKv {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }
    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        if self.fails() {
            return Err(StoreError::Db("No space left on device (injected)".into()));
        }
        self.inner.write(batch)
    }
    fn multi_get(
        &self,
        cf: &'static str,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.multi_get(cf, keys)
    }
    fn multi_contains(&self, cf: &'static str, keys: &[&[u8]]) -> Result<Vec<bool>, StoreError> {
        self.inner.multi_contains(cf, keys)
    }
    fn write_lazy(&self, batch: Batch) -> Result<(), StoreError> {
        if self.fails() {
            return Err(StoreError::Db("No space left on device (injected)".into()));
        }
        self.inner.write_lazy(batch)
    }
    fn sync(&self) -> Result<(), StoreError> {
        if self.fails() {
            return Err(StoreError::Db("No space left on device (injected)".into()));
        }
        self.inner.sync()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        self.inner.checkpoint(dir)
    }
    fn scan(
        &self,
        cf: &'static str,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan(cf, from, visit)
    }
}
