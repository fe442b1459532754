//! Server-sent events: an incremental parser, shared by the native and browser HTTP connectors.

use crate::prelude::*;

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
    /// The last `retry` field, in ms: how long to wait before reconnecting.
    pub retry: Option<u64>,
}

/// Refuse a single event larger than this (a broken or hostile upstream).
pub const MAX_EVENT: usize = 32 * 1024 * 1024;

impl Parser {
    /// The last event id seen (the `Last-Event-ID` to resume with).
    pub fn last_event_id(&self) -> Option<&str> {
        self.id.as_deref().filter(|i| !i.is_empty())
    }

    /// A new connection: forget any half-received event, keep the last event id and `retry`.
    pub fn restart(&mut self) {
        self.buf.clear();
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }

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
                        event: if self.event.is_empty() { "message".into() } else { core::mem::take(&mut self.event) },
                        data: core::mem::take(&mut self.data),
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
                "id" if !value.contains('\0') => self.id = Some(value.to_string()),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    self.retry = value.parse().ok();
                }
                _ => {}
            }
        }
        if self.buf.len() + self.data.len() > MAX_EVENT {
            return Err("SSE event too large".into());
        }
        Ok(out)
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

    #[test]
    fn keeps_the_last_id_and_retry_across_a_restart() {
        let mut p = Parser::default();
        p.feed(b"id: 3-0\nretry: 500\ndata:\n\nid: 3-1\ndata: {}\n\ndata: half").unwrap();
        assert_eq!((p.last_event_id(), p.retry), (Some("3-1"), Some(500)));
        p.restart();
        let ev = p.feed(b"data: whole\n\n").unwrap();
        assert_eq!(ev[0].data, "whole");
        p.feed(b"retry: x\n\n").unwrap();
        assert_eq!(p.retry, Some(500), "a retry that is not a number is ignored");
    }
}
