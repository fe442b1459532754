//! `GET /metrics`: the engine's figures ([`mcp_edge_gateway::Gateway::metrics`], the same ones the
//! browser's `metrics()` returns) in the OpenMetrics text format that Prometheus scrapes, encoded by
//! prometheus-client, plus what only the process knows: bytes on the wire, resident memory and
//! uptime.
//!
//! Names follow the OpenTelemetry MCP semantic conventions where they have one
//! (`mcp_server_operation_duration_seconds`, `mcp_client_operation_duration_seconds`, labels
//! `mcp_method_name`, `gen_ai_tool_name`, `error_type`); the gateway's own figures are
//! `mcp_gateway_*`.

use crate::http::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Bytes of MCP messages on the wire, counted where the host reads and writes them.
pub struct Bytes {
    pub client_in: AtomicU64,
    pub client_out: AtomicU64,
    pub upstream_in: AtomicU64,
    pub upstream_out: AtomicU64,
}

pub static BYTES: Bytes = Bytes {
    client_in: AtomicU64::new(0),
    client_out: AtomicU64::new(0),
    upstream_in: AtomicU64::new(0),
    upstream_out: AtomicU64::new(0),
};

/// Count `n` bytes on one of the [`BYTES`] counters.
pub fn count(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Mark the process start (uptime counts from here).
pub fn started() {
    STARTED.get_or_init(Instant::now);
}

pub fn uptime_seconds() -> f64 {
    STARTED.get().map_or(0.0, |t| t.elapsed().as_secs_f64())
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// What only the process knows, as JSON (for `/status` and the JSON form of `/metrics`).
pub fn process() -> Value {
    let b = &BYTES;
    serde_json::json!({
        "uptimeSeconds": uptime_seconds(),
        "rssBytes": rss_bytes(),
        "bytes": {
            "clientIn": b.client_in.load(Ordering::Relaxed), "clientOut": b.client_out.load(Ordering::Relaxed),
            "upstreamIn": b.upstream_in.load(Ordering::Relaxed), "upstreamOut": b.upstream_out.load(Ordering::Relaxed),
        },
    })
}

/// `GET /metrics`: OpenMetrics text, or with `Accept: application/json` the same figures as JSON
/// (what the status page draws from), with the process's own under `process`.
pub async fn handler(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let mut figures = app.handle.metrics().await;
    if figures.is_null() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.contains("application/json") {
        figures["process"] = process();
        return axum::Json(figures).into_response();
    }
    match encode(figures) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The figures as OpenMetrics text.
pub fn encode(figures: Value) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures(figures)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct Figures(Value);

type Labels = Vec<(String, String)>;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, u64)]) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    if let [(labels, v)] = rows {
        if labels.is_empty() {
            return ConstCounter::new(*v).encode(m);
        }
    }
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, rows: &[(Labels, f64)]) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if let [(labels, v)] = rows {
        if labels.is_empty() {
            return ConstGauge::new(*v).encode(m);
        }
    }
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn one<T>(v: T) -> [(Labels, T); 1] {
    [(Vec::new(), v)]
}

