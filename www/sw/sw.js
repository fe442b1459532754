// Service-worker example: the page's MCP endpoint, answered inside the service worker by the
// package's `mcp-edge-gateway/sw` entry. Any MCP client on this origin (the official TypeScript SDK,
// or anything speaking Streamable HTTP) points at `<scope>mcp`; the worker answers from a Gateway:
// its upstreams (from the `upstream` query parameter of the worker URL, e.g. a board's gateway) and
// a tool the worker itself serves. Both eras, JSON and SSE replies, the GET stream, DELETE,
// resumption with Last-Event-ID: all of it is the core's server face; this file is configuration.
//
// Worker URL parameters: `upstream` (an MCP endpoint behind the worker), `maxStreamMs` and `retryMs`
// (the face's options), `log` (demo/test hook: every request to the endpoint is announced on the
// BroadcastChannel "mcp-edge-gateway-sw-log" with its MCP headers, and which life of the worker saw it).
import { serveMcp } from '../../pkg/sw.js';

const params = new URL(self.location.href).searchParams;
const upstream = params.get('upstream');
const path = new URL('mcp', self.registration.scope).pathname;
// This run of the worker (it changes when the browser stops the worker and starts it again).
const life = crypto.randomUUID().slice(0, 8);
const http = {};
for (const k of ['maxStreamMs', 'retryMs']) if (params.get(k)) http[k] = Number(params.get(k));

if (params.has('log')) {
  const log = new BroadcastChannel('mcp-edge-gateway-sw-log');
  // Registered before serveMcp's handler; it only looks (the face answers).
  self.addEventListener('fetch', (e) => {
    const url = new URL(e.request.url);
    if (url.origin !== self.location.origin || url.pathname !== path) return;
    const h = e.request.headers;
    log.postMessage({
      life,
      method: e.request.method,
      session: h.get('mcp-session-id'),
      lastEventId: h.get('last-event-id'),
      protocolVersion: h.get('mcp-protocol-version'),
    });
  });
}

const gateway = serveMcp({
  path,
  upstreams: upstream ? { board: { url: upstream } } : {},
  local: { name: 'sw' },
  storageName: 'mcp-edge-gateway-sw',
  http,
  setup(gw) {
    gw.registerTool(
      { name: 'clock', description: 'The time in the service worker', inputSchema: { type: 'object' } },
      () => ({ now: new Date().toISOString() }),
    );
  },
});

// Demo/test hook: a page asks the worker to serve one more tool, `postMessage({ type:
// 'register-tool', name }, [port])`; the reply on `port` says which life of the worker did it. Every
// MCP client of this worker then gets notifications/tools/list_changed on its GET stream.
self.addEventListener('message', (e) => {
  if (e.data?.type !== 'register-tool') return;
  const { name } = e.data;
  const reply = (m) => e.ports[0]?.postMessage({ life, ...m });
  e.waitUntil(gateway.then((gw) => {
    gw.registerTool(
      { name, description: 'Registered on request of the page', inputSchema: { type: 'object' } },
      () => ({ tool: name, life }),
    );
    reply({ ok: true });
  }).catch((err) => reply({ ok: false, error: String(err?.message ?? err) })));
});
