//! Sampling answered at the edge: the provider chain (local, cloud, client), on fake time, with the
//! host's HTTP played by the test. Every hand-over: a failure, garbage, a timeout, content a provider
//! cannot take, a client that cannot sample, nobody left.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
mod common;
use common::*;
use mcp_edge_gateway::config::read_sampling;
use mcp_edge_gateway::{GatewayConfig, Id, Message};
use serde_json::{json, Value};

fn sim_with(server: FakeServer, order: &[&str]) -> Sim {
    let sampling = read_sampling(
        "sampling",
        &json!({"order": order, "providers": {
            "local": {"url": "http://127.0.0.1:8080/v1", "model": "smollm2-135m", "timeoutMs": 2000},
            "cloud": {"url": "https://llm.example/v1", "model": "big-model", "models": ["vision-model"], "modalities": ["text", "image"]}}}),
        &["callback"],
    )
    .unwrap();
    let cfg = GatewayConfig { upstreams: vec![spec("a")], sampling, ..Default::default() };
    let mut sim = Sim::new(cfg, vec![server]);
    sim.connect(0);
    sim
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
}

/// The call's final text (the fake upstream puts the sampling answer it got into it).
fn final_text(sim: &mut Sim, s: mcp_edge_gateway::SessionId, id: i64) -> String {
    let got = sim.take(s);
    for m in got.iter().rev() {
        if let Message::Response { id: x, result, .. } = m {
            if *x == Id::Num(id) {
                return result["content"][0]["text"].as_str().unwrap_or_default().to_string();
            }
        }
    }
    panic!("no answer to {id}: {got:?}")
}

#[test]
fn the_local_model_answers_first_and_the_result_names_it() {
    let mut sim = sim_with(FakeServer::legacy(&["sample"]), &["local", "cloud", "client"]);
    let s = sim.legacy_client(json!({})); // declares no sampling
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample"})));
    assert_eq!(sim.samples.len(), 1);
    let (job, provider, url, body) = sim.samples.remove(0);
    assert_eq!((provider.as_str(), url.as_str()), ("local", "http://127.0.0.1:8080/v1/chat/completions"));
    assert_eq!(body["model"], "smollm2-135m");
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(body["max_tokens"], 20);
    sim.gw.sampling_done(sim.now, job, Ok(chat("smollm2-135m", "Hi!")));
    sim.settle();
    let text = final_text(&mut sim, s, 1);
    assert!(text.contains("\"model\":\"smollm2-135m\"") && text.contains("Hi!"), "{text}");
    assert_eq!(sim.gw.status()["sampling"]["answers"]["local"], 1);
}

#[test]
fn failures_garbage_and_timeouts_hand_over_down_the_chain_to_the_client() {
    let mut sim = sim_with(FakeServer::legacy(&["sample"]), &["local", "cloud", "client"]);
    let s = sim.legacy_client(json!({"sampling": {}}));
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample"})));
    // Local: a 500 (the host reports why). Cloud: garbage.
    let (job, ..) = sim.samples.remove(0);
    sim.gw.sampling_done(sim.now, job, Err("HTTP 500: boom".into()));
    sim.settle();
    let (job2, provider, ..) = sim.samples.remove(0);
    assert_eq!(provider, "cloud");
    assert_ne!(job2, job, "each provider asked has a job number of its own");
    sim.gw.sampling_done(sim.now, job2, Ok(json!({"not": "a completion"})));
    sim.settle();
    // The client's own handler is asked.
    let asked = sim.take(s);
    let Some(Message::Request { id, method, .. }) = asked.iter().find(|m| matches!(m, Message::Request { .. })) else {
        panic!("{asked:?}")
    };
    assert_eq!(method, "sampling/createMessage");
    let id = id.clone();
    sim.send(s, Message::response(id, json!({"role": "assistant", "content": {"type": "text", "text": "from the client"}, "model": "client-model"})));
    let text = final_text(&mut sim, s, 1);
    assert!(text.contains("client-model"), "{text}");
    assert_eq!(sim.gw.status()["sampling"]["failures"], json!({"cloud": 1, "local": 1}));
    // A provider that never answers is passed over after its timeout.
    sim.send(s, Message::request(Id::Num(2), "tools/call", json!({"name": "a__sample"})));
    let (job, ..) = sim.samples.remove(0);
    sim.advance(2000);
    let (_, provider, ..) = sim.samples.remove(0);
    assert_eq!(provider, "cloud");
    sim.gw.sampling_done(sim.now, job, Ok(chat("late", "too late"))); // ignored: it was given up on
    sim.settle();
    assert!(sim.take(s).iter().all(|m| !matches!(m, Message::Response { .. })));
}

#[test]
fn nobody_left_is_a_clear_error_to_the_upstream() {
    let mut sim = sim_with(FakeServer::legacy(&["sample"]), &["local", "cloud", "client"]);
    let s = sim.legacy_client(json!({})); // cannot sample
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample"})));
    let (job, ..) = sim.samples.remove(0);
    sim.gw.sampling_done(sim.now, job, Err("connection refused".into()));
    sim.settle();
    let (job, ..) = sim.samples.remove(0);
    sim.gw.sampling_done(sim.now, job, Err("HTTP 401".into()));
    sim.settle();
    let text = final_text(&mut sim, s, 1);
    assert!(text.contains("no sampling provider could answer"), "{text}");
    assert!(
        text.contains("local: connection refused") && text.contains("cloud: HTTP 401") && text.contains("client:"),
        "{text}"
    );
}

