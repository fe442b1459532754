//! The clients' side: opening sessions (either era, any capabilities), sending requests of every
//! method with names, cursors, tasks and `requestState` harvested from earlier answers (or mutated
//! params), notifications, answers to the gateway's requests, raw bytes.

use super::*;

impl H {
    pub(super) fn open(&mut self, init: Option<Caps>) {
        if self.sess.len() >= 12 {
            return;
        }
        let id = self.gw.open_session(self.now);
        assert!(!self.by_sid.contains_key(&id), "session id {id:?} handed out twice");
        self.by_sid.insert(id, self.sess.len());
        self.sess.push(Sess {
            id,
            open: true,
            next_id: 1,
            sent: HashMap::new(),
            order: Vec::new(),
            tokens: HashSet::new(),
            asked_ever: HashSet::new(),
            asked: Vec::new(),
        });
        self.drain();
        if let Some(c) = init {
            let i = self.sess.len() - 1;
            let p = json!({"protocolVersion": protocol::LATEST_LEGACY, "capabilities": c.value(),
                "clientInfo": {"name": "fuzz", "version": "1"}});
            self.send_request(i, false, protocol::method::INITIALIZE, Some(p));
            self.send(i, Message::notification(protocol::method::INITIALIZED, None));
        }
    }

    pub(super) fn session(&self, s: u8) -> Option<usize> {
        (!self.sess.is_empty()).then(|| s as usize % self.sess.len())
    }

    /// Send a message as session `i` (closed sessions too: the engine must ignore them).
    pub(super) fn send(&mut self, i: usize, m: Message) {
        if let Message::Request { id, method, params, .. } = &m {
            let s = &mut self.sess[i];
            if s.sent.contains_key(id) {
                return; // the same id twice in a session is the client's bug, not the gateway's
            }
            if s.open {
                if let Some(t) = params.as_ref().and_then(|p| p.get("_meta")).and_then(|x| x.get("progressToken")) {
                    s.tokens.insert(t.to_string());
                }
                s.sent.insert(
                    id.clone(),
                    SentReq { method: method.clone(), params: params.clone(), answers: 0, cancelled: false },
                );
                s.order.push(id.clone());
            }
        }
        if let Message::Notification { method, params, .. } = &m {
            if method == protocol::method::CANCELLED {
                let rid = params.as_ref().and_then(|p| p.get("requestId"));
                for (id, r) in self.sess[i].sent.iter_mut() {
                    if rid == Some(&id.to_value()) {
                        r.cancelled = true;
                    }
                }
            }
        }
        let sid = self.sess[i].id;
        self.gw.handle_client(self.now, sid, m);
        self.drain();
    }

    pub(super) fn fresh_id(&mut self, i: usize, str_id: bool) -> Id {
        let s = &mut self.sess[i];
        let n = s.next_id;
        s.next_id += 1;
        // Every session counts from 1: a mix-up between sessions shows as an answer to the wrong one.
        if str_id {
            Id::Str(format!("r{n}"))
        } else {
            Id::Num(n)
        }
    }

    pub(super) fn send_request(&mut self, i: usize, str_id: bool, method: &str, params: Option<Value>) {
        let id = self.fresh_id(i, str_id);
        self.send(i, Message::Request { id, method: method.into(), params, rest: Map::new() });
    }

    pub(super) fn exposed_name(&self, t: u8) -> String {
        if let Some(n) = pick(&self.harvest.names, t).filter(|_| t % 4 != 3) {
            return n.clone();
        }
        let tool = TOOLS[t as usize % TOOLS.len()];
        match (t / 8) % 4 {
            0 => format!("a__{tool}"),
            1 => format!("b__{tool}"),
            2 => format!("grp__{tool}"),
            _ => tool.to_string(),
        }
    }

    pub(super) fn uri(&self, t: u8) -> String {
        pick(&self.harvest.uris, t).filter(|_| t % 4 != 3).cloned().unwrap_or(URIS[t as usize % URIS.len()].into())
    }

