//! The offline queue's entries and how they look to clients: MCP tasks (the 2025-11-25 shape and the
//! 2026-07-28 extension's), and the admin view. The engine moves entries through their states and
//! writes every change to the store before acting on it.

use crate::prelude::*;

use serde_json::{json, Map, Value};

/// Where a queued call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its upstream.
    Queued,
    /// Written as started and sent (or about to be); if the gateway stops now, the call is in doubt.
    Running,
    /// The upstream answered with a result (which may itself say `isError`).
    Completed,
    /// The upstream answered with an error, or the call could not be run, or it is in doubt.
    Failed,
    Cancelled,
}

impl State {
    pub fn terminal(self) -> bool {
        matches!(self, State::Completed | State::Failed | State::Cancelled)
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Queued, State::Running, State::Completed, State::Failed, State::Cancelled]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// The MCP task status.
    pub fn task_status(self) -> &'static str {
        match self {
            State::Queued | State::Running => "working",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }
}

/// One queued tool call, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Position in the queue (also the store key).
    pub seq: u64,
    /// The task id, and the idempotency key sent upstream.
    pub id: String,
    pub upstream: String,
    /// The upstream's own tool name.
    pub tool: String,
    /// The name the client called.
    pub exposed: String,
    pub arguments: Value,
    /// The client's `_meta` for the call, minus what only made sense on its connection.
    pub meta: Map<String, Value>,
    /// Digest of the client's auth context: only that context sees the entry.
    pub auth: String,
    pub state: State,
    /// Wall-clock milliseconds since the Unix epoch.
    pub created: u64,
    pub updated: u64,
    pub attempts: u32,
    /// The tool says repeating it has no further effect: an interrupted call may be sent again.
    pub idempotent: bool,
    /// How long after creation the entry is kept (the client's task TTL, or the gateway's default).
    pub ttl_ms: u64,
    pub message: Option<String>,
    pub result: Option<Value>,
    pub error: Option<Value>,
}

/// The entries in sequence order. (A sorted `Vec` rather than a `BTreeMap`: queues are short, and
/// the B-tree's code costs the browser package tens of kilobytes.)
#[derive(Debug, Default)]
pub struct Queue(Vec<Entry>);

impl Queue {
    fn index(&self, seq: u64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&seq, |e| e.seq)
    }

    /// Insert (or replace) the entry with `seq`.
    pub fn insert(&mut self, seq: u64, e: Entry) {
        match self.index(seq) {
            Ok(i) => self.0[i] = e,
            Err(i) => self.0.insert(i, e),
        }
    }

    pub fn get(&self, seq: &u64) -> Option<&Entry> {
        self.index(*seq).ok().map(|i| &self.0[i])
    }

    pub fn get_mut(&mut self, seq: &u64) -> Option<&mut Entry> {
        self.index(*seq).ok().map(|i| &mut self.0[i])
    }

    pub fn remove(&mut self, seq: &u64) -> Option<Entry> {
        self.index(*seq).ok().map(|i| self.0.remove(i))
    }

    pub fn values(&self) -> core::slice::Iter<'_, Entry> {
        self.0.iter()
    }

    pub fn values_mut(&mut self) -> core::slice::IterMut<'_, Entry> {
        self.0.iter_mut()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How often clients are told to poll.
pub const POLL_INTERVAL_MS: u64 = 2_000;

impl Entry {
    /// When a finished entry is dropped (wall clock; a TTL past the end of time keeps it forever).
    pub fn expires(&self) -> u64 {
        self.updated.saturating_add(self.ttl_ms)
    }

    /// The stored form. (Written by hand rather than derived: serde's derives cost the browser
    /// package kilobytes.)
    pub fn to_json(&self) -> String {
        let mut v = json!({
            "seq": self.seq, "id": self.id, "upstream": self.upstream, "tool": self.tool, "exposed": self.exposed,
            "arguments": self.arguments, "meta": self.meta, "auth": self.auth, "state": self.state.as_str(),
            "created": self.created, "updated": self.updated, "attempts": self.attempts,
            "idempotent": self.idempotent, "ttlMs": self.ttl_ms,
        });
        for (k, x) in [
            ("message", self.message.clone().map(Value::from)),
            ("result", self.result.clone()),
            ("error", self.error.clone()),
        ] {
            if let Some(x) = x {
                v[k] = x;
            }
        }
        v.to_string()
    }

