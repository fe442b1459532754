//! MCP facts the gateway needs: versions, eras, method names and the modern `_meta` keys.

use crate::prelude::*;

use serde_json::{json, Map, Value};

/// The protocol era a peer speaks. Legacy: `initialize` and sessions (2024-11-05 ..= 2025-11-25).
/// Modern: stateless requests carrying their own `_meta` (2026-07-28 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Legacy,
    Modern,
}

pub const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
pub const LATEST_LEGACY: &str = "2025-11-25";
pub const LATEST_MODERN: &str = "2026-07-28";
/// What an HTTP server assumes when a legacy client sends no `MCP-Protocol-Version` header.
pub const HTTP_DEFAULT_LEGACY: &str = "2025-03-26";

/// The era a protocol version string belongs to, or `None` when we do not speak it.
pub fn era_of(version: &str) -> Option<Era> {
    if LEGACY_VERSIONS.contains(&version) {
        Some(Era::Legacy)
    } else if MODERN_VERSIONS.contains(&version) {
        Some(Era::Modern)
    } else {
        None
    }
}

/// Every version we accept, newest first (the `supported` list of a -32022 error).
pub fn supported_versions() -> Vec<&'static str> {
    MODERN_VERSIONS.iter().rev().chain(LEGACY_VERSIONS.iter().rev()).copied().collect()
}

pub mod method {
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const DISCOVER: &str = "server/discover";
    pub const PING: &str = "ping";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCE_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    pub const COMPLETE: &str = "completion/complete";
    pub const SET_LEVEL: &str = "logging/setLevel";
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const PROGRESS: &str = "notifications/progress";
    pub const MESSAGE: &str = "notifications/message";
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    pub const ROOTS_LIST_CHANGED: &str = "notifications/roots/list_changed";
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
    pub const ELICIT: &str = "elicitation/create";
    pub const SAMPLE: &str = "sampling/createMessage";
    pub const ROOTS_LIST: &str = "roots/list";
    pub const TASKS_GET: &str = "tasks/get";
    pub const TASKS_RESULT: &str = "tasks/result";
    pub const TASKS_LIST: &str = "tasks/list";
    pub const TASKS_CANCEL: &str = "tasks/cancel";
}

pub mod meta {
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    /// Our own key on results served while their upstream is degraded.
    pub const GATEWAY: &str = "io.github.mcp-edge-gateway/status";
    /// On a result served from the cache while its upstream could not be asked: `{stale, ageMs}`.
    pub const CACHE: &str = "io.github.mcp-edge-gateway/cache";
    /// On the result a client gets for a call put in the offline queue: `{taskId, upstream, tool, position}`.
    pub const QUEUED: &str = "io.github.mcp-edge-gateway/queued";
    /// On a replayed call sent upstream: the task id, the same on every attempt.
    pub const IDEMPOTENCY_KEY: &str = "io.github.mcp-edge-gateway/idempotencyKey";
    /// The tasks extension of 2026-07-28 (per-request client capability and server capability).
    pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
    pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
}

/// The three kinds of list the gateway aggregates (plus templates, which are resources too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [ListKind::Tools, ListKind::Prompts, ListKind::Resources, ListKind::Templates];

    pub fn from_method(m: &str) -> Option<ListKind> {
        match m {
            method::TOOLS_LIST => Some(ListKind::Tools),
            method::PROMPTS_LIST => Some(ListKind::Prompts),
            method::RESOURCES_LIST => Some(ListKind::Resources),
            method::RESOURCE_TEMPLATES_LIST => Some(ListKind::Templates),
            _ => None,
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => method::TOOLS_LIST,
            ListKind::Prompts => method::PROMPTS_LIST,
            ListKind::Resources => method::RESOURCES_LIST,
            ListKind::Templates => method::RESOURCE_TEMPLATES_LIST,
        }
    }

    /// The member of the result that holds the items.
    pub fn field(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }

    /// The server capability that announces this list.
    pub fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }

    pub fn list_changed(self) -> &'static str {
        match self {
            ListKind::Tools => method::TOOLS_LIST_CHANGED,
            ListKind::Prompts => method::PROMPTS_LIST_CHANGED,
            ListKind::Resources | ListKind::Templates => method::RESOURCES_LIST_CHANGED,
        }
    }

    /// Whether items are namespaced by name (tools, prompts) or keep their URI (resources).
    pub fn named(self) -> bool {
        matches!(self, ListKind::Tools | ListKind::Prompts)
    }
}

