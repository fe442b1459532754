import type { Gateway, GatewayConfig } from './sw/mcp_edge_gateway.js';

export { Gateway };

/** Options of the service worker's server face. */
export interface HttpFaceOptions {
  /** The `retry` delay sent to clients with each stream's priming event (ms, default 1000). */
  retryMs?: number;
  /** End resumable streams after this long; clients resume them (ms, default 240000). */
  maxStreamMs?: number;
  /** Turn a reply into an event stream when no answer has come for this long (ms, default 1000). */
  sseAfterMs?: number;
  /** Origins allowed besides the worker's own. */
  allowedOrigins?: string[];
  /** Larger request bodies get 413 (default 4 MiB). */
  maxBodyBytes?: number;
}

export interface ServeMcpOptions extends GatewayConfig {
  /** The endpoint on the worker's origin (default '/mcp'). */
  path?: string;
  http?: HttpFaceOptions;
  /** Runs once the gateway exists (register tools here). */
  setup?: (gateway: Gateway) => void | Promise<void>;
}

/** Answer same-origin requests to `path` from one Gateway; resolves to it. */
export declare function serveMcp(options?: ServeMcpOptions): Promise<Gateway>;
