//! The gateway as an OAuth 2.1 resource server (MCP authorization, 2025-11-25 and 2026-07-28 agree
//! on this side): who a request on the HTTP or WebSocket face comes from, with no I/O.
//!
//! # Contract
//!
//! A host hands [`Auth::check`] the request's `Authorization` header, whether its query string
//! carries a token, the engine's wall-clock seconds and (with the `jwt` feature) the issuer's JWKS it
//! keeps. The answer is a [`Principal`], or a [`Denial`] whose [`Auth::challenge`] is the
//! `WWW-Authenticate` value to send with its status. [`Auth::metadata`] is the RFC 9728 protected
//! resource metadata document. Fetching the issuer's metadata and JWKS is the host's job (see
//! [`jwt`]); when a token names a key the host does not have, the check says so
//! ([`Denial::unknown_key`]) and the host refetches, at most once per [`JWKS_REFETCH_MS`].
//!
//! # Rules
//!
//! - Tokens only in the header (`Bearer`); one in the query string is refused, whatever the header.
//! - Static tokens (for small deployments) are compared in constant time; each names its principal.
//! - JWT access tokens (RFC 9068): signature by a key of the issuer's JWKS with an allowed algorithm
//!   ([`jwt::ALGORITHMS`]: never `none`, never HMAC), `iss` equal to the issuer, `aud` holding the
//!   gateway's canonical URI (RFC 8707), `exp` and `nbf` within [`SKEW_S`], `typ` `at+jwt` (or `JWT`).
//! - Missing scopes: 403 `insufficient_scope`, naming every required scope in one challenge.

use crate::prelude::*;

use crate::principal::Principal;
use serde_json::{json, Value};

#[cfg(feature = "jwt")]
pub mod jwt;
mod tokens;

pub use tokens::StaticToken;

/// Leeway on `exp` and `nbf`, in seconds.
pub const SKEW_S: u64 = 60;
/// An unknown `kid` makes the host refetch the JWKS, but not more often than this.
pub const JWKS_REFETCH_MS: u64 = 30_000;

/// `[auth]`, with the static tokens' secrets already read by the host.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// The authorization server issuing JWT access tokens; `None`: static tokens only.
    pub issuer: Option<String>,
    /// This gateway's canonical resource URI (`aud` of its tokens).
    pub audience: String,
    /// Required on `/mcp` and `/ws`.
    pub scopes: Vec<String>,
    /// Required on `/status`, `/metrics` and `/admin/*`.
    pub admin_scopes: Vec<String>,
    pub tokens: Vec<StaticToken>,
}

/// Why a request is refused: 401 (no usable token) or 403 (a token without the scopes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: u16,
    /// RFC 6750 error code: `invalid_request`, `invalid_token` or `insufficient_scope`; `None` when
    /// the request simply had no token.
    pub error: Option<&'static str>,
    /// For the log and the challenge; never holds a secret.
    pub description: String,
    /// The token names a key (`kid`) the host's JWKS lacks.
    pub unknown_key: Option<String>,
}

impl Denial {
    pub fn invalid(description: impl Into<String>) -> Denial {
        Denial { status: 401, error: Some("invalid_token"), description: description.into(), unknown_key: None }
    }
}

/// Which scopes a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `/mcp`, `/ws`.
    Mcp,
    /// `/status`, `/metrics`, `/admin/*`.
    Admin,
}

/// The resource server. See the module documentation.
#[derive(Debug, Clone)]
pub struct Auth {
    pub cfg: AuthConfig,
}

impl Auth {
    pub fn new(cfg: AuthConfig) -> Auth {
        Auth { cfg }
    }

    fn required(&self, need: Need) -> &[String] {
        match need {
            Need::Mcp => &self.cfg.scopes,
            Need::Admin => &self.cfg.admin_scopes,
        }
    }

