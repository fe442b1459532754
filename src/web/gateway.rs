//! `Gateway`: the JavaScript API of the browser build.
//!
//! ```js
//! import init, { Gateway } from 'mcp-edge-gateway';
//! await init();
//! const gw = await Gateway.create({ upstreams: { board: { url: 'http://pi.local:8787/mcp' } } });
//! const tools = await gw.listTools();
//! const result = await gw.callTool('board__load', {});
//! ```

use std::prelude::rust_2021::*;

use super::connection::{listener_sink, Connection};
use super::idb::IdbStore;
use super::interop::{error_from_js, from_js, function, rpc_error, text_to_js, to_js, type_error};
use super::local::LocalUpstream;
use super::runtime::{self, Runtime, Shared};
use crate::config::{read_groups, read_sampling, read_upstream, Transport};
use crate::engine::{Gateway as Engine, SessionId, UpstreamId};
use crate::jsonrpc::{code, ErrorObject, Id, Message};
use crate::store::{Snapshot, Store, StoreError};
use crate::{Era, GatewayConfig, Namespacing, UpstreamSpec};
use js_sys::{Function, Promise};
use serde_json::{json, Map, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** One upstream MCP server, by name (the name is its default prefix: `<name>__<tool>`). */
export interface UpstreamConfig {
  /** Streamable HTTP endpoint (`https://host/mcp`) or WebSocket URL (`wss://host/ws`). */
  url: string;
  /** Default: "websocket" for ws:// and wss:// URLs, else "http". */
  transport?: "http" | "websocket";
  /** Extra HTTP headers (HTTP transport only), e.g. an Authorization header for that server. */
  headers?: Record<string, string>;
  /** Prefix for its tool and prompt names; `false` for none. Default: the upstream's name. */
  prefix?: string | false;
  /** Protocol era; "auto" probes `server/discover` and falls back to `initialize`. */
  era?: "auto" | "legacy" | "modern";
  /** Tools whose calls are queued durably while this upstream is unreachable and replayed, in order,
   *  when it is back: its own tool names, "*" for all, or "@idempotentHint" (tools so annotated). */
  offlineQueue?: string[];
  /** How long this (legacy) upstream's lists and reads stay fresh in the cache: one number of
   *  milliseconds, or per method (`{"resources/read": 60000}`). Modern upstreams send `ttlMs`. */
  cacheTtlMs?: number | Record<string, number>;
}

export interface GroupConfig {
  members: string[];
  /** Total time a call may take on one member: milliseconds, or per method. */
  timeoutMs?: number | Record<string, number>;
  /** Time to the member's first sign of life for a call: milliseconds, or per method. */
  firstByteTimeoutMs?: number | Record<string, number>;
  retry?: { attempts?: number; backoffMs?: number; maxBackoffMs?: number; budgetRatio?: number; budgetMin?: number; budgetWindowMs?: number; safeTools?: string[] };
  breaker?: { failures?: number; errorRate?: number; windowMs?: number; minCalls?: number; cooldownMs?: number; maxCooldownMs?: number; probeTimeoutMs?: number };
}

export interface GatewayConfig {
  upstreams?: Record<string, UpstreamConfig>;
  namespace?: { separator?: string; prefix?: boolean };
  /** The in-page upstream that serves tools registered with `registerTool`. Default name "page". */
  local?: { name?: string; prefix?: string | false };
  /** A forwarded request without an answer after this long fails with -32001. Default 120000. */
  requestTimeoutMs?: number;
  /** How long to wait before reconnecting to an unreachable upstream: `min` after the first
   *  failure, doubling per failure up to `max`; each wait is a random time between half and all of
   *  it. The browser's `online` event reconnects at once, whatever is left of the wait.
   *  Default `{ min: 250, max: 30000 }`. */
  reconnectBackoffMs?: { min?: number; max?: number };
  /** Where the cache and the offline queue live: "indexeddb" (default where IndexedDB exists; they
   *  survive reloads) or "memory". */
  storage?: "indexeddb" | "memory";
  /** The IndexedDB database name. Default "mcp-edge-gateway". Two gateways must not share one. */
  storageName?: string;
  /** The cache's size cap in bytes (least recently used entries go first). Default 8 MiB. */
  cacheMaxBytes?: number;
  /** Upstream groups: members (upstream names, in order of preference) that serve the same tools,
   *  exposed once as `<group>__<tool>`; each call goes to the first healthy member. */
  groups?: Record<string, GroupConfig>;
  /** Who answers an upstream's sampling request, in order: OpenAI-compatible providers (fetched
   *  from the page, so they must allow its origin) and "client" (`onSampling`). */
  sampling?: {
    order?: string[];
    providers?: Record<string, { url: string; model: string; models?: string[]; timeoutMs?: number; modalities?: ("text" | "image" | "audio")[] }>;
  };
  /** Tool policy, as `[[policy.rules]]` natively: ordered rules that allow or deny exposed names
   *  (globs over tools, prompts and resource URIs). Clients in a page are not authenticated, so the
   *  rules that apply to them are those with `principals: ["*"]`. */
  policy?: { rules: { principals?: string[]; scopes?: string[]; allow?: string[]; deny?: string[] }[] };
  /** Limits per client connection: `requests_per_minute`, `burst`, `max_in_flight_per_session`. */
  limits?: Record<string, number>;
  /** An aggregated list page takes no further upstream's page once it holds this many items. Default 500. */
  listPageSize?: number;
  /** Answer an upstream tool's sampling request (`sampling/createMessage` params → CreateMessageResult):
   *  the "client" step of the sampling chain. */
  onSampling?: (params: any) => any | Promise<any>;
  /** Answer an upstream tool's elicitation (`elicitation/create` params → ElicitResult). */
  onElicitation?: (params: any) => any | Promise<any>;
  /** Answer `roots/list` → `{ roots: [...] }`. */
  onRoots?: () => any | Promise<any>;
}

/** A call in the offline queue (see `listQueue`). */
export interface QueuedCall {
  taskId: string;
  upstream: string;
  /** The upstream's own tool name, and the exposed `name` it was called by. */
  tool: string;
  name: string;
  arguments: Record<string, unknown>;
  status: "queued" | "running" | "completed" | "failed" | "cancelled";
  createdAt: string;
  updatedAt: string;
  attempts: number;
  position: number;
  message?: string;
  /** The CallToolResult, once it ran. */
  result?: any;
  /** The JSON-RPC error, if it failed. */
  error?: { code: number; message: string; data?: unknown };
}

/** A JSON-RPC 2.0 message (either MCP era). */
export type JsonRpcMessage = { jsonrpc: "2.0"; [key: string]: unknown };

/** An in-page tool: a function of the arguments (and the request's `_meta`). Return a CallToolResult,
 *  or any JSON value (it becomes text content, and structured content when it is an object). Throwing
 *  gives an `isError` result with the message. */
export type ToolHandler = (args: Record<string, unknown>, meta: Record<string, unknown> | null) => unknown | Promise<unknown>;

/** Events: "notification" (every notification for this gateway's session, the message as detail),
 *  "listchanged" ({ kind: "tools" | "prompts" | "resources" }), "progress" (notification params),
 *  "log" (notifications/message params). */
export type GatewayEvent = "notification" | "listchanged" | "progress" | "log";
"#;

/// A request waiting for its answer: resolve, reject, and the caller's own id (for `request`).
type Waiting = (Function, Function, Option<Value>);

struct Inner {
    shared: Shared,
    session: SessionId,
    next: Cell<u64>,
    /// Our request id → (resolve, reject, the caller's own id for `request`).
    pending: RefCell<HashMap<String, Waiting>>,
    listeners: RefCell<Vec<(String, Function)>>,
    handlers: Handlers,
    local: Rc<LocalUpstream>,
}

#[derive(Default)]
struct Handlers {
    sampling: Option<Function>,
    elicitation: Option<Function>,
    roots: Option<Function>,
}

/// An MCP gateway running in this page or worker: several upstream MCP servers (and in-page tools)
/// behind one MCP endpoint, with namespacing, pagination, routing and era bridging.
#[wasm_bindgen]
pub struct Gateway {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl Gateway {
    /// Create a gateway and connect its upstreams. Resolves once the gateway answers; requests made
    /// while upstreams are still connecting wait for them (up to 15 s).
    #[wasm_bindgen(unchecked_return_type = "Promise<Gateway>")]
    pub fn create(#[wasm_bindgen(unchecked_param_type = "GatewayConfig")] config: JsValue) -> Promise {
        future_to_promise(async move { Gateway::open(&config).await.map(JsValue::from) })
    }

    /// Send one MCP JSON-RPC request (either era) and resolve to its response message, with your
    /// id. Notifications are delivered and resolve to `undefined`.
    #[wasm_bindgen(unchecked_return_type = "Promise<JsonRpcMessage | undefined>")]
    pub fn request(&self, #[wasm_bindgen(unchecked_param_type = "JsonRpcMessage")] message: JsValue) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let m = Message::from_value(from_js(&message)?).map_err(|e| type_error(&e.to_string()))?;
            match m {
                Message::Request { id, method, params, .. } => {
                    let resp = inner.call_raw(&method, params, Some(id.to_value())).await?;
                    Ok(resp)
                }
                other => {
                    runtime::with(&inner.shared, |e, t| e.handle_client(t, inner.session, other));
                    Ok(JsValue::UNDEFINED)
                }
            }
        })
    }

    /// Every tool of every upstream (all pages followed).
    #[wasm_bindgen(js_name = listTools, unchecked_return_type = "Promise<any[]>")]
    pub fn list_tools(&self) -> Promise {
        self.list("tools/list", "tools")
    }

    /// Every prompt of every upstream.
    #[wasm_bindgen(js_name = listPrompts, unchecked_return_type = "Promise<any[]>")]
    pub fn list_prompts(&self) -> Promise {
        self.list("prompts/list", "prompts")
    }

    /// Every resource of every upstream.
    #[wasm_bindgen(js_name = listResources, unchecked_return_type = "Promise<any[]>")]
    pub fn list_resources(&self) -> Promise {
        self.list("resources/list", "resources")
    }

    /// Call a tool by its exposed name; resolves to the CallToolResult (which may have `isError`),
    /// rejects with an `McpError` (with `code`) for protocol errors.
    #[wasm_bindgen(js_name = callTool, unchecked_return_type = "Promise<any>")]
    pub fn call_tool(
        &self,
        name: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] args: JsValue,
    ) -> Promise {
        match if args.is_undefined() || args.is_null() { Ok(json!({})) } else { from_js(&args) } {
            Ok(args) => self.call_promise("tools/call", json!({ "name": name, "arguments": args })),
            Err(e) => Promise::reject(&e),
        }
    }

    /// Read a resource by URI; resolves to the ReadResourceResult.
    #[wasm_bindgen(js_name = readResource, unchecked_return_type = "Promise<any>")]
    pub fn read_resource(&self, uri: String) -> Promise {
        self.call_promise("resources/read", json!({ "uri": uri }))
    }

    /// Get a prompt by its exposed name; resolves to the GetPromptResult.
    #[wasm_bindgen(js_name = getPrompt, unchecked_return_type = "Promise<any>")]
    pub fn get_prompt(
        &self,
        name: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, string>")] args: JsValue,
    ) -> Promise {
        match if args.is_undefined() || args.is_null() { Ok(json!({})) } else { from_js(&args) } {
            Ok(args) => self.call_promise("prompts/get", json!({ "name": name, "arguments": args })),
            Err(e) => Promise::reject(&e),
        }
    }

    /// Serve a JS function as a tool of the in-page upstream (exposed as `page__<name>` by default).
    /// Registering a name again replaces it. Returns a function that unregisters it.
    #[wasm_bindgen(js_name = registerTool, unchecked_return_type = "() => void")]
    pub fn register_tool(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "{ name: string; description?: string; inputSchema?: object; [key: string]: unknown }"
        )]
        definition: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ToolHandler")] handler: Function,
    ) -> Result<JsValue, JsValue> {
        let def = from_js(&definition)?;
        let name = def.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        self.inner.local.register(def, handler)?;
        let local = Rc::downgrade(&self.inner.local);
        let undo = Closure::once_into_js(move || {
            if let Some(l) = local.upgrade() {
                l.unregister(&name);
            }
        });
        Ok(undo)
    }

    /// Listen to an event; returns a function that stops listening.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GatewayEvent")] event: String,
        listener: Function,
    ) -> JsValue {
        self.inner.listeners.borrow_mut().push((event, listener.clone()));
        let weak = Rc::downgrade(&self.inner);
        Closure::once_into_js(move || {
            if let Some(i) = weak.upgrade() {
                i.listeners.borrow_mut().retain(|(_, l)| *l != listener);
            }
        })
    }

    /// A raw MCP session on this gateway: what the gateway sends it goes to `listener`. Used by
    /// `GatewayTransport` so the official TypeScript SDK `Client` can run in-process.
    pub fn connect(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(message: JsonRpcMessage) => void")] listener: Function,
    ) -> Connection {
        let shared = self.inner.shared.clone();
        let session = runtime::open_session(&shared, listener_sink(listener));
        Connection { shared, session, open: Cell::new(true) }
    }

    /// Every call in the offline queue, oldest first (finished ones until their results expire).
    #[wasm_bindgen(js_name = listQueue, unchecked_return_type = "QueuedCall[]")]
    pub fn list_queue(&self) -> JsValue {
        let v = self.inner.shared.borrow().engine.queue_entries();
        to_js(&v["entries"])
    }

    /// Cancel a queued call that has not run yet; resolves once the cancellation is durable (to the
    /// task), rejects (code -32602) if it already started or finished.
    #[wasm_bindgen(js_name = cancelQueued, unchecked_return_type = "Promise<any>")]
    pub fn cancel_queued(&self, task_id: String) -> Promise {
        self.call_promise("tasks/cancel", json!({ "taskId": task_id }))
    }

    /// The result of a queued call: resolves once it ran (to its CallToolResult), rejects if it
    /// failed or was cancelled.
    #[wasm_bindgen(js_name = queuedResult, unchecked_return_type = "Promise<any>")]
    pub fn queued_result(&self, task_id: String) -> Promise {
        self.call_promise("tasks/result", json!({ "taskId": task_id }))
    }

    /// Retry unreachable upstreams and queued calls now (the gateway also does this on the
    /// browser's `online` event).
    #[wasm_bindgen(js_name = retryNow)]
    pub fn retry_now(&self) {
        runtime::reconnect_now(&self.inner.shared);
    }

    /// Each upstream's state, era and item counts, and the cache's and the queue's counters.
    pub fn status(&self) -> JsValue {
        to_js(&self.inner.shared.borrow().engine.status())
    }

    /// The same figures the native host's `/metrics` exports (operation histograms by method,
    /// upstream and tool; sessions, cache, queue and replays, upstreams and breakers, counters,
    /// sampling, recent errors), as an object: no exporter in the wasm.
    pub fn metrics(&self) -> JsValue {
        to_js(&self.inner.shared.borrow().engine.metrics())
    }

    /// Disconnect every upstream and fail whatever is still waiting.
    pub fn close(&self) {
        runtime::shutdown(&self.inner.shared);
        let pending: Vec<_> = self.inner.pending.borrow_mut().drain().collect();
        for (_, (_, reject, _)) in pending {
            let _ = reject.call1(&JsValue::NULL, &rpc_error(&ErrorObject::new(code::INTERNAL_ERROR, "gateway closed")));
        }
    }
}

