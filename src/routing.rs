//! Namespacing and routing: which upstream owns an exposed name or URI, and what each upstream's
//! items are called downstream.
//!
//! Names are stable: a prefixed upstream's tool is `prefix{sep}name` whatever else is configured. An
//! unprefixed upstream keeps its names; when two unprefixed upstreams (or an unprefixed one and a
//! prefixed one) would expose the same name, the later upstream in config order gets its name
//! prefixed with its upstream name, and the collision is reported. Nothing is dropped.

use crate::prelude::*;

use crate::config::{GatewayConfig, UpstreamSpec};
use crate::protocol::ListKind;
use serde_json::Value;

/// The items each upstream last reported, per kind, and the names derived from them.
#[derive(Debug, Default)]
pub struct Catalog {
    /// `items[upstream][kind]`: the upstream's own item objects, unmodified.
    items: Vec<[Vec<Value>; 4]>,
    /// (upstream, kind, original name) → exposed name, for colliding unprefixed names.
    renamed: HashMap<(usize, ListKind, String), String>,
    /// (kind, exposed name) → (upstream, original name), for every name in the catalogue.
    by_exposed: HashMap<(ListKind, String), (usize, String)>,
}

fn kind_index(k: ListKind) -> usize {
    match k {
        ListKind::Tools => 0,
        ListKind::Prompts => 1,
        ListKind::Resources => 2,
        ListKind::Templates => 3,
    }
}

/// A name collision found while merging; the host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kind: ListKind,
    pub name: String,
    pub kept_by: String,
    pub renamed_upstream: String,
    pub renamed_to: String,
}

impl Catalog {
    pub fn new(upstreams: usize) -> Self {
        Catalog { items: (0..upstreams).map(|_| Default::default()).collect(), ..Default::default() }
    }

    pub fn items(&self, upstream: usize, kind: ListKind) -> &[Value] {
        &self.items[upstream][kind_index(kind)]
    }

    pub fn count(&self, upstream: usize, kind: ListKind) -> usize {
        self.items[upstream][kind_index(kind)].len()
    }

    /// Replace one upstream's items of one kind and recompute exposed names. Returns new collisions.
    pub fn set(&mut self, cfg: &GatewayConfig, upstream: usize, kind: ListKind, items: Vec<Value>) -> Vec<Collision> {
        self.items[upstream][kind_index(kind)] = items;
        self.rebuild(cfg, kind)
    }

    /// Forget everything an upstream offered (it went away).
    pub fn clear(&mut self, cfg: &GatewayConfig, upstream: usize) {
        for k in ListKind::ALL {
            if !self.items[upstream][kind_index(k)].is_empty() {
                self.items[upstream][kind_index(k)].clear();
                self.rebuild(cfg, k);
            }
        }
    }

    fn rebuild(&mut self, cfg: &GatewayConfig, kind: ListKind) -> Vec<Collision> {
        let before: HashMap<_, _> =
            self.renamed.iter().filter(|((_, k, _), _)| *k == kind).map(|(k, v)| (k.clone(), v.clone())).collect();
        self.renamed.retain(|(_, k, _), _| *k != kind);
        self.by_exposed.retain(|(k, _), _| *k != kind);
        let mut collisions = Vec::new();
        for (u, spec) in cfg.upstreams.iter().enumerate() {
            for item in &self.items[u][kind_index(kind)] {
                let Some(orig) = item_key(kind, item) else {
                    continue;
                };
                let mut exposed = base_name(cfg, spec, kind, orig);
                if let Some((owner, _)) = self.by_exposed.get(&(kind, exposed.clone())) {
                    let owner = *owner;
                    // Members of one group serve the same items: the group routes among them.
                    if cfg.groups.iter().any(|g| g.members.contains(&owner) && g.members.contains(&u)) {
                        continue;
                    }
                    if owner == u || !kind.named() {
                        // Duplicates within one upstream, or a URI served twice: first one wins.
                        if owner != u {
                            collisions.push(Collision {
                                kind,
                                name: exposed.clone(),
                                kept_by: cfg.upstreams[owner].name.clone(),
                                renamed_upstream: spec.name.clone(),
                                renamed_to: String::new(),
                            });
                        }
                        continue;
                    }
                    let renamed = format!("{}{}{}", spec.name, cfg.namespacing.separator, orig);
                    let key = (u, kind, orig.to_string());
                    if !before.contains_key(&key) {
                        collisions.push(Collision {
                            kind,
                            name: exposed.clone(),
                            kept_by: cfg.upstreams[owner].name.clone(),
                            renamed_upstream: spec.name.clone(),
                            renamed_to: renamed.clone(),
                        });
                    }
                    self.renamed.insert(key, renamed.clone());
                    exposed = renamed;
                }
                self.by_exposed.insert((kind, exposed), (u, orig.to_string()));
            }
        }
        collisions
    }

    /// The name an upstream's item has downstream.
    pub fn exposed(&self, cfg: &GatewayConfig, upstream: usize, kind: ListKind, orig: &str) -> String {
        if let Some(r) = self.renamed.get(&(upstream, kind, orig.to_string())) {
            return r.clone();
        }
        base_name(cfg, &cfg.upstreams[upstream], kind, orig)
    }

    /// Whether an upstream listed this exposed name (not merely a prefix that routes).
    pub fn knows(&self, kind: ListKind, exposed: &str) -> bool {
        self.by_exposed.contains_key(&(kind, exposed.to_string()))
    }

