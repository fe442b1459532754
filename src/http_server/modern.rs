//! What is particular to 2026-07-28 requests over HTTP: header values with the base64 sentinel, and
//! the HTTP status of an error answer.

use crate::prelude::*;

use crate::jsonrpc::code;
use crate::Message;

/// Decode the `=?base64?…?=` sentinel of modern header values.
pub fn decode_header_value(v: &str) -> Option<String> {
    match v.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b) => {
            let url = b.trim_end_matches('=').replace('+', "-").replace('/', "_");
            String::from_utf8(crate::cursor::base64url_decode(&url)?).ok()
        }
        None => Some(v.to_string()),
    }
}

/// HTTP status for a modern error answer (the 2026-07-28 mapping).
pub(super) fn modern_status(m: &Message) -> u16 {
    match m {
        Message::Error { error, .. } => match error.code {
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::INVALID_PARAMS
            | code::HEADER_MISMATCH
            | -32021
            | code::UNSUPPORTED_PROTOCOL_VERSION => 400,
            code::METHOD_NOT_FOUND => 404,
            _ => 200,
        },
        _ => 200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sentinel_decodes() {
        assert_eq!(decode_header_value("=?base64?aMOpbGxv?=").as_deref(), Some("héllo"));
        assert_eq!(decode_header_value("echo").as_deref(), Some("echo"));
    }
}
