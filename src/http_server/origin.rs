//! The Origin and CORS decision, for `/mcp` and the hosts' other endpoints alike: loopback origins
//! and the configured ones are allowed (`*` for any), everything else gets 403; allowed origins get
//! CORS headers that expose `Mcp-Session-Id` and allow the MCP request headers of both eras
//! (including the open-ended `Mcp-Param-*`).

use crate::prelude::*;

/// An allowed origin: loopback, or configured.
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    is_loopback_origin(origin) || allowed.iter().any(|o| o == origin || o == "*")
}

pub(super) fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split(']').next().map(|h| format!("{h}]"))
    } else {
        rest.split(':').next().map(str::to_string)
    };
    matches!(host.as_deref(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

const ALLOW_HEADERS: &str =
    "content-type, accept, authorization, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name";

/// CORS response headers for an allowed `origin`; `preflight` with the headers the browser asked for.
pub fn cors_headers(origin: &str, preflight: Option<Option<&str>>) -> Vec<(String, String)> {
    let mut h = vec![
        ("access-control-allow-origin".to_string(), origin.to_string()),
        ("vary".into(), "Origin".into()),
        // `WWW-Authenticate` so a browser client can find the authorization server (OAuth discovery);
        // `Retry-After` and `RateLimit` so it can back off.
        (
            "access-control-expose-headers".into(),
            "mcp-session-id, mcp-protocol-version, www-authenticate, retry-after, ratelimit, ratelimit-policy".into(),
        ),
    ];
    if let Some(requested) = preflight {
        h.push(("access-control-allow-methods".into(), "GET, POST, DELETE, OPTIONS".into()));
        // Mcp-Param-* names are open-ended: echo what was asked when every name is one we accept.
        let allow = requested
            .filter(|v| {
                v.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .all(|n| n.is_empty() || ALLOW_HEADERS.split(", ").any(|a| a == n) || n.starts_with("mcp-param-"))
            })
            .unwrap_or(ALLOW_HEADERS);
        h.push(("access-control-allow-headers".into(), allow.to_string()));
        h.push(("access-control-max-age".into(), "600".into()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_are_recognised() {
        assert!(is_loopback_origin("http://localhost:5173"));
        assert!(is_loopback_origin("http://127.0.0.1"));
        assert!(is_loopback_origin("http://[::1]:8080"));
        assert!(!is_loopback_origin("http://localhost.evil.com"));
        assert!(!is_loopback_origin("https://evil.example"));
        assert!(!is_loopback_origin("null"));
    }
}
