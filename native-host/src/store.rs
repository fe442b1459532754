//! The native host's durable store: one SQLite file (`DIR/gateway.sqlite3`) holding the engine's
//! `cache`, `queue` and `meta` tables, and the thread it runs on.
//!
//! # Why it is set up this way
//!
//! - **WAL with `synchronous=FULL`**: a commit is on disk (the WAL is synced) before `apply` returns,
//!   which is what lets the engine acknowledge a queued call; WAL keeps that sync cheap.
//! - **`locking_mode=EXCLUSIVE`**: the file is locked from open until the store is dropped, so a second
//!   gateway pointed at the same data directory fails at start instead of replaying the same queue.
//!   It also keeps the WAL index in process memory (no `-shm` file).
//! - **Nothing is written before the file is known to be ours and sound.** Open reads first (the
//!   schema version, `PRAGMA quick_check`) and only then switches the journal mode or creates tables,
//!   so a damaged file is reported and left byte-for-byte as it was, for the user to inspect or move.
//! - **Group commit**: [`StoreThread`] merges the batches that queued up while the previous commit was
//!   syncing into one transaction, so a burst of queued calls costs one fsync, not one each.

use futures_util::FutureExt;
use mcp_edge_gateway::store::{Snapshot, Store, StoreError, StoreOp, Table};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The store's file name inside the data directory.
pub const FILE_NAME: &str = "gateway.sqlite3";

/// The schema this build writes (`PRAGMA user_version`). A file with a higher number was written by a
/// newer gateway and is refused rather than guessed at.
const SCHEMA_VERSION: i64 = 1;

/// The most batches merged into one transaction: bounds the memory a merge copies and the work redone
/// when a merged commit fails and its batches are retried one by one.
const MAX_GROUP: usize = 256;

/// The engine's tables in one SQLite file. See the module docs for the guarantees.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, creating its directory if missing, and locks it for this
    /// process. `max_bytes` caps the database file; writes beyond it fail with [`StoreError::Full`]. A
    /// cap below the file's current size keeps the current size (the file still opens; it just cannot
    /// grow).
    ///
    /// Fails with [`StoreError::Corrupt`] for a file that is not a sound store of ours (garbage, damaged
    /// pages, a newer schema, another program's database), without writing to it, and with
    /// [`StoreError::Failed`] when another process holds it or it cannot be opened.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Failed(format!("{}: cannot create the directory {}: {e}", path.display(), dir.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        let store = SqliteStore { conn, path: path.to_path_buf() };
        store.init(max_bytes)?;
        Ok(store)
    }

    fn init(&self, max_bytes: Option<u64>) -> Result<(), StoreError> {
        let conn = &self.conn;
        let err = |e| open_error(&self.path, e);
        // Fail at once when another process holds the lock: waiting would only delay the same answer,
        // since an exclusive-mode holder never lets go.
        conn.busy_timeout(Duration::ZERO).map_err(err)?;
        // Before the first access, so that the lock, once taken, is kept until the store is dropped.
        conn.query_row("PRAGMA locking_mode=EXCLUSIVE", [], |_| Ok(())).map_err(err)?;

        // Reads only, until the file is known to be ours and sound. The first read is where garbage
        // surfaces (SQLITE_NOTADB) and where a file locked by another gateway surfaces (SQLITE_BUSY).
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "{}: written by a newer version of mcp-edge-gateway (store schema {version}, this build \
                 reads up to {SCHEMA_VERSION})",
                self.path.display()
            )));
        }
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(err)?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!("{}: {check}", self.path.display())));
        }
        if version == 0 {
            let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).map_err(err)?;
            if objects > 0 {
                return Err(StoreError::Corrupt(format!(
                    "{}: a SQLite database that is not an mcp-edge-gateway store (it has tables of its own)",
                    self.path.display()
                )));
            }
        }

        // Writes from here on. Switching to WAL in exclusive mode takes the file's exclusive lock.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Failed(format!(
                "{}: cannot use write-ahead logging (journal mode stays {mode})",
                self.path.display()
            )));
        }
        // Every commit reaches the disk; a small page cache (the engine keeps what it reads in memory,
        // so SQLite's cache only serves writes): edge boards count their megabytes.
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA cache_size=-256").map_err(err)?;
        if version == 0 {
            let mut sql = String::from("BEGIN IMMEDIATE;");
            for t in Table::ALL {
                sql.push_str(&format!(
                    "CREATE TABLE {} (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
                    t.name()
                ));
            }
            sql.push_str(&format!("PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"));
            if let Err(e) = conn.execute_batch(&sql) {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(err(e));
            }
        }
        // Set after the schema exists, so that even a tiny cap leaves a store that opens.
        if let Some(max) = max_bytes {
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(err)?;
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(err)?;
            let cap = i64::try_from(max / page_size.max(1) as u64).unwrap_or(i64::MAX).max(pages).max(1);
            conn.query_row(&format!("PRAGMA max_page_count={cap}"), [], |_| Ok(())).map_err(err)?;
        }
        Ok(())
    }

    fn load_now(&mut self) -> Result<Snapshot, StoreError> {
        let path = &self.path;
        let tx = self.conn.transaction().map_err(|e| map_error(path, e))?;
        let mut snapshot = Snapshot::default();
        for t in Table::ALL {
            let rows = (|| {
                let mut stmt = tx.prepare(&format!("SELECT key, value FROM {} ORDER BY key", t.name()))?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                rows.collect::<Result<Vec<_>, _>>()
            })()
            .map_err(|e| map_error(path, e))?;
            snapshot.set(t, rows);
        }
        tx.finish().map_err(|e| map_error(path, e))?;
        Ok(snapshot)
    }

    fn apply_now(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let path = &self.path;
        // Dropping `tx` on an error path rolls back (and copes with SQLite having already rolled back,
        // as it may on SQLITE_FULL).
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| map_error(path, e))?;
        for op in &ops {
            let done = match op {
                StoreOp::Put { table, key, value } => tx
                    .prepare_cached(&format!("INSERT OR REPLACE INTO {} (key, value) VALUES (?1, ?2)", table.name()))
                    .and_then(|mut s| s.execute((key, value))),
                StoreOp::Delete { table, key } => tx
                    .prepare_cached(&format!("DELETE FROM {} WHERE key = ?1", table.name()))
                    .and_then(|mut s| s.execute([key])),
            };
            done.map_err(|e| map_error(path, e))?;
        }
        tx.commit().map_err(|e| map_error(path, e))
    }
}

