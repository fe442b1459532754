//! Upstream connectors. Each runs as its own task: it keeps the link up (restarting or reconnecting
//! with backoff), tells the engine when the link comes and goes, and carries messages both ways.

pub mod builtin;
pub mod credentials;
pub mod http;
pub mod sse;
pub mod stdio;
pub mod wire;
pub mod ws;

use crate::config::Transport;
use crate::driver::Handle;
use mcp_edge_gateway::UpstreamId;
use std::time::Duration;

pub fn spawn_all(
    handle: &Handle,
    transports: &[Transport],
    oauth: &[Option<crate::config::OAuthClient>],
    names: &[String],
    max_frame: usize,
) {
    for (i, t) in transports.iter().enumerate() {
        let (u, h, name) = (UpstreamId(i), handle.clone(), names[i].clone());
        let creds = oauth.get(i).cloned().flatten().map(|o| credentials::Credentials::start(name.clone(), o));
        match t.clone() {
            Transport::Stdio { command, args, env, cwd } => {
                tokio::spawn(stdio::run(h, u, name, command, args, env, cwd));
            }
            Transport::Http { url, headers } => {
                tokio::spawn(http::run(h, u, name, url, headers, creds));
            }
            Transport::Sse { url, headers } => {
                tokio::spawn(sse::run(h, u, name, url, headers));
            }
            Transport::WebSocket { url, headers } => {
                tokio::spawn(ws::run(h, u, name, url, headers, max_frame));
            }
            Transport::Builtin(_) => {
                tokio::spawn(builtin::run(h, u));
            }
            // The config refuses at start-up what this host cannot reach.
            other => tracing::error!(upstream = %name, "no connector for {other:?}"),
        }
    }
}

/// Exponential backoff with jitter: 250 ms doubling to 30 s.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn new() -> Self {
        Backoff { attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = 250u64.saturating_mul(1 << self.attempt.min(7)).min(30_000);
        self.attempt += 1;
        // Jitter from the clock's low bits: enough to keep restarts of many children apart.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        Duration::from_millis(base / 2 + u64::from(nanos) % (base / 2 + 1))
    }
}