/// The `params._meta` object of a request, if any.
pub fn params_meta(params: Option<&Value>) -> Option<&Map<String, Value>> {
    params?.get("_meta")?.as_object()
}

/// The protocol version a modern request declares in its `_meta`.
pub fn request_version(params: Option<&Value>) -> Option<&str> {
    params_meta(params)?.get(meta::PROTOCOL_VERSION)?.as_str()
}

/// Insert the modern per-request `_meta` keys (protocol version, capabilities, client info) into
/// `params`, keeping whatever `_meta` already holds.
/// Take a modern client's per-request envelope (version, capabilities, client info, log level) off
/// params going to a legacy upstream: that era negotiated them once, and strict legacy servers refuse
/// requests that carry it. Every other `_meta` key stays; an emptied `_meta` goes.
pub fn strip_modern_meta(params: &mut Value) {
    let Some(obj) = params.as_object_mut() else { return };
    let Some(Value::Object(m)) = obj.get_mut("_meta") else { return };
    for k in [meta::PROTOCOL_VERSION, meta::CLIENT_CAPABILITIES, meta::CLIENT_INFO, meta::LOG_LEVEL] {
        m.remove(k);
    }
    if m.is_empty() {
        obj.remove("_meta");
    }
}

pub fn stamp_modern_meta(params: &mut Value, version: &str, capabilities: &Value, client_info: &Value) {
    if !params.is_object() {
        *params = Value::Object(Map::new());
    }
    let obj = params.as_object_mut().expect("made an object above");
    let meta = obj.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let m = meta.as_object_mut().expect("made an object above");
    m.insert(meta::PROTOCOL_VERSION.into(), Value::from(version));
    m.entry(meta::CLIENT_CAPABILITIES).or_insert_with(|| capabilities.clone());
    m.entry(meta::CLIENT_INFO).or_insert_with(|| client_info.clone());
}

/// The legacy-era view of a modern result: a legacy client has no use for `resultType` on a complete
/// result, but unknown members are harmless, so nothing else is removed.
pub fn is_input_required(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// The capabilities the gateway asks of upstreams: everything a downstream client might provide, so
/// an upstream tool may use sampling, elicitation or roots; the gateway refuses per request when the
/// client in question lacks it.
pub fn gateway_client_capabilities() -> Value {
    json!({ "sampling": {}, "elicitation": { "form": {}, "url": {} }, "roots": { "listChanged": true } })
}

/// Server methods whose result may be `input_required` in the modern era.
pub fn may_require_input(m: &str) -> bool {
    matches!(m, method::TOOLS_CALL | method::PROMPTS_GET | method::RESOURCES_READ)
}

/// `Mcp-Name` / `Mcp-Param-*` values that are not plain printable ASCII go base64 in a sentinel.
pub fn header_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.starts_with("=?base64?");
    if plain {
        v.to_string()
    } else {
        format!("=?base64?{}?=", base64_std(v.as_bytes()))
    }
}

fn base64_std(data: &[u8]) -> String {
    let s = crate::cursor::base64url_encode(data).replace('-', "+").replace('_', "/");
    let pad = (4 - s.len() % 4) % 4;
    s + &"=".repeat(pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_use_the_base64_sentinel_when_needed() {
        assert_eq!(header_value("echo"), "echo");
        assert_eq!(header_value("demo://resource/1"), "demo://resource/1");
        assert_eq!(header_value("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(header_value(" x"), "=?base64?IHg=?=");
    }
}
