//! Browser bindings: the core engine driven from JavaScript, with fetch and WebSocket upstreams and
//! in-page tools. Compiled only for `wasm_browser` (see build.rs); one file per JS class plus the
//! shared pieces:
//!
//! - [`gateway`]: the `Gateway` class (the JS API).
//! - [`connection`]: the `Connection` class, a raw session for adapters (`GatewayTransport`).
//! - [`runtime`]: the loop that drives the engine (time from `Date.now`, timers from `setTimeout`).
//! - [`fetch`]: Streamable HTTP upstreams over `fetch` (through the global scope, so pages, workers
//!   and service workers all work).
//! - [`websocket`]: WebSocket upstreams, one JSON-RPC message per text frame.
//! - [`local`]: the in-page upstream serving tools registered from JavaScript.
//! - [`idb`]: the durable [`crate::store::Store`] on IndexedDB.
//! - [`interop`]: JSON values and errors across the boundary.
//! - `serve` (the `sw` feature, the package's `./sw` entry): the core's Streamable HTTP server face
//!   driven from a service worker's fetch events.

pub mod connection;
pub mod fetch;
pub mod gateway;
pub mod idb;
pub mod interop;
pub mod local;
pub mod providers;
pub mod runtime;
#[cfg(feature = "sw")]
pub mod serve;
pub mod websocket;

pub use gateway::Gateway;
