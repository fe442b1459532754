//! The downstream WebSocket face on `/ws`: one engine session per connection, one JSON-RPC message
//! per text frame, either era (a legacy client starts with `initialize`; a modern client's requests
//! carry their own `_meta`). The same Origin rules as `/mcp` apply (the middleware runs first), and
//! with `[auth]` the upgrade request needs a bearer token with the MCP scopes.

use crate::driver::{ClientSink, Cmd};
use crate::http::App;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use mcp_edge_gateway::{Id, Message, Principal};
use std::sync::Arc;
use tokio::sync::mpsc;

struct WsSink(mpsc::UnboundedSender<Message>);

impl ClientSink for WsSink {
    fn deliver(&self, _related: Option<Id>, message: Message) {
        let _ = self.0.send(message);
    }
}

pub async fn upgrade(
    State(app): State<Arc<App>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = app.max_body_bytes;
    let principal = principal.map(|Extension(p)| p);
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| serve(app, socket, principal, headers))
}

async fn serve(app: Arc<App>, socket: WebSocket, principal: Option<Principal>, headers: HeaderMap) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let Some(sid) = app.handle.open_session(Arc::new(WsSink(tx.clone()))).await else { return };
    crate::http::set_auth(&app, sid, principal, &headers);
    let (mut out, mut inp) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let text = m.to_json();
            crate::metrics::count(&crate::metrics::BYTES.client_out, text.len());
            if out.send(WsMessage::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = out.close().await;
    });
    while let Some(frame) = inp.next().await {
        let bytes = match frame {
            Ok(WsMessage::Text(t)) => t.as_bytes().to_vec(),
            Ok(WsMessage::Binary(b)) => b.to_vec(),
            Ok(WsMessage::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        crate::metrics::count(&crate::metrics::BYTES.client_in, bytes.len());
        match Message::parse(&bytes) {
            Ok(m) => app.handle.send(Cmd::FromClient(sid, m)),
            Err(e) => {
                let _ = tx.send(Message::error(None, e.to_error()));
            }
        }
    }
    app.handle.send(Cmd::CloseSession(sid));
    drop(tx);
    writer.abort();
}
