//! Aggregated pagination cursors.
//!
//! A client sees one list; behind it each upstream has its own pages. Our cursor records which upstream
//! comes next and that upstream's own cursor (opaque to us, passed back verbatim). It is base64url of a
//! small JSON object so it is printable, header-safe and versioned (`v`).

use crate::prelude::*;

use serde_json::{json, Value};

/// Where the next page of an aggregated list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Name of the upstream that serves the next page.
    pub upstream: String,
    /// That upstream's cursor, or `None` for its first page.
    pub cursor: Option<String>,
}

pub fn encode(p: &Position) -> String {
    let v = json!({ "v": 1, "u": p.upstream, "c": p.cursor });
    base64url_encode(v.to_string().as_bytes())
}

/// Decode a cursor we minted; anything else is `None` (the caller answers -32602).
pub fn decode(s: &str) -> Option<Position> {
    let bytes = base64url_decode(s)?;
    // `from_str`, as everywhere else: one instantiation of the JSON parser (README "Lean and fast").
    let v: Value = serde_json::from_str(core::str::from_utf8(&bytes).ok()?).ok()?;
    if v.get("v")?.as_u64()? != 1 {
        return None;
    }
    let upstream = v.get("u")?.as_str()?.to_string();
    let cursor = match v.get("c")? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return None,
    };
    Some(Position { upstream, cursor })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn base64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        for p in [
            Position { upstream: "everything".into(), cursor: Some("eyJwYWdlIjoyfQ==".into()) },
            Position { upstream: "a".into(), cursor: None },
        ] {
            assert_eq!(decode(&encode(&p)), Some(p));
        }
        assert_eq!(decode("not a cursor!"), None);
        assert_eq!(decode(&base64url_encode(b"{\"v\":2}")), None);
        assert_eq!(decode(""), None);
    }

    #[test]
    fn base64url_matches_known_vectors() {
        for (raw, enc) in
            [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE")]
        {
            assert_eq!(base64url_encode(raw.as_bytes()), enc);
            assert_eq!(base64url_decode(enc).unwrap(), raw.as_bytes());
        }
    }
}
