//! The shapes the MCP schema fixes for what clients send, checked before anything is forwarded: a
//! request an upstream cannot parse may never be answered (the TypeScript SDK's server drops a
//! `tools/list` whose `params._meta` is not an object, and the client waits out its timeout), so
//! the gateway answers -32602 at once instead.

use super::*;

/// The -32602 for a request whose params the schema rules out, if it is one.
pub(super) fn check_params(m: &str, params: Option<&Value>) -> Option<ErrorObject> {
    let get = |k: &str| params.and_then(|p| p.get(k));
    let bad = |what: &str| Some(err(code::INVALID_PARAMS, format!("{m}: {what}")));
    let string = |k: &str| get(k).is_some_and(Value::is_string);
    if let Some(meta) = get("_meta") {
        let Some(meta) = meta.as_object() else { return bad("`_meta` must be an object") };
        if meta.get("progressToken").is_some_and(|t| !t.is_string() && !t.is_i64() && !t.is_u64()) {
            return bad("`_meta.progressToken` must be a string or an integer");
        }
    }
    match m {
        method::INITIALIZE => {
            if !string("protocolVersion") {
                return bad("`protocolVersion` must be a string");
            }
            if get("capabilities").is_some_and(|c| !c.is_object()) {
                return bad("`capabilities` must be an object");
            }
            if let Some(c) = get("capabilities").and_then(Value::as_object) {
                for k in ["roots", "sampling", "elicitation", "experimental", "tasks"] {
                    if c.get(k).is_some_and(|v| !v.is_object()) {
                        return bad(&format!("`capabilities.{k}` must be an object"));
                    }
                }
            }
            if get("clientInfo").is_some_and(|c| !c.is_object()) {
                return bad("`clientInfo` must be an object");
            }
        }
        method::SET_LEVEL => {
            const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
            if !get("level").and_then(Value::as_str).is_some_and(|l| LEVELS.contains(&l)) {
                return bad("`level` must be one of debug, info, notice, warning, error, critical, alert, emergency");
            }
        }
        method::TOOLS_CALL | method::PROMPTS_GET => {
            if !string("name") {
                return bad("`name` must be a string");
            }
            match get("arguments") {
                Some(Value::Object(a)) if m == method::PROMPTS_GET && a.values().any(|v| !v.is_string()) => {
                    return bad("every value of `arguments` must be a string");
                }
                None | Some(Value::Object(_)) => {}
                Some(_) => return bad("`arguments` must be an object"),
            }
        }
        method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE if !string("uri") => {
            return bad("`uri` must be a string");
        }
        method::COMPLETE => {
            let r = get("ref");
            match r.and_then(|r| r.get("type")).and_then(Value::as_str) {
                Some("ref/prompt") if !r.and_then(|r| r.get("name")).is_some_and(Value::is_string) => {
                    return bad("`ref.name` must be a string")
                }
                Some("ref/resource") if !r.and_then(|r| r.get("uri")).is_some_and(Value::is_string) => {
                    return bad("`ref.uri` must be a string")
                }
                Some(_) => {}
                None => return bad("`ref` must be an object with a string `type`"),
            }
            let a = get("argument");
            if !a.and_then(|a| a.get("name")).is_some_and(Value::is_string)
                || !a.and_then(|a| a.get("value")).is_some_and(Value::is_string)
            {
                return bad("`argument` must be an object with string `name` and `value`");
            }
            if get("context").is_some_and(|c| !c.is_object()) {
                return bad("`context` must be an object");
            }
        }
        method::TASKS_GET | method::TASKS_RESULT | method::TASKS_CANCEL if !string("taskId") => {
            return bad("`taskId` must be a string");
        }
        _ => {
            if ListKind::from_method(m).is_some() && get("cursor").is_some_and(|c| !c.is_string() && !c.is_null()) {
                return bad("`cursor` must be a string");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_the_schema_rules_out_are_refused() {
        for (m, p) in [
            (method::TOOLS_LIST, json!({"_meta": 1})),
            (method::TOOLS_LIST, json!({"_meta": "x"})),
            (method::TOOLS_CALL, json!({"name": "a", "_meta": []})),
            (method::TOOLS_CALL, json!({"name": "a", "arguments": null})),
            (method::TOOLS_CALL, json!({"name": "a", "arguments": [1]})),
            (method::TOOLS_CALL, json!({"name": 3})),
            (method::TOOLS_CALL, json!({"name": "a", "_meta": {"progressToken": {}}})),
            (method::PROMPTS_GET, json!({"name": "p", "arguments": {"a": 1}})),
            (method::RESOURCES_READ, json!({"uri": 1})),
            (method::RESOURCES_LIST, json!({"cursor": 5})),
            (method::COMPLETE, json!({"ref": {"type": "ref/prompt"}, "argument": {"name": "a", "value": "b"}})),
            (method::COMPLETE, json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": "x"})),
            (method::TASKS_GET, json!({"taskId": 1})),
            (method::INITIALIZE, json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": "me"})),
            (method::INITIALIZE, json!({"protocolVersion": "2025-11-25", "capabilities": {"sampling": true}})),
            (method::SET_LEVEL, json!({"level": "verbose"})),
            (method::SET_LEVEL, json!({})),
            (method::RESOURCES_SUBSCRIBE, json!({"uri": null})),
            (
                method::COMPLETE,
                json!({"ref": {"type": "ref/resource", "uri": 7}, "argument": {"name": "a", "value": "b"}}),
            ),
            (method::COMPLETE, json!({"argument": {"name": "a", "value": "b"}})),
            (
                method::COMPLETE,
                json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": "b"}, "context": []}),
            ),
        ] {
            let e = check_params(m, Some(&p)).unwrap_or_else(|| panic!("{m} {p} passed"));
            assert_eq!(e.code, code::INVALID_PARAMS);
        }
        for (m, p) in [
            (method::TOOLS_LIST, json!({"_meta": {"progressToken": 1}})),
            (method::TOOLS_LIST, json!({"cursor": null})),
            (method::TOOLS_CALL, json!({"name": "a", "arguments": {"x": [1]}})),
            (method::TOOLS_CALL, json!({"name": "a"})),
            (method::PROMPTS_GET, json!({"name": "p", "arguments": {"a": "1"}})),
            (method::SET_LEVEL, json!({"level": "warning"})),
            (method::INITIALIZE, json!({"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}})),
            (
                method::COMPLETE,
                json!({"ref": {"type": "ref/resource", "uri": "x://"}, "argument": {"name": "a", "value": ""}}),
            ),
        ] {
            assert!(check_params(m, Some(&p)).is_none(), "{m} {p}");
        }
    }
}