impl Gateway {
    /// The runtime this gateway runs on (for the other bindings of the class).
    #[cfg(feature = "sw")]
    pub(super) fn shared(&self) -> Shared {
        self.inner.shared.clone()
    }

    /// `Gateway.create` for Rust callers (and the browser tests).
    pub async fn open(config: &JsValue) -> Result<Gateway, JsValue> {
        console_error_panic_hook::set_once();
        let storage = open_storage(config).await?;
        let inner = build(config, storage)?.inner;
        let init = json!({
            "protocolVersion": crate::protocol::LATEST_LEGACY,
            "capabilities": inner.capabilities(),
            "clientInfo": { "name": "mcp-edge-gateway-js", "version": env!("CARGO_PKG_VERSION") },
        });
        inner.call("initialize", init).await?;
        inner.notify("notifications/initialized");
        Ok(Gateway { inner })
    }

    /// One request to the gateway as a promise of its result. (One helper for every such method: each
    /// `future_to_promise` closure of its own costs the package a kilobyte or more.)
    fn call_promise(&self, method: &'static str, params: Value) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { inner.call(method, params).await })
    }

    fn list(&self, method: &'static str, field: &'static str) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let all = js_sys::Array::new();
            let mut cursor: Option<String> = None;
            for _ in 0..1000 {
                let params = match &cursor {
                    Some(c) => json!({ "cursor": c }),
                    None => json!({}),
                };
                let page = from_js(&inner.call(method, params).await?)?;
                for item in page.get(field).and_then(Value::as_array).into_iter().flatten() {
                    all.push(&to_js(item));
                }
                match page.get("nextCursor").and_then(Value::as_str) {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            Ok(all.into())
        })
    }
}

