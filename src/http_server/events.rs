//! Event streams on the wire and their ids (2025-11-25 resumability): every event of a legacy
//! session is `<stream>-<seq>` (stream 0 is the session's standalone GET stream, each request's
//! stream has its own number, sequence numbers start at 1), and a stream opens with a priming event
//! (its id so far, the `retry` delay, empty data) for clients of a version that has them.

use crate::prelude::*;

use crate::protocol::{self, Era};

/// The standalone (GET) stream's number in every session.
pub(super) const STANDALONE: u64 = 0;

/// Whether the version has SSE priming events and `retry` polling (2025-11-25 on).
pub(super) fn resumable_version(v: &str) -> bool {
    v >= "2025-11-25" && protocol::era_of(v) == Some(Era::Legacy)
}

/// An event in a session's store.
#[derive(Debug)]
pub(super) struct Stored {
    pub(super) stream: u64,
    pub(super) seq: u64,
    pub(super) data: String,
}

/// The priming event of stream `n`, resumable after its event `seq`.
pub(super) fn priming(n: u64, seq: u64, retry_ms: u64) -> String {
    format!("id: {n}-{seq}\nretry: {retry_ms}\ndata:\n\n")
}

pub(super) fn parse_event_id(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.trim().split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

pub(super) fn event_text(id: Option<(u64, u64)>, data: &str) -> String {
    let mut s = String::with_capacity(data.len() + 32);
    if let Some((n, seq)) = id {
        s.push_str(&format!("id: {n}-{seq}\n"));
    }
    s.push_str("event: message\n");
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        assert_eq!(parse_event_id("3-17"), Some((3, 17)));
        assert_eq!(parse_event_id("x"), None);
        assert_eq!(event_text(Some((1, 2)), "{}"), "id: 1-2\nevent: message\ndata: {}\n\n");
        assert_eq!(priming(0, 4, 500), "id: 0-4\nretry: 500\ndata:\n\n");
    }
}
