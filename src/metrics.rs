//! Operation durations named after the OpenTelemetry MCP semantic conventions, kept as plain counts
//! so that every host exports the same figures: the native host encodes them for Prometheus, the
//! browser hands them to JavaScript as an object. No exporter, no clock: the engine passes the
//! times it was given.
//!
//! Two histograms, `mcp.server.operation.duration` (requests clients sent the gateway, from arrival
//! to the answer) and `mcp.client.operation.duration` (requests the gateway sent an upstream, from
//! sending to the answer). A series is labelled with the method, the upstream, the tool for
//! `tools/call`, and the outcome with its error type. Cardinality is bounded: methods outside MCP's
//! own are `_OTHER`, tools beyond the first [`MAX_TOOLS`] seen are `_OTHER`, upstreams come from the
//! configuration.
//!
//! Beside them, the last [`RECENT_ERRORS`] errors the gateway answered, for status pages.

use crate::prelude::*;

use crate::protocol::method;
use alloc::collections::{BTreeMap, VecDeque};
use serde_json::{json, Value};

/// Upper bounds of the histogram buckets, in seconds: the semantic conventions' advice (from 10 ms),
/// with three below it, since a call at the edge often takes a millisecond or two.
pub const BOUNDS: [f64; 17] =
    [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Distinct tool names a histogram keeps before the rest share `_OTHER`.
pub const MAX_TOOLS: usize = 256;

/// Errors kept for status pages.
pub const RECENT_ERRORS: usize = 20;

/// Methods that get a series of their own; anything else is `_OTHER`.
const METHODS: &[&str] = &[
    method::INITIALIZE,
    method::DISCOVER,
    method::PING,
    method::TOOLS_LIST,
    method::TOOLS_CALL,
    method::PROMPTS_LIST,
    method::PROMPTS_GET,
    method::RESOURCES_LIST,
    method::RESOURCES_READ,
    method::RESOURCE_TEMPLATES_LIST,
    method::RESOURCES_SUBSCRIBE,
    method::RESOURCES_UNSUBSCRIBE,
    method::COMPLETE,
    method::SET_LEVEL,
    method::SUBSCRIPTIONS_LISTEN,
    method::ELICIT,
    method::SAMPLE,
    method::ROOTS_LIST,
    method::TASKS_GET,
    method::TASKS_RESULT,
    method::TASKS_LIST,
    method::TASKS_CANCEL,
    "_OTHER",
];

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Ok,
    /// A `tools/call` result with `isError: true`.
    ToolError,
    /// A JSON-RPC error with this code.
    Rpc(i64),
    /// No answer in time.
    Timeout,
    /// The link broke or went down before the answer.
    Transport,
    /// The client cancelled or went away.
    Cancelled,
}

impl Outcome {
    fn outcome(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            _ => "error",
        }
    }

    /// The `error.type` attribute: the JSON-RPC code, `tool_error`, or what went wrong.
    pub fn error_type(self) -> String {
        match self {
            Outcome::Ok => String::new(),
            Outcome::ToolError => "tool_error".into(),
            Outcome::Rpc(c) => c.to_string(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Transport => "transport".into(),
            Outcome::Cancelled => "cancelled".into(),
        }
    }
}

/// One series' labels, as indexes: into [`METHODS`], the upstreams (`usize::MAX` for the gateway
/// itself, as for aggregated lists) and the interned tool names (`u32::MAX` for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    method: u8,
    upstream: usize,
    tool: u32,
    outcome: Outcome,
}

/// Cumulative-free bucket counts (the last one is +Inf), their total and sum.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BOUNDS.len() + 1],
    count: u64,
    sum_ms: u64,
}

impl Histogram {
    fn observe(&mut self, ms: u64) {
        let s = ms as f64 / 1000.0;
        let i = BOUNDS.iter().position(|&b| s <= b).unwrap_or(BOUNDS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }
}

/// Which side of the gateway an operation was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A client's request to the gateway (`mcp.server.operation.duration`).
    Server,
    /// The gateway's request to an upstream (`mcp.client.operation.duration`).
    Client,
}

/// What a finished operation is labelled with.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    pub method: &'a str,
    pub upstream: Option<usize>,
    pub tool: Option<&'a str>,
}

/// One error, for status pages.
#[derive(Debug, Clone)]
struct RecentError {
    wall_ms: u64,
    side: Side,
    method: &'static str,
    upstream: Option<usize>,
    error_type: String,
    message: String,
}

/// The histograms and recent errors. See the module documentation.
#[derive(Debug, Default)]
pub struct Metrics {
    server: BTreeMap<Key, Histogram>,
    client: BTreeMap<Key, Histogram>,
    tools: Vec<String>,
    recent: VecDeque<RecentError>,
    /// Offline-queue replays by how they ended.
    pub replays_completed: u64,
    pub replays_failed: u64,
    pub replays_in_doubt: u64,
    pub replays_requeued: u64,
}

/// The method's own name if it gets a series of its own, else `_OTHER`.
pub fn known_method(m: &str) -> &'static str {
    METHODS[method_index(m) as usize]
}

fn method_index(m: &str) -> u8 {
    METHODS.iter().position(|&x| x == m).unwrap_or(METHODS.len() - 1) as u8
}

impl Metrics {
    fn tool_index(&mut self, t: &str) -> u32 {
        if let Some(i) = self.tools.iter().position(|x| x == t) {
            return i as u32;
        }
        if self.tools.len() < MAX_TOOLS {
            self.tools.push(t.to_string());
            return (self.tools.len() - 1) as u32;
        }
        u32::MAX - 1
    }

