import type { Gateway, JsonRpcMessage } from './mcp_edge_gateway.js';

/** Lets the official TypeScript SDK `Client` use a `Gateway` in-process:
 *  `await client.connect(new GatewayTransport(gateway))`. Implements the SDK's `Transport`. */
export declare class GatewayTransport {
  constructor(gateway: Gateway);
  onmessage?: (message: JsonRpcMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  sessionId?: string;
  start(): Promise<void>;
  send(message: JsonRpcMessage): Promise<void>;
  close(): Promise<void>;
}
