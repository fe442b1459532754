// GatewayTransport: lets the official TypeScript SDK `Client` use a Gateway in-process.
//   const client = new Client({ name: 'app', version: '1.0.0' });
//   await client.connect(new GatewayTransport(gateway));
// It implements the SDK's Transport interface (start, send, close, onmessage, onclose, onerror).
export class GatewayTransport {
  #gateway;
  #connection = null;

  /** @param {import('./mcp_edge_gateway.js').Gateway} gateway */
  constructor(gateway) {
    this.#gateway = gateway;
    this.onmessage = undefined;
    this.onclose = undefined;
    this.onerror = undefined;
    this.sessionId = undefined;
  }

  async start() {
    if (this.#connection) throw new Error('GatewayTransport already started');
    this.#connection = this.#gateway.connect((message) => {
      // Deliver asynchronously, as network transports do: the SDK expects no re-entrant callbacks.
      queueMicrotask(() => this.onmessage?.(message));
    });
  }

  async send(message) {
    if (!this.#connection) throw new Error('GatewayTransport not started');
    try {
      this.#connection.send(message);
    } catch (e) {
      this.onerror?.(e);
      throw e;
    }
  }

  async close() {
    const c = this.#connection;
    this.#connection = null;
    if (c) {
      c.close();
      c.free?.();
    }
    this.onclose?.();
  }
}
