//! The cache and the offline queue, driven deterministically: what is served from the cache and
//! when, what is queued, that nothing is acknowledged before it is durable, and that replays run
//! each call once across crashes.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::{GatewayConfig, Id, Message, SessionId};
use serde_json::{json, Value};

fn queue_cfg(rules: &[&str]) -> GatewayConfig {
    let mut a = spec("a");
    a.offline_queue = rules.iter().map(|s| s.to_string()).collect();
    GatewayConfig { upstreams: vec![a], ..Default::default() }
}

/// Upstream `a` (legacy) configured with these queue rules, never connected yet.
fn offline_sim(rules: &[&str]) -> Sim {
    let mut sim = Sim::new(queue_cfg(rules), vec![FakeServer::legacy(&["echo", "slow"])]);
    // The first connection attempt failed: the upstream is known to be down.
    sim.disconnect(0);
    sim
}

fn calls_seen(sim: &Sim, u: usize) -> Vec<Value> {
    sim.servers[u]
        .seen
        .iter()
        .filter_map(|m| match m {
            Message::Request { method, params, .. } if method == "tools/call" => params.clone(),
            _ => None,
        })
        .collect()
}

fn task_id(r: &Value) -> String {
    r["_meta"]["io.github.mcp-edge-gateway/queued"]["taskId"].as_str().expect("a queued result").to_string()
}

/// The task ids of queue entries whose "running" state is in a store write not yet done.
fn held_running(sim: &Sim) -> Vec<String> {
    sim.held
        .iter()
        .flat_map(|(_, ops)| ops)
        .filter_map(|op| match op {
            mcp_edge_gateway::StoreOp::Put { table: mcp_edge_gateway::Table::Queue, value, .. } => {
                let e: Value = serde_json::from_str(value).ok()?;
                (e["state"] == "running").then(|| e["id"].as_str().unwrap_or_default().to_string())
            }
            _ => None,
        })
        .collect()
}

fn queue_calls(sim: &mut Sim, s: SessionId, n: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = sim.call(s, Id::Num(100 + i), "tools/call", json!({"name": "a__echo", "arguments": {"n": i}}));
            let r = r.expect("queued, not an error");
            assert!(r["content"][0]["text"].as_str().unwrap().starts_with("Queued:"), "{r}");
            assert_eq!(r["isError"], json!(false));
            task_id(&r)
        })
        .collect()
}

#[test]
fn a_queued_call_is_acknowledged_only_once_it_is_durable() {
    let mut sim = offline_sim(&["echo"]);
    let s = sim.legacy_client(json!({}));
    sim.hold_store = true;
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__echo", "arguments": {}})));
    assert!(sim.take(s).is_empty(), "nothing may be acknowledged before the store confirms");
    assert_eq!(sim.held.len(), 1);
    sim.hold_store = false;
    sim.release_store();
    let got = sim.take(s);
    assert!(matches!(&got[..], [Message::Response { id: Id::Num(1), .. }]), "{got:?}");
    assert_eq!(sim.store.load_now().table(mcp_edge_gateway::Table::Queue).len(), 1);
}

