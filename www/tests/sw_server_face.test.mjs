// The service worker's Streamable HTTP server face (src/http_server.rs through pkg/sw.js), seen from
// the official TypeScript SDK in headless Chromium. www/sw/index.html registers www/sw/sw.js; the
// page's SDK Client (StreamableHTTPClientTransport, capabilities sampling and elicitation) talks to
// ./mcp, which the worker answers from its Gateway: its own tools and, behind it, server-everything
// behind the native gateway. Shown: tools listed and called; the upstream's sampling and elicitation
// requests reaching the page's handlers over SSE through the worker and their answers going back;
// notifications/tools/list_changed on the GET stream; that stream ended by the face (maxStreamMs)
// and resumed with Last-Event-ID; and the worker stopped mid-stream (Chrome DevTools Protocol) with
// the client resuming against the restarted worker and still getting what happened after the stop.
// Each test has its own browser context (its own worker, gateway and IndexedDB).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, bundleSdk, startGateway, stopGateway, startWeb, launchChromium } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
const BUNDLE = 'sdk-sw-face.js';
let gw, web, browser;

before(async () => {
  await bundleSdk(BUNDLE, [
    ['Client', 'client/index.js'],
    ['StreamableHTTPClientTransport', 'client/streamableHttp.js'],
    ['CreateMessageRequestSchema, ElicitRequestSchema, ToolListChangedNotificationSchema', 'types.js'],
  ]);
  gw = await startGateway(GATEWAY_BIN);
  web = await startWeb();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  web?.close();
  await stopGateway(gw);
  assert.ok(!gw?.log.includes('panicked'), gw?.log);
});

/** A fresh context on the example page, its worker started with `query`, an SDK Client connected. */
async function open(query = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const q = new URLSearchParams({ upstream: `http://127.0.0.1:${gw.port}/mcp`, log: '1', ...query });
  await page.goto(`http://127.0.0.1:${web.port}/www/sw/index.html?${q}`);
  await page.waitForFunction(() => window.swReady === true, null, { timeout: 15000 }).catch((e) => {
    throw new Error(`service worker did not start: ${e.message}\n${problems.join('\n')}`);
  });
  const info = await page.evaluate(async (bundle) => {
    const sdk = await import(`/www/vendor/${bundle}`);
    // What the page's fetches were and what came back (the SDK's own fetch, wrapped).
    const t = { fetches: [], errors: [], listChanged: 0, sampled: [], elicited: [] };
    window.t = t;
    const logged = async (url, init = {}) => {
      const h = new Headers(init.headers);
      let rpc;
      try { rpc = JSON.parse(init.body).method; } catch { /* GET, DELETE */ }
      const entry = { method: init.method ?? 'GET', rpc, lastEventId: h.get('last-event-id'), events: [] };
      t.fetches.push(entry);
      try {
        const r = await fetch(url, init);
        entry.status = r.status;
        entry.type = r.headers.get('content-type');
        if (entry.type !== 'text/event-stream' || !r.body) return r;
        // The events as they came: [id, what] (the message's method, or "answer"; "" for priming).
        const [mine, theirs] = r.body.tee();
        (async () => {
          const reader = mine.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          try {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              buf += value;
              let i;
              while ((i = buf.indexOf('\n\n')) >= 0) {
                const block = buf.slice(0, i);
                buf = buf.slice(i + 2);
                const id = block.match(/^id: ?(.*)$/m)?.[1];
                const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
                if (id === undefined && !data) continue; // keep-alive comment
                let what = '';
                if (data) { const m = JSON.parse(data); what = m.method ?? 'answer'; }
                entry.events.push([id ?? null, what]);
              }
            }
            entry.ended = 'end';
          } catch (e) {
            entry.ended = String(e);
          }
        })();
        return new Response(theirs, { status: r.status, statusText: r.statusText, headers: r.headers });
      } catch (e) {
        entry.failed = String(e);
        throw e;
      }
    };
    const client = new sdk.Client({ name: 'sw-face-test', version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: {} } });
    client.setRequestHandler(sdk.CreateMessageRequestSchema, async (req) => {
      t.sampled.push(req.params);
      return { role: 'assistant', model: 'page-model', content: { type: 'text', text: 'the page says 42' }, stopReason: 'endTurn' };
    });
    client.setRequestHandler(sdk.ElicitRequestSchema, async (req) => {
      t.elicited.push(req.params.message);
      return { action: 'accept', content: { name: 'Grace Hopper', check: true } };
    });
    client.setNotificationHandler(sdk.ToolListChangedNotificationSchema, () => { t.listChanged += 1; });
    client.onerror = (e) => t.errors.push(String(e?.message ?? e));
    const transport = new sdk.StreamableHTTPClientTransport(new URL('mcp', location.href), { fetch: logged });
    await client.connect(transport);
    t.client = client;
    t.transport = transport;
    t.tools = async () => {
      const names = [];
      let cursor;
      do {
        const p = await client.listTools(cursor ? { cursor } : {});
        names.push(...p.tools.map((x) => x.name));
        cursor = p.nextCursor;
      } while (cursor);
      return names;
    };
    return { server: client.getServerVersion(), protocolVersion: transport.protocolVersion, session: transport.sessionId };
  }, BUNDLE);
  // The GET stream is open (the SDK opens it after `initialized`).
  await page.waitForFunction(() => window.t.fetches.some((f) => f.method === 'GET' && f.status === 200), null, { timeout: 5000 });
  return { context, page, info, problems };
}

