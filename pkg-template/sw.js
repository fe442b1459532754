// The `mcp-edge-gateway/sw` entry: a service worker that answers `/mcp` on its own origin from one
// Gateway, through the core's Streamable HTTP server face (both eras, JSON and SSE replies, the GET
// stream, DELETE, resumption with Last-Event-ID). This file only moves bytes between FetchEvents
// and the wasm; every protocol decision is made there. It uses a wasm build of its own (./sw/),
// so the default entry carries none of the server code.
//
//   // sw.js, a module service worker
//   import { serveMcp } from 'mcp-edge-gateway/sw';
//   serveMcp({ path: '/mcp', upstreams: { board: { url: 'https://pi.local:8787/mcp' } } });
//
// Options: `path` (default '/mcp'), `http` (the face's options: retryMs, maxStreamMs, sseAfterMs,
// allowedOrigins besides the worker's own, maxBodyBytes), `setup(gateway)` (run once the gateway
// exists, e.g. to register tools); everything else goes to Gateway.create as it is.
//
// A module service worker must not await at the top level: serveMcp starts the wasm and answers
// every fetch once it is ready (after a worker restart the first fetch comes before that).
import init, { Gateway } from './sw/mcp_edge_gateway.js';

export { Gateway };

const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const SYNC_TAG = 'mcp-edge-gateway-replay';

/** Install the fetch handler for same-origin requests to `path`; resolves to the Gateway. */
export function serveMcp(options = {}) {
  const { path = '/mcp', http = {}, setup, ...config } = options;
  const scope = globalThis;
  const ready = wasm(new URL('./sw/mcp_edge_gateway_bg.wasm', import.meta.url))
    .then((module_or_path) => init({ module_or_path }))
    .then(() => Gateway.create(config))
    .then(async (gw) => {
      // Tools the worker registers exist before restored sessions are back (they hear no change).
      if (setup) await setup(gw);
      const origins = [scope.location.origin, ...(http.allowedOrigins ?? [])];
      // Sessions and their unsent events survive a worker restart: kept in IndexedDB.
      const kept = await faceState(config.storageName);
      gw.serveHttpWith({
        ...http,
        allowedOrigins: origins,
        maxStreamMs: http.maxStreamMs ?? 240000,
        restore: await kept.read(),
        persist: (state) => kept.write(state),
      });
      // Worker start: calls queued by an earlier life of this worker go now if they can.
      gw.retryNow();
      return gw;
    });
  scope.addEventListener('install', () => scope.skipWaiting());
  scope.addEventListener('activate', (e) => e.waitUntil(scope.clients.claim()));
  scope.addEventListener('fetch', (e) => {
    const url = new URL(e.request.url);
    if (url.origin !== scope.location.origin || url.pathname !== path) return;
    e.respondWith(
      ready.then(
        (gw) =>
          answer(gw, e.request).then((response) => {
            // A call may have been queued: ask for a Background Sync, which fires once the network
            // is back (even if the worker was stopped meanwhile).
            if (e.request.method === 'POST' && scope.registration?.sync && gw.listQueue().length) {
              e.waitUntil(scope.registration.sync.register(SYNC_TAG).catch(() => {}));
            }
            return response;
          }),
        (err) => failed(err),
      ),
    );
  });
  // Background Sync, where the browser has it. (The gateway listens for `online` too, but Chromium
  // sends a service worker none; pages can ask with `retryNow` through a message of their own.)
  scope.addEventListener('sync', (e) => {
    if (e.tag === SYNC_TAG) e.waitUntil(ready.then((gw) => gw.retryNow()));
  });
  return ready;
}

/** The wasm, from the network when it can be had (a new version of the package brings its own), else
 *  the copy kept in the Cache API at the last start: a worker that restarts offline still starts. */
async function wasm(url) {
  const cache = await globalThis.caches?.open('mcp-edge-gateway-sw').catch(() => undefined);
  try {
    const r = await fetch(url);
    if (r.ok && cache) await cache.put(url, r.clone()).catch(() => {});
    if (r.ok || !cache) return r;
  } catch (e) {
    if (!cache) throw e;
  }
  return (await cache.match(url)) ?? fetch(url);
}

/** The face's state in IndexedDB (`<storageName>-face`); writes go one at a time, the latest wins. */
async function faceState(storageName = 'mcp-edge-gateway') {
  const none = { read: async () => undefined, write() {} };
  if (!globalThis.indexedDB) return none;
  const db = await new Promise((resolve) => {
    const req = indexedDB.open(`${storageName}-face`, 1);
    req.onupgradeneeded = () => req.result.createObjectStore('state');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => resolve(null);
  });
  if (!db) return none;
  const run = (mode, f) => new Promise((resolve) => {
    const tx = db.transaction('state', mode);
    const req = f(tx.objectStore('state'));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = tx.onabort = () => resolve(undefined);
  });
  let latest;
  let writing = false;
  const flush = async () => {
    writing = true;
    while (latest !== undefined) {
      const s = latest;
      latest = undefined;
      await run('readwrite', (st) => st.put(s, 'face'));
    }
    writing = false;
  };
  return {
    read: () => run('readonly', (st) => st.get('face')),
    write(state) {
      latest = state;
      if (!writing) flush();
    },
  };
}

function failed(err) {
  const body = { jsonrpc: '2.0', id: null, error: { code: -32603, message: `the gateway did not start: ${err?.message ?? err}` } };
  return new Response(JSON.stringify(body), { status: 503, headers: { 'content-type': 'application/json' } });
}

/** One FetchEvent through the server face: resolves to the Response once its head is known. */
async function answer(gw, request) {
  const body = new Uint8Array(await request.arrayBuffer());
  const headers = [...request.headers];
  const encoder = new TextEncoder();
  return new Promise((resolve) => {
    let controller;
    let ended = false;
    let id;
    const stream = new ReadableStream({
      start(c) { controller = c; },
      cancel() { if (!ended) { ended = true; gw.httpClosed(id); } },
    });
    id = gw.serveHttp(request.method, headers, body, (kind, a, b) => {
      if (kind === 'head') {
        resolve(new Response(NULL_BODY.has(a) ? null : stream, { status: a, headers: b }));
      } else if (kind === 'data') {
        controller.enqueue(encoder.encode(a));
      } else if (!ended) {
        ended = true;
        controller.close();
      }
    });
    // The page went away while the answer was pending (no body to cancel yet).
    request.signal?.addEventListener('abort', () => { if (!ended) { ended = true; gw.httpClosed(id); } });
  });
}
