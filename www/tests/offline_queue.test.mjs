// The offline queue in Chromium (www/offline.html): calls made while the page's upstream is
// unreachable are written to IndexedDB before they are acknowledged, survive a reload, and run exactly
// once each, in order, when the upstream comes back (the browser's `online` event wakes the gateway).
// The upstream is a native gateway in front of tests/interop/servers/counter_server.py, a real
// Python MCP server that appends every call it runs to a log: the counting happens there.
// Also: a quota error on enqueue is an error to the caller and nothing is queued; a damaged store
// makes Gateway.create fail clearly and is left as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, freePort, startWeb, launchChromium } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
const PYTHON = join(ROOT, 'tests/interop/.venv/bin/python');
const COUNTER = join(ROOT, 'tests/interop/servers/counter_server.py');
let web, browser, dir;
const procs = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'offline-www-'));
  web = await startWeb();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  web?.close();
  for (const p of procs) p.kill('SIGKILL');
});

/** The counter server on a free port, logging calls to `log`; resolves once it listens. */
async function startCounter(log) {
  const p = spawn(PYTHON, [COUNTER, '--port', '0', '--log', log], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(p);
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: p.stdout }).once('line', resolve);
    p.once('exit', (c) => reject(new Error(`counter_server exited with ${c}`)));
  });
  assert.match(line, /^READY \d+/);
  return Number(line.split(' ')[1]);
}

/** A native gateway on `port` in front of the counter server; resolves once it is ready. */
async function startNative(port, counterPort) {
  const cfg = join(dir, `native-${port}.json`);
  await writeFile(cfg, JSON.stringify({ mcpServers: { counter: { url: `http://127.0.0.1:${counterPort}/mcp` } } }));
  const p = spawn(GATEWAY_BIN, ['serve', '--config', cfg, '--listen', `127.0.0.1:${port}`, '--no-store'], { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(p);
  const end = Date.now() + 30000;
  while (Date.now() < end) {
    try {
      const s = await (await fetch(`http://127.0.0.1:${port}/status`)).json();
      if (s.upstreams.every((u) => u.state === 'ready')) return p;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('native gateway not ready');
}

async function openPage(context, upstreamPort, db, { backoffMs } = {}) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.problems = problems;
  const upstream = encodeURIComponent(`http://127.0.0.1:${upstreamPort}/mcp`);
  const backoff = backoffMs ? `&backoff=${backoffMs}` : '';
  await page.goto(`http://127.0.0.1:${web.port}/www/offline.html?upstream=${upstream}&db=${db}${backoff}`);
  const ok = await page.evaluate(() => window.offline.ready);
  assert.ok(ok, `gateway did not start: ${await page.evaluate(() => window.offline.error)} ${problems.join('\n')}`);
  return page;
}

// The page's reconnects wait at least half of this (jitter), far longer than the test waits for
// the replay: only the browser's `online` event can wake the gateway in time.
const BACKOFF_MS = 240000;
const REPLAY_WAIT_MS = 60000;

const waitFor = async (what, f, ms = REPLAY_WAIT_MS) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

test('calls queued while the upstream is unreachable survive a reload and run exactly once when it is back', async () => {
  const N = 20;
  const log = join(dir, 'calls.jsonl');
  const nativePort = await freePort(); // nothing listens there yet: the upstream is unreachable
  const context = await browser.newContext();
  const page = await openPage(context, nativePort, 'queue-test', { backoffMs: BACKOFF_MS });

  const ids = [];
  for (let n = 0; n < N; n++) {
    const r = await page.evaluate((n) => window.offline.call(n), n);
    assert.ok(r.result, `call ${n}: ${JSON.stringify(r)}`);
    assert.match(r.result.content[0].text, /^Queued:/);
    const q = r.result._meta['io.github.mcp-edge-gateway/queued'];
    assert.equal(q.position, n + 1);
    ids.push(q.taskId);
  }
  assert.equal(new Set(ids).size, N);

  // Reload: the queue comes back from IndexedDB.
  await page.reload();
  assert.ok(await page.evaluate(() => window.offline.ready));
  const restored = await page.evaluate(() => window.offline.list());
  assert.deepEqual(restored.map((e) => e.taskId), ids);
  assert.ok(restored.every((e) => e.status === 'queued'), JSON.stringify(restored.map((e) => e.status)));

  // The network goes away, the upstream comes up meanwhile, and the network is back: the browser's
  // `online` event sends the page's gateway to its upstream at once. Its reconnect backoff (at least
  // BACKOFF_MS / 2 since the failed connect at the reload) is longer than waitFor's REPLAY_WAIT_MS, so
  // nothing else can start the replay within the wait.
  await context.setOffline(true);
  const counterPort = await startCounter(log);
  await startNative(nativePort, counterPort);
  await context.setOffline(false);

  const done = await waitFor('every queued call to complete', async () => {
    const list = await page.evaluate(() => window.offline.list());
    return list.every((e) => e.status === 'completed') ? list : null;
  });
  const lines = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.n), [...Array(N).keys()], 'each call ran once, in order');
  assert.deepEqual(lines.map((l) => l.key), ids, 'each carried its task id as idempotency key');
  for (const [n, id] of ids.entries()) {
    const r = await page.evaluate((id) => window.offline.result(id), id);
    assert.equal(r.content[0].text, `recorded ${n}`);
  }
  assert.equal(done.length, N);

  // Another reload: nothing runs again. Once the page's gateway is connected, a new call to the same
  // tool runs at once only if no queued call of it is waiting; had the reload brought back anything
  // to replay, the new call would be queued behind it and the log would show the replay first.
  await page.reload();
  assert.ok(await page.evaluate(() => window.offline.ready));
  await waitFor('the reloaded page to connect', async () => (await page.evaluate(() => window.offline.status())).upstreams[0].state === 'ready');
  const sentinel = await page.evaluate((n) => window.offline.call(n), N);
  assert.equal(sentinel.result?.content?.[0]?.text, `recorded ${N}`, `the call after the reload: ${JSON.stringify(sentinel)}`);
  const after = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l).n);
  assert.deepEqual(after, [...Array(N + 1).keys()], 'no call ran twice');
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('a quota error on enqueue is an error to the caller, and nothing is queued', async () => {
  const context = await browser.newContext();
  // The origin's storage quota is cut to 256 KiB before the page opens its store (Chromium's own
  // quota enforcement, set through the DevTools protocol): small calls fit, a 4 MiB one does not.
  const blank = await context.newPage();
  const cdp = await context.newCDPSession(blank);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: `http://127.0.0.1:${web.port}`, quotaSize: 256 * 1024 });
  const page = await openPage(context, await freePort(), 'quota-test');
  const small = await page.evaluate(() => window.offline.call(1));
  assert.ok(small.result, JSON.stringify(small));
  const big = await page.evaluate(() => window.offline.call(2, 'x'.repeat(4 * 1024 * 1024)));
  assert.ok(big.error, `a call over quota was acknowledged: ${JSON.stringify(big).slice(0, 300)}`);
  assert.equal(big.error.code, -32000);
  assert.match(big.error.message, /could not be queued: storage is full/);
  const after = await page.evaluate(() => window.offline.call(3));
  assert.ok(after.result, `the gateway keeps queueing what fits: ${JSON.stringify(after)}`);
  const list = await page.evaluate(() => window.offline.list());
  assert.deepEqual(list.map((e) => e.arguments.n), [1, 3], 'only the acknowledged calls are queued');
  await context.close();
});

