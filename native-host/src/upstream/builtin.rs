//! The built-in `edge` upstream: real readings of the device the gateway runs on (Linux `/proc` and
//! `/sys`), served in-process as a small legacy-era MCP server. It is what `serve` exposes with no
//! config, so a newcomer sees real tools at once.

use crate::driver::{Cmd, Handle};
use mcp_edge_gateway::jsonrpc::code;
use mcp_edge_gateway::{ErrorObject, Message, UpstreamId};
use serde_json::{json, Map, Value};
use std::fs;
use tokio::sync::mpsc;

pub async fn run(h: Handle, u: UpstreamId) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    h.send(Cmd::UpstreamUp(u, tx));
    while let Some(m) = rx.recv().await {
        if let Some(reply) = handle(m) {
            h.send(Cmd::FromUpstream(u, reply, None));
        }
    }
}

/// Answer one request as the `edge` server would. Notifications get no answer.
pub fn handle(m: Message) -> Option<Message> {
    let Message::Request { id, method, params, .. } = m else {
        return None;
    };
    let p = params.unwrap_or(json!({}));
    Some(match method.as_str() {
        "initialize" => Message::response(
            id,
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "edge", "title": "Edge device tools", "version": env!("CARGO_PKG_VERSION") },
            }),
        ),
        "ping" => Message::response(id, json!({})),
        "tools/list" => Message::response(id, json!({ "tools": tool_list() })),
        "tools/call" => {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            match read_tool(name) {
                Some(Ok(v)) => Message::response(
                    id,
                    json!({
                        "content": [{ "type": "text", "text": serde_json::to_string_pretty(&v).unwrap_or_default() }],
                        "structuredContent": v,
                    }),
                ),
                Some(Err(e)) => Message::response(
                    id,
                    json!({ "content": [{ "type": "text", "text": format!("{name}: {e}") }], "isError": true }),
                ),
                None => {
                    Message::error(Some(id), ErrorObject::new(code::INVALID_PARAMS, format!("Unknown tool: {name}")))
                }
            }
        }
        other => {
            Message::error(Some(id), ErrorObject::new(code::METHOD_NOT_FOUND, format!("Method not found: {other}")))
        }
    })
}

fn tool_list() -> Value {
    let t = |name: &str, title: &str, description: &str| {
        json!({
            "name": name, "title": title, "description": description,
            "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false },
            "annotations": { "readOnlyHint": true, "idempotentHint": true, "openWorldHint": false },
        })
    };
    json!([
        t("system_info", "System information", "Host name, OS, kernel, architecture, CPU model and count, board model and uptime of the device running the gateway."),
        t("load", "CPU load", "Load averages over 1, 5 and 15 minutes, runnable/total tasks and CPU count (from /proc/loadavg)."),
        t("memory", "Memory", "Total, available and used memory and swap in bytes (from /proc/meminfo)."),
        t("temperatures", "Temperatures", "Every temperature sensor the kernel exposes (thermal zones and hwmon), in degrees Celsius."),
        t("network", "Network interfaces", "Bytes and packets received and sent per network interface (from /proc/net/dev)."),
    ])
}

fn read_tool(name: &str) -> Option<Result<Value, String>> {
    Some(match name {
        "system_info" => system_info(),
        "load" => load(),
        "memory" => memory(),
        "temperatures" => temperatures(),
        "network" => network(),
        _ => return None,
    })
}

fn read(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn system_info() -> Result<Value, String> {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Model") || l.starts_with("Hardware"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let os = read("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())));
    let uptime = read("/proc/uptime")?.split_whitespace().next().and_then(|v| v.parse::<f64>().ok());
    let board = fs::read_to_string("/proc/device-tree/model").ok().map(|s| s.trim_end_matches('\0').to_string());
    Ok(json!({
        "hostname": read("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).ok(),
        "os": os,
        "kernel": read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).ok(),
        "arch": std::env::consts::ARCH,
        "cpuModel": cpu_model,
        "cpuCount": cpu_count(),
        "boardModel": board,
        "uptimeSeconds": uptime,
    }))
}

