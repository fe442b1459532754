//! An answer the engine refused for a limit (`RATE_LIMITED`) goes out as HTTP 429, with
//! `Retry-After` (seconds) and the IETF `RateLimit` / `RateLimit-Policy` fields
//! (draft-ietf-httpapi-ratelimit-headers), so HTTP clients and proxies back off without reading the
//! body. The JSON-RPC error stays the body, as on WebSocket and stdio.

use crate::prelude::*;

use crate::jsonrpc::code;
use crate::Message;
use serde_json::Value;

/// The extra headers of a 429, when `m` is a rate-limited answer.
pub(super) fn rate_limited(m: &Message) -> Option<Vec<(String, String)>> {
    let Message::Error { error, .. } = m else { return None };
    if error.code != code::RATE_LIMITED {
        return None;
    }
    let data = error.data.as_ref();
    let n = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_u64);
    let secs = n("retryAfterMs").unwrap_or(1000).div_ceil(1000).max(1);
    let mut h = vec![("retry-after".to_string(), secs.to_string())];
    if let (Some(limit), Some(window)) = (n("limit"), n("windowS")) {
        h.push(("ratelimit-policy".into(), format!("\"default\";q={limit};w={window}")));
        h.push(("ratelimit".into(), format!("\"default\";r=0;t={secs}")));
    }
    Some(h)
}
