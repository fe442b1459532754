//! Server-to-client requests (sampling, elicitation, roots, ping) and era bridging. A legacy
//! upstream's request goes to the client whose call caused it, never to another. A modern upstream's
//! `input_required` is asked of a legacy client as real requests, and the call retried with the
//! answers; a legacy upstream's request to a modern client becomes `input_required`, and the call is
//! parked until the client's retry brings our `requestState` back.

use crate::prelude::*;

use super::*;

impl Gateway {
    /// Legacy client, modern upstream: ask the client each input request, then retry upstream.
    pub(super) fn start_collect(&mut self, now: Millis, u: UpstreamId, mut call: ClientCall, r: Value) {
        let Some(s) = call.session.filter(|s| self.sessions.contains_key(s)) else {
            return;
        };
        let requests = r.get("inputRequests").and_then(Value::as_object).cloned().unwrap_or_default();
        let gid = self.ups[u.0].next_id;
        self.ups[u.0].next_id += 1;
        call.collect = Some(Collect {
            waiting: requests.len(),
            responses: Map::new(),
            request_state: r.get("requestState").cloned(),
            original: call.modern_client.then(|| r.clone()),
        });
        call.deadline = now + self.cfg.request_timeout_ms;
        let client_id = call.client_id.clone();
        self.by_client.insert((s, client_id.clone()), (u, gid));
        self.ups[u.0].pending.insert(gid, Pending::Client(Box::new(call)));
        if requests.is_empty() {
            return self.retry_with_inputs(now, u, gid);
        }
        for (key, req) in requests {
            let m = req.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
            let params = req.get("params").cloned();
            if m == method::SAMPLE && self.cfg.sampling.active() {
                self.start_sampling(now, sampling::Origin::Input { u, call: gid, key }, params);
                continue;
            }
            if !self.client_can(s, &m, params.as_ref()) {
                // The client cannot answer this kind of question: the call fails clearly.
                if let Some(Pending::Client(c)) = self.ups[u.0].pending.remove(&gid) {
                    self.drop_client_index(u, gid, &c);
                }
                self.to_client.retain(|_, r| !matches!(r, ToClientReq::Input { call, .. } if *call == gid));
                let e =
                    err(code::INVALID_REQUEST, format!("the upstream needs {m}, which this client did not declare"));
                return self.reply_err(s, client_id, e);
            }
            let sid = self.next_client_req(s);
            self.to_client.insert((s, sid), ToClientReq::Input { upstream: u, call: gid, key });
            self.out.push_back(Output::ToClient {
                session: s,
                related: Some(client_id.clone()),
                message: Message::Request { id: Id::Num(sid), method: m, params, rest: Map::new() },
            });
        }
    }

    pub(super) fn next_client_req(&mut self, s: SessionId) -> i64 {
        // Unknown sessions cannot receive anything; the id is then never used.
        let Some(sess) = self.sessions.get_mut(&s) else { return 0 };
        let n = sess.next_req;
        sess.next_req += 1;
        n
    }

    pub(super) fn client_can(&self, s: SessionId, m: &str, params: Option<&Value>) -> bool {
        self.sessions.get(&s).is_some_and(|x| caps_allow(Some(&x.capabilities), m, params))
    }

    pub(super) fn input_answered(
        &mut self,
        now: Millis,
        u: UpstreamId,
        gid: i64,
        key: String,
        answer: Result<Value, ErrorObject>,
    ) {
        let Some(Pending::Client(call)) = self.ups[u.0].pending.get_mut(&gid) else {
            return;
        };
        let Some(col) = call.collect.as_mut() else {
            return;
        };
        match answer {
            Ok(r) => {
                col.responses.insert(key, r);
                col.waiting = col.waiting.saturating_sub(1);
                if col.waiting == 0 {
                    self.retry_with_inputs(now, u, gid);
                }
            }
            Err(e) => {
                if let Some(Pending::Client(c)) = self.ups[u.0].pending.remove(&gid) {
                    self.drop_client_index(u, gid, &c);
                    self.to_client.retain(|_, r| !matches!(r, ToClientReq::Input { call, .. } if *call == gid));
                    if let Some(s) = c.session {
                        self.reply_err(s, c.client_id, e);
                    }
                }
            }
        }
    }

    pub(super) fn retry_with_inputs(&mut self, now: Millis, u: UpstreamId, gid: i64) {
        let Some(Pending::Client(mut call)) = self.ups[u.0].pending.remove(&gid) else {
            return;
        };
        let Some(col) = call.collect.take() else { return };
        // This round's answers ride along once; `sent_params` stays the original request so a
        // further round starts from it again.
        call.round.insert("inputResponses".into(), Value::Object(col.responses));
        if let Some(st) = col.request_state {
            call.round.insert("requestState".into(), st);
        }
        let retry = self.ups[u.0].next_id;
        self.ups[u.0].next_id += 1;
        if call.client_progress.is_some() {
            if let Some(m) = call.sent_params.get_mut("_meta").and_then(Value::as_object_mut) {
                m.insert("progressToken".into(), Value::from(retry));
            }
        }
        call.deadline = now + self.cfg.request_timeout_ms;
        if let Some(s) = call.session {
            self.by_client.insert((s, call.client_id.clone()), (u, retry));
        }
        self.dispatch(u, retry, *call);
    }

