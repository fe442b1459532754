//! The engine's offline side: the result cache (fresh hits, stale answers while an upstream is
//! unreachable, invalidation), the durable offline queue (enqueue, replay, tasks) and restoring both
//! from a store. Policy lives here; the store only keeps what it is told, in order.

use crate::prelude::*;

use super::*;
use crate::cache::{self, CacheEntry};
use crate::queue::{Entry, State};
use crate::store::{queue_key, Snapshot, StoreError, StoreOp, Table};

/// What a client asked for: remembered on a forwarded call so its answer can be cached.
pub(super) struct CacheSlot {
    pub method: String,
    pub arg: String,
}

/// How a queued call's client wants to hear about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskMode {
    /// A plain result saying it was queued.
    None,
    /// 2025-11-25: `params.task` was given; a `CreateTaskResult` `{task}`.
    Legacy,
    /// 2026-07-28 tasks extension declared: a flattened task with `resultType: "task"`.
    Modern,
}

/// What the engine waits on a store batch for.
pub(super) enum StoreWait {
    /// A call written to the queue: answer its client once durable.
    Enqueue { session: SessionId, client_id: Id, entry: Box<Entry>, mode: TaskMode, modern: bool, schema: bool },
    /// An entry written as running: send it once durable.
    Started { seq: u64 },
    /// An entry written as cancelled: tell whoever asked.
    Cancelled { session: SessionId, client_id: Id, seq: u64, modern: bool },
    /// Nobody waits (cache, catalogue, finished entries): failures are logged.
    Write,
}

/// Replay state of one upstream's queue.
#[derive(Default)]
pub(super) struct Replay {
    /// An entry of this upstream is being started or is in flight.
    pub busy: bool,
    /// No new attempt before this.
    pub next_try: Millis,
    /// Consecutive interrupted attempts (for the backoff).
    pub failures: u32,
}

/// Waiting `tasks/result` requests.
pub(super) struct Waiter {
    pub session: SessionId,
    pub client_id: Id,
    pub modern: bool,
}

const BACKOFF_BASE_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 300_000;

/// The store key of what we last knew of an upstream's tools.
fn known_tools_key(upstream: &str) -> String {
    format!("tools\u{1f}{upstream}")
}

impl Gateway {
    // ---------------------------------------------------------------------------------------------
    // Host API
    // ---------------------------------------------------------------------------------------------

    /// Tell the engine the wall-clock time (milliseconds since the Unix epoch) at host time `now`.
    /// Cache ages and task timestamps survive restarts in wall-clock time; everything else uses
    /// `now`. [`Gateway::restore`] does this too.
    pub fn set_wall_clock(&mut self, now: Millis, wall_ms: u64) {
        self.wall_offset = i128::from(wall_ms) - i128::from(now);
    }

    /// The wall clock at host time `now` (0 before the epoch, `u64::MAX` past its end).
    pub(super) fn wall(&self, now: Millis) -> u64 {
        (i128::from(now) + self.wall_offset).clamp(0, i128::from(u64::MAX)) as u64
    }

    /// The host time at which the wall clock reads `wall`: the inverse of [`Gateway::wall`], so a
    /// deadline computed from a wall-clock expiry is due exactly when the expiry has passed. `None`
    /// when that is past the end of host time (it never comes).
    fn host_time(&self, wall: u64) -> Option<Millis> {
        u64::try_from((i128::from(wall) - self.wall_offset).max(0)).ok()
    }

