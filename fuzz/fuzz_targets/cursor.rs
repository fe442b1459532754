//! Aggregated cursor decoding (`src/cursor.rs`): whatever a client sends as a cursor either decodes
//! to a position or is refused, never a panic; what we mint decodes back to what we meant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::cursor::{base64url_decode, base64url_encode, decode, encode, Position};

fuzz_target!(|data: &[u8]| {
    // The input as a cursor string (the client's `cursor` member).
    let s = String::from_utf8_lossy(data);
    if let Some(p) = decode(&s) {
        assert_eq!(decode(&encode(&p)), Some(p.clone()), "re-encoded cursor decodes differently");
    }
    if let Some(bytes) = base64url_decode(&s) {
        assert!(bytes.len() <= s.len() * 3 / 4 + 1);
        assert_eq!(base64url_decode(&base64url_encode(&bytes)).as_deref(), Some(&bytes[..]));
    }
    // The input as raw bytes to encode: the alphabet only, and it decodes back.
    let enc = base64url_encode(data);
    assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{enc}");
    assert_eq!(base64url_decode(&enc).as_deref(), Some(data));
    // The input as the pieces of a position we mint.
    let (u, c) = s.split_at(s.char_indices().nth(s.chars().count() / 2).map_or(s.len(), |(i, _)| i));
    for cursor in [None, Some(c.to_string())] {
        let p = Position { upstream: u.to_string(), cursor };
        assert_eq!(decode(&encode(&p)), Some(p));
    }
});
