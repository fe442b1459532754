//! Aggregated lists: one list across all upstreams, served one upstream's page at a time. Our cursor
//! says whose page comes next and carries that upstream's own cursor; a page an upstream cannot give
//! is skipped (or served from the cache), never an error for the whole list.

use super::*;

impl Gateway {
    pub(super) fn list_request(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        kind: ListKind,
        params: Option<Value>,
        modern: bool,
    ) {
        let mut params = params.unwrap_or(json!({}));
        let start = match params.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => match cursor::decode(c) {
                Some(p) => match self.cfg.upstreams.iter().position(|x| x.name == p.upstream) {
                    Some(u) => Some((u, p.cursor)),
                    None => return self.reply_err(s, id, err(code::INVALID_PARAMS, "Invalid cursor")),
                },
                None => return self.reply_err(s, id, err(code::INVALID_PARAMS, "Invalid cursor")),
            },
            Some(_) => return self.reply_err(s, id, err(code::INVALID_PARAMS, "Invalid cursor: must be a string")),
        };
        if let Some(o) = params.as_object_mut() {
            o.remove("cursor");
        }
        let (first, upstream_cursor) = match start {
            Some((u, c)) => (u, c),
            None => (0, None),
        };
        let from = if upstream_cursor.is_some() { Some(first) } else { self.next_lister(kind, first, Some(s)) };
        match from {
            None => self.reply(s, id, self.empty_list(kind, modern)),
            Some(u) => {
                let arg = upstream_cursor.clone().unwrap_or_default();
                if self.try_cache(now, s, &id, UpstreamId(u), kind.method(), &arg, Some(kind), modern) {
                    return;
                }
                if let Some(c) = upstream_cursor {
                    params["cursor"] = Value::from(c);
                }
                let slot = CacheSlot { method: kind.method().to_string(), arg };
                self.forward(
                    now,
                    s,
                    id,
                    UpstreamId(u),
                    kind.method().to_string(),
                    params,
                    Some(kind),
                    modern,
                    Some(slot),
                );
            }
        }
    }

    /// The first upstream at or after `from` that can serve a list of this kind now: a ready one
    /// that has such items, or one that cannot be asked but whose first page session `s` may be
    /// served from the cache.
    pub(super) fn next_lister(&self, kind: ListKind, from: usize, s: Option<SessionId>) -> Option<usize> {
        (from..self.ups.len()).find(|&u| {
            let up = &self.ups[u];
            if up.link == Link::Ready {
                up.capabilities.get(kind.capability()).is_some()
            } else {
                s.is_some_and(|s| self.cached_for(u, kind.method(), "", s))
            }
        })
    }

    pub(super) fn empty_list(&self, kind: ListKind, modern: bool) -> Value {
        let mut r = json!({ kind.field(): [] });
        if modern {
            r["resultType"] = json!("complete");
            r["ttlMs"] = json!(0);
            r["cacheScope"] = json!("private");
        }
        r
    }

    /// Rewrite one upstream's page for the client: exposed names and our cursor.
    pub(super) fn finish_page(
        &mut self,
        u: UpstreamId,
        kind: ListKind,
        mut result: Value,
        s: Option<SessionId>,
    ) -> Value {
        if !result.is_object() {
            let name = self.uname(u).to_string();
            self.log(LogLevel::Warn, format!("upstream {name:?} answered {} with a non-object", kind.method()));
            result = json!({});
        }
        if let Some(items) = result.get_mut(kind.field()).and_then(Value::as_array_mut) {
            if kind.named() {
                for item in items.iter_mut() {
                    if let Some(orig) = item_key(kind, item).map(str::to_string) {
                        item["name"] = Value::from(self.catalog.exposed(&self.cfg, u.0, kind, &orig));
                    }
                }
            }
        } else {
            result[kind.field()] = json!([]);
        }
        let next = match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) => Some(Position { upstream: self.uname(u).to_string(), cursor: Some(c.to_string()) }),
            None => self
                .next_lister(kind, u.0 + 1, s)
                .map(|n| Position { upstream: self.cfg.upstreams[n].name.clone(), cursor: None }),
        };
        match next {
            Some(p) => result["nextCursor"] = Value::from(cursor::encode(&p)),
            None => {
                if let Some(o) = result.as_object_mut() {
                    o.remove("nextCursor");
                }
            }
        }
        result
    }

    /// A page could not be had from `u`: serve the next upstream's first page instead.
    pub(super) fn list_fallback(&mut self, now: Millis, u: UpstreamId, call: ClientCall, kind: ListKind) {
        let Some(s) = call.session else { return };
        if !self.sessions.contains_key(&s) {
            return;
        }
        let mut params = call.sent_params;
        if let Some(o) = params.as_object_mut() {
            o.remove("cursor");
            if let Some(m) = o.get_mut("_meta").and_then(Value::as_object_mut) {
                if let Some(t) = &call.client_progress {
                    m.insert("progressToken".into(), t.clone());
                }
            }
        }
        match self.next_lister(kind, u.0 + 1, Some(s)) {
            Some(n) => {
                let slot = CacheSlot { method: call.method.clone(), arg: String::new() };
                if self.try_cache(
                    now,
                    s,
                    &call.client_id,
                    UpstreamId(n),
                    &call.method,
                    "",
                    Some(kind),
                    call.modern_client,
                ) {
                    return;
                }
                self.forward(
                    now,
                    s,
                    call.client_id,
                    UpstreamId(n),
                    call.method,
                    params,
                    Some(kind),
                    call.modern_client,
                    Some(slot),
                )
            }
            None => {
                let r = self.empty_list(kind, call.modern_client);
                self.reply(s, call.client_id, r)
            }
        }
    }
}
