//! Upstream groups: one namespace over members serving the same items, routing to the first healthy
//! member, breakers on fake time, failover only where no call can run twice, the retry budget; and
//! aggregated lists merged into one page.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::config::read_groups;
use mcp_edge_gateway::{GatewayConfig, Id};
use serde_json::{json, Value};

/// Upstreams `local` and `cloud` in group `g` (with `settings`), plus a plain upstream `other`.
fn group_sim(local: FakeServer, cloud: FakeServer, settings: Value) -> Sim {
    let mut cfg = GatewayConfig { upstreams: vec![spec("local"), spec("cloud"), spec("other")], ..Default::default() };
    let mut g = json!({"members": ["local", "cloud"]});
    if let (Some(o), Some(extra)) = (g.as_object_mut(), settings.as_object()) {
        o.extend(extra.clone());
    }
    read_groups("groups", &json!({ "g": g }), &mut cfg).unwrap();
    let mut sim = Sim::new(cfg, vec![local, cloud, FakeServer::legacy(&["ping_me"])]);
    for u in 0..3 {
        sim.connect(u);
    }
    sim
}

fn tools() -> FakeServer {
    FakeServer::legacy(&["echo", "idem_echo", "read_file"])
}

fn names(r: &Value) -> Vec<String> {
    r["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

fn breaker(sim: &Sim, member: &str) -> String {
    let st = sim.gw.status();
    let m = st["groups"][0]["members"].as_array().unwrap().iter().find(|m| m["name"] == member).unwrap().clone();
    m["breaker"].as_str().unwrap().to_string()
}

#[test]
fn a_group_is_one_namespace_served_by_its_first_member() {
    let mut cloud = tools();
    cloud.tools.push("cloud_only".into());
    let mut sim = group_sim(tools(), cloud, json!({}));
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tools/list", json!({})).unwrap();
    assert_eq!(names(&r), ["g__echo", "g__idem_echo", "g__read_file", "g__cloud_only", "other__ping_me"]);
    assert!(r.get("nextCursor").is_none(), "three upstreams fit one page");
    assert!(!sim.logs.iter().any(|l| l.contains("collision") || l.contains("offered by")), "{:?}", sim.logs);
    for i in 0..5 {
        let r = sim.call(s, Id::Num(10 + i), "tools/call", json!({"name": "g__echo", "arguments": {}})).unwrap();
        assert_eq!(r["echoed"]["name"], "echo");
    }
    assert_eq!((sim.calls_seen(0), sim.calls_seen(1)), (5, 0), "the preferred member serves");
    sim.call(s, Id::Num(20), "tools/call", json!({"name": "g__cloud_only"})).unwrap();
    assert_eq!(sim.calls_seen(1), 1, "an item only one member has goes to that member");
    assert_eq!(sim.gw.status()["groups"][0]["serving"], "local");
}

#[test]
fn calls_that_never_reached_a_member_go_to_the_next_whatever_the_tool() {
    let mut sim = group_sim(tools(), tools(), json!({}));
    let s = sim.legacy_client(json!({}));
    sim.disconnect(0);
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "g__echo"})).unwrap();
    assert_eq!(r["echoed"]["name"], "echo");
    assert_eq!((sim.calls_seen(0), sim.calls_seen(1)), (0, 1));
    // Back up: traffic returns to the preferred member.
    sim.connect(0);
    sim.call(s, Id::Num(2), "tools/call", json!({"name": "g__echo"})).unwrap();
    assert_eq!((sim.calls_seen(0), sim.calls_seen(1)), (1, 1));
}

