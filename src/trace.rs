//! W3C trace context (`traceparent`, `tracestate`) for the calls the gateway forwards. A client's
//! trace context arrives in `params._meta` (MCP's place for it) or in HTTP headers (the host's face
//! copies them into `_meta` when `_meta` has none); the gateway then takes part in the trace as one
//! span of its own: the upstream gets the same trace id and flags with the gateway's span id as its
//! parent, and `tracestate` unchanged. HTTP upstreams also get both as headers.
//!
//! A malformed `traceparent` is forwarded untouched (the gateway is transparent to what it does not
//! understand) and the gateway adds no span to it.

use crate::prelude::*;

use serde_json::Value;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// A valid `traceparent`'s parts: version, trace id, parent (span) id, flags.
fn parse(tp: &str) -> Option<(&str, &str, &str, &str)> {
    let mut it = tp.split('-');
    let (v, t, p, f) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    // Version ff is invalid; later versions may append fields (kept out of what we write).
    if !hex(v, 2) || v == "ff" || (v == "00" && it.next().is_some()) {
        return None;
    }
    if !hex(t, 32) || t.bytes().all(|b| b == b'0') || !hex(p, 16) || p.bytes().all(|b| b == b'0') || !hex(f, 2) {
        return None;
    }
    Some((v, t, p, f))
}

/// The trace id of a request's `params._meta.traceparent`, if it is valid.
pub fn trace_id(params: &Value) -> Option<&str> {
    let tp = params.get("_meta")?.get(TRACEPARENT)?.as_str()?;
    parse(tp).map(|(_, t, _, _)| t)
}

/// Make the gateway a span of the trace in `params._meta.traceparent`: the same trace id and flags,
/// `span` (a fresh random id, never zero) as the parent. Returns whether there was a trace to join.
pub fn join(params: &mut Value, span: u64) -> bool {
    let Some(tp) = params.get("_meta").and_then(|m| m.get(TRACEPARENT)).and_then(Value::as_str) else {
        return false;
    };
    let Some((_, t, _, f)) = parse(tp) else { return false };
    let span = if span == 0 { 1 } else { span };
    let child = format!("00-{t}-{span:016x}-{f}");
    params["_meta"][TRACEPARENT] = Value::from(child);
    true
}

/// Copy a `traceparent` (and `tracestate`) from HTTP headers into a request's `params._meta`, unless
/// `_meta` already carries a trace context (the message's own wins). Lower-case header names.
pub fn from_headers(params: &mut Value, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(tp) = traceparent.filter(|t| parse(t).is_some()) else { return };
    let Some(obj) = params.as_object_mut() else { return };
    let meta = obj.entry("_meta").or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else { return };
    if meta.contains_key(TRACEPARENT) {
        return;
    }
    meta.insert(TRACEPARENT.into(), Value::from(tp));
    if let Some(ts) = tracestate {
        meta.insert(TRACESTATE.into(), Value::from(ts));
    }
}

/// The headers an HTTP upstream gets for a request's trace context.
pub fn headers(params: Option<&Value>) -> Vec<(String, String)> {
    let Some(meta) = params.and_then(|p| p.get("_meta")) else { return Vec::new() };
    let mut h = Vec::new();
    if let Some(tp) = meta.get(TRACEPARENT).and_then(Value::as_str).filter(|t| parse(t).is_some()) {
        h.push((TRACEPARENT.to_string(), tp.to_string()));
        if let Some(ts) = meta.get(TRACESTATE).and_then(Value::as_str) {
            h.push((TRACESTATE.to_string(), ts.to_string()));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_gateway_joins_the_trace_as_a_child_span() {
        let mut p = json!({"name": "echo", "_meta": {"traceparent": TP, "tracestate": "congo=t61rcWkgMzE", "x": 1}});
        assert!(join(&mut p, 0xabcdef));
        assert_eq!(p["_meta"]["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000abcdef-01");
        assert_eq!(p["_meta"]["tracestate"], "congo=t61rcWkgMzE");
        assert_eq!(p["_meta"]["x"], 1);
        assert_eq!(trace_id(&p), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let h = headers(Some(&p));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn malformed_trace_context_is_left_alone() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let mut p = json!({"_meta": {"traceparent": bad}});
            assert!(!join(&mut p, 7), "{bad}");
            assert_eq!(p["_meta"]["traceparent"], bad);
            assert!(headers(Some(&p)).is_empty());
        }
        let mut p = json!({"_meta": {"traceparent": 5}});
        assert!(!join(&mut p, 7));
    }

    #[test]
    fn headers_fill_in_only_when_meta_has_no_trace() {
        let mut p = json!({"name": "x"});
        from_headers(&mut p, Some(TP), Some("a=b"));
        assert_eq!(p["_meta"]["traceparent"], TP);
        assert_eq!(p["_meta"]["tracestate"], "a=b");
        let mut q = json!({"_meta": {"traceparent": "00-11111111111111111111111111111111-2222222222222222-00"}});
        from_headers(&mut q, Some(TP), None);
        assert_eq!(q["_meta"]["traceparent"], "00-11111111111111111111111111111111-2222222222222222-00");
        let mut r = json!({});
        from_headers(&mut r, Some("bad"), None);
        assert_eq!(r, json!({}));
    }
}
