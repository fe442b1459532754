//! The `groups` section, read once for every format (TOML converted to JSON, `mcpServers` JSON's
//! `gateway.groups`, the browser's `groups` object). Keys may be camelCase or snake_case; unknown
//! keys are refused, since a mistyped threshold would otherwise be silently ignored.
//!
//! ```toml
//! [groups.search]
//! members = ["local", "cloud"]       # upstream names, in order of preference
//! timeout_ms = 30000                 # or { "*" = 30000, "tools/call" = 60000 }
//! first_byte_timeout_ms = 10000
//! retry = { attempts = 2, backoff_ms = 100, max_backoff_ms = 2000, budget_ratio = 0.2, budget_min = 3, safe_tools = ["lookup"] }
//! breaker = { failures = 5, error_rate = 0.5, window_ms = 30000, min_calls = 10, cooldown_ms = 5000, max_cooldown_ms = 60000 }
//! ```

use crate::prelude::*;

use super::{BreakerPolicy, GatewayConfig, GroupSpec, RetryPolicy};
use serde_json::{Map, Value};

/// Read `groups` (at `at` in its file) into `cfg`, whose upstreams are already read. Members take
/// the group's name as their prefix.
pub fn read_groups(at: &str, groups: &Value, cfg: &mut GatewayConfig) -> Result<(), String> {
    let Some(groups) = groups.as_object() else {
        return if groups.is_null() { Ok(()) } else { Err(format!("{at}: must be a table of groups")) };
    };
    for (name, g) in groups {
        let here = format!("{at}.{name}");
        if !name_ok(name) {
            return Err(format!("{here}: a group name may hold only A-Z a-z 0-9 _ . - and must not be empty"));
        }
        if cfg.upstreams.iter().any(|u| &u.name == name) {
            return Err(format!("{here}: an upstream has this name too; give the group another"));
        }
        let e = table(g, &here)?;
        known(e, &here, &["members", "timeoutMs", "firstByteTimeoutMs", "retry", "breaker"])?;
        let key = format!("{here}.members");
        let names = match field(e, "members") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => return Err(format!("{key}: must be a non-empty list of upstream names")),
        };
        if names.len() > 128 {
            return Err(format!("{key}: at most 128 members"));
        }
        let mut members = Vec::new();
        for (i, m) in names.iter().enumerate() {
            let Some(m) = m.as_str() else { return Err(format!("{key}[{i}]: must be an upstream name")) };
            let Some(u) = cfg.upstreams.iter().position(|x| x.name == m) else {
                return Err(format!("{key}[{i}]: no upstream is named {m:?}"));
            };
            if members.contains(&u) {
                return Err(format!("{key}[{i}]: {m:?} is listed twice"));
            }
            if let Some(other) = cfg.groups.iter().find(|g| g.members.contains(&u)) {
                return Err(format!("{key}[{i}]: {m:?} is already a member of group {:?}", other.name));
            }
            members.push(u);
        }
        let mut spec = GroupSpec {
            name: name.clone(),
            members,
            timeout_ms: per_method(e, "timeoutMs", &here)?,
            first_byte_timeout_ms: match per_method(e, "firstByteTimeoutMs", &here)? {
                t if t.is_empty() => default_first_byte(),
                t => t,
            },
            breaker: BreakerPolicy::default(),
            retry: RetryPolicy::default(),
        };
        if let Some(b) = field(e, "breaker") {
            let here = format!("{here}.breaker");
            let b = table(b, &here)?;
            known(
                b,
                &here,
                &["failures", "errorRate", "windowMs", "minCalls", "cooldownMs", "maxCooldownMs", "probeTimeoutMs"],
            )?;
            let p = &mut spec.breaker;
            p.failures = count(b, "failures", &here, p.failures, 1)?;
            p.min_calls = count(b, "minCalls", &here, p.min_calls, 1)?;
            p.error_rate = share(b, "errorRate", &here, p.error_rate, false)?;
            p.window_ms = millis(b, "windowMs", &here, p.window_ms, 1)?;
            p.cooldown_ms = millis(b, "cooldownMs", &here, p.cooldown_ms, 1)?;
            p.max_cooldown_ms = millis(b, "maxCooldownMs", &here, p.max_cooldown_ms, 1)?;
            p.probe_timeout_ms = millis(b, "probeTimeoutMs", &here, p.probe_timeout_ms, 1)?;
            if p.max_cooldown_ms < p.cooldown_ms {
                return Err(format!(
                    "{here}.{}: must not be below the cooldown ({} ms)",
                    spelt(b, "maxCooldownMs"),
                    p.cooldown_ms
                ));
            }
        }
        if let Some(r) = field(e, "retry") {
            let here = format!("{here}.retry");
            let r = table(r, &here)?;
            known(
                r,
                &here,
                &["attempts", "backoffMs", "maxBackoffMs", "budgetRatio", "budgetMin", "budgetWindowMs", "safeTools"],
            )?;
            let p = &mut spec.retry;
            p.attempts = count(r, "attempts", &here, p.attempts, 0)?;
            p.backoff_ms = millis(r, "backoffMs", &here, p.backoff_ms, 0)?;
            p.max_backoff_ms = millis(r, "maxBackoffMs", &here, p.max_backoff_ms, 0)?;
            p.budget_ratio = share(r, "budgetRatio", &here, p.budget_ratio, true)?;
            p.budget_min = count(r, "budgetMin", &here, p.budget_min, 0)?;
            p.budget_window_ms = millis(r, "budgetWindowMs", &here, p.budget_window_ms, 1)?;
            p.safe_tools = match field(r, "safeTools") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                    a.iter().filter_map(Value::as_str).map(str::to_string).collect()
                }
                Some(_) => return Err(format!("{here}.safeTools: must be a list of tool names")),
            };
            if p.max_backoff_ms < p.backoff_ms {
                return Err(format!(
                    "{here}.{}: must not be below the backoff ({} ms)",
                    spelt(r, "maxBackoffMs"),
                    p.backoff_ms
                ));
            }
        }
        for &m in &spec.members {
            cfg.upstreams[m].prefix = Some(name.clone());
        }
        cfg.groups.push(spec);
    }
    Ok(())
}