/// The configured store, opened and read: `None` for memory only. A store that cannot be opened or
/// read fails the gateway's creation with a message naming the database; nothing in it is changed.
async fn open_storage(config: &JsValue) -> Result<Option<(IdbStore, Snapshot, Option<Function>)>, JsValue> {
    let get = |k: &str| js_sys::Reflect::get(config, &k.into()).ok().and_then(|v| v.as_string());
    let kind = if config.is_object() { get("storage") } else { None };
    let has_idb = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into()).is_ok_and(|v| v.is_object());
    match kind.as_deref() {
        Some("memory") => return Ok(None),
        None if !has_idb => return Ok(None),
        None | Some("indexeddb") => {}
        Some(o) => return Err(type_error(&format!("storage must be \"indexeddb\" or \"memory\", not {o:?}"))),
    }
    let name =
        (if config.is_object() { get("storageName") } else { None }).unwrap_or_else(|| "mcp-edge-gateway".into());
    let problem = |e: StoreError| {
        let msg = format!(
            "the store (IndexedDB {name:?}) cannot be used: {e}. Nothing was changed in it; use another \
             storageName, delete the database, or use storage: \"memory\"."
        );
        JsValue::from(js_sys::Error::new(&msg))
    };
    let release = lock_store(&name).await?;
    let opened = async {
        let mut store = IdbStore::open(&name).await?;
        let snap = store.load().await?;
        Ok::<_, StoreError>((store, snap))
    };
    match opened.await {
        Ok((store, snap)) => Ok(Some((store, snap, release))),
        Err(e) => {
            if let Some(r) = release {
                let _ = r.call0(&JsValue::NULL);
            }
            Err(problem(e))
        }
    }
}