#[test]
fn queued_calls_replay_in_order_exactly_once_when_the_upstream_is_back() {
    let mut sim = offline_sim(&["echo"]);
    let s = sim.legacy_client(json!({}));
    let ids = queue_calls(&mut sim, s, 5);
    assert!(calls_seen(&sim, 0).is_empty());
    sim.connect(0);
    let seen = calls_seen(&sim, 0);
    let ns: Vec<_> = seen.iter().map(|p| p["arguments"]["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, [0, 1, 2, 3, 4]);
    for (p, id) in seen.iter().zip(&ids) {
        assert_eq!(p["_meta"]["io.github.mcp-edge-gateway/idempotencyKey"], json!(id));
    }
    for (i, id) in ids.iter().enumerate() {
        let r = sim.call(s, Id::Num(300 + i as i64), "tasks/result", json!({"taskId": id})).unwrap();
        assert_eq!(r["echoed"]["arguments"]["n"], json!(i), "{r}");
        assert_eq!(r["_meta"]["io.modelcontextprotocol/related-task"]["taskId"], json!(id));
    }
    // Reconnecting again runs nothing twice.
    sim.disconnect(0);
    sim.connect(0);
    assert_eq!(calls_seen(&sim, 0).len(), 5);
}

#[test]
fn a_crash_with_calls_queued_loses_none_and_runs_each_once() {
    let mut sim = offline_sim(&["echo"]);
    let s = sim.legacy_client(json!({}));
    let ids = queue_calls(&mut sim, s, 50);
    let summary = sim.restart(queue_cfg(&["echo"]));
    assert!(summary.contains("restored 50 queued"), "{summary}");
    sim.connect(0);
    let ns: Vec<_> = calls_seen(&sim, 0).iter().map(|p| p["arguments"]["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, (0..50).collect::<Vec<_>>());
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tasks/get", json!({"taskId": ids[49]})).unwrap();
    assert_eq!(r["status"], json!("completed"));
}

#[test]
fn a_crash_mid_replay_never_sends_a_call_twice() {
    let mut sim = offline_sim(&["echo"]);
    let s = sim.legacy_client(json!({}));
    let ids = queue_calls(&mut sim, s, 3);
    // The upstream comes back, the first call is written as running and sent, and the gateway
    // dies before the answer is recorded.
    sim.hold_store = true;
    sim.connect(0);
    assert!(calls_seen(&sim, 0).is_empty(), "nothing reaches the upstream before its running state is durable");
    assert_eq!(held_running(&sim), [ids[0].clone()], "the first entry's running state is being written");
    sim.release_store(); // "running" for the first entry is durable; the call goes out
    sim.hold_store = true;
    let sent = calls_seen(&sim, 0).len();
    assert_eq!(sent, 1);
    sim.hold_store = false;
    sim.restart(queue_cfg(&["echo"]));
    sim.connect(0);
    let ns: Vec<_> = calls_seen(&sim, 0).iter().map(|p| p["arguments"]["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, [0, 1, 2], "the in-doubt call is not sent again");
    let s = sim.legacy_client(json!({}));
    let e = sim.call(s, Id::Num(1), "tasks/result", json!({"taskId": ids[0]})).unwrap_err();
    assert!(e.message.contains("in doubt"), "{}", e.message);
    assert!(sim.call(s, Id::Num(2), "tasks/result", json!({"taskId": ids[1]})).is_ok());
}

#[test]
fn an_idempotent_tool_interrupted_mid_replay_is_sent_again_with_the_same_key() {
    // What makes the call safe to resend is the tool's own annotation, seen in its listing: the
    // rule is "@idempotentHint" alone, and idem_put says idempotentHint (echo does not).
    let cfg = || queue_cfg(&["@idempotentHint"]);
    let mut sim = Sim::new(cfg(), vec![FakeServer::legacy(&["idem_put", "echo"])]);
    sim.connect(0);
    sim.disconnect(0);
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "a__idem_put", "arguments": {"n": 1}})).unwrap();
    let id = task_id(&r);
    // The upstream is back; the entry is written as running (held), sent, and the gateway dies
    // before the answer is recorded.
    sim.hold_store = true;
    sim.connect(0);
    assert!(calls_seen(&sim, 0).is_empty(), "nothing is sent before the running state is durable");
    assert_eq!(held_running(&sim), vec![id.clone()]);
    sim.release_store();
    assert_eq!(calls_seen(&sim, 0).len(), 1);
    sim.hold_store = false;
    sim.restart(cfg()); // the held write of the answer dies with the gateway
    sim.connect(0);
    let seen = calls_seen(&sim, 0);
    assert_eq!(seen.len(), 2, "an idempotent tool's in-doubt call is sent again: {seen:?}");
    let key = "io.github.mcp-edge-gateway/idempotencyKey";
    assert_eq!(seen[0]["_meta"][key], json!(id));
    assert_eq!(seen[1]["_meta"][key], json!(id), "with the same idempotency key");
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(2), "tasks/result", json!({"taskId": id})).unwrap();
    assert_eq!(r["echoed"]["arguments"]["n"], json!(1), "{r}");
}

#[test]
fn a_full_store_refuses_the_call_and_queues_nothing() {
    let mut sim = offline_sim(&["echo"]);
    sim.store.max_bytes = Some(2_000);
    let s = sim.legacy_client(json!({}));
    let big = "x".repeat(3_000);
    let e = sim.call(s, Id::Num(1), "tools/call", json!({"name": "a__echo", "arguments": {"pad": big}})).unwrap_err();
    assert_eq!(e.code, -32000);
    assert!(e.message.contains("could not be queued") && e.message.contains("full"), "{}", e.message);
    let r = sim.call(s, Id::Num(2), "tasks/list", json!({})).unwrap();
    assert_eq!(r["tasks"], json!([]));
    sim.connect(0);
    assert!(calls_seen(&sim, 0).is_empty(), "a refused call never runs");
}

#[test]
fn tools_not_marked_queueable_fail_as_before() {
    let mut sim = offline_sim(&["echo"]);
    let s = sim.legacy_client(json!({}));
    let e = sim.call(s, Id::Num(1), "tools/call", json!({"name": "a__slow"})).unwrap_err();
    assert_eq!(e.code, -32000);
    assert!(e.message.contains("unavailable"), "{}", e.message);
}

#[test]
fn a_legacy_client_asking_for_a_task_gets_one_and_can_cancel_it() {
    let mut sim = offline_sim(&["echo"]);
    let s = sim.legacy_client(json!({"tasks": {"requests": {"tools": {"call": {}}}}}));
    let mk = |n: i64| json!({"name": "a__echo", "arguments": {"n": n}, "task": {"ttl": 120000}});
    let r = sim.call(s, Id::Num(1), "tools/call", mk(1)).unwrap();
    assert_eq!(r["task"]["status"], json!("working"));
    let first = r["task"]["taskId"].as_str().unwrap().to_string();
    let r = sim.call(s, Id::Num(2), "tools/call", mk(2)).unwrap();
    let second = r["task"]["taskId"].as_str().unwrap().to_string();
    let r = sim.call(s, Id::Num(3), "tasks/cancel", json!({"taskId": second})).unwrap();
    assert_eq!(r["status"], json!("cancelled"));
    // tasks/result blocks until the task is done.
    sim.send(s, Message::request(Id::Num(4), "tasks/result", json!({"taskId": first})));
    assert!(sim.take(s).is_empty());
    sim.connect(0);
    let got = sim.take(s);
    assert!(
        got.iter().any(|m| matches!(m, Message::Response { id: Id::Num(4), result, .. } if result["echoed"]["arguments"]["n"] == json!(1))),
        "{got:?}"
    );
    assert_eq!(calls_seen(&sim, 0).len(), 1, "the cancelled call never ran");
    let e = sim.call(s, Id::Num(5), "tasks/cancel", json!({"taskId": first})).unwrap_err();
    assert_eq!(e.code, -32602);
}

/// Found by fuzzing (`fuzz/regressions/engine/task-ttl-above-i64-max-deadline-stays-due`): a
/// finished task's expiry past `i64::MAX` wrapped to a deadline at 0 that `handle_timeout` never
/// cleared, so a host would spin on it.
#[test]
fn a_task_ttl_past_the_end_of_time_keeps_the_task_and_no_deadline_stays_due() {
    for ttl in [u64::MAX, i64::MAX as u64 + 1, 10_000_000_000_000_000_000] {
        let mut sim = offline_sim(&["echo"]);
        sim.gw.set_wall_clock(0, 1_800_000_000_000);
        let s = sim.legacy_client(json!({"tasks": {"requests": {"tools": {"call": {}}}}}));
        let call = json!({"name": "a__echo", "arguments": {}, "task": {"ttl": ttl}});
        let r = sim.call(s, Id::Num(1), "tools/call", call).unwrap();
        let id = r["task"]["taskId"].as_str().expect("a task").to_string();
        sim.connect(0);
        for _ in 0..3 {
            sim.advance(3_600_000);
            if let Some(t) = sim.gw.poll_timeout() {
                assert!(t > sim.now, "ttl {ttl}: a deadline at {t} is still due at {}", sim.now);
            }
        }
        let r = sim.call(s, Id::Num(2), "tasks/get", json!({"taskId": id})).unwrap();
        assert_eq!(r["status"], json!("completed"), "ttl {ttl}: {r}");
    }
}

#[test]
fn queued_calls_belong_to_their_auth_context() {
    let mut sim = offline_sim(&["echo"]);
    let alice = sim.legacy_client(json!({}));
    sim.gw.set_session_auth(alice, "Bearer alice");
    let id = queue_calls(&mut sim, alice, 1).remove(0);
    let bob = sim.legacy_client(json!({}));
    sim.gw.set_session_auth(bob, "Bearer bob");
    assert_eq!(sim.call(bob, Id::Num(1), "tasks/get", json!({"taskId": id})).unwrap_err().code, -32602);
    assert!(sim.call(alice, Id::Num(1), "tasks/get", json!({"taskId": id})).is_ok());
}

#[test]
fn annotation_rules_use_the_tools_the_gateway_last_saw_even_across_a_restart() {
    let cfg = || queue_cfg(&["@idempotentHint"]);
    let mut sim = Sim::new(cfg(), vec![FakeServer::legacy(&["idem_put", "echo"])]);
    sim.connect(0); // lists the tools: idem_put is idempotent, echo is not
    sim.disconnect(0);
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "a__idem_put", "arguments": {}})).unwrap();
    assert!(r["content"][0]["text"].as_str().unwrap().starts_with("Queued:"), "{r}");
    assert_eq!(sim.call(s, Id::Num(2), "tools/call", json!({"name": "a__echo"})).unwrap_err().code, -32000);
    // A new gateway on the same store still knows which tools are idempotent.
    sim.restart(cfg());
    sim.disconnect(0);
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(3), "tools/call", json!({"name": "a__idem_put", "arguments": {}})).unwrap();
    assert!(r["content"][0]["text"].as_str().unwrap().starts_with("Queued:"), "{r}");
    sim.connect(0);
    assert_eq!(calls_seen(&sim, 0).len(), 2);
}