const state = (page) => page.evaluate(() => ({ fetches: window.t.fetches, errors: window.t.errors, listChanged: window.t.listChanged, swLog: window.swLog }));
const text = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

test('the SDK Client lists and calls tools through the worker\'s /mcp, served from server-everything behind it', async () => {
  const { context, page, info } = await open();
  try {
    assert.equal(info.server.name, 'mcp-edge-gateway');
    assert.equal(info.protocolVersion, '2025-11-25');
    assert.match(info.session, /^[0-9a-f]{32}$/, 'a legacy session with the face\'s key');
    const tools = await page.evaluate(() => window.t.tools());
    for (const name of ['sw__clock', 'board__everything__echo', 'board__everything__get-sum', 'board__everything__trigger-sampling-request', 'board__everything__trigger-elicitation-request']) {
      assert.ok(tools.includes(name), `${name} in ${tools.join(',')}`);
    }
    const r = await page.evaluate(async () => {
      const c = window.t.client;
      const echo = await c.callTool({ name: 'board__everything__echo', arguments: { message: 'through the worker' } });
      const sum = await c.callTool({ name: 'board__everything__get-sum', arguments: { a: 19, b: 23 } });
      const clock = await c.callTool({ name: 'sw__clock', arguments: {} });
      return { echo, sum, clock };
    });
    assert.equal(text(r.echo), 'Echo: through the worker');
    assert.match(text(r.sum), /\b42\b/);
    assert.match(r.clock.structuredContent.now, /^\d{4}-\d\d-\d\dT/);
    const s = await state(page);
    assert.ok(s.swLog.some((l) => l.method === 'POST' && l.session === info.session), 'the worker saw the session\'s POSTs');
    assert.deepEqual(s.errors, []);
  } finally {
    await context.close();
  }
});

test('the upstream\'s sampling and elicitation reach the page\'s handlers over SSE through the worker, and their answers go back', async () => {
  const { context, page } = await open();
  try {
    const r = await page.evaluate(async () => {
      const c = window.t.client;
      const sampled = await c.callTool({ name: 'board__everything__trigger-sampling-request', arguments: { prompt: 'What is six times seven?', maxTokens: 20 } });
      const elicited = await c.callTool({ name: 'board__everything__trigger-elicitation-request', arguments: {} });
      return { sampled, elicited, seenSampling: window.t.sampled, seenElicitation: window.t.elicited };
    });
    assert.equal(r.seenSampling.length, 1, 'one sampling request reached the page');
    assert.match(JSON.stringify(r.seenSampling[0].messages), /What is six times seven\?/);
    assert.equal(r.seenSampling[0].maxTokens, 20);
    assert.match(text(r.sampled), /the page says 42/, text(r.sampled));
    assert.match(text(r.sampled), /page-model/);
    assert.deepEqual(r.seenElicitation, ['Please provide inputs for the following fields:']);
    assert.match(text(r.elicited), /User provided the requested information/, text(r.elicited));
    assert.match(text(r.elicited), /- Name: Grace Hopper/);
    assert.match(text(r.elicited), /- Agreed to terms: true/);
    // The two calls were answered as event streams (the requests to the page came first), and the
    // page's answers went back as POSTs the face accepted.
    const s = await state(page);
    const calls = s.fetches.filter((f) => f.rpc === 'tools/call');
    assert.equal(calls.length, 2);
    for (const c of calls) assert.equal(c.type, 'text/event-stream', JSON.stringify(c));
    const answers = s.fetches.filter((f) => f.method === 'POST' && f.rpc === undefined);
    assert.equal(answers.length, 2, `the page's two answers: ${JSON.stringify(s.fetches)}`);
    for (const a of answers) assert.equal(a.status, 202, JSON.stringify(a));
    assert.deepEqual(s.errors, []);
  } finally {
    await context.close();
  }
});