/// Without `first_byte_timeout_ms`: 10 s for lists, reads, prompts and completions (they are cheap;
/// a member that says nothing for that long is not serving), 30 s for tool calls (a tool may work a
/// while before its answer, and a call timed out after it may have run is in doubt).
fn default_first_byte() -> Vec<(String, u64)> {
    vec![("*".into(), 10_000), ("tools/call".into(), 30_000)]
}

pub(super) fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub(super) fn table<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{at}: must be a table of settings"))
}

/// `k` in camelCase, or its snake_case spelling.
pub(super) fn field<'a>(e: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    e.get(k).or_else(|| e.get(&snake(k)))
}

/// The spelling of `k` the entry uses, for messages.
pub(super) fn spelt(e: &Map<String, Value>, k: &str) -> String {
    if e.contains_key(k) {
        k.to_string()
    } else {
        snake(k)
    }
}

fn snake(k: &str) -> String {
    let mut s = String::with_capacity(k.len() + 4);
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// Refuse keys not in `allowed` (either spelling).
pub(super) fn known(e: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), String> {
    match e.keys().find(|k| !allowed.iter().any(|a| a == k || snake(a) == **k)) {
        Some(k) => Err(format!("{at}.{k}: unknown setting (known: {})", allowed.join(", "))),
        None => Ok(()),
    }
}

pub(super) fn millis(e: &Map<String, Value>, k: &str, at: &str, default: u64, min: u64) -> Result<u64, String> {
    match field(e, k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= min)
            .ok_or_else(|| format!("{at}.{}: must be a whole number of milliseconds, at least {min}", spelt(e, k))),
    }
}

fn count(e: &Map<String, Value>, k: &str, at: &str, default: u32, min: u32) -> Result<u32, String> {
    match field(e, k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= min)
            .ok_or_else(|| format!("{at}.{}: must be a whole number, at least {min}", spelt(e, k))),
    }
}

fn share(e: &Map<String, Value>, k: &str, at: &str, default: f64, zero_ok: bool) -> Result<f64, String> {
    match field(e, k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().filter(|x| (if zero_ok { *x >= 0.0 } else { *x > 0.0 }) && *x <= 1.0).ok_or_else(|| {
            format!("{at}.{}: must be a number {} 0 and at most 1", spelt(e, k), if zero_ok { "from" } else { "above" })
        }),
    }
}

