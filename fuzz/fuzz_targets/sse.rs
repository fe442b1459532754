//! The SSE parser (`src/sse.rs`): a stream cut into chunks anywhere gives the same events, last
//! event id and retry as the same stream in one piece; `restart` keeps what it promises.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::sse::{Event, Parser};

#[derive(Debug)]
struct Input<'a> {
    /// Chunk lengths, cycled over the stream.
    cuts: Vec<u8>,
    stream: &'a [u8],
}

impl<'a> Arbitrary<'a> for Input<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0..=8)?;
        let cuts = (0..n).map(|_| u.arbitrary::<u8>()).collect::<arbitrary::Result<_>>()?;
        let stream = u.bytes(u.len())?;
        Ok(Input { cuts, stream })
    }
}

fn whole(stream: &[u8]) -> (Vec<Event>, Option<String>, Option<u64>) {
    let mut p = Parser::default();
    let ev = p.feed(stream).expect("small streams are never too large");
    (ev, p.last_event_id().map(str::to_string), p.retry)
}

fuzz_target!(|input: Input<'_>| {
    let expected = whole(input.stream);
    let mut p = Parser::default();
    let mut got = Vec::new();
    let mut rest = input.stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = match input.cuts.get(i % input.cuts.len().max(1)) {
            Some(&c) => (c as usize).clamp(1, rest.len()),
            None => rest.len(),
        };
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        got.extend(p.feed(chunk).expect("small streams are never too large"));
        rest = tail;
    }
    // An empty feed changes nothing.
    assert!(p.feed(b"").unwrap().is_empty());
    assert_eq!(got, expected.0, "chunking changed the events");
    assert_eq!(p.last_event_id().map(str::to_string), expected.1);
    assert_eq!(p.retry, expected.2);
    for e in &got {
        assert!(!e.event.is_empty(), "an event always has a type");
        assert!(e.id.as_deref().is_none_or(|i| !i.contains('\0')));
    }
    // A new connection forgets the half-received event but keeps the id and retry.
    let (id, retry) = (p.last_event_id().map(str::to_string), p.retry);
    p.restart();
    assert_eq!((p.last_event_id().map(str::to_string), p.retry), (id, retry));
    let ev = p.feed(b"data: after\n\n").unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].data, "after");
});
