//! The legacy HTTP+SSE upstream transport (protocol 2024-11-05: GET an event stream whose first
//! `endpoint` event names the URL to POST to).

use super::Backoff;
use crate::driver::{Cmd, Handle};
use futures_util::StreamExt;
use mcp_edge_gateway::sse::Parser;
use mcp_edge_gateway::{Message, UpstreamId};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Run a legacy HTTP+SSE upstream forever, reconnecting with backoff.
pub async fn run(h: Handle, u: UpstreamId, name: String, url: String, headers: BTreeMap<String, String>) {
    let client =
        reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10)).build().expect("tls backend");
    let mut backoff = Backoff::new();
    loop {
        let why = run_once(&h, u, &client, &url, &headers, &mut backoff).await;
        h.send(Cmd::UpstreamDown(u, why.clone()));
        let d = backoff.next_delay();
        tracing::warn!(upstream = %name, "{why}; reconnecting in {} ms", d.as_millis());
        tokio::time::sleep(d).await;
    }
}

async fn run_once(
    h: &Handle,
    u: UpstreamId,
    client: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    backoff: &mut Backoff,
) -> String {
    let mut req = client.get(url).header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = match req.send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return format!("GET {url}: HTTP {}", r.status()),
        Err(e) => return format!("GET {url}: {e}"),
    };
    let base = resp.url().clone();
    let mut stream = resp.bytes_stream();
    let mut parser = Parser::default();
    let mut post_url: Option<reqwest::Url> = None;
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let mut tx = Some(tx);
    loop {
        tokio::select! {
            chunk = stream.next() => {
                let chunk = match chunk {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => return format!("event stream failed: {e}"),
                    None => return "event stream ended".into(),
                };
                crate::metrics::count(&crate::metrics::BYTES.upstream_in, chunk.len());
                let events = match parser.feed(&chunk) { Ok(e) => e, Err(e) => return e };
                for ev in events {
                    if ev.event == "endpoint" {
                        match base.join(ev.data.trim()) {
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
                let target = post_url.clone().expect("guarded");
                let mut req = client.post(target).header("content-type", "application/json").body({
                    let text = m.to_json();
                    crate::metrics::count(&crate::metrics::BYTES.upstream_out, text.len());
                    text
                });
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let h = h.clone();
                tokio::spawn(async move {
                    match req.send().await {
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
