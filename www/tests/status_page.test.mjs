// The native gateway's status page (GET / and GET /status with Accept: text/html) in Chromium: after
// real traffic (raw Streamable HTTP to server-everything behind it) it shows live figures, and it
// makes no request outside the gateway's own origin. Takes the README's screenshot
// (www/screenshots/status.png).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, startGateway, stopGateway, launchChromium } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
let gw, browser;

before(async () => {
  gw = await startGateway(GATEWAY_BIN);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopGateway(gw);
  assert.ok(!gw?.log.includes('panicked'), gw?.log);
});

async function post(body, headers = {}) {
  const r = await fetch(`http://127.0.0.1:${gw.port}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

async function session() {
  const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'status-test', version: '1' } } });
  assert.equal(init.status, 200, init.text);
  const sid = init.headers.get('mcp-session-id');
  const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' };
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, h);
  let id = 2;
  return (method, params) => post({ jsonrpc: '2.0', id: id++, method, params }, h);
}

test('the status page renders live figures after traffic and requests nothing outside the gateway', async () => {
  const call = await session();
  await call('tools/list', {});
  for (let i = 0; i < 6; i++) await call('tools/call', { name: 'everything__echo', arguments: { message: `m${i}` } });
  await call('tools/call', { name: 'everything__get-sum', arguments: { a: 1, b: 2 } });
  await call('tools/call', { name: 'no_such_tool', arguments: {} });

  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const origin = `http://127.0.0.1:${gw.port}`;
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 1, null, { timeout: 15000 });
  // More traffic between polls, so the rate and latency charts have points.
  for (let round = 0; round < 3; round++) {
    const before = await page.evaluate(() => Number(document.body.dataset.polls));
    for (let i = 0; i < 5 + 3 * round; i++) await call('tools/call', { name: 'everything__echo', arguments: { message: `r${round}` } });
    await page.waitForFunction((n) => Number(document.body.dataset.polls) > n, before, { timeout: 15000 });
  }
  assert.deepEqual(problems, []);
  const text = (sel) => page.$eval(sel, (e) => e.innerText);
  const upstreams = await text('#upstreams');
  assert.match(upstreams, /everything\s+ready\s+legacy/, upstreams);
  const methods = await text('#methods');
  assert.ok(methods.includes('everything__echo'), methods);
  // All 30 echo calls, once a poll has come after the last of them.
  await page.waitForFunction(() => document.querySelector('#methods').innerText.split('\n')
    .some((l) => l.includes('everything__echo') && l.split('\t')[3] === '30'), null, { timeout: 15000 })
    .catch(async (e) => { throw new Error(`the echo row never showed 30 calls: ${await text('#methods')}\n${e.message}`); });
  assert.match(methods, /everything__get-sum/);
  assert.match(await text('#errors'), /tools\/call[\s\S]*-32602[\s\S]*no_such_tool/);
  assert.match(await text('#process'), /MiB[\s\S]*resident memory/);
  // The charts drew: some non-white pixels in the rate canvas.
  const inked = await page.$eval('#rate', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 200 || d[i + 2] < 200)) n++;
    return n;
  });
  assert.ok(inked > 100, `the rate chart is empty (${inked} inked pixels)`);
  const foreign = requests.filter((u) => !u.startsWith(origin + '/'));
  assert.deepEqual(foreign, [], 'the page requested something outside the gateway');
  assert.ok(requests.some((u) => u === `${origin}/metrics`) && requests.some((u) => u === `${origin}/status`), requests.join('\n'));
  await page.screenshot({ path: join(ROOT, 'www', 'screenshots', 'status.png'), fullPage: true });

  // The same page at /status for a browser; JSON there for machines.
  const html = await fetch(`${origin}/status`, { headers: { accept: 'text/html' } });
  assert.match(html.headers.get('content-type'), /text\/html/);
  assert.match(html.headers.get('content-security-policy'), /connect-src 'self'/);
  const json = await (await fetch(`${origin}/status`)).json();
  assert.equal(json.upstreams[0].name, 'everything');
  await page.close();
});
