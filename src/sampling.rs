//! Sampling answered at the edge: MCP `sampling/createMessage` ↔ OpenAI chat completions, and the
//! choice of model. Pure functions; the engine runs the provider chain and the host does the HTTP.
//!
//! Mapping: `systemPrompt` → a leading system message; text → text; image → an `image_url` part
//! with a data URL; audio → an `input_audio` part; `tool_use` → the assistant's `tool_calls`;
//! `tool_result` → a `tool` message; `maxTokens` → `max_tokens`; `stopSequences` → `stop`;
//! `temperature` as is; `tools` → function tools; `toolChoice.mode` auto/required/none. Back:
//! the first choice's text and tool calls become content; `finish_reason` stop/length/tool_calls →
//! `stopReason` endTurn/maxTokens/toolUse (others kept as they are); `model` is what the provider
//! says answered.

use crate::prelude::*;

use crate::config::ProviderSpec;
use serde_json::{json, Map, Value};

/// Content kinds a request holds ("text", "image", "audio"): a provider must take them all.
pub fn modalities(params: &Value) -> Vec<&'static str> {
    let mut out = vec!["text"];
    for m in params.get("messages").and_then(Value::as_array).into_iter().flatten() {
        for c in contents(m.get("content")) {
            match c.get("type").and_then(Value::as_str) {
                Some("image") if !out.contains(&"image") => out.push("image"),
                Some("audio") if !out.contains(&"audio") => out.push("audio"),
                _ => {}
            }
        }
    }
    out
}

/// The model to ask `p` for: the first of its models a hint names (hints are substrings, in order of
/// preference), else its default.
pub fn choose_model<'a>(p: &'a ProviderSpec, params: &Value) -> &'a str {
    let hints = params.pointer("/modelPreferences/hints").and_then(Value::as_array);
    for h in hints.into_iter().flatten().filter_map(|h| h.get("name").and_then(Value::as_str)) {
        if let Some(m) = core::iter::once(&p.model).chain(&p.models).find(|m| m.contains(h) && !h.is_empty()) {
            return m;
        }
    }
    &p.model
}

fn contents(c: Option<&Value>) -> Vec<&Value> {
    match c {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

/// The chat-completions request body for MCP sampling `params`.
pub fn to_chat(params: &Value, model: &str) -> Result<Value, String> {
    let mut messages = Vec::new();
    if let Some(sp) = params.get("systemPrompt").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": sp}));
    }
    let msgs = params.get("messages").and_then(Value::as_array).ok_or("sampling request without `messages`")?;
    for m in msgs {
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "assistant")) => r,
            _ => return Err("a message's role must be user or assistant".into()),
        };
        let mut parts = Vec::new();
        let mut calls = Vec::new();
        for c in contents(m.get("content")) {
            match c.get("type").and_then(Value::as_str) {
                Some("text") => {
                    parts.push(json!({"type": "text", "text": c.get("text").and_then(Value::as_str).unwrap_or("")}))
                }
                Some("image") => {
                    let mime = c.get("mimeType").and_then(Value::as_str).unwrap_or("image/png");
                    let data = c.get("data").and_then(Value::as_str).unwrap_or("");
                    parts
                        .push(json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{data}")}}));
                }
                Some("audio") => {
                    let mime = c.get("mimeType").and_then(Value::as_str).unwrap_or("audio/wav");
                    let format = mime.rsplit('/').next().unwrap_or("wav").trim_start_matches("x-");
                    let format = if format == "mpeg" { "mp3" } else { format };
                    parts.push(json!({"type": "input_audio", "input_audio": {"data": c.get("data").cloned().unwrap_or(json!("")), "format": format}}));
                }
                Some("tool_use") => calls.push(json!({
                    "id": c.get("id").cloned().unwrap_or(json!("")),
                    "type": "function",
                    "function": {"name": c.get("name").cloned().unwrap_or(json!("")),
                                 "arguments": c.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into())},
                })),
                Some("tool_result") => {
                    let text: Vec<&str> = contents(c.get("content"))
                        .into_iter()
                        .filter_map(|x| x.get("text").and_then(Value::as_str))
                        .collect();
                    messages.push(json!({"role": "tool", "tool_call_id": c.get("toolUseId").cloned().unwrap_or(json!("")), "content": text.join("\n")}));
                }
                Some(other) => {
                    return Err(format!("content of type {other:?} cannot be sent to a chat-completions model"))
                }
                None => return Err("content without a type".into()),
            }
        }
        if parts.is_empty() && calls.is_empty() {
            continue;
        }
        // Text alone goes as a plain string: every server takes that, not every one takes parts.
        let content = if parts.iter().all(|p| p["type"] == "text") {
            Value::from(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"))
        } else {
            Value::Array(parts)
        };
        let mut msg = json!({"role": role, "content": content});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        messages.push(msg);
    }
    let mut body = json!({"model": model, "messages": messages});
    if let Some(n) = params.get("maxTokens").and_then(Value::as_u64) {
        body["max_tokens"] = Value::from(n);
    }
    if let Some(t) = params.get("temperature").filter(|t| t.is_number()) {
        body["temperature"] = t.clone();
    }
    if let Some(s) = params.get("stopSequences").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        body["stop"] = Value::Array(s.clone());
    }
    if let Some(tools) = params.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        body["tools"] = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.get("name").cloned().unwrap_or(json!("")),
                    "description": t.get("description").cloned().unwrap_or(json!("")),
                    "parameters": t.get("inputSchema").cloned().unwrap_or(json!({"type": "object"})),
                }})
            })
            .collect();
        if let Some(m @ ("auto" | "required" | "none")) = params.pointer("/toolChoice/mode").and_then(Value::as_str) {
            body["tool_choice"] = Value::from(m);
        }
    }
    Ok(body)
}

