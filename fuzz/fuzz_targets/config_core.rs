//! The core's configuration readers (`src/config/*.rs`): `read_upstream`, `read_groups` and
//! `read_sampling` over any JSON, as every format (our TOML turned into JSON, `mcpServers` JSON, the
//! browser's object) reaches them. Never a panic; every refusal names where it is (`at` first); what
//! is accepted and validates starts an engine that survives a short life: upstreams that answer the
//! handshake and fail or ignore calls, providers that fail, time running from deadline to deadline.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::config::{read_groups, read_sampling, read_upstream};
use mcp_edge_gateway::limits::read_limits;
use mcp_edge_gateway::policy::{glob, read_policy};
use mcp_edge_gateway::principal::Principal;
use mcp_edge_gateway::{ErrorObject, Gateway, GatewayConfig, Id, Message, Output, SessionId, UpstreamId};
use serde_json::{json, Value};

/// A host with upstreams that answer like plain servers: the handshake, one tool `y`, and calls
/// that fail (even ids, after asking for a sampling) or never answer (odd ids); every store batch
/// succeeds and every sampling provider fails. The tool names the client is shown go to `shown`.
fn run(gw: &mut Gateway, now: u64, shown: &mut Vec<String>) {
    for _ in 0..100_000 {
        let Some(o) = gw.poll_output() else { return };
        match o {
            Output::ToUpstream { upstream, message: Message::Request { id: Id::Num(g), method, .. } } => {
                let r = match method.as_str() {
                    "server/discover" => Err(-32601),
                    "initialize" => Ok(json!({"protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}, "prompts": {}, "resources": {}},
                        "serverInfo": {"name": "up", "version": "1"}})),
                    "tools/list" => Ok(json!({"tools": [{"name": "y", "inputSchema": {"type": "object"}}]})),
                    "prompts/list" => Ok(json!({"prompts": []})),
                    "resources/list" => Ok(json!({"resources": []})),
                    "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
                    "tools/call" if g % 2 == 1 => continue,
                    "tools/call" => {
                        let ask = json!({"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
                            "maxTokens": 5});
                        let q = Message::request(Id::Num(900 + g), "sampling/createMessage", ask);
                        gw.handle_upstream(now, upstream, q, Some(g));
                        Err(-32603)
                    }
                    _ => Ok(json!({})),
                };
                let m = match r {
                    Ok(v) => Message::response(Id::Num(g), v),
                    Err(c) => Message::error(Some(Id::Num(g)), ErrorObject::new(c, "no")),
                };
                gw.handle_upstream(now, upstream, m, Some(g));
            }
            Output::ToClient { message: Message::Response { result, .. }, .. } => {
                for t in result.get("tools").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(n) = t.get("name").and_then(Value::as_str) {
                        shown.push(n.to_string());
                    }
                }
            }
            Output::Store { ticket, ops: _ } => gw.store_done(now, ticket, Ok(())),
            Output::Sample { job, .. } => gw.sampling_done(now, job, Err("the provider is down".into())),
            _ => {}
        }
    }
    panic!("the engine keeps producing output");
}

const YEAR_MS: u64 = 365 * 86_400_000;