#[test]
fn a_call_in_flight_when_its_member_dies_fails_over_only_if_safe() {
    let mut sim = group_sim(tools(), tools(), json!({}));
    let s = sim.legacy_client(json!({}));
    sim.servers[0].hung = true;
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(1), "tools/call", json!({"name": "g__echo"})));
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(2), "tools/call", json!({"name": "g__idem_echo"})));
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(3), "tools/call", json!({"name": "g__read_file"})));
    sim.disconnect(0);
    let got = sim.take(s);
    let answer = |id: i64| {
        got.iter()
            .find(|m| match m {
                mcp_edge_gateway::Message::Response { id: x, .. } => *x == Id::Num(id),
                mcp_edge_gateway::Message::Error { id: Some(x), .. } => *x == Id::Num(id),
                _ => false,
            })
            .cloned()
            .unwrap()
    };
    match answer(1) {
        mcp_edge_gateway::Message::Error { error, .. } => {
            assert!(error.message.contains("in doubt"), "{}", error.message);
            assert_eq!(error.data.as_ref().unwrap()["inDoubt"], true);
        }
        m => panic!("a plain call may have run: it must not be repeated, got {m:?}"),
    }
    for id in [2, 3] {
        assert!(matches!(answer(id), mcp_edge_gateway::Message::Response { .. }), "{id}: {:?}", answer(id));
    }
    assert_eq!(sim.calls_seen(1), 2, "only the idempotent and read-only calls went to the other member");
    assert_eq!(sim.gw.stats().in_doubt, 1);
}

#[test]
fn a_hanging_member_times_out_opens_its_breaker_and_a_probe_closes_it() {
    let settings = json!({"firstByteTimeoutMs": 1000,
        "breaker": {"failures": 3, "cooldownMs": 5000, "maxCooldownMs": 20000, "probeTimeoutMs": 1000}});
    let mut sim = group_sim(tools(), tools(), settings);
    let s = sim.legacy_client(json!({}));
    sim.servers[0].hung = true;
    // Three idempotent calls: each waits out the first-byte timeout, then the other member answers.
    for i in 0..3 {
        sim.send(s, mcp_edge_gateway::Message::request(Id::Num(i), "tools/call", json!({"name": "g__idem_echo"})));
        assert!(sim.take(s).is_empty(), "still waiting on the hanging member");
        sim.advance(1000);
        let got = sim.take(s);
        assert!(matches!(got.last(), Some(mcp_edge_gateway::Message::Response { .. })), "{got:?}");
    }
    assert_eq!(breaker(&sim, "local"), "open");
    assert!(
        sim.logs.iter().any(|l| l.contains("\"local\" ejected for 5000 ms: 3 failures in a row")),
        "{:?}",
        sim.logs
    );
    // Open: calls go straight to the other member, at once.
    let before = sim.calls_seen(0);
    for i in 10..15 {
        sim.call(s, Id::Num(i), "tools/call", json!({"name": "g__echo"})).unwrap();
    }
    assert_eq!(sim.calls_seen(0), before, "no call went to the ejected member");
    assert_eq!(sim.gw.status()["groups"][0]["serving"], "cloud");
    // Cooldown over: half-open, probed with ping; still hanging, so open again for twice as long.
    let pings = |sim: &Sim| {
        sim.servers[0]
            .seen
            .iter()
            .filter(|m| matches!(m, mcp_edge_gateway::Message::Request { method, .. } if method == "ping"))
            .count()
    };
    sim.advance(5000);
    assert_eq!(breaker(&sim, "local"), "half-open");
    assert_eq!(pings(&sim), 1);
    sim.advance(1000);
    assert_eq!(breaker(&sim, "local"), "open");
    assert!(sim.logs.iter().any(|l| l.contains("ejected for 10000 ms: its probe failed")), "{:?}", sim.logs);
    // It recovers; the next probe closes the breaker and traffic returns.
    sim.servers[0].hung = false;
    sim.advance(10_000);
    assert_eq!(pings(&sim), 2);
    assert_eq!(breaker(&sim, "local"), "closed");
    assert!(sim.logs.iter().any(|l| l.contains("\"local\" restored")), "{:?}", sim.logs);
    sim.call(s, Id::Num(30), "tools/call", json!({"name": "g__echo"})).unwrap();
    assert_eq!(sim.calls_seen(0), before + 1);
}

