//! The legacy HTTP+SSE upstream transport (protocol 2024-11-05: GET an event stream whose first
//! `endpoint` event names the URL to POST to).

use super::{wire, Backoff};
use crate::driver::{Cmd, Handle};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::BodyExt;
use mcp_edge_gateway::sse::Parser;
use mcp_edge_gateway::{Message, UpstreamId};
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use tower_http::follow_redirect::RequestUri;

/// Run a legacy HTTP+SSE upstream forever, reconnecting with backoff.
pub async fn run(h: Handle, u: UpstreamId, name: String, url: String, headers: BTreeMap<String, String>) {
    let client = wire::Client::new();
    let mut backoff = Backoff::new();
    loop {
        let why = match (url.parse::<Uri>(), super::http::configured_headers(&headers)) {
            (Ok(uri), Ok(headers)) => run_once(&h, u, &client, &url, uri, &headers, &mut backoff).await,
            (Err(e), _) => format!("the upstream URL {url:?} is not an HTTP URL: {e}"),
            (_, Err(e)) => e,
        };
        h.send(Cmd::UpstreamDown(u, why.clone()));
        let d = backoff.next_delay();
        tracing::warn!(upstream = %name, "{why}; reconnecting in {} ms", d.as_millis());
        tokio::time::sleep(d).await;
    }
}

async fn run_once(
    h: &Handle,
    u: UpstreamId,
    client: &wire::Client,
    url: &str,
    uri: Uri,
    headers: &HeaderMap,
    backoff: &mut Backoff,
) -> String {
    let mut req = http::Request::new(Bytes::new());
    *req.uri_mut() = uri;
    req.headers_mut().insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    for (k, v) in headers {
        req.headers_mut().append(k, v.clone());
    }
    let resp = match client.send(req).await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return format!("GET {url}: HTTP {}", r.status()),
        Err(e) => return format!("GET {url}: {e}"),
    };
    // Where the stream came from after any redirect: the endpoint event is relative to it.
    let from = resp.extensions().get::<RequestUri>().map(|r| r.0.to_string()).unwrap_or_else(|| url.to_string());
    let Ok(base) = url::Url::parse(&from) else {
        return format!("GET {url}: the stream's URL {from:?} cannot be parsed");
    };
    let mut body = resp.into_body();
    let mut parser = Parser::default();
    let mut post_url: Option<Uri> = None;
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let mut tx = Some(tx);
    loop {
        tokio::select! {
            frame = body.frame() => {
                let chunk = match frame {
                    Some(Ok(f)) => match f.into_data() {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                    Some(Err(e)) => return format!("event stream failed: {e}"),
                    None => return "event stream ended".into(),
                };
                crate::metrics::count(&crate::metrics::BYTES.upstream_in, chunk.len());
                let events = match parser.feed(&chunk) { Ok(e) => e, Err(e) => return e };
                for ev in events {
                    if ev.event == "endpoint" {
                        let joined = base.join(ev.data.trim()).map_err(|e| e.to_string())
                            .and_then(|p| p.as_str().parse::<Uri>().map_err(|e| e.to_string()));
                        match joined {
                            Ok(p) => {
                                post_url = Some(p);
                                if let Some(t) = tx.take() {
                                    backoff.reset();
                                    h.send(Cmd::UpstreamUp(u, t));
                                }
                            }
                            Err(e) => return format!("bad endpoint event {:?}: {e}", ev.data),
                        }
                    } else if ev.event == "message" {
                        match Message::parse(ev.data.as_bytes()) {
                            Ok(m) => {
                                if let Some(m) = crate::driver::bounded(m, ev.data.len()) {
                                    h.send(Cmd::FromUpstream(u, m, None))
                                }
                            }
                            Err(e) => tracing::warn!("ignoring bad SSE message: {e}"),
                        }
                    }
                }
            }
            m = rx.recv(), if post_url.is_some() => {
                let Some(m) = m else { return "link closed".into() };
                let text = m.to_json();
                crate::metrics::count(&crate::metrics::BYTES.upstream_out, text.len());
                let mut req = http::Request::new(Bytes::from(text));
                *req.method_mut() = Method::POST;
                *req.uri_mut() = post_url.clone().expect("guarded");
                req.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                for (k, v) in headers {
                    req.headers_mut().append(k, v.clone());
                }
                let (h, client) = (h.clone(), client.clone());
                tokio::spawn(async move {
                    match client.send(req).await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => {
                            if let Message::Request { id, .. } = m {
                                let e = mcp_edge_gateway::ErrorObject::new(mcp_edge_gateway::jsonrpc::code::INTERNAL_ERROR, format!("upstream answered HTTP {}", r.status()));
                                h.send(Cmd::FromUpstream(u, Message::error(Some(id), e), None));
                            }
                        }
                        Err(e) => tracing::warn!("POST to legacy SSE upstream failed: {e}"),
                    }
                });
            }
        }
    }
}