/// The policy's globs, the slow obvious way: `*` any run, `?` one character.
fn glob_ref(p: &[char], n: &[char]) -> bool {
    // m[i][j]: p[i..] matches n[j..]
    let mut m = vec![vec![false; n.len() + 1]; p.len() + 1];
    m[p.len()][n.len()] = true;
    for i in (0..p.len()).rev() {
        for j in (0..=n.len()).rev() {
            m[i][j] = match p[i] {
                '*' => m[i + 1][j] || (j < n.len() && m[i][j + 1]),
                '?' => j < n.len() && m[i + 1][j + 1],
                c => j < n.len() && n[j] == c && m[i + 1][j + 1],
            };
        }
    }
    m[0][0]
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let mut cfg = GatewayConfig::default();
    // Upstreams: `upstreams` (a table of entries), or the whole input as one entry.
    let default_prefix = v.get("prefix").and_then(Value::as_bool).unwrap_or(true);
    let entries: Vec<(String, Value)> = match v.get("upstreams").and_then(Value::as_object) {
        Some(m) => m.iter().map(|(k, e)| (k.clone(), e.clone())).collect(),
        None => vec![("only".to_string(), v.clone())],
    };
    for (name, e) in &entries {
        let at = format!("upstreams.{name}");
        match read_upstream(&at, name, e, default_prefix) {
            Ok(Some((spec, _transport))) => {
                assert_eq!(&spec.name, name);
                cfg.upstreams.push(spec);
            }
            Ok(None) => {}
            Err(msg) => assert!(msg.starts_with(&at), "{msg:?} does not name {at}"),
        }
    }
    if let Some(g) = v.get("groups") {
        let before = cfg.upstreams.len();
        match read_groups("groups", g, &mut cfg) {
            Ok(()) => {
                assert_eq!(cfg.upstreams.len(), before);
                for g in &cfg.groups {
                    assert!(!g.members.is_empty());
                    assert!(g.members.iter().all(|&m| m < cfg.upstreams.len()));
                }
            }
            Err(msg) => assert!(msg.starts_with("groups"), "{msg:?}"),
        }
    }
    if let Some(s) = v.get("sampling") {
        match read_sampling("sampling", s, &["callback"]) {
            Ok(sc) => {
                for o in &sc.order {
                    assert!(o == "client" || o == "callback" || sc.provider(o).is_some(), "order names {o:?}");
                }
                for p in &sc.providers {
                    assert!(p.timeout_ms >= 1 && !p.model.is_empty() && !p.modalities.is_empty());
                }
                cfg.sampling = sc;
            }
            Err(msg) => assert!(msg.starts_with("sampling"), "{msg:?}"),
        }
    }
    match read_policy(v.get("policy")) {
        Ok(p) => {
            let mut names: Vec<String> = vec!["edge__load".into(), "notes__read_x".into(), String::new()];
            for r in &p.rules {
                names.extend(r.allow.iter().chain(&r.deny).map(|g| g.replace('*', "x")));
            }
            for r in &p.rules {
                for g in r.allow.iter().chain(&r.deny).take(8) {
                    for n in names.iter().take(16) {
                        let (pc, nc): (Vec<char>, Vec<char>) = (g.chars().collect(), n.chars().collect());
                        if pc.len() * nc.len() <= 1 << 16 {
                            assert_eq!(glob(g, n), glob_ref(&pc, &nc), "glob({g:?}, {n:?})");
                        }
                    }
                }
            }
            cfg.policy = p;
        }
        Err(msg) => assert!(msg.starts_with("policy"), "{msg:?}"),
    }
    match read_limits(v.get("limits")) {
        Ok(l) => cfg.limits = l,
        Err(msg) => assert!(msg.starts_with("limits"), "{msg:?}"),
    }
    let principal = cfg
        .policy
        .rules
        .first()
        .map(|r| Principal::new(r.principals.first().cloned().unwrap_or_else(|| "p".into()), r.scopes.clone()));
    // What the host would refuse to start with, or too large to be worth the time.
    if cfg.validate().is_err() || cfg.upstreams.len() > 16 {
        return;
    }
    cfg.request_timeout_ms = 1_000;
    cfg.startup_grace_ms = 500;
    let n = cfg.upstreams.len();
    let mut gw = Gateway::new(cfg).expect("a config that validates starts an engine");
    let mut now = 0;
    let mut shown = Vec::new();
    for u in 0..n {
        gw.upstream_connected(now, UpstreamId(u));
        run(&mut gw, now, &mut shown);
    }
    let s: SessionId = gw.open_session(now);
    if let Some(p) = principal {
        gw.set_session_principal(s, p);
    }
    let p = json!({"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}, "clientInfo": {"name": "f", "version": "1"}});
    gw.handle_client(now, s, Message::request(Id::Num(1), "initialize", p));
    gw.handle_client(now, s, Message::request(Id::Num(2), "tools/list", json!({})));
    run(&mut gw, now, &mut shown);
    let _ = gw.status();
    let mut id = 3;
    for round in 0..48 {
        // A few calls of every tool shown, then time runs to the next deadline.
        if round % 8 == 0 {
            for name in shown.clone().iter().take(8) {
                gw.handle_client(
                    now,
                    s,
                    Message::request(Id::Num(id), "tools/call", json!({"name": name, "arguments": {}})),
                );
                id += 1;
                run(&mut gw, now, &mut shown);
            }
        }
        // A host's clock never gets near u64::MAX: a deadline years away is "never".
        let Some(t) = gw.poll_timeout().filter(|t| *t < now + YEAR_MS) else { break };
        now = now.max(t);
        gw.handle_timeout(now);
        run(&mut gw, now, &mut shown);
    }
    let _ = gw.status();
});
