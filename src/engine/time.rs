//! Time: what falls due at a deadline (calls, probes and replays that timed out, parked calls nobody
//! resumed, requests deferred while upstreams start).

use crate::prelude::*;

use super::*;

impl Gateway {
    /// Expire what is due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.tick(now);
        self.listen_timeouts(now);
        for u in 0..self.ups.len() {
            let uid = UpstreamId(u);
            if self.ups[u].probe_deadline.is_some_and(|d| d <= now) {
                let name = self.uname(uid).to_string();
                self.log(LogLevel::Info, format!("upstream {name:?}: server/discover timed out; using initialize"));
                self.send_initialize(uid);
            }
            let due: Vec<i64> = self.ups[u]
                .pending
                .iter()
                .filter_map(|(g, p)| match p {
                    Pending::Client(c)
                        if c.deadline <= now
                            || c.group.as_ref().and_then(|g| g.first_byte).is_some_and(|t| t <= now) =>
                    {
                        Some(*g)
                    }
                    _ => None,
                })
                .collect();
            for gid in due {
                let Some(Pending::Client(call)) = self.ups[u].pending.remove(&gid) else {
                    continue;
                };
                self.stats.timeouts += 1;
                self.drop_client_index(uid, gid, &call);
                let msg = format!("{} timed out at the gateway", call.method);
                self.log_call(LogLevel::Info, call.session, Some(uid), &call.method, Some(&call.sent_params), msg);
                if !call.queued && call.collect.is_none() {
                    self.send_up(
                        uid,
                        Message::notification(
                            method::CANCELLED,
                            Some(json!({"requestId": gid, "reason": "timed out at the gateway"})),
                        ),
                    );
                }
                let mut call = call;
                let mut in_doubt = false;
                if call.group.is_some() {
                    let f = if call.queued { Failure::NotSent } else { Failure::Sent };
                    match self.group_failed(now, uid, call, f) {
                        Ok(()) => continue,
                        Err((c, d)) => (call, in_doubt) = (c, d),
                    }
                }
                if self.stale_fallback(now, uid, &call) {
                    continue;
                }
                if in_doubt {
                    let name = self.uname(uid).to_string();
                    let e = err(
                        code::REQUEST_TIMEOUT,
                        format!("upstream {name:?} did not answer in time; the call may have run there, so it is in doubt and was not repeated"),
                    )
                    .with_data(json!({"upstream": name, "inDoubt": true}));
                    self.give_up(uid, call, Failure::Sent, Some(e));
                } else if let Some(kind) = call.list {
                    self.list_fallback(now, uid, *call, kind);
                } else if let Some(s) = call.session {
                    let name = self.uname(uid).to_string();
                    let e = err(
                        code::REQUEST_TIMEOUT,
                        format!("upstream {name:?} did not answer within {} ms", self.cfg.request_timeout_ms),
                    );
                    self.reply_err(s, call.client_id, e);
                }
            }
        }
        for u in 0..self.ups.len() {
            let due: Vec<(i64, u64)> = self.ups[u]
                .pending
                .iter()
                .filter_map(|(g, p)| match p {
                    Pending::Replay { seq, deadline } if *deadline <= now => Some((*g, *seq)),
                    _ => None,
                })
                .collect();
            for (gid, seq) in due {
                self.ups[u].pending.remove(&gid);
                self.stats.timeouts += 1;
                let cancel = json!({"requestId": gid, "reason": "timed out at the gateway"});
                self.send_up(UpstreamId(u), Message::notification(method::CANCELLED, Some(cancel)));
                self.replay_interrupted(now, UpstreamId(u), seq, "timed out", false);
            }
        }
        self.health_timeout(now);
        self.sampling_timeout(now);
        self.offline_timeout(now);
        self.parked.retain(|_, p| p.expires > now);
        if let Some(s) = self.started_at {
            if !self.deferred.is_empty() && s + self.cfg.startup_grace_ms <= now {
                self.replay_deferred(now);
            }
        }
    }
}