    /// Who sent a request with this `Authorization` header. `query_token`: its query string carries
    /// `access_token` (always refused). `now_s`: wall-clock seconds.
    pub fn check(
        &self,
        authorization: Option<&str>,
        query_token: bool,
        need: Need,
        now_s: u64,
        #[cfg(feature = "jwt")] keys: Option<&jwt::Keys>,
    ) -> Result<Principal, Denial> {
        if query_token {
            return Err(Denial {
                status: 401,
                error: Some("invalid_request"),
                description: "access tokens are accepted in the Authorization header only, never in the URL".into(),
                unknown_key: None,
            });
        }
        let Some(h) = authorization else {
            return Err(Denial { status: 401, error: None, description: "no access token".into(), unknown_key: None });
        };
        let token = match h.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
            _ => return Err(Denial::invalid("the Authorization header is not `Bearer <token>`")),
        };
        let principal = match tokens::find(&self.cfg.tokens, token) {
            Some(p) => p,
            None => self.check_jwt(
                token,
                now_s,
                #[cfg(feature = "jwt")]
                keys,
            )?,
        };
        let required = self.required(need);
        if !principal.has_scopes(required) {
            return Err(Denial {
                status: 403,
                error: Some("insufficient_scope"),
                description: format!("{} lacks a required scope ({})", principal.name, required.join(" ")),
                unknown_key: None,
            });
        }
        Ok(principal)
    }

    #[cfg(feature = "jwt")]
    fn check_jwt(&self, token: &str, now_s: u64, keys: Option<&jwt::Keys>) -> Result<Principal, Denial> {
        match (&self.cfg.issuer, keys) {
            (Some(iss), Some(keys)) => jwt::verify(token, keys, iss, &self.cfg.audience, now_s),
            (Some(_), None) => Err(Denial::invalid("the authorization server's keys are not available yet")),
            (None, _) => Err(Denial::invalid("unknown token")),
        }
    }

    #[cfg(not(feature = "jwt"))]
    fn check_jwt(&self, _token: &str, _now_s: u64) -> Result<Principal, Denial> {
        Err(Denial::invalid("unknown token"))
    }

    /// The `WWW-Authenticate` value for a denial (RFC 6750, RFC 9728 `resource_metadata`).
    pub fn challenge(&self, d: &Denial, metadata_url: &str, need: Need) -> String {
        let mut c = String::from("Bearer ");
        if let Some(e) = d.error {
            c.push_str(&format!("error=\"{e}\", error_description=\"{}\", ", quoted(&d.description)));
        }
        c.push_str(&format!("resource_metadata=\"{}\"", quoted(metadata_url)));
        let scopes = self.required(need);
        if !scopes.is_empty() {
            c.push_str(&format!(", scope=\"{}\"", quoted(&scopes.join(" "))));
        }
        c
    }

    /// RFC 9728 protected resource metadata.
    pub fn metadata(&self) -> Value {
        let mut scopes: Vec<&String> = self.cfg.scopes.iter().chain(&self.cfg.admin_scopes).collect();
        scopes.dedup();
        json!({
            "resource": self.cfg.audience,
            "authorization_servers": self.cfg.issuer.iter().collect::<Vec<_>>(),
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-edge-gateway",
        })
    }
}

/// A value safe inside a quoted-string: no quotes, backslashes or control characters.
fn quoted(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect()
}

