// The offline PWA (www/pwa/) in headless Chromium. The page registers www/pwa/sw.js, whose Gateway
// (pkg/sw.js) answers the page's ./mcp; the page is an official TypeScript SDK Client of it. Behind the
// worker: a native gateway in front of server-everything, reached through a small counting proxy
// here that records every tools/call the native gateway receives.
// Shown: online, the tools are listed live and echo runs; with the network off (Playwright's
// context.setOffline, which also cuts the worker's own fetches: checked), tools/list is answered
// from the worker's IndexedDB cache and marked so in `_meta`, and echo is queued; the worker is
// stopped and the page reloaded, still offline: the app shell comes from the worker's Cache API
// copy, the restarted worker's gateway (its wasm from the copy the package keeps) has the queue back from
// IndexedDB and queues one more call; a page opened offline at the scope's root (a launch from the
// home screen) gets the app and the same queue; network back: each queued call reaches the upstream
// exactly once, in order, with its task id as idempotency key, and the page shows nothing waiting.
// Also: the manifest parses and has what installing needs (fetched here and through DevTools).
// Screenshots go to a temporary folder; UPDATE_SCREENSHOTS=1 writes the README's
// (www/screenshots/pwa-online.png, www/screenshots/pwa-offline.png).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, bundleSdk, freePort, startGateway, stopGateway, startWeb, launchChromium } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
const SHOTS = process.env.UPDATE_SCREENSHOTS ? join(ROOT, 'www', 'screenshots') : join(tmpdir(), 'mcp-edge-gateway-screenshots');
const ECHO = 'edge__everything__echo';
const IDEMPOTENCY = 'io.github.mcp-edge-gateway/idempotencyKey';
let gw, proxy, web, browser;