test('a tool registered in the worker reaches the client as tools/list_changed on its GET stream', async () => {
  const { context, page } = await open();
  try {
    const reply = await page.evaluate(() => window.swRegisterTool('greeting'));
    assert.equal(reply.ok, true, JSON.stringify(reply));
    await page.waitForFunction(() => window.t.listChanged >= 1, null, { timeout: 5000 }).catch(async (e) => {
      throw new Error(`no list_changed: ${e.message}\n${JSON.stringify(await state(page))}`);
    });
    const r = await page.evaluate(async () => ({
      tools: await window.t.tools(),
      call: await window.t.client.callTool({ name: 'sw__greeting', arguments: {} }),
    }));
    assert.ok(r.tools.includes('sw__greeting'), r.tools.join(','));
    assert.deepEqual(r.call.structuredContent, { tool: 'greeting', life: reply.life });
    const s = await state(page);
    // One GET stream, never resumed: the notification came on it.
    assert.deepEqual(s.fetches.filter((f) => f.method === 'GET').map((f) => [f.status, f.lastEventId]), [[200, null]]);
    assert.deepEqual(s.errors, []);
  } finally {
    await context.close();
  }
});

test('the face ends the GET stream after maxStreamMs; the client resumes it with Last-Event-ID and loses nothing', async () => {
  const { context, page, info } = await open({ maxStreamMs: '1200', retryMs: '300' });
  try {
    assert.equal((await page.evaluate(() => window.swRegisterTool('first'))).ok, true);
    await page.waitForFunction(() => window.t.listChanged >= 1, null, { timeout: 5000 });
    // Wait until the stream that carried it was ended and resumed (event 0-1 was its last one).
    await page.waitForFunction(() => window.swLog.some((l) => l.method === 'GET' && l.lastEventId), null, { timeout: 5000 }).catch(async (e) => {
      throw new Error(`no resumption: ${e.message}\n${JSON.stringify(await state(page))}`);
    });
    assert.equal((await page.evaluate(() => window.swRegisterTool('second'))).ok, true);
    await page.waitForFunction(() => window.t.listChanged >= 2, null, { timeout: 5000 }).catch(async (e) => {
      throw new Error(`the event after the resumption was lost: ${e.message}\n${JSON.stringify(await state(page))}`);
    });
    const tools = await page.evaluate(() => window.t.tools());
    assert.ok(tools.includes('sw__first') && tools.includes('sw__second'), tools.join(','));
    const s = await state(page);
    const resumed = s.swLog.filter((l) => l.method === 'GET' && l.lastEventId);
    assert.equal(resumed[0].session, info.session);
    assert.equal(resumed[0].lastEventId, '0-1', 'resumed after the list_changed event, the last one on the standalone stream');
    assert.ok(s.fetches.filter((f) => f.method === 'GET' && f.lastEventId).every((f) => f.status === 200), JSON.stringify(s.fetches));
    assert.equal(s.listChanged, 2, 'each notification once (no replay of what the client had)');
    const gets = s.fetches.filter((f) => f.method === 'GET');
    assert.equal(gets[0].ended, 'end', 'the face ended the first stream gracefully');
    const ids = gets.flatMap((g) => g.events.filter(([, what]) => what).map(([id]) => id));
    assert.deepEqual(ids, ['0-1', '0-2'], JSON.stringify(gets));
    // The SDK reports each graceful end only as a reconnection, not as an error.
    assert.deepEqual(s.errors, []);
  } finally {
    await context.close();
  }
});

