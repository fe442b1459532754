//! Aggregated lists: one list across all upstreams. A client's list request gathers the upstreams'
//! first pages into one page, upstream after upstream, until it holds `list_page_size` items (whole
//! upstream pages; one is never split) or every upstream has been heard. It stops early where an
//! upstream paginates itself: our cursor then says whose page comes next and carries that
//! upstream's own cursor, passed back verbatim. A page an upstream cannot give is skipped (or served
//! from the cache), never an error for the whole list. Items two members of a group both serve are
//! listed once, under the group's name.

use crate::prelude::*;

use super::*;

/// A list request being gathered: the params to ask each upstream with (the client's, without its
/// cursor) and the page so far.
pub(super) struct Gather {
    params: Value,
    page: Option<Value>,
}

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
        self.gathers.insert((s, id.clone()), Gather { params, page: None });
        match start {
            Some((u, Some(c))) => self.list_page(now, s, id, kind, u, Some(c), modern),
            Some((u, None)) => self.list_next(now, s, id, kind, u, modern),
            None => self.list_next(now, s, id, kind, 0, modern),
        }
    }

    /// Ask the next upstream at or after `from` for its first page, or answer with what is gathered.
    fn list_next(&mut self, now: Millis, s: SessionId, id: Id, kind: ListKind, from: usize, modern: bool) {
        let next = self.next_lister(kind, from, Some(s));
        let held = self.gathers.get(&(s, id.clone())).and_then(|g| g.page.as_ref()).map_or(0, |p| count(kind, p));
        match next {
            Some(n) if held < self.cfg.list_page_size => self.list_page(now, s, id, kind, n, None, modern),
            Some(n) => {
                let at = Position { upstream: self.cfg.upstreams[n].name.clone(), cursor: None };
                self.list_reply(s, id, kind, Some(at), modern)
            }
            None => self.list_reply(s, id, kind, None, modern),
        }
    }

    /// Ask upstream `u` for one page (from the cache when it can answer there).
    #[allow(clippy::too_many_arguments)]
    fn list_page(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        kind: ListKind,
        u: usize,
        upstream_cursor: Option<String>,
        modern: bool,
    ) {
        let arg = upstream_cursor.clone().unwrap_or_default();
        if self.try_cache(now, s, &id, UpstreamId(u), kind.method(), &arg, Some(kind), modern) {
            return;
        }
        let Some(g) = self.gathers.get(&(s, id.clone())) else { return };
        let mut params = g.params.clone();
        if let Some(c) = upstream_cursor {
            params["cursor"] = Value::from(c);
        }
        let slot = CacheSlot { method: kind.method().to_string(), arg };
        self.forward(now, s, id, UpstreamId(u), kind.method().to_string(), params, Some(kind), modern, Some(slot));
    }

    /// One upstream's page arrived (live or from the cache), already finished for the client (names,
    /// and for a modern client its result type and lifetime): add it, then go on or answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn list_page_done(
        &mut self,
        now: Millis,
        s: SessionId,
        id: Id,
        u: UpstreamId,
        kind: ListKind,
        mut page: Value,
        modern: bool,
    ) {
        let own_next = page.as_object_mut().and_then(|o| o.remove("nextCursor"));
        let Some(g) = self.gathers.get_mut(&(s, id.clone())) else { return };
        g.page = Some(match g.page.take() {
            None => dedup(kind, page),
            Some(acc) => merge(kind, acc, page),
        });
        match own_next.as_ref().and_then(Value::as_str) {
            Some(c) => {
                let at = Position { upstream: self.uname(u).to_string(), cursor: Some(c.to_string()) };
                self.list_reply(s, id, kind, Some(at), modern)
            }
            None => self.list_next(now, s, id, kind, u.0 + 1, modern),
        }
    }

    /// A page could not be had from `u`: go on with the next upstream.
    pub(super) fn list_fallback(&mut self, now: Millis, u: UpstreamId, call: ClientCall, kind: ListKind) {
        let Some(s) = call.session else { return };
        if !self.sessions.contains_key(&s) {
            self.gathers.remove(&(s, call.client_id));
            return;
        }
        self.list_next(now, s, call.client_id, kind, u.0 + 1, call.modern_client)
    }

    fn list_reply(&mut self, s: SessionId, id: Id, kind: ListKind, next: Option<Position>, modern: bool) {
        let g = self.gathers.remove(&(s, id.clone()));
        let mut r = g.and_then(|g| g.page).unwrap_or_else(|| self.empty_list(kind, modern));
        if let Some(p) = next {
            r["nextCursor"] = Value::from(cursor::encode(&p));
        }
        self.filter_page(s, kind, &mut r);
        self.reply(s, id, r)
    }

    /// The first upstream at or after `from` that can serve a list of this kind now: a ready one
    /// that has such items, or one that cannot be asked but whose first page session `s` may be
    /// served from the cache. A group member that is not ready is passed over while another member
    /// of its group is: that one serves the group's items.
    pub(super) fn next_lister(&self, kind: ListKind, from: usize, s: Option<SessionId>) -> Option<usize> {
        (from..self.ups.len()).find(|&u| {
            let up = &self.ups[u];
            if up.link == Link::Ready {
                up.capabilities.get(kind.capability()).is_some()
            } else {
                let covered = self.group_of(u).is_some_and(|g| {
                    self.cfg.groups[g].members.iter().any(|&m| m != u && self.ups[m].link == Link::Ready)
                });
                !covered && s.is_some_and(|s| self.cached_for(u, kind.method(), "", s))
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

    /// Rewrite one upstream's page for the client: exposed names. An item a group member shares
    /// with a member listed before it (one that is up) is left to that member.
    pub(super) fn finish_page(&mut self, u: UpstreamId, kind: ListKind, mut result: Value) -> Value {
        if !result.is_object() {
            let name = self.uname(u).to_string();
            self.log(LogLevel::Warn, format!("upstream {name:?} answered {} with a non-object", kind.method()));
            result = json!({});
        }
        let earlier: Vec<usize> = match self.group_of(u.0) {
            Some(g) => self.cfg.groups[g]
                .members
                .iter()
                .copied()
                .filter(|&m| m < u.0 && self.ups[m].link == Link::Ready)
                .collect(),
            None => Vec::new(),
        };
        if let Some(items) = result.get_mut(kind.field()).and_then(Value::as_array_mut) {
            if !earlier.is_empty() {
                items.retain(|item| {
                    let Some(key) = item_key(kind, item) else { return true };
                    !earlier.iter().any(|&m| self.catalog.items(m, kind).iter().any(|x| item_key(kind, x) == Some(key)))
                });
            }
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
        result
    }
}

fn count(kind: ListKind, page: &Value) -> usize {
    page.get(kind.field()).and_then(Value::as_array).map_or(0, Vec::len)
}

/// Drop items repeated within one page (by exposed name or URI): first one wins.
fn dedup(kind: ListKind, mut page: Value) -> Value {
    if let Some(items) = page.get_mut(kind.field()).and_then(Value::as_array_mut) {
        let mut seen = HashSet::new();
        items.retain(|i| item_key(kind, i).is_none_or(|k| seen.insert(k.to_string())));
    }
    page
}

/// Add `page` to the gathered `acc`: its items (those not listed yet), the shortest lifetime and the
/// narrowest cache scope of the two, and a cache marker if either page was served from the cache.
fn merge(kind: ListKind, mut acc: Value, page: Value) -> Value {
    let Value::Object(mut page) = page else { return acc };
    let items = match page.remove(kind.field()) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    if let Some(list) = acc.get_mut(kind.field()).and_then(Value::as_array_mut) {
        let mut seen: HashSet<String> = list.iter().filter_map(|i| item_key(kind, i)).map(str::to_string).collect();
        list.extend(items.into_iter().filter(|i| item_key(kind, i).is_none_or(|k| seen.insert(k.to_string()))));
    }
    if let (Some(a), Some(b)) = (acc.get("ttlMs").and_then(Value::as_u64), page.get("ttlMs").and_then(Value::as_u64)) {
        acc["ttlMs"] = Value::from(a.min(b));
    }
    if page.get("cacheScope").and_then(Value::as_str) == Some("private") {
        acc["cacheScope"] = json!("private");
    }
    if let Some(m) = page.get("_meta").and_then(|m| m.get(meta::CACHE)) {
        if acc.pointer(&format!("/_meta/{}", meta::CACHE.replace('/', "~1"))).is_none() {
            if !acc.get("_meta").is_some_and(Value::is_object) {
                acc["_meta"] = json!({});
            }
            acc["_meta"][meta::CACHE] = m.clone();
        }
    }
    acc
}
