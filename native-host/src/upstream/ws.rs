//! WebSocket upstreams (`url = "ws://…"` or `wss://…`): one JSON-RPC message per text frame, either
//! era (the engine probes the era as over stdio). Reconnected with backoff when the connection
//! fails or ends; a call in flight when it breaks is the engine's to settle (in doubt unless safe).

use super::Backoff;
use crate::driver::{Cmd, Handle};
use futures_util::{SinkExt, StreamExt};
use mcp_edge_gateway::{Message, UpstreamId};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

pub async fn run(
    h: Handle,
    u: UpstreamId,
    name: String,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
    max_frame: usize,
) {
    let mut backoff = Backoff::new();
    loop {
        let started = tokio::time::Instant::now();
        let why = run_once(&h, u, &url, &headers, max_frame).await;
        h.send(Cmd::UpstreamDown(u, why.clone()));
        if started.elapsed() > Duration::from_secs(30) {
            backoff.reset();
        }
        let d = backoff.next_delay();
        tracing::warn!(upstream = %name, "{why}; reconnecting in {} ms", d.as_millis());
        tokio::time::sleep(d).await;
    }
}

async fn run_once(
    h: &Handle,
    u: UpstreamId,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    max_frame: usize,
) -> String {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return format!("bad WebSocket URL {url}: {e}"),
    };
    for (k, v) in headers {
        match (
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()),
            tokio_tungstenite::tungstenite::http::HeaderValue::from_str(v),
        ) {
            (Ok(k), Ok(v)) => {
                req.headers_mut().insert(k, v);
            }
            _ => return format!("header {k:?} of {url} is not a valid HTTP header"),
        }
    }
    let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame));
    let (socket, _) = match tokio_tungstenite::connect_async_with_config(req, Some(cfg), false).await {
        Ok(s) => s,
        Err(e) => return format!("cannot reach {url}: {e}"),
    };
    let (mut out, mut inp) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    h.send(Cmd::UpstreamUp(u, tx));
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { return "link closed".into() };
                let text = m.to_json();
                crate::metrics::count(&crate::metrics::BYTES.upstream_out, text.len());
                if let Err(e) = out.send(Frame::Text(text.into())).await {
                    return format!("sending to {url} failed: {e}");
                }
            }
            f = inp.next() => match f {
                Some(Ok(Frame::Text(t))) => deliver(h, u, t.as_bytes()),
                Some(Ok(Frame::Binary(b))) => deliver(h, u, &b),
                Some(Ok(Frame::Close(c))) => return format!("{url} closed the connection{}", c.map(|c| format!(" ({})", c.reason)).unwrap_or_default()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return format!("the connection to {url} broke: {e}"),
                None => return format!("{url} closed the connection"),
            }
        }
    }
}

fn deliver(h: &Handle, u: UpstreamId, bytes: &[u8]) {
    crate::metrics::count(&crate::metrics::BYTES.upstream_in, bytes.len());
    match Message::parse(bytes) {
        Ok(m) => {
            if let Some(m) = crate::driver::bounded(m, bytes.len()) {
                h.send(Cmd::FromUpstream(u, m, None))
            }
        }
        Err(e) => tracing::warn!(upstream = u.0, "ignoring a frame that is not JSON-RPC: {e}"),
    }
}
