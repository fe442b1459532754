// Service-worker example: the page's MCP endpoint, answered inside the service worker by the
// package's `mcp-edge-gateway/sw` entry. Any MCP client on this origin (the official TypeScript SDK,
// or anything speaking Streamable HTTP) points at `<scope>mcp`; the worker answers from a Gateway:
// its upstreams (from the `upstream` query parameter of the worker URL, e.g. a board's gateway) and
// a tool the worker itself serves. Both eras, JSON and SSE replies, the GET stream, DELETE,
// resumption with Last-Event-ID: all of it is the core's server face; this file is configuration.
import { serveMcp } from '../../pkg/sw.js';

const params = new URL(self.location.href).searchParams;
const upstream = params.get('upstream');
serveMcp({
  path: new URL('mcp', self.registration.scope).pathname,
  upstreams: upstream ? { board: { url: upstream } } : {},
  local: { name: 'sw' },
  storageName: 'mcp-edge-gateway-sw',
  http: params.get('maxStreamMs') ? { maxStreamMs: Number(params.get('maxStreamMs')) } : {},
  setup(gw) {
    gw.registerTool(
      { name: 'clock', description: 'The time in the service worker', inputSchema: { type: 'object' } },
      () => ({ now: new Date().toISOString() }),
    );
  },
});