test('a damaged store makes Gateway.create fail clearly and is left as it was', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${web.port}/www/e2e.html`);
  const r = await page.evaluate(async () => {
    const { default: init, Gateway } = await import('/pkg/index.js');
    await init(); // the page's own script may not have finished initialising the module yet
    // A database with our layout, holding a record that is not ours (a number, not JSON text).
    await new Promise((resolve, reject) => {
      const open = indexedDB.open('damaged', 1);
      open.onupgradeneeded = () => { for (const s of ['cache', 'queue', 'meta']) open.result.createObjectStore(s); };
      open.onsuccess = () => {
        const tx = open.result.transaction('queue', 'readwrite');
        tx.objectStore('queue').put(42, '00000000000000000001');
        tx.oncomplete = () => { open.result.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
      open.onerror = () => reject(open.error);
    });
    let message = null;
    try { await Gateway.create({ storageName: 'damaged' }); } catch (e) { message = e.message; }
    const still = await new Promise((resolve) => {
      const open = indexedDB.open('damaged');
      open.onsuccess = () => {
        const get = open.result.transaction('queue').objectStore('queue').get('00000000000000000001');
        get.onsuccess = () => { open.result.close(); resolve(get.result); };
      };
    });
    return { message, still };
  });
  assert.ok(r.message, 'Gateway.create succeeded on a damaged store');
  assert.match(r.message, /IndexedDB "damaged"/);
  assert.match(r.message, /corrupt/i);
  assert.equal(r.still, 42, 'the record is left as it was');
  await context.close();
});
