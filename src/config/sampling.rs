//! The `sampling` section, read once for every format: who answers an upstream's sampling request,
//! in order. Providers are OpenAI-compatible chat-completions endpoints; `client` is the MCP client
//! (as without this section); a host may offer more built-in names (the browser's `callback`, its
//! `onSampling` function).
//!
//! ```toml
//! [sampling]
//! order = ["local", "cloud", "client"]   # default: the providers in file order, then "client"
//! [sampling.providers.local]
//! url = "http://127.0.0.1:8080/v1"       # OpenAI-compatible base URL (POST {url}/chat/completions)
//! model = "smollm2-135m"                 # the default model; `models` may list more, picked by hints
//! timeout_ms = 60000
//! modalities = ["text"]                  # what it accepts: text, image, audio (default: text)
//! [sampling.providers.cloud]
//! url = "https://llm.example/v1"
//! api_key_env = "CLOUD_LLM_KEY"          # or api_key_file; never in the file itself
//! model = "big-model"
//! ```

use crate::prelude::*;

use super::groups::{field, known, millis, name_ok, spelt, table};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingConfig {
    /// Provider names, `client`, and host built-ins, in the order they are tried. Empty: sampling
    /// goes to the client as without a chain.
    pub order: Vec<String>,
    pub providers: Vec<ProviderSpec>,
}