    pub(super) fn request(&mut self, i: usize, r: ClientReq) {
        use protocol::method as m;
        if let Some(k) = r.retry {
            if let Some((_, method, params, state, keys)) = pick(&self.harvest.inputs, k).cloned() {
                let mut p = params.unwrap_or(json!({}));
                if !p.is_object() {
                    p = json!({});
                }
                let mut answers = Map::new();
                for key in keys {
                    answers.insert(key, json!({"action": "accept", "content": {"name": "x"}}));
                }
                p["inputResponses"] = Value::Object(answers);
                p["requestState"] = state;
                if let Some((spot, v)) = r.mutate {
                    set_at(&mut p, spot, v.0);
                }
                return self.send_request(i, r.str_id, &method, Some(p));
            }
        }
        let t = r.target;
        let (method, mut p): (&str, Option<Value>) = match r.method {
            MethodPick::Initialize => (
                m::INITIALIZE,
                Some(json!({"protocolVersion": VERSIONS[t as usize % VERSIONS.len()], "capabilities": r.caps.value(),
                    "clientInfo": {"name": "fuzz", "version": "1"}})),
            ),
            MethodPick::Ping => (m::PING, None),
            MethodPick::Discover => (m::DISCOVER, Some(json!({}))),
            MethodPick::ToolsList => (m::TOOLS_LIST, Some(json!({}))),
            MethodPick::PromptsList => (m::PROMPTS_LIST, Some(json!({}))),
            MethodPick::ResourcesList => (m::RESOURCES_LIST, Some(json!({}))),
            MethodPick::TemplatesList => (m::RESOURCE_TEMPLATES_LIST, Some(json!({}))),
            MethodPick::ToolsCall => (m::TOOLS_CALL, Some(json!({"name": self.exposed_name(t)}))),
            MethodPick::PromptsGet => {
                let name = pick(&self.harvest.prompts, t).cloned().unwrap_or_else(|| self.exposed_name(t));
                (m::PROMPTS_GET, Some(json!({"name": name})))
            }
            MethodPick::ResourcesRead => (m::RESOURCES_READ, Some(json!({"uri": self.uri(t)}))),
            MethodPick::Subscribe => (m::RESOURCES_SUBSCRIBE, Some(json!({"uri": self.uri(t)}))),
            MethodPick::Unsubscribe => (m::RESOURCES_UNSUBSCRIBE, Some(json!({"uri": self.uri(t)}))),
            MethodPick::Complete => {
                let rf = if t % 2 == 0 {
                    json!({"type": "ref/prompt", "name": pick(&self.harvest.prompts, t).cloned().unwrap_or_else(|| self.exposed_name(t))})
                } else {
                    json!({"type": "ref/resource", "uri": self.uri(t)})
                };
                (m::COMPLETE, Some(json!({"ref": rf, "argument": {"name": "q", "value": "x"}})))
            }
            MethodPick::SetLevel => {
                (m::SET_LEVEL, Some(json!({"level": (["debug", "info", "error", "loud"][t as usize % 4])})))
            }
            MethodPick::Listen => {
                let mut f = json!({"toolsListChanged": t & 1 != 0, "promptsListChanged": t & 2 != 0,
                    "resourcesListChanged": t & 4 != 0});
                if t & 8 != 0 {
                    f["resourceSubscriptions"] = json!([self.uri(t >> 4)]);
                }
                (m::SUBSCRIPTIONS_LISTEN, Some(json!({"notifications": f})))
            }
            MethodPick::TasksGet | MethodPick::TasksResult | MethodPick::TasksCancel => {
                let task = pick(&self.harvest.tasks, t).cloned().unwrap_or_else(|| format!("task-{t}"));
                let method = match r.method {
                    MethodPick::TasksGet => m::TASKS_GET,
                    MethodPick::TasksResult => m::TASKS_RESULT,
                    _ => m::TASKS_CANCEL,
                };
                (method, Some(json!({"taskId": task})))
            }
            MethodPick::TasksList => (m::TASKS_LIST, Some(json!({}))),
            MethodPick::Unknown => ("vendor/thing", Some(json!({"x": t}))),
        };
        if let Some(o) = p.as_mut().and_then(Value::as_object_mut) {
            if matches!(r.method, MethodPick::ToolsCall | MethodPick::PromptsGet) {
                match &r.args {
                    Args::Absent => {}
                    Args::Empty => drop(o.insert("arguments".into(), json!({}))),
                    Args::Some(n) => drop(o.insert("arguments".into(), json!({"text": format!("hi {n}"), "n": n}))),
                    Args::Null => drop(o.insert("arguments".into(), Value::Null)),
                    Args::Image => drop(o.insert("arguments".into(), json!({"image": true, "hint": "big"}))),
                    Args::Any(v) => drop(o.insert("arguments".into(), v.0.clone())),
                }
            }
            if let Some(c) = r.cursor {
                let cur = pick(&self.harvest.cursors, c).cloned().unwrap_or_else(|| format!("junk{c}"));
                o.insert("cursor".into(), Value::from(cur));
            }
            if let Some(ttl) = &r.task {
                let ttl = match ttl {
                    Ttl::Absent => json!({}),
                    Ttl::Short => json!({"ttl": 30_000}),
                    Ttl::Minutes(m) => json!({"ttl": u64::from(*m) * 60_000}),
                    Ttl::Max => json!({"ttl": u64::MAX}),
                    Ttl::Any(n) => json!({"ttl": *n}),
                    Ttl::Weird(v) => json!({"ttl": v.0.clone()}),
                };
                o.insert("task".into(), ttl);
            }
            let mut meta = Map::new();
            if r.progress {
                let s = &self.sess[i];
                meta.insert(
                    "progressToken".into(),
                    if r.str_id { json!(format!("p{}", s.next_id)) } else { json!(s.next_id) },
                );
            }
            if r.modern {
                meta.insert(meta::PROTOCOL_VERSION.into(), json!(protocol::LATEST_MODERN));
                meta.insert(meta::CLIENT_CAPABILITIES.into(), r.caps.value());
                meta.insert(meta::CLIENT_INFO.into(), json!({"name": "fuzz-modern", "version": "1"}));
                if r.task.is_some() {
                    meta.insert(meta::TASKS_EXTENSION.into(), json!({}));
                }
            }
            if !meta.is_empty() {
                o.insert("_meta".into(), Value::Object(meta));
            }
        } else if r.modern {
            let meta =
                json!({ meta::PROTOCOL_VERSION: protocol::LATEST_MODERN, meta::CLIENT_CAPABILITIES: r.caps.value() });
            p = Some(json!({ "_meta": meta }));
        }
        if let Some((spot, v)) = r.mutate {
            let mut q = p.take().unwrap_or(json!({}));
            set_at(&mut q, spot, v.0);
            // A message's params are an object or an array; anything else is not a request.
            p = Some(q).filter(|q| q.is_object() || q.is_array());
        }
        self.send_request(i, r.str_id, method, p);
    }

