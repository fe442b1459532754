//! What a caller may do, decided before anything goes upstream: the principal its host
//! authenticated, the tool policy over exposed names (lists filtered, calls refused), the rate and
//! in-flight limits, and `tools/call` arguments checked against the tool's `inputSchema`.

use crate::prelude::*;

use super::*;
use crate::principal::Principal;
use crate::validate::ArgumentValidator;

impl Gateway {
    /// The host authenticated session `s` as `p`: policy and limits use it, and it is the session's
    /// auth context (private cache entries and queued calls are per principal).
    pub fn set_session_principal(&mut self, s: SessionId, p: Principal) {
        if let Some(x) = self.sessions.get_mut(&s) {
            x.auth = format!("principal:{}", p.name);
            x.principal = Some(p);
        }
    }

    pub fn session_principal(&self, s: SessionId) -> Option<&Principal> {
        self.sessions.get(&s).and_then(|x| x.principal.as_ref())
    }

    /// Sessions open for the principal named `name`.
    pub fn sessions_of(&self, name: &str) -> usize {
        self.sessions.values().filter(|x| x.principal.as_ref().is_some_and(|p| p.name == name)).count()
    }

    /// Check `tools/call` arguments with `v` from now on.
    pub fn set_validator(&mut self, v: Box<dyn ArgumentValidator>) {
        self.validator = Some(v);
    }

    /// Take a token from the caller's bucket, or the error that says when to come back.
    pub(super) fn over_rate(&mut self, now: Millis, s: SessionId) -> Option<ErrorObject> {
        let key = match self.session_principal(s) {
            Some(p) => format!("p:{}", p.name),
            None => format!("s:{}", s.0),
        };
        let over = self.buckets.take(&self.cfg.limits, &key, now).err()?;
        let secs = over.retry_after_ms.div_ceil(1000);
        Some(
            err(code::RATE_LIMITED, format!("Rate limit: {} requests per minute; retry in {secs} s", over.limit))
                .with_data(json!({"retryAfterMs": over.retry_after_ms, "limit": over.limit, "windowS": over.window_s})),
        )
    }

    /// The session's principal has as many initialized sessions as it may.
    pub(super) fn over_sessions(&self, s: SessionId) -> Option<ErrorObject> {
        let max = self.cfg.limits.max_sessions_per_principal?;
        let name = &self.session_principal(s)?.name;
        let n = self
            .sessions
            .iter()
            .filter(|(x, v)| **x != s && v.legacy_initialized && v.principal.as_ref().is_some_and(|p| &p.name == name))
            .count();
        (n >= max).then(|| {
            err(code::RATE_LIMITED, format!("Too many sessions for principal {name:?} (limit {max}); end one first"))
                .with_data(json!({"retryAfterMs": 60_000, "limit": max}))
        })
    }

    /// The session has as many calls in flight as it may.
    pub(super) fn over_in_flight(&self, s: SessionId) -> Option<ErrorObject> {
        let max = self.cfg.limits.max_in_flight_per_session?;
        let n = self.by_client.keys().filter(|(x, _)| *x == s).count();
        (n >= max).then(|| {
            err(code::RATE_LIMITED, format!("Too many calls in flight on this session (limit {max})"))
                .with_data(json!({"retryAfterMs": 1000, "limit": max}))
        })
    }

    /// Whether session `s` may see and use the exposed name (or URI).
    pub(super) fn allowed(&self, s: SessionId, name: &str) -> bool {
        let p = &self.cfg.policy;
        p.is_empty() || p.allows(self.session_principal(s), name)
    }

    /// The policy's refusal of a routed request, if it refuses it.
    pub(super) fn forbidden(&self, s: SessionId, m: &str, params: &Value) -> Option<ErrorObject> {
        if self.cfg.policy.is_empty() {
            return None;
        }
        let s_ = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let (what, name) = match m {
            method::TOOLS_CALL => ("tool", s_(params.get("name"))),
            method::PROMPTS_GET => ("prompt", s_(params.get("name"))),
            method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => {
                ("resource", s_(params.get("uri")))
            }
            method::COMPLETE => match params.pointer("/ref/type").and_then(Value::as_str) {
                Some("ref/prompt") => ("prompt", s_(params.pointer("/ref/name"))),
                _ => ("resource", s_(params.pointer("/ref/uri"))),
            },
            _ => return None,
        };
        let name = name?;
        if self.allowed(s, &name) {
            return None;
        }
        let who = self.session_principal(s).map_or("this client".to_string(), |p| format!("principal {:?}", p.name));
        Some(
            err(
                code::FORBIDDEN,
                format!("Forbidden: {what} {name:?} is not allowed for {who} by the gateway's policy"),
            )
            .with_data(json!({"name": name})),
        )
    }

    /// Drop from a list page what the session may not see.
    pub(super) fn filter_page(&self, s: SessionId, kind: ListKind, page: &mut Value) {
        if self.cfg.policy.is_empty() {
            return;
        }
        if let Some(items) = page.get_mut(kind.field()).and_then(Value::as_array_mut) {
            items.retain(|i| item_key(kind, i).is_none_or(|k| self.allowed(s, k)));
        }
    }

    /// `tools/call` arguments that do not satisfy the tool's `inputSchema`: -32602 naming the path.
    pub(super) fn invalid_arguments(&mut self, u: UpstreamId, params: &Value) -> Option<ErrorObject> {
        let tool = params.get("name").and_then(Value::as_str)?;
        let schema = self.tool_def(u, tool).and_then(|t| t.get("inputSchema")).filter(|s| s.is_object())?.clone();
        let empty = json!({});
        let args = params.get("arguments").unwrap_or(&empty);
        let bad = self.validator.as_mut()?.validate(&schema, args).err()?;
        let at = if bad.path.is_empty() { "the arguments".to_string() } else { format!("arguments{}", bad.path) };
        Some(
            err(code::INVALID_PARAMS, format!("Invalid arguments: {at}: {}", bad.message))
                .with_data(json!({"path": bad.path, "message": bad.message})),
        )
    }
}
