//! What the engine hands the host, checked as it comes: answers only to ids a client sent, each
//! once; progress only for its tokens; upstreams get answers only to what they asked; request ids
//! never repeat; store tickets go up; a due deadline is cleared by `handle_timeout`.

use super::*;

impl H {
    pub(super) fn new(setup: &Setup) -> Option<H> {
        let n = 1 + setup.count as usize % 3;
        let mut cfg = GatewayConfig {
            request_timeout_ms: [1_000, 5_000, 30_000, 120_000][setup.timeout as usize % 4],
            startup_grace_ms: [0, 500, 15_000][setup.grace as usize % 3],
            input_wait_ms: [1_000, 60_000, 600_000][setup.input_wait as usize % 3],
            cache_max_bytes: [0, 300, 8 * 1024 * 1024][setup.cache_bytes as usize % 3],
            queue_max_entries: [0, 1, 3, 10_000][setup.queue_max as usize % 4],
            list_page_size: 1 + setup.page_size as usize % 6,
            queue_result_ttl_ms: 60_000,
            ..Default::default()
        };
        for (i, u) in setup.upstreams.iter().take(n).enumerate() {
            cfg.upstreams.push(UpstreamSpec {
                name: NAMES[i].into(),
                prefix: u.prefixed.then(|| NAMES[i].to_string()),
                era: u.era.map(|m| if m { Era::Modern } else { Era::Legacy }),
                offline_queue: match u.queue % 4 {
                    1 => vec!["*".into()],
                    2 => vec!["echo".into()],
                    3 => vec!["@idempotentHint".into()],
                    _ => vec![],
                },
                cache_ttl_ms: u.ttl.map(|t| vec![("*".to_string(), u64::from(t))]).unwrap_or_default(),
                ..Default::default()
            });
        }
        if setup.group && n >= 2 {
            let g = json!({"grp": {"members": ["a", "b"], "timeoutMs": 20_000, "firstByteTimeoutMs": 3_000,
                "retry": {"attempts": 2, "backoffMs": 50, "safeTools": ["echo"]},
                "breaker": {"failures": 2, "minCalls": 2, "cooldownMs": 1_000, "windowMs": 10_000}}});
            read_groups("groups", &g, &mut cfg).expect("the group is valid");
        }
        let provider = json!({"url": "http://127.0.0.1:9/v1", "model": "m", "models": ["m", "big"],
            "timeoutMs": 2_000, "modalities": ["text"]});
        let sampling = match setup.sampling % 4 {
            1 => Some(json!({"providers": {"p": provider}, "order": ["p", "client"]})),
            2 => Some(json!({"providers": {"p": provider}, "order": ["p"]})),
            3 => Some(json!({"providers": {"p": provider}, "order": ["callback", "p", "client"]})),
            _ => None,
        };
        if let Some(s) = sampling {
            cfg.sampling = read_sampling("sampling", &s, &["callback"]).expect("the chain is valid");
        }
        let gw = Gateway::new(cfg.clone()).ok()?;
        Some(H {
            cfg,
            gw,
            now: 0,
            n,
            sess: Vec::new(),
            by_sid: HashMap::new(),
            up_reqs: vec![Vec::new(); n],
            up_ids: vec![HashSet::new(); n],
            up_asked: vec![HashMap::new(); n],
            held: VecDeque::new(),
            last_ticket: 0,
            store: MemoryStore::default(),
            samples: Vec::new(),
            jobs_seen: HashSet::new(),
            harvest: Harvest::default(),
            next_up_req: 1,
            auto: setup.upstreams.iter().take(n).map(|u| u.auto).collect(),
            modern_server: setup.upstreams.iter().take(n).map(|u| u.modern_server).collect(),
            connected: vec![false; n],
            reconnect: setup.connected,
        })
    }

    // --- what the engine hands the host --------------------------------------------------------

    pub(super) fn drain(&mut self) {
        let mut count = 0usize;
        while let Some(o) = self.gw.poll_output() {
            count += 1;
            assert!(count < 200_000, "the engine keeps producing output");
            match o {
                Output::ToClient { session, related, message } => self.to_client(session, related, message),
                Output::ToUpstream { upstream, message } => self.to_upstream(upstream, message),
                Output::Log { message, .. } => drop(message),
                Output::Store { ticket, ops } => {
                    assert!(ticket > self.last_ticket, "store tickets go up: {ticket} after {}", self.last_ticket);
                    self.last_ticket = ticket;
                    self.held.push_back((ticket, ops));
                }
                Output::Sample { job, provider, url, request } => {
                    assert!(self.jobs_seen.insert(job), "sampling job {job} handed out twice");
                    assert!(url.is_empty() || request.get("messages").is_some(), "a chat request has messages");
                    self.samples.push((job, if url.is_empty() { provider } else { String::new() }));
                }
            }
        }
    }