    /// Count one finished operation that took `ms`.
    pub fn observe(&mut self, side: Side, op: Op<'_>, outcome: Outcome, ms: u64) {
        let method = method_index(op.method);
        let tool = match op.tool {
            Some(t) if op.method == method::TOOLS_CALL => self.tool_index(t),
            _ => u32::MAX,
        };
        let key = Key { method, upstream: op.upstream.unwrap_or(usize::MAX), tool, outcome };
        let map = match side {
            Side::Server => &mut self.server,
            Side::Client => &mut self.client,
        };
        map.entry(key).or_default().observe(ms);
    }

    /// Keep an error for status pages (the oldest goes beyond [`RECENT_ERRORS`]).
    pub fn recent_error(&mut self, wall_ms: u64, side: Side, op: Op<'_>, outcome: Outcome, message: &str) {
        if self.recent.len() == RECENT_ERRORS {
            self.recent.pop_front();
        }
        let mut message: String = message.chars().take(200).collect();
        message.shrink_to_fit();
        self.recent.push_back(RecentError {
            wall_ms,
            side,
            method: METHODS[method_index(op.method) as usize],
            upstream: op.upstream,
            error_type: outcome.error_type(),
            message,
        });
    }

    /// The histograms as JSON: `{ bounds, server: [series], client: [series] }`, each series with its
    /// labels, `count`, `sum` (seconds) and cumulative `buckets` (one per bound, then +Inf).
    /// `upstreams` names the configured upstreams by index.
    pub fn operations(&self, upstreams: &[&str]) -> Value {
        let series = |map: &BTreeMap<Key, Histogram>| -> Vec<Value> {
            map.iter()
                .map(|(k, h)| {
                    let mut cum = 0;
                    let buckets: Vec<u64> = h
                        .buckets
                        .iter()
                        .map(|n| {
                            cum += n;
                            cum
                        })
                        .collect();
                    json!({
                        "method": METHODS[k.method as usize],
                        "upstream": upstreams.get(k.upstream).copied().unwrap_or(""),
                        "tool": match k.tool { u32::MAX => "", i => self.tools.get(i as usize).map_or("_OTHER", String::as_str) },
                        "outcome": k.outcome.outcome(),
                        "errorType": k.outcome.error_type(),
                        "count": h.count,
                        "sum": h.sum_ms as f64 / 1000.0,
                        "buckets": buckets,
                    })
                })
                .collect()
        };
        json!({ "bounds": BOUNDS, "server": series(&self.server), "client": series(&self.client) })
    }

    /// The recent errors, newest last.
    pub fn recent_errors(&self, upstreams: &[&str]) -> Value {
        Value::Array(
            self.recent
                .iter()
                .map(|e| {
                    json!({
                        "time": e.wall_ms,
                        "side": match e.side { Side::Server => "server", Side::Client => "client" },
                        "method": e.method,
                        "upstream": e.upstream.and_then(|u| upstreams.get(u).copied()),
                        "errorType": e.error_type,
                        "message": e.message,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op<'a>(m: &'a str, u: Option<usize>, t: Option<&'a str>) -> Op<'a> {
        Op { method: m, upstream: u, tool: t }
    }

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let mut m = Metrics::default();
        for ms in [0, 10, 11, 400, 1_000_000] {
            m.observe(Side::Server, op("tools/call", Some(0), Some("echo")), Outcome::Ok, ms);
        }
        let v = m.operations(&["a"]);
        let s = &v["server"][0];
        assert_eq!(s["count"], 5);
        assert_eq!(s["tool"], "echo");
        assert_eq!(s["upstream"], "a");
        assert_eq!(s["sum"], 1_000.421);
        let b: Vec<u64> = s["buckets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(b.len(), BOUNDS.len() + 1);
        assert_eq!(&b[..6], &[1, 1, 1, 2, 3, 3]); // 0 ms ≤ 1 ms; 10 ms ≤ 0.01 s; 11 ms ≤ 0.02 s
        assert_eq!(b[8], 4); // 400 ms ≤ 0.5 s
        assert_eq!(b[BOUNDS.len() - 1], 4); // 1,000 s is beyond 300 s
        assert_eq!(b[BOUNDS.len()], 5);
    }

    #[test]
    fn cardinality_is_bounded() {
        let mut m = Metrics::default();
        for i in 0..MAX_TOOLS + 10 {
            m.observe(Side::Client, op("tools/call", Some(0), Some(&format!("t{i}"))), Outcome::Ok, 1);
        }
        m.observe(Side::Client, op("x/made-up", Some(0), None), Outcome::Rpc(-32601), 1);
        m.observe(Side::Client, op("tools/list", None, Some("ignored")), Outcome::Ok, 1);
        let v = m.operations(&["a"]);
        let client = v["client"].as_array().unwrap();
        assert_eq!(client.len(), MAX_TOOLS + 3);
        let other = client.iter().find(|s| s["tool"] == "_OTHER").unwrap();
        assert_eq!(other["count"], 10);
        let made_up = client.iter().find(|s| s["errorType"] == "-32601").unwrap();
        assert_eq!(made_up["method"], "_OTHER");
        assert_eq!(made_up["outcome"], "error");
        let list = client.iter().find(|s| s["method"] == "tools/list").unwrap();
        assert_eq!((list["tool"].as_str(), list["upstream"].as_str()), (Some(""), Some("")));
    }

    #[test]
    fn recent_errors_keep_the_last_twenty_and_cut_long_messages() {
        let mut m = Metrics::default();
        for i in 0..25 {
            m.recent_error(i, Side::Server, op("ping", None, None), Outcome::Timeout, &"x".repeat(500));
        }
        let v = m.recent_errors(&[]);
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), RECENT_ERRORS);
        assert_eq!(a[0]["time"], 5);
        assert_eq!(a[0]["message"].as_str().unwrap().len(), 200);
        assert_eq!(a[0]["errorType"], "timeout");
    }
}
