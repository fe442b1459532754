//! The host's configuration: our TOML format, or the `mcpServers` JSON that Claude Desktop, Cursor
//! and others use. Both become one [`HostConfig`].
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8787"
//! allowed_origins = ["https://app.example"]   # CORS + Origin check; loopback origins are always allowed
//! max_body_bytes = 4194304
//!
//! [namespace]
//! separator = "__"
//!
//! [upstreams.everything]
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-everything"]
//! env = { FOO = "bar" }
//! prefix = "ev"          # default: the upstream's name; false: no prefix
//!
//! [upstreams.weather]
//! url = "http://127.0.0.1:9000/mcp"
//! headers = { Authorization = "Bearer ..." }
//! transport = "http"     # "http" (Streamable HTTP, default for url) or "sse" (legacy HTTP+SSE)
//! era = "auto"           # "auto" (probe server/discover), "legacy" or "modern"
//!
//! offline_queue = ["report", "@idempotentHint"]   # calls queued durably while it is unreachable
//! cache_ttl_ms = { "tools/list" = 60000, "resources/read" = 5000 }   # legacy upstreams; or one number
//!
//! [upstreams.edge]
//! builtin = "edge"       # the built-in device tools
//!
//! [storage]
//! data_dir = "/var/lib/mcp-edge-gateway"   # default: $XDG_DATA_HOME/mcp-edge-gateway (or --data-dir)
//! max_bytes = 104857600                    # cap on the SQLite file; beyond it, queueing fails clearly
//!
//! [cache]
//! max_bytes = 8388608                      # LRU cap on cached results
//!
//! [auth]                                   # read by the core (mcp_edge_gateway::auth), secrets here
//! issuer = "https://auth.example"
//! [[auth.tokens]]
//! principal = "kitchen-agent"
//! token_env = "GW_TOKEN_KITCHEN"
//!
//! [[policy.rules]]                         # mcp_edge_gateway::policy
//! principals = ["kitchen-agent"]
//! allow = ["edge__*"]
//!
//! [limits]                                 # mcp_edge_gateway::limits
//! requests_per_minute = 600
//! ```
//!
//! Upstream `headers` values may hold `${ENV_VAR}` or `${file:/path}`; an HTTP upstream may have
//! `oauth = { token_url, client_id, client_secret_env | client_secret_file, scopes, resource }`.

use mcp_edge_gateway::auth::AuthConfig;
use mcp_edge_gateway::config::{read_groups, read_sampling, read_upstream};
use mcp_edge_gateway::{Era, GatewayConfig, Namespacing, UpstreamSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub use mcp_edge_gateway::config::Transport;

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub gateway: GatewayConfig,
    /// Same order as `gateway.upstreams`.
    pub transports: Vec<Transport>,
    pub listen: Option<String>,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// Where the SQLite store lives (`--data-dir` wins).
    pub data_dir: Option<std::path::PathBuf>,
    /// Cap on the SQLite file.
    pub store_max_bytes: Option<u64>,
    /// Sampling providers' API keys, by provider name, read from the environment or files at start.
    pub api_keys: ApiKeys,
    /// `[auth]`: who may use the HTTP and WebSocket faces (secrets read). An empty `audience` is
    /// filled from the listen address when serving.
    pub auth: Option<AuthConfig>,
    /// Each upstream's OAuth client-credentials settings, same order as `transports`.
    pub upstream_oauth: Vec<Option<OAuthClient>>,
}

/// `oauth = { token_url, client_id, client_secret_env | client_secret_file, scopes, resource }`: the
/// gateway's own credential for an upstream, by the client-credentials grant.
#[derive(Clone)]
pub struct OAuthClient {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OAuthClient({} at {}, <redacted>)", self.client_id, self.token_url)
    }
}