/// Hold the Web Lock `mcp-edge-gateway:<name>` for as long as this gateway uses the database: two
/// gateways (two tabs, say) on one queue would both replay it. Waits up to 3 s for a gateway that is
/// closing; resolves to the function that releases the lock (`None` where Web Locks do not exist).
async fn lock_store(name: &str) -> Result<Option<Function>, JsValue> {
    let global = js_sys::global();
    let locks = js_sys::Reflect::get(&global, &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"locks".into()))
        .unwrap_or(JsValue::UNDEFINED);
    let Some(request) = function(&locks, "request") else { return Ok(None) };
    let options = js_sys::Object::new();
    let abort = js_sys::Reflect::get(&global, &"AbortSignal".into())?;
    if let Some(timeout) = function(&abort, "timeout") {
        js_sys::Reflect::set(&options, &"signal".into(), &timeout.call1(&abort, &JsValue::from(3000))?)?;
    }
    let lock_name = JsValue::from(format!("mcp-edge-gateway:{name}"));
    let granted = Promise::new(&mut |resolve, reject| {
        // Called with the lock: hand out a release function and hold the lock until it is called.
        let held = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
            Promise::new(&mut |release, _| {
                let _ = resolve.call1(&JsValue::NULL, &release);
            })
            .into()
        });
        match request.call3(&locks, &lock_name, &options, &held) {
            // The request's own promise rejects when the wait times out.
            Ok(p) => {
                let on_err = Closure::once_into_js(move |e: JsValue| {
                    let _ = reject.call1(&JsValue::NULL, &e);
                });
                if let Some(catch) = function(&p, "catch") {
                    let _ = catch.call1(&p, &on_err);
                }
            }
            Err(e) => {
                let _ = reject.call1(&JsValue::NULL, &e);
            }
        }
    });
    match JsFuture::from(granted).await {
        Ok(release) => Ok(release.dyn_into::<Function>().ok()),
        Err(_) => Err(js_sys::Error::new(&format!(
            "the store (IndexedDB {name:?}) is in use by another gateway (another tab or worker?): close that \
             one first, or give this one another storageName"
        ))
        .into()),
    }
}