#[test]
fn a_modern_client_declaring_the_tasks_extension_gets_a_task_and_polls_it() {
    let mut sim = offline_sim(&["echo"]);
    let s = sim.gw.open_session(sim.now);
    let caps = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let params = json!({"name": "a__echo", "arguments": {"n": 7}, "_meta": modern_meta(caps.clone())});
    let r = sim.call(s, Id::Num(1), "tools/call", params).unwrap();
    assert_eq!(r["resultType"], json!("task"), "{r}");
    assert_eq!(r["status"], json!("working"));
    assert!(r["ttlMs"].is_u64() && r["pollIntervalMs"].is_u64(), "{r}");
    let id = r["taskId"].as_str().unwrap().to_string();
    sim.connect(0);
    let t = sim.call(s, Id::Num(2), "tasks/get", json!({"taskId": id, "_meta": modern_meta(caps)})).unwrap();
    assert_eq!(t["resultType"], json!("complete"));
    assert_eq!(t["status"], json!("completed"));
    assert_eq!(t["result"]["echoed"]["arguments"]["n"], json!(7), "{t}");
}

/// The host reports the last `tools/call` sent to upstream `a` as never delivered.
fn undeliver_last_call(sim: &mut Sim) {
    let gid = sim.servers[0]
        .seen
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::Request { id: Id::Num(g), method, .. } if method == "tools/call" => Some(*g),
            _ => None,
        })
        .expect("a tools/call was sent");
    sim.gw.upstream_undelivered(sim.now, mcp_edge_gateway::UpstreamId(0), gid);
}

