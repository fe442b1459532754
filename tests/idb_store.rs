//! The IndexedDB store in headless Chromium: what is applied is loaded back in key order, survives a
//! reopen, and records the gateway did not write (another type of key or value) fail the load as
//! corrupt instead of vanishing. Natively this file is empty.
#![cfg(all(target_family = "wasm", target_os = "unknown", feature = "web"))]
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use mcp_edge_gateway::store::{queue_key, MemoryStore, Store, StoreError, StoreOp, Table};
use mcp_edge_gateway::web::idb::IdbStore;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbTransactionMode};

fn put(table: Table, key: &str, value: &str) -> StoreOp {
    StoreOp::Put { table, key: key.into(), value: value.into() }
}

fn del(table: Table, key: &str) -> StoreOp {
    StoreOp::Delete { table, key: key.into() }
}

/// A fresh store: whatever an earlier run left under `name` is deleted first.
async fn fresh(name: &str) -> IdbStore {
    IdbStore::delete(name).await.expect("delete");
    IdbStore::open(name).await.expect("open")
}

fn factory() -> IdbFactory {
    js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into()).unwrap().dyn_into().unwrap()
}

/// A raw connection, as another script of the origin would open one (no upgrade handler: a database
/// it creates has no object stores).
async fn raw_open(name: &str, version: Option<u32>) -> IdbDatabase {
    let f = factory();
    let req: IdbOpenDbRequest = match version {
        Some(v) => f.open_with_u32(name, v).unwrap(),
        None => f.open(name).unwrap(),
    };
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    JsFuture::from(done).await.expect("raw open");
    req.result().unwrap().dyn_into().unwrap()
}

/// Writes `value` under `key` into `store` behind the gateway's back.
async fn raw_put(name: &str, store: &str, key: &JsValue, value: &JsValue) {
    let db = raw_open(name, None).await;
    let tx = db.transaction_with_str_and_mode(store, IdbTransactionMode::Readwrite).unwrap();
    tx.object_store(store).unwrap().put_with_key(value, key).unwrap();
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        tx.set_oncomplete(Some(&resolve));
        tx.set_onabort(Some(&reject));
    });
    JsFuture::from(done).await.expect("raw put");
    db.close();
}

#[test]
async fn batches_round_trip_in_key_order_like_the_memory_store() {
    let mut s = fresh("idb-test-round-trip").await;
    let mut reference = MemoryStore::new();
    let batches = vec![
        vec![
            put(Table::Queue, &queue_key(10), r#"{"n":10}"#),
            put(Table::Queue, &queue_key(9), r#"{"n":9}"#),
            put(Table::Cache, "b", "B"),
            put(Table::Cache, "a", "A"),
            put(Table::Meta, "upstream:x", "{}"),
        ],
        vec![],
        // Order within a batch: the put then the delete of the same key leaves nothing.
        vec![put(Table::Cache, "c", "C"), del(Table::Cache, "c"), del(Table::Cache, "absent")],
        vec![
            del(Table::Queue, &queue_key(9)),
            put(Table::Cache, "a", "A2"),
            put(Table::Queue, &queue_key(11), "ü ✓ 𝄞"),
        ],
    ];
    for b in batches {
        reference.apply_now(b.clone()).unwrap();
        s.apply(b).await.expect("apply");
    }
    let got = s.load().await.expect("load");
    let want = reference.load_now();
    for t in Table::ALL {
        assert_eq!(got.table(t), want.table(t), "{t:?}");
    }
    assert_eq!(got.table(Table::Cache), &[("a".into(), "A2".into()), ("b".into(), "B".into())]);
    let queue: Vec<&str> = got.table(Table::Queue).iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(queue, [queue_key(10), queue_key(11)]);
    assert_eq!(got.table(Table::Queue)[1].1, "ü ✓ 𝄞");
}

#[test]
async fn a_reopened_store_sees_what_was_applied() {
    let name = "idb-test-reopen";
    let mut s = fresh(name).await;
    s.apply(vec![put(Table::Queue, &queue_key(1), "call"), put(Table::Meta, "m", "tools")]).await.unwrap();
    drop(s);
    let mut s = IdbStore::open(name).await.expect("reopen");
    let got = s.load().await.unwrap();
    assert_eq!(got.table(Table::Queue), &[(queue_key(1), "call".into())]);
    assert_eq!(got.table(Table::Meta), &[("m".into(), "tools".into())]);
    assert!(got.table(Table::Cache).is_empty());
}

#[test]
async fn a_record_of_another_type_fails_the_load_as_corrupt() {
    let name = "idb-test-corrupt";
    let mut s = fresh(name).await;
    s.apply(vec![put(Table::Queue, &queue_key(1), "ok")]).await.unwrap();
    raw_put(name, "queue", &JsValue::from_str(&queue_key(2)), &JsValue::from_f64(42.0)).await;
    match s.load().await {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains(name) && m.contains("queue") && m.contains("not a string"), "{m}");
            assert!(m.contains(&queue_key(2)) && m.contains("42"), "{m}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A non-string key is reported as well, and the data is left where it is.
    s.apply(vec![del(Table::Queue, &queue_key(2))]).await.unwrap();
    raw_put(name, "cache", &JsValue::from_f64(7.0), &JsValue::from_str("v")).await;
    match s.load().await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("cache") && m.contains("key is not a string"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop(s);
    let db = raw_open(name, None).await;
    let tx = db.transaction_with_str("queue").unwrap();
    let count = tx.object_store("queue").unwrap().count().unwrap();
    let done = js_sys::Promise::new(&mut |resolve, _| tx.set_oncomplete(Some(&resolve)));
    JsFuture::from(done).await.unwrap();
    assert_eq!(count.result().unwrap().as_f64(), Some(1.0));
    db.close();
}

#[test]
async fn a_database_of_a_newer_version_or_without_our_stores_is_corrupt() {
    let newer = "idb-test-newer";
    IdbStore::delete(newer).await.unwrap();
    raw_open(newer, Some(2)).await.close();
    match IdbStore::open(newer).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(newer) && m.contains("newer"), "{m}"),
        Err(e) => panic!("expected Corrupt, got {e:?}"),
        Ok(_) => panic!("expected Corrupt, got a store"),
    }
    let foreign = "idb-test-foreign";
    IdbStore::delete(foreign).await.unwrap();
    raw_open(foreign, Some(1)).await.close();
    match IdbStore::open(foreign).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(foreign) && m.contains("queue"), "{m}"),
        Err(e) => panic!("expected Corrupt, got {e:?}"),
        Ok(_) => panic!("expected Corrupt, got a store"),
    }
    IdbStore::delete(newer).await.unwrap();
    IdbStore::delete(foreign).await.unwrap();
}

