//! Downstream sessions: opening and closing them (what becomes of a closing session's calls and of
//! the requests it was asked to answer), and the ways an answer or a notification reaches a client.

use crate::prelude::*;

use super::*;

impl Gateway {
    pub fn open_session(&mut self, now: Millis) -> SessionId {
        self.started_at.get_or_insert(now);
        let id = SessionId(self.next_session);
        self.next_session += 1;
        self.sessions.insert(
            id,
            Session {
                legacy_initialized: false,
                version: String::new(),
                capabilities: json!({}),
                client_info: json!({"name": "unknown", "version": "0"}),
                next_req: 1,
                subscriptions: HashSet::new(),
                last_active: now,
                auth: String::new(),
                admin: false,
                principal: None,
            },
        );
        id
    }

    /// Whether the session completed a legacy `initialize`.
    pub fn session_initialized(&self, s: SessionId) -> bool {
        self.sessions.get(&s).is_some_and(|x| x.legacy_initialized)
    }

    /// The protocol version a legacy session negotiated.
    pub fn session_version(&self, s: SessionId) -> Option<&str> {
        self.sessions.get(&s).filter(|x| x.legacy_initialized).map(|x| x.version.as_str())
    }

    pub fn has_session(&self, s: SessionId) -> bool {
        self.sessions.contains_key(&s)
    }

    /// End a session: its in-flight upstream requests are cancelled (parked multi-round-trip calls
    /// survive; they belong to no session), and requests it was asked to answer fail upstream.
    pub fn close_session(&mut self, now: Millis, s: SessionId) {
        self.tick(now);
        self.ops_closed(s);
        let Some(closed) = self.sessions.remove(&s) else { return };
        self.session_listens_closed(now, s);
        if !closed.subscriptions.is_empty() {
            self.relisten_all(now);
        }
        self.gathers.retain(|(x, _), _| *x != s);
        let mine: Vec<_> = self.by_client.keys().filter(|(x, _)| *x == s).cloned().collect();
        for key in mine {
            if let Some((u, gid)) = self.by_client.remove(&key) {
                // A call gathering its client's answers has no request upstream to cancel.
                if matches!(self.ups[u.0].pending.remove(&gid), Some(Pending::Client(c)) if c.collect.is_none() && !c.queued)
                {
                    self.send_up(
                        u,
                        Message::notification(
                            method::CANCELLED,
                            Some(json!({"requestId": gid, "reason": "client went away"})),
                        ),
                    );
                }
            }
        }
        if closed.legacy_initialized && closed.capabilities.get("roots").is_some() {
            self.roots_changed();
        }
        let asked: Vec<_> = self.to_client.keys().filter(|(x, _)| *x == s).cloned().collect();
        for key in asked {
            if let Some(ToClientReq::Forwarded { upstream, upstream_id }) = self.to_client.remove(&key) {
                self.send_up(
                    upstream,
                    Message::error(Some(upstream_id), err(code::INTERNAL_ERROR, "the client went away")),
                );
            }
        }
        self.deferred.retain(|(x, _)| *x != s);
        self.waiters.retain(|(_, w)| w.session != s);
    }

    pub(super) fn reply(&mut self, s: SessionId, id: Id, result: Value) {
        self.out.push_back(Output::ToClient {
            session: s,
            related: Some(id.clone()),
            message: Message::response(id, result),
        });
    }

    pub(super) fn reply_err(&mut self, s: SessionId, id: Id, e: ErrorObject) {
        self.out.push_back(Output::ToClient {
            session: s,
            related: Some(id.clone()),
            message: Message::error(Some(id), e),
        });
    }

    pub(super) fn notify_client(&mut self, s: SessionId, related: Option<Id>, method: &str, params: Option<Value>) {
        self.out.push_back(Output::ToClient { session: s, related, message: Message::notification(method, params) });
    }

    pub(super) fn broadcast_legacy(&mut self, method: &str, params: Option<Value>) {
        let mut ids: Vec<SessionId> =
            self.sessions.iter().filter(|(_, x)| x.legacy_initialized).map(|(k, _)| *k).collect();
        ids.sort_unstable();
        for s in ids {
            self.notify_client(s, None, method, params.clone());
        }
        self.notify_listeners(method, params.as_ref());
    }
}
