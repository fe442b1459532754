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
#![forbid(unsafe_code)]

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