impl Store for SqliteStore {
    async fn load(&mut self) -> Result<Snapshot, StoreError> {
        self.load_now()
    }

    async fn apply(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.apply_now(ops)
    }
}

/// Maps a SQLite error to the engine's three kinds, naming the file.
fn map_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let message = format!("{}: {e}", path.display());
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(message),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(message),
        _ => StoreError::Failed(message),
    }
}

/// [`map_error`], plus the one error that means something specific at open: the lock is taken.
fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Failed(format!(
            "{} is in use by another process (another gateway with the same --data-dir?)",
            path.display()
        )),
        _ => map_error(path, e),
    }
}

type Batch = (u64, Vec<StoreOp>);

/// A [`Store`] on a thread of its own, fed through a channel, with group commit: the batches waiting
/// when a commit finishes are applied together as one transaction. Dropping it lets the thread finish
/// the batches already submitted and close the store; [`StoreThread::close`] also waits for that.
#[derive(Debug)]
pub struct StoreThread {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StoreThread {
    /// Runs `store` on a thread of its own. `done(ticket, result)` is called on that thread for every
    /// submitted batch, in submission order, once the batch is durable (or has failed; a failed batch
    /// leaves nothing behind and does not fail the batches merged with it).
    pub fn spawn<S, F>(store: S, done: F) -> std::io::Result<StoreThread>
    where
        S: Store + Send + 'static,
        F: Fn(u64, Result<(), StoreError>) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new().name("store".into()).spawn(move || run(store, rx, done))?;
        Ok(StoreThread { tx: Some(tx), thread: Some(thread) })
    }

