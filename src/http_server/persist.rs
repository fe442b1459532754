//! Surviving a restart of the host (a service worker is stopped when idle): the legacy sessions and
//! their stored events as JSON, to be kept by the host (IndexedDB) and restored in its next life.
//! Each restored session's engine session is opened anew with the client's own `initialize`; a
//! request that was running when the host stopped is answered on its stream as in doubt, never run
//! again.

use crate::prelude::*;

use super::events::Stored;
use super::{id_of, HttpServer, Owner, Session};
use crate::jsonrpc::code;
use crate::protocol::{self, method};
use crate::{ErrorObject, Gateway, Message, Millis};
use serde_json::Value;

impl HttpServer {
    /// The legacy sessions and their stored events as JSON, if they changed since the last call: a
    /// host whose process may be stopped (a service worker) keeps it and hands it to
    /// [`HttpServer::restore`] in its next life.
    pub fn save(&mut self) -> Option<String> {
        if !core::mem::take(&mut self.dirty) {
            return None;
        }
        let sessions: Vec<Value> = self
            .sessions
            .iter()
            .map(|(key, s)| {
                serde_json::json!({
                    "key": key,
                    "version": s.version,
                    "init": s.init,
                    "lastSeen": s.last_seen,
                    "nextNumber": s.next_number,
                    "seqs": s.seqs.iter().map(|(n, q)| [*n, *q]).collect::<Vec<_>>(),
                    "posts": s.posts.iter().map(|(id, n)| serde_json::json!([id.to_value(), n])).collect::<Vec<_>>(),
                    "finished": s.finished,
                    "undeliveredFrom": s.undelivered_from,
                    "events": s.events.iter().map(|e| serde_json::json!([e.stream, e.seq, e.data])).collect::<Vec<_>>(),
                })
            })
            .collect();
        Some(serde_json::json!({ "v": 1, "sessions": sessions }).to_string())
    }

    /// Open again the sessions [`HttpServer::save`] kept: each engine session is initialized anew
    /// with its client's own `initialize`, its events wait for resumption, and a request that was
    /// pending when the host stopped gets an error on its stream: its call may have run, so it is in
    /// doubt and is not repeated. A state that cannot be read is ignored (clients start over).
    pub fn restore(&mut self, gw: &mut Gateway, now: Millis, state: &str) -> usize {
        let Ok(v) = serde_json::from_str::<Value>(state) else { return 0 };
        let list = v.get("sessions").and_then(Value::as_array).cloned().unwrap_or_default();
        let u = |x: &Value, k: &str| x.get(k).and_then(Value::as_u64).unwrap_or(0);
        let mut n = 0;
        for x in list {
            let (Some(key), Some(init)) = (x.get("key").and_then(Value::as_str), x.get("init").and_then(Value::as_str))
            else {
                continue;
            };
            let Ok(init_msg) = Message::parse(init.as_bytes()) else { continue };
            let pairs = |k: &str| x.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
            let mut s = Session {
                principal: None,
                engine: gw.open_session(now),
                version: x.get("version").and_then(Value::as_str).unwrap_or(protocol::HTTP_DEFAULT_LEGACY).to_string(),
                init: init.to_string(),
                last_seen: now,
                posts: HashMap::new(),
                carriers: HashMap::new(),
                next_number: u(&x, "nextNumber").max(1),
                seqs: pairs("seqs").iter().filter_map(|p| Some((p.get(0)?.as_u64()?, p.get(1)?.as_u64()?))).collect(),
                finished: pairs("finished").iter().filter_map(Value::as_u64).collect(),
                events: pairs("events")
                    .iter()
                    .filter_map(|e| {
                        Some(Stored {
                            stream: e.get(0)?.as_u64()?,
                            seq: e.get(1)?.as_u64()?,
                            data: e.get(2)?.as_str()?.to_string(),
                        })
                    })
                    .collect(),
                undelivered_from: u(&x, "undeliveredFrom").max(1),
            };
            // The calls that were running died with the host: say so where their answers were due.
            for p in pairs("posts") {
                let (Some(id), Some(number)) = (p.get(0).and_then(id_of), p.get(1).and_then(Value::as_u64)) else {
                    continue;
                };
                let e = ErrorObject::new(
                    code::INTERNAL_ERROR,
                    "the gateway restarted before this call was answered; it may have run, so it is in doubt and was not repeated",
                )
                .with_data(serde_json::json!({ "inDoubt": true }));
                let seq = s.seqs.entry(number).or_insert(0);
                // A damaged state may hold any number here (fuzz/regressions/store_restore).
                *seq = seq.saturating_add(1);
                s.events.push_back(Stored { stream: number, seq: *seq, data: Message::error(Some(id), e).to_json() });
                s.finished.push(number);
            }
            let engine = s.engine;
            self.by_engine.insert(engine, Owner::Legacy(key.to_string()));
            self.sessions.insert(key.to_string(), s);
            // The engine's answer to this initialize is for no one (no request waits for its id).
            gw.handle_client(now, engine, init_msg);
            gw.handle_client(now, engine, Message::notification(method::INITIALIZED, None));
            n += 1;
        }
        self.dirty = n > 0;
        n
    }
}
