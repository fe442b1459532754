//! What the engine needs to know about its upstreams. Transport details (commands, URLs, headers) are
//! the host's business; the core sees names, namespacing and era preferences.

use crate::prelude::*;

use crate::protocol::Era;

pub mod entry;
pub mod groups;
pub mod sampling;
pub use entry::{read_upstream, Transport};
pub use groups::read_groups;
pub use sampling::{read_sampling, ProviderSpec, SamplingConfig};

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
    /// An aggregated list page stops taking further upstreams' pages once it holds this many items.
    pub list_page_size: usize,
    /// Upstream groups: members that serve the same items, in order of preference.
    pub groups: Vec<GroupSpec>,
    /// Who answers an upstream's sampling request.
    pub sampling: SamplingConfig,
    /// Which exposed names each caller may see and use.
    pub policy: crate::policy::Policy,
    pub limits: crate::limits::Limits,
}

/// A named, ordered list of upstreams that serve the same tools, prompts and resources. Clients see
/// one namespace, the group's; each call goes to the first healthy member that has the item.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    /// Upstream indexes, in order of preference.
    pub members: Vec<usize>,
    /// Total time a call may take on one member, per method (`"*"` for every method).
    pub timeout_ms: Vec<(String, u64)>,
    /// Time to the member's first sign of life for a call (its answer, progress or a request of its
    /// own for it), per method.
    pub first_byte_timeout_ms: Vec<(String, u64)>,
    pub breaker: BreakerPolicy,
    pub retry: RetryPolicy,
}

impl GroupSpec {
    fn lookup(t: &[(String, u64)], method: &str) -> Option<u64> {
        let find = |m: &str| t.iter().find(|(k, _)| k == m).map(|(_, v)| *v);
        find(method).or_else(|| find("*"))
    }

    pub fn total_for(&self, method: &str) -> Option<u64> {
        Self::lookup(&self.timeout_ms, method)
    }

    pub fn first_byte_for(&self, method: &str) -> Option<u64> {
        Self::lookup(&self.first_byte_timeout_ms, method)
    }
}

/// When a member is ejected and let back (see [`crate::health`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// Or this share of failed calls in the window, once it holds `min_calls`.
    pub error_rate: f64,
    pub window_ms: u64,
    pub min_calls: u32,
    /// The first ejection's length; each further one in a row doubles it, up to `max_cooldown_ms`.
    pub cooldown_ms: u64,
    pub max_cooldown_ms: u64,
    /// How long the probe sent at the end of a cooldown may take.
    pub probe_timeout_ms: u64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            error_rate: 0.5,
            window_ms: 30_000,
            min_calls: 10,
            cooldown_ms: 5_000,
            max_cooldown_ms: 60_000,
            probe_timeout_ms: 5_000,
        }
    }
}

/// Extra attempts for calls that may have run (safe ones only) and their budget.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Extra attempts per call, across members.
    pub attempts: u32,
    /// Before another attempt on the same member: exponential from this, jittered.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Extra attempts stay under this share of the group's first attempts in the budget window...
    pub budget_ratio: f64,
    /// ...plus this many.
    pub budget_min: u32,
    pub budget_window_ms: u64,
    /// Tools (their own names) whose calls are safe to run twice, beyond those annotated
    /// `readOnlyHint` or `idempotentHint`.
    pub safe_tools: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 2,
            backoff_ms: 100,
            max_backoff_ms: 2_000,
            budget_ratio: 0.2,
            budget_min: 3,
            budget_window_ms: 10_000,
            safe_tools: Vec::new(),
        }
    }
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
            list_page_size: 500,
            groups: Vec::new(),
            sampling: SamplingConfig::default(),
            policy: Default::default(),
            limits: Default::default(),
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
                    let same_group = self.groups.iter().any(|g| {
                        g.members.contains(&i) && g.members.iter().any(|&m| self.upstreams[m].name == other.name)
                    });
                    if a == b && !same_group {
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