    /// Which upstream owns an exposed tool or prompt name, and the upstream's own name for it.
    /// Prefixes resolve even when the upstream is down (so the caller can say which one is missing).
    pub fn resolve_name(&self, cfg: &GatewayConfig, kind: ListKind, exposed: &str) -> Option<(usize, String)> {
        if let Some((u, orig)) = self.by_exposed.get(&(kind, exposed.to_string())) {
            return Some((*u, orig.clone()));
        }
        let sep = &cfg.namespacing.separator;
        let mut best: Option<(usize, usize)> = None;
        for (u, spec) in cfg.upstreams.iter().enumerate() {
            if let Some(p) = &spec.prefix {
                if exposed.len() > p.len() + sep.len()
                    && exposed.starts_with(p.as_str())
                    && exposed[p.len()..].starts_with(sep.as_str())
                    && best.is_none_or(|(_, l)| p.len() > l)
                {
                    best = Some((u, p.len()));
                }
            }
        }
        best.map(|(u, l)| (u, exposed[l + sep.len()..].to_string()))
    }

    /// Which upstream serves a resource URI: an exact resource first, then the template with the
    /// longest literal prefix that matches.
    pub fn resolve_uri(&self, uri: &str) -> Option<usize> {
        if let Some((u, _)) = self.by_exposed.get(&(ListKind::Resources, uri.to_string())) {
            return Some(*u);
        }
        let mut best: Option<(usize, usize)> = None;
        for (u, per) in self.items.iter().enumerate() {
            for t in &per[kind_index(ListKind::Templates)] {
                let Some(tpl) = t.get("uriTemplate").and_then(Value::as_str) else {
                    continue;
                };
                if template_matches(tpl, uri) {
                    let lit = tpl.find('{').unwrap_or(tpl.len());
                    if best.is_none_or(|(_, l)| lit > l) {
                        best = Some((u, lit));
                    }
                }
            }
        }
        best.map(|(u, _)| u)
    }
}

fn base_name(cfg: &GatewayConfig, spec: &UpstreamSpec, kind: ListKind, orig: &str) -> String {
    match (&spec.prefix, kind.named()) {
        (Some(p), true) => format!("{p}{}{orig}", cfg.namespacing.separator),
        _ => orig.to_string(),
    }
}

/// The identifying member of an item: `name` for tools and prompts, `uri` / `uriTemplate` otherwise.
pub fn item_key(kind: ListKind, item: &Value) -> Option<&str> {
    let field = match kind {
        ListKind::Tools | ListKind::Prompts => "name",
        ListKind::Resources => "uri",
        ListKind::Templates => "uriTemplate",
    };
    item.get(field)?.as_str()
}

/// RFC 6570 level-1 matching, good enough for routing: literal parts must appear in order, each
/// expression matches one or more characters (`{+x}`/`{/x}` style expressions match anything).
pub fn template_matches(template: &str, uri: &str) -> bool {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        parts.push(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => return template == uri,
        }
    }
    let tail = rest;
    let Some(first) = parts.first() else {
        return template == uri;
    };
    if !uri.starts_with(first) {
        return false;
    }
    let mut pos = first.len();
    for lit in &parts[1..] {
        if lit.is_empty() {
            continue;
        }
        match uri[pos..].find(lit) {
            Some(i) if i > 0 => pos += i + lit.len(),
            _ => return false,
        }
    }
    uri.len() > pos && uri[pos..].ends_with(tail) && uri.len() - pos > tail.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(specs: &[(&str, Option<&str>)]) -> GatewayConfig {
        GatewayConfig {
            upstreams: specs
                .iter()
                .map(|(n, p)| UpstreamSpec { name: n.to_string(), prefix: p.map(str::to_string), ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn prefixed_names_resolve_longest_prefix_first() {
        let c = cfg(&[("a", Some("a")), ("ab", Some("a__b"))]);
        let cat = Catalog::new(2);
        assert_eq!(cat.resolve_name(&c, ListKind::Tools, "a__b__echo"), Some((1, "echo".into())));
        assert_eq!(cat.resolve_name(&c, ListKind::Tools, "a__echo"), Some((0, "echo".into())));
        assert_eq!(cat.resolve_name(&c, ListKind::Tools, "a__"), None);
        assert_eq!(cat.resolve_name(&c, ListKind::Tools, "echo"), None);
    }

    #[test]
    fn unprefixed_collision_renames_the_later_upstream_and_reports_it() {
        let c = cfg(&[("one", None), ("two", None)]);
        let mut cat = Catalog::new(2);
        assert!(cat.set(&c, 0, ListKind::Tools, vec![json!({"name":"echo"})]).is_empty());
        let col = cat.set(&c, 1, ListKind::Tools, vec![json!({"name":"echo"}), json!({"name":"add"})]);
        assert_eq!(col.len(), 1);
        assert_eq!(col[0].renamed_to, "two__echo");
        assert_eq!(cat.exposed(&c, 1, ListKind::Tools, "echo"), "two__echo");
        assert_eq!(cat.exposed(&c, 1, ListKind::Tools, "add"), "add");
        assert_eq!(cat.resolve_name(&c, ListKind::Tools, "two__echo"), Some((1, "echo".into())));
        assert_eq!(cat.resolve_name(&c, ListKind::Tools, "echo"), Some((0, "echo".into())));
        // Reported once, not on every refresh.
        assert!(cat.set(&c, 1, ListKind::Tools, vec![json!({"name":"echo"})]).is_empty());
    }

    #[test]
    fn templates_route_uris() {
        assert!(template_matches("demo://resource/dynamic/text/{index}", "demo://resource/dynamic/text/3"));
        assert!(!template_matches("demo://resource/dynamic/text/{index}", "demo://resource/dynamic/text/"));
        assert!(template_matches("file:///{path}.md", "file:///a/b.md"));
        assert!(!template_matches("file:///{path}.md", "file:///a/b.txt"));
        assert!(template_matches("x://{a}/y/{b}", "x://1/y/2"));
        assert!(!template_matches("x://{a}/y/{b}", "x://1/z/2"));
    }
}