/** In front of the native gateway: forwards everything (streams too), records each tools/call. */
async function startCountingProxy(target) {
  const seen = { requests: 0, calls: [] };
  const server = createServer((req, res) => {
    seen.requests++;
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        for (const m of [JSON.parse(body)].flat()) {
          if (m?.method === 'tools/call') seen.calls.push({ name: m.params.name, arguments: m.params.arguments, key: m.params._meta?.[IDEMPOTENCY] });
        }
      } catch { /* GET, DELETE, not JSON */ }
      const up = httpRequest({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${target}` } }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      up.end(body);
    });
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { port, seen, close: () => { server.closeAllConnections(); server.close(); } };
}

before(async () => {
  await bundleSdk('sdk-bench.js', [['Client', 'client/index.js'], ['StreamableHTTPClientTransport', 'client/streamableHttp.js']]);
  await mkdir(SHOTS, { recursive: true });
  gw = await startGateway(GATEWAY_BIN);
  proxy = await startCountingProxy(gw.port);
  web = await startWeb();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  web?.close();
  proxy?.close();
  await stopGateway(gw);
  assert.ok(!gw?.log.includes('panicked'), gw?.log);
});

const waitFor = async (what, f, ms = 15000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

/** Call echo through the page's form, as a user would; resolves to what the page saw. */
async function callEcho(page, message) {
  await page.selectOption('#tool', ECHO);
  await page.fill('#args', JSON.stringify({ message }));
  await page.click('#call-button');
  return page.waitForFunction((m) => window.pwa.last.call?.args?.message === m && window.pwa.last.call, message).then((h) => h.jsonValue());
}

async function pageReady(page) {
  const ok = await page.evaluate(() => window.pwa.ready);
  assert.ok(ok, `the app did not start: ${await page.evaluate(() => window.pwa.error)}\n${page.problems.join('\n')}`);
}

test('the PWA lists and calls online; offline it lists from its cache, queues, reloads from its shell cache; back online each queued call runs once', async (t) => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 860 } });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  const base = `http://127.0.0.1:${web.port}/www/pwa/`;
  const upstream = `http://127.0.0.1:${proxy.port}/mcp`;
  await page.goto(`${base}index.html?${new URLSearchParams({ upstream })}`);
  await pageReady(page);

  // Online: the list is live (no cache marker), echo runs upstream.
  const live = await page.evaluate(() => window.pwa.last.list);
  assert.ok(live.tools.includes(ECHO), live.tools.join(','));
  assert.equal(live.cache, null);
  const online = await callEcho(page, 'hello from the PWA');
  assert.equal(online.result.content[0].text, 'Echo: hello from the PWA');
  assert.equal(online.queued, null);
  assert.equal(proxy.seen.calls.length, 1);
  const st = await page.evaluate(() => window.pwa.status());
  assert.equal(st.status.upstreams.find((u) => u.name === 'edge').state, 'ready');
  assert.match(await page.textContent('#upstreams'), /edge.*ready/);

  // The manifest: fetched and parsed here, and as Chromium sees it (DevTools protocol).
  const manifest = await (await fetch(`${base}manifest.webmanifest`)).json();
  assert.ok(manifest.name && manifest.short_name);
  assert.equal(manifest.display, 'standalone');
  assert.equal(new URL(manifest.start_url, base).href, `${base}index.html`);
  for (const size of [192, 512]) {
    const icon = manifest.icons.find((i) => i.type === 'image/png' && i.sizes === `${size}x${size}` && !i.purpose);
    assert.ok(icon, `a ${size}px PNG icon`);
    const png = Buffer.from(await (await fetch(new URL(icon.src, base))).arrayBuffer());
    assert.equal(png.toString('latin1', 1, 4), 'PNG');
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [size, size], `${icon.src} is ${size}x${size}`);
  }
  const cdp = await context.newCDPSession(page);
  const app = await cdp.send('Page.getAppManifest', {});
  assert.equal(app.url, `${base}manifest.webmanifest`);
  assert.deepEqual(app.errors, [], JSON.stringify(app.errors));
  assert.equal(JSON.parse(app.data).name, manifest.name);
  // Chromium's own install checks; Playwright's contexts are off the record, which alone rules out
  // installing, so that one error is expected.
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors.map((e) => e.errorId), ['in-incognito'], JSON.stringify(installabilityErrors));
  // A DevTools session of our own stays attached only while needed: with one attached, a reload
  // under Playwright's offline emulation comes up with navigator.onLine true (the network still off).
  await cdp.detach();

  await page.screenshot({ path: join(SHOTS, 'pwa-online.png'), fullPage: true });

  // Network off. The worker's own fetches fail too (not only the page's).
  await context.setOffline(true);
  const [worker] = context.serviceWorkers();
  assert.ok(worker, 'the service worker is running');
  const probe = await worker.evaluate(async (u) => {
    try { await fetch(u, { method: 'POST', body: '{}' }); return 'reached'; } catch (e) { return `failed: ${e.message}`; }
  }, upstream);
  assert.match(probe, /^failed/, 'offline, the worker cannot reach the upstream');
  const requestsAtOffline = proxy.seen.requests;

  // tools/list from the worker's IndexedDB cache, marked in _meta (past its TTL, upstream unreachable).
  await page.click('#reload-tools');
  const cached = await page.waitForFunction(() => window.pwa.last.list?.cache && window.pwa.last.list).then((h) => h.jsonValue());
  assert.deepEqual(cached.tools, live.tools);
  assert.equal(cached.cache.offline, true);
  assert.equal(cached.cache.stale, true);
  assert.equal(cached.cache.upstream, 'edge');
  assert.match(await page.textContent('#tools-note'), /From the worker's cache: edge is unreachable/);

  // tools/call of echo (idempotentHint: queueable by default) is queued.
  const q1 = await callEcho(page, 'offline one');
  assert.match(q1.result.content[0].text, /^Queued:/);
  assert.equal(q1.queued.position, 1);
  assert.match(await page.textContent('#result'), /^Queued: upstream "edge" is unreachable/);

  // Reload, still offline, with the worker stopped first: the navigation, the script and the SDK
  // bundle come from the worker's shell cache, the gateway's wasm from the copy the package keeps,
  // and its restarted gateway has the queue back from IndexedDB.
  const before = await page.evaluate(() => window.pwa.last.status.startedAt);
  const devtools = await context.newCDPSession(page);
  await devtools.send('ServiceWorker.enable');
  await devtools.send('ServiceWorker.stopAllWorkers');
  await devtools.detach();
  const nav = await page.reload();
  assert.ok(nav.fromServiceWorker(), 'the page came from the worker');
  await pageReady(page);
  assert.equal(await page.textContent('#net'), 'offline');
  await page.evaluate(() => { window.onlineEvents = 0; addEventListener('online', () => window.onlineEvents++); });
  const restarted = await page.evaluate(() => window.pwa.status());
  assert.notEqual(restarted.startedAt, before, 'a new life of the worker');
  assert.deepEqual(restarted.queue.map((e) => [e.taskId, e.status]), [[q1.queued.taskId, 'queued']]);
  const again = await page.evaluate(() => window.pwa.last.list);
  assert.deepEqual(again.tools, live.tools);
  assert.equal(again.cache?.offline, true);
  const q2 = await callEcho(page, 'offline two');
  assert.equal(q2.queued?.position, 2, JSON.stringify(q2));
  await page.waitForFunction(() => document.querySelectorAll('#queue tr').length === 2);
  await page.screenshot({ path: join(SHOTS, 'pwa-offline.png'), fullPage: true });

  // Launched offline as an installed app would be: the scope's root (no such file on this server:
  // the worker answers with the app), its settings from the last launch, the same worker and queue.
  const launched = await context.newPage();
  launched.problems = page.problems;
  await launched.goto(base);
  await pageReady(launched);
  assert.deepEqual((await launched.evaluate(() => window.pwa.status())).queue.map((e) => e.taskId), [q1.queued.taskId, q2.queued.taskId]);
  assert.equal(await launched.evaluate(() => window.pwa.last.list.cache?.offline), true);
  await launched.close();
  assert.equal(proxy.seen.requests, requestsAtOffline, 'nothing reached the upstream while offline');
  assert.equal(proxy.seen.calls.length, 1);

  // Network back: the queue replays; each call reaches the upstream once, in order, keyed by its task.
  await context.setOffline(false);
  const back = Date.now();
  await waitFor('the replay', async () => {
    const s = await page.evaluate(() => window.pwa.status());
    return s.status.queue.completed === 2 && s.status.queue.queued === 0 && s.status.queue.running === 0;
  });
  const replayMs = Date.now() - back;
  await page.waitForFunction(() => /Nothing waiting/.test(document.getElementById('queue-note').textContent));
  assert.equal(await page.evaluate(() => window.onlineEvents), 1, 'the page saw the browser go online');
  t.diagnostic(`replayed ${proxy.seen.calls.length - 1} queued calls ${replayMs} ms after the network came back`);
  await new Promise((r) => setTimeout(r, 1000)); // anything running twice would show by now
  assert.deepEqual(proxy.seen.calls.map((c) => [c.name, c.arguments.message, c.key]), [
    ['everything__echo', 'hello from the PWA', undefined],
    ['everything__echo', 'offline one', q1.queued.taskId],
    ['everything__echo', 'offline two', q2.queued.taskId],
  ]);
  const done = await page.evaluate(() => window.pwa.status());
  assert.deepEqual(done.queue.map((e) => e.result?.content?.[0]?.text), ['Echo: offline one', 'Echo: offline two']);
  assert.match(await page.textContent('#queue'), /completed.*Echo: offline one[\s\S]*completed.*Echo: offline two/);

  // And the list is live again (the page lists again once it sees the upstream back).
  await page.waitForFunction(() => window.pwa.last.list && !window.pwa.last.list.cache && /live from the upstream/.test(document.getElementById('tools-note').textContent));
  assert.deepEqual(page.problems, []);
  await context.close();
});
