//! `mcp-loadgen`: the load generator behind scripts/bench.sh, in Rust so it is not the bottleneck.
//!
//! `mcp-loadgen run --url URL --sessions S --concurrency C --calls N` opens S legacy-era sessions
//! (initialize, notifications/initialized), then keeps C `tools/call` requests in flight, spread over
//! the sessions, until N have completed after a warm-up. It prints one JSON line: calls, errors,
//! seconds, req/s, p50/p99 in microseconds. Replies may be JSON or SSE.
//!
//! `mcp-loadgen canned --listen ADDR` is a canned MCP responder (answers every request at once), to
//! show the load generator's own ceiling.
//!
//! `mcp-loadgen passthrough --listen ADDR --upstream URL` is the floor of an HTTP-to-HTTP proxy on the
//! gateway's own stack: axum in, the gateway's HTTP client (src/upstream/wire.rs) out, one tokio
//! thread like the gateway, and nothing else. It copies each POST body, the MCP headers and the
//! reply (JSON or a streamed SSE body) through untouched: no parsing, no routing, no state. What
//! the gateway costs above it is the gateway's. The load generator sends with the same client.
#![forbid(unsafe_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gateway's allocator (see its main.rs), so that the floor is the gateway's stack to the allocator.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "mcp-loadgen", about = "MCP tools/call load generator and canned responder")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive tools/call load at an MCP Streamable HTTP endpoint.
    Run {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1)]
        sessions: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long, default_value_t = 2000)]
        calls: u64,
        #[arg(long, default_value_t = 200)]
        warmup: u64,
        #[arg(long, default_value = "echo")]
        tool: String,
        #[arg(long, default_value = r#"{"message":"hello"}"#)]
        args: String,
    },
    /// Wait until the endpoint answers initialize and then a `tools/call` of TOOL (if given); print
    /// the milliseconds it took.
    Ready {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
        #[arg(long)]
        tool: Option<String>,
        #[arg(long, default_value = r#"{"message":"ready?"}"#)]
        args: String,
    },
    /// A canned MCP responder on ADDR (every request answered at once).
    Canned {
        #[arg(long)]
        listen: String,
    },
    /// A byte pass-through proxy on ADDR to the MCP endpoint URL (the stack's floor, see above).
    Passthrough {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        upstream: String,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Cmd::Passthrough { listen, upstream } = cli.cmd {
        // The gateway's runtime: one thread (native-host/src/main.rs).
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        return rt.block_on(passthrough(listen, upstream));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Run { url, sessions, concurrency, calls, warmup, tool, args } => {
                let args: Value = serde_json::from_str(&args).expect("--args is JSON");
                run(url, sessions.max(1), concurrency.max(1), calls, warmup, tool, args).await
            }
            Cmd::Ready { url, timeout_ms, tool, args } => {
                let args: Value = serde_json::from_str(&args).expect("--args is JSON");
                ready(url, timeout_ms, tool, args).await
            }
            Cmd::Canned { listen } => canned(listen).await,
            Cmd::Passthrough { .. } => unreachable!("run on its own runtime above"),
        }
    });
}

/// The gateway's own HTTP client (hyper-util's pool, no proxy unless the environment names one).
#[allow(dead_code)]
#[path = "../upstream/wire.rs"]
mod wire;

fn client() -> wire::Client {
    wire::Client::new()
}

/// POST one message; the JSON-RPC response with `id` (from a JSON or SSE reply) and the headers.
async fn post(c: &wire::Client, url: &str, session: Option<&str>, body: &Value) -> Result<(Value, HeaderMap), String> {
    let mut req = axum::http::Request::new(Bytes::from(body.to_string()));
    *req.method_mut() = axum::http::Method::POST;
    *req.uri_mut() = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let h = req.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("accept", HeaderValue::from_static("application/json, text/event-stream"));
    h.insert("mcp-protocol-version", HeaderValue::from_static("2025-11-25"));
    if let Some(s) = session {
        h.insert("mcp-session-id", HeaderValue::from_str(s).map_err(|e| e.to_string())?);
    }
    let resp = c.send(req).await.map_err(|e| e.to_string())?;
    let headers = resp.headers().clone();
    let status = resp.status();
    let text = String::from_utf8_lossy(&wire::bytes(resp).await).into_owned();
    if body.get("id").is_none() {
        return Ok((Value::Null, headers));
    }
    let find = |s: &str| serde_json::from_str::<Value>(s).ok().filter(|v| v.get("id") == body.get("id"));
    let msg =
        find(text.trim()).or_else(|| text.lines().filter_map(|l| l.strip_prefix("data:")).find_map(|d| find(d.trim())));
    match msg {
        Some(m) if m.get("result").is_some() => Ok((m, headers)),
        Some(m) => Err(format!("error response: {}", m.get("error").cloned().unwrap_or_default())),
        None => Err(format!("HTTP {status}: no response in {:?}", &text[..text.len().min(200)])),
    }
}