/// `reconnectBackoffMs: {min, max}`, each a whole number of milliseconds from 1 up to 2^31 - 1.
fn reconnect_backoff(v: Option<&Value>) -> Result<(u32, u32), JsValue> {
    let bad = || type_error("reconnectBackoffMs must be { min, max }: milliseconds from 1 to 2147483647, min <= max");
    let Some(v) = v else { return Ok(runtime::DEFAULT_BACKOFF) };
    let o = v.as_object().ok_or_else(bad)?;
    let field = |k: &str, default: u32| match o.get(k) {
        None => Ok(default),
        Some(n) => n.as_u64().filter(|n| (1..=i32::MAX as u64).contains(n)).map(|n| n as u32).ok_or_else(bad),
    };
    let (min, max) = (field("min", runtime::DEFAULT_BACKOFF.0)?, field("max", runtime::DEFAULT_BACKOFF.1)?);
    let max = if o.contains_key("max") { max } else { max.max(min) };
    if min > max {
        return Err(bad());
    }
    Ok((min, max))
}

fn build(config: &JsValue, storage: Option<(IdbStore, Snapshot, Option<Function>)>) -> Result<Gateway, JsValue> {
    let handlers = Handlers {
        sampling: function(config, "onSampling"),
        elicitation: function(config, "onElicitation"),
        roots: function(config, "onRoots"),
    };
    let cfg = if config.is_undefined() || config.is_null() { json!({}) } else { from_js(config)? };
    let mut core = GatewayConfig::default();
    let ns = cfg.get("namespace");
    if let Some(sep) = ns.and_then(|n| n.get("separator")).and_then(Value::as_str) {
        core.namespacing = Namespacing { separator: sep.to_string() };
    }
    let default_prefix = ns.and_then(|n| n.get("prefix")).and_then(Value::as_bool).unwrap_or(true);
    if let Some(t) = cfg.get("requestTimeoutMs").and_then(Value::as_u64) {
        core.request_timeout_ms = t;
    }
    if let Some(m) = cfg.get("cacheMaxBytes").and_then(Value::as_u64) {
        core.cache_max_bytes = m as usize;
    }
    let backoff = reconnect_backoff(cfg.get("reconnectBackoffMs"))?;
    let prefix_of = |name: &str, v: Option<&Value>| -> Result<Option<String>, JsValue> {
        match v {
            None => Ok(default_prefix.then(|| name.to_string())),
            Some(Value::Bool(false)) => Ok(None),
            Some(Value::Bool(true)) => Ok(Some(name.to_string())),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(type_error(&format!("upstream {name:?}: prefix must be a string or false"))),
        }
    };
    enum Kind {
        Http(String, BTreeMap<String, String>),
        Ws(String),
    }
    let mut kinds = Vec::new();
    let empty = Map::new();
    for (name, u) in cfg.get("upstreams").and_then(Value::as_object).unwrap_or(&empty) {
        let at = format!("upstreams.{name}");
        let Some((spec, transport)) = read_upstream(&at, name, u, default_prefix).map_err(|e| type_error(&e))? else {
            continue;
        };
        kinds.push(match transport {
            Transport::Http { url, headers } => Kind::Http(url, headers),
            Transport::WebSocket { url, headers } if headers.is_empty() => Kind::Ws(url),
            Transport::WebSocket { .. } => {
                return Err(type_error(&format!(
                    "{at}.headers: a browser's WebSocket cannot send headers; authenticate another way (a token in the server's own protocol)"
                )))
            }
            Transport::Sse { .. } => {
                return Err(type_error(&format!(
                    "{at}: the legacy HTTP+SSE transport is native only; give `transport: \"http\"` if the url speaks Streamable HTTP"
                )))
            }
            _ => {
                return Err(type_error(&format!(
                    "{at}: a browser gateway reaches its upstreams by `url` (Streamable HTTP or WebSocket)"
                )))
            }
        });
        core.upstreams.push(spec);
    }
    let local = cfg.get("local");
    let local_name = local.and_then(|l| l.get("name")).and_then(Value::as_str).unwrap_or("page").to_string();
    let local_prefix = prefix_of(&local_name, local.and_then(|l| l.get("prefix")))?;
    core.upstreams.push(UpstreamSpec {
        name: local_name,
        prefix: local_prefix,
        era: Some(Era::Legacy),
        ..Default::default()
    });
    let local_id = UpstreamId(core.upstreams.len() - 1);
    if let Some(n) = cfg.get("listPageSize").and_then(Value::as_u64) {
        core.list_page_size = (n as usize).max(1);
    }
    if let Some(g) = cfg.get("groups") {
        read_groups("groups", g, &mut core).map_err(|e| type_error(&e))?;
    }
    core.policy = crate::policy::read_policy(cfg.get("policy")).map_err(|e| type_error(&e))?;
    core.limits = crate::limits::read_limits(cfg.get("limits")).map_err(|e| type_error(&e))?;
    if let Some(sp) = cfg.get("sampling") {
        // In the page, `client` is the page's own `onSampling`.
        core.sampling = read_sampling("sampling", sp, &[]).map_err(|e| type_error(&e))?;
        if let Some(p) = core.sampling.providers.iter().find(|p| p.api_key_env.is_some() || p.api_key_file.is_some()) {
            return Err(type_error(&format!(
                "sampling.providers.{}: a browser has no environment or files for API keys; use a provider that needs none (a local model server, or your own proxy)",
                p.name
            )));
        }
    }

    let mut engine = Engine::new(core).map_err(|e| type_error(&e.to_string()))?;
    // The opt-in build (`MCP_GW_NPM_VALIDATE=1 scripts/build-npm.sh`) checks tool arguments in the page.
    #[cfg(feature = "validate")]
    engine.set_validator(Box::new(crate::validate::SchemaValidator::new()));
    let mut seed = [0u8; 32];
    fill_random(&mut seed)?;
    engine.seed(seed);
    // The runtime's clock starts now (0); the engine learns the wall clock for stored timestamps.
    let wall = js_sys::Date::now() as u64;
    let mut lock = None;
    let store = match storage {
        Some((store, snap, release)) => {
            lock = release;
            let summary = engine.restore(0, wall, &snap).map_err(|e| {
                let msg =
                    format!("the store (IndexedDB {:?}) cannot be used: {e}. Nothing was changed in it.", store.name());
                JsValue::from(js_sys::Error::new(&msg))
            })?;
            web_sys_log(&format!("[mcp-edge-gateway] store {:?}: {summary}", store.name()));
            Some(store)
        }
        None => {
            engine.set_wall_clock(0, wall);
            None
        }
    };
    let shared = Runtime::new(engine);
    shared.borrow_mut().backoff = backoff;
    shared.borrow_mut().sampler = Some(super::providers::ask);
    if let Some(st) = store {
        shared.borrow_mut().set_store(st, lock);
    }
    let local = LocalUpstream::new(&shared, local_id);

    let inner = Rc::new_cyclic(|weak: &std::rc::Weak<Inner>| {
        let weak = weak.clone();
        let sink: runtime::Sink = Rc::new(move |_related, m: Message| {
            if let Some(i) = weak.upgrade() {
                i.deliver(m);
            }
        });
        let session = runtime::open_session(&shared, sink);
        // The page owns this gateway: its own session sees and manages the whole queue.
        shared.borrow_mut().engine.set_session_admin(session);
        Inner {
            shared: shared.clone(),
            session,
            next: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            listeners: RefCell::new(Vec::new()),
            handlers,
            local: local.clone(),
        }
    });
    for (i, k) in kinds.into_iter().enumerate() {
        let name = inner.shared.borrow().engine.config().upstreams[i].name.clone();
        match k {
            Kind::Http(url, headers) => super::fetch::connect(&shared, UpstreamId(i), name, url, headers),
            Kind::Ws(url) => super::websocket::connect(&shared, UpstreamId(i), url),
        }
    }
    runtime::link_up(&shared, local_id, local);
    Ok(Gateway { inner })
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = info)]
    fn web_sys_log(m: &str);
}

