//! The result cache: list pages and `resources/read` results per upstream, keyed by what was asked
//! and by who may see it, capped in bytes with least-recently-used eviction. Pure data: the engine
//! decides what goes in, when it is fresh, and writes it through to the store.

use crate::prelude::*;

use serde_json::{json, Value};

/// One cached result, as stored (JSON) and held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// Upstream name.
    pub u: String,
    /// Method (`tools/list`, `resources/read`, ...).
    pub m: String,
    /// What was asked: the upstream's cursor for a list page ("" for the first page), the URI for a read.
    pub a: String,
    /// "" for a public entry; the auth-context digest of the client it belongs to for a private one.
    pub s: String,
    /// When it was stored, wall-clock milliseconds since the Unix epoch.
    pub t: u64,
    /// How long it stays fresh after `t`.
    pub ttl: u64,
    /// The upstream's result, as it answered.
    pub v: Value,
}

impl CacheEntry {
    pub fn key(&self) -> String {
        key(&self.u, &self.m, &self.a, &self.s)
    }

    /// The stored form. (Written by hand rather than derived: serde's derives cost the browser
    /// package kilobytes.)
    pub fn to_json(&self) -> String {
        json!({"u": self.u, "m": self.m, "a": self.a, "s": self.s, "t": self.t, "ttl": self.ttl, "v": self.v})
            .to_string()
    }

    pub fn from_json(text: &str) -> Result<CacheEntry, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string).ok_or(format!("`{k}` is not a string"));
        let n = |k: &str| v.get(k).and_then(Value::as_u64).ok_or(format!("`{k}` is not a number"));
        Ok(CacheEntry {
            u: s("u")?,
            m: s("m")?,
            a: s("a")?,
            s: s("s")?,
            t: n("t")?,
            ttl: n("ttl")?,
            v: v.get("v").cloned().ok_or("`v` is missing")?,
        })
    }
}

/// The store key of an entry. Parts are joined with a separator that cannot occur in JSON-RPC method
/// names or upstream names; URIs and cursors go last so they may contain anything.
pub fn key(upstream: &str, method: &str, arg: &str, scope: &str) -> String {
    format!("{upstream}\u{1f}{method}\u{1f}{scope}\u{1f}{arg}")
}

/// Counters for status pages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub evictions: u64,
}

struct Slot {
    entry: CacheEntry,
    size: usize,
    used: u64,
}

/// Entries by key, with a byte budget and least-recently-used eviction. Each entry carries its last
/// use tick and eviction scans for the smallest: eviction is rare (only when the budget is full) and
/// caches hold hundreds of entries, not millions, so this beats an ordered index on code size (which
/// counts in the browser package) at no cost that matters.
pub struct Cache {
    slots: HashMap<String, Slot>,
    tick: u64,
    bytes: usize,
    max_bytes: usize,
    pub stats: CacheStats,
}

impl Cache {
    pub fn new(max_bytes: usize) -> Self {
        Cache { slots: HashMap::new(), tick: 0, bytes: 0, max_bytes, stats: Default::default() }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entry under `key`, marking it used.
    pub fn get(&mut self, key: &str) -> Option<&CacheEntry> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.slots.get_mut(key)?;
        slot.used = tick;
        Some(&slot.entry)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    /// Insert or replace; `size` is what it costs against the budget (its stored text). Returns the
    /// keys evicted to make room (never the new entry unless it alone exceeds the budget, in which
    /// case it is not kept and its own key is returned).
    pub fn put(&mut self, entry: CacheEntry, size: usize) -> Vec<String> {
        let key = entry.key();
        self.remove(&key);
        if size > self.max_bytes {
            return vec![key];
        }
        let mut evicted = Vec::new();
        while self.bytes + size > self.max_bytes {
            let Some(k) = self.slots.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| k.clone()) else { break };
            if let Some(s) = self.slots.remove(&k) {
                self.bytes -= s.size;
                self.stats.evictions += 1;
            }
            evicted.push(k);
        }
        self.tick += 1;
        self.bytes += size;
        self.slots.insert(key, Slot { entry, size, used: self.tick });
        evicted
    }

    pub fn remove(&mut self, key: &str) -> bool {
        match self.slots.remove(key) {
            Some(s) => {
                self.bytes -= s.size;
                true
            }
            None => false,
        }
    }

    /// Remove every entry matching `pred`; returns their keys.
    pub fn remove_where(&mut self, pred: impl Fn(&CacheEntry) -> bool) -> Vec<String> {
        let keys: Vec<String> = self.slots.iter().filter(|(_, s)| pred(&s.entry)).map(|(k, _)| k.clone()).collect();
        for k in &keys {
            self.remove(k);
        }
        keys
    }

    /// Any entry matching `pred` (without marking it used).
    pub fn find(&self, pred: impl Fn(&CacheEntry) -> bool) -> Option<&CacheEntry> {
        self.slots.values().map(|s| &s.entry).find(|e| pred(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(a: &str) -> CacheEntry {
        CacheEntry {
            u: "up".into(),
            m: "resources/read".into(),
            a: a.into(),
            s: String::new(),
            t: 0,
            ttl: 0,
            v: json!({}),
        }
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut c = Cache::new(30);
        assert!(c.put(e("a"), 10).is_empty());
        assert!(c.put(e("b"), 10).is_empty());
        assert!(c.put(e("c"), 10).is_empty());
        assert!(c.get(&e("a").key()).is_some());
        assert_eq!(c.put(e("d"), 10), vec![e("b").key()]);
        assert!(c.contains(&e("a").key()) && c.contains(&e("c").key()) && c.contains(&e("d").key()));
        assert_eq!((c.len(), c.bytes(), c.stats.evictions), (3, 30, 1));
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_not_kept() {
        let mut c = Cache::new(5);
        assert_eq!(c.put(e("a"), 6), vec![e("a").key()]);
        assert!(c.is_empty());
    }

    #[test]
    fn replacing_an_entry_keeps_the_byte_count_right() {
        let mut c = Cache::new(100);
        c.put(e("a"), 10);
        c.put(e("a"), 20);
        assert_eq!((c.len(), c.bytes()), (1, 20));
        assert_eq!(c.remove_where(|x| x.a == "a"), vec![e("a").key()]);
        assert_eq!(c.bytes(), 0);
    }
}