#[test]
fn a_call_the_host_could_not_deliver_is_queued_not_failed() {
    let mut sim = Sim::new(queue_cfg(&["echo", "slow"]), vec![FakeServer::legacy(&["echo", "slow"])]);
    sim.connect(0);
    let s = sim.legacy_client(json!({}));
    // The upstream died after the last call; this one meets a refused connection.
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__slow", "arguments": {"n": 1}})));
    undeliver_last_call(&mut sim);
    sim.disconnect(0);
    let got = sim.take(s);
    let r = got
        .iter()
        .find_map(|m| match m {
            Message::Response { id: Id::Num(1), result, .. } => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no result: {got:?}"));
    assert!(r["content"][0]["text"].as_str().unwrap().starts_with("Queued:"), "{r}");
}

#[test]
fn a_replayed_call_the_host_could_not_deliver_is_not_in_doubt() {
    let mut sim = offline_sim(&["slow"]);
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "a__slow", "arguments": {}})).unwrap();
    let id = task_id(&r);
    sim.connect(0); // replay sends it; `slow` never answers
    undeliver_last_call(&mut sim);
    // The host's reason names the upstream's private address; it goes to the log, not to clients.
    let reason = "cannot reach http://10.0.0.7:9000/mcp: connection refused";
    sim.gw.upstream_disconnected(sim.now, mcp_edge_gateway::UpstreamId(0), reason);
    sim.disconnect(0);
    let t = sim.call(s, Id::Num(2), "tasks/get", json!({"taskId": id})).unwrap();
    assert_eq!(t["status"], json!("working"), "queued again, not failed in doubt: {t}");
    let admin = sim.gw.queue_entries();
    assert!(admin["entries"][0]["message"].as_str().is_some_and(|m| m.contains("will be sent again")), "{admin}");
    let seen = format!("{t} {} {admin}", sim.call(s, Id::Num(3), "tasks/list", json!({})).unwrap());
    assert!(!seen.contains("10.0.0.7"), "the queue shows the upstream's address: {seen}");
}

// -------------------------------------------------------------------------------------------------
// Cache
// -------------------------------------------------------------------------------------------------

fn reads(sim: &Sim, u: usize) -> usize {
    sim.servers[u].seen.iter().filter(|m| m.method() == Some("resources/read")).count()
}

