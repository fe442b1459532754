//! `check-config FILE`: read a configuration as `serve` would (every refusal names its key) and say
//! what it would serve: the listen address, who may call, each upstream with its transport, the
//! groups, the sampling chain, policy, limits and where the store would live. Secrets are never
//! printed: header and environment values, tokens and keys show as names only, and URLs lose
//! their user info and query.

use crate::config::HostConfig;
use mcp_edge_gateway::config::Transport;
use std::fmt::Write;
use std::path::Path;

/// What `cfg` (read from `path`) would serve, one fact per line; `store` says where the store is.
pub fn describe(cfg: &HostConfig, path: &Path, store: &str) -> String {
    let mut o = String::new();
    let g = &cfg.gateway;
    let _ = writeln!(o, "{}: valid", path.display());
    let listen = cfg.listen.as_deref().unwrap_or("127.0.0.1:8787 (default)");
    let _ = writeln!(o, "listen     {listen}");
    let _ = writeln!(o, "auth       {}", auth_line(cfg));
    let _ = writeln!(o, "upstreams  {}", g.upstreams.len());
    for (i, (spec, t)) in g.upstreams.iter().zip(&cfg.transports).enumerate() {
        let oauth = if matches!(cfg.upstream_oauth.get(i), Some(Some(_))) { ", OAuth client credentials" } else { "" };
        let _ = writeln!(o, "  {:<16} {}{oauth}", spec.name, transport_line(t));
    }
    for grp in &g.groups {
        let members: Vec<&str> =
            grp.members.iter().filter_map(|i| g.upstreams.get(*i)).map(|u| u.name.as_str()).collect();
        let _ = writeln!(o, "group      {}: {} (in this order)", grp.name, members.join(", "));
    }
    if !g.sampling.order.is_empty() {
        let _ = writeln!(o, "sampling   {}", g.sampling.order.join(" → "));
        for p in &g.sampling.providers {
            let key = match (&p.api_key_env, &p.api_key_file) {
                (Some(env), _) => format!(", key from ${env}"),
                (None, Some(file)) => format!(", key from {file}"),
                _ => String::new(),
            };
            let _ = writeln!(o, "  {:<16} {} model {}{key}", p.name, display_url(&p.url), p.model);
        }
    }
    let rules = g.policy.rules.len();
    let _ = writeln!(
        o,
        "policy     {}",
        if rules == 0 { "none: everything allowed".into() } else { format!("{rules} rules") }
    );
    let l = &g.limits;
    let rate = match l.requests_per_minute {
        Some(n) => format!("{n} requests/min (burst {})", l.burst.map_or("default".into(), |b| b.to_string())),
        None => "no rate limit".into(),
    };
    let per = |v: Option<usize>| v.map_or("unbounded".to_string(), |n| n.to_string());
    let _ = writeln!(
        o,
        "limits     {rate}; in flight per session {}; sessions per principal {}; upstream answers ≤ {} bytes",
        per(l.max_in_flight_per_session),
        per(l.max_sessions_per_principal),
        l.max_upstream_response_bytes
    );
    let _ = writeln!(o, "store      {store}");
    o
}

fn auth_line(cfg: &HostConfig) -> String {
    let Some(a) = &cfg.auth else {
        return "none (serve refuses a non-loopback address without --allow-unauthenticated)".into();
    };
    let mut parts = Vec::new();
    if let Some(iss) = &a.issuer {
        parts.push(format!("JWT from {iss}"));
    }
    if !a.tokens.is_empty() {
        parts.push(format!("{} static tokens", a.tokens.len()));
    }
    let aud = if a.audience.is_empty() { "from the listen address".to_string() } else { a.audience.clone() };
    format!(
        "{}; audience {aud}; scopes [{}]; admin [{}]",
        parts.join(" + "),
        a.scopes.join(", "),
        a.admin_scopes.join(", ")
    )
}

fn transport_line(t: &Transport) -> String {
    // Header and environment values hold credentials: their names only.
    let names = |what: &str, m: &std::collections::BTreeMap<String, String>| {
        if m.is_empty() {
            String::new()
        } else {
            format!(" ({what}: {})", m.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
        }
    };
    match t {
        Transport::Stdio { command, args, env, .. } => {
            let line: Vec<&str> = std::iter::once(command.as_str()).chain(args.iter().map(String::as_str)).collect();
            format!("stdio: {}{}", line.join(" "), names("env", env))
        }
        Transport::Http { url, headers } => {
            format!("Streamable HTTP {}{}", display_url(url), names("headers", headers))
        }
        Transport::Sse { url, headers } => format!("HTTP+SSE {}{}", display_url(url), names("headers", headers)),
        Transport::WebSocket { url, headers } => format!("WebSocket {}{}", display_url(url), names("headers", headers)),
        Transport::Builtin(name) => format!("built in: {name}"),
        other => format!("{other:?}"),
    }
}

/// A URL without its user info and query (either may hold a credential).
fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let query = if url.contains('?') { "?…" } else { "" };
    if scheme.is_empty() {
        format!("{host}{path}{query}")
    } else {
        format!("{scheme}://{host}{path}{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(display_url("https://user:pw@h.example:8443/mcp?token=s3cret"), "https://h.example:8443/mcp?…");
        assert_eq!(display_url("http://127.0.0.1:9000/mcp"), "http://127.0.0.1:9000/mcp");
        assert_eq!(display_url("ws://h"), "ws://h");
    }

    #[test]
    fn a_configuration_is_described_without_its_secrets() {
        let toml = r#"
[server]
listen = "0.0.0.0:9999"
[upstreams.notes]
url = "https://notes.example/mcp?key=abc123"
headers = { Authorization = "Bearer hunter2hunter2" }
[upstreams.edge]
command = "python3"
args = ["server.py"]
env = { API_TOKEN = "zzz-secret-zzz" }
[groups.both]
members = ["edge", "notes"]
"#;
        let cfg = HostConfig::from_toml(toml).unwrap();
        let out = describe(&cfg, Path::new("gw.toml"), "/var/lib/gw/gateway.sqlite3");
        for secret in ["abc123", "hunter2", "zzz-secret"] {
            assert!(!out.contains(secret), "{secret} printed:\n{out}");
        }
        for fact in [
            "listen     0.0.0.0:9999",
            "Streamable HTTP https://notes.example/mcp?…",
            "(headers: Authorization)",
            "stdio: python3 server.py (env: API_TOKEN)",
            "group      both: edge, notes",
            "/var/lib/gw/gateway.sqlite3",
        ] {
            assert!(out.contains(fact), "{fact:?} missing:\n{out}");
        }
    }
}