async fn open_session(c: &wire::Client, url: &str) -> Result<Option<String>, String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "mcp-loadgen", "version": "1"}}});
    let (_, h) = post(c, url, None, &init).await?;
    let sid = h.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    post(c, url, sid.as_deref(), &json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
    Ok(sid)
}

async fn ready(url: String, timeout_ms: u64, tool: Option<String>, args: Value) {
    let c = client();
    let t0 = Instant::now();
    let mut session = None;
    while t0.elapsed() < Duration::from_millis(timeout_ms) {
        if session.is_none() {
            session = open_session(&c, &url).await.ok();
        }
        if let Some(sid) = &session {
            let Some(tool) = &tool else {
                println!("{:.1}", t0.elapsed().as_secs_f64() * 1000.0);
                return;
            };
            let call =
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
            if post(&c, &url, sid.as_deref(), &call).await.is_ok() {
                println!("{:.1}", t0.elapsed().as_secs_f64() * 1000.0);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("not ready after {timeout_ms} ms");
    std::process::exit(1);
}

async fn run(url: String, sessions: usize, concurrency: usize, calls: u64, warmup: u64, tool: String, args: Value) {
    let c = client();
    let mut sids = Vec::new();
    for _ in 0..sessions {
        match open_session(&c, &url).await {
            Ok(s) => sids.push(s),
            Err(e) => {
                eprintln!("initialize failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let sids = Arc::new(sids);
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let total = warmup + calls;
    let start = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (c, url, sids, issued, errors, tool, args, start) = (
            c.clone(),
            url.clone(),
            sids.clone(),
            issued.clone(),
            errors.clone(),
            tool.clone(),
            args.clone(),
            start.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sid = sids[w % sids.len()].clone();
            let mut lat = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return lat;
                }
                if n == warmup {
                    *start.lock().expect("poisoned") = Some(Instant::now());
                }
                let body = json!({"jsonrpc": "2.0", "id": n + 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
                let t = Instant::now();
                let ok = post(&c, &url, sid.as_deref(), &body).await;
                let us = t.elapsed().as_micros() as u64;
                if let Err(e) = ok {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("call failed: {e}");
                    }
                }
                if n >= warmup {
                    lat.push(us);
                }
            }
        }));
    }
    let mut lat: Vec<u64> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("worker"));
    }
    let began = start.lock().expect("poisoned").unwrap_or_else(Instant::now);
    let secs = began.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
    let out = json!({
        "calls": lat.len(), "errors": errors.load(Ordering::Relaxed), "seconds": secs,
        "rps": lat.len() as f64 / secs.max(1e-9), "p50_us": pct(0.5), "p99_us": pct(0.99),
    });
    println!("{out}");
}

async fn canned(listen: String) {
    let counter = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: Bytes| {
            let counter = counter.clone();
            async move { canned_reply(&body, &counter) }
        }),
    );
    let l = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    axum::serve(l, app).await.expect("serve");
}

fn canned_reply(body: &[u8], counter: &AtomicU64) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(body) else { return StatusCode::BAD_REQUEST.into_response() };
    let Some(id) = msg.get("id").cloned() else { return StatusCode::ACCEPTED.into_response() };
    let result = match msg.get("method").and_then(Value::as_str) {
        Some("initialize") => {
            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "canned", "version": "1"}})
        }
        // One tool, so a gateway in front of this responder routes `echo` to it (profiling the gateway
        // without a real upstream's own cost in the samples).
        Some("tools/list") => json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
        _ => json!({"content": [{"type": "text", "text": "Echo: hello"}]}),
    };
    let mut r = axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response();
    let n = counter.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("canned-{n}")) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}

/// The headers a Streamable HTTP exchange needs, copied each way.
const REQUEST_HEADERS: [&str; 5] =
    ["content-type", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"];
const REPLY_HEADERS: [&str; 2] = ["content-type", "mcp-session-id"];

async fn passthrough(listen: String, upstream: String) {
    // The gateway's HTTP upstream client, and its URL parsed once, as the gateway does.
    let c = client();
    let upstream: axum::http::Uri = upstream.parse().expect("--upstream is an HTTP URL");
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::any(move |method: axum::http::Method, headers: HeaderMap, body: Bytes| {
            let (c, upstream) = (c.clone(), upstream.clone());
            async move { forward(&c, &upstream, method, &headers, body).await }
        }),
    );
    // As the gateway's listener: no Nagle (a streamed reply is written chunk by chunk).
    let l = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    let l = axum::serve::ListenerExt::tap_io(l, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(l, app).await.expect("serve");
}

async fn forward(
    c: &wire::Client,
    upstream: &axum::http::Uri,
    method: axum::http::Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = axum::http::Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = upstream.clone();
    for k in REQUEST_HEADERS {
        if let Some(v) = headers.get(k) {
            req.headers_mut().insert(k, v.clone());
        }
    }
    let resp = match c.send(req).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(resp.status());
    for k in REPLY_HEADERS {
        if let Some(v) = resp.headers().get(k) {
            out = out.header(k, v);
        }
    }
    out.body(axum::body::Body::new(resp.into_body()))
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}