#[test]
fn fresh_entries_are_served_without_asking_and_stale_ones_only_while_the_upstream_is_down() {
    let mut a = spec("a");
    a.cache_ttl_ms.push(("resources/read".into(), 60_000));
    let cfg = GatewayConfig { upstreams: vec![a], ..Default::default() };
    let mut server = FakeServer::legacy(&["echo"]);
    server.resources = vec!["demo://x".into()];
    let mut sim = Sim::new(cfg, vec![server]);
    sim.connect(0);
    let s = sim.legacy_client(json!({}));
    let first = sim.call(s, Id::Num(1), "resources/read", json!({"uri": "demo://x"})).unwrap();
    let again = sim.call(s, Id::Num(2), "resources/read", json!({"uri": "demo://x"})).unwrap();
    assert_eq!(reads(&sim, 0), 1, "the second read is a cache hit");
    assert_eq!(first, again);
    sim.advance(61_000);
    sim.call(s, Id::Num(3), "resources/read", json!({"uri": "demo://x"})).unwrap();
    assert_eq!(reads(&sim, 0), 2, "an expired entry is fetched again while the upstream is up");
    sim.disconnect(0);
    sim.advance(61_000);
    let stale = sim.call(s, Id::Num(4), "resources/read", json!({"uri": "demo://x"})).unwrap();
    assert_eq!(stale["contents"], first["contents"]);
    assert_eq!(stale["_meta"]["io.github.mcp-edge-gateway/cache"]["stale"], json!(true));
    assert!(stale["_meta"]["io.github.mcp-edge-gateway/cache"]["ageMs"].as_u64().unwrap() >= 61_000);
    let st = sim.gw.status();
    assert_eq!((st["cache"]["hits"].as_u64(), st["cache"]["stale"].as_u64()), (Some(1), Some(1)), "{st}");
}

#[test]
fn lists_of_a_down_upstream_are_served_stale_and_list_changed_invalidates() {
    let mut sim = Sim::with(vec![("a", FakeServer::modern(&["echo", "other"])), ("b", FakeServer::legacy(&["echo"]))]);
    let s = sim.legacy_client(json!({}));
    let page = sim.call(s, Id::Num(1), "tools/list", json!({})).unwrap();
    assert_eq!(page["tools"].as_array().unwrap().len(), 3, "a's two tools and b's, merged");
    sim.disconnect(0);
    sim.advance(1_500); // past the upstream's ttlMs
    let stale = sim.call(s, Id::Num(2), "tools/list", json!({})).unwrap();
    assert_eq!(stale["tools"], page["tools"]);
    assert_eq!(stale["_meta"]["io.github.mcp-edge-gateway/cache"]["stale"], json!(true));
    assert_eq!(stale["_meta"]["io.github.mcp-edge-gateway/cache"]["offline"], json!(true));
    assert!(stale.get("nextCursor").is_none(), "b's live page is merged after a's stale one");
    // An upstream's list_changed drops what was cached of that list.
    sim.connect(0);
    sim.gw.handle_upstream(
        sim.now,
        mcp_edge_gateway::UpstreamId(0),
        Message::notification("notifications/tools/list_changed", None),
        None,
    );
    sim.settle();
    sim.disconnect(0);
    let r = sim.call(s, Id::Num(3), "tools/list", json!({})).unwrap();
    let names: Vec<_> = r["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["b__echo"], "nothing cached of a's list any more");
}

#[test]
fn private_entries_are_never_served_to_another_auth_context() {
    let mut server = FakeServer::legacy(&["echo"]);
    server.resources = vec!["private://me".into()];
    let mut sim = Sim::new(GatewayConfig { upstreams: vec![spec("a")], ..Default::default() }, vec![server]);
    sim.connect(0);
    let alice = sim.legacy_client(json!({}));
    sim.gw.set_session_auth(alice, "Bearer alice");
    let bob = sim.legacy_client(json!({}));
    sim.gw.set_session_auth(bob, "Bearer bob");
    let anonymous = sim.legacy_client(json!({}));
    let mine = sim.call(alice, Id::Num(1), "resources/read", json!({"uri": "private://me"})).unwrap();
    assert_eq!(mine["cacheScope"], json!("private"));
    sim.disconnect(0);
    let again = sim.call(alice, Id::Num(2), "resources/read", json!({"uri": "private://me"})).unwrap();
    assert_eq!(again["contents"], mine["contents"]);
    assert_eq!(again["_meta"]["io.github.mcp-edge-gateway/cache"]["stale"], json!(true));
    for (who, s) in [("bob", bob), ("anonymous", anonymous)] {
        let r = sim.call(s, Id::Num(3), "resources/read", json!({"uri": "private://me"}));
        assert!(r.is_err(), "{who} was served alice's private entry: {r:?}");
    }
}
