//! Header decoding (`http_server::decode_header_value`, the `=?base64?…?=` sentinel of 2026-07-28
//! `Mcp-Param-*` and `Mcp-Name` headers): never a panic; a plain value comes back as it is; any
//! string sent with the sentinel (standard or URL alphabet, padded or not) comes back exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::cursor::base64url_encode;
use mcp_edge_gateway::http_server::decode_header_value;

/// Standard base64 (`+/`, padded), as an SDK would send it.
fn base64_std(data: &[u8]) -> String {
    let mut s = base64url_encode(data).replace('-', "+").replace('_', "/");
    while s.len() % 4 != 0 {
        s.push('=');
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let decoded = decode_header_value(&text);
    if !(text.starts_with("=?base64?") && text.ends_with("?=") && text.len() >= "=?base64??=".len()) {
        assert_eq!(decoded.as_deref(), Some(&*text), "a plain value must come back unchanged");
    }
    for wire in [
        format!("=?base64?{}?=", base64_std(text.as_bytes())),
        format!("=?base64?{}?=", base64url_encode(text.as_bytes())),
    ] {
        assert_eq!(decode_header_value(&wire).as_deref(), Some(&*text), "{wire}");
    }
    // What the gateway itself sends (`protocol::header_value`: plain when it can, else the sentinel)
    // comes back exactly.
    let sent = mcp_edge_gateway::protocol::header_value(&text);
    assert!(sent.bytes().all(|b| (0x20..0x7f).contains(&b)), "not a plain header value: {sent:?}");
    assert_eq!(decode_header_value(&sent).as_deref(), Some(&*text), "{sent}");
    // Bytes that are not UTF-8 behind a sentinel are refused, not mangled.
    if std::str::from_utf8(data).is_err() {
        assert_eq!(decode_header_value(&format!("=?base64?{}?=", base64_std(data))), None);
    }
});