#[test]
fn a_plain_call_that_times_out_is_in_doubt_and_never_repeated() {
    let mut sim = group_sim(tools(), tools(), json!({"firstByteTimeoutMs": 500}));
    let s = sim.legacy_client(json!({}));
    sim.servers[0].hung = true;
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(1), "tools/call", json!({"name": "g__echo"})));
    sim.advance(500);
    let e = match sim.take(s).pop() {
        Some(mcp_edge_gateway::Message::Error { error, .. }) => error,
        m => panic!("{m:?}"),
    };
    assert_eq!(e.code, -32001);
    assert!(e.message.contains("in doubt"), "{}", e.message);
    assert_eq!(sim.calls_seen(1), 0);
    // The hanging member was told to stop.
    assert!(sim.servers[0].seen.iter().any(
        |m| matches!(m, mcp_edge_gateway::Message::Notification { method, .. } if method == "notifications/cancelled")
    ));
}

#[test]
fn server_errors_count_against_a_member_and_safe_calls_move_on() {
    let mut local = tools();
    local.failing = true;
    let mut sim = group_sim(local, tools(), json!({"breaker": {"failures": 2}}));
    let s = sim.legacy_client(json!({}));
    // A plain call answered with a server error: the error is the answer (it ran, it failed).
    let e = sim.call(s, Id::Num(1), "tools/call", json!({"name": "g__echo"})).unwrap_err();
    assert_eq!(e.code, -32603);
    assert_eq!(sim.calls_seen(1), 0);
    // An idempotent one goes to the other member.
    let r = sim.call(s, Id::Num(2), "tools/call", json!({"name": "g__idem_echo"})).unwrap();
    assert_eq!(r["echoed"]["name"], "idem_echo");
    assert_eq!(breaker(&sim, "local"), "open", "two server errors in a row");
    // Unknown tools and caller mistakes are not the member's failure.
    let mut sim = group_sim(tools(), tools(), json!({"breaker": {"failures": 1}}));
    let s = sim.legacy_client(json!({}));
    let e = sim.call(s, Id::Num(1), "tools/call", json!({"name": "g__nope"})).unwrap_err();
    assert_eq!(e.code, -32602);
    assert_eq!(breaker(&sim, "local"), "closed");
}

#[test]
fn during_an_outage_extra_attempts_stay_within_the_retry_budget() {
    let mut local = tools();
    local.failing = true;
    let settings = json!({"breaker": {"failures": 1000, "minCalls": 1000},
                          "retry": {"attempts": 3, "budgetRatio": 0.2, "budgetMin": 3, "budgetWindowMs": 60000, "backoffMs": 10}});
    let mut sim = group_sim(local, tools(), settings);
    sim.disconnect(1);
    let s = sim.legacy_client(json!({}));
    for i in 0..100 {
        sim.send(s, mcp_edge_gateway::Message::request(Id::Num(i), "tools/call", json!({"name": "g__idem_echo"})));
        for _ in 0..10 {
            sim.advance(10);
        }
        let got = sim.take(s);
        assert!(matches!(got.last(), Some(mcp_edge_gateway::Message::Error { .. })), "{i}: {got:?}");
    }
    // 100 first attempts; extras bounded by 20 % of them plus 3.
    let seen = sim.calls_seen(0);
    assert!((100..=123).contains(&seen), "the failing member received {seen} calls");
    assert!(seen > 100, "some retries were made: {seen}");
    assert!(sim.gw.status()["groups"][0]["retryBudgetRefused"].as_u64().unwrap() > 0);
}

#[test]
fn an_outage_of_every_member_falls_back_to_the_offline_behaviour() {
    let mut sim = group_sim(tools(), tools(), json!({}));
    let s = sim.legacy_client(json!({}));
    sim.disconnect(0);
    sim.disconnect(1);
    let e = sim.call(s, Id::Num(1), "tools/call", json!({"name": "g__echo"})).unwrap_err();
    assert_eq!(e.code, -32000, "{e:?}");
    assert!(!e.message.contains("cloud"), "the preferred member is named, as for one upstream: {}", e.message);
}

