//! One upstream entry of a configuration, read once for every format: our TOML (each entry converted
//! to a JSON value), the `mcpServers` JSON of Claude Desktop, Cursor and others, and the browser's JS
//! object. The keys mean the same everywhere and a bad one gets the same message, which names it.
//! Hand-written over `serde_json::Value` rather than derived: derives cost the browser package size.
//!
//! Keys: `command`, `args`, `env`, `cwd` (a stdio process); `url`, `headers` (Streamable HTTP, legacy
//! HTTP+SSE or WebSocket, by `transport`, also spelt `type`, or guessed from the URL); `builtin`;
//! `prefix`; `era`; `disabled`; `offlineQueue` (or `offline_queue`); `cacheTtlMs` (or
//! `cache_ttl_ms`). Unknown keys are ignored: other programs' files carry their own.

use crate::prelude::*;

use super::UpstreamSpec;
use crate::protocol::Era;
use alloc::collections::BTreeMap;
use serde_json::{Map, Value};

/// How an upstream is reached. Which of these a host can drive is its own business (the browser has
/// no processes). `Debug` shows header names, never their values (they hold credentials).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// A child process speaking MCP on its stdin and stdout.
    Stdio { command: String, args: Vec<String>, env: BTreeMap<String, String>, cwd: Option<String> },
    /// Streamable HTTP.
    Http { url: String, headers: BTreeMap<String, String> },
    /// The legacy HTTP+SSE transport (2024-11-05).
    Sse { url: String, headers: BTreeMap<String, String> },
    /// One JSON-RPC message per WebSocket text frame; `headers` go with the upgrade request.
    WebSocket { url: String, headers: BTreeMap<String, String> },
    /// Tools built into the host, by name (`"edge"`).
    Builtin(String),
}

impl core::fmt::Debug for Transport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = |h: &BTreeMap<String, String>| h.keys().map(|k| format!("{k}: <redacted>")).collect::<Vec<_>>();
        match self {
            Transport::Stdio { command, args, env, cwd } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            Transport::Http { url, headers } => {
                f.debug_struct("Http").field("url", url).field("headers", &names(headers)).finish()
            }
            Transport::Sse { url, headers } => {
                f.debug_struct("Sse").field("url", url).field("headers", &names(headers)).finish()
            }
            Transport::WebSocket { url, headers } => {
                f.debug_struct("WebSocket").field("url", url).field("headers", &names(headers)).finish()
            }
            Transport::Builtin(b) => f.debug_tuple("Builtin").field(b).finish(),
        }
    }
}

/// Read the upstream `name` from `entry`; `at` is where the entry sits in its file, for messages
/// (`upstreams.weather`, `mcpServers.weather`). `None` for an entry switched off with `disabled`.
pub fn read_upstream(
    at: &str,
    name: &str,
    entry: &Value,
    default_prefix: bool,
) -> Result<Option<(UpstreamSpec, Transport)>, String> {
    let e = entry.as_object().ok_or_else(|| format!("{at}: must be a table of settings"))?;
    let key = |k: &str| format!("{at}.{k}");
    if get(e, "disabled").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let string = |k: &str| -> Result<Option<String>, String> {
        match get(e, k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{}: must be a string", key(k))),
        }
    };
    let (command, url, builtin) = (string("command")?, string("url")?, string("builtin")?);
    let kind = match get(e, "transport").or_else(|| get(e, "type")) {
        None => None,
        Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
        Some(_) => return Err(format!("{}: must be a string", key("transport"))),
    };
    let headers = || string_map(e, "headers", &key);
    let transport = match (kind.as_deref(), command, url, builtin) {
        (Some("builtin") | None, None, None, Some(b)) => Transport::Builtin(b),
        (Some("stdio") | None, Some(command), None, None) => Transport::Stdio {
            command,
            args: strings(e, "args", &key)?,
            env: string_map(e, "env", &key)?,
            cwd: string("cwd")?,
        },
        (Some("sse"), None, Some(url), None) => Transport::Sse { url, headers: headers()? },
        (Some("http" | "streamable-http" | "streamablehttp" | "streamable_http"), None, Some(url), None) => {
            Transport::Http { url, headers: headers()? }
        }
        (Some("websocket" | "ws"), None, Some(url), None) => Transport::WebSocket { url, headers: headers()? },
        (None, None, Some(url), None) if url.starts_with("ws://") || url.starts_with("wss://") => {
            Transport::WebSocket { url, headers: headers()? }
        }
        (None, None, Some(url), None) if url.trim_end_matches('/').ends_with("/sse") => {
            Transport::Sse { url, headers: headers()? }
        }
        (None, None, Some(url), None) => Transport::Http { url, headers: headers()? },
        (Some(k), ..) if !matches!(k, "stdio" | "sse" | "http" | "streamable-http" | "streamablehttp" | "streamable_http" | "websocket" | "ws" | "builtin") => {
            return Err(format!(
                "{}: must be \"stdio\", \"http\", \"sse\", \"websocket\" or \"builtin\", not {k:?}",
                key("transport")
            ))
        }
        _ => return Err(format!("{at}: give exactly one of `command` (stdio), `url` (http, sse, websocket) or `builtin`, to match its transport")),
    };
    let prefix = match get(e, "prefix") {
        None | Some(Value::Null) => default_prefix.then(|| name.to_string()),
        Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(name.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(format!("{}: must be a string, or false for none", key("prefix"))),
    };
    let era = match get(e, "era") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => None,
        Some(Value::String(s)) if s == "legacy" => Some(Era::Legacy),
        Some(Value::String(s)) if s == "modern" => Some(Era::Modern),
        Some(v) => return Err(format!("{}: must be \"auto\", \"legacy\" or \"modern\", not {v}", key("era"))),
    };
    let era = if matches!(transport, Transport::Builtin(_)) { Some(Era::Legacy) } else { era };
    let cache_ttl_ms = match get(e, "cacheTtlMs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Number(n)) if n.as_u64().is_some() => vec![("*".to_string(), n.as_u64().unwrap_or(0))],
        Some(Value::Object(m)) if m.values().all(|v| v.as_u64().is_some()) => {
            m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()
        }
        Some(_) => {
            return Err(format!("{}: must be milliseconds, or a table of method → milliseconds", key("cacheTtlMs")))
        }
    };
    let spec = UpstreamSpec {
        name: name.to_string(),
        prefix,
        era,
        offline_queue: strings(e, "offlineQueue", &key)?,
        cache_ttl_ms,
    };
    Ok(Some((spec, transport)))
}

