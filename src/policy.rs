//! Tool policy: ordered rules, by principal or scope, that allow or deny exposed names (tools and
//! prompts by their exposed name, resources by URI, templates by URI template), as globs.
//!
//! # Rules
//!
//! ```toml
//! [[policy.rules]]
//! principals = ["kitchen-agent"]      # or scopes = ["notes:write"]; "*" in principals: everyone
//! allow = ["edge__*", "notes__read_*"]
//! deny = ["notes__delete_*"]
//! ```
//!
//! A rule applies to a caller named in `principals` (or `"*"`), or holding one of its `scopes`.
//! For a name, the rules that apply are read in order and the first one that matches it decides:
//! its `deny` before its `allow`. A name no applying rule matches is denied if an applying rule has
//! an `allow` list (that caller is held to an allow-list), and allowed otherwise. With no rules,
//! everything is allowed. An unauthenticated caller (loopback, no `[auth]`) is matched by `"*"` only.
//! Globs: `*` any run of characters, `?` one character, everything else itself.

use crate::prelude::*;

use crate::principal::Principal;
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub principals: Vec<String>,
    pub scopes: Vec<String>,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Rule {
    fn applies(&self, who: Option<&Principal>) -> bool {
        self.principals.iter().any(|p| p == "*" || who.is_some_and(|w| &w.name == p))
            || who.is_some_and(|w| self.scopes.iter().any(|s| w.has_scope(s)))
    }
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `who` may see and use the exposed `name`.
    pub fn allows(&self, who: Option<&Principal>, name: &str) -> bool {
        let mut held = false;
        for r in self.rules.iter().filter(|r| r.applies(who)) {
            if r.deny.iter().any(|g| glob(g, name)) {
                return false;
            }
            if r.allow.iter().any(|g| glob(g, name)) {
                return true;
            }
            held |= !r.allow.is_empty();
        }
        !held
    }
}

/// Whether `name` matches `pattern` (`*` and `?`), iteratively with one backtrack point.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Read `policy` (`{"rules": [...]}`) from configuration; errors name the key at fault.
pub fn read_policy(v: Option<&Value>) -> Result<Policy, String> {
    let Some(v) = v else { return Ok(Policy::default()) };
    let bad = |m: String| Err(m);
    let Some(o) = v.as_object() else { return bad("policy must be a table".into()) };
    if let Some(k) = o.keys().find(|k| *k != "rules") {
        return bad(format!("policy.{k}: unknown key (policy has `rules`)"));
    }
    let rules = match o.get("rules") {
        None => return Ok(Policy::default()),
        Some(Value::Array(a)) => a,
        Some(_) => return bad("policy.rules must be an array of tables ([[policy.rules]])".into()),
    };
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("policy.rules[{i}]");
        let Some(r) = r.as_object() else { return bad(format!("{at} must be a table")) };
        let mut rule = Rule::default();
        for (k, v) in r {
            let list = match k.as_str() {
                "principals" => &mut rule.principals,
                "scopes" => &mut rule.scopes,
                "allow" => &mut rule.allow,
                "deny" => &mut rule.deny,
                _ => return bad(format!("{at}.{k}: unknown key (a rule has principals, scopes, allow, deny)")),
            };
            let Some(a) = v.as_array() else { return bad(format!("{at}.{k} must be an array of strings")) };
            for x in a {
                match x.as_str() {
                    Some(s) if !s.is_empty() && !s.chars().any(char::is_control) => list.push(s.to_string()),
                    _ => return bad(format!("{at}.{k}: {x} is not a non-empty string")),
                }
            }
        }
        if rule.principals.is_empty() && rule.scopes.is_empty() {
            return bad(format!("{at}: names nobody (give it `principals` or `scopes`; \"*\" is everyone)"));
        }
        if rule.allow.is_empty() && rule.deny.is_empty() {
            return bad(format!("{at}: neither allows nor denies anything (give it `allow` or `deny`)"));
        }
        out.push(rule);
    }
    Ok(Policy { rules: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob("edge__*", "edge__load") && glob("*", "") && glob("a?c", "abc"));
        assert!(glob("notes__read_*", "notes__read_x") && !glob("notes__read_*", "notes__delete_x"));
        assert!(glob("*__delete_*", "a__delete_b") && !glob("a*b", "a") && glob("a*b*c", "aXbYbc"));
        assert!(glob("file:///*", "file:///etc/x") && !glob("abc", "abcd"));
    }

    fn p(name: &str, scopes: &[&str]) -> Principal {
        Principal::new(name, scopes.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn first_matching_rule_decides_and_allow_lists_hold() {
        let pol = read_policy(Some(&json!({"rules": [
            {"principals": ["kitchen"], "allow": ["edge__*", "notes__read_*"], "deny": ["notes__delete_*"]},
            {"scopes": ["notes:write"], "allow": ["notes__*"]},
            {"principals": ["*"], "deny": ["*__shutdown"]},
        ]})))
        .unwrap();
        let k = p("kitchen", &["mcp"]);
        assert!(pol.allows(Some(&k), "edge__load") && pol.allows(Some(&k), "notes__read_all"));
        assert!(!pol.allows(Some(&k), "notes__delete_all") && !pol.allows(Some(&k), "notes__write"));
        let w = p("writer", &["notes:write"]);
        assert!(pol.allows(Some(&w), "notes__delete_all") && !pol.allows(Some(&w), "edge__load"));
        let other = p("garden", &["mcp"]);
        assert!(pol.allows(Some(&other), "edge__load") && !pol.allows(Some(&other), "edge__shutdown"));
        assert!(pol.allows(None, "edge__load") && !pol.allows(None, "x__shutdown"));
        assert!(Policy::default().allows(None, "anything"));
    }

    #[test]
    fn rules_that_do_not_parse_are_refused_with_their_place() {
        for (bad, says) in [
            (json!({"rules": [{"principals": ["a"], "alow": ["x"]}]}), "policy.rules[0].alow"),
            (json!({"rules": [{"allow": ["x"]}]}), "names nobody"),
            (json!({"rules": [{"principals": ["a"]}]}), "neither allows"),
            (json!({"rules": [{"principals": "a", "allow": ["x"]}]}), "policy.rules[0].principals"),
            (json!({"rules": [{"principals": ["a"], "allow": [""]}]}), "non-empty"),
            (json!({"rules": {}}), "array of tables"),
            (json!({"rule": []}), "policy.rule"),
        ] {
            let e = read_policy(Some(&bad)).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
