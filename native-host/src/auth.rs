//! `[auth]` on the HTTP and WebSocket faces: the core's resource server ([`mcp_edge_gateway::auth`])
//! decides, this module moves its parts. It serves the RFC 9728 metadata, checks every request but
//! `/healthz`, the metadata and CORS preflights (`/mcp` and `/ws` need the MCP scopes, everything else
//! the admin scopes), hands the principal on in the request's extensions and takes the
//! `Authorization` header out, so no client token goes further (never upstream). The issuer's JWKS
//! is found through its metadata, kept, and fetched again on an unknown `kid`, at most once per
//! [`JWKS_REFETCH_MS`].

use crate::http::App;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_edge_gateway::auth::jwt::{self, Keys};
use mcp_edge_gateway::auth::{Auth, AuthConfig, Denial, Need, JWKS_REFETCH_MS};
use mcp_edge_gateway::http_server::{cors_headers, origin_allowed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The metadata document's path; its path form for `/mcp` adds `/mcp`.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// A refused request's body is read up to this much before answering (beyond, the connection closes).
const DRAIN_BYTES: usize = 64 * 1024;

pub struct AuthState {
    auth: Auth,
    keys: Mutex<Option<Arc<Keys>>>,
    /// When the JWKS was last asked for.
    fetched: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
    client: crate::upstream::wire::Client,
    metadata_url: String,
}

impl AuthState {
    pub fn new(cfg: AuthConfig) -> Result<Arc<AuthState>, String> {
        let metadata_url = metadata_url(&cfg.audience)
            .ok_or_else(|| format!("auth.audience: {:?} is not an absolute http(s) URL", cfg.audience))?;
        let client = crate::upstream::wire::Client::not_following();
        let me = Arc::new(AuthState {
            auth: Auth::new(cfg),
            keys: Mutex::new(None),
            fetched: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            client,
            metadata_url,
        });
        if me.auth.cfg.issuer.is_some() {
            let m = me.clone();
            tokio::spawn(async move { m.refresh(true).await });
        }
        Ok(me)
    }

    pub fn metadata(&self) -> serde_json::Value {
        self.auth.metadata()
    }

    /// Fetch the issuer's JWKS again, unless that was done less than [`JWKS_REFETCH_MS`] ago.
    async fn refresh(&self, first: bool) {
        let Some(issuer) = self.auth.cfg.issuer.clone() else { return };
        let _one = self.fetching.lock().await;
        {
            let mut f = self.fetched.lock().expect("poisoned");
            if !first && f.is_some_and(|t| t.elapsed() < Duration::from_millis(JWKS_REFETCH_MS)) {
                return;
            }
            *f = Some(Instant::now());
        }
        match self.fetch_keys(&issuer).await {
            Ok(k) => {
                tracing::info!("authorization server {issuer}: {} signing keys", k.len());
                *self.keys.lock().expect("poisoned") = Some(Arc::new(k));
            }
            Err(e) => tracing::warn!("authorization server {issuer}: {e}"),
        }
    }

    async fn fetch_keys(&self, issuer: &str) -> Result<Keys, String> {
        let mut why = String::new();
        for url in jwt::metadata_urls(issuer) {
            match self.get_small(&url).await.and_then(|b| jwt::jwks_uri(&b, issuer)) {
                Ok(jwks) => return Keys::parse(&self.get_small(&jwks).await?),
                Err(e) => why = e,
            }
        }
        Err(format!("no usable metadata ({why})"))
    }

    /// GET a document of at most 1 MiB, within 10 s.
    async fn get_small(&self, url: &str) -> Result<Vec<u8>, String> {
        let uri = url.parse::<http::Uri>().map_err(|e| format!("{url}: {e}"))?;
        let mut req = http::Request::new(bytes::Bytes::new());
        *req.uri_mut() = uri;
        let (head, body) =
            self.client.fetch(req, 1 << 20, Duration::from_secs(10)).await.map_err(|e| format!("{url}: {e}"))?;
        if !head.status.is_success() {
            return Err(format!("{url}: HTTP {}", head.status));
        }
        Ok(body.to_vec())
    }

    async fn check(
        &self,
        authorization: Option<&str>,
        query_token: bool,
        need: Need,
    ) -> Result<mcp_edge_gateway::Principal, Denial> {
        let now_s = crate::driver::wall_clock_ms() / 1000;
        let keys = self.keys.lock().expect("poisoned").clone();
        let first = self.auth.check(authorization, query_token, need, now_s, keys.as_deref());
        match first {
            Err(Denial { unknown_key: Some(_), .. }) => {}
            Err(Denial { status: 401, .. }) if keys.is_none() && self.auth.cfg.issuer.is_some() => {}
            other => return other,
        }
        // A key we do not have (rotated, or not fetched yet): ask again, within the bound.
        self.refresh(false).await;
        let keys = self.keys.lock().expect("poisoned").clone();
        self.auth.check(authorization, query_token, need, now_s, keys.as_deref())
    }
}

/// `https://host:port/.well-known/oauth-protected-resource/<path>` for a resource URI.
fn metadata_url(audience: &str) -> Option<String> {
    let (scheme, rest) = audience.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if host.is_empty() {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    Some(if path.is_empty() {
        format!("{scheme}://{host}{METADATA_PATH}")
    } else {
        format!("{scheme}://{host}{METADATA_PATH}/{path}")
    })
}

/// Which scopes a path needs; `None`: open.
fn need_of(path: &str) -> Option<Need> {
    match path {
        // The status page's HTML holds no figures; what it fetches is checked.
        "/healthz" | "/" => None,
        p if p == METADATA_PATH || p.starts_with("/.well-known/") => None,
        "/mcp" | "/ws" => Some(Need::Mcp),
        _ => Some(Need::Admin),
    }
}

/// The middleware: check, then pass the principal on without the token.
pub async fn require(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let Some(state) = app.auth.clone() else { return next.run(req).await };
    let Some(need) = need_of(req.uri().path()) else { return next.run(req).await };
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let query_token = req.uri().query().is_some_and(|q| {
        q.split('&').any(|kv| kv.split('=').next().is_some_and(|k| k.eq_ignore_ascii_case("access_token")))
    });
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    match state.check(authorization.as_deref(), query_token, need).await {
        Ok(p) => {
            tracing::debug!(principal = %p.name, path = %req.uri().path(), "authenticated");
            req.headers_mut().remove(header::AUTHORIZATION);
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(d) => {
            tracing::info!(path = %req.uri().path(), status = d.status, "refused: {}", d.description);
            let (parts, body) = req.into_parts();
            // Read what the client is sending (bounded) so the connection stays usable for its next
            // request (OAuth discovery follows on the same connection); else close it cleanly.
            let drained = tokio::time::timeout(Duration::from_secs(2), axum::body::to_bytes(body, DRAIN_BYTES)).await;
            let req = Request::from_parts(parts, axum::body::Body::empty());
            let challenge = state.auth.challenge(&d, &state.metadata_url, need);
            let body = serde_json::json!({
                "error": d.error.unwrap_or("invalid_request"),
                "error_description": d.description,
            });
            let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut resp = (status, axum::Json(body)).into_response();
            if !matches!(drained, Ok(Ok(_))) {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            // `/mcp` does its own CORS in the core's face, which this answer never reaches.
            let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
            if let Some(o) = origin.filter(|o| req.uri().path() == "/mcp" && origin_allowed(&app.allowed_origins, o)) {
                for (k, v) in cors_headers(o, None) {
                    if let (Ok(k), Ok(v)) = (header::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                        resp.headers_mut().insert(k, v);
                    }
                }
            }
            resp
        }
    }
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`.
pub async fn metadata(State(app): State<Arc<App>>) -> Response {
    match &app.auth {
        Some(a) => axum::Json(a.metadata()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_has_the_path_form() {
        assert_eq!(
            metadata_url("https://pi.local:8787/mcp").unwrap(),
            "https://pi.local:8787/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:9").unwrap(),
            "http://127.0.0.1:9/.well-known/oauth-protected-resource"
        );
        assert!(metadata_url("pi.local/mcp").is_none());
    }
}
