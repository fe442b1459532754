// The package entry: the wasm-bindgen module (default export `init`, the `Gateway` class) and the
// `GatewayTransport` adapter for the official TypeScript SDK. Works in pages, workers and service
// workers (`./web` is the same entry; `fetch` and `WebSocket` come from the global scope).
//
// WebMCP (`gateway.exposeToWebMcp()`, `Gateway.create({ webmcp })`) lives in ./webmcp.js, loaded
// only when a page uses it. What it needs from a gateway's start (its create config, the tool names
// the app registers itself) is kept here on the instance, under one symbol.
import { Gateway } from './mcp_edge_gateway.js';

export { default } from './mcp_edge_gateway.js';
export * from './mcp_edge_gateway.js';
export { GatewayTransport } from './transport.js';

const HOOK = Symbol.for('mcp-edge-gateway.webmcp');
const create = Gateway.create;
const registerTool = Gateway.prototype.registerTool;

Gateway.create = async function (config) {
  let webmcp;
  if (config && typeof config === 'object' && 'webmcp' in config) ({ webmcp, ...config } = config);
  const gateway = await create.call(this, config);
  gateway[HOOK] = { config: config ?? {}, appTools: new Map(), registerTool };
  if (webmcp) {
    try {
      await (await import('./webmcp.js')).importInto(gateway, webmcp);
    } catch (e) {
      gateway.close();
      throw e;
    }
  }
  return gateway;
};

Gateway.prototype.registerTool = function (definition, handler) {
  const undo = registerTool.call(this, definition, handler);
  const names = this[HOOK]?.appTools;
  if (!names) return undo;
  const name = definition.name;
  names.set(name, (names.get(name) ?? 0) + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const n = (names.get(name) ?? 1) - 1;
    if (n > 0) names.set(name, n);
    else names.delete(name);
    undo();
  };
};

Gateway.prototype.exposeToWebMcp = async function (options) {
  return (await import('./webmcp.js')).expose(this, options);
};