    /// A legacy upstream asks something of a client (sampling, elicitation, roots, ping).
    pub(super) fn upstream_request(
        &mut self,
        now: Millis,
        u: UpstreamId,
        id: Id,
        m: String,
        params: Option<Value>,
        related: Option<i64>,
    ) {
        if m == method::PING {
            return self.send_up(u, Message::response(id, json!({})));
        }
        if let Some(g) = related {
            self.group_alive(u, g);
        }
        if m == method::SAMPLE && self.cfg.sampling.active() {
            return self.start_sampling(now, sampling::Origin::Request { u, id, related }, params);
        }
        if let Err(e) = self.ask_client(now, u, id.clone(), m, params, related) {
            self.send_up(u, Message::error(Some(id), e));
        }
    }

    /// Send a legacy upstream's request to the client it is for; `Err` when no client can answer it.
    pub(super) fn ask_client(
        &mut self,
        now: Millis,
        u: UpstreamId,
        id: Id,
        m: String,
        params: Option<Value>,
        related: Option<i64>,
    ) -> Result<(), ErrorObject> {
        // Which client. Over HTTP the request comes on the stream of the call that caused it
        // (`related`). Over stdio nothing links the two: it goes to the one session with calls in
        // flight on this upstream. If calls of several sessions are in flight, asking any of them
        // could show one user's prompt to another, so the upstream gets an error instead. With no
        // call in flight (roots after list_changed), the only session that declared the capability
        // is asked; with none or several, roots are empty and anything else is refused.
        let pending = &self.ups[u.0].pending;
        let related = related.filter(|g| matches!(pending.get(g), Some(Pending::Client(c)) if c.session.is_some()));
        let call_gid = match related {
            Some(g) => Some(g),
            None => {
                // Calls known to ask first (later calls of theirs from other clients wait, so at
                // most one client has such calls in flight), else every call in flight.
                let up = &self.ups[u.0];
                let calls: Vec<(i64, SessionId, bool)> = up
                    .pending
                    .iter()
                    .filter_map(|(g, p)| match p {
                        Pending::Client(c) if c.in_flight() && c.list.is_none() => {
                            c.session.map(|s| (*g, s, up.interactive.contains(&c.key())))
                        }
                        _ => None,
                    })
                    .collect();
                let known: Vec<(i64, SessionId, bool)> = calls.iter().copied().filter(|c| c.2).collect();
                let candidates = if known.is_empty() { calls } else { known };
                let owners: HashSet<SessionId> = candidates.iter().map(|c| c.1).collect();
                // Learn: every call that may have asked is interactive from now on.
                let keys: Vec<String> = candidates
                    .iter()
                    .filter_map(|c| match up.pending.get(&c.0) {
                        Some(Pending::Client(call)) => Some(call.key()),
                        _ => None,
                    })
                    .collect();
                self.ups[u.0].interactive.extend(keys);
                if owners.len() > 1 {
                    let name = self.uname(u).to_string();
                    self.log(
                        LogLevel::Warn,
                        format!(
                            "upstream {name:?} sent {m} while calls of {} clients were in flight; refused because it cannot be attributed (such calls now go one client at a time)",
                            owners.len()
                        ),
                    );
                    let e = err(
                        code::INTERNAL_ERROR,
                        format!("{m} cannot be attributed to one client: calls of several clients are in flight on this link"),
                    );
                    return Err(e);
                }
                candidates.iter().map(|c| c.0).max()
            }
        };
        let target = match call_gid {
            Some(g) => match self.ups[u.0].pending.get(&g) {
                Some(Pending::Client(c)) => c.session.map(|s| (s, Some(g), c.modern_client, c.client_id.clone())),
                _ => None,
            },
            None => {
                let able: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(k, x)| x.legacy_initialized && self.client_can(**k, &m, params.as_ref()))
                    .map(|(k, _)| *k)
                    .collect();
                (able.len() == 1).then(|| (able[0], None, false, Id::Num(0)))
            }
        };
        let Some((s, gid, modern, client_id)) = target else {
            if m == method::ROOTS_LIST {
                // No one (or several) to ask: empty roots leak nothing.
                self.send_up(u, Message::response(id, json!({"roots": []})));
                return Ok(());
            }
            let e = err(code::METHOD_NOT_FOUND, format!("no single connected client could answer {m}"));
            return Err(e);
        };
        let can = match gid.and_then(|g| self.ups[u.0].pending.get(&g)) {
            // A modern client declares its capabilities on each request, not in a session.
            Some(Pending::Client(c)) if modern => caps_allow(
                c.sent_params.pointer("/_meta").and_then(|m| m.get(meta::CLIENT_CAPABILITIES)),
                &m,
                params.as_ref(),
            ),
            _ => self.client_can(s, &m, params.as_ref()),
        };
        if !can {
            let e = err(code::METHOD_NOT_FOUND, format!("the client did not declare support for {m}"));
            return Err(e);
        }
        if !modern {
            let sid = self.next_client_req(s);
            self.to_client.insert((s, sid), ToClientReq::Forwarded { upstream: u, upstream_id: id });
            let related = gid.map(|_| client_id);
            self.out.push_back(Output::ToClient {
                session: s,
                related,
                message: Message::Request { id: Id::Num(sid), method: m, params, rest: Map::new() },
            });
            return Ok(());
        }
        // Modern client: answer its call with `input_required` and park the upstream call.
        let gid = gid.expect("modern targets come from a call");
        let Some(Pending::Client(call)) = self.ups[u.0].pending.get_mut(&gid) else {
            return Ok(());
        };
        if !protocol::may_require_input(&call.method) {
            let e =
                err(code::METHOD_NOT_FOUND, format!("{m} cannot be bridged to a modern client during {}", call.method));
            return Err(e);
        }
        let token = format!("gw-{}", self.tokens.next_hex());
        let key = match m.as_str() {
            method::ELICIT => "elicitation",
            method::SAMPLE => "sampling",
            method::ROOTS_LIST => "roots",
            _ => "input",
        }
        .to_string();
        let client_id = call.client_id.clone();
        call.session = None;
        call.deadline = now + self.cfg.input_wait_ms;
        let expires = now + self.cfg.input_wait_ms;
        self.by_client.remove(&(s, client_id.clone()));
        let mut req = json!({ "method": m });
        if let Some(mut p) = params {
            if let Some(o) = p.as_object_mut() {
                o.remove("_meta");
            }
            req["params"] = p;
        }
        self.parked.insert(
            token.clone(),
            Parked { upstream: u, call: gid, upstream_req: id, key: key.clone(), request: req.clone(), expires },
        );
        let r = json!({
            "resultType": "input_required",
            "inputRequests": { key: req },
            "requestState": token,
        });
        self.reply(s, client_id, r);
        Ok(())
    }

    /// A modern client retried a call with `requestState` we minted: resume the parked call.
    /// `None` when the state is not ours (the request then goes upstream as usual). The state only
    /// resumes the call it was issued for: same method, same target, same arguments.
    pub(super) fn resume_parked(
        &mut self,
        s: SessionId,
        id: &Id,
        m: &str,
        params: &Value,
    ) -> Option<Result<(), ErrorObject>> {
        let token = params.get("requestState")?.as_str()?;
        if !token.starts_with("gw-") {
            return None;
        }
        let invalid = || Some(Err(err(code::INVALID_PARAMS, "Invalid or expired requestState; call again without it")));
        let Some(p) = self.parked.get(token) else { return invalid() };
        let Some(Pending::Client(call)) = self.ups[p.upstream.0].pending.get(&p.call) else {
            self.parked.remove(token);
            return invalid();
        };
        let target_ok = match m {
            method::TOOLS_CALL | method::PROMPTS_GET => {
                let kind = if m == method::TOOLS_CALL { ListKind::Tools } else { ListKind::Prompts };
                let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
                self.catalog.resolve_name(&self.cfg, kind, name).is_some_and(|(u, orig)| {
                    let same =
                        u == p.upstream.0 || self.group_of(u).is_some_and(|g| self.group_of(p.upstream.0) == Some(g));
                    same && call.sent_params.get("name").and_then(Value::as_str) == Some(orig.as_str())
                })
            }
            _ => params.get("uri").is_some() && params.get("uri") == call.sent_params.get("uri"),
        };
        if call.method != m || !target_ok || params.get("arguments") != call.sent_params.get("arguments") {
            return invalid();
        }
        let Some(answer) = params.get("inputResponses").and_then(|r| r.get(&p.key)).cloned() else {
            // No answer: ask again, as the spec prefers to an error.
            let r = json!({
                "resultType": "input_required",
                "inputRequests": { p.key.clone(): p.request.clone() },
                "requestState": token,
            });
            self.reply(s, id.clone(), r);
            return Some(Ok(()));
        };
        let p = self.parked.remove(token).expect("looked up above");
        if let Some(Pending::Client(call)) = self.ups[p.upstream.0].pending.get_mut(&p.call) {
            call.session = Some(s);
            call.client_id = id.clone();
        }
        self.by_client.insert((s, id.clone()), (p.upstream, p.call));
        self.send_up(p.upstream, Message::response(p.upstream_req, answer));
        Some(Ok(()))
    }
}