    pub fn from_json(text: &str) -> Result<Entry, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string).ok_or(format!("`{k}` is not a string"));
        let n = |k: &str| v.get(k).and_then(Value::as_u64).ok_or(format!("`{k}` is not a number"));
        let state = v.get("state").and_then(Value::as_str).and_then(State::parse).ok_or("`state` is not a state")?;
        Ok(Entry {
            seq: n("seq")?,
            id: s("id")?,
            upstream: s("upstream")?,
            tool: s("tool")?,
            exposed: s("exposed")?,
            arguments: v.get("arguments").cloned().unwrap_or(json!({})),
            meta: v.get("meta").and_then(Value::as_object).cloned().unwrap_or_default(),
            auth: s("auth").unwrap_or_default(),
            state,
            created: n("created")?,
            updated: n("updated")?,
            attempts: n("attempts").unwrap_or(0) as u32,
            idempotent: v.get("idempotent").and_then(Value::as_bool).unwrap_or(false),
            ttl_ms: n("ttlMs")?,
            message: v.get("message").and_then(Value::as_str).map(str::to_string),
            result: v.get("result").cloned(),
            error: v.get("error").cloned(),
        })
    }

    /// The 2025-11-25 `Task`.
    pub fn legacy_task(&self) -> Value {
        let mut t = json!({
            "taskId": self.id,
            "status": self.state.task_status(),
            "createdAt": iso8601(self.created),
            "lastUpdatedAt": iso8601(self.updated),
            "ttl": self.ttl_ms,
            "pollInterval": POLL_INTERVAL_MS,
        });
        if let Some(m) = self.status_message() {
            t["statusMessage"] = Value::from(m);
        }
        t
    }

    /// The 2026-07-28 tasks extension's `Task` (flattened into results, `ttlMs`/`pollIntervalMs`),
    /// with the result or error inlined once terminal when `detailed`.
    pub fn modern_task(&self, detailed: bool) -> Value {
        let mut t = json!({
            "taskId": self.id,
            "status": self.state.task_status(),
            "createdAt": iso8601(self.created),
            "lastUpdatedAt": iso8601(self.updated),
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": POLL_INTERVAL_MS,
        });
        if let Some(m) = self.status_message() {
            t["statusMessage"] = Value::from(m);
        }
        if detailed {
            match self.state {
                State::Completed => t["result"] = self.result.clone().unwrap_or(json!({})),
                State::Failed => t["error"] = self.error_object(),
                _ => {}
            }
        }
        t
    }

    fn status_message(&self) -> Option<String> {
        match self.state {
            State::Queued => {
                Some(format!("queued: upstream {:?} is unreachable; it runs when it is back", self.upstream))
            }
            State::Running => Some(format!("sent to upstream {:?}", self.upstream)),
            _ => self.message.clone(),
        }
    }

    /// The JSON-RPC error of a failed entry.
    pub fn error_object(&self) -> Value {
        self.error
            .clone()
            .unwrap_or_else(|| json!({"code": -32000, "message": self.message.clone().unwrap_or_default()}))
    }

    /// The admin view: everything but the auth digest.
    pub fn admin_view(&self) -> Value {
        let mut v = json!({
            "taskId": self.id,
            "upstream": self.upstream,
            "tool": self.tool,
            "name": self.exposed,
            "arguments": self.arguments,
            "status": self.state.as_str(),
            "createdAt": iso8601(self.created),
            "updatedAt": iso8601(self.updated),
            "attempts": self.attempts,
            "position": self.seq,
        });
        if let Some(m) = &self.message {
            v["message"] = Value::from(m.clone());
        }
        if let Some(r) = &self.result {
            v["result"] = r.clone();
        }
        if self.state == State::Failed {
            v["error"] = self.error_object();
        }
        v
    }
}

/// `2026-11-24T05:50:06.123Z` from milliseconds since the Unix epoch.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_their_stored_form() {
        let e = Entry {
            seq: 7,
            id: "t".into(),
            upstream: "u".into(),
            tool: "x".into(),
            exposed: "u__x".into(),
            arguments: json!({"a": [1, "b"]}),
            meta: Map::new(),
            auth: "d".into(),
            state: State::Failed,
            created: 1,
            updated: 2,
            attempts: 3,
            idempotent: true,
            ttl_ms: 60_000,
            message: Some("m".into()),
            result: None,
            error: Some(json!({"code": -1, "message": "m"})),
        };
        assert_eq!(Entry::from_json(&e.to_json()).unwrap(), e);
        assert!(Entry::from_json(r#"{"seq": 1}"#).is_err());
    }

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_795_499_406_123), "2026-11-24T05:50:06.123Z");
    }
}
