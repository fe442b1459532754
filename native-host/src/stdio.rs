//! Stdio serving mode: the gateway is one MCP server on stdin/stdout (newline-delimited JSON-RPC),
//! so a desktop app can launch it as its only server. Logs go to stderr; stdout carries only MCP.

use crate::driver::{ClientSink, Cmd, Handle};
use mcp_edge_gateway::{Id, Message};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

struct StdoutSink(mpsc::UnboundedSender<Message>);

impl ClientSink for StdoutSink {
    fn deliver(&self, _related: Option<Id>, message: Message) {
        let _ = self.0.send(message);
    }
}

/// Largest line accepted on stdin; a longer one is answered with an error and skipped.
const MAX_LINE: u64 = 16 * 1024 * 1024;

pub async fn serve(handle: Handle) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(m) = rx.recv().await {
            let mut b = m.to_json().into_bytes();
            b.push(b'\n');
            crate::metrics::count(&crate::metrics::BYTES.client_out, b.len());
            if out.write_all(&b).await.is_err() {
                break;
            }
            let _ = out.flush().await;
        }
    });
    let Some(sid) = handle.open_session(Arc::new(StdoutSink(tx.clone()))).await else {
        return;
    };
    let mut input = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut input).take(MAX_LINE + 1).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(n) => crate::metrics::count(&crate::metrics::BYTES.client_in, n),
        }
        if line.len() as u64 > MAX_LINE && !line.ends_with(b"\n") {
            // Skip the rest of the oversized line, then report it.
            let mut sink = Vec::new();
            let _ = input.read_until(b'\n', &mut sink).await;
            let e = mcp_edge_gateway::ErrorObject::new(
                mcp_edge_gateway::jsonrpc::code::INVALID_REQUEST,
                "message too large",
            );
            let _ = tx.send(Message::error(None, e));
            continue;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match Message::parse(text) {
            Ok(m) => handle.send(Cmd::FromClient(sid, m)),
            Err(e) => {
                let _ = tx.send(Message::error(None, e.to_error()));
            }
        }
    }
    handle.send(Cmd::CloseSession(sid));
    drop(tx);
    // Let pending answers drain briefly before exiting.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), writer).await;
}
