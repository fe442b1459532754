//! Running a scenario: store batches and sampling jobs finishing, time passing, restarts on the
//! store, each action dispatched (`step`), and the end (`finish`): everything succeeds, time runs
//! out, and every request of every open session must have had its one answer.

use super::*;

impl H {
    pub(super) fn store(&mut self, o: StoreOutcome) {
        let Some((ticket, ops)) = self.held.pop_front() else { return };
        let r = match o {
            StoreOutcome::Ok => self.store.apply_now(ops),
            StoreOutcome::Full => Err(StoreError::Full("fuzz: full".into())),
            StoreOutcome::Failed => Err(StoreError::Failed("fuzz: failed".into())),
            StoreOutcome::Corrupt => Err(StoreError::Corrupt("fuzz: corrupt".into())),
        };
        self.gw.store_done(self.now, ticket, r);
        self.drain();
    }

    pub(super) fn sample(&mut self, which: u8, a: SampleOutcome) {
        if self.samples.is_empty() {
            return;
        }
        let (job, builtin) = self.samples.remove(which as usize % self.samples.len());
        let r = match a {
            SampleOutcome::Chat { tool_call, stop } => {
                let mut msg = json!({"role": "assistant", "content": "hello"});
                if tool_call {
                    msg["tool_calls"] = json!([{"id": "t1", "type": "function",
                        "function": {"name": "f", "arguments": "{\"a\":1}"}}]);
                }
                Ok(json!({"choices": [{"message": msg, "finish_reason": if stop { "stop" } else { "length" }}],
                    "model": "m"}))
            }
            SampleOutcome::Mcp => Ok(json!({"role": "assistant", "content": {"type": "text", "text": "hi"},
                "model": builtin, "stopReason": "endTurn"})),
            SampleOutcome::Fail => Err("fuzz: the provider is down".to_string()),
            SampleOutcome::Any(v) => Ok(v.0),
        };
        self.gw.sampling_done(self.now, job, r);
        self.drain();
    }

    pub(super) fn advance(&mut self, d: Delay) {
        self.now += match d {
            Delay::Ms(n) => u64::from(n),
            Delay::Seconds(n) => u64::from(n) * 1_000,
            Delay::Minutes(n) => u64::from(n) * 60_000,
            Delay::Days(n) => u64::from(n % 8) * 86_400_000,
        };
        self.tick();
    }

    pub(super) fn restart(&mut self) {
        // The process dies: unacknowledged batches are lost, sessions and links go with it.
        // Its sessions are gone, and the new engine numbers sessions from 1 again.
        self.held.clear();
        self.samples.clear();
        self.sess.clear();
        self.by_sid.clear();
        self.harvest.inputs.clear();
        self.up_reqs.iter_mut().for_each(Vec::clear);
        self.up_asked.iter_mut().for_each(HashMap::clear);
        self.up_ids.iter_mut().for_each(HashSet::clear);
        self.connected.iter_mut().for_each(|c| *c = false);
        self.jobs_seen.clear();
        self.last_ticket = 0;
        self.gw = Gateway::new(self.cfg.clone()).expect("valid config");
        let snap: Snapshot = self.store.load_now();
        let _ = self.gw.restore(self.now, 1_700_000_000_000 + self.now, &snap);
        self.drain();
        // The host connects its links again.
        if self.reconnect {
            for u in 0..self.n {
                self.connect(UpstreamId(u));
            }
        }
    }

    pub(super) fn connect(&mut self, u: UpstreamId) {
        self.connected[u.0] = true;
        self.gw.upstream_connected(self.now, u);
        self.drain();
    }

