//! The service worker's MCP endpoint: the core's Streamable HTTP server face
//! ([`crate::http_server`]) driven from a `FetchEvent`. Only in the `sw` build of the package (the
//! `mcp-edge-gateway/sw` entry), so the default entry carries none of it.
//!
//! The JS side (`pkg-template/sw.js`) turns each request into [`Gateway::serve_http`] and each part
//! of the answer into a `Response` with a `ReadableStream` body; all protocol decisions are the
//! core's. Session keys come from `crypto.getRandomValues`.

use std::prelude::rust_2021::*;

use super::gateway::Gateway;
use super::interop::{from_js, type_error};
use super::runtime;
use crate::http_server::{HttpServer, Request, ServerConfig, StreamId};
use js_sys::{Array, Function, Uint8Array};
use serde_json::Value;
use wasm_bindgen::prelude::*;

fn random(b: &mut [u8]) {
    let arr = Uint8Array::new_with_length(b.len() as u32);
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).unwrap_or(JsValue::UNDEFINED);
    match super::interop::function(&crypto, "getRandomValues") {
        Some(f) if f.call1(&crypto, &arr).is_ok() => arr.copy_to(b),
        // No Web Crypto (it is in every service worker): never all zeros, at least unique.
        _ => b.iter_mut().for_each(|x| *x = (js_sys::Math::random() * 256.0) as u8),
    }
}

fn config(opts: &Value) -> Result<ServerConfig, JsValue> {
    let mut cfg = ServerConfig::new(random);
    let Some(o) = opts.as_object() else { return Ok(cfg) };
    for (k, v) in o {
        let ms = || v.as_u64().ok_or_else(|| type_error(&format!("serveMcp: http.{k} must be a whole number")));
        match k.as_str() {
            "allowedOrigins" => {
                cfg.allowed_origins = v
                    .as_array()
                    .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect())
                    .ok_or_else(|| type_error("serveMcp: http.allowedOrigins must be an array of strings"))?
            }
            "retryMs" => cfg.retry_ms = ms()?,
            "maxStreamMs" => cfg.max_stream_ms = Some(ms()?),
            "sseAfterMs" => cfg.sse_after_ms = ms()?,
            "maxBodyBytes" => cfg.max_body_bytes = ms()? as usize,
            "restore" | "persist" => {}
            other => return Err(type_error(&format!("serveMcp: unknown option http.{other}"))),
        }
    }
    Ok(cfg)
}

#[wasm_bindgen]
impl Gateway {
    /// Serve Streamable HTTP from this gateway with these options (`allowedOrigins`, `retryMs`,
    /// `maxStreamMs`, `sseAfterMs`, `maxBodyBytes`). Called once, before the first `serveHttp`.
    /// `persist(state)` is called with the face's sessions and stored events whenever they change
    /// (keep them, e.g. in IndexedDB); `restore` is what an earlier life of this worker persisted.
    /// Returns how many sessions were restored.
    #[wasm_bindgen(js_name = serveHttpWith)]
    pub fn serve_http_with(&self, options: JsValue) -> Result<u32, JsValue> {
        let cfg = config(&from_js(&options)?)?;
        let persist = super::interop::function(&options, "persist");
        let restore = js_sys::Reflect::get(&options, &"restore".into()).ok().and_then(|v| v.as_string());
        let shared = self.shared();
        let n = {
            let mut rt = shared.borrow_mut();
            let mut face = HttpServer::new(cfg);
            let now = rt.now();
            let n = restore.map_or(0, |r| face.restore(&mut rt.engine, now, &r));
            rt.face = Some(face);
            rt.persist = persist;
            n
        };
        runtime::pump(&shared);
        Ok(n as u32)
    }

    /// One HTTP request on the MCP endpoint. `headers` is an array of `[name, value]` pairs; the
    /// answer comes as `onPart("head", status, headers)`, `onPart("data", text)`, `onPart("end")`.
    /// Returns the exchange's id, for `httpClosed`.
    #[wasm_bindgen(js_name = serveHttp)]
    pub fn serve_http(&self, method: String, headers: Array, body: Uint8Array, on_part: Function) -> f64 {
        let shared = self.shared();
        let headers: Vec<(String, String)> = headers
            .iter()
            .filter_map(|p| {
                let p: Array = p.dyn_into().ok()?;
                Some((p.get(0).as_string()?, p.get(1).as_string()?))
            })
            .collect();
        let body = body.to_vec();
        let st = {
            let mut rt = shared.borrow_mut();
            if rt.face.is_none() {
                rt.face = Some(HttpServer::new(ServerConfig::new(random)));
            }
            let st = rt.next_exchange();
            rt.exchanges.insert(st, on_part);
            let now = rt.now();
            let rt = &mut *rt;
            if let Some(f) = rt.face.as_mut() {
                f.request(
                    &mut rt.engine,
                    now,
                    st,
                    Request { method: &method, headers: &headers, body: &body, principal: None },
                );
            }
            st
        };
        runtime::pump(&shared);
        st as f64
    }

    /// The client left exchange `id` before its end (the response body was cancelled).
    #[wasm_bindgen(js_name = httpClosed)]
    pub fn http_closed(&self, id: f64) {
        let shared = self.shared();
        {
            let mut rt = shared.borrow_mut();
            let st = id as StreamId;
            rt.exchanges.remove(&st);
            let now = rt.now();
            let rt = &mut *rt;
            if let Some(f) = rt.face.as_mut() {
                f.closed(&mut rt.engine, now, st);
            }
        }
        runtime::pump(&shared);
    }
}