/// The MCP sampling result for a chat-completions response; `asked` is the model we asked for,
/// named when the provider does not say which answered.
pub fn from_chat(resp: &Value, asked: &str) -> Result<Value, String> {
    let choice = resp.pointer("/choices/0").ok_or("the provider's answer has no choices")?;
    let msg = choice.get("message").filter(|m| m.is_object()).ok_or("the provider's answer has no message")?;
    let mut content = Vec::new();
    match msg.get("content") {
        Some(Value::String(t)) if !t.is_empty() => content.push(json!({"type": "text", "text": t})),
        Some(Value::Array(parts)) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    content.push(json!({"type": "text", "text": t}));
                }
            }
        }
        _ => {}
    }
    for call in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let f = call.get("function").cloned().unwrap_or(json!({}));
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({"arguments": args}));
        content.push(json!({"type": "tool_use", "id": call.get("id").cloned().unwrap_or(json!("")),
                            "name": f.get("name").cloned().unwrap_or(json!("")), "input": input}));
    }
    let reason = choice.get("finish_reason").and_then(Value::as_str);
    if content.is_empty() {
        if reason == Some("length") {
            content.push(json!({"type": "text", "text": ""}));
        } else {
            return Err("the provider's answer is empty".into());
        }
    }
    let model = resp.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).unwrap_or(asked);
    let mut r = Map::new();
    r.insert("role".into(), json!("assistant"));
    r.insert("content".into(), if content.len() == 1 { content.remove(0) } else { Value::Array(content) });
    r.insert("model".into(), Value::from(model));
    if let Some(f) = reason {
        let s = match f {
            "stop" => "endTurn",
            "length" => "maxTokens",
            "tool_calls" | "function_call" => "toolUse",
            other => other,
        };
        r.insert("stopReason".into(), Value::from(s));
    }
    Ok(Value::Object(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> ProviderSpec {
        ProviderSpec {
            name: "local".into(),
            url: "http://x/v1".into(),
            model: "smollm2-135m".into(),
            models: vec!["qwen2.5-0.5b".into()],
            api_key_env: None,
            api_key_file: None,
            timeout_ms: 1,
            modalities: vec!["text".into()],
        }
    }

    #[test]
    fn maps_a_request_faithfully() {
        let p = json!({
            "systemPrompt": "Be brief.", "maxTokens": 20, "temperature": 0.2, "stopSequences": ["\n\n"],
            "messages": [
                {"role": "user", "content": {"type": "text", "text": "Hi"}},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "toolUseId": "c1", "content": [{"type": "text", "text": "2"}]},
                                              {"type": "image", "data": "AAAA", "mimeType": "image/jpeg"}]}],
            "tools": [{"name": "add", "inputSchema": {"type": "object"}}], "toolChoice": {"mode": "auto"}});
        let b = to_chat(&p, "m").unwrap();
        assert_eq!(b["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(b["messages"][1], json!({"role": "user", "content": "Hi"}));
        assert_eq!(b["messages"][2]["tool_calls"][0]["function"], json!({"name": "add", "arguments": "{\"a\":1}"}));
        assert_eq!(b["messages"][3], json!({"role": "tool", "tool_call_id": "c1", "content": "2"}));
        assert_eq!(b["messages"][4]["content"][0]["image_url"]["url"], "data:image/jpeg;base64,AAAA");
        assert_eq!(
            (b["max_tokens"].clone(), b["stop"].clone(), b["tool_choice"].clone()),
            (json!(20), json!(["\n\n"]), json!("auto"))
        );
        assert_eq!(b["tools"][0]["function"]["name"], "add");
        assert_eq!(modalities(&p), ["text", "image"]);
    }

    #[test]
    fn maps_an_answer_back_and_names_the_model_that_answered() {
        let r = from_chat(&json!({"model": "smollm2-135m", "choices": [{"message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}]}), "x").unwrap();
        assert_eq!(
            r,
            json!({"role": "assistant", "content": {"type": "text", "text": "Hello there"}, "model": "smollm2-135m", "stopReason": "endTurn"})
        );
        let t = from_chat(&json!({"choices": [{"message": {"content": null, "tool_calls": [{"id": "c", "function": {"name": "add", "arguments": "{\"a\":2}"}}]}, "finish_reason": "tool_calls"}]}), "asked").unwrap();
        assert_eq!(t["content"], json!({"type": "tool_use", "id": "c", "name": "add", "input": {"a": 2}}));
        assert_eq!((t["model"].clone(), t["stopReason"].clone()), (json!("asked"), json!("toolUse")));
        assert!(from_chat(&json!({"error": "boom"}), "m").is_err());
        assert!(from_chat(&json!("garbage"), "m").is_err());
        assert!(from_chat(&json!({"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]}), "m").is_err());
    }

    #[test]
    fn hints_pick_a_configured_model() {
        let p = provider();
        assert_eq!(
            choose_model(&p, &json!({"modelPreferences": {"hints": [{"name": "claude"}, {"name": "qwen"}]}})),
            "qwen2.5-0.5b"
        );
        assert_eq!(choose_model(&p, &json!({})), "smollm2-135m");
    }
}
