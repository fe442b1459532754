//! The [`Store`] on IndexedDB: one database per gateway, one object store per table (`cache`, `queue`,
//! `meta`) holding string values under out-of-line string keys. `indexedDB` is taken from the global
//! scope, so pages, workers and service workers all work.
//!
//! Durability: a batch is one `readwrite` transaction created with `durability: "strict"`, and
//! [`Store::apply`] returns only once it has fired `complete`. Chrome's default durability is
//! "relaxed", which reports success before the data reaches the disk, so a queued call acknowledged
//! to its client could be lost to an OS crash or a power cut. Browsers that do not know the option
//! ignore it and use their own default.
//!
//! Failures: a transaction that fails always ends in `abort` (we never cancel an `error` event), so
//! `apply` waits for `abort` and then reads the cause from the transaction's `error`. When it
//! returns `Err`, the batch is known to be rolled back. A `QuotaExceededError` is [`StoreError::Full`].

use std::prelude::rust_2021::*;

use crate::store::{Snapshot, Store, StoreError, StoreOp, Table};
use js_sys::{Array, JsString, Object, Promise, Reflect};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbFactory, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction};

/// The schema version. Opening a database that a newer gateway has upgraded fails with `VersionError`,
/// reported as [`StoreError::Corrupt`]: we cannot read a format we do not know.
const VERSION: u32 = 1;

