// The offline PWA's service worker (a module worker). Two jobs:
//  1. `serveMcp` answers `<scope>mcp` from a Gateway living here: its upstream is an MCP server
//     elsewhere (a board's gateway, say). Lists and reads are cached in IndexedDB and served from
//     there when the upstream is unreachable; calls of queueable tools are queued in IndexedDB and
//     replayed once each when it is back: at worker start, on Background Sync's `sync`, and when
//     the page asks (it does on its `online` event: Chromium gives the worker none of its own).
//  2. The app shell (page, script, icons, SDK bundle) is precached with the Cache API, so the app
//     opens and reloads with the network off (the package keeps the gateway's wasm itself).
// Configuration: the query string of this script's URL (the page registers `sw.js?upstream=…`):
//   upstream  the MCP endpoint behind the worker          (default http://127.0.0.1:8787/mcp)
//   name      its name, the prefix of its tools           (default "edge")
//   queue     comma-separated tools to queue offline      (default "@idempotentHint")
//   ttl       how long its lists and reads stay fresh, ms (default 30000; for legacy upstreams:
//             a modern one sends its own ttlMs)
// The page talks to the worker in two ways: MCP on `<scope>mcp` (any MCP client), and
// `postMessage({ type: 'status' | 'retry' }, [port])` for what MCP does not say (the upstreams'
// state, the cache's counters, the offline queue): the reply comes back on `port`.
import { serveMcp } from '../../pkg/sw.js';

const params = new URL(self.location.href).searchParams;
const config = {
  upstream: params.get('upstream') ?? 'http://127.0.0.1:8787/mcp',
  name: params.get('name') ?? 'edge',
  queue: (params.get('queue') ?? '@idempotentHint').split(',').filter(Boolean),
  ttl: Number(params.get('ttl') ?? 30000),
};

// ---- The app shell -----------------------------------------------------------------------------

const SHELL_CACHE = 'mcp-edge-pwa-shell-v1';
const here = (path) => new URL(path, self.location.href).href;
const SHELL = new Set([
  'index.html', 'app.js', 'manifest.webmanifest',
  'icons/icon.svg', 'icons/icon-192.png', 'icons/icon-512.png', 'icons/icon-maskable-512.png',
  '../vendor/sdk-bench.js', // the official TypeScript SDK's client, bundled (see the README)
].map(here));

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll([...SHELL])));
});
self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k.startsWith('mcp-edge-pwa-shell-') && k !== SHELL_CACHE).map((k) => caches.delete(k)),
  )));
});

const network = self.fetch.bind(self);

/** Stale-while-revalidate: the cached copy at once (refreshed in the background), else the network. */
async function fromShell(request) {
  const cache = await caches.open(SHELL_CACHE);
  const hit = await cache.match(request, { ignoreSearch: true });
  const refresh = network(request).then((r) => {
    if (r.ok) return cache.put(request.url.split('?')[0], r.clone()).then(() => r);
    return r;
  });
  if (hit) {
    refresh.catch(() => {}); // offline: the cached copy will do
    return hit;
  }
  return refresh;
}

const mcpPath = new URL('mcp', self.registration.scope).pathname;
self.addEventListener('fetch', (e) => {
  const { request } = e;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || url.pathname === mcpPath) return;
  const clean = url.origin + url.pathname;
  if (SHELL.has(clean)) {
    e.respondWith(fromShell(request));
  } else if (request.mode === 'navigate' && clean.startsWith(self.registration.scope)) {
    // Any other page of the scope (`./`, say): the network's answer, else the app.
    const app = () => fromShell(new Request(here('index.html')));
    e.respondWith(network(request).then((r) => (r.ok ? r : app()), app));
  }
});

// ---- The gateway ---------------------------------------------------------------------------------

const startedAt = new Date().toISOString();
const gateway = serveMcp({
  path: mcpPath,
  storageName: 'mcp-edge-gateway-pwa',
  local: { name: 'worker' }, // tools the worker itself would serve (gw.registerTool): none here
  upstreams: {
    [config.name]: { url: config.upstream, offlineQueue: config.queue, cacheTtlMs: config.ttl },
  },
});

self.addEventListener('message', (e) => {
  const port = e.ports[0];
  if (!port) return;
  const { type } = e.data ?? {};
  e.waitUntil(gateway.then((gw) => {
    if (type === 'retry') gw.retryNow();
    port.postMessage({
      ok: true,
      config,
      startedAt,
      status: gw.status(),
      queue: gw.listQueue(),
    });
  }).catch((err) => port.postMessage({ ok: false, error: String(err?.message ?? err) })));
});