#[test]
fn lists_merge_upstreams_into_one_page_and_paginate_beyond_the_page_size() {
    let mut sim = Sim::with(vec![
        ("a", FakeServer::legacy(&["a1", "a2"])),
        ("b", FakeServer::legacy(&["b1", "b2"])),
        ("c", FakeServer::modern(&["c1"])),
    ]);
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tools/list", json!({})).unwrap();
    assert_eq!(names(&r), ["a__a1", "a__a2", "b__b1", "b__b2", "c__c1"]);
    assert!(r.get("nextCursor").is_none());
    // A small page size: whole upstream pages until it is reached, then a cursor.
    let cfg =
        GatewayConfig { upstreams: vec![spec("a"), spec("b"), spec("c")], list_page_size: 3, ..Default::default() };
    let mut sim = Sim::new(
        cfg,
        vec![FakeServer::legacy(&["a1", "a2"]), FakeServer::legacy(&["b1", "b2"]), FakeServer::modern(&["c1"])],
    );
    for u in 0..3 {
        sim.connect(u);
    }
    let s = sim.legacy_client(json!({}));
    let r = sim.call(s, Id::Num(1), "tools/list", json!({})).unwrap();
    assert_eq!(names(&r), ["a__a1", "a__a2", "b__b1", "b__b2"]);
    let c = r["nextCursor"].as_str().unwrap().to_string();
    let r = sim.call(s, Id::Num(2), "tools/list", json!({"cursor": c})).unwrap();
    assert_eq!(names(&r), ["c__c1"]);
    assert!(r.get("nextCursor").is_none());
    let e = sim.call(s, Id::Num(3), "tools/list", json!({"cursor": "bogus"})).unwrap_err();
    assert_eq!(e.code, -32602);
}

#[test]
fn a_modern_client_gets_the_merged_pages_shortest_lifetime() {
    let mut sim = Sim::with(vec![("a", FakeServer::modern(&["a1"])), ("b", FakeServer::legacy(&["b1"]))]);
    let s = sim.gw.open_session(sim.now);
    let r = sim.call(s, Id::Num(1), "tools/list", json!({"_meta": modern_meta(json!({}))})).unwrap();
    assert_eq!(names(&r), ["a__a1", "b__b1"]);
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["ttlMs"], 0, "b's page has no lifetime: the merged page has none either");
    assert_eq!(r["cacheScope"], "private");
}

#[test]
fn progress_never_goes_backwards_when_another_member_takes_a_call_over() {
    let mut sim = group_sim(tools(), tools(), json!({"firstByteTimeoutMs": 1000}));
    let s = sim.legacy_client(json!({}));
    sim.servers[0].hung = true;
    let params = json!({"name": "g__idem_echo", "_meta": {"progressToken": "p1"}});
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(1), "tools/call", params));
    // The hanging member reports progress 1 of 2 before it stops answering.
    let gid = sim.servers[0].seen.iter().rev().find_map(|m| match m {
        mcp_edge_gateway::Message::Request { id: Id::Num(n), method, .. } if method == "tools/call" => Some(*n),
        _ => None,
    });
    let gid = gid.unwrap();
    let progress = |n: i64, v: f64| {
        mcp_edge_gateway::Message::notification(
            "notifications/progress",
            Some(json!({"progressToken": n, "progress": v, "total": 2})),
        )
    };
    sim.gw.handle_upstream(sim.now, mcp_edge_gateway::UpstreamId(0), progress(gid, 1.5), None);
    sim.settle();
    // Its link drops; the idempotent call goes to the other member, which reports progress 1 of 2.
    sim.disconnect(0);
    let got = sim.take(s);
    let seen: Vec<f64> = got
        .iter()
        .filter_map(|m| match m {
            mcp_edge_gateway::Message::Notification { method, params: Some(p), .. }
                if method == "notifications/progress" =>
            {
                assert_eq!(p["progressToken"], "p1");
                p["progress"].as_f64()
            }
            _ => None,
        })
        .collect();
    assert_eq!(seen, [1.5], "the second member's progress 1 is not passed on after 1.5: {got:?}");
    assert!(matches!(got.last(), Some(mcp_edge_gateway::Message::Response { .. })), "{got:?}");
}