    /// Take back what a store kept: cached results, queued calls, known tools. Call once, before any
    /// upstream connects. A queue entry that cannot be read is an error (the host must not start and
    /// lose it); unreadable cache or catalogue records are dropped with a warning. An entry that was
    /// being sent when the gateway stopped is in doubt: sent again only if its tool is idempotent,
    /// otherwise marked failed. Returns a one-line summary.
    pub fn restore(&mut self, now: Millis, wall_ms: u64, snap: &Snapshot) -> Result<String, String> {
        self.set_wall_clock(now, wall_ms);
        let mut drop_keys = Vec::new();
        for (k, v) in snap.table(Table::Cache) {
            match CacheEntry::from_json(v) {
                Ok(e) if self.cfg.upstreams.iter().any(|u| u.name == e.u) && e.key() == *k => {
                    let size = k.len() + v.len();
                    drop_keys.extend(self.cache.put(e, size));
                }
                Ok(_) => drop_keys.push(k.clone()),
                Err(e) => {
                    self.log(LogLevel::Warn, format!("dropping unreadable cache record {k:?}: {e}"));
                    drop_keys.push(k.clone());
                }
            }
        }
        let mut in_doubt = Vec::new();
        for (k, v) in snap.table(Table::Queue) {
            let e = Entry::from_json(v).map_err(|e| format!("queue record {k}: {e}"))?;
            if queue_key(e.seq) != *k {
                return Err(format!("queue record {k}: its sequence number says {}", e.seq));
            }
            if e.state == State::Running {
                in_doubt.push(e.seq);
            }
            if !self.cfg.upstreams.iter().any(|u| u.name == e.upstream) && !e.state.terminal() {
                self.log(
                    LogLevel::Warn,
                    format!("queued call {} is for upstream {:?}, which is no longer configured", e.id, e.upstream),
                );
            }
            self.next_seq = self.next_seq.max(e.seq.saturating_add(1));
            self.queue.insert(e.seq, e);
        }
        for (k, v) in snap.table(Table::Meta) {
            let Some(name) = k.strip_prefix("tools\u{1f}") else { continue };
            let Some(u) = self.cfg.upstreams.iter().position(|x| x.name == name) else { continue };
            match serde_json::from_str::<Value>(v) {
                Ok(Value::Array(tools)) => self.known[u] = tools,
                _ => self.log(LogLevel::Warn, format!("ignoring unreadable record of {name:?}'s tools")),
            }
        }
        let mut ops: Vec<StoreOp> =
            drop_keys.into_iter().map(|key| StoreOp::Delete { table: Table::Cache, key }).collect();
        for seq in in_doubt {
            let wall = self.wall(now);
            let Some(e) = self.queue.get_mut(&seq) else { continue };
            e.updated = wall;
            if e.idempotent {
                e.state = State::Queued;
                e.message = Some("sent again after a restart (idempotent tool)".into());
            } else {
                e.state = State::Failed;
                e.message = Some(in_doubt_message(&e.id));
            }
            ops.push(entry_put(e));
        }
        if !ops.is_empty() {
            self.persist(ops, StoreWait::Write);
        }
        let live = self.queue.values().filter(|e| !e.state.terminal()).count();
        Ok(format!(
            "restored {live} queued call(s), {} finished, {} cached result(s)",
            self.queue.len() - live,
            self.cache.len()
        ))
    }

    /// A store batch the engine emitted is durable (`Ok`) or was refused.
    pub fn store_done(&mut self, now: Millis, ticket: u64, result: Result<(), StoreError>) {
        self.tick(now);
        let Some(i) = self.tickets.iter().position(|(t, _)| *t == ticket) else { return };
        let Some((_, wait)) = self.tickets.remove(i) else { return };
        match (wait, result) {
            (StoreWait::Enqueue { session, client_id, entry, mode, modern, schema }, Ok(())) => {
                let u = self.cfg.upstreams.iter().position(|x| x.name == entry.upstream);
                let reply = self.queued_reply(&entry, mode, modern, schema);
                self.queue.insert(entry.seq, *entry);
                if self.sessions.contains_key(&session) {
                    self.reply(session, client_id, reply);
                }
                if let Some(u) = u {
                    self.pump(now, UpstreamId(u));
                }
            }
            (StoreWait::Enqueue { session, client_id, entry, .. }, Err(e)) => {
                self.log(LogLevel::Warn, format!("could not queue a call to {:?}: {e}", entry.upstream));
                // The client hears the kind of failure; the details (file paths) go to the log.
                let why = match e {
                    StoreError::Full(_) => "storage is full",
                    StoreError::Corrupt(_) => "the store is damaged",
                    _ => "the store failed",
                };
                let e = err(code::UPSTREAM_UNAVAILABLE, format!("the call could not be queued: {why}"))
                    .with_data(json!({"upstream": entry.upstream}));
                self.reply_err(session, client_id, e);
            }
            (StoreWait::Started { seq }, Ok(())) => self.send_replay(now, seq),
            (StoreWait::Started { seq }, Err(e)) => {
                // Still queued on disk: put it back and try later.
                self.log(LogLevel::Warn, format!("could not record a queued call as started: {e}"));
                if let Some(entry) = self.queue.get_mut(&seq) {
                    entry.state = State::Queued;
                    entry.attempts = entry.attempts.saturating_sub(1);
                    let name = entry.upstream.clone();
                    if let Some(u) = self.cfg.upstreams.iter().position(|x| x.name == name) {
                        self.replay_backoff(now, UpstreamId(u));
                    }
                }
            }
            (StoreWait::Cancelled { session, client_id, seq, modern }, Ok(())) => {
                if let Some(e) = self.queue.get(&seq) {
                    let r = if modern { json!({"resultType": "complete"}) } else { e.legacy_task() };
                    self.reply(session, client_id, r);
                }
                self.wake_waiters(seq);
            }
            (StoreWait::Cancelled { session, client_id, seq, .. }, Err(e)) => {
                if let Some(entry) = self.queue.get_mut(&seq) {
                    entry.state = State::Queued;
                    entry.message = None;
                }
                self.reply_err(session, client_id, err(code::INTERNAL_ERROR, format!("could not cancel: {e}")));
            }
            (StoreWait::Write, Ok(())) => {}
            (StoreWait::Write, Err(e)) => self.log(LogLevel::Warn, format!("store write failed: {e}")),
        }
    }