#[wasm_bindgen]
extern "C" {
    /// `IDBDatabase`, for the `transaction(names, mode, options)` overload that web-sys exposes only
    /// behind `--cfg=web_sys_unstable_apis`.
    #[wasm_bindgen(js_name = IDBDatabase)]
    type DatabaseWithOptions;

    #[wasm_bindgen(catch, method, js_name = transaction)]
    fn transaction_with_options(
        this: &DatabaseWithOptions,
        names: &Array,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;
}

/// A gateway's durable state in an IndexedDB database.
///
/// The connection is closed when the store is dropped, and also when another context upgrades or
/// deletes the database (a `versionchange`), so that this one never blocks it; the store's later
/// operations then fail with [`StoreError::Failed`].
pub struct IdbStore {
    db: IdbDatabase,
    name: String,
    /// Set when the connection was closed for another context's `versionchange`.
    closed: Rc<Cell<bool>>,
    /// The `versionchange` handler, kept alive as long as the connection.
    _close_on_versionchange: Closure<dyn FnMut()>,
}

impl IdbStore {
    /// Opens database `name`, creating it (version 1, object stores `cache`, `queue` and `meta`) if it
    /// does not exist.
    ///
    /// Fails with [`StoreError::Corrupt`] when the database was upgraded by a newer version or lacks
    /// our object stores, and with [`StoreError::Failed`] when IndexedDB is unavailable, the open is
    /// blocked by another context or the browser refuses it.
    pub async fn open(name: &str) -> Result<IdbStore, StoreError> {
        let req = factory()?.open_with_u32(name, VERSION).map_err(|e| failure(name, "cannot open the database", &e))?;
        // Why the upgrade (creating the object stores) failed, if it did: the open then fails with a
        // bare AbortError.
        let upgrade_failed: Rc<RefCell<Option<JsValue>>> = Rc::default();
        let on_upgrade = {
            let (req, upgrade_failed) = (req.clone(), upgrade_failed.clone());
            Closure::<dyn FnMut()>::new(move || {
                if let Err(e) = create_object_stores(&req) {
                    if let Some(tx) = req.transaction() {
                        let _ = tx.abort();
                    }
                    *upgrade_failed.borrow_mut() = Some(e);
                }
            })
        };
        req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
        let settled = JsFuture::from(Promise::new(&mut |resolve, reject| {
            req.set_onsuccess(Some(&resolve));
            req.set_onerror(Some(&reject));
            req.set_onblocked(Some(&reject));
        }));
        let outcome = settled.await;
        req.set_onsuccess(None);
        req.set_onerror(None);
        req.set_onblocked(None);
        req.set_onupgradeneeded(None);
        drop(on_upgrade);
        if let Err(event) = outcome {
            return Err(open_failed(name, &req, &event, upgrade_failed.borrow_mut().take()));
        }
        let db: IdbDatabase = match req.result().and_then(|r| r.dyn_into()) {
            Ok(db) => db,
            Err(e) => return Err(failure(name, "cannot open the database", &e)),
        };
        let names = db.object_store_names();
        let missing: Vec<&str> = Table::ALL.iter().map(|t| t.name()).filter(|n| !names.contains(n)).collect();
        if !missing.is_empty() {
            db.close();
            return Err(StoreError::Corrupt(format!(
                "IndexedDB database {name:?} is not a gateway store: it has no object store {}",
                missing.join(", ")
            )));
        }
        let closed: Rc<Cell<bool>> = Rc::default();
        let close_on_versionchange = {
            let (db, closed) = (db.clone(), closed.clone());
            Closure::<dyn FnMut()>::new(move || {
                closed.set(true);
                db.close();
            })
        };
        db.set_onversionchange(Some(close_on_versionchange.as_ref().unchecked_ref()));
        Ok(IdbStore { db, name: name.to_string(), closed, _close_on_versionchange: close_on_versionchange })
    }

    /// Deletes database `name` (absent is not an error). Connections of [`IdbStore`]s close
    /// themselves; other open connections that do not close on `versionchange` make this wait.
    pub async fn delete(name: &str) -> Result<(), StoreError> {
        let req = factory()?.delete_database(name).map_err(|e| failure(name, "cannot delete the database", &e))?;
        let settled = JsFuture::from(Promise::new(&mut |resolve, reject| {
            req.set_onsuccess(Some(&resolve));
            req.set_onerror(Some(&reject));
        }));
        match settled.await {
            Ok(_) => Ok(()),
            Err(_) => Err(failure(name, "cannot delete the database", &request_error(&req))),
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A transaction that could not be created: say why when we closed the connection ourselves.
    fn cannot_start(&self, what: &str, e: &JsValue) -> StoreError {
        if self.closed.get() {
            return StoreError::Failed(format!(
                "IndexedDB {}: {what}: the connection was closed because another tab or worker deleted or \
                 upgraded the database",
                self.name
            ));
        }
        failure(&self.name, what, e)
    }

    fn object_store(&self, tx: &IdbTransaction, table: Table) -> Result<IdbObjectStore, StoreError> {
        tx.object_store(table.name()).map_err(|e| failure(&self.name, table.name(), &e))
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.close();
    }
}

impl Store for IdbStore {
    /// One readonly transaction over the three object stores; every key and value must be a string.
    async fn load(&mut self) -> Result<Snapshot, StoreError> {
        let names: Array = Table::ALL.iter().map(|t| JsValue::from_str(t.name())).collect();
        let tx = self.db.transaction_with_str_sequence(&names).map_err(|e| self.cannot_start("cannot read", &e))?;
        let done = finished(&tx);
        let mut reads = Vec::with_capacity(Table::ALL.len());
        for table in Table::ALL {
            let os = self.object_store(&tx, table)?;
            // Both in key order, over the same snapshot of a readonly transaction.
            let keys = os.get_all_keys().map_err(|e| failure(&self.name, table.name(), &e));
            let values = os.get_all().map_err(|e| failure(&self.name, table.name(), &e));
            match (keys, values) {
                (Ok(k), Ok(v)) => reads.push((table, k, v)),
                (Err(e), _) | (_, Err(e)) => {
                    let _ = tx.abort();
                    return Err(e);
                }
            }
        }
        done.await.map_err(|_| transaction_failed(&self.name, "cannot read", &tx))?;
        let mut snapshot = Snapshot::default();
        for (table, keys, values) in reads {
            let rows = rows(&self.name, table, &keys, &values)?;
            if !rows.is_empty() {
                snapshot.set(table, rows);
            }
        }
        Ok(snapshot)
    }

    /// One `readwrite` transaction with strict durability over the object stores the batch touches.
    async fn apply(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let table_of = |op: &StoreOp| match op {
            StoreOp::Put { table, .. } | StoreOp::Delete { table, .. } => *table,
        };
        let tables: Vec<Table> = Table::ALL.into_iter().filter(|t| ops.iter().any(|op| table_of(op) == *t)).collect();
        let names: Array = tables.iter().map(|t| JsValue::from_str(t.name())).collect();
        let options = Object::new();
        let _ = Reflect::set(&options, &"durability".into(), &"strict".into());
        let tx = self
            .db
            .unchecked_ref::<DatabaseWithOptions>()
            .transaction_with_options(&names, "readwrite", &options)
            .map_err(|e| self.cannot_start("cannot write", &e))?;
        let done = finished(&tx);
        let mut stores = Vec::with_capacity(tables.len());
        for t in &tables {
            stores.push((*t, self.object_store(&tx, *t)?));
        }
        for op in &ops {
            let table = table_of(op);
            let Some((_, os)) = stores.iter().find(|(t, _)| *t == table) else { continue };
            let request = match op {
                StoreOp::Put { key, value, .. } => os.put_with_key(&JsValue::from_str(value), &JsValue::from_str(key)),
                StoreOp::Delete { key, .. } => os.delete(&JsValue::from_str(key)),
            };
            if let Err(e) = request {
                let _ = tx.abort();
                return Err(failure(&self.name, table.name(), &e));
            }
        }
        done.await.map(|_| ()).map_err(|_| transaction_failed(&self.name, "cannot write", &tx))
    }
}

/// `indexedDB` of the global scope (a window, a worker or a service worker).
fn factory() -> Result<IdbFactory, StoreError> {
    let unavailable = |why: &str| StoreError::Failed(format!("IndexedDB is not available here{why}"));
    match Reflect::get(&js_sys::global(), &"indexedDB".into()) {
        Ok(f) => f.dyn_into().map_err(|_| unavailable("")),
        // Opaque origins (sandboxed frames, data: URLs) throw a SecurityError.
        Err(e) => Err(unavailable(&format!(": {}", describe_error(&e)))),
    }
}

/// Creates the object stores a database lacks, in the `upgradeneeded` of `req`.
fn create_object_stores(req: &IdbOpenDbRequest) -> Result<(), JsValue> {
    let db: IdbDatabase = req.result()?.dyn_into()?;
    let names = db.object_store_names();
    for t in Table::ALL {
        if !names.contains(t.name()) {
            db.create_object_store(t.name())?;
        }
    }
    Ok(())
}

/// Settles when the transaction ends: resolved by `complete`, rejected by `abort`. The handlers are the
/// promise's own resolvers, so nothing needs freeing and nothing runs after the promise is dropped.
fn finished(tx: &IdbTransaction) -> JsFuture {
    JsFuture::from(Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    }))
}

/// Why an open failed: `event` is the `error` or `blocked` event of `req`.
fn open_failed(name: &str, req: &IdbOpenDbRequest, event: &JsValue, upgrade: Option<JsValue>) -> StoreError {
    let kind = Reflect::get(event, &"type".into()).ok().and_then(|t| t.as_string());
    if kind.as_deref() == Some("blocked") {
        abort_upgrade_when_unblocked(req);
        return StoreError::Failed(format!(
            "IndexedDB database {name:?} is blocked: another tab or worker holds it open at an older version"
        ));
    }
    if let Some(e) = upgrade {
        return failure(name, "cannot create the object stores", &e);
    }
    let e = request_error(req);
    if error_name(&e).as_deref() == Some("VersionError") {
        return StoreError::Corrupt(format!(
            "IndexedDB database {name:?} was upgraded beyond version {VERSION} by a newer version of the gateway"
        ));
    }
    failure(name, "cannot open the database", &e)
}

/// After a `blocked` open has been reported as failed, the request is still pending: once the other
/// connections close it would create the database without anyone to create its object stores. Abort
/// that upgrade instead (the closure frees itself when called).
fn abort_upgrade_when_unblocked(req: &IdbOpenDbRequest) {
    let pending = req.clone();
    let abort = Closure::once_into_js(move || {
        if let Some(tx) = pending.transaction() {
            let _ = tx.abort();
        }
    });
    req.set_onupgradeneeded(Some(abort.unchecked_ref()));
}

/// The `error` of a settled request (`null` if it has none).
fn request_error(req: &IdbRequest) -> JsValue {
    match req.error() {
        Ok(Some(e)) => e.into(),
        Ok(None) => JsValue::NULL,
        Err(e) => e,
    }
}

/// Why transaction `tx` aborted: its `error`, or, when it was aborted without one, a plain failure.
fn transaction_failed(name: &str, what: &str, tx: &IdbTransaction) -> StoreError {
    match tx.error() {
        Some(e) => failure(name, what, &e),
        None => StoreError::Failed(format!("IndexedDB {name}: {what}: the transaction was aborted")),
    }
}

/// A DOMException (or any thrown value) as a store error: `QuotaExceededError` is [`StoreError::Full`].
fn failure(name: &str, what: &str, e: &JsValue) -> StoreError {
    if error_name(e).as_deref() == Some("QuotaExceededError") {
        let message = error_message(e).unwrap_or_else(|| "the browser's storage quota is used up".into());
        return StoreError::Full(format!("IndexedDB {name}: {message}"));
    }
    StoreError::Failed(format!("IndexedDB {name}: {what}: {}", describe_error(e)))
}

fn error_name(e: &JsValue) -> Option<String> {
    Reflect::get(e, &"name".into()).ok().and_then(|n| n.as_string())
}

fn error_message(e: &JsValue) -> Option<String> {
    Reflect::get(e, &"message".into()).ok().and_then(|m| m.as_string()).filter(|m| !m.is_empty())
}

/// `Name: message` of an exception, or the thrown value itself.
fn describe_error(e: &JsValue) -> String {
    match (error_name(e), error_message(e)) {
        (Some(n), Some(m)) => format!("{n}: {m}"),
        (Some(n), None) => n,
        (None, Some(m)) => m,
        (None, None) => e.as_string().unwrap_or_else(|| format!("unknown error ({})", describe(e))),
    }
}

/// The rows of one object store from its `getAllKeys()` and `getAll()`, sorted in Rust string order
/// (IndexedDB sorts by UTF-16 code units, which differs for characters beyond U+FFFF).
fn rows(name: &str, table: Table, keys: &IdbRequest, values: &IdbRequest) -> Result<Vec<(String, String)>, StoreError> {
    let store = table.name();
    let array = |r: &IdbRequest| -> Result<Array, StoreError> {
        match r.result() {
            Ok(v) => v.dyn_into().map_err(|v| {
                StoreError::Failed(format!("IndexedDB {name}/{store}: read {} instead of an array", describe(&v)))
            }),
            Err(e) => Err(failure(name, store, &e)),
        }
    };
    let (keys, values) = (array(keys)?, array(values)?);
    if keys.length() != values.length() {
        return Err(StoreError::Failed(format!(
            "IndexedDB {name}/{store}: read {} keys but {} values",
            keys.length(),
            values.length()
        )));
    }
    let mut rows = Vec::with_capacity(keys.length() as usize);
    for (k, v) in keys.iter().zip(values.iter()) {
        let Some(key) = string(&k) else {
            return Err(StoreError::Corrupt(format!(
                "IndexedDB {name}/{store}: a key is not a string (it is {})",
                describe(&k)
            )));
        };
        let Some(value) = string(&v) else {
            return Err(StoreError::Corrupt(format!(
                "IndexedDB {name}/{store}: the value of key {key:?} is not a string (it is {})",
                describe(&v)
            )));
        };
        rows.push((key, value));
    }
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(rows)
}

/// A JS string that is valid UTF-16 (a lone surrogate would not survive the trip to Rust unchanged).
fn string(v: &JsValue) -> Option<String> {
    v.dyn_ref::<JsString>().filter(|s| s.is_valid_utf16()).map(String::from)
}

/// What a JS value is, for error messages.
fn describe(v: &JsValue) -> String {
    if v.as_f64().is_some() {
        // JS formats the number (Rust's float formatting would add kilobytes to the package).
        let text = js_sys::JSON::stringify(v).map(String::from).unwrap_or_default();
        return format!("the number {text}");
    }
    if let Some(b) = v.as_bool() {
        return format!("the boolean {b}");
    }
    if v.is_string() {
        return "a string with lone surrogates".into();
    }
    if v.is_null() {
        return "null".into();
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if Array::is_array(v) {
        return "an array".into();
    }
    if v.is_instance_of::<js_sys::Date>() {
        return "a Date".into();
    }
    if v.is_instance_of::<js_sys::ArrayBuffer>() || js_sys::ArrayBuffer::is_view(v) {
        return "binary data".into();
    }
    match v.js_typeof().as_string().as_deref() {
        Some("object") => "an object".into(),
        Some(t) => format!("a value of type {t}"),
        None => "a value of unknown type".into(),
    }
}
