// Browser end-to-end: Debian Chromium (driven by playwright-core) loads www/e2e.html, a plain
// <script type="module"> page that imports the built package (pkg/). Through it the page lists and
// calls tools of @modelcontextprotocol/server-everything behind the native gateway, once over HTTP
// and once over WebSocket, plus an in-page tool; and the official TypeScript SDK Client does the
// same through GatewayTransport. Needs scripts/build-npm.sh and the gateway binary first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, bundleSdk, startGateway, stopGateway, startWeb, launchChromium } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
let gw, web, browser, page;

before(async () => {
  await access(join(ROOT, 'pkg', 'mcp_edge_gateway_bg.wasm')).catch(() => { throw new Error('pkg/ is missing: run scripts/build-npm.sh'); });
  await bundleSdk('sdk-client.js', [['Client', 'client/index.js']]);
  gw = await startGateway(GATEWAY_BIN);
  web = await startWeb();
  browser = await launchChromium();
  page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(`http://127.0.0.1:${web.port}/www/e2e.html`);
  await page.waitForFunction(() => window.e2eReady === true, null, { timeout: 30000 }).catch((e) => {
    throw new Error(`the page did not load the package: ${e.message}\n${problems.join('\n')}`);
  });
});

after(async () => {
  await browser?.close();
  web?.close();
  await stopGateway(gw);
  assert.ok(!gw?.log.includes('panicked'), gw?.log);
});

for (const [transport, path] of [['http', '/mcp'], ['websocket', '/ws']]) {
  test(`the package in Chromium lists and calls tools of server-everything behind the native gateway over ${transport}`, async () => {
    const url = transport === 'http' ? `http://127.0.0.1:${gw.port}${path}` : `ws://127.0.0.1:${gw.port}${path}`;
    const r = await page.evaluate(([u, t]) => window.e2e.viaGateway(u, t), [url, transport]);
    assert.ok(r.tools.includes('native__everything__echo'), r.tools.join(','));
    assert.ok(r.tools.includes('page__double'), 'the in-page tool is aggregated');
    assert.equal(r.echo, `Echo: hello over ${transport}`);
    assert.deepEqual(r.doubled.structuredContent, { value: 42 });
    assert.equal(r.unknownCode, 'McpError:-32602:true', 'errors are real Error objects with the JSON-RPC code');
    assert.match(r.elicit, /Ada/, 'the upstream elicitation reached the page handler and its answer came back');
    assert.equal(r.elicited.length, 1);
    assert.equal(r.rawId, 'mine-1', 'request() keeps the caller\'s id');
    assert.ok(r.rawCount > 10);
    assert.deepEqual(r.afterOff, [], 'unregistering removes the tool');
  });
}

test('metrics() in the page agrees with the engine: per method, upstream and tool, both sides', async () => {
  const { m, st } = await page.evaluate((u) => window.e2e.viaMetrics(u), `http://127.0.0.1:${gw.port}/mcp`);
  const count = (side, f) => m.operations[side].filter(f).reduce((n, s) => n + s.count, 0);
  const echo = (s) => s.method === 'tools/call' && s.outcome === 'ok';
  assert.equal(count('server', (s) => echo(s) && s.tool === 'native__everything__echo' && s.upstream === 'native'), 3);
  // Towards the upstream (the native gateway) the tool has that upstream's name for it.
  assert.equal(count('client', (s) => echo(s) && s.tool === 'everything__echo' && s.upstream === 'native'), 3);
  assert.equal(count('server', (s) => s.method === 'tools/call' && s.errorType === '-32602' && s.tool === '_OTHER'), 1);
  assert.ok(!JSON.stringify(m.operations).includes('native__nope'), 'a made-up tool name never becomes a label');
  // Every client request the engine counted was answered and timed.
  assert.equal(count('server', () => true), st.stats.clientRequests);
  assert.equal(m.stats.clientRequests, st.stats.clientRequests);
  assert.equal(m.upstreams[0].name, 'native');
  assert.equal(m.upstreams[0].state, 'ready');
  assert.deepEqual(m.operations.bounds.slice(0, 3), [0.001, 0.0025, 0.005]);
  for (const s of [...m.operations.server, ...m.operations.client]) {
    assert.equal(s.buckets.length, m.operations.bounds.length + 1);
    assert.equal(s.buckets.at(-1), s.count, 'cumulative buckets end at the count');
  }
  assert.ok(m.recentErrors.some((e) => e.method === 'tools/call' && e.errorType === '-32602'));
});

test('the official TypeScript SDK Client works in the page through GatewayTransport', async () => {
  const r = await page.evaluate((u) => window.e2e.viaSdk(u), `http://127.0.0.1:${gw.port}/mcp`);
  assert.ok(r.tools.includes('native__everything__echo'));
  assert.ok(r.tools.includes('page__greet'));
  assert.equal(r.echo, 'Echo: from the SDK');
  assert.equal(r.greet, 'hello SDK');
  assert.equal(r.server.name, 'mcp-edge-gateway');
});
