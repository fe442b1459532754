//! What the engine needs to know about its upstreams. Transport details (commands, URLs, headers) are
//! the host's business; the core sees names, namespacing and era preferences.

use crate::protocol::Era;

pub mod entry;
pub use entry::{read_upstream, Transport};

/// How exposed names are built from upstream names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespacing {
    /// Goes between prefix and name: `everything__echo`. Tool names allow `[A-Za-z0-9_.-]`.
    pub separator: String,
}

impl Default for Namespacing {
    fn default() -> Self {
        Namespacing { separator: "__".into() }
    }
}

/// One upstream as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// Unique name (the key in the config file).
    pub name: String,
    /// Prefix for its tool and prompt names; `None` exposes them unprefixed.
    pub prefix: Option<String>,
    /// Which era to speak; `None` probes with `server/discover` and falls back to `initialize`.
    pub era: Option<Era>,
    /// Tools whose calls are queued durably while the upstream is unreachable: the upstream's own
    /// tool names, `"*"` for every tool, or `"@<annotation>"` for tools whose annotation of that name
    /// is true (`"@idempotentHint"`).
    pub offline_queue: Vec<String>,
    /// How long a legacy upstream's cacheable results stay fresh, per method (`"tools/list"`,
    /// `"resources/read"`, ...; `"*"` for every method). Modern upstreams say it with `ttlMs`, which
    /// wins. Whatever the TTL, results are kept to be served (marked stale) while it is unreachable.
    pub cache_ttl_ms: Vec<(String, u64)>,
}

impl UpstreamSpec {
    /// An upstream prefixed with its own name, era probed.
    pub fn named(name: &str) -> Self {
        UpstreamSpec { name: name.into(), prefix: Some(name.into()), ..Default::default() }
    }

    /// Whether calls of this tool (the upstream's own name, with its `annotations`) may be queued.
    pub fn queues(&self, tool: &str, annotations: Option<&serde_json::Value>) -> bool {
        self.offline_queue.iter().any(|rule| match rule.strip_prefix('@') {
            Some(hint) => annotations.and_then(|a| a.get(hint)).and_then(serde_json::Value::as_bool) == Some(true),
            None => rule == "*" || rule == tool,
        })
    }

    /// The configured lifetime of a legacy upstream's result for `method`.
    pub fn ttl_for(&self, method: &str) -> Option<u64> {
        let find = |m: &str| self.cache_ttl_ms.iter().find(|(k, _)| k == m).map(|(_, v)| *v);
        find(method).or_else(|| find("*"))
    }
}

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub server_name: String,
    pub server_version: String,
    pub instructions: Option<String>,
    pub namespacing: Namespacing,
    pub upstreams: Vec<UpstreamSpec>,
    /// A forwarded request with no answer after this long fails with -32001 and is cancelled upstream.
    pub request_timeout_ms: u64,
    /// How long the `server/discover` probe may take before we fall back to `initialize`.
    pub probe_timeout_ms: u64,
    /// At start, client requests wait up to this long for upstreams that are still connecting, so the
    /// first `tools/list` is complete.
    pub startup_grace_ms: u64,
    /// How long a parked multi-round-trip call waits for the client's retry.
    pub input_wait_ms: u64,
    /// The cache's size cap (keys plus JSON text), beyond which the least recently used entries go.
    pub cache_max_bytes: usize,
    /// At most this many calls wait in the offline queue (across upstreams); more are refused.
    pub queue_max_entries: usize,
    /// How long a finished queued call's result is kept for retrieval, unless the client asked for
    /// another task TTL.
    pub queue_result_ttl_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            server_name: "mcp-edge-gateway".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            instructions: None,
            namespacing: Namespacing::default(),
            upstreams: Vec::new(),
            request_timeout_ms: 120_000,
            probe_timeout_ms: 5_000,
            startup_grace_ms: 15_000,
            input_wait_ms: 600_000,
            cache_max_bytes: 8 * 1024 * 1024,
            queue_max_entries: 10_000,
            queue_result_ttl_ms: 24 * 3_600_000,
        }
    }
}

/// A configuration the engine refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("upstream name {0:?} is used twice")]
    DuplicateName(String),
    #[error("upstreams {0:?} and {1:?} use the same prefix {2:?}")]
    DuplicatePrefix(String, String, String),
    #[error("upstream {0:?}: a prefix may hold only A-Z a-z 0-9 _ . - and must not be empty")]
    BadPrefix(String),
    #[error("the namespace separator must be 1-4 characters of A-Z a-z 0-9 _ . -")]
    BadSeparator,
}

fn name_chars_ok(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sep = &self.namespacing.separator;
        if !name_chars_ok(sep) || sep.len() > 4 {
            return Err(ConfigError::BadSeparator);
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            for other in &self.upstreams[..i] {
                if other.name == u.name {
                    return Err(ConfigError::DuplicateName(u.name.clone()));
                }
                if let (Some(a), Some(b)) = (&other.prefix, &u.prefix) {
                    if a == b {
                        return Err(ConfigError::DuplicatePrefix(other.name.clone(), u.name.clone(), a.clone()));
                    }
                }
            }
            if let Some(p) = &u.prefix {
                if !name_chars_ok(p) {
                    return Err(ConfigError::BadPrefix(u.name.clone()));
                }
            }
        }
        Ok(())
    }
}