/// API keys, kept out of `Debug` output and logs.
#[derive(Clone, Default)]
pub struct ApiKeys(pub BTreeMap<String, String>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys().map(|k| format!("{k}: <redacted>"))).finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    server: TomlServer,
    #[serde(default)]
    namespace: TomlNamespace,
    #[serde(default)]
    upstreams: toml::Table,
    #[serde(default)]
    storage: TomlStorage,
    #[serde(default)]
    cache: TomlCache,
    /// Read by the core (`config::read_groups`).
    #[serde(default)]
    groups: toml::Table,
    /// Read by the core (`config::read_sampling`).
    #[serde(default)]
    sampling: Option<toml::Value>,
    /// Read by the core (`auth::read_auth`), secrets by [`crate::secrets`].
    auth: Option<toml::Value>,
    /// Read by the core (`policy::read_policy`).
    policy: Option<toml::Value>,
    /// Read by the core (`limits::read_limits`).
    limits: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlStorage {
    data_dir: Option<std::path::PathBuf>,
    max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlCache {
    max_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlServer {
    listen: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    max_body_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    instructions: Option<String>,
    /// An aggregated list page takes no further upstream's page once it holds this many items.
    list_page_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlNamespace {
    separator: Option<String>,
    /// Default for upstreams without their own `prefix`: true prefixes with the upstream name.
    prefix: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct JsonFile {
    #[serde(rename = "mcpServers")]
    mcp_servers: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    gateway: Option<serde_json::Value>,
}

impl HostConfig {
    /// The embedded default: the built-in edge tools, nothing else.
    pub fn embedded_default() -> HostConfig {
        HostConfig {
            gateway: GatewayConfig {
                upstreams: vec![UpstreamSpec {
                    name: "edge".into(),
                    prefix: None,
                    era: Some(Era::Legacy),
                    ..Default::default()
                }],
                instructions: Some(
                    "Edge device tools: system info, load, memory, temperatures, disks and network.".into(),
                ),
                ..Default::default()
            },
            transports: vec![Transport::Builtin("edge".into())],
            listen: None,
            allowed_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            data_dir: None,
            store_max_bytes: None,
            api_keys: ApiKeys::default(),
            auth: None,
            upstream_oauth: vec![None],
        }
    }

    pub fn load(path: &Path) -> Result<HostConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let is_json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
        let mut cfg = if is_json { Self::from_json(&text) } else { Self::from_toml(&text) }
            .map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.gateway.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        let env = |k: &str| std::env::var(k).ok();
        cfg.read_api_keys(is_json, &env).map_err(|e| format!("{}: {e}", path.display()))?;
        cfg.read_secrets(is_json, &text, &env).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Each sampling provider's API key, from the variable or file its entry names. A variable that
    /// is not set, or a file that cannot be read or is empty, stops the start-up naming the key.
    pub fn read_api_keys(&mut self, json: bool, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        let at = if json { "gateway.sampling.providers" } else { "sampling.providers" };
        let (env_key, file_key) = if json { ("apiKeyEnv", "apiKeyFile") } else { ("api_key_env", "api_key_file") };
        for p in &self.gateway.sampling.providers {
            let key = if let Some(var) = &p.api_key_env {
                match env(var) {
                    Some(v) if !v.trim().is_empty() => v.trim().to_string(),
                    _ => return Err(format!("{at}.{}.{env_key}: the environment variable {var} is not set", p.name)),
                }
            } else if let Some(file) = &p.api_key_file {
                match std::fs::read_to_string(file) {
                    Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
                    Ok(_) => return Err(format!("{at}.{}.{file_key}: {file} is empty", p.name)),
                    Err(e) => return Err(format!("{at}.{}.{file_key}: cannot read {file}: {e}", p.name)),
                }
            } else {
                continue;
            };
            self.api_keys.0.insert(p.name.clone(), key);
        }
        Ok(())
    }

    /// The secrets the file refers to: static tokens, `${...}` in upstream headers, OAuth client
    /// secrets. Anything missing stops the start-up, naming its key.
    pub fn read_secrets(&mut self, json: bool, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        let raw: serde_json::Value = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            serde_json::to_value(toml::from_str::<toml::Table>(text).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?
        };
        let (auth_at, ups_at) = if json { ("gateway.auth", "mcpServers") } else { ("auth", "upstreams") };
        let auth = if json { raw.pointer("/gateway/auth") } else { raw.get("auth") };
        if let (Some(a), Some(cfg)) = (auth, self.auth.as_mut()) {
            let entries = mcp_edge_gateway::auth::read_token_entries(a).map_err(|e| e.replacen("auth", auth_at, 1))?;
            cfg.tokens = crate::secrets::tokens(&format!("{auth_at}.tokens"), &entries, env)?;
        }
        let ups = raw.get(ups_at).and_then(|v| v.as_object());
        for (i, spec) in self.gateway.upstreams.iter().enumerate() {
            let entry = ups.and_then(|u| u.get(&spec.name));
            let at = format!("{ups_at}.{}", spec.name);
            if let Transport::Http { headers, .. }
            | Transport::Sse { headers, .. }
            | Transport::WebSocket { headers, .. } = &mut self.transports[i]
            {
                for (k, v) in headers.iter_mut() {
                    let key = format!("{at}.headers.{k}");
                    *v = crate::secrets::expand(&key, v, env)?;
                    // Checked here, so that a bad one stops the start-up instead of failing every
                    // call; the value is not echoed (it may be a secret).
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        return Err(format!("{key}: not a valid HTTP header name"));
                    }
                    if http::HeaderValue::from_str(v).is_err() {
                        return Err(format!(
                            "{key}: the value is not a valid HTTP header value (a line break or another control character?)"
                        ));
                    }
                }
            }
            self.upstream_oauth[i] = match entry.and_then(|e| e.get("oauth")) {
                None => None,
                Some(o) => Some(read_oauth(&format!("{at}.oauth"), o, env)?),
            };
            if self.upstream_oauth[i].is_some() && !matches!(self.transports[i], Transport::Http { .. }) {
                return Err(format!("{at}.oauth: only Streamable HTTP upstreams take an OAuth credential"));
            }
        }
        Ok(())
    }

    pub fn from_toml(text: &str) -> Result<HostConfig, String> {
        let f: TomlFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut cfg = HostConfig::embedded_default();
        cfg.gateway.upstreams.clear();
        cfg.transports.clear();
        cfg.upstream_oauth.clear();
        cfg.gateway.instructions = f.server.instructions;
        if let Some(t) = f.server.request_timeout_ms {
            cfg.gateway.request_timeout_ms = t;
        }
        if let Some(s) = f.namespace.separator {
            cfg.gateway.namespacing = Namespacing { separator: s };
        }
        cfg.listen = f.server.listen;
        cfg.allowed_origins = f.server.allowed_origins;
        if let Some(m) = f.server.max_body_bytes {
            cfg.max_body_bytes = m;
        }
        cfg.data_dir = f.storage.data_dir;
        cfg.store_max_bytes = f.storage.max_bytes;
        if let Some(m) = f.cache.max_bytes {
            cfg.gateway.cache_max_bytes = m;
        }
        if let Some(n) = f.server.list_page_size {
            cfg.gateway.list_page_size = n.max(1);
        }
        let default_prefix = f.namespace.prefix.unwrap_or(true);
        for (name, v) in f.upstreams {
            let v = serde_json::to_value(v).map_err(|e| format!("upstreams.{name}: {e}"))?;
            cfg.add(&format!("upstreams.{name}"), &name, &v, default_prefix)?;
        }
        let groups = serde_json::to_value(f.groups).map_err(|e| format!("groups: {e}"))?;
        read_groups("groups", &groups, &mut cfg.gateway)?;
        if let Some(sp) = f.sampling {
            let sp = serde_json::to_value(sp).map_err(|e| format!("sampling: {e}"))?;
            cfg.gateway.sampling = read_sampling("sampling", &sp, &[])?;
        }
        let json = |v: Option<toml::Value>| v.map(serde_json::to_value).transpose().map_err(|e| e.to_string());
        cfg.read_security(json(f.auth)?.as_ref(), json(f.policy)?.as_ref(), json(f.limits)?.as_ref(), "")?;
        Ok(cfg)
    }

    pub fn from_json(text: &str) -> Result<HostConfig, String> {
        let f: JsonFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut cfg = HostConfig::embedded_default();
        cfg.gateway.upstreams.clear();
        cfg.gateway.instructions = None;
        cfg.transports.clear();
        cfg.upstream_oauth.clear();
        let mut default_prefix = true;
        let gateway = f.gateway.clone();
        if let Some(g) = f.gateway {
            if let Some(s) = g.get("separator").and_then(|v| v.as_str()) {
                cfg.gateway.namespacing = Namespacing { separator: s.into() };
            }
            if let Some(p) = g.get("prefix").and_then(|v| v.as_bool()) {
                default_prefix = p;
            }
            if let Some(i) = g.get("instructions").and_then(|v| v.as_str()) {
                cfg.gateway.instructions = Some(i.to_string());
            }
            if let Some(o) = g.get("allowedOrigins").and_then(|v| v.as_array()) {
                cfg.allowed_origins = o.iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
            }
            if let Some(st) = g.get("storage") {
                cfg.store_max_bytes = st.get("maxBytes").and_then(|v| v.as_u64());
                cfg.data_dir = st.get("dataDir").and_then(|v| v.as_str()).map(Into::into);
            }
            if let Some(m) = g.pointer("/cache/maxBytes").and_then(|v| v.as_u64()) {
                cfg.gateway.cache_max_bytes = m as usize;
            }
            if let Some(n) = g.get("listPageSize").and_then(|v| v.as_u64()) {
                cfg.gateway.list_page_size = (n as usize).max(1);
            }
        }
        for (name, v) in f.mcp_servers {
            cfg.add(&format!("mcpServers.{name}"), &name, &v, default_prefix)?;
        }
        if let Some(g) = gateway {
            if let Some(groups) = g.get("groups") {
                read_groups("gateway.groups", groups, &mut cfg.gateway)?;
            }
            if let Some(sp) = g.get("sampling") {
                cfg.gateway.sampling = read_sampling("gateway.sampling", sp, &[])?;
            }
            cfg.read_security(g.get("auth"), g.get("policy"), g.get("limits"), "gateway.")?;
        }
        Ok(cfg)
    }

    /// `[auth]`, `[policy]` and `[limits]`, read by the core; `at` is their parent in the file.
    fn read_security(
        &mut self,
        auth: Option<&serde_json::Value>,
        policy: Option<&serde_json::Value>,
        limits: Option<&serde_json::Value>,
        at: &str,
    ) -> Result<(), String> {
        let named = |e: String| format!("{at}{e}");
        if let Some(a) = auth {
            self.auth = Some(mcp_edge_gateway::auth::read_auth(a, "").map_err(named)?);
        }
        self.gateway.policy = mcp_edge_gateway::policy::read_policy(policy).map_err(named)?;
        self.gateway.limits = mcp_edge_gateway::limits::read_limits(limits).map_err(named)?;
        Ok(())
    }

    /// One upstream entry (read by the core, as for every format), if this host can reach it.
    fn add(&mut self, at: &str, name: &str, v: &serde_json::Value, default_prefix: bool) -> Result<(), String> {
        let Some((spec, transport)) = read_upstream(at, name, v, default_prefix)? else { return Ok(()) };
        match &transport {
            Transport::Builtin(b) if b != "edge" => {
                return Err(format!("{at}.builtin: the built-in upstream is \"edge\", not {b:?}"))
            }
            _ => {}
        }
        self.gateway.upstreams.push(spec);
        self.transports.push(transport);
        self.upstream_oauth.push(None);
        Ok(())
    }
}

/// An upstream's `oauth` table.
fn read_oauth(at: &str, v: &serde_json::Value, env: &dyn Fn(&str) -> Option<String>) -> Result<OAuthClient, String> {
    use mcp_edge_gateway::auth::{is_url, Secret};
    let o = v.as_object().ok_or_else(|| format!("{at}: must be a table"))?;
    let s = |k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_string);
    for k in o.keys() {
        if !matches!(
            k.as_str(),
            "token_url" | "client_id" | "client_secret_env" | "client_secret_file" | "scopes" | "resource"
        ) {
            return Err(format!(
                "{at}.{k}: unknown key (oauth has token_url, client_id, client_secret_env or client_secret_file, scopes, resource)"
            ));
        }
    }
    let token_url = s("token_url")
        .filter(|u| is_url(u))
        .ok_or_else(|| format!("{at}.token_url: an https:// URL is required (http:// only on loopback)"))?;
    let client_id = s("client_id").filter(|c| !c.is_empty()).ok_or_else(|| format!("{at}.client_id: required"))?;
    let (key, src) = match (s("client_secret_env"), s("client_secret_file")) {
        (Some(e), None) => ("client_secret_env", Secret::Env(e)),
        (None, Some(f)) => ("client_secret_file", Secret::File(f)),
        _ => return Err(format!("{at}: give exactly one of client_secret_env or client_secret_file")),
    };
    let client_secret = crate::secrets::read(&format!("{at}.{key}"), &src, env)?;
    let scopes = match o.get("scopes") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| format!("{at}.scopes: must be an array of strings"))?,
    };
    Ok(OAuthClient { token_url, client_id, client_secret, scopes, resource: s("resource") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_policy_and_limits_are_read_and_bad_ones_name_their_key() {
        let text = r#"
            [auth]
            issuer = "https://auth.example"
            audience = "https://pi.local:8787/mcp"
            [[auth.tokens]]
            principal = "kitchen-agent"
            token_env = "GW_TOKEN_KITCHEN"
            scopes = ["mcp"]
            [[policy.rules]]
            principals = ["kitchen-agent"]
            allow = ["edge__*"]
            [limits]
            requests_per_minute = 60
            [upstreams.w]
            url = "http://127.0.0.1:9/mcp"
            headers = { Authorization = "Bearer ${UP}" }
        "#;
        let mut c = HostConfig::from_toml(text).unwrap();
        let env = |k: &str| match k {
            "GW_TOKEN_KITCHEN" => Some("kitchen-token-0123456789".to_string()),
            "UP" => Some("up-secret".to_string()),
            _ => None,
        };
        c.read_secrets(false, text, &env).unwrap();
        let a = c.auth.as_ref().unwrap();
        assert_eq!(
            (a.issuer.as_deref(), a.tokens[0].principal.as_str()),
            (Some("https://auth.example"), "kitchen-agent")
        );
        assert_eq!(c.gateway.policy.rules.len(), 1);
        assert_eq!(c.gateway.limits.requests_per_minute, Some(60));
        assert!(
            matches!(&c.transports[0], Transport::Http { headers, .. } if headers["Authorization"] == "Bearer up-secret")
        );
        assert!(
            !format!("{c:?}").contains("kitchen-token") && !format!("{c:?}").contains("up-secret"),
            "secrets stay out of Debug"
        );
        let e = c.read_secrets(false, text, &|_| None).unwrap_err();
        assert!(e.contains("auth.tokens[0].token_env") && e.contains("GW_TOKEN_KITCHEN"), "{e}");
        // Headers that HTTP cannot carry stop the start-up, naming the key, never the value.
        let broken = |k: &str| match k {
            "UP" => Some("up-secret\r\nX-Injected: 1".to_string()),
            _ => env(k),
        };
        let mut c2 = HostConfig::from_toml(text).unwrap();
        let e = c2.read_secrets(false, text, &broken).unwrap_err();
        assert!(e.starts_with("upstreams.w.headers.Authorization: the value is not a valid"), "{e}");
        assert!(!e.contains("up-secret"), "{e}");
        let spaced = text.replace("headers = { Authorization", "headers = { \"Bad Name\"");
        let mut c3 = HostConfig::from_toml(&spaced).unwrap();
        let e = c3.read_secrets(false, &spaced, &env).unwrap_err();
        assert_eq!(e, "upstreams.w.headers.Bad Name: not a valid HTTP header name");
        let bad = text.replace("allow = ", "alow = ");
        assert!(HostConfig::from_toml(&bad).unwrap_err().contains("policy.rules[0].alow"));
        let j = r#"{"mcpServers": {}, "gateway": {"policy": {"rules": [{"principals": ["a"]}]}}}"#;
        assert!(HostConfig::from_json(j).unwrap_err().contains("gateway.policy.rules[0]"));
        let j = r#"{"mcpServers": {}, "gateway": {"limits": {"requests_per_minute": "x"}}}"#;
        assert!(HostConfig::from_json(j).unwrap_err().contains("gateway.limits.requests_per_minute"));
    }

    #[test]
    fn reads_claude_desktop_json() {
        let c = HostConfig::from_json(
            r#"{"mcpServers":{
                "everything":{"command":"npx","args":["-y","@modelcontextprotocol/server-everything"],"env":{"A":"1"}},
                "remote":{"url":"http://127.0.0.1:9/mcp","headers":{"Authorization":"Bearer x"}},
                "old":{"url":"http://127.0.0.1:9/sse"},
                "off":{"command":"x","disabled":true},
                "queued":{"command":"y","offlineQueue":["a"]}}}"#,
        )
        .unwrap();
        let names: Vec<_> = c.gateway.upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["everything", "remote", "old", "queued"]);
        assert!(
            matches!(&c.transports[0], Transport::Stdio { command, args, .. } if command == "npx" && args.len() == 2)
        );
        assert!(matches!(&c.transports[1], Transport::Http { headers, .. } if headers["Authorization"] == "Bearer x"));
        assert!(matches!(&c.transports[2], Transport::Sse { .. }));
        assert_eq!(c.gateway.upstreams[0].prefix.as_deref(), Some("everything"));
        assert_eq!(c.gateway.upstreams[3].offline_queue, ["a"]);
    }

    #[test]
    fn reads_queue_cache_and_storage_settings() {
        let c = HostConfig::from_toml(
            r#"
            [storage]
            max_bytes = 65536
            [cache]
            max_bytes = 1000
            [upstreams.a]
            url = "http://x/mcp"
            offline_queue = ["t", "@idempotentHint"]
            cache_ttl_ms = 5000
            [upstreams.b]
            url = "http://y/mcp"
            cache_ttl_ms = { "resources/read" = 10 }
            "#,
        )
        .unwrap();
        assert_eq!(c.store_max_bytes, Some(65536));
        assert_eq!(c.gateway.cache_max_bytes, 1000);
        assert_eq!(c.gateway.upstreams[0].offline_queue, ["t", "@idempotentHint"]);
        assert_eq!(c.gateway.upstreams[0].ttl_for("tools/list"), Some(5000));
        assert_eq!(c.gateway.upstreams[1].ttl_for("resources/read"), Some(10));
        assert_eq!(c.gateway.upstreams[1].ttl_for("tools/list"), None);
        let j = HostConfig::from_json(
            r#"{"mcpServers": {"a": {"url": "http://x/mcp", "offlineQueue": ["*"], "cacheTtlMs": {"tools/list": 7}}},
                "gateway": {"storage": {"maxBytes": 4096}}}"#,
        )
        .unwrap();
        assert_eq!(j.store_max_bytes, Some(4096));
        assert_eq!(j.gateway.upstreams[0].offline_queue, ["*"]);
        assert_eq!(j.gateway.upstreams[0].ttl_for("tools/list"), Some(7));
    }

    #[test]
    fn reads_toml_with_prefix_options() {
        let c = HostConfig::from_toml(
            r#"
            [server]
            listen = "0.0.0.0:9000"
            [namespace]
            separator = "."
            [upstreams.a]
            command = "a"
            prefix = false
            [upstreams.b]
            url = "http://x/mcp"
            prefix = "bee"
            era = "modern"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(c.gateway.namespacing.separator, ".");
        assert_eq!(c.gateway.upstreams[0].prefix, None);
        assert_eq!(c.gateway.upstreams[1].prefix.as_deref(), Some("bee"));
        assert_eq!(c.gateway.upstreams[1].era, Some(Era::Modern));
    }

    #[test]
    fn rejects_ambiguous_entries() {
        assert!(HostConfig::from_toml("[upstreams.a]\ncommand='x'\nurl='http://y'\n").is_err());
        assert!(HostConfig::from_toml("[upstreams.a]\nera='new'\ncommand='x'\n").is_err());
        assert!(HostConfig::from_toml("[bogus]\n").is_err());
    }

    #[test]
    fn both_formats_refuse_a_bad_entry_with_the_same_message_naming_the_key() {
        let t = HostConfig::from_toml("[upstreams.a]\ncommand = 'x'\nera = 'new'\n").unwrap_err();
        let j = HostConfig::from_json(r#"{"mcpServers": {"a": {"command": "x", "era": "new"}}}"#).unwrap_err();
        assert_eq!(t.strip_prefix("upstreams.a.era: "), j.strip_prefix("mcpServers.a.era: "), "{t} / {j}");
        assert!(t.starts_with("upstreams.a.era: must be"), "{t}");
        let ws = HostConfig::from_json(r#"{"mcpServers": {"w": {"url": "ws://h/ws"}}}"#).unwrap();
        assert!(matches!(&ws.transports[0], Transport::WebSocket { url, .. } if url == "ws://h/ws"));
        let b = HostConfig::from_toml("[upstreams.e]\nbuiltin = 'kitchen'\n").unwrap_err();
        assert!(b.starts_with("upstreams.e.builtin:"), "{b}");
    }

    #[test]
    fn reads_groups_and_sampling_in_both_formats() {
        let t = HostConfig::from_toml(
            r#"
            [server]
            list_page_size = 50
            [upstreams.local]
            command = "x"
            [upstreams.cloud]
            url = "http://c/mcp"
            [groups.search]
            members = ["local", "cloud"]
            first_byte_timeout_ms = 2000
            breaker = { failures = 3 }
            [sampling]
            order = ["local", "cloud", "client"]
            [sampling.providers.local]
            url = "http://127.0.0.1:8080/v1"
            model = "smollm2-135m"
            [sampling.providers.cloud]
            url = "https://llm.example/v1"
            api_key_env = "CLOUD_LLM_KEY"
            model = "big-model"
            "#,
        )
        .unwrap();
        let j = HostConfig::from_json(
            r#"{"mcpServers": {"local": {"command": "x"}, "cloud": {"url": "http://c/mcp"}},
                "gateway": {"listPageSize": 50,
                  "groups": {"search": {"members": ["local", "cloud"], "firstByteTimeoutMs": 2000, "breaker": {"failures": 3}}},
                  "sampling": {"order": ["local", "cloud", "client"], "providers": {
                    "local": {"url": "http://127.0.0.1:8080/v1", "model": "smollm2-135m"},
                    "cloud": {"url": "https://llm.example/v1", "apiKeyEnv": "CLOUD_LLM_KEY", "model": "big-model"}}}}}"#,
        )
        .unwrap();
        for c in [&t, &j] {
            assert_eq!(c.gateway.list_page_size, 50);
            let members: Vec<&str> =
                c.gateway.groups[0].members.iter().map(|&m| c.gateway.upstreams[m].name.as_str()).collect();
            assert_eq!(members, ["local", "cloud"]);
            assert_eq!(c.gateway.groups[0].breaker.failures, 3);
            assert!(c.gateway.upstreams.iter().all(|u| u.prefix.as_deref() == Some("search")));
            assert_eq!(c.gateway.sampling.order, ["local", "cloud", "client"]);
        }
        assert_eq!(t.gateway.groups[0].breaker, j.gateway.groups[0].breaker);
        let sorted = |c: &HostConfig| {
            let mut p = c.gateway.sampling.providers.clone();
            p.sort_by(|a, b| a.name.cmp(&b.name));
            p
        };
        assert_eq!(sorted(&t), sorted(&j));
        let mut t2 = t.clone();
        let e = t2.read_api_keys(false, &|_| None).unwrap_err();
        assert_eq!(e, "sampling.providers.cloud.api_key_env: the environment variable CLOUD_LLM_KEY is not set");
        let mut j2 = j.clone();
        assert!(j2
            .read_api_keys(true, &|_| None)
            .unwrap_err()
            .starts_with("gateway.sampling.providers.cloud.apiKeyEnv:"));
        let mut ok = t.clone();
        ok.read_api_keys(false, &|k| (k == "CLOUD_LLM_KEY").then(|| "sk-secret".to_string())).unwrap();
        assert_eq!(ok.api_keys.0["cloud"], "sk-secret");
        assert!(!format!("{ok:?}").contains("sk-secret"), "keys stay out of Debug output");
    }

    #[test]
    fn bad_groups_and_providers_are_refused_naming_the_key() {
        let base = "[upstreams.a]\ncommand = 'x'\n[upstreams.b]\ncommand = 'y'\n";
        let e = |extra: &str| HostConfig::from_toml(&format!("{base}{extra}")).unwrap_err();
        assert_eq!(e("[groups.g]\nmembers = ['a', 'zz']\n"), "groups.g.members[1]: no upstream is named \"zz\"");
        assert!(e("[groups.g]\nmembers = ['a']\n[groups.h]\nmembers = ['a']\n").contains("already a member of group"));
        assert!(e("[groups.a]\nmembers = ['b']\n").starts_with("groups.a: an upstream has this name"));
        assert!(e("[groups.g]\nmembers = ['a']\nbreaker = { error_rate = 2 }\n")
            .starts_with("groups.g.breaker.error_rate:"));
        assert!(e("[sampling.providers.local]\nmodel = 'm'\n").starts_with("sampling.providers.local.url: required"));
    }
}
