//! The engine (`Gateway`) fed an arbitrary sequence of what its host reports: clients opening,
//! sending requests, notifications, answers and raw bytes, and closing; upstream links coming up and
//! going down, upstreams answering the gateway's requests (well, badly or not at all), asking their
//! own questions and notifying; store batches succeeding or failing; sampling providers answering;
//! time passing; the gateway restarting on its store.
//!
//! Checked after every step, on everything the engine hands its host:
//! - no panic, and no endless output;
//! - a client only gets answers (results and errors) carrying ids it sent, each at most once, and
//!   only progress for tokens it sent; `related` always names one of its own requests;
//! - an upstream only gets answers to ids it sent, no more often than it sent them; the gateway's
//!   own request ids never repeat on a link, nor do its request ids towards a client;
//! - a deadline in the past is cleared by `handle_timeout` (a host would spin on it otherwise).
//!
//! At the end every store batch succeeds, every sampling job fails and time runs until nothing is
//! due: then every request of every open session has been answered exactly once, except the two
//! that are answered only when something else happens (`subscriptions/listen`, a stream that lasts
//! as long as the client wants, and `tasks/result`, which waits for its task to finish).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::config::{read_groups, read_sampling};
use mcp_edge_gateway::protocol::{self, meta};
use mcp_edge_gateway::store::{MemoryStore, StoreError, StoreOp};
use mcp_edge_gateway::{Era, ErrorObject, Gateway, GatewayConfig, Id, Message, Output, SessionId, UpstreamId};
use mcp_edge_gateway::{Snapshot, UpstreamSpec};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};

#[path = "engine/clients.rs"]
mod clients;
#[path = "engine/host.rs"]
mod host;
#[path = "engine/input.rs"]
mod input;
#[path = "engine/run.rs"]
mod run;
#[path = "engine/upstreams.rs"]
mod upstreams;
use input::*;

// -------------------------------------------------------------------------------------------------
// The harness's state (its behaviour: `host` checks what the engine hands out, `clients` and
// `upstreams` play both sides, `run` drives a scenario)
// -------------------------------------------------------------------------------------------------

const NAMES: [&str; 3] = ["a", "b", "c"];
/// Tools, prompts and resources the upstreams list (their own names).
const TOOLS: &[&str] = &["echo", "ask", "read_doc", "idem_put", "slow", "same"];
const URIS: &[&str] = &["file:///a.txt", "private:secret", "mem://b", "file:///c"];
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", "2026-07-28", "1999-01-01"];
const CODES: &[i64] = &[-32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002, -32020, -32022, -1, 0, 42];

struct SentReq {
    method: String,
    params: Option<Value>,
    answers: u32,
    /// The client cancelled it: an answer is then optional (MCP: the receiver should not send one).
    cancelled: bool,
}

struct Sess {
    id: SessionId,
    open: bool,
    next_id: i64,
    sent: HashMap<Id, SentReq>,
    /// Order of `sent`, for picking.
    order: Vec<Id>,
    tokens: HashSet<String>,
    /// The gateway's requests to this client: every id ever used, and those not answered yet.
    asked_ever: HashSet<Id>,
    asked: Vec<(Id, String)>,
}

#[derive(Default)]
struct Harvest {
    names: Vec<String>,
    prompts: Vec<String>,
    uris: Vec<String>,
    cursors: Vec<String>,
    tasks: Vec<String>,
    /// A call answered with `input_required`: (session index, method, params, requestState, keys).
    inputs: Vec<(usize, String, Option<Value>, Value, Vec<String>)>,
}

fn remember(list: &mut Vec<String>, s: &str) {
    if !list.iter().any(|x| x == s) {
        if list.len() >= 24 {
            list.remove(0);
        }
        list.push(s.to_string());
    }
}

struct H {
    cfg: GatewayConfig,
    gw: Gateway,
    now: u64,
    n: usize,
    sess: Vec<Sess>,
    by_sid: HashMap<SessionId, usize>,
    /// The gateway's requests to each upstream not answered yet: (id, method, params).
    up_reqs: Vec<Vec<(i64, String, Option<Value>)>>,
    up_ids: Vec<HashSet<i64>>,
    /// Each upstream's requests to the gateway: times sent, times answered.
    up_asked: Vec<HashMap<Id, (u32, u32)>>,
    held: VecDeque<(u64, Vec<StoreOp>)>,
    last_ticket: u64,
    store: MemoryStore,
    samples: Vec<(u64, String)>,
    jobs_seen: HashSet<u64>,
    harvest: Harvest,
    next_up_req: i64,
    auto: Vec<u8>,
    modern_server: Vec<bool>,
    connected: Vec<bool>,
    reconnect: bool,
}

fn pick<T>(v: &[T], i: u8) -> Option<&T> {
    (!v.is_empty()).then(|| &v[i as usize % v.len()])
}

fn set_at(target: &mut Value, spot: Spot, v: Value) {
    match spot {
        Spot::Whole => *target = v,
        Spot::Meta => {
            if let Some(o) = target.as_object_mut() {
                o.insert("_meta".into(), v);
            }
        }
        Spot::Key(k) => {
            if let Some(o) = target.as_object_mut() {
                o.insert(KEYS[k as usize % KEYS.len()].into(), v);
            }
        }
    }
}

/// Write what the store holds as a `store_restore` input (seeds for that target).
fn dump_store(snap: &Snapshot, dir: &std::path::Path) {
    use mcp_edge_gateway::store::Table;
    let rows = |t: Table| -> Vec<Value> { snap.table(t).iter().map(|(k, v)| json!([k, v])).collect() };
    if Table::ALL.iter().all(|t| snap.table(*t).is_empty()) {
        return;
    }
    let doc = json!({"wall": 1_700_000_000_000u64, "cache": rows(Table::Cache), "queue": rows(Table::Queue),
        "meta": rows(Table::Meta)})
    .to_string();
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    doc.hash(&mut h);
    let _ = std::fs::write(dir.join(format!("{:016x}.json", h.finish())), doc);
}

/// `ENGINE_TRACE=1` prints the setup, each action and what the clients got (to read a crash, or
/// to see how deep the corpus goes).
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("ENGINE_TRACE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else { return };
    let Some(mut h) = H::new(&setup) else { return };
    if trace() {
        eprintln!("setup: {setup:?}");
    }
    if setup.connected {
        for u in 0..h.n {
            h.connect(UpstreamId(u));
        }
        h.auto();
    }
    let mut steps = 0;
    while !u.is_empty() && steps < 400 {
        let Ok(a) = Action::arbitrary(&mut u) else { break };
        if trace() {
            eprintln!("[{} ms] {a:?}", h.now);
        }
        h.step(a);
        steps += 1;
    }
    h.finish(setup.end_down);
    let _ = h.gw.status();
    if let Some(dir) = std::env::var_os("ENGINE_DUMP_STORE") {
        dump_store(&h.store.load_now(), std::path::Path::new(&dir));
    }
    if trace() {
        for (i, s) in h.sess.iter().enumerate() {
            let answered = s.sent.values().filter(|r| r.answers > 0).count();
            let methods: Vec<&str> = s.order.iter().map(|id| s.sent[id].method.as_str()).collect();
            eprintln!("session {i}: open {}, {answered}/{} answered: {methods:?}", s.open, s.sent.len());
        }
        eprintln!(
            "harvest: {} names, {} cursors, {} tasks, {} input_required",
            h.harvest.names.len(),
            h.harvest.cursors.len(),
            h.harvest.tasks.len(),
            h.harvest.inputs.len()
        );
    }
});