/// `k`, or its snake_case spelling for the two keys that have one.
fn get<'a>(e: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    e.get(k).or_else(|| match k {
        "offlineQueue" => e.get("offline_queue"),
        "cacheTtlMs" => e.get("cache_ttl_ms"),
        _ => None,
    })
}

fn strings(e: &Map<String, Value>, k: &str, key: &dyn Fn(&str) -> String) -> Result<Vec<String>, String> {
    match get(e, k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => {
            a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>().ok_or_else(|| bad_list(key(k)))
        }
        Some(_) => Err(bad_list(key(k))),
    }
}

fn bad_list(k: String) -> String {
    format!("{k}: must be a list of strings")
}

fn string_map(
    e: &Map<String, Value>,
    k: &str,
    key: &dyn Fn(&str) -> String,
) -> Result<BTreeMap<String, String>, String> {
    match get(e, k) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => {
            // Inserted one by one: collecting into a B-tree would bring in a stable sort's code.
            let mut out = BTreeMap::new();
            for (name, v) in m {
                let v = v.as_str().ok_or_else(|| format!("{}: every value must be a string", key(k)))?;
                out.insert(name.clone(), v.to_string());
            }
            Ok(out)
        }
        Some(_) => Err(format!("{}: must be a table of names to strings", key(k))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Option<(UpstreamSpec, Transport)>, String> {
        read_upstream("upstreams.a", "a", &v, true)
    }

    #[test]
    fn transports_follow_the_keys_and_the_url() {
        let t = |v: Value| read(v).unwrap().unwrap().1;
        assert!(
            matches!(t(json!({"command": "npx", "args": ["-y", "x"]})), Transport::Stdio { args, .. } if args.len() == 2)
        );
        assert!(matches!(t(json!({"url": "http://h/mcp"})), Transport::Http { .. }));
        assert!(matches!(t(json!({"url": "http://h/sse"})), Transport::Sse { .. }));
        assert!(matches!(t(json!({"url": "http://h/x", "type": "sse"})), Transport::Sse { .. }));
        assert!(matches!(t(json!({"url": "wss://h/ws"})), Transport::WebSocket { .. }));
        assert_eq!(t(json!({"builtin": "edge"})), Transport::Builtin("edge".into()));
    }

    #[test]
    fn both_spellings_mean_the_same() {
        let camel = read(json!({"url": "http://h", "offlineQueue": ["t"], "cacheTtlMs": {"tools/list": 5}})).unwrap();
        let snake =
            read(json!({"url": "http://h", "offline_queue": ["t"], "cache_ttl_ms": {"tools/list": 5}})).unwrap();
        assert_eq!(camel, snake);
        let (spec, _) = camel.unwrap();
        assert_eq!((spec.ttl_for("tools/list"), spec.offline_queue), (Some(5), vec!["t".to_string()]));
    }

    #[test]
    fn bad_entries_are_refused_naming_the_key() {
        let e = |v: Value| read(v).unwrap_err();
        assert!(e(json!({"command": "x", "url": "http://y"})).starts_with("upstreams.a: give exactly one of"));
        assert!(e(json!({"command": "x", "era": "new"})).starts_with("upstreams.a.era: must be"));
        assert!(e(json!({"command": "x", "prefix": 3})).starts_with("upstreams.a.prefix: must be"));
        assert!(e(json!({"command": "x", "offlineQueue": "t"})).starts_with("upstreams.a.offlineQueue: must be"));
        assert!(e(json!({"url": "http://y", "cacheTtlMs": "5"})).starts_with("upstreams.a.cacheTtlMs: must be"));
        assert!(
            e(json!({"url": "http://y", "transport": "carrier-pigeon"})).starts_with("upstreams.a.transport: must be")
        );
        assert!(e(json!({"url": "http://y", "headers": {"A": 1}})).starts_with("upstreams.a.headers: every value"));
        assert!(e(json!("npx")).starts_with("upstreams.a: must be a table"));
        assert_eq!(read(json!({"command": "x", "disabled": true})).unwrap(), None);
    }
}
