//! Notifications outside replies, both eras and both ways.
//!
//! - Downstream, legacy clients get list changes and the resource updates they `resources/subscribe`d
//!   to on their session (the GET stream over HTTP). Modern clients ask with `subscriptions/listen`
//!   (2026-07-28): the gateway acknowledges with `notifications/subscriptions/acknowledged` (the
//!   filter it honours: every list change asked for, and every resource URI), then sends exactly the
//!   notification types asked for, each stamped with the listen request's id under
//!   `_meta["io.modelcontextprotocol/subscriptionId"]`, on that request's stream, until the client
//!   closes it.
//! - Upstream, a legacy server pushes on its own GET stream and gets `resources/subscribe` for each
//!   URI a client wants. A modern server gets one `subscriptions/listen` from the gateway while its
//!   link is up: the list changes it offers and the URIs clients want from it; it is opened again
//!   when that set of URIs changes, and a second after the server ends it or it breaks (a server
//!   that refuses it is not asked again until its link comes back).
//!
//! So a legacy client subscribed to a modern upstream's resource, and a modern client listening to
//! a legacy upstream, both get their updates.

use crate::prelude::*;

use super::*;

use crate::protocol::meta::SUBSCRIPTION_ID;

pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
/// Wait before opening an upstream's listen again after it ended.
const RELISTEN_MS: Millis = 1000;

/// A modern client's `subscriptions/listen`.
#[derive(Debug)]
pub(super) struct Listener {
    session: SessionId,
    id: Id,
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: HashSet<String>,
}

/// The gateway's own listen towards one modern upstream.
#[derive(Debug, Default, Clone)]
pub(super) struct UpListen {
    gid: Option<i64>,
    uris: Vec<String>,
    /// Open it again then (it ended).
    due: Option<Millis>,
    /// The server refused it: not again while this link lasts.
    refused: bool,
}

#[derive(Debug, Default)]
pub(super) struct Listening {
    listeners: Vec<Listener>,
    up: Vec<UpListen>,
}

impl Gateway {
    /// A client's `subscriptions/listen`: acknowledge it on its own stream and remember the filter.
    pub(super) fn listen(&mut self, now: Millis, s: SessionId, id: Id, params: &Value) {
        let f = params.get("notifications").cloned().unwrap_or(json!({}));
        let flag = |k: &str| f.get(k).and_then(Value::as_bool).unwrap_or(false);
        let uris: HashSet<String> = f
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let mut agreed = json!({});
        for k in ["toolsListChanged", "promptsListChanged", "resourcesListChanged"] {
            if flag(k) {
                agreed[k] = Value::Bool(true);
            }
        }
        if f.get("resourceSubscriptions").is_some() {
            // Owned, like the other URI sorts: one instantiation of the sort (README "Lean and fast").
            let mut list: Vec<String> = uris.iter().cloned().collect();
            list.sort_unstable();
            agreed["resourceSubscriptions"] = json!(list);
        }
        let l = Listener {
            session: s,
            id: id.clone(),
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris,
        };
        let wanted: Vec<String> = l.uris.iter().cloned().collect();
        self.listening.listeners.retain(|x| !(x.session == s && x.id == id));
        self.listening.listeners.push(l);
        let p = json!({ "notifications": agreed, "_meta": { SUBSCRIPTION_ID: id.to_value() } });
        self.notify_client(s, Some(id), SUBSCRIPTIONS_ACKNOWLEDGED, Some(p));
        self.subscribe_upstream(now, &wanted);
    }

    /// The session's listens end with it: legacy upstreams are unsubscribed from the URIs nobody
    /// wants any more, modern ones get a listen without them.
    pub(super) fn session_listens_closed(&mut self, now: Millis, s: SessionId) {
        let (gone, kept): (Vec<Listener>, Vec<Listener>) =
            core::mem::take(&mut self.listening.listeners).into_iter().partition(|l| l.session == s);
        self.listening.listeners = kept;
        if gone.is_empty() {
            return;
        }
        let mut uris: Vec<String> = gone.into_iter().flat_map(|l| l.uris).collect();
        uris.sort_unstable();
        uris.dedup();
        for uri in uris {
            let wanted = self.sessions.values().any(|x| x.subscriptions.contains(&uri))
                || self.listening.listeners.iter().any(|l| l.uris.contains(&uri));
            let Ok(u) = self.route_uri(&uri, true) else { continue };
            let up = &self.ups[u.0];
            if !wanted && up.link == Link::Ready && up.era == Era::Legacy {
                self.internal_request(u, method::RESOURCES_UNSUBSCRIBE, json!({ "uri": uri }));
            }
        }
        self.relisten_all(now);
    }

    /// A list change or resource update to every modern listener that asked for it.
    pub(super) fn notify_listeners(&mut self, m: &str, params: Option<&Value>) {
        let uri = params.and_then(|p| p.get("uri")).and_then(Value::as_str);
        let hits: Vec<(SessionId, Id)> = self
            .listening
            .listeners
            .iter()
            .filter(|l| match m {
                method::TOOLS_LIST_CHANGED => l.tools,
                method::PROMPTS_LIST_CHANGED => l.prompts,
                method::RESOURCES_LIST_CHANGED => l.resources,
                method::RESOURCES_UPDATED => uri.is_some_and(|u| l.uris.contains(u)),
                _ => false,
            })
            .map(|l| (l.session, l.id.clone()))
            .collect();
        for (s, id) in hits {
            let mut p = params.cloned().filter(Value::is_object).unwrap_or(json!({}));
            p["_meta"] = match p.get("_meta").cloned() {
                Some(Value::Object(mut meta)) => {
                    meta.insert(SUBSCRIPTION_ID.into(), id.to_value());
                    Value::Object(meta)
                }
                _ => json!({ SUBSCRIPTION_ID: id.to_value() }),
            };
            self.notify_client(s, Some(id), m, Some(p));
        }
    }

