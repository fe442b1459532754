export { default } from './mcp_edge_gateway.js';
export * from './mcp_edge_gateway.js';
export { GatewayTransport } from './transport.js';
export type * from './webmcp.js';
