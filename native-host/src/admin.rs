//! The offline queue's admin endpoints, under the same Origin rules as `/mcp`:
//!
//! - `GET /admin/queue`: every entry, oldest first (`{"entries": [...]}`).
//! - `GET /admin/queue/{taskId}`: one entry, with its result once it ran.
//! - `DELETE /admin/queue/{taskId}`: cancel an entry that has not run yet (409 if it has started or
//!   finished, 404 if unknown). Cancelling goes through the engine like a client's `tasks/cancel`,
//!   so the answer comes only once the cancellation is durable.

use crate::driver::{ClientSink, Cmd};
use crate::http::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mcp_edge_gateway::jsonrpc::code;
use mcp_edge_gateway::protocol::method;
use mcp_edge_gateway::{Id, Message};
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub async fn list(State(app): State<Arc<App>>) -> Response {
    match app.handle.queue(None).await {
        Some(v) => Json(v).into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

pub async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.handle.queue(Some(id.clone())).await {
        Some(v) => Json(v).into_response(),
        None => not_found(&id),
    }
}

/// Takes the one answer of the admin session's one request.
struct Once(Mutex<Option<oneshot::Sender<Message>>>);

impl ClientSink for Once {
    fn deliver(&self, _related: Option<Id>, message: Message) {
        if let Some(tx) = self.0.lock().expect("poisoned").take() {
            let _ = tx.send(message);
        }
    }
}

pub async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let (tx, rx) = oneshot::channel();
    let Some(sid) = app.handle.open_session(Arc::new(Once(Mutex::new(Some(tx))))).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    app.handle.send(Cmd::Admin(sid));
    let req = Message::request(Id::Num(1), method::TASKS_CANCEL, json!({ "taskId": id }));
    app.handle.send(Cmd::FromClient(sid, req));
    let answer = rx.await;
    app.handle.send(Cmd::CloseSession(sid));
    match answer {
        Ok(Message::Response { .. }) => match app.handle.queue(Some(id.clone())).await {
            Some(v) => Json(v).into_response(),
            None => not_found(&id),
        },
        Ok(Message::Error { error, .. }) if error.message.starts_with("Unknown task") => not_found(&id),
        Ok(Message::Error { error, .. }) => {
            let status = if error.code == code::INVALID_PARAMS {
                StatusCode::CONFLICT
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (status, Json(json!({ "error": error.message }))).into_response()
        }
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn not_found(id: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no queued call {id}") }))).into_response()
}
