//! Durable state behind one trait: the cache, the offline queue and what the gateway last knew of
//! each upstream. The engine owns the record formats (JSON text); a store keeps keyed strings in three
//! tables and promises durability and order. Implementations: [`MemoryStore`] here (tests, and hosts
//! that opt out of persistence), IndexedDB in `src/web`, SQLite in the native host.
//!
//! # How the engine uses a store
//!
//! At start the host calls [`Store::load`] once and hands the [`Snapshot`] to
//! [`crate::Gateway::restore`]. From then on the engine emits [`crate::Output::Store`] batches; the
//! host applies them with [`Store::apply`] in the order they were emitted and reports each batch's
//! outcome with [`crate::Gateway::store_done`]. A queued call is acknowledged to its client only after
//! its batch is reported durable.

use crate::prelude::*;

use alloc::collections::BTreeMap;
use core::future::Future;

/// The tables a store keeps. Keys are unique within a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Cached results (a size-capped, least-recently-used set; losing it loses nothing acknowledged).
    Cache,
    /// Offline-queue entries, keyed so that key order is queue order.
    Queue,
    /// What the gateway last knew of each upstream (its tools, for routing while it is unreachable).
    Meta,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Cache, Table::Queue, Table::Meta];

    /// The table's name in a store (an IndexedDB object store, a SQLite table).
    pub fn name(self) -> &'static str {
        match self {
            Table::Cache => "cache",
            Table::Queue => "queue",
            Table::Meta => "meta",
        }
    }
}

/// One change to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace.
    Put { table: Table, key: String, value: String },
    /// Remove (absent keys are not an error).
    Delete { table: Table, key: String },
}

/// Everything a store holds, per table, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    tables: [Vec<(String, String)>; 3],
}

impl Snapshot {
    pub fn table(&self, t: Table) -> &[(String, String)] {
        &self.tables[t as usize]
    }

    /// Set a table's rows (in key order).
    pub fn set(&mut self, t: Table, rows: Vec<(String, String)>) {
        self.tables[t as usize] = rows;
    }
}

/// Why a store failed. `Full` is kept apart because clients are told "storage is full" rather than a
/// generic failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No room left: disk full, a size cap, or the browser's storage quota.
    #[error("storage is full: {0}")]
    Full(String),
    /// The store exists but cannot be read as ours (not a database, damaged, a newer format).
    #[error("the store is corrupt or unreadable: {0}")]
    Corrupt(String),
    /// Anything else (permissions, I/O errors, a closed database).
    #[error("storage failed: {0}")]
    Failed(String),
}

/// A place the engine's state survives in.
///
/// # What a store promises
///
/// - **Durability before returning.** When `apply` returns `Ok`, every op of the batch survives a
///   crash of the process (and, where the medium allows, a power loss): SQLite commits with
///   `synchronous=FULL`, IndexedDB uses a `strict`-durability transaction and waits for `complete`.
/// - **Atomic batches.** A batch is applied entirely or not at all; on `Err`, nothing of it is kept.
/// - **Order.** Batches take effect in the order `apply` is called. A host may merge consecutive
///   batches into one transaction (group commit) as long as it reports each batch's outcome.
/// - **Faithful load.** `load` returns exactly what was applied. A store that cannot be opened or read
///   fails with [`StoreError::Corrupt`] or [`StoreError::Failed`], never with a silently empty
///   snapshot, and leaves the data where it is.
///
/// The futures are not `Send`: the browser's are not, and the native host runs its store on a thread
/// of its own.
pub trait Store {
    /// Everything stored, read once at start-up.
    fn load(&mut self) -> impl Future<Output = Result<Snapshot, StoreError>>;
    /// Apply one batch atomically and durably.
    fn apply(&mut self, ops: Vec<StoreOp>) -> impl Future<Output = Result<(), StoreError>>;
}

/// A store in memory: for tests, and for hosts run without persistence. Optionally capped in bytes
/// (keys plus values), to exercise what happens when storage is full.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    tables: BTreeMap<Table, BTreeMap<String, String>>,
    /// Refuse batches that would make the store larger than this.
    pub max_bytes: Option<usize>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn size(&self) -> usize {
        self.tables.values().flat_map(|t| t.iter()).map(|(k, v)| k.len() + v.len()).sum()
    }

    /// [`Store::load`], synchronously.
    pub fn load_now(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        for (t, m) in &self.tables {
            snap.set(*t, m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        }
        snap
    }

    /// [`Store::apply`], synchronously.
    pub fn apply_now(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let mut next = self.tables.clone();
        for op in ops {
            match op {
                StoreOp::Put { table, key, value } => {
                    next.entry(table).or_default().insert(key, value);
                }
                StoreOp::Delete { table, key } => {
                    if let Some(t) = next.get_mut(&table) {
                        t.remove(&key);
                    }
                }
            }
        }
        let before = core::mem::replace(&mut self.tables, next);
        if let Some(max) = self.max_bytes {
            if self.size() > max {
                self.tables = before;
                return Err(StoreError::Full(format!("the memory store is capped at {max} bytes")));
            }
        }
        Ok(())
    }
}

impl Store for MemoryStore {
    async fn load(&mut self) -> Result<Snapshot, StoreError> {
        Ok(self.load_now())
    }

    async fn apply(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.apply_now(ops)
    }
}

/// The key of a queue entry: zero-padded so that key order is sequence order in every store.
pub fn queue_key(seq: u64) -> String {
    format!("{seq:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_memory_store_refuses_a_batch_whole() {
        let mut s = MemoryStore { max_bytes: Some(20), ..Default::default() };
        let put = |k: &str, v: &str| StoreOp::Put { table: Table::Queue, key: k.into(), value: v.into() };
        s.apply_now(vec![put("a", "1234")]).unwrap();
        let e = s.apply_now(vec![put("b", "1"), put("c", &"x".repeat(30))]).unwrap_err();
        assert!(matches!(e, StoreError::Full(_)));
        assert_eq!(s.load_now().table(Table::Queue), &[("a".to_string(), "1234".to_string())]);
    }

    #[test]
    fn queue_keys_sort_in_sequence_order() {
        assert!(queue_key(9) < queue_key(10));
        assert!(queue_key(99_999) < queue_key(100_000));
    }
}