/// Read `[auth]` (without the static tokens' secrets, which the host reads: see
/// [`read_token_entries`]); `default_audience` comes from the listen address.
pub fn read_auth(v: &Value, default_audience: &str) -> Result<AuthConfig, String> {
    let Some(o) = v.as_object() else { return Err("auth must be a table".into()) };
    let strings = |k: &str| -> Result<Vec<String>, String> {
        match o.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().filter(|s| !s.is_empty() && !s.contains(' ')).map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("auth.{k} must be an array of scope strings (no spaces)")),
            Some(_) => Err(format!("auth.{k} must be an array of strings")),
        }
    };
    let url = |k: &str| -> Result<Option<String>, String> {
        match o.get(k) {
            None => Ok(None),
            Some(Value::String(s)) if is_url(s) => Ok(Some(s.clone())),
            Some(_) => {
                Err(format!("auth.{k} must be an https:// URL (http:// only on loopback: 127.0.0.1, [::1], localhost)"))
            }
        }
    };
    for k in o.keys() {
        if !matches!(k.as_str(), "issuer" | "audience" | "scopes" | "admin_scopes" | "tokens") {
            return Err(format!("auth.{k}: unknown key (auth has issuer, audience, scopes, admin_scopes, tokens)"));
        }
    }
    let cfg = AuthConfig {
        issuer: url("issuer")?,
        audience: url("audience")?.unwrap_or_else(|| default_audience.to_string()),
        scopes: if o.contains_key("scopes") { strings("scopes")? } else { vec!["mcp".into()] },
        admin_scopes: if o.contains_key("admin_scopes") { strings("admin_scopes")? } else { vec!["mcp:admin".into()] },
        tokens: Vec::new(),
    };
    if cfg.issuer.is_none() && o.get("tokens").and_then(Value::as_array).is_none_or(|a| a.is_empty()) {
        return Err("auth: give an `issuer` (an OAuth authorization server) or at least one [[auth.tokens]]".into());
    }
    Ok(cfg)
}

/// A static token's entry as configured: where its secret is, whom it names, its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub principal: String,
    /// `Env(name)` or `File(path)`.
    pub source: Secret,
    pub scopes: Vec<String>,
}

/// Where a secret comes from: never the config file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(String),
}

/// Read `auth.tokens`; errors name the key at fault. A token written in clear is refused.
pub fn read_token_entries(v: &Value) -> Result<Vec<TokenEntry>, String> {
    let Some(a) = v.get("tokens") else { return Ok(Vec::new()) };
    let Some(a) = a.as_array() else { return Err("auth.tokens must be an array ([[auth.tokens]])".into()) };
    let mut out = Vec::new();
    for (i, t) in a.iter().enumerate() {
        let at = format!("auth.tokens[{i}]");
        let Some(o) = t.as_object() else { return Err(format!("{at} must be a table")) };
        for k in o.keys() {
            match k.as_str() {
                "principal" | "token_env" | "token_file" | "scopes" => {}
                "token" => {
                    return Err(format!(
                        "{at}.token: a token is never written in the config file; put it in the environment \
                         (token_env = \"NAME\") or a file readable by the gateway only (token_file = \"/path\")"
                    ))
                }
                _ => {
                    return Err(format!(
                        "{at}.{k}: unknown key (a token has principal, token_env or token_file, scopes)"
                    ))
                }
            }
        }
        let principal = o
            .get("principal")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{at}.principal: a non-empty string is required"))?;
        let source = match (o.get("token_env").and_then(Value::as_str), o.get("token_file").and_then(Value::as_str)) {
            (Some(e), None) if !e.is_empty() => Secret::Env(e.into()),
            (None, Some(f)) if !f.is_empty() => Secret::File(f.into()),
            _ => return Err(format!("{at}: give exactly one of token_env or token_file (a non-empty string)")),
        };
        let scopes = match o.get("scopes") {
            None => vec!["mcp".to_string()],
            Some(s) => s
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| format!("{at}.scopes must be an array of strings"))?,
        };
        if out.iter().any(|e: &TokenEntry| e.principal == principal) {
            return Err(format!("{at}.principal: {principal:?} is named twice"));
        }
        out.push(TokenEntry { principal: principal.into(), source, scopes });
    }
    Ok(out)
}

/// An `https://` URL, or `http://` on a loopback host.
pub fn is_url(s: &str) -> bool {
    if s.starts_with("https://") && s.len() > 8 {
        return true;
    }
    let Some(rest) = s.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(h) => h.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost" || host == "::1" || host.parse::<core::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests;