#[test]
fn images_skip_a_text_only_provider_and_hints_pick_the_model() {
    let mut sim = sim_with(FakeServer::legacy(&["sample"]), &["local", "cloud"]);
    let s = sim.legacy_client(json!({}));
    // The fake upstream's request names a hint from the call's arguments.
    sim.send(
        s,
        Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample", "arguments": {"hint": "vision"}})),
    );
    let (job, provider, _, body) = sim.samples.remove(0);
    assert_eq!(
        (provider.as_str(), body["model"].as_str()),
        ("local", Some("smollm2-135m")),
        "no local model matches: its default"
    );
    sim.gw.sampling_done(sim.now, job, Err("HTTP 500".into()));
    sim.settle();
    let (_, provider, _, body) = sim.samples.remove(0);
    assert_eq!((provider.as_str(), body["model"].as_str()), ("cloud", Some("vision-model")));
    // A request with an image never goes to the text-only provider: the first one asked is cloud,
    // and if it fails, local's reason says why it was passed over.
    sim.send(s, Message::request(Id::Num(2), "tools/call", json!({"name": "a__sample", "arguments": {"image": true}})));
    assert_eq!(sim.samples.len(), 1);
    let (job, provider, _, body) = sim.samples.remove(0);
    assert_eq!(provider, "cloud");
    assert_eq!(body["messages"][1]["content"][0]["image_url"]["url"], "data:image/png;base64,AAAA");
    sim.gw.sampling_done(sim.now, job, Err("HTTP 500".into()));
    sim.settle();
    let text = final_text(&mut sim, s, 2);
    assert!(text.contains("local: it takes no image content") && text.contains("cloud: HTTP 500"), "{text}");
}

#[test]
fn a_modern_upstreams_input_required_sampling_is_answered_for_a_modern_client_without_sampling() {
    let mut sim = sim_with(FakeServer::modern(&["sample"]), &["local", "client"]);
    let s = sim.gw.open_session(sim.now);
    sim.send(
        s,
        Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample", "_meta": modern_meta(json!({}))})),
    );
    assert!(sim.take(s).is_empty(), "the chain answers before the client hears anything");
    let (job, provider, ..) = sim.samples.remove(0);
    assert_eq!(provider, "local");
    sim.gw.sampling_done(sim.now, job, Ok(chat("smollm2-135m", "Hello")));
    sim.settle();
    let text = final_text(&mut sim, s, 1);
    assert!(text.contains("smollm2-135m") && text.contains("Hello"), "{text}");
    // The retry upstream carried the answer under the upstream's key, with its requestState.
    let retry = sim.last_params(0, "tools/call").unwrap();
    assert_eq!(retry["requestState"], "opaque-state-2");
    assert_eq!(retry["inputResponses"]["llm"]["model"], "smollm2-135m");
}

#[test]
fn a_modern_client_that_can_sample_gets_the_question_when_the_chain_falls_through() {
    let mut sim = sim_with(FakeServer::modern(&["sample"]), &["local", "client"]);
    let s = sim.gw.open_session(sim.now);
    sim.send(
        s,
        Message::request(
            Id::Num(1),
            "tools/call",
            json!({"name": "a__sample", "_meta": modern_meta(json!({"sampling": {}}))}),
        ),
    );
    let (job, ..) = sim.samples.remove(0);
    sim.gw.sampling_done(sim.now, job, Err("down".into()));
    sim.settle();
    let got = sim.take(s);
    let Some(Message::Response { result, .. }) = got.last() else { panic!("{got:?}") };
    assert_eq!(result["resultType"], "input_required");
    assert_eq!(result["requestState"], "opaque-state-2", "the upstream's question, as it was");
}

#[test]
fn the_browsers_callback_gets_the_mcp_params_as_they_are() {
    let mut sim = sim_with(FakeServer::legacy(&["sample"]), &["callback", "client"]);
    let s = sim.legacy_client(json!({}));
    sim.send(s, Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample"})));
    let (job, provider, url, req) = sim.samples.remove(0);
    assert_eq!((provider.as_str(), url.as_str()), ("callback", ""));
    assert_eq!(req["maxTokens"], 20);
    sim.gw.sampling_done(sim.now, job, Ok(json!({"content": {"type": "text", "text": "from js"}})));
    sim.settle();
    let text = final_text(&mut sim, s, 1);
    assert!(text.contains("from js") && text.contains("\"model\":\"callback\""), "{text}");
}

#[test]
fn a_modern_upstream_is_told_it_may_ask_for_sampling_when_the_chain_can_answer() {
    let mut sim = sim_with(FakeServer::modern(&["sample"]), &["local", "client"]);
    let s = sim.gw.open_session(sim.now);
    sim.send(
        s,
        Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample", "_meta": modern_meta(json!({}))})),
    );
    let sent = sim.last_params(0, "tools/call");
    let caps = sent.unwrap()["_meta"]["io.modelcontextprotocol/clientCapabilities"].clone();
    assert_eq!(caps["sampling"], json!({}), "{caps}");
    // Without a chain, a client's own capabilities pass as they are.
    let cfg = GatewayConfig { upstreams: vec![spec("a")], ..Default::default() };
    let mut sim = Sim::new(cfg, vec![FakeServer::modern(&["sample"])]);
    sim.connect(0);
    let s = sim.gw.open_session(sim.now);
    sim.send(
        s,
        Message::request(Id::Num(1), "tools/call", json!({"name": "a__sample", "_meta": modern_meta(json!({}))})),
    );
    let sent = sim.last_params(0, "tools/call");
    assert!(sent.unwrap()["_meta"]["io.modelcontextprotocol/clientCapabilities"].get("sampling").is_none());
}