    /// Set the auth context of a session: private cache entries and queued calls are only visible
    /// to sessions of the same context. Sessions without one share the anonymous context (""). The
    /// host passes an identifier that is safe to store, not a credential: the native host gives a
    /// SHA-256 digest of the `Authorization` header.
    pub fn set_session_auth(&mut self, s: SessionId, context: &str) {
        if let Some(x) = self.sessions.get_mut(&s) {
            x.auth = context.to_string();
        }
    }

    /// Let a session see and cancel every queued call, whatever its auth context (admin endpoints,
    /// the page that owns an in-browser gateway).
    pub fn set_session_admin(&mut self, s: SessionId) {
        if let Some(x) = self.sessions.get_mut(&s) {
            x.admin = true;
        }
    }

    /// Every queue entry, oldest first, in the admin view.
    pub fn queue_entries(&self) -> Value {
        json!({ "entries": self.queue.values().map(Entry::admin_view).collect::<Vec<_>>() })
    }

    /// One queue entry in the admin view.
    pub fn queue_entry(&self, task_id: &str) -> Option<Value> {
        self.queue.values().find(|e| e.id == task_id).map(Entry::admin_view)
    }

    /// The network came back (a browser `online` event, say): retry replays now instead of waiting
    /// out their backoff.
    pub fn nudge(&mut self, now: Millis) {
        for u in 0..self.ups.len() {
            self.replay[u].next_try = now;
            self.pump(now, UpstreamId(u));
        }
    }

    pub(super) fn offline_status(&self) -> Value {
        let count = |s: State| self.queue.values().filter(|e| e.state == s).count();
        let st = self.cache.stats;
        json!({
            "cache": { "hits": st.hits, "misses": st.misses, "stale": st.stale, "evictions": st.evictions,
                       "entries": self.cache.len(), "bytes": self.cache.bytes() },
            "queue": { "queued": count(State::Queued), "running": count(State::Running),
                       "completed": count(State::Completed), "failed": count(State::Failed),
                       "cancelled": count(State::Cancelled) },
        })
    }