#[test]
async fn deleting_a_database_empties_it_even_while_a_store_has_it_open() {
    let name = "idb-test-delete";
    let mut s = fresh(name).await;
    s.apply(vec![put(Table::Cache, "k", "v")]).await.unwrap();
    // The open store closes its connection on `versionchange` rather than blocking the delete...
    IdbStore::delete(name).await.expect("delete");
    // ...and fails from then on, as a failure, not as "full".
    match s.apply(vec![put(Table::Cache, "k2", "v2")]).await {
        Err(StoreError::Failed(m)) => assert!(m.contains(name) && m.contains("deleted or upgraded"), "{m}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    drop(s);
    let mut s = IdbStore::open(name).await.expect("open after delete");
    assert_eq!(s.load().await.unwrap(), Default::default());
    drop(s);
    IdbStore::delete(name).await.unwrap();
    IdbStore::delete("idb-test-never-created").await.expect("deleting an absent database");
}

/// Runs `body` with `IDBDatabase.prototype.transaction` or `IDBObjectStore.prototype.put` wrapped by
/// `install` (JavaScript), restoring the original afterwards.
async fn with_patch<F: std::future::Future<Output = ()>>(install: &str, restore: &str, body: F) {
    js_sys::eval(install).expect("install the patch");
    body.await;
    js_sys::eval(restore).expect("restore");
}

#[test]
async fn writes_use_strict_durability_and_reads_are_readonly() {
    let mut s = fresh("idb-test-durability").await;
    let install = "globalThis.__txs = []; globalThis.__orig = IDBDatabase.prototype.transaction; \
        IDBDatabase.prototype.transaction = function (...a) { const tx = globalThis.__orig.apply(this, a); \
        globalThis.__txs.push(tx.mode + ' ' + tx.durability); return tx; };";
    let restore = "IDBDatabase.prototype.transaction = globalThis.__orig;";
    with_patch(install, restore, async {
        s.apply(vec![put(Table::Queue, &queue_key(1), "call"), put(Table::Cache, "k", "v")]).await.unwrap();
        s.load().await.unwrap();
    })
    .await;
    let txs = js_sys::eval("globalThis.__txs").unwrap();
    let txs: Vec<String> = js_sys::Array::from(&txs).iter().filter_map(|t| t.as_string()).collect();
    assert_eq!(txs, ["readwrite strict", "readonly default"]);
}

#[test]
async fn a_quota_error_fails_the_whole_batch_as_full() {
    let mut s = fresh("idb-test-quota").await;
    s.apply(vec![put(Table::Cache, "kept", "1")]).await.unwrap();
    // Chromium's quota cannot be lowered from a page: the put of "big" throws what a full origin throws.
    let install = "globalThis.__put = IDBObjectStore.prototype.put; \
        IDBObjectStore.prototype.put = function (v, k) { if (k === 'big') \
        throw new DOMException('The quota has been exceeded.', 'QuotaExceededError'); \
        return globalThis.__put.call(this, v, k); };";
    let restore = "IDBObjectStore.prototype.put = globalThis.__put;";
    let mut outcome = None;
    with_patch(install, restore, async {
        let batch = vec![put(Table::Queue, &queue_key(1), "call"), put(Table::Cache, "big", "x")];
        outcome = Some(s.apply(batch).await);
    })
    .await;
    match outcome {
        Some(Err(StoreError::Full(m))) => assert!(m.contains("idb-test-quota") && m.contains("quota"), "{m}"),
        other => panic!("expected Full, got {other:?}"),
    }
    let got = s.load().await.unwrap();
    assert!(got.table(Table::Queue).is_empty(), "the batch's first put was rolled back");
    assert_eq!(got.table(Table::Cache), &[("kept".into(), "1".into())]);
}
