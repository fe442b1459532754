//! JSON-RPC parsing (`src/jsonrpc.rs`): any bytes either parse into a message or give an error the
//! peer can be sent; a parsed message serialises to JSON that parses back to the same envelope, and
//! serialising that again gives the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::jsonrpc::{nesting_depth, MAX_DEPTH};
use mcp_edge_gateway::{Id, Message};

/// What routing looks at: the kind, the id, the method and an error's code and message.
fn envelope(m: &Message) -> (u8, Option<Id>, Option<String>, Option<(i64, String)>) {
    match m {
        Message::Request { id, method, .. } => (0, Some(id.clone()), Some(method.clone()), None),
        Message::Notification { method, .. } => (1, None, Some(method.clone()), None),
        Message::Response { id, .. } => (2, Some(id.clone()), None, None),
        Message::Error { id, error, .. } => (3, id.clone(), None, Some((error.code, error.message.clone()))),
    }
}

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(m) => {
            let text = m.to_json();
            assert!(nesting_depth(&text) <= MAX_DEPTH + 1, "serialising deepened the message");
            let again =
                Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("own output does not parse: {e}: {text}"));
            assert_eq!(envelope(&m), envelope(&again), "envelope changed through {text}");
            assert_eq!(m.is_request(), again.is_request());
            assert_eq!(m.method(), again.method());
            // Numbers aside (serde_json's float parsing is not exact without `float_roundtrip`), the
            // second trip is the identity.
            let text2 = again.to_json();
            if !text.contains(['.', 'e', 'E']) {
                assert_eq!(text, text2, "second round trip changed the text");
            }
        }
        Err(e) => {
            let o = e.to_error();
            assert!(matches!(o.code, -32700 | -32600), "unexpected code {} for {e}", o.code);
            // The error answer itself is a message that parses.
            let answer = Message::error(None, o).to_json();
            assert!(Message::parse(answer.as_bytes()).is_ok(), "{answer}");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nesting_depth(text);
    }
});
