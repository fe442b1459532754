//! Stdio upstreams: a child process speaking newline-delimited JSON-RPC. Restarted with backoff when
//! it dies; its stderr goes to our log, line by line, tagged with the upstream's name.

use super::Backoff;
use crate::driver::{Cmd, Handle};
use mcp_edge_gateway::{Message, UpstreamId};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

/// A line longer than this from a child is dropped (and the child restarted): it cannot be MCP we
/// could forward, and buffering it would let one child exhaust our memory.
const MAX_LINE: usize = 16 * 1024 * 1024;

pub async fn run(
    h: Handle,
    u: UpstreamId,
    name: String,
    command: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<String>,
) {
    let mut backoff = Backoff::new();
    loop {
        let started = tokio::time::Instant::now();
        let why = run_once(&h, u, &name, &command, &args, &env, cwd.as_deref()).await;
        h.send(Cmd::UpstreamDown(u, why.clone()));
        if started.elapsed() > Duration::from_secs(30) {
            backoff.reset();
        }
        let d = backoff.next_delay();
        tracing::warn!(upstream = %name, "{why}; restarting in {} ms", d.as_millis());
        tokio::time::sleep(d).await;
    }
}

async fn run_once(
    h: &Handle,
    u: UpstreamId,
    name: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&str>,
) -> String {
    let mut cmd = Command::new(command);
    cmd.args(args).envs(env).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("cannot start {command:?}: {e}"),
    };
    let pid = child.id().unwrap_or(0);
    tracing::info!(upstream = %name, pid, "started {command}");
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tag = name.to_string();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            tracing::info!(upstream = %tag, "stderr: {l}");
        }
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    h.send(Cmd::UpstreamUp(u, tx));
    // Reading runs in its own task so a partly read line is never lost to a `select!`.
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<String>();
    let (h2, tag) = (h.clone(), name.to_string());
    tokio::spawn(async move {
        let mut out = BufReader::with_capacity(64 * 1024, stdout);
        let mut line = Vec::with_capacity(4096);
        let why = loop {
            line.clear();
            match (&mut out).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await {
                Ok(0) => break String::new(),
                Ok(_) if line.len() > MAX_LINE => break format!("child wrote a line over {MAX_LINE} bytes"),
                Ok(_) => {
                    crate::metrics::count(&crate::metrics::BYTES.upstream_in, line.len());
                    let text = trim_newline(&line);
                    if text.is_empty() {
                        continue;
                    }
                    match Message::parse(text) {
                        Ok(m) => {
                            if let Some(m) = crate::driver::bounded(m, text.len()) {
                                h2.send(Cmd::FromUpstream(u, m, None))
                            }
                        }
                        Err(e) => {
                            tracing::warn!(upstream = %tag, "ignoring non-JSON-RPC output: {e}: {}", String::from_utf8_lossy(&text[..text.len().min(200)]))
                        }
                    }
                }
                Err(e) => break format!("reading from the child failed: {e}"),
            }
        };
        let _ = done_tx.send(why);
    });
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { return "link closed".into() };
                let mut bytes = m.to_json().into_bytes();
                bytes.push(b'\n');
                crate::metrics::count(&crate::metrics::BYTES.upstream_out, bytes.len());
                if let Err(e) = stdin.write_all(&bytes).await {
                    let _ = child.start_kill();
                    return format!("writing to the child failed: {e}");
                }
                let _ = stdin.flush().await;
            }
            why = &mut done => {
                let why = why.unwrap_or_default();
                if !why.is_empty() {
                    let _ = child.start_kill();
                }
                let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return if why.is_empty() { format!("child exited ({status})") } else { why };
            }
        }
    }
}

fn trim_newline(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && (b[e - 1] == b'\n' || b[e - 1] == b'\r') {
        e -= 1;
    }
    &b[..e]
}
