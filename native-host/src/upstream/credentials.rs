//! The gateway's own credential for an upstream by the OAuth client-credentials grant (RFC 6749
//! §4.4, with the RFC 8707 `resource`): a task fetches a token, keeps it, and fetches the next one
//! before this one expires (at 80% of its lifetime, at least 10 s before the end), or at once when
//! the upstream refused the token. Client authentication is `client_secret_basic`. The secret and
//! the tokens are never logged; errors name the token URL and the status only.

use crate::config::OAuthClient;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

pub struct Credentials {
    token: watch::Receiver<Option<String>>,
    refresh: Notify,
}

impl Credentials {
    /// Start fetching tokens for `name`'s upstream.
    pub fn start(name: String, cfg: OAuthClient) -> Arc<Credentials> {
        let (tx, rx) = watch::channel(None);
        let me = Arc::new(Credentials { token: rx, refresh: Notify::new() });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            let client = super::wire::Client::not_following();
            let mut backoff = super::Backoff::new();
            loop {
                let wait = match fetch(&client, &cfg).await {
                    Ok((token, lifetime)) => {
                        backoff.reset();
                        tracing::info!(upstream = %name, "OAuth token from {} for {} s", cfg.token_url, lifetime.as_secs());
                        let _ = tx.send(Some(token));
                        (lifetime * 4 / 5)
                            .min(lifetime.saturating_sub(Duration::from_secs(10)))
                            .max(Duration::from_secs(1))
                    }
                    Err(e) => {
                        tracing::warn!(upstream = %name, "cannot obtain an OAuth token: {e}");
                        let _ = tx.send(None);
                        backoff.next_delay()
                    }
                };
                let Some(me) = weak.upgrade() else { return };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = me.refresh.notified() => {}
                }
            }
        });
        me
    }

    /// The current token, waiting up to `wait` for the first (or the next, after a refusal).
    pub async fn bearer(&self, wait: Duration) -> Option<String> {
        let mut rx = self.token.clone();
        let got = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        match got {
            Ok(Ok(t)) => t.clone().map(|t| format!("Bearer {t}")),
            _ => None,
        }
    }

    /// The current token, if there is one, without waiting.
    pub fn bearer_now(&self) -> Option<String> {
        self.token.borrow().clone().map(|t| format!("Bearer {t}"))
    }

    /// The upstream refused the token: fetch another now.
    pub fn refused(&self, token: &str) {
        if self.bearer_now().as_deref() == Some(token) {
            self.refresh.notify_one();
        }
    }
}

/// One client-credentials request: the token and its lifetime.
async fn fetch(client: &super::wire::Client, cfg: &OAuthClient) -> Result<(String, Duration), String> {
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    if !cfg.scopes.is_empty() {
        form.push(("scope", cfg.scopes.join(" ")));
    }
    if let Some(r) = &cfg.resource {
        form.push(("resource", r.clone()));
    }
    let body: String = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
    let uri = cfg.token_url.parse::<http::Uri>().map_err(|e| format!("{}: {e}", cfg.token_url))?;
    let basic = format!("{}:{}", urlencode(&cfg.client_id), urlencode(&cfg.client_secret));
    let mut basic = http::HeaderValue::try_from(format!("Basic {}", BASE64_STANDARD.encode(basic)))
        .map_err(|_| format!("{}: the client credentials cannot be sent", cfg.token_url))?;
    basic.set_sensitive(true);
    let mut req = http::Request::new(bytes::Bytes::from(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    h.insert(http::header::AUTHORIZATION, basic);
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-www-form-urlencoded"));
    h.insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
    let (head, body) =
        client.fetch(req, 1 << 20, Duration::from_secs(15)).await.map_err(|e| format!("{}: {e}", cfg.token_url))?;
    let status = head.status;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| format!("{}: HTTP {status}, not JSON", cfg.token_url))?;
    if !status.is_success() {
        let err = v.get("error").and_then(|e| e.as_str()).unwrap_or("?");
        return Err(format!("{}: HTTP {status} ({err})", cfg.token_url));
    }
    let token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| format!("{}: no access_token in the answer", cfg.token_url))?;
    let secs = v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(300).clamp(2, 86_400);
    Ok((token.to_string(), Duration::from_secs(secs)))
}

/// `application/x-www-form-urlencoded` (also what RFC 6749 §2.3.1 asks of Basic credentials).
fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A shared optional credential (for the connectors' state).
pub type Shared = Option<Arc<Credentials>>;