fn histograms(e: &mut DescriptorEncoder, name: &str, help: &str, ops: &Value, side: &str) -> std::fmt::Result {
    let bounds: Vec<f64> =
        ops["bounds"].as_array().map(|b| b.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for series in ops[side].as_array().into_iter().flatten() {
        let mut labels: Labels = vec![("mcp_method_name".into(), s(&series["method"]))];
        let up = s(&series["upstream"]);
        if !up.is_empty() {
            labels.push(("upstream".into(), up));
        }
        let tool = s(&series["tool"]);
        if !tool.is_empty() {
            labels.push(("gen_ai_tool_name".into(), tool));
        }
        labels.push(("outcome".into(), s(&series["outcome"])));
        let et = s(&series["errorType"]);
        if !et.is_empty() {
            labels.push(("error_type".into(), et));
        }
        // The engine's buckets are cumulative; the encoder wants each bucket's own count.
        let cum: Vec<u64> = series["buckets"].as_array().map(|b| b.iter().map(u).collect()).unwrap_or_default();
        let mut buckets = Vec::with_capacity(cum.len());
        let mut prev = 0;
        for (i, c) in cum.iter().enumerate() {
            let bound = bounds.get(i).copied().unwrap_or(f64::MAX);
            buckets.push((bound, c.saturating_sub(prev)));
            prev = *c;
        }
        let sum = series["sum"].as_f64().unwrap_or(0.0);
        m.encode_family(&labels)?.encode_histogram::<()>(sum, u(&series["count"]), &buckets, None)?;
    }
    Ok(())
}

impl Collector for Figures {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let f = &self.0;
        let ops = &f["operations"];
        histograms(
            &mut e,
            "mcp_server_operation_duration_seconds",
            "Duration of MCP requests clients sent the gateway, from arrival to the answer",
            ops,
            "server",
        )?;
        histograms(
            &mut e,
            "mcp_client_operation_duration_seconds",
            "Duration of MCP requests the gateway sent each upstream, from sending to the answer",
            ops,
            "client",
        )?;
        gauge(&mut e, "mcp_gateway_sessions", "Open downstream sessions", &one(u(&f["sessions"]) as f64))?;
        let c = &f["cache"];
        counter(&mut e, "mcp_gateway_cache_hits", "Answers served fresh from the cache", &one(u(&c["hits"])))?;
        counter(
            &mut e,
            "mcp_gateway_cache_misses",
            "Cacheable requests the cache could not answer",
            &one(u(&c["misses"])),
        )?;
        counter(
            &mut e,
            "mcp_gateway_cache_stale",
            "Stale answers served while an upstream was down",
            &one(u(&c["stale"])),
        )?;
        counter(&mut e, "mcp_gateway_cache_evictions", "Cache entries evicted for space", &one(u(&c["evictions"])))?;
        gauge(&mut e, "mcp_gateway_cache_entries", "Entries in the cache", &one(u(&c["entries"]) as f64))?;
        gauge(&mut e, "mcp_gateway_cache_bytes", "Bytes held by the cache", &one(u(&c["bytes"]) as f64))?;
        let q = &f["queue"];
        gauge(
            &mut e,
            "mcp_gateway_queue_depth",
            "Offline-queue calls waiting or running",
            &one(u(&q["depth"]) as f64),
        )?;
        let r = &q["replays"];
        let replays: Vec<(Labels, u64)> =
            [("completed", "completed"), ("failed", "failed"), ("in_doubt", "inDoubt"), ("requeued", "requeued")]
                .iter()
                .map(|(label, key)| (vec![("outcome".to_string(), label.to_string())], u(&r[*key])))
                .collect();
        counter(&mut e, "mcp_gateway_queue_replays", "Offline-queue replays by how they ended", &replays)?;
        let ups = f["upstreams"].as_array().cloned().unwrap_or_default();
        let name = |x: &Value| vec![("upstream".to_string(), s(&x["name"]))];
        let up: Vec<(Labels, f64)> =
            ups.iter().map(|x| (name(x), f64::from(u8::from(x["state"] == "ready")))).collect();
        gauge(&mut e, "mcp_gateway_upstream_up", "1 when the upstream's link is ready", &up)?;
        let inflight: Vec<(Labels, f64)> = ups.iter().map(|x| (name(x), u(&x["inFlight"]) as f64)).collect();
        gauge(&mut e, "mcp_gateway_upstream_in_flight", "Requests in flight to the upstream", &inflight)?;
        let mut breakers: Vec<(Labels, f64)> = Vec::new();
        for x in ups.iter().filter(|x| x["group"].is_string()) {
            for st in ["closed", "open", "half-open"] {
                let mut l = name(x);
                l.push(("group".into(), s(&x["group"])));
                l.push(("state".into(), st.into()));
                breakers.push((l, f64::from(u8::from(x["breaker"] == st))));
            }
        }
        gauge(
            &mut e,
            "mcp_gateway_breaker_state",
            "1 for the state each group member's circuit breaker is in",
            &breakers,
        )?;
        let st = &f["stats"];
        for (n, key, help) in [
            ("mcp_gateway_failovers", "failovers", "Group calls sent to another member than the one they failed on"),
            ("mcp_gateway_retries", "retries", "Extra attempts of group calls (failovers included)"),
            ("mcp_gateway_breaker_transitions", "breakerTransitions", "Circuit breaker state changes"),
            ("mcp_gateway_in_doubt", "inDoubt", "Calls that failed after they may have run, reported as in doubt"),
            ("mcp_gateway_timeouts", "timeouts", "Requests to upstreams that timed out"),
        ] {
            counter(&mut e, n, help, &one(u(&st[key])))?;
        }
        let per_provider = |v: &Value| -> Vec<(Labels, u64)> {
            v.as_object()
                .map(|o| o.iter().map(|(k, n)| (vec![("provider".to_string(), k.clone())], u(n))).collect())
                .unwrap_or_default()
        };
        counter(
            &mut e,
            "mcp_gateway_sampling_answers",
            "Sampling requests answered, by provider",
            &per_provider(&f["sampling"]["answers"]),
        )?;
        counter(
            &mut e,
            "mcp_gateway_sampling_failures",
            "Sampling providers that failed, by provider",
            &per_provider(&f["sampling"]["failures"]),
        )?;
        let b = &BYTES;
        let l = |side: &str, dir: &str| {
            vec![("side".to_string(), side.to_string()), ("direction".to_string(), dir.to_string())]
        };
        let bytes = [
            (l("client", "in"), b.client_in.load(Ordering::Relaxed)),
            (l("client", "out"), b.client_out.load(Ordering::Relaxed)),
            (l("upstream", "in"), b.upstream_in.load(Ordering::Relaxed)),
            (l("upstream", "out"), b.upstream_out.load(Ordering::Relaxed)),
        ];
        counter(&mut e, "mcp_gateway_bytes", "Bytes of MCP messages read and written, by side", &bytes)?;
        if let Some(rss) = rss_bytes() {
            gauge(&mut e, "process_resident_memory_bytes", "Resident memory size in bytes", &one(rss as f64))?;
        }
        gauge(&mut e, "mcp_gateway_uptime_seconds", "Seconds since the gateway started", &one(uptime_seconds()))?;
        Ok(())
    }
}
