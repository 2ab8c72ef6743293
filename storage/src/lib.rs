//! genki-storage: the RocksDB engine under genki's records, and the only
//! crate that knows RocksDB.
//!
//! [`RocksKv`] implements `genki_store::Kv` with one column family per
//! name of `genki_store::store::cf`, LZ4-compressed, every batch written
//! with a synced WAL (RocksDB groups concurrent synced writers into one
//! fsync: the group commit the design asks for). [`open`] gives the
//! engine's [`genki_store::Store`] on it. Everything else (records, the
//! check lifecycle, the alert invariants, their conformance suite) is in
//! genki-store, which this crate re-exports.
//!
//! Dependency rule: depends on rocksdb and genki-store only; knows nothing
//! of SIP, RTP or HTTP.

use std::path::Path;
use std::sync::Arc;

use genki_store::kv::{Batch, Op};
pub use genki_store::*;
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

/// RocksDB as a [`Kv`] engine.
pub struct RocksKv {
    db: DB,
    sync: WriteOptions,
    lazy: WriteOptions,
}

fn db_err(e: rocksdb::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

impl RocksKv {
    /// Open (or create) the database in `path`, with every column family.
    pub fn open(path: &Path) -> Result<RocksKv, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // The log write of one group of writers overlaps the memtable
        // inserts of the previous group (the planner's writers, and the
        // calls' outcome commits, wait less on each other).
        opts.set_enable_pipelined_write(true);
        // A Bloom filter per table file (10 bits a key, ~1 % false
        // positives): a point read of a key that is not there (the
        // planner asks for every check it may create) is answered from
        // memory instead of an index search in every level. Tables written
        // before this setting simply have none.
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);
        // The checks' memtable gets a Bloom filter too (2 % of its size,
        // ~1.3 MiB): planning asks it for every check before creating it,
        // and most are new.
        let mut checks_opts = cf_opts.clone();
        checks_opts.set_memtable_whole_key_filtering(true);
        checks_opts.set_memtable_prefix_bloom_ratio(0.02);
        let cfs = store::cf::ALL.iter().map(|n| {
            let o = if *n == store::cf::CHECKS {
                checks_opts.clone()
            } else {
                cf_opts.clone()
            };
            ColumnFamilyDescriptor::new(*n, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        Ok(RocksKv {
            db,
            sync,
            lazy: WriteOptions::default(),
        })
    }

    fn batch(&self, batch: &Batch) -> Result<WriteBatch, StoreError> {
        let mut b = WriteBatch::default();
        for op in batch.ops() {
            match op {
                Op::Put { cf, key, value } => b.put_cf(self.cf(cf)?, key, value),
                Op::Delete { cf, key } => b.delete_cf(self.cf(cf)?, key),
            }
        }
        Ok(b)
    }

    /// RocksDB's batched MultiGet: one pass through the memtables and the
    /// levels for the whole set (sorted here, as it asks), instead of a
    /// search from the top per key; `take` reads each result (pinned, not
    /// yet copied) into the caller's order.
    fn sorted_multi_get<T>(
        &self,
        cf: &'static str,
        keys: &[&[u8]],
        take: impl Fn(Option<&[u8]>) -> T,
    ) -> Result<Vec<T>, StoreError> {
        let handle = self.cf(cf)?;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| keys[i]);
        let sorted: Vec<&[u8]> = order.iter().map(|&i| keys[i]).collect();
        let found = self.db.batched_multi_get_cf(handle, &sorted, true);
        if found.len() != keys.len() {
            return Err(StoreError::Db(format!(
                "MultiGet answered {} of {} keys",
                found.len(),
                keys.len()
            )));
        }
        let mut out: Vec<(usize, T)> = Vec::with_capacity(keys.len());
        for (i, r) in order.into_iter().zip(found) {
            out.push((i, take(r.map_err(db_err)?.as_deref())));
        }
        out.sort_unstable_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or(StoreError::MissingColumnFamily(name))
    }
}

impl Kv for RocksKv {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(db_err)
    }

    /// RocksDB's batched MultiGet: one pass through the memtables and the
    /// levels for the whole set (sorted here, as it asks), instead of a
    /// search from the top per key.
    fn multi_get(
        &self,
        cf: &'static str,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.sorted_multi_get(cf, keys, |v| v.map(|v| v.to_vec()))
    }

    /// [`Kv::multi_get`]'s one pass, reading only whether each key was
    /// found (RocksDB pins the values; none is copied out).
    fn multi_contains(&self, cf: &'static str, keys: &[&[u8]]) -> Result<Vec<bool>, StoreError> {
        self.sorted_multi_get(cf, keys, |v| v.is_some())
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.db
            .write_opt(self.batch(&batch)?, &self.sync)
            .map_err(db_err)
    }

    fn write_lazy(&self, batch: Batch) -> Result<(), StoreError> {
        self.db
            .write_opt(self.batch(&batch)?, &self.lazy)
            .map_err(db_err)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(db_err)
    }

    fn scan(
        &self,
        cf: &'static str,
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for item in self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::From(from, Direction::Forward))
        {
            let (k, v) = item.map_err(db_err)?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        for n in store::cf::ALL {
            self.db.flush_cf(self.cf(n)?).map_err(db_err)?;
        }
        Ok(())
    }

    /// RocksDB's checkpoint: hard links to the immutable SST files (copies
    /// across file systems), a copy of the manifest and WAL, all consistent
    /// at one sequence number while writes go on.
    fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(db_err)
    }
}

/// Open (or create) genki's database in `path`.
pub fn open(path: &Path) -> Result<Store, StoreError> {
    Ok(Store::new(Arc::new(RocksKv::open(path)?)))
}

/// Open genki's database in `path` with a failpoint: writes fail while
/// `trigger` exists (tests of storage faults through the real binary).
pub fn open_failing_while(path: &Path, trigger: &Path) -> Result<Store, StoreError> {
    let kv = Arc::new(RocksKv::open(path)?);
    Ok(Store::new(Arc::new(FaultyKv::over(
        kv,
        Some(trigger.to_path_buf()),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use genki_store::conformance::{self, Backend};

    /// RocksDB in a temporary directory; every open reopens it.
    struct Rocks(tempfile::TempDir);

    impl Backend for Rocks {
        fn open(&self) -> Box<dyn Storage> {
            Box::new(open(self.0.path()).expect("open"))
        }
    }

    #[test]
    fn rocksdb_engine_passes_the_conformance_suite() {
        conformance::run_all(&|| Box::new(Rocks(tempfile::tempdir().unwrap())));
    }

    #[test]
    fn open_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path()).unwrap();
        let e = open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("cannot open the database"), "{e}");
    }
}