fn load() -> Result<Value, String> {
    let s = read("/proc/loadavg")?;
    let f: Vec<&str> = s.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let (run, total) = f.get(3).and_then(|v| v.split_once('/')).unwrap_or(("", ""));
    Ok(json!({
        "load1": num(0), "load5": num(1), "load15": num(2),
        "runnable": run.parse::<u64>().ok(), "tasks": total.parse::<u64>().ok(),
        "cpuCount": cpu_count(),
    }))
}

fn memory() -> Result<Value, String> {
    let s = read("/proc/meminfo")?;
    let mut kb: Map<String, Value> = Map::new();
    for l in s.lines() {
        if let Some((k, v)) = l.split_once(':') {
            if let Some(n) = v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()) {
                kb.insert(k.to_string(), json!(n * 1024));
            }
        }
    }
    let g = |k: &str| kb.get(k).and_then(Value::as_u64);
    let (total, avail) = (g("MemTotal"), g("MemAvailable"));
    Ok(json!({
        "totalBytes": total, "availableBytes": avail,
        "usedBytes": total.zip(avail).map(|(t, a)| t.saturating_sub(a)),
        "swapTotalBytes": g("SwapTotal"), "swapFreeBytes": g("SwapFree"),
    }))
}

fn temperatures() -> Result<Value, String> {
    let mut sensors = Vec::new();
    if let Ok(dir) = fs::read_dir("/sys/class/thermal") {
        let mut zones: Vec<_> =
            dir.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().contains("thermal_zone")).collect();
        zones.sort();
        for z in zones {
            let t = fs::read_to_string(z.join("temp")).ok().and_then(|s| s.trim().parse::<f64>().ok());
            let kind = fs::read_to_string(z.join("type")).map(|s| s.trim().to_string()).unwrap_or_default();
            if let Some(t) = t {
                sensors.push(json!({ "source": "thermal", "sensor": kind, "celsius": t / 1000.0 }));
            }
        }
    }
    if let Ok(dir) = fs::read_dir("/sys/class/hwmon") {
        let mut mons: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        mons.sort();
        for m in mons {
            let chip = fs::read_to_string(m.join("name")).map(|s| s.trim().to_string()).unwrap_or_default();
            let Ok(files) = fs::read_dir(&m) else {
                continue;
            };
            let mut inputs: Vec<String> = files
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("temp") && n.ends_with("_input"))
                .collect();
            inputs.sort();
            for i in inputs {
                let Some(t) = fs::read_to_string(m.join(&i)).ok().and_then(|s| s.trim().parse::<f64>().ok()) else {
                    continue;
                };
                let label =
                    fs::read_to_string(m.join(i.replace("_input", "_label"))).map(|s| s.trim().to_string()).ok();
                sensors.push(json!({ "source": "hwmon", "sensor": chip, "label": label, "celsius": t / 1000.0 }));
            }
        }
    }
    let note =
        sensors.is_empty().then_some("this device exposes no temperature sensors (common in VMs and containers)");
    Ok(json!({ "sensors": sensors, "note": note }))
}

fn network() -> Result<Value, String> {
    let s = read("/proc/net/dev")?;
    let mut ifs = Vec::new();
    for l in s.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let n: Vec<u64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if n.len() >= 10 {
            ifs.push(json!({
                "interface": name.trim(), "rxBytes": n[0], "rxPackets": n[1], "txBytes": n[8], "txPackets": n[9],
            }));
        }
    }
    Ok(json!({ "interfaces": ifs }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_edge_gateway::Id;

    #[test]
    fn every_listed_tool_answers_with_real_readings() {
        let tools = tool_list();
        for t in tools.as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            let m = Message::request(Id::Num(1), "tools/call", json!({"name": name, "arguments": {}}));
            let Some(Message::Response { result, .. }) = handle(m) else { panic!("{name}: no response") };
            assert!(result["content"][0]["text"].is_string(), "{name}");
        }
        let Some(Message::Response { result, .. }) =
            handle(Message::request(Id::Num(2), "tools/call", json!({"name": "memory"})))
        else {
            panic!()
        };
        assert!(result["structuredContent"]["totalBytes"].as_u64().unwrap() > 0);
    }
}