test('the worker stopped mid-stream: the client resumes with Last-Event-ID against the restarted worker and gets what happened after the stop', async () => {
  const { context, page, info } = await open();
  try {
    const cdp = await context.newCDPSession(page);
    const versions = new Map();
    cdp.on('ServiceWorker.workerVersionUpdated', ({ versions: vs }) => { for (const v of vs) versions.set(v.versionId, v); });
    await cdp.send('ServiceWorker.enable');
    const until = async (what, ok, ms = 5000) => {
      const end = Date.now() + ms;
      while (!(await ok())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify({ versions: [...versions.values()], ...(await state(page)) })}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    const running = () => [...versions.values()].filter((v) => v.runningStatus === 'running');
    await until('the running worker', () => running().length === 1);
    const { versionId } = running()[0];
    const gets = async () => (await state(page)).fetches.filter((f) => f.method === 'GET');
    const settle = () => new Promise((r) => setTimeout(r, 300));

    const first = await page.evaluate(() => window.swRegisterTool('before-stop'));
    assert.equal(first.ok, true);
    await page.waitForFunction(() => window.t.listChanged >= 1, null, { timeout: 5000 });

    // Stop the worker while the client's GET stream is open on it; the SDK comes back by itself
    // (after the priming event's `retry`) with the last event id it saw, which starts the worker.
    // What the worker's new life sends the session by itself (its setup registers its tool again)
    // is the baseline for the next round.
    const stop = async () => {
      await cdp.send('ServiceWorker.stopWorker', { versionId });
      await until('the worker to stop', () => versions.get(versionId)?.runningStatus === 'stopped');
    };
    const resumed = async (n, events) => {
      await until(`GET #${n + 1} answered`, async () => { const g = (await gets())[n]; return g?.status && (g.status !== 200 || g.events.length >= events); }, 8000);
      await settle();
      const g = (await gets())[n];
      if (g.status !== 200) {
        const s = await state(page);
        assert.fail(`the restarted worker refused the resumption (GET Last-Event-ID ${g.lastEventId} -> ${g.status}): ` +
          `the session did not survive the restart\nfetches: ${JSON.stringify(s.fetches)}\nerrors: ${JSON.stringify(s.errors)}\nworker saw: ${JSON.stringify(s.swLog)}`);
      }
      return g;
    };
    await stop();
    const control = await resumed(1, 1);
    const baseline = control.events.filter(([, what]) => what).length;

    // Again, and this time something happens after the stop: a message starts the worker, and its
    // new life serves a new tool while the client's stream is not there (so its list_changed waits
    // in the session's event store).
    await stop();
    const second = await page.evaluate(() => window.swRegisterTool('after-restart'));
    assert.equal(second.ok, true, JSON.stringify(second));
    assert.notEqual(second.life, first.life, 'a new life of the worker');
    const again = await resumed(2, baseline + 1);

    let s = await state(page);
    const lives = [...new Set(s.swLog.map((l) => l.life))];
    assert.equal(lives.length, 3, `three lives of the worker: ${JSON.stringify(s.swLog)}`);
    assert.equal(lives[2], second.life);
    // What the worker saw: each new life first got the client's GET with Last-Event-ID.
    const seen = s.swLog.filter((l) => l.method === 'GET').map((l) => [l.life, l.session, l.lastEventId]);
    assert.deepEqual(seen.slice(1), [[lives[1], info.session, '0-1'], [lives[2], info.session, `0-${1 + baseline}`]],
      `the resumed GETs carry the session and Last-Event-ID: ${JSON.stringify(s.swLog)}`);
    // The event generated after the stop reached the client, on the resumed stream.
    assert.equal(again.events.filter(([, what]) => what).length, baseline + 1,
      `the resumed stream has the new life's own events and the one for the tool registered after the stop: ${JSON.stringify(again)}`);

    // The resumed stream is live: an event now comes on it at once.
    assert.equal((await page.evaluate(() => window.swRegisterTool('after-resume'))).ok, true);
    await until('the live list_changed', async () => (await gets())[2].events.length > again.events.length);
    const tools = await page.evaluate(() => window.t.tools());
    for (const t of ['sw__clock', 'sw__after-restart', 'sw__after-resume', 'board__everything__echo']) assert.ok(tools.includes(t), `${t} in ${tools.join(',')}`);
    const call = await page.evaluate(() => window.t.client.callTool({ name: 'sw__after-restart', arguments: {} }));
    assert.deepEqual(call.structuredContent, { tool: 'after-restart', life: second.life });

    // Nothing lost, nothing twice: the standalone stream's events across the two cut streams and
    // the resumptions are 0-1, 0-2, ... with no gap, each resumption starting right after its
    // Last-Event-ID, and the client handled each list_changed once.
    s = await state(page);
    const all = s.fetches.filter((f) => f.method === 'GET');
    assert.equal(all.length, 3, JSON.stringify(all));
    assert.deepEqual(all[0].events, [['0-0', ''], ['0-1', 'notifications/tools/list_changed']]);
    for (const g of all.slice(0, 2)) assert.match(g.ended ?? '', /error/i, 'the stream was cut by the stop, not ended');
    const ids = all.flatMap((g) => g.events.filter(([, what]) => what).map(([id]) => id));
    assert.deepEqual(ids, ids.map((_, i) => `0-${i + 1}`), `contiguous event ids: ${JSON.stringify(all)}`);
    assert.ok(ids.length >= 1 + baseline + 1 + 1);
    assert.equal(s.listChanged, ids.length, JSON.stringify(s));
    assert.deepEqual(s.errors.filter((e) => !/SSE stream disconnected: TypeError: network error/.test(e)), [], JSON.stringify(s.errors));
  } finally {
    await context.close();
  }
});
