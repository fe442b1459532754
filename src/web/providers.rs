//! Sampling providers in the browser: the engine's [`Output::Sample`] for an OpenAI-compatible
//! endpoint becomes one `fetch` POST; its body (or why there is none) goes back to the engine. The
//! reason never holds the URL (it reaches the upstream in the chain's error); the console gets it.
//!
//! [`Output::Sample`]: crate::engine::Output::Sample

use std::prelude::rust_2021::*;

use super::fetch::{global_fetch, text_of};
use super::runtime::{self, Shared};
use serde_json::Value;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Headers, Request, RequestInit, Response};

pub fn ask(shared: &Shared, job: u64, url: String, body: Value) {
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let r = post(&url, &body).await;
        if let Some(shared) = weak.upgrade() {
            runtime::with(&shared, |e, t| e.sampling_done(t, job, r));
        }
    });
}

async fn post(url: &str, body: &Value) -> Result<Value, String> {
    let headers = Headers::new().map_err(|_| "the request could not be made".to_string())?;
    let _ = headers.set("content-type", "application/json");
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&wasm_bindgen::JsValue::from_str(&body.to_string()));
    let req = Request::new_with_str_and_init(url, &init).map_err(|_| "its URL is not valid".to_string())?;
    let resp: Response = JsFuture::from(global_fetch(&req))
        .await
        .and_then(|r| r.dyn_into())
        .map_err(|_| "it cannot be reached".to_string())?;
    let status = resp.status();
    let text = text_of(&resp).await;
    if !resp.ok() {
        let head: String = text.chars().take(200).collect::<String>().replace(['\n', '\r'], " ");
        return Err(format!("HTTP {status}: {head}"));
    }
    serde_json::from_str(&text).map_err(|_| "its answer is not JSON".to_string())
}
