//! # mcp-edge-gateway core
//!
//! An MCP gateway engine that does no I/O and reads no clock, so the same code runs in a browser
//! (wasm32-unknown-unknown) and in the native host. Platforms feed it messages and time and perform
//! the outputs it hands back; see [`engine`] for the calling contract.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 messages that keep ids and unknown members exactly.
//! - [`protocol`]: MCP versions, eras, method names and `_meta` keys.
//! - [`routing`]: namespacing and which upstream owns a name or URI.
//! - [`cursor`]: aggregated pagination cursors.
//! - [`sse`]: an incremental server-sent events parser for the HTTP connectors.
//! - [`http_client`], [`http_server`]: the two sides of Streamable HTTP, protocol without I/O.
//! - [`engine`]: sessions, upstreams, routing, id remapping and era bridging, plus the cache and
//!   offline-queue policy.
//! - [`store`]: the `Store` trait the platforms implement (IndexedDB, SQLite, memory).
//! - [`cache`], [`queue`]: the cache's entries and LRU, the queue's entries and their task views.
//! - [`health`]: group members' circuit breakers and the groups' retry budgets.
//! - [`metrics`]: operation histograms (OpenTelemetry MCP conventions) and recent errors.
//! - [`trace`]: W3C trace context through the gateway (its own span added).
//! - [`sampling`]: MCP sampling ↔ OpenAI chat completions, for providers that answer at the edge.
//!
//! # `no_std`
//!
//! The core is `no_std` + `alloc` throughout: it needs an allocator and nothing of an operating
//! system, so it builds for a microcontroller (`riscv32imc-unknown-none-elf`, the ESP32-C3) with
//! `--no-default-features`. The `std` feature (default) adds what needs an OS or is only useful
//! with one: std's `HashMap` (SipHash with a per-process random key; without `std`, hashbrown's
//! foldhash, which is not seeded from the OS), `std::error::Error` for the error types of
//! serde_json, and the optional `jwt`, `validate` and `web` features, which build on std crates.
// Unit tests get std's prelude (the harness links std anyway).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

// `format!` and `vec!` from alloc, in every module.
#[macro_use]
extern crate alloc;
#[cfg(all(feature = "std", not(test)))]
extern crate std;

/// What std's prelude would bring, for a crate that is `no_std`: the modules that use these start
/// with `use crate::prelude::*;`.
pub(crate) mod prelude {
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    #[cfg(not(feature = "std"))]
    pub use hashbrown::{HashMap, HashSet};
    #[cfg(feature = "std")]
    pub use std::collections::{HashMap, HashSet};
}

pub mod auth;
pub mod cache;
pub mod config;
pub mod cursor;
pub mod engine;
pub mod health;
pub mod http_client;
pub mod http_server;
pub mod jsonrpc;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod principal;
pub mod protocol;
pub mod queue;
pub mod routing;
pub mod sampling;
pub mod sse;
pub mod store;
pub mod token;
pub mod trace;
pub mod validate;
#[cfg(all(wasm_browser, feature = "web"))]
pub mod web;

pub use config::{ConfigError, GatewayConfig, Namespacing, UpstreamSpec};
pub use engine::{Gateway, LogCall, LogLevel, Millis, Output, SessionId, Stats, UpstreamId};
pub use jsonrpc::{ErrorObject, Id, Message, ParseError};
pub use principal::Principal;
pub use protocol::Era;
pub use store::{MemoryStore, Snapshot, Store, StoreError, StoreOp, Table};