/// Milliseconds, or a table of method → milliseconds.
pub(super) fn per_method(e: &Map<String, Value>, k: &str, at: &str) -> Result<Vec<(String, u64)>, String> {
    let bad =
        || format!("{at}.{}: must be milliseconds (at least 1), or a table of method → milliseconds", spelt(e, k));
    match field(e, k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0).map(|n| vec![("*".to_string(), n)]).ok_or_else(bad),
        Some(Value::Object(m)) => {
            m.iter().map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k.clone(), n)).ok_or_else(bad)).collect()
        }
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamSpec;
    use serde_json::json;

    fn cfg() -> GatewayConfig {
        let mut c = GatewayConfig::default();
        for n in ["a", "b", "c"] {
            c.upstreams.push(UpstreamSpec::named(n));
        }
        c
    }

    #[test]
    fn members_take_the_group_prefix_and_settings_read_in_either_spelling() {
        let mut c = cfg();
        read_groups(
            "groups",
            &json!({"g": {"members": ["b", "a"], "timeout_ms": {"tools/call": 9}, "firstByteTimeoutMs": 3,
                           "breaker": {"failures": 2, "cooldown_ms": 10, "maxCooldownMs": 40},
                           "retry": {"budget_ratio": 0.5, "safeTools": ["lookup"]}}}),
            &mut c,
        )
        .unwrap();
        let g = &c.groups[0];
        assert_eq!(g.members, [1, 0]);
        assert_eq!((g.total_for("tools/call"), g.total_for("tools/list")), (Some(9), None));
        assert_eq!(g.first_byte_for("prompts/get"), Some(3));
        assert_eq!((g.breaker.failures, g.breaker.cooldown_ms, g.breaker.max_cooldown_ms), (2, 10, 40));
        assert_eq!((g.retry.budget_ratio, g.retry.safe_tools.clone()), (0.5, vec!["lookup".to_string()]));
        assert_eq!(c.upstreams[0].prefix.as_deref(), Some("g"));
        let mut d = cfg();
        read_groups("groups", &json!({"g": {"members": ["a"]}}), &mut d).unwrap();
        let g = &d.groups[0];
        assert_eq!((g.first_byte_for("tools/call"), g.first_byte_for("resources/read")), (Some(30_000), Some(10_000)));
        assert_eq!(g.total_for("tools/call"), None, "the gateway's request timeout");
        assert_eq!(c.upstreams[2].prefix.as_deref(), Some("c"));
        c.validate().unwrap();
    }

    #[test]
    fn bad_groups_are_refused_naming_the_key() {
        let e = |v: Value| read_groups("groups", &v, &mut cfg()).unwrap_err();
        assert_eq!(e(json!({"g": {"members": ["a", "zz"]}})), "groups.g.members[1]: no upstream is named \"zz\"");
        assert!(e(json!({"a": {"members": ["b"]}})).starts_with("groups.a: an upstream has this name"));
        assert!(e(json!({"g": {"members": []}})).starts_with("groups.g.members: must be a non-empty"));
        assert!(e(json!({"g": {"members": ["a", "a"]}})).contains("listed twice"));
        assert!(e(json!({"g": {"members": ["a"]}, "h": {"members": ["b", "a"]}}))
            .starts_with("groups.h.members[1]: \"a\" is already a member of group \"g\""));
        assert!(e(json!({"g": {"members": ["a"], "breaker": {"errorRate": 1.5}}}))
            .starts_with("groups.g.breaker.errorRate:"));
        assert!(
            e(json!({"g": {"members": ["a"], "breaker": {"failures": 0}}})).starts_with("groups.g.breaker.failures:")
        );
        assert!(e(json!({"g": {"members": ["a"], "breaker": {"cooldownMs": 50, "maxCooldownMs": 10}}}))
            .starts_with("groups.g.breaker.maxCooldownMs:"));
        assert!(e(json!({"g": {"members": ["a"], "retry": {"budgetRatio": -1}}}))
            .starts_with("groups.g.retry.budgetRatio:"));
        assert!(e(json!({"g": {"members": ["a"], "timeout_ms": 0}})).starts_with("groups.g.timeout_ms:"));
        assert!(e(json!({"g": {"members": ["a"], "breakr": {}}})).starts_with("groups.g.breakr: unknown setting"));
    }
}
