//! Sampling answered at the edge: an upstream's sampling request (a legacy `sampling/createMessage`,
//! or a `sampling/createMessage` entry of a modern `input_required`) goes down the configured chain.
//! Each provider is asked in turn (the host does the HTTP: [`Output::Sample`]); one that fails,
//! times out, answers garbage or cannot take the content hands over to the next. `client` is the MCP
//! client, asked as without a chain (skipped when it cannot answer); a host's built-in (the browser's
//! `callback`) gets the MCP params as they are. The first answer goes back; when nobody is left, the
//! one waiting gets an error naming every provider and why it failed.

use crate::prelude::*;

use super::*;
use crate::sampling as map;

pub(super) struct Job {
    origin: Origin,
    params: Value,
    /// Index in `cfg.sampling.order` of the provider asked now.
    step: usize,
    /// The model asked for, when the provider is an OpenAI-compatible one.
    asked: String,
    deadline: Option<Millis>,
    /// "provider: why" for each that failed.
    failed: Vec<String>,
}

pub(super) enum Origin {
    /// A legacy upstream's request, answered under the upstream's id.
    Request { u: UpstreamId, id: Id, related: Option<i64> },
    /// One input request of a call gathering answers (see `start_collect`).
    Input { u: UpstreamId, call: i64, key: String },
}

impl Gateway {
    /// Whether the chain answers this `input_required` result for a modern client: every input
    /// request in it is a sampling request, and someone but the client may answer.
    pub(super) fn chain_takes(&self, r: &Value) -> bool {
        self.cfg.sampling.active()
            && r.get("inputRequests").and_then(Value::as_object).is_some_and(|m| {
                !m.is_empty() && m.values().all(|q| q.get("method").and_then(Value::as_str) == Some(method::SAMPLE))
            })
    }

    pub(super) fn start_sampling(&mut self, now: Millis, origin: Origin, params: Option<Value>) {
        let job = self.next_job;
        self.next_job += 1;
        let params = params.unwrap_or(json!({}));
        self.jobs
            .insert(job, Job { origin, params, step: 0, asked: String::new(), deadline: None, failed: Vec::new() });
        self.sample_step(now, job);
    }