    pub(super) fn persist(&mut self, ops: Vec<StoreOp>, wait: StoreWait) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.push_back((ticket, wait));
        self.out.push_back(Output::Store { ticket, ops });
    }

    // ---------------------------------------------------------------------------------------------
    // Cache
    // ---------------------------------------------------------------------------------------------

    fn private_scope(&self, s: SessionId) -> String {
        let auth = self.sessions.get(&s).map(|x| x.auth.as_str()).unwrap_or_default();
        format!("p:{auth}")
    }

    /// Whether a cached answer for (u, method, arg) exists that session `s` may see.
    pub(super) fn cached_for(&self, u: usize, method: &str, arg: &str, s: SessionId) -> bool {
        let name = &self.cfg.upstreams[u].name;
        self.cache.contains(&cache::key(name, method, arg, &self.private_scope(s)))
            || self.cache.contains(&cache::key(name, method, arg, ""))
    }

    fn cache_lookup(&mut self, u: usize, method: &str, arg: &str, s: SessionId) -> Option<CacheEntry> {
        let name = self.cfg.upstreams[u].name.clone();
        let private = cache::key(&name, method, arg, &self.private_scope(s));
        if let Some(e) = self.cache.get(&private) {
            return Some(e.clone());
        }
        self.cache.get(&cache::key(&name, method, arg, "")).cloned()
    }

    /// Answer from the cache if the entry is fresh, or if the upstream cannot be asked now (then the
    /// answer says so in `_meta`, and whether it is stale). Returns whether it answered.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn try_cache(
        &mut self,
        now: Millis,
        s: SessionId,
        id: &Id,
        u: UpstreamId,
        method: &str,
        arg: &str,
        list: Option<ListKind>,
        modern: bool,
    ) -> bool {
        let ready = self.ups[u.0].link == Link::Ready;
        let Some(e) = self.cache_lookup(u.0, method, arg, s) else {
            self.cache.stats.misses += 1;
            return false;
        };
        let wall = self.wall(now);
        let fresh = e.t <= wall && wall < e.t.saturating_add(e.ttl);
        if ready && !fresh {
            self.cache.stats.misses += 1;
            return false;
        }
        if fresh {
            self.cache.stats.hits += 1;
        } else {
            self.cache.stats.stale += 1;
        }
        self.serve_cached(now, s, id.clone(), u, e, list, modern, !ready);
        true
    }

    /// The upstream could not answer a cacheable call: answer from the cache, marked as served offline
    /// (and stale, if it is).
    pub(super) fn stale_fallback(&mut self, now: Millis, u: UpstreamId, call: &ClientCall) -> bool {
        let (Some(slot), Some(s)) = (&call.cache, call.session) else { return false };
        if !self.sessions.contains_key(&s) {
            return false;
        }
        let Some(e) = self.cache_lookup(u.0, &slot.method, &slot.arg, s) else { return false };
        self.cache.stats.stale += 1;
        self.serve_cached(now, s, call.client_id.clone(), u, e, call.list, call.modern_client, true);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn serve_cached(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        u: UpstreamId,
        e: CacheEntry,
        list: Option<ListKind>,
        modern: bool,
        offline: bool,
    ) {
        let wall = self.wall(now);
        let stale = !(e.t <= wall && wall < e.t.saturating_add(e.ttl));
        let mut r = e.v;
        if let Some(kind) = list {
            r = self.finish_page(u, kind, r);
        }
        if !r.is_object() {
            r = json!({});
        }
        if modern {
            if r.get("resultType").is_none() {
                r["resultType"] = json!("complete");
            }
            r["ttlMs"] = json!(if stale { 0 } else { e.t.saturating_add(e.ttl).saturating_sub(wall) });
            if r.get("cacheScope").is_none() {
                r["cacheScope"] = json!(if e.s.is_empty() { "public" } else { "private" });
            }
        }
        if stale || offline {
            if !r.get("_meta").is_some_and(Value::is_object) {
                r["_meta"] = json!({});
            }
            r["_meta"][meta::CACHE] =
                json!({"stale": stale, "offline": offline, "ageMs": wall.saturating_sub(e.t), "upstream": e.u});
        }
        match list {
            Some(kind) => self.list_page_done(now, s, id, u, kind, r, modern),
            None => self.reply(s, id, r),
        }
    }

    /// Keep a cacheable answer: TTL from the upstream's `ttlMs`, else from config, else 0 (then it is
    /// only ever served while the upstream is unreachable).
    pub(super) fn cache_store(&mut self, now: Millis, u: UpstreamId, call: &ClientCall, r: &Value) {
        let (Some(slot), Some(s)) = (&call.cache, call.session) else { return };
        if protocol::is_input_required(r) || !r.is_object() {
            return;
        }
        let spec = &self.cfg.upstreams[u.0];
        let ttl = r.get("ttlMs").and_then(Value::as_u64).or_else(|| spec.ttl_for(&slot.method)).unwrap_or(0);
        let scope = if r.get("cacheScope").and_then(Value::as_str) == Some("private") {
            self.private_scope(s)
        } else {
            String::new()
        };
        let mut v = r.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("ttlMs");
        }
        let e = CacheEntry {
            u: spec.name.clone(),
            m: slot.method.clone(),
            a: slot.arg.clone(),
            s: scope,
            t: self.wall(now),
            ttl,
            v,
        };
        let key = e.key();
        let text = e.to_json();
        let evicted = self.cache.put(e, key.len() + text.len());
        let kept = !evicted.contains(&key);
        let mut ops: Vec<StoreOp> =
            evicted.into_iter().map(|key| StoreOp::Delete { table: Table::Cache, key }).collect();
        if kept {
            ops.push(StoreOp::Put { table: Table::Cache, key, value: text });
        }
        self.persist(ops, StoreWait::Write);
    }

    /// Drop cached answers of `u` for these methods (and, for `resources/read`, this URI only).
    pub(super) fn invalidate(&mut self, u: UpstreamId, methods: &[&str], uri: Option<&str>) {
        let name = self.cfg.upstreams[u.0].name.clone();
        let keys =
            self.cache.remove_where(|e| e.u == name && methods.contains(&e.m.as_str()) && uri.is_none_or(|x| e.a == x));
        if !keys.is_empty() {
            let ops = keys.into_iter().map(|key| StoreOp::Delete { table: Table::Cache, key }).collect();
            self.persist(ops, StoreWait::Write);
        }
    }

    /// An upstream that once served `uri` (per the cache), for reads while the catalogue is empty.
    pub(super) fn cached_reader(&self, uri: &str, s: SessionId) -> Option<UpstreamId> {
        let scope = self.private_scope(s);
        let e = self.cache.find(|e| e.m == method::RESOURCES_READ && e.a == uri && (e.s.is_empty() || e.s == scope))?;
        self.cfg.upstreams.iter().position(|x| x.name == e.u).map(UpstreamId)
    }

    // ---------------------------------------------------------------------------------------------
    // Known tools (routing and queue policy while an upstream is unreachable)
    // ---------------------------------------------------------------------------------------------

    /// Remember an upstream's tools (and keep them in the store) when a catalogue refresh completes.
    pub(super) fn remember_tools(&mut self, u: UpstreamId, items: &[Value]) {
        if self.known[u.0] == items {
            return;
        }
        self.known[u.0] = items.to_vec();
        let value = Value::Array(items.to_vec()).to_string();
        let key = known_tools_key(self.uname(u));
        self.persist(vec![StoreOp::Put { table: Table::Meta, key, value }], StoreWait::Write);
    }

    /// Resolve an exposed tool name with what we last knew of each upstream, or with the names its
    /// queue policy lists: for calls to upstreams that are down.
    pub(super) fn resolve_offline_tool(&self, exposed: &str) -> Option<(UpstreamId, String)> {
        for (u, spec) in self.cfg.upstreams.iter().enumerate() {
            let known = self.known[u].iter().filter_map(|t| t.get("name").and_then(Value::as_str));
            let listed = spec.offline_queue.iter().map(String::as_str).filter(|r| *r != "*" && !r.starts_with('@'));
            for tool in known.chain(listed) {
                if self.catalog.exposed(&self.cfg, u, ListKind::Tools, tool) == exposed {
                    return Some((UpstreamId(u), tool.to_string()));
                }
            }
        }
        // An unprefixed upstream that queues every tool ("*") and cannot be asked: if it is the only
        // such one, a name nobody else claims can only be its.
        let mut wild = (0..self.ups.len()).filter(|&u| {
            let spec = &self.cfg.upstreams[u];
            spec.prefix.is_none() && self.ups[u].link != Link::Ready && spec.offline_queue.iter().any(|r| r == "*")
        });
        match (wild.next(), wild.next()) {
            (Some(u), None) => Some((UpstreamId(u), exposed.to_string())),
            _ => None,
        }
    }

    pub(super) fn tool_def(&self, u: UpstreamId, tool: &str) -> Option<&Value> {
        let by_name = |t: &&Value| t.get("name").and_then(Value::as_str) == Some(tool);
        self.catalog.items(u.0, ListKind::Tools).iter().find(by_name).or_else(|| self.known[u.0].iter().find(by_name))
    }

    // ---------------------------------------------------------------------------------------------
    // Offline queue
    // ---------------------------------------------------------------------------------------------

    fn live_entries(&self, u: UpstreamId) -> usize {
        let name = self.uname(u);
        self.queue.values().filter(|e| e.upstream == name && !e.state.terminal()).count()
    }

    /// A `tools/call` routed to `u`: queue it instead of sending it, if policy says so. Returns
    /// whether it took the call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn maybe_enqueue(
        &mut self,
        now: Millis,
        s: SessionId,
        id: &Id,
        u: UpstreamId,
        exposed: &str,
        params: &mut Value,
        modern: bool,
    ) -> bool {
        if self.cfg.upstreams[u.0].offline_queue.is_empty() {
            return false; // the common case: no queue policy, nothing to look up on the call path
        }
        let tool = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let def = self.tool_def(u, &tool);
        let annotations = def.and_then(|d| d.get("annotations"));
        if !self.cfg.upstreams[u.0].queues(&tool, annotations) {
            return false;
        }
        let idempotent = annotations.and_then(|a| a.get("idempotentHint")).and_then(Value::as_bool) == Some(true);
        let schema = def.is_some_and(|d| d.get("outputSchema").is_some());
        let upstream_does_tasks = def
            .and_then(|d| d.pointer("/execution/taskSupport"))
            .and_then(Value::as_str)
            .is_some_and(|t| t != "forbidden");
        let legacy_task = params.get("task").and_then(Value::as_object).cloned();
        let caps = params.pointer(&format!("/_meta/{}", meta::CLIENT_CAPABILITIES.replace('/', "~1")));
        let modern_tasks =
            modern && caps.and_then(|c| c.pointer("/extensions")).and_then(|x| x.get(meta::TASKS_EXTENSION)).is_some();
        let mode = if legacy_task.is_some() && !modern {
            TaskMode::Legacy
        } else if modern_tasks {
            TaskMode::Modern
        } else {
            TaskMode::None
        };
        let unreachable = self.ups[u.0].link != Link::Ready;
        let backlog = self.live_entries(u) > 0;
        // A legacy client asking for a task gets one from us (the upstream's tool does not do tasks).
        let wants_task = mode == TaskMode::Legacy && !upstream_does_tasks;
        if !(unreachable || backlog || wants_task) {
            return false;
        }
        // (The second test holds only after a damaged store put a sequence number at `u64::MAX`:
        // the next one would overwrite that entry.)
        if self.queue.values().filter(|e| !e.state.terminal()).count() >= self.cfg.queue_max_entries
            || self.queue.get(&self.next_seq).is_some()
        {
            let e = err(code::UPSTREAM_UNAVAILABLE, "the call could not be queued: the offline queue is full")
                .with_data(json!({"upstream": self.uname(u)}));
            self.reply_err(s, id.clone(), e);
            return true;
        }
        let mut call_meta = params.get("_meta").and_then(Value::as_object).cloned().unwrap_or_default();
        call_meta.retain(|k, _| k != "progressToken" && !k.starts_with("io.modelcontextprotocol/"));
        let ttl_ms = legacy_task
            .as_ref()
            .and_then(|t| t.get("ttl"))
            .and_then(Value::as_u64)
            .unwrap_or(self.cfg.queue_result_ttl_ms)
            .max(60_000);
        let h = self.tokens.next_hex();
        let task_id = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
        let wall = self.wall(now);
        let auth = self.sessions.get(&s).map(|x| x.auth.clone()).unwrap_or_default();
        let entry = Entry {
            seq: self.next_seq,
            id: task_id,
            upstream: self.uname(u).to_string(),
            tool,
            exposed: exposed.to_string(),
            arguments: params.get("arguments").cloned().unwrap_or(json!({})),
            meta: call_meta,
            auth,
            state: State::Queued,
            created: wall,
            updated: wall,
            attempts: 0,
            idempotent,
            ttl_ms,
            message: None,
            result: None,
            error: None,
        };
        self.next_seq = self.next_seq.saturating_add(1);
        let put = entry_put(&entry);
        self.persist(
            vec![put],
            StoreWait::Enqueue { session: s, client_id: id.clone(), entry: Box::new(entry), mode, modern, schema },
        );
        true
    }

    /// What the client of a queued call hears. A plain result says `isError: false`, except for a
    /// tool with an `outputSchema`: a queued call has no structured result yet, and the official SDK
    /// clients reject a result without one unless it is marked as an error.
    /// A client's `tools/call` that had not reached its upstream when the link went down: queue it if
    /// policy allows. Returns whether it did (then the client is answered once it is durable).
    pub(super) fn requeue_undelivered(&mut self, now: Millis, u: UpstreamId, call: &ClientCall) -> bool {
        let Some(s) = call.session.filter(|s| self.sessions.contains_key(s)) else { return false };
        if call.method != method::TOOLS_CALL || call.collect.is_some() {
            return false;
        }
        let mut params = call.sent_params.clone();
        let tool = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let exposed = self.catalog.exposed(&self.cfg, u.0, ListKind::Tools, &tool);
        if let (Some(m), Some(t)) = (params.get_mut("_meta").and_then(Value::as_object_mut), &call.client_progress) {
            m.insert("progressToken".into(), t.clone());
        }
        self.maybe_enqueue(now, s, &call.client_id, u, &exposed, &mut params, call.modern_client)
    }

    fn queued_reply(&self, e: &Entry, mode: TaskMode, modern: bool, schema: bool) -> Value {
        match mode {
            TaskMode::Legacy => json!({ "task": e.legacy_task() }),
            TaskMode::Modern => {
                let mut t = e.modern_task(false);
                t["resultType"] = json!("task");
                t
            }
            TaskMode::None => {
                // Called before the entry joins the queue: it comes after every live entry.
                let position =
                    1 + self.queue.values().filter(|x| x.upstream == e.upstream && !x.state.terminal()).count();
                let why = match self.cfg.upstreams.iter().position(|x| x.name == e.upstream) {
                    Some(u) if self.ups[u].link == Link::Ready => "is replaying earlier queued calls",
                    _ => "is unreachable",
                };
                let text = format!(
                    "Queued: upstream {:?} {why}, so {} will run when it is back (position {position}). \
                     Task id {}: follow it with tasks/get or tasks/result.",
                    e.upstream, e.exposed, e.id
                );
                let mut r = json!({
                    "content": [{ "type": "text", "text": text }],
                    "isError": schema,
                    "_meta": { meta::QUEUED: {
                        "taskId": e.id, "upstream": e.upstream, "tool": e.tool, "name": e.exposed, "position": position,
                    } },
                });
                if modern {
                    r["resultType"] = json!("complete");
                }
                r
            }
        }
    }

    /// Start the next queued call of `u` if it is ready and nothing of its queue is under way. The
    /// entry is written as running before it is sent: a crash after this point leaves it in doubt,
    /// never sent twice.
    pub(super) fn pump(&mut self, now: Millis, u: UpstreamId) {
        let r = &self.replay[u.0];
        if self.ups[u.0].link != Link::Ready || r.busy || now < r.next_try {
            return;
        }
        let name = self.uname(u).to_string();
        let wall = self.wall(now);
        let Some(e) = self.queue.values_mut().find(|e| e.upstream == name && e.state == State::Queued) else {
            return;
        };
        e.state = State::Running;
        e.attempts += 1;
        e.updated = wall;
        let (seq, put) = (e.seq, entry_put(e));
        self.replay[u.0].busy = true;
        self.persist(vec![put], StoreWait::Started { seq });
    }

    fn send_replay(&mut self, now: Millis, seq: u64) {
        let Some(e) = self.queue.get(&seq) else { return };
        let Some(u) = self.cfg.upstreams.iter().position(|x| x.name == e.upstream).map(UpstreamId) else { return };
        if self.ups[u.0].link != Link::Ready {
            // It went down between writing and sending: nothing was sent, so it is simply queued again.
            self.replay[u.0].busy = false;
            if let Some(e) = self.queue.get_mut(&seq) {
                e.state = State::Queued;
                let put = entry_put(e);
                self.persist(vec![put], StoreWait::Write);
            }
            return;
        }
        let mut m = e.meta.clone();
        m.insert(meta::IDEMPOTENCY_KEY.into(), Value::from(e.id.clone()));
        let params = json!({ "name": e.tool, "arguments": e.arguments, "_meta": m });
        self.stats.upstream_requests += 1;
        let replay = Pending::Replay { seq, deadline: now + self.cfg.request_timeout_ms };
        self.own_request(u, method::TOOLS_CALL, params, replay);
    }

    /// The upstream answered a replayed call.
    pub(super) fn replay_answered(&mut self, now: Millis, u: UpstreamId, seq: u64, answer: Result<Value, ErrorObject>) {
        self.replay[u.0].busy = false;
        self.replay[u.0].failures = 0;
        let wall = self.wall(now);
        let Some(e) = self.queue.get_mut(&seq) else { return };
        e.updated = wall;
        match answer {
            Ok(r) if protocol::is_input_required(&r) => {
                self.metrics.replays_failed += 1;
                e.state = State::Failed;
                e.message = Some("the tool asked for input, which a queued call cannot give".into());
                e.error = Some(json!({"code": code::INVALID_REQUEST, "message": e.message}));
            }
            Ok(r) => {
                self.metrics.replays_completed += 1;
                e.state = State::Completed;
                e.result = Some(r);
            }
            Err(x) => {
                self.metrics.replays_failed += 1;
                e.state = State::Failed;
                e.message = Some(x.message.clone());
                e.error = Some(x.to_value());
            }
        }
        let put = entry_put(e);
        self.persist(vec![put], StoreWait::Write);
        self.wake_waiters(seq);
        self.pump(now, u);
    }

    /// A replayed call's link broke or it timed out: unless the host says it was never delivered, it
    /// may or may not have run.
    pub(super) fn replay_interrupted(&mut self, now: Millis, u: UpstreamId, seq: u64, why: &str, undelivered: bool) {
        self.replay[u.0].busy = false;
        let wall = self.wall(now);
        let Some(e) = self.queue.get_mut(&seq) else { return };
        e.updated = wall;
        let retry = e.idempotent || undelivered;
        if retry {
            self.metrics.replays_requeued += 1;
        } else {
            self.metrics.replays_in_doubt += 1;
        }
        if undelivered {
            e.state = State::Queued;
            e.message = Some(format!("not delivered ({why}); will be sent again"));
        } else if retry {
            e.state = State::Queued;
            e.message = Some(format!("interrupted ({why}); will be sent again (idempotent tool)"));
        } else {
            e.state = State::Failed;
            e.message = Some(in_doubt_message(&e.id));
        }
        let put = entry_put(e);
        self.persist(vec![put], StoreWait::Write);
        if retry {
            self.replay_backoff(now, u);
        } else {
            self.wake_waiters(seq);
        }
    }

    fn replay_backoff(&mut self, now: Millis, u: UpstreamId) {
        let r = &mut self.replay[u.0];
        r.failures = r.failures.saturating_add(1);
        let exp = BACKOFF_BASE_MS.saturating_mul(1 << r.failures.min(20).saturating_sub(1)).min(BACKOFF_MAX_MS);
        // Full jitter over the upper half: between exp/2 and exp.
        let jitter = self.tokens.next_u64() % (exp / 2 + 1);
        self.replay[u.0].next_try = now + exp / 2 + jitter;
    }

    /// When a replay backoff or a finished entry's retention next needs attention.
    pub(super) fn offline_deadline(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        for (u, r) in self.replay.iter().enumerate() {
            // Only when `pump` would start something then (a queued entry, a ready link, nothing under
            // way), so a deadline in the past always leads somewhere.
            let name = &self.cfg.upstreams[u].name;
            let waiting = || self.queue.values().any(|e| e.upstream == *name && e.state == State::Queued);
            if !r.busy && r.next_try > 0 && self.ups[u].link == Link::Ready && waiting() {
                t = Some(t.map_or(r.next_try, |x| x.min(r.next_try)));
            }
        }
        let expiry = self.queue.values().filter(|e| e.state.terminal()).map(Entry::expires).min();
        if let Some(at) = expiry.and_then(|exp| self.host_time(exp)) {
            t = Some(t.map_or(at, |x| x.min(at)));
        }
        t
    }

    pub(super) fn offline_timeout(&mut self, now: Millis) {
        let wall = self.wall(now);
        let expired: Vec<u64> =
            self.queue.values().filter(|e| e.state.terminal() && e.expires() <= wall).map(|e| e.seq).collect();
        if !expired.is_empty() {
            let mut ops = Vec::new();
            for seq in expired {
                self.queue.remove(&seq);
                self.waiters.retain(|(x, _)| *x != seq);
                ops.push(StoreOp::Delete { table: Table::Queue, key: queue_key(seq) });
            }
            self.persist(ops, StoreWait::Write);
        }
        for u in 0..self.ups.len() {
            if self.replay[u].next_try <= now {
                self.pump(now, UpstreamId(u));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Tasks
    // ---------------------------------------------------------------------------------------------

    /// `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel` on queued calls.
    pub(super) fn task_request(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        m: &str,
        params: Option<&Value>,
        modern: bool,
    ) {
        let (auth, admin) = match self.sessions.get(&s) {
            Some(x) => (x.auth.clone(), x.admin),
            None => return,
        };
        let visible = |e: &Entry| admin || e.auth == auth;
        if m == method::TASKS_LIST {
            let tasks: Vec<Value> = self
                .queue
                .values()
                .filter(|e| visible(e))
                .map(|e| if modern { e.modern_task(false) } else { e.legacy_task() })
                .collect();
            let mut r = json!({ "tasks": tasks });
            if modern {
                r["resultType"] = json!("complete");
            }
            return self.reply(s, id, r);
        }
        let Some(task_id) = params.and_then(|p| p.get("taskId")).and_then(Value::as_str) else {
            return self.reply_err(s, id, err(code::INVALID_PARAMS, format!("{m} needs a string `taskId`")));
        };
        let Some(seq) = self.queue.values().find(|e| e.id == task_id && visible(e)).map(|e| e.seq) else {
            return self.reply_err(s, id, err(code::INVALID_PARAMS, format!("Unknown task: {task_id}")));
        };
        let Some(e) = self.queue.get(&seq) else { return };
        match m {
            method::TASKS_GET => {
                let r = if modern {
                    let mut t = e.modern_task(true);
                    t["resultType"] = json!("complete");
                    t
                } else {
                    e.legacy_task()
                };
                self.reply(s, id, r)
            }
            method::TASKS_RESULT => {
                if e.state.terminal() {
                    self.answer_result(s, id, seq, modern);
                } else {
                    self.waiters.push((seq, Waiter { session: s, client_id: id, modern }));
                }
            }
            _ => match e.state {
                State::Queued => {
                    let wall = self.wall(now);
                    let e = self.queue.get_mut(&seq).expect("found above");
                    e.state = State::Cancelled;
                    e.updated = wall;
                    e.message = Some("cancelled before it ran".into());
                    let put = entry_put(e);
                    self.persist(vec![put], StoreWait::Cancelled { session: s, client_id: id, seq, modern });
                }
                State::Running => self.reply_err(
                    s,
                    id,
                    err(
                        code::INVALID_PARAMS,
                        format!("task {task_id} is being sent to its upstream; too late to cancel"),
                    ),
                ),
                st => self.reply_err(
                    s,
                    id,
                    err(code::INVALID_PARAMS, format!("task {task_id} is already {}", st.as_str())),
                ),
            },
        }
    }

    fn answer_result(&mut self, s: SessionId, id: Id, seq: u64, modern: bool) {
        let Some(e) = self.queue.get(&seq) else { return };
        let related = json!({ "taskId": e.id });
        match e.state {
            State::Completed => {
                let mut r = e.result.clone().unwrap_or(json!({}));
                if !r.is_object() {
                    r = json!({});
                }
                if !r.get("_meta").is_some_and(Value::is_object) {
                    r["_meta"] = json!({});
                }
                r["_meta"][meta::RELATED_TASK] = related;
                if modern && r.get("resultType").is_none() {
                    r["resultType"] = json!("complete");
                }
                self.reply(s, id, r)
            }
            State::Failed => {
                let eo = e.error_object();
                let code = eo.get("code").and_then(Value::as_i64).unwrap_or(code::UPSTREAM_UNAVAILABLE);
                let msg = eo.get("message").and_then(Value::as_str).unwrap_or("failed").to_string();
                let mut x = err(code, msg);
                if let Some(d) = eo.get("data") {
                    x = x.with_data(d.clone());
                }
                self.reply_err(s, id, x)
            }
            _ => self.reply_err(s, id, err(code::INVALID_PARAMS, format!("task {} was cancelled", e.id))),
        }
    }

    fn wake_waiters(&mut self, seq: u64) {
        let (mine, rest): (Vec<_>, Vec<_>) =
            core::mem::take(&mut self.waiters).into_iter().partition(|(x, _)| *x == seq);
        self.waiters = rest;
        for (_, w) in mine {
            if self.sessions.contains_key(&w.session) {
                self.answer_result(w.session, w.client_id, seq, w.modern);
            }
        }
    }
}

fn entry_put(e: &Entry) -> StoreOp {
    StoreOp::Put { table: Table::Queue, key: queue_key(e.seq), value: e.to_json() }
}

fn in_doubt_message(id: &str) -> String {
    format!(
        "in doubt: the gateway lost this call while it was being sent, so it may or may not have run; it is not \
         sent again because its tool is not idempotent (idempotency key {id})"
    )
}