    /// Queues a batch. Fails only when the store thread is gone (it panicked), in which case the batch
    /// will never be reported through `done`.
    pub fn submit(&self, ticket: u64, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send((ticket, ops)).ok())
            .ok_or_else(|| StoreError::Failed("the store thread has stopped".into()))
    }

    /// Waits until every submitted batch is reported and the store is closed (for SQLite: the WAL is
    /// checkpointed into the database file). For an orderly shutdown.
    pub fn close(mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run<S: Store>(mut store: S, rx: mpsc::Receiver<Batch>, done: impl Fn(u64, Result<(), StoreError>)) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(batch) => group.push(batch),
                Err(_) => break,
            }
        }
        if group.len() == 1 {
            for (ticket, ops) in group {
                done(ticket, apply_blocking(&mut store, ops));
            }
            continue;
        }
        let merged: Vec<StoreOp> = group.iter().flat_map(|(_, ops)| ops.iter().cloned()).collect();
        match apply_blocking(&mut store, merged) {
            Ok(()) => {
                for (ticket, _) in group {
                    done(ticket, Ok(()));
                }
            }
            // Nothing of the merged transaction was kept; redo each batch alone so that only the bad
            // one fails. Order is kept, so each batch sees the same state it would have alone.
            Err(_) => {
                for (ticket, ops) in group {
                    done(ticket, apply_blocking(&mut store, ops));
                }
            }
        }
    }
}

/// The store's futures complete without awaiting anything on this thread (SQLite is synchronous), so
/// one poll finishes them.
fn apply_blocking<S: Store>(store: &mut S, ops: Vec<StoreOp>) -> Result<(), StoreError> {
    store.apply(ops).now_or_never().unwrap_or_else(|| {
        Err(StoreError::Failed("the store's apply did not complete on the store thread (a host bug)".into()))
    })
}

/// Where the store lives when `--data-dir` is not given: `$XDG_DATA_HOME/mcp-edge-gateway`, else the
/// platform's per-user data directory (`~/.local/share`, `~/Library/Application Support` on macOS,
/// `%APPDATA%` on Windows). `None` when none of those is known.
pub fn default_data_dir() -> Option<PathBuf> {
    data_dir_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"), std::env::var_os("APPDATA"))
}

/// The default data directory of a gateway started with `config` (`None`: the embedded
/// defaults, which keep the base directory itself). Each config file gets its own,
/// `configs/<file stem>-<hash of its absolute path>`, so two gateways with different
/// configurations run side by side; two with the same one share it (and the second `serve` is
/// refused, as the store says).
pub fn default_data_dir_for(config: Option<&Path>) -> Option<PathBuf> {
    let base = default_data_dir()?;
    Some(match config {
        None => base,
        Some(p) => base.join("configs").join(config_dir_name(&std::fs::canonicalize(p).unwrap_or_else(|_| p.into()))),
    })
}

fn config_dir_name(abs: &Path) -> String {
    use sha2::Digest;
    let stem: String = abs
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
                .take(48)
                .collect()
        })
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(abs.as_os_str().as_encoded_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{stem}-{hex}")
}

