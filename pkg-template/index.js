// The package entry: the wasm-bindgen module (default export `init`, the `Gateway` class) and the
// `GatewayTransport` adapter for the official TypeScript SDK. Works in pages, workers and service
// workers (`./web` is the same entry; `fetch` and `WebSocket` come from the global scope).
export { default } from './mcp_edge_gateway.js';
export * from './mcp_edge_gateway.js';
export { GatewayTransport } from './transport.js';
