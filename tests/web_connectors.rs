//! The browser connectors against a real native gateway (started by scripts/test-browser.sh, which
//! sets MCP_TEST_GATEWAY at build time), in headless Chromium: Streamable HTTP over `fetch` and
//! WebSocket, each listing and calling tools of @modelcontextprotocol/server-everything behind it.
#![cfg(all(target_family = "wasm", target_os = "unknown", feature = "web"))]

use js_sys::Reflect;
use mcp_edge_gateway::web::Gateway;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GATEWAY: Option<&str> = option_env!("MCP_TEST_GATEWAY");

fn config(url: &str, transport: &str) -> JsValue {
    js_sys::JSON::parse(&format!(r#"{{"upstreams": {{"native": {{"url": "{url}", "transport": "{transport}"}}}}}}"#))
        .unwrap()
}

async fn exercise(url: String, transport: &str) {
    let gw = Gateway::open(&config(&url, transport)).await.expect("create");
    let tools = JsFuture::from(gw.list_tools()).await.expect("listTools");
    let names: Vec<String> = js_sys::Array::from(&tools)
        .iter()
        .map(|t| Reflect::get(&t, &"name".into()).unwrap().as_string().unwrap())
        .collect();
    assert!(names.iter().any(|n| n == "native__everything__echo"), "{names:?}");
    let args = js_sys::JSON::parse(r#"{"message": "from wasm-bindgen-test"}"#).unwrap();
    let r = JsFuture::from(gw.call_tool("native__everything__echo".into(), args)).await.expect("callTool");
    let content = js_sys::Array::from(&Reflect::get(&r, &"content".into()).unwrap());
    let text = Reflect::get(&content.get(0), &"text".into()).unwrap().as_string().unwrap();
    assert_eq!(text, "Echo: from wasm-bindgen-test");
    // Protocol errors are Error objects carrying the JSON-RPC code.
    let e = JsFuture::from(gw.call_tool("native__nope".into(), JsValue::UNDEFINED)).await.expect_err("unknown tool");
    assert!(e.is_instance_of::<js_sys::Error>());
    assert_eq!(Reflect::get(&e, &"code".into()).unwrap().as_f64(), Some(-32602.0));
    gw.close();
}

#[wasm_bindgen_test]
async fn fetch_connector_reaches_the_native_gateway_over_streamable_http() {
    let base = GATEWAY.expect("build with MCP_TEST_GATEWAY=127.0.0.1:PORT (scripts/test-browser.sh)");
    exercise(format!("http://{base}/mcp"), "http").await;
}

#[wasm_bindgen_test]
async fn websocket_connector_reaches_the_native_gateway() {
    let base = GATEWAY.expect("build with MCP_TEST_GATEWAY=127.0.0.1:PORT (scripts/test-browser.sh)");
    exercise(format!("ws://{base}/ws"), "websocket").await;
}