    pub(super) fn notify(&mut self, i: usize, n: ClientNote) {
        use protocol::method as m;
        let msg = match n {
            ClientNote::Initialized => Message::notification(m::INITIALIZED, None),
            ClientNote::Cancelled { which, raw } => {
                let rid = match raw {
                    Some(r) => json!(r),
                    None => match pick(&self.sess[i].order, which) {
                        Some(id) => id.to_value(),
                        None => json!(which),
                    },
                };
                Message::notification(m::CANCELLED, Some(json!({"requestId": rid, "reason": "fuzz"})))
            }
            ClientNote::RootsChanged => Message::notification(m::ROOTS_LIST_CHANGED, None),
            ClientNote::Progress(t) => {
                Message::notification(m::PROGRESS, Some(json!({"progressToken": t, "progress": 1})))
            }
            ClientNote::Other => Message::notification("notifications/vendor", Some(json!({}))),
        };
        self.send(i, msg);
    }

    pub(super) fn answer(&mut self, i: usize, which: u8, a: ClientAnswer) {
        let s = &mut self.sess[i];
        let Some(k) = (!s.asked.is_empty()).then(|| which as usize % s.asked.len()) else {
            // Nothing asked: an answer out of the blue.
            let id = Id::Num(i64::from(which));
            return self.send(i, Message::response(id, json!({})));
        };
        let (id, method) = s.asked.remove(k);
        let msg = match a {
            ClientAnswer::Good => {
                let r = match method.as_str() {
                    protocol::method::ELICIT => json!({"action": "accept", "content": {"name": "fuzz"}}),
                    protocol::method::SAMPLE => json!({"role": "assistant", "content": {"type": "text", "text": "hi"},
                        "model": "client-model", "stopReason": "endTurn"}),
                    protocol::method::ROOTS_LIST => json!({"roots": [{"uri": "file:///w", "name": "w"}]}),
                    _ => json!({}),
                };
                Message::response(id, r)
            }
            ClientAnswer::Decline => Message::response(id, json!({"action": "decline"})),
            ClientAnswer::Error(c) => Message::error(Some(id), ErrorObject::new(i64::from(c), "client says no")),
            ClientAnswer::Any(v) => Message::response(id, v.0),
            ClientAnswer::WrongId(n) => Message::response(Id::Num(i64::from(n)), json!({})),
        };
        self.send(i, msg);
    }

    pub(super) fn raw_client(&mut self, i: usize, bytes: &[u8]) {
        if let Ok(m) = Message::parse(bytes) {
            self.send(i, m);
        }
    }
}