/// 32 random bytes from `crypto.getRandomValues` (pages and workers both have `crypto`).
fn fill_random(buf: &mut [u8; 32]) -> Result<(), JsValue> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?;
    let get =
        function(&crypto, "getRandomValues").ok_or_else(|| type_error("crypto.getRandomValues is not available"))?;
    let arr = js_sys::Uint8Array::new_with_length(32);
    get.call1(&crypto, &arr)?;
    arr.copy_to(buf);
    Ok(())
}

impl Inner {
    fn capabilities(&self) -> Value {
        let mut caps = json!({});
        if self.handlers.sampling.is_some() {
            caps["sampling"] = json!({});
        }
        if self.handlers.elicitation.is_some() {
            caps["elicitation"] = json!({ "form": {}, "url": {} });
        }
        if self.handlers.roots.is_some() {
            caps["roots"] = json!({ "listChanged": true });
        }
        caps
    }

    fn notify(&self, method: &str) {
        let m = Message::notification(method, None);
        runtime::with(&self.shared, |e, t| e.handle_client(t, self.session, m));
    }

    /// Send a request on our session; resolve to the result, reject with an `McpError`.
    async fn call(&self, method: &str, params: Value) -> Result<JsValue, JsValue> {
        let resp = from_js(&self.call_raw(method, Some(params), None).await?)?;
        if let Some(e) = resp.get("error") {
            let e = ErrorObject {
                code: e.get("code").and_then(Value::as_i64).unwrap_or(code::INTERNAL_ERROR),
                message: e.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
                data: e.get("data").cloned(),
            };
            return Err(rpc_error(&e));
        }
        Ok(to_js(resp.get("result").unwrap_or(&Value::Null)))
    }

