//! Server-sent events: an incremental parser, and the legacy HTTP+SSE upstream transport
//! (protocol 2024-11-05: GET an event stream whose first `endpoint` event names the URL to POST to).

use super::Backoff;
use crate::driver::{Cmd, Handle};
use futures_util::StreamExt;
use mcp_edge_gateway::{Message, UpstreamId};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Incremental SSE parser (WHATWG rules: LF, CR or CRLF line ends; `:` comments; multi-line data).
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    event: String,
    data: String,
    id: Option<String>,
    has_data: bool,
}

/// Refuse a single event larger than this (a broken or hostile upstream).
pub const MAX_EVENT: usize = 32 * 1024 * 1024;

impl Parser {
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A CR at the very end may be half of a CRLF: wait for more.
            if self.buf[pos] == b'\r' && pos + 1 == self.buf.len() {
                break;
            }
            let line: Vec<u8> = self.buf[..pos].to_vec();
            let skip = if self.buf[pos] == b'\r' && self.buf.get(pos + 1) == Some(&b'\n') { 2 } else { 1 };
            self.buf.drain(..pos + skip);
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if self.has_data {
                    out.push(Event {
                        event: if self.event.is_empty() { "message".into() } else { std::mem::take(&mut self.event) },
                        data: std::mem::take(&mut self.data),
                        id: self.id.clone(),
                    });
                }
                self.event.clear();
                self.data.clear();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.find(':') {
                Some(i) => (&line[..i], line[i + 1..].strip_prefix(' ').unwrap_or(&line[i + 1..])),
                None => (line.as_str(), ""),
            };
            match field {
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                "event" => self.event = value.to_string(),
                "id" => self.id = Some(value.to_string()),
                _ => {}
            }
        }
        if self.buf.len() + self.data.len() > MAX_EVENT {
            return Err("SSE event too large".into());
        }
        Ok(out)
    }
}

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
                            Ok(m) => h.send(Cmd::FromUpstream(u, m, None)),
                            Err(e) => tracing::warn!("ignoring bad SSE message: {e}"),
                        }
                    }
                }
            }
            m = rx.recv(), if post_url.is_some() => {
                let Some(m) = m else { return "link closed".into() };
                let target = post_url.clone().expect("guarded");
                let mut req = client.post(target).header("content-type", "application/json").body(m.to_json());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crlf_comments_priming_and_split_chunks() {
        let mut p = Parser::default();
        let mut all = Vec::new();
        for chunk in [
            &b"id: 1\r\ndata: \r\n\r\n: ping\r\nevent: mess"[..],
            b"age\r\ndata: {\"a\":",
            b"1}\r\n\r",
            b"\ndata: x\ndata: y\n\n",
        ] {
            all.extend(p.feed(chunk).unwrap());
        }
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].data, "");
        assert_eq!(all[1], Event { event: "message".into(), data: "{\"a\":1}".into(), id: Some("1".into()) });
        assert_eq!(all[2].data, "x\ny");
    }
}
