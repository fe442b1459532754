//! The native host's configuration loader (`native-host/src/config.rs` and the `secrets.rs` it
//! uses, compiled in here as they are): any text, read as our TOML or as `mcpServers` JSON, is
//! accepted or refused with a message, never a panic; what is accepted has one transport per
//! upstream, reads its secrets from a pretend environment, and, when it validates, starts an engine.
#![no_main]
#![allow(dead_code)]

#[path = "../../native-host/src/config.rs"]
mod config;
#[path = "../../native-host/src/secrets.rs"]
mod secrets;

use config::HostConfig;
use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::Gateway;

/// Half the variable names are set.
fn env(k: &str) -> Option<String> {
    (k.len() % 2 == 0).then(|| format!("value-of-{k}-long-enough"))
}

fn check(text: &str, cfg: Result<HostConfig, String>, json: bool) {
    let Ok(mut cfg) = cfg else { return };
    assert_eq!(cfg.gateway.upstreams.len(), cfg.transports.len(), "one transport per upstream");
    // Secrets come from the pretend environment. Files are never read: a text that might name one
    // (`*_file`, `${file:…}`, or any escape that could spell it) skips this part.
    let lower = text.to_ascii_lowercase();
    if !lower.contains("file") && !text.contains("\\u") && !text.contains("\\U") {
        let _ = cfg.read_api_keys(json, &env);
        let _ = cfg.read_secrets(json, text, &env);
    }
    let _ = format!("{:?}", cfg.api_keys);
    if cfg.gateway.validate().is_ok() {
        let gw = Gateway::new(cfg.gateway).expect("a config that validates starts an engine");
        let _ = gw.status();
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text, HostConfig::from_toml(text), false);
    check(text, HostConfig::from_json(text), true);
});