    pub(super) fn step(&mut self, a: Action) {
        match a {
            Action::Open { init } => self.open(init),
            Action::Close(s) => {
                if let Some(i) = self.session(s) {
                    if self.sess[i].open {
                        self.sess[i].open = false;
                        self.gw.close_session(self.now, self.sess[i].id);
                        self.drain();
                    }
                }
            }
            Action::Auth { s, ctx } => {
                if let Some(i) = self.session(s) {
                    self.gw.set_session_auth(self.sess[i].id, &format!("ctx-{}", ctx % 3));
                }
            }
            Action::Admin(s) => {
                if let Some(i) = self.session(s) {
                    self.gw.set_session_admin(self.sess[i].id);
                }
            }
            Action::Request { s, r } => {
                if let Some(i) = self.session(s) {
                    self.request(i, r);
                }
            }
            Action::Notify { s, n } => {
                if let Some(i) = self.session(s) {
                    self.notify(i, n);
                }
            }
            Action::Answer { s, which, a } => {
                if let Some(i) = self.session(s) {
                    self.answer(i, which, a);
                }
            }
            Action::RawClient { s, bytes } => {
                if let Some(i) = self.session(s) {
                    self.raw_client(i, &bytes);
                }
            }
            Action::Connect(u) => {
                let u = self.up(u);
                self.connect(u);
            }
            Action::Disconnect(u) => {
                let u = self.up(u);
                self.connected[u.0] = false;
                self.gw.upstream_disconnected(self.now, u, "fuzz: link down");
                self.drain();
            }
            Action::Expired(u) => {
                let u = self.up(u);
                self.gw.upstream_session_expired(self.now, u);
                self.drain();
            }
            Action::Lost { u, which } => {
                let u = self.up(u);
                if let Some(k) = self.outstanding(u, which) {
                    let (gid, _, _) = self.up_reqs[u.0].remove(k);
                    self.gw.upstream_lost(self.now, u, gid, "fuzz: connection broke");
                    self.drain();
                }
            }
            Action::Undelivered { u, which } => {
                let u = self.up(u);
                if let Some(k) = self.outstanding(u, which) {
                    let gid = self.up_reqs[u.0][k].0;
                    self.gw.upstream_undelivered(self.now, u, gid);
                    self.drain();
                }
            }
            Action::UpAnswer { u, which, a, keep, related } => {
                let u = self.up(u);
                self.up_answer(u, which, a, keep, related)
            }
            Action::UpRequest { u, r, related } => {
                let u = self.up(u);
                self.up_request(u, r, related)
            }
            Action::UpNotify { u, n } => {
                let u = self.up(u);
                self.up_notify(u, n)
            }
            Action::RawUp { u, bytes, related } => {
                let u = self.up(u);
                self.raw_up(u, &bytes, related)
            }
            Action::Store(o) => self.store(o),
            Action::Sample { which, a } => self.sample(which, a),
            Action::Advance(d) => self.advance(d),
            Action::Timeout => {
                // Early: nothing is due, and the engine must cope.
                self.gw.handle_timeout(self.now);
                self.drain();
            }
            Action::Nudge => {
                self.gw.nudge(self.now);
                self.drain();
            }
            Action::WallClock(w) => {
                self.gw.set_wall_clock(self.now, 1_700_000_000_000 + u64::from(w) * 1_000);
                self.drain();
            }
            Action::Restart(b) => {
                if b % 8 == 0 {
                    self.restart();
                    let _ = self.gw.status();
                }
            }
        }
        self.tick();
        self.auto();
    }

    /// Let everything finish, then check that every request was answered.
    pub(super) fn finish(&mut self, end_down: bool) {
        if end_down {
            for u in 0..self.n {
                self.connected[u] = false;
                self.gw.upstream_disconnected(self.now, UpstreamId(u), "fuzz: the end");
                self.drain();
            }
        }
        for _ in 0..5_000 {
            while let Some((ticket, ops)) = self.held.pop_front() {
                let r = self.store.apply_now(ops);
                self.gw.store_done(self.now, ticket, r);
                self.drain();
            }
            for (job, _) in std::mem::take(&mut self.samples) {
                self.gw.sampling_done(self.now, job, Err("fuzz: the end".into()));
                self.drain();
            }
            self.tick();
            self.auto();
            if !self.held.is_empty() || !self.samples.is_empty() {
                continue;
            }
            if self.unanswered().is_empty() {
                break;
            }
            // A host's clock never gets near u64::MAX: a deadline years away is "never".
            match self.gw.poll_timeout() {
                Some(t) if t < self.now + 365 * 86_400_000 => self.now = self.now.max(t),
                _ => break,
            }
        }
        let missing = self.unanswered();
        assert!(missing.is_empty(), "requests never answered (session, id, method): {missing:?}");
    }

    pub(super) fn unanswered(&self) -> Vec<(usize, Id, String)> {
        let mut v = Vec::new();
        for (i, s) in self.sess.iter().enumerate().filter(|(_, s)| s.open) {
            for id in &s.order {
                let r = &s.sent[id];
                let waits = matches!(
                    r.method.as_str(),
                    protocol::method::SUBSCRIPTIONS_LISTEN | protocol::method::TASKS_RESULT
                );
                if r.answers == 0 && !waits && !r.cancelled {
                    v.push((i, id.clone(), r.method.clone()));
                }
            }
        }
        v
    }
}
