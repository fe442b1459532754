// Service-worker example: the page's MCP endpoint, answered inside the service worker.
// Any MCP client on this origin (the official TypeScript SDK, or anything speaking Streamable HTTP)
// points at `<scope>mcp`; the worker answers from a Gateway: its upstreams (from the `upstream`
// query parameter of the worker URL, e.g. a board's gateway) and tools the worker itself serves.
//
// Trap (see TOOLCHAIN): a module service worker must not await init() at the top level, or it
// fails to start. init() starts at once; every fetch waits for it.
//
// Supported: POST with JSON replies, both eras (legacy `initialize` + Mcp-Session-Id, and modern
// per-request `_meta`), DELETE; notifications are accepted. Not supported here: SSE replies and
// the GET stream (messages the gateway has for a session outside a reply are dropped), so an
// upstream's sampling or elicitation cannot reach a client of the worker.
import init, { Gateway } from '../../pkg/index.js';

const upstream = new URL(self.location.href).searchParams.get('upstream');
const ready = init().then(async () => {
  const gw = await Gateway.create({
    upstreams: upstream ? { board: { url: upstream } } : {},
    local: { name: 'sw' },
  });
  gw.registerTool(
    { name: 'clock', description: 'The time in the service worker', inputSchema: { type: 'object' } },
    () => ({ now: new Date().toISOString() }),
  );
  return gw;
});

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (url.origin === self.location.origin && url.pathname === new URL('mcp', self.registration.scope).pathname) {
    e.respondWith(ready.then((gw) => handle(gw, e.request)).catch((err) => json(500, { error: String(err) })));
  }
});

/** Legacy sessions: Mcp-Session-Id → { conn, waiting: Map<id, resolve> }. */
const sessions = new Map();

function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

function rpcError(status, id, code, message) {
  return json(status, { jsonrpc: '2.0', id: id ?? null, error: { code, message } });
}

function open(gw) {
  const waiting = new Map();
  const conn = gw.connect((m) => {
    const key = JSON.stringify(m.id);
    if (('result' in m || 'error' in m) && waiting.has(key)) {
      waiting.get(key)(m);
      waiting.delete(key);
    }
  });
  return { conn, waiting };
}

function exchange(s, msg) {
  return new Promise((resolve) => {
    s.waiting.set(JSON.stringify(msg.id), resolve);
    s.conn.send(msg);
  });
}

async function handle(gw, req) {
  const sid = req.headers.get('mcp-session-id');
  if (req.method === 'DELETE') {
    const s = sessions.get(sid);
    if (!s) return rpcError(404, null, -32600, 'Session not found');
    s.conn.close();
    sessions.delete(sid);
    return new Response(null, { status: 200 });
  }
  if (req.method !== 'POST') return new Response(null, { status: 405, headers: { allow: 'POST, DELETE' } });
  let msg;
  try {
    msg = await req.json();
  } catch {
    return rpcError(400, null, -32700, 'Parse error');
  }
  if (Array.isArray(msg) || typeof msg !== 'object' || msg === null) return rpcError(400, null, -32600, 'Invalid Request');
  const isRequest = 'method' in msg && 'id' in msg;
  const modern = /^2026-/.test(req.headers.get('mcp-protocol-version') ?? '');
  if (modern) {
    if (!isRequest) return new Response(null, { status: 202 });
    const s = open(gw);
    try {
      const answer = await exchange(s, msg);
      return json('error' in answer && [-32700, -32600, -32602, -32020, -32022].includes(answer.error.code) ? 400 : 200, answer);
    } finally {
      s.conn.close();
    }
  }
  if (isRequest && msg.method === 'initialize') {
    const s = open(gw);
    const answer = await exchange(s, msg);
    if ('error' in answer) {
      s.conn.close();
      return json(400, answer);
    }
    const id = crypto.randomUUID();
    sessions.set(id, s);
    return json(200, answer, { 'mcp-session-id': id });
  }
  const s = sessions.get(sid);
  if (!sid) return rpcError(400, msg.id, -32600, 'Bad Request: Mcp-Session-Id header is required');
  if (!s) return rpcError(404, msg.id, -32600, 'Session not found');
  if (!isRequest) {
    s.conn.send(msg);
    return new Response(null, { status: 202 });
  }
  return json(200, await exchange(s, msg));
}