    /// Send a request and resolve to the whole response message, with `user_id` put back.
    async fn call_raw(&self, method: &str, params: Option<Value>, user_id: Option<Value>) -> Result<JsValue, JsValue> {
        if self.shared.borrow().closed {
            return Err(rpc_error(&ErrorObject::new(code::INTERNAL_ERROR, "gateway closed")));
        }
        let n = self.next.get();
        self.next.set(n + 1);
        let key = format!("js-{n}");
        let mut resolve_reject = None;
        let promise = Promise::new(&mut |res, rej| resolve_reject = Some((res, rej)));
        let (res, rej) = resolve_reject.expect("the executor runs synchronously");
        self.pending.borrow_mut().insert(key.clone(), (res, rej, user_id));
        let m = Message::Request { id: Id::Str(key), method: method.into(), params, rest: Map::new() };
        runtime::with(&self.shared, |e, t| e.handle_client(t, self.session, m));
        JsFuture::from(promise).await
    }

    /// Everything the engine sends our session.
    fn deliver(self: &Rc<Self>, m: Message) {
        match m {
            Message::Response { id: Id::Str(ref k), .. } | Message::Error { id: Some(Id::Str(ref k)), .. }
                if self.pending.borrow().contains_key(k) =>
            {
                let (resolve, _, user_id) = self.pending.borrow_mut().remove(k).expect("checked");
                let v = text_to_js(&m.to_json());
                if let Some(u) = user_id {
                    let _ = js_sys::Reflect::set(&v, &JsValue::from_str("id"), &to_js(&u));
                }
                let _ = resolve.call1(&JsValue::NULL, &v);
            }
            Message::Request { id, method, params, .. } => self.answer_server_request(id, method, params),
            Message::Notification { ref method, ref params, .. } => {
                let detail = text_to_js(&m.to_json());
                self.emit("notification", &detail);
                let p = to_js(params.as_ref().unwrap_or(&Value::Null));
                match method.as_str() {
                    "notifications/progress" => self.emit("progress", &p),
                    "notifications/message" => self.emit("log", &p),
                    m if m.ends_with("/list_changed") => {
                        let kind = m.trim_start_matches("notifications/").trim_end_matches("/list_changed");
                        self.emit("listchanged", &to_js(&json!({ "kind": kind })));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn emit(&self, event: &str, detail: &JsValue) {
        let ls: Vec<Function> =
            self.listeners.borrow().iter().filter(|(e, _)| e == event).map(|(_, f)| f.clone()).collect();
        for l in ls {
            let _ = l.call1(&JsValue::NULL, detail);
        }
    }

    /// An upstream asks us (sampling, elicitation, roots): the page's handlers answer.
    fn answer_server_request(self: &Rc<Self>, id: Id, method: String, params: Option<Value>) {
        let handler = match method.as_str() {
            "sampling/createMessage" => self.handlers.sampling.clone(),
            "elicitation/create" => self.handlers.elicitation.clone(),
            "roots/list" => self.handlers.roots.clone(),
            _ => None,
        };
        let me = self.clone();
        let Some(h) = handler else {
            let e = ErrorObject::new(code::METHOD_NOT_FOUND, format!("no handler for {method}"));
            return me.answer(Message::error(Some(id), e));
        };
        let outcome = h.call1(&JsValue::NULL, &to_js(params.as_ref().unwrap_or(&Value::Null)));
        spawn_local(async move {
            let settled = match outcome {
                Ok(v) => JsFuture::from(Promise::resolve(&v)).await,
                Err(e) => Err(e),
            };
            let reply = match settled.and_then(|v| from_js(&v)) {
                Ok(r) => Message::response(id, r),
                Err(e) => Message::error(Some(id), error_from_js(&e)),
            };
            me.answer(reply);
        });
    }

    fn answer(&self, m: Message) {
        runtime::with(&self.shared, |e, t| e.handle_client(t, self.session, m));
    }
}