/// Our id of the last `tools/call` upstream `u` received.
fn last_call_id(sim: &Sim, u: usize) -> i64 {
    sim.servers[u]
        .seen
        .iter()
        .rev()
        .find_map(|m| match m {
            mcp_edge_gateway::Message::Request { id: Id::Num(n), method, .. } if method == "tools/call" => Some(*n),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_call_whose_connection_broke_after_it_was_sent_is_in_doubt_unless_safe() {
    let mut local = tools();
    local.tools.extend(["slow".to_string(), "idem_slow".to_string()]);
    let mut cloud = tools();
    cloud.tools.push("idem_slow".into());
    let mut sim = group_sim(local, cloud, json!({}));
    let s = sim.legacy_client(json!({}));
    let lost = |sim: &mut Sim| {
        let gid = last_call_id(sim, 0);
        sim.gw.upstream_lost(
            sim.now,
            mcp_edge_gateway::UpstreamId(0),
            gid,
            "the connection broke after the call was sent",
        );
        sim.settle();
    };
    // `slow` never answers; its connection breaks while the link stays up.
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(1), "tools/call", json!({"name": "g__slow"})));
    lost(&mut sim);
    let e = match sim.take(s).pop() {
        Some(mcp_edge_gateway::Message::Error { error, .. }) => error,
        m => panic!("{m:?}"),
    };
    assert!(e.message.contains("in doubt"), "{}", e.message);
    assert_eq!(e.data.unwrap()["inDoubt"], true);
    assert_eq!(sim.calls_seen(1), 0, "never repeated on the other member");
    // An idempotent one goes to the other member.
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(3), "tools/call", json!({"name": "g__idem_slow"})));
    assert_eq!(sim.calls_seen(1), 0);
    lost(&mut sim);
    assert_eq!(sim.calls_seen(1), 1, "the idempotent call was sent to the other member");
    assert_eq!(sim.gw.stats().in_doubt, 1);
    assert_eq!(sim.gw.stats().failovers, 1);
    // A plain upstream's lost call fails with -32000 naming it, as before.
    let mut sim = Sim::with(vec![("a", FakeServer::legacy(&["slow"]))]);
    let s = sim.legacy_client(json!({}));
    sim.send(s, mcp_edge_gateway::Message::request(Id::Num(1), "tools/call", json!({"name": "a__slow"})));
    lost(&mut sim);
    let e = match sim.take(s).pop() {
        Some(mcp_edge_gateway::Message::Error { error, .. }) => error,
        m => panic!("{m:?}"),
    };
    assert_eq!(e.code, -32000);
    assert!(e.message.contains("\"a\"") && e.message.contains("connection broke"), "{}", e.message);
}

#[test]
fn with_every_member_down_the_preferred_members_offline_queue_takes_the_call() {
    let mut cfg = GatewayConfig { upstreams: vec![spec("local"), spec("cloud")], ..Default::default() };
    cfg.upstreams[0].offline_queue = vec!["*".into()];
    read_groups("groups", &json!({"g": {"members": ["local", "cloud"]}}), &mut cfg).unwrap();
    let mut sim = Sim::new(cfg, vec![tools(), tools()]);
    sim.connect(0);
    sim.connect(1);
    let s = sim.legacy_client(json!({}));
    sim.disconnect(0);
    sim.disconnect(1);
    let r = sim.call(s, Id::Num(1), "tools/call", json!({"name": "g__echo", "arguments": {"n": 7}})).unwrap();
    assert!(r["content"][0]["text"].as_str().unwrap().starts_with("Queued:"), "{r}");
    assert_eq!((sim.calls_seen(0), sim.calls_seen(1)), (0, 0));
    // The preferred member comes back: the queued call runs there, once.
    sim.connect(0);
    sim.advance(10);
    assert_eq!((sim.calls_seen(0), sim.calls_seen(1)), (1, 0));
    assert_eq!(sim.last_params(0, "tools/call").unwrap()["arguments"]["n"], 7);
}