    pub(super) fn to_client(&mut self, sid: SessionId, related: Option<Id>, m: Message) {
        let Some(&i) = self.by_sid.get(&sid) else { panic!("output for session {sid:?}, never opened: {m:?}") };
        if trace() {
            let text = m.to_json();
            eprintln!("  -> client {i}: {}", &text[..text.len().min(240)]);
        }
        let s = &mut self.sess[i];
        if let Some(r) = &related {
            assert!(s.sent.contains_key(r), "`related` {r} is not a request of session {i}: {m:?}");
        }
        match &m {
            Message::Response { id, .. } | Message::Error { id: Some(id), .. } => {
                let Some(req) = s.sent.get_mut(id) else {
                    panic!("session {i} got an answer to {id}, which it never sent: {m:?}")
                };
                req.answers += 1;
                assert!(req.answers == 1, "session {i}: request {id} ({}) answered twice: {m:?}", req.method);
                if let Message::Response { result, .. } = &m {
                    let (method, params) = (req.method.clone(), req.params.clone());
                    self.harvest_result(i, &method, params, result);
                }
            }
            Message::Error { id: None, .. } => panic!("session {i} got an error without an id: {m:?}"),
            Message::Request { id, method, .. } => {
                assert!(s.asked_ever.insert(id.clone()), "session {i}: the gateway's request id {id} used twice");
                s.asked.push((id.clone(), method.clone()));
            }
            Message::Notification { method, params, .. } => {
                if method == protocol::method::PROGRESS {
                    let tok = params.as_ref().and_then(|p| p.get("progressToken")).map(Value::to_string);
                    let tok = tok.unwrap_or_default();
                    assert!(s.tokens.contains(&tok), "session {i} got progress for token {tok}, not one of its own");
                }
                if method == protocol::method::CANCELLED {
                    let rid = params.as_ref().and_then(|p| p.get("requestId")).cloned().unwrap_or_default();
                    let ok = s.asked_ever.iter().any(|x| x.to_value() == rid);
                    assert!(ok, "session {i} told to cancel {rid}, which the gateway never asked it");
                    s.asked.retain(|(x, _)| x.to_value() != rid);
                }
            }
        }
    }

    pub(super) fn harvest_result(&mut self, i: usize, method: &str, params: Option<Value>, r: &Value) {
        let h = &mut self.harvest;
        for (field, key) in [("tools", "name"), ("prompts", "name"), ("resources", "uri"), ("tasks", "taskId")] {
            for item in r.get(field).and_then(Value::as_array).into_iter().flatten() {
                if let Some(v) = item.get(key).and_then(Value::as_str) {
                    let list = match field {
                        "tools" => &mut h.names,
                        "prompts" => &mut h.prompts,
                        "resources" => &mut h.uris,
                        _ => &mut h.tasks,
                    };
                    remember(list, v);
                }
            }
        }
        if let Some(c) = r.get("nextCursor").and_then(Value::as_str) {
            remember(&mut h.cursors, c);
        }
        for p in ["/task/taskId", "/taskId"] {
            if let Some(t) = r.pointer(p).and_then(Value::as_str) {
                remember(&mut h.tasks, t);
            }
        }
        if let Some(t) = r.get("_meta").and_then(|m| m.get(meta::QUEUED)).and_then(|q| q.get("taskId")) {
            if let Some(t) = t.as_str() {
                remember(&mut h.tasks, t);
            }
        }
        if r.get("resultType").and_then(Value::as_str) == Some("input_required") {
            let keys = r.get("inputRequests").and_then(Value::as_object).map(|o| o.keys().cloned().collect());
            if let Some(state) = r.get("requestState") {
                if h.inputs.len() >= 8 {
                    h.inputs.remove(0);
                }
                h.inputs.push((i, method.to_string(), params, state.clone(), keys.unwrap_or_default()));
            }
        }
    }

    pub(super) fn to_upstream(&mut self, u: UpstreamId, m: Message) {
        if trace() {
            let text = m.to_json();
            eprintln!("  -> upstream {}: {}", u.0, &text[..text.len().min(240)]);
        }
        assert!(u.0 < self.n, "message for upstream {} of {}", u.0, self.n);
        match &m {
            Message::Request { id, method, params, .. } => {
                let Id::Num(g) = id else { panic!("the gateway's request ids are numbers: {m:?}") };
                assert!(self.up_ids[u.0].insert(*g), "upstream {}: the gateway used id {g} twice", u.0);
                let list = &mut self.up_reqs[u.0];
                if list.len() >= 64 {
                    list.remove(0);
                }
                list.push((*g, method.clone(), params.clone()));
            }
            Message::Response { id, .. } | Message::Error { id: Some(id), .. } => {
                let Some(e) = self.up_asked[u.0].get_mut(id) else {
                    panic!("upstream {} got an answer to {id}, which it never asked: {m:?}", u.0)
                };
                e.1 += 1;
                assert!(e.1 <= e.0, "upstream {}: its request {id} answered {} times, asked {}", u.0, e.1, e.0);
            }
            Message::Error { id: None, .. } => panic!("upstream {} got an error without an id: {m:?}", u.0),
            Message::Notification { .. } => {}
        }
    }

    /// Call `handle_timeout` if a deadline has passed, and check that it clears what was due.
    pub(super) fn tick(&mut self) {
        for round in 0.. {
            match self.gw.poll_timeout() {
                Some(t) if t <= self.now => {
                    assert!(
                        round < 8,
                        "a deadline at {t} stays due at {} after handle_timeout; status {}; queue {}",
                        self.now,
                        self.gw.status(),
                        self.gw.queue_entries()
                    );
                    self.gw.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
    }
}