fn data_dir_from(
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
    appdata: Option<OsString>,
) -> Option<PathBuf> {
    const NAME: &str = "mcp-edge-gateway";
    // The XDG spec: an empty or relative value is to be ignored.
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if cfg!(windows) {
        return absolute(appdata).map(|d| d.join(NAME));
    }
    if let Some(xdg) = absolute(xdg_data_home) {
        return Some(xdg.join(NAME));
    }
    let home = absolute(home)?;
    Some(if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support").join(NAME)
    } else {
        home.join(".local").join("share").join(NAME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "mcp-edge-gateway-store-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join(FILE_NAME)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn put(table: Table, key: &str, value: &str) -> StoreOp {
        StoreOp::Put { table, key: key.into(), value: value.into() }
    }

    fn del(table: Table, key: &str) -> StoreOp {
        StoreOp::Delete { table, key: key.into() }
    }

    fn now<T>(f: impl std::future::Future<Output = T>) -> T {
        f.now_or_never().expect("SqliteStore futures complete at once")
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn puts_and_deletes_load_back_in_key_order_per_table() {
        let dir = TempDir::new("roundtrip");
        let mut s = SqliteStore::open(&dir.file(), None).unwrap();
        assert_eq!(now(s.load()).unwrap(), Snapshot::default());
        now(s.apply(vec![
            put(Table::Queue, "00000000000000000010", "ten"),
            put(Table::Queue, "00000000000000000009", "nine"),
            put(Table::Cache, "b", "2"),
            put(Table::Cache, "a", "1"),
            put(Table::Meta, "up", "{\"tools\":[]}"),
        ]))
        .unwrap();
        now(s.apply(vec![put(Table::Cache, "a", "one"), del(Table::Cache, "b"), del(Table::Meta, "absent")])).unwrap();
        let snap = now(s.load()).unwrap();
        assert_eq!(
            snap.table(Table::Queue),
            pairs(&[("00000000000000000009", "nine"), ("00000000000000000010", "ten")])
        );
        assert_eq!(snap.table(Table::Cache), pairs(&[("a", "one")]));
        assert_eq!(snap.table(Table::Meta), pairs(&[("up", "{\"tools\":[]}")]));
    }

    #[test]
    fn data_survives_closing_and_reopening() {
        let dir = TempDir::new("reopen");
        {
            let mut s = SqliteStore::open(&dir.file(), None).unwrap();
            now(s.apply(vec![put(Table::Queue, "1", "a"), put(Table::Meta, "m", "b")])).unwrap();
        }
        let mut s = SqliteStore::open(&dir.file(), Some(1 << 20)).unwrap();
        let snap = now(s.load()).unwrap();
        assert_eq!(snap.table(Table::Queue), pairs(&[("1", "a")]));
        assert_eq!(snap.table(Table::Meta), pairs(&[("m", "b")]));
    }

    #[test]
    fn a_second_open_of_a_store_in_use_fails_and_names_the_file() {
        let dir = TempDir::new("locked");
        let mut first = SqliteStore::open(&dir.file(), None).unwrap();
        now(first.apply(vec![put(Table::Queue, "1", "a")])).unwrap();
        let started = std::time::Instant::now();
        let e = SqliteStore::open(&dir.file(), None).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "no waiting on the lock");
        let StoreError::Failed(message) = &e else { panic!("{e:?}") };
        assert!(message.contains(&dir.file().display().to_string()), "{message}");
        assert!(message.contains("in use by another process"), "{message}");
        // The holder is unaffected.
        now(first.apply(vec![put(Table::Queue, "2", "b")])).unwrap();
        assert_eq!(now(first.load()).unwrap().table(Table::Queue).len(), 2);
        drop(first);
        assert!(SqliteStore::open(&dir.file(), None).is_ok(), "free again once the holder closes");
    }

    #[test]
    fn a_full_store_refuses_the_batch_keeps_earlier_data_and_takes_writes_after_deletes() {
        let dir = TempDir::new("full");
        let mut s = SqliteStore::open(&dir.file(), Some(64 * 1024)).unwrap();
        now(s.apply(vec![put(Table::Meta, "keep", "me")])).unwrap();
        let e = now(s.apply(vec![put(Table::Queue, "small", "x"), put(Table::Cache, "big", &"x".repeat(256 * 1024))]))
            .unwrap_err();
        let StoreError::Full(message) = &e else { panic!("{e:?}") };
        assert!(message.contains(&dir.file().display().to_string()), "{message}");
        assert_eq!(e.to_string().split(':').next(), Some("storage is full"));

        // Fill the cap with middling entries, then check what a delete gives back.
        let mut stored = Vec::new();
        for i in 0..100 {
            match now(s.apply(vec![put(Table::Cache, &format!("k{i:03}"), &"y".repeat(6000))])) {
                Ok(()) => stored.push(format!("k{i:03}")),
                Err(StoreError::Full(_)) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(!stored.is_empty() && stored.len() < 100, "filled up after {} entries", stored.len());
        let snap = now(s.load()).unwrap();
        assert_eq!(snap.table(Table::Meta), pairs(&[("keep", "me")]));
        assert!(snap.table(Table::Queue).is_empty(), "the refused batch left nothing");
        assert_eq!(snap.table(Table::Cache).len(), stored.len());

        now(s.apply(stored.iter().take(3).map(|k| del(Table::Cache, k)).collect())).unwrap();
        now(s.apply(vec![put(Table::Queue, "after", &"z".repeat(6000))])).unwrap();
        assert_eq!(now(s.load()).unwrap().table(Table::Queue).len(), 1);
    }

    #[test]
    fn a_store_larger_than_a_new_cap_still_opens_and_cannot_grow() {
        let dir = TempDir::new("shrunk-cap");
        {
            let mut s = SqliteStore::open(&dir.file(), None).unwrap();
            let ops = (0..50).map(|i| put(Table::Cache, &format!("k{i:02}"), &"v".repeat(4000))).collect();
            now(s.apply(ops)).unwrap();
        }
        let mut s = SqliteStore::open(&dir.file(), Some(16 * 1024)).unwrap();
        assert_eq!(now(s.load()).unwrap().table(Table::Cache).len(), 50);
        let e = now(s.apply(vec![put(Table::Queue, "q", &"w".repeat(20_000))])).unwrap_err();
        assert!(matches!(e, StoreError::Full(_)), "{e:?}");
        now(s.apply((0..10).map(|i| del(Table::Cache, &format!("k{i:02}"))).collect())).unwrap();
        now(s.apply(vec![put(Table::Queue, "q", &"w".repeat(20_000))])).unwrap();
    }

    #[test]
    fn a_garbage_file_is_reported_corrupt_and_left_untouched() {
        let dir = TempDir::new("garbage");
        std::fs::create_dir_all(&dir.0).unwrap();
        let mut x: u32 = 0x1234_5678;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        std::fs::write(dir.file(), &garbage).unwrap();
        let e = match SqliteStore::open(&dir.file(), None) {
            Err(e) => e,
            Ok(mut s) => now(s.load()).unwrap_err(),
        };
        let StoreError::Corrupt(message) = &e else { panic!("{e:?}") };
        assert!(message.contains(&dir.file().display().to_string()), "{message}");
        assert_eq!(std::fs::read(dir.file()).unwrap(), garbage);
        assert_eq!(dir.entries(), vec![FILE_NAME.to_string()], "no -wal or -journal left behind");
    }

    #[test]
    fn a_store_with_damaged_pages_is_reported_corrupt_and_left_untouched() {
        let dir = TempDir::new("damaged");
        {
            let mut s = SqliteStore::open(&dir.file(), None).unwrap();
            let ops = (0..200).map(|i| put(Table::Cache, &format!("k{i:04}"), &"v".repeat(100))).collect();
            now(s.apply(ops)).unwrap();
        }
        assert_eq!(dir.entries(), vec![FILE_NAME.to_string()], "closing checkpoints the WAL");
        let mut bytes = std::fs::read(dir.file()).unwrap();
        let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        assert!(bytes.len() >= 4 * page);
        // Page 3: the queue table's root (pages 2-4 are the roots of cache, queue, meta, in creation order).
        for b in &mut bytes[2 * page..3 * page] {
            *b = 0xA5;
        }
        std::fs::write(dir.file(), &bytes).unwrap();
        let e = match SqliteStore::open(&dir.file(), None) {
            Err(e) => e,
            Ok(mut s) => now(s.load()).unwrap_err(),
        };
        assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
        assert_eq!(std::fs::read(dir.file()).unwrap(), bytes);
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused_untouched() {
        let dir = TempDir::new("newer");
        std::fs::create_dir_all(&dir.0).unwrap();
        {
            let c = Connection::open(dir.file()).unwrap();
            c.execute_batch("CREATE TABLE cache (key TEXT PRIMARY KEY, value TEXT NOT NULL); PRAGMA user_version=2;")
                .unwrap();
        }
        let before = std::fs::read(dir.file()).unwrap();
        let e = SqliteStore::open(&dir.file(), None).unwrap_err();
        let StoreError::Corrupt(message) = &e else { panic!("{e:?}") };
        assert!(message.contains("newer version"), "{message}");
        assert_eq!(std::fs::read(dir.file()).unwrap(), before);
    }

    #[test]
    fn another_programs_database_is_refused_untouched() {
        let dir = TempDir::new("foreign");
        std::fs::create_dir_all(&dir.0).unwrap();
        {
            let c = Connection::open(dir.file()).unwrap();
            c.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');").unwrap();
        }
        let before = std::fs::read(dir.file()).unwrap();
        let e = SqliteStore::open(&dir.file(), None).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
        assert_eq!(std::fs::read(dir.file()).unwrap(), before);
    }

    type Reports = Arc<Mutex<Vec<(u64, Result<(), StoreError>)>>>;

    fn spawn_recording<S: Store + Send + 'static>(store: S) -> (StoreThread, Reports) {
        let reports: Reports = Arc::default();
        let sink = reports.clone();
        let thread =
            StoreThread::spawn(store, move |ticket, result| sink.lock().unwrap().push((ticket, result))).unwrap();
        (thread, reports)
    }

    #[test]
    fn group_commit_reports_every_batch_in_order_and_stores_them_all() {
        let dir = TempDir::new("group");
        let (thread, reports) = spawn_recording(SqliteStore::open(&dir.file(), None).unwrap());
        for i in 0..200u64 {
            thread.submit(i, vec![put(Table::Queue, &mcp_edge_gateway::store::queue_key(i), "{}")]).unwrap();
        }
        thread.close();
        let reports = reports.lock().unwrap();
        assert_eq!(reports.iter().map(|(t, _)| *t).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
        assert!(reports.iter().all(|(_, r)| r.is_ok()), "{reports:?}");
        let snap = now(SqliteStore::open(&dir.file(), None).unwrap().load()).unwrap();
        assert_eq!(snap.table(Table::Queue).len(), 200);
    }

    /// Counts the `apply` calls that reach the store, and refuses any batch holding a put of "bad".
    struct Picky {
        inner: mcp_edge_gateway::store::MemoryStore,
        applies: Arc<AtomicU64>,
    }

    impl Store for Picky {
        async fn load(&mut self) -> Result<Snapshot, StoreError> {
            self.inner.load().await
        }

        async fn apply(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
            self.applies.fetch_add(1, Ordering::Relaxed);
            if ops.iter().any(|op| matches!(op, StoreOp::Put { key, .. } if key == "bad")) {
                return Err(StoreError::Full("no room for bad".into()));
            }
            self.inner.apply(ops).await
        }
    }

    #[test]
    fn one_bad_batch_in_a_group_fails_alone() {
        let applies = Arc::new(AtomicU64::new(0));
        // The thread is held in `done` for ticket 0 while tickets 1-3 queue up, so they form one group.
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let reports: Reports = Arc::default();
        let (sink, gate2) = (reports.clone(), gate.clone());
        let store = Picky { inner: Default::default(), applies: applies.clone() };
        let thread = StoreThread::spawn(store, move |ticket, result| {
            if ticket == 0 {
                entered_tx.send(()).unwrap();
                drop(gate2.lock().unwrap());
            }
            sink.lock().unwrap().push((ticket, result));
        })
        .unwrap();
        thread.submit(0, vec![put(Table::Queue, "0", "x")]).unwrap();
        entered.recv().unwrap();
        for (t, key) in [(1, "1"), (2, "bad"), (3, "3")] {
            thread.submit(t, vec![put(Table::Queue, key, "x")]).unwrap();
        }
        drop(held);
        thread.close();
        let reports = reports.lock().unwrap();
        let outcome: Vec<(u64, bool)> = reports.iter().map(|(t, r)| (*t, r.is_ok())).collect();
        assert_eq!(outcome, vec![(0, true), (1, true), (2, false), (3, true)]);
        assert!(matches!(reports[2].1, Err(StoreError::Full(_))));
        // 1 for ticket 0, 1 for the merged group 1-3, then 3 for its batches one by one.
        assert_eq!(applies.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn the_default_data_dir_follows_xdg_then_the_platform() {
        let os = |s: &str| Some(OsString::from(s));
        if cfg!(windows) {
            assert_eq!(
                data_dir_from(None, None, os(r"C:\Users\u\AppData\Roaming")).unwrap().file_name().unwrap(),
                NAME
            );
            return;
        }
        const NAME: &str = "mcp-edge-gateway";
        assert_eq!(data_dir_from(os("/x/data"), os("/home/u"), None), Some(PathBuf::from("/x/data").join(NAME)));
        assert_eq!(data_dir_from(os("relative"), None, None), None, "a relative XDG_DATA_HOME is ignored");
        assert_eq!(data_dir_from(os(""), None, None), None);
        let home = data_dir_from(os(""), os("/home/u"), None).unwrap();
        if cfg!(target_os = "macos") {
            assert_eq!(home, PathBuf::from("/home/u/Library/Application Support").join(NAME));
        } else {
            assert_eq!(home, PathBuf::from("/home/u/.local/share").join(NAME));
        }
    }
}