    /// A listener's URIs: legacy upstreams that can get `resources/subscribe`, modern ones a new listen.
    fn subscribe_upstream(&mut self, now: Millis, uris: &[String]) {
        let mut modern = false;
        for uri in uris {
            let Ok(u) = self.route_uri(uri, true) else { continue };
            let up = &self.ups[u.0];
            if up.link != Link::Ready {
                continue;
            }
            if up.era == Era::Legacy {
                if up.capabilities.pointer("/resources/subscribe").and_then(Value::as_bool) == Some(true) {
                    self.internal_request(u, method::RESOURCES_SUBSCRIBE, json!({ "uri": uri }));
                }
            } else {
                modern = true;
            }
        }
        if modern {
            self.relisten_all(now);
        }
    }

    /// The URIs clients want from upstream `u`.
    fn wanted_from(&self, u: UpstreamId) -> Vec<String> {
        let mut all: Vec<String> = self
            .sessions
            .values()
            .flat_map(|x| x.subscriptions.iter())
            .chain(self.listening.listeners.iter().flat_map(|l| l.uris.iter()))
            .filter(|uri| self.route_uri(uri, true).ok() == Some(u))
            .cloned()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn up_listen(&mut self, u: UpstreamId) -> &mut UpListen {
        if self.listening.up.len() < self.ups.len() {
            self.listening.up.resize(self.ups.len(), UpListen::default());
        }
        &mut self.listening.up[u.0]
    }

    /// Check every modern upstream's listen against what clients want now.
    pub(super) fn relisten_all(&mut self, now: Millis) {
        for u in 0..self.ups.len() {
            self.listen_upstream(now, UpstreamId(u), false);
        }
    }

    /// Open (or reopen, when the URIs changed or `force`) the gateway's listen to modern upstream `u`.
    pub(super) fn listen_upstream(&mut self, _now: Millis, u: UpstreamId, force: bool) {
        let up = &self.ups[u.0];
        if up.link != Link::Ready || up.era != Era::Modern {
            return;
        }
        let caps = up.capabilities.clone();
        let uris = self.wanted_from(u);
        let cur = self.up_listen(u).clone();
        if cur.refused || (!force && cur.gid.is_some() && cur.uris == uris) {
            return;
        }
        if let Some(old) = cur.gid {
            // Closing the old stream is cancelling it (the modern connector aborts the request).
            self.ups[u.0].pending.remove(&old);
            self.send_up(u, Message::notification(method::CANCELLED, Some(json!({ "requestId": old }))));
        }
        let has = |k: &str| caps.get(k).is_some();
        let listed = |k: &str| caps.pointer(&format!("/{k}/listChanged")).and_then(Value::as_bool) == Some(true);
        let mut filter = json!({});
        if listed("tools") {
            filter["toolsListChanged"] = Value::Bool(true);
        }
        if listed("prompts") {
            filter["promptsListChanged"] = Value::Bool(true);
        }
        if listed("resources") {
            filter["resourcesListChanged"] = Value::Bool(true);
        }
        if has("resources") && !uris.is_empty() {
            filter["resourceSubscriptions"] = json!(uris);
        }
        if filter.as_object().is_some_and(|o| o.is_empty()) {
            let l = self.up_listen(u);
            l.gid = None;
            l.uris = uris;
            return;
        }
        let gid =
            self.own_request(u, method::SUBSCRIPTIONS_LISTEN, json!({ "notifications": filter }), Pending::Listen);
        let l = self.up_listen(u);
        *l = UpListen { gid: Some(gid), uris, due: None, refused: false };
    }

    /// The upstream's listen ended: gracefully or broken (again in a second), or refused (not again
    /// on this link).
    pub(super) fn upstream_listen_ended(
        &mut self,
        now: Millis,
        u: UpstreamId,
        gid: i64,
        answer: &Result<Value, ErrorObject>,
    ) {
        let refused =
            matches!(answer, Err(e) if e.code != code::UPSTREAM_UNAVAILABLE && e.code != code::INTERNAL_ERROR);
        let name = self.uname(u).to_string();
        let l = self.up_listen(u);
        if l.gid != Some(gid) {
            return;
        }
        l.gid = None;
        if refused {
            l.refused = true;
            self.log(
                LogLevel::Info,
                format!("upstream {name:?} refused subscriptions/listen: no notifications from it"),
            );
        } else {
            l.due = Some(now + RELISTEN_MS);
        }
    }

    /// The link went down or came back: its listen starts over.
    pub(super) fn upstream_listen_reset(&mut self, u: UpstreamId) {
        *self.up_listen(u) = UpListen::default();
    }

    pub(super) fn listen_deadline(&self) -> Option<Millis> {
        self.listening.up.iter().filter_map(|l| l.due).min()
    }

    pub(super) fn listen_timeouts(&mut self, now: Millis) {
        for u in 0..self.listening.up.len() {
            if self.listening.up[u].due.is_some_and(|d| d <= now) {
                self.listening.up[u].due = None;
                self.listen_upstream(now, UpstreamId(u), true);
            }
        }
    }
}