impl SamplingConfig {
    pub fn provider(&self, name: &str) -> Option<&ProviderSpec> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Whether anyone but the client may answer.
    pub fn active(&self) -> bool {
        self.order.iter().any(|o| o != "client")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    pub name: String,
    /// Base URL of an OpenAI-compatible API (`…/v1`).
    pub url: String,
    /// The model asked for when no hint names another of `models`.
    pub model: String,
    pub models: Vec<String>,
    /// Where the host finds the API key (the core never sees it).
    pub api_key_env: Option<String>,
    pub api_key_file: Option<String>,
    pub timeout_ms: u64,
    /// Content it can take: "text", "image", "audio".
    pub modalities: Vec<String>,
}

/// Read `sampling` (at `at` in its file). `builtins` are the order names the host answers itself
/// besides `client`.
pub fn read_sampling(at: &str, v: &Value, builtins: &[&str]) -> Result<SamplingConfig, String> {
    if v.is_null() {
        return Ok(SamplingConfig::default());
    }
    let e = table(v, at)?;
    known(e, at, &["order", "providers"])?;
    let mut cfg = SamplingConfig::default();
    if let Some(ps) = field(e, "providers") {
        let here = format!("{at}.providers");
        for (name, p) in ps.as_object().ok_or_else(|| format!("{here}: must be a table of providers"))? {
            let here = format!("{here}.{name}");
            if !name_ok(name) || name == "client" || builtins.contains(&name.as_str()) {
                return Err(format!(
                    "{here}: a provider name may hold only A-Z a-z 0-9 _ . - and must not be \"client\"{}",
                    builtins.iter().map(|b| format!(" or {b:?}")).collect::<String>()
                ));
            }
            let p = table(p, &here)?;
            known(p, &here, &["url", "model", "models", "apiKeyEnv", "apiKeyFile", "timeoutMs", "modalities"])?;
            let string = |k: &str| -> Result<Option<String>, String> {
                match field(p, k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                    Some(_) => Err(format!("{here}.{}: must be a non-empty string", spelt(p, k))),
                }
            };
            let list = |k: &str| -> Result<Vec<String>, String> {
                match field(p, k) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                        Ok(a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    }
                    Some(_) => Err(format!("{here}.{}: must be a list of strings", spelt(p, k))),
                }
            };
            let url = string("url")?
                .ok_or_else(|| format!("{here}.url: required (the provider's OpenAI-compatible base URL)"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{here}.url: must be an http:// or https:// URL"));
            }
            let models = list("models")?;
            let model = match string("model")? {
                Some(m) => m,
                None => {
                    models.first().cloned().ok_or_else(|| format!("{here}.model: required (the model to ask for)"))?
                }
            };
            let (env, file) = (string("apiKeyEnv")?, string("apiKeyFile")?);
            if env.is_some() && file.is_some() {
                return Err(format!("{here}: give api_key_env or api_key_file, not both"));
            }
            let mut modalities = list("modalities")?;
            if let Some(m) = modalities.iter().find(|m| !matches!(m.as_str(), "text" | "image" | "audio")) {
                return Err(format!("{here}.modalities: {m:?} is not one of text, image, audio"));
            }
            if modalities.is_empty() {
                modalities.push("text".into());
            }
            cfg.providers.push(ProviderSpec {
                name: name.clone(),
                url: url.trim_end_matches('/').to_string(),
                model,
                models,
                api_key_env: env,
                api_key_file: file,
                timeout_ms: millis(p, "timeoutMs", &here, 60_000, 1)?,
                modalities,
            });
        }
    }
    match field(e, "order") {
        None | Some(Value::Null) => {
            cfg.order = cfg.providers.iter().map(|p| p.name.clone()).collect();
            cfg.order.push("client".into());
        }
        Some(Value::Array(a)) => {
            for (i, o) in a.iter().enumerate() {
                let here = format!("{at}.order[{i}]");
                let Some(o) = o.as_str() else { return Err(format!("{here}: must be a provider name")) };
                if o != "client" && !builtins.contains(&o) && cfg.provider(o).is_none() {
                    return Err(format!("{here}: {o:?} is neither a provider in {at}.providers nor \"client\""));
                }
                if cfg.order.iter().any(|x| x == o) {
                    return Err(format!("{here}: {o:?} is listed twice"));
                }
                cfg.order.push(o.to_string());
            }
        }
        Some(_) => return Err(format!("{at}.order: must be a list of provider names")),
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_documented_shape_in_either_spelling() {
        let c = read_sampling(
            "sampling",
            &json!({"order": ["local", "cloud", "client"], "providers": {
                "local": {"url": "http://127.0.0.1:8080/v1/", "model": "smollm2-135m"},
                "cloud": {"url": "https://llm.example/v1", "api_key_env": "CLOUD_LLM_KEY", "model": "big-model", "timeoutMs": 5}}}),
            &[],
        )
        .unwrap();
        assert_eq!(c.order, ["local", "cloud", "client"]);
        assert_eq!(c.providers[0].url, "http://127.0.0.1:8080/v1");
        assert_eq!(c.providers[1].api_key_env.as_deref(), Some("CLOUD_LLM_KEY"));
        assert_eq!((c.providers[1].timeout_ms, c.providers[0].modalities.clone()), (5, vec!["text".to_string()]));
        assert!(c.active());
        let d = read_sampling("s", &json!({"providers": {"a": {"url": "http://x/v1", "model": "m"}}}), &[]).unwrap();
        assert_eq!(d.order, ["a", "client"]);
    }

    #[test]
    fn bad_sampling_is_refused_naming_the_key() {
        let e = |v: Value| read_sampling("sampling", &v, &["callback"]).unwrap_err();
        assert!(
            e(json!({"providers": {"local": {"model": "m"}}})).starts_with("sampling.providers.local.url: required")
        );
        assert!(e(json!({"providers": {"local": {"url": "http://x"}}}))
            .starts_with("sampling.providers.local.model: required"));
        assert!(e(json!({"providers": {"local": {"url": "ftp://x", "model": "m"}}}))
            .starts_with("sampling.providers.local.url:"));
        assert!(e(json!({"order": ["nobody"]})).starts_with("sampling.order[0]: \"nobody\" is neither"));
        assert!(e(json!({"providers": {"client": {"url": "http://x", "model": "m"}}}))
            .starts_with("sampling.providers.client:"));
        assert!(e(json!({"providers": {"p": {"url": "http://x", "model": "m", "apiKey": "sk-1"}}}))
            .starts_with("sampling.providers.p.apiKey: unknown setting"));
        assert!(read_sampling("sampling", &json!({"order": ["callback", "client"]}), &["callback"]).is_ok());
    }
}