    /// Ask the provider at the job's step, or the next one that can take it.
    fn sample_step(&mut self, now: Millis, job: u64) {
        loop {
            let Some(j) = self.jobs.get(&job) else { return };
            let Some(name) = self.cfg.sampling.order.get(j.step).cloned() else {
                let j = self.jobs.remove(&job).expect("looked up above");
                let why = if j.failed.is_empty() { "none is configured".to_string() } else { j.failed.join("; ") };
                self.log(LogLevel::Warn, format!("sampling: no provider could answer ({why})"));
                let e = err(code::INTERNAL_ERROR, format!("no sampling provider could answer: {why}"));
                return self.sample_finish(now, j.origin, Err(e));
            };
            let result = if name == "client" {
                self.sample_by_client(now, job)
            } else if let Some(p) = self.cfg.sampling.provider(&name).cloned() {
                let j = &self.jobs[&job];
                let needs = map::modalities(&j.params);
                match needs.iter().find(|m| !p.modalities.iter().any(|x| x == *m)) {
                    Some(m) => Err(format!("it takes no {m} content")),
                    None => {
                        let model = map::choose_model(&p, &j.params).to_string();
                        match map::to_chat(&j.params, &model) {
                            Ok(body) => {
                                let job = self.rekey(job);
                                let j = self.jobs.get_mut(&job).expect("looked up above");
                                j.asked = model;
                                j.deadline = Some(now + p.timeout_ms);
                                self.out.push_back(Output::Sample {
                                    job,
                                    provider: name.clone(),
                                    url: format!("{}/chat/completions", p.url),
                                    request: body,
                                });
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            } else {
                // A host's built-in provider: the MCP params as they are.
                let job = self.rekey(job);
                let j = self.jobs.get_mut(&job).expect("looked up above");
                j.asked = name.clone();
                j.deadline = Some(now + self.cfg.request_timeout_ms);
                let request = j.params.clone();
                self.out.push_back(Output::Sample { job, provider: name.clone(), url: String::new(), request });
                Ok(())
            };
            match result {
                Ok(()) => return,
                Err(why) => {
                    let Some(j) = self.jobs.get_mut(&job) else { return };
                    j.failed.push(format!("{name}: {why}"));
                    j.step += 1;
                }
            }
        }
    }

    /// Each provider asked gets a job number of its own, so a late answer from one that was given
    /// up on is never taken for the next one's.
    fn rekey(&mut self, job: u64) -> u64 {
        let Some(j) = self.jobs.remove(&job) else { return job };
        let k = self.next_job;
        self.next_job += 1;
        self.jobs.insert(k, j);
        k
    }

    /// The host's report for [`Output::Sample`]: the provider's response body (chat completions, or
    /// for a built-in the MCP result), or why there is none.
    pub fn sampling_done(&mut self, now: Millis, job: u64, answer: Result<Value, String>) {
        self.tick(now);
        let Some(j) = self.jobs.get(&job) else { return };
        if j.deadline.is_none() {
            return; // Not waiting on a provider (handed to the client, or already failed over).
        }
        let name = self.cfg.sampling.order[j.step].clone();
        let mapped = answer.and_then(|body| {
            if self.cfg.sampling.provider(&name).is_some() {
                map::from_chat(&body, &j.asked)
            } else if body.get("content").is_some_and(Value::is_object)
                || body.get("content").is_some_and(Value::is_array)
            {
                let mut r = body;
                if r.get("role").is_none() {
                    r["role"] = json!("assistant");
                }
                if !r.get("model").is_some_and(Value::is_string) {
                    r["model"] = Value::from(name.clone());
                }
                Ok(r)
            } else {
                Err("its answer has no content".to_string())
            }
        });
        match mapped {
            Ok(r) => {
                let j = self.jobs.remove(&job).expect("looked up above");
                *self.sampled.entry(name.clone()).or_default() += 1;
                let model = r.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
                self.log(LogLevel::Info, format!("sampling answered by {name:?} ({model})"));
                self.sample_finish(now, j.origin, Ok(r));
            }
            Err(why) => self.sample_failed(now, job, why),
        }
    }

    fn sample_failed(&mut self, now: Millis, job: u64, why: String) {
        let Some(step) = self.jobs.get(&job).map(|j| j.step) else { return };
        let name = self.cfg.sampling.order[step].clone();
        *self.sample_failures.entry(name.clone()).or_default() += 1;
        self.log(LogLevel::Warn, format!("sampling provider {name:?} failed ({why}); trying the next"));
        let Some(j) = self.jobs.get_mut(&job) else { return };
        j.failed.push(format!("{name}: {why}"));
        j.step += 1;
        j.deadline = None;
        self.sample_step(now, job);
    }

    /// Providers that did not answer in time.
    pub(super) fn sampling_timeout(&mut self, now: Millis) {
        let late: Vec<u64> =
            self.jobs.iter().filter(|(_, j)| j.deadline.is_some_and(|d| d <= now)).map(|(k, _)| *k).collect();
        for job in late {
            self.sample_failed(now, job, "it did not answer in time".into());
        }
    }

    pub(super) fn sampling_deadline(&self) -> Option<Millis> {
        self.jobs.values().filter_map(|j| j.deadline).min()
    }

    /// The `client` step: ask the MCP client, if it can answer.
    fn sample_by_client(&mut self, now: Millis, job: u64) -> Result<(), String> {
        let j = self.jobs.get(&job).expect("caller looked it up");
        match &j.origin {
            Origin::Request { u, id, related } => {
                let (u, id, related, params) = (*u, id.clone(), *related, j.params.clone());
                match self.ask_client(now, u, id, method::SAMPLE.into(), Some(params), related) {
                    Ok(()) => {
                        self.jobs.remove(&job);
                        Ok(())
                    }
                    Err(e) => Err(e.message),
                }
            }
            Origin::Input { u, call, key } => {
                let (u, gid, key, params) = (*u, *call, key.clone(), j.params.clone());
                let Some(Pending::Client(c)) = self.ups[u.0].pending.get(&gid) else {
                    self.jobs.remove(&job);
                    return Ok(()); // The call is gone; nobody waits.
                };
                let Some(s) = c.session.filter(|s| self.sessions.contains_key(s)) else {
                    self.jobs.remove(&job);
                    return Ok(());
                };
                if c.modern_client {
                    let caps = c.sent_params.pointer("/_meta").and_then(|m| m.get(meta::CLIENT_CAPABILITIES)).cloned();
                    if !caps_allow(caps.as_ref(), method::SAMPLE, Some(&params)) {
                        return Err("the client did not declare sampling".into());
                    }
                    // Give the modern client the upstream's question as it was: it answers all of it.
                    let Some(Pending::Client(c)) = self.ups[u.0].pending.remove(&gid) else { return Ok(()) };
                    self.drop_client_index(u, gid, &c);
                    self.jobs.retain(
                        |_, j| !matches!(&j.origin, Origin::Input { u: x, call, .. } if *x == u && *call == gid),
                    );
                    let original = c.collect.and_then(|col| col.original).unwrap_or(json!({}));
                    self.reply(s, c.client_id, original);
                    return Ok(());
                }
                if !self.client_can(s, method::SAMPLE, Some(&params)) {
                    return Err("the client did not declare sampling".into());
                }
                self.jobs.remove(&job);
                let client_id = c.client_id.clone();
                let sid = self.next_client_req(s);
                self.to_client.insert((s, sid), ToClientReq::Input { upstream: u, call: gid, key });
                self.out.push_back(Output::ToClient {
                    session: s,
                    related: Some(client_id),
                    message: Message::Request {
                        id: Id::Num(sid),
                        method: method::SAMPLE.into(),
                        params: Some(params),
                        rest: Map::new(),
                    },
                });
                Ok(())
            }
        }
    }

    fn sample_finish(&mut self, now: Millis, origin: Origin, answer: Result<Value, ErrorObject>) {
        match origin {
            Origin::Request { u, id, .. } => {
                let msg = match answer {
                    Ok(r) => Message::response(id, r),
                    Err(e) => Message::error(Some(id), e),
                };
                self.send_up(u, msg);
            }
            Origin::Input { u, call, key } => self.input_answered(now, u, call, key, answer),
        }
    }

    pub(super) fn sampling_status(&self) -> Value {
        json!({ "order": self.cfg.sampling.order, "answers": self.sampled, "failures": self.sample_failures })
    }
}
