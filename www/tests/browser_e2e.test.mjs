// Browser end-to-end: Debian Chromium (driven by playwright-core) loads www/e2e.html, a plain
// <script type="module"> page that imports the built package (pkg/). Through it the page lists and
// calls tools of @modelcontextprotocol/server-everything behind the native gateway, once over HTTP
// and once over WebSocket, plus an in-page tool; and the official TypeScript SDK Client does the
// same through GatewayTransport. Needs scripts/build-npm.sh and the gateway binary first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, writeFile, mkdtemp, mkdir, access } from 'node:fs/promises';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, extname, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
const EVERYTHING = join(ROOT, 'tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

let gateway, gatewayLog = '', web, browser, page, gwPort, webPort;

const freePort = () => new Promise((resolve) => {
  const s = netServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

async function waitReady(url, ms = 30000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const s = await (await fetch(`${url}/status`)).json();
      if (s.upstreams.every((u) => u.state === 'ready')) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gateway not ready:\n${gatewayLog}`);
}

before(async () => {
  await access(join(ROOT, 'pkg', 'mcp_edge_gateway_bg.wasm')).catch(() => { throw new Error('pkg/ is missing: run scripts/build-npm.sh'); });
  // The SDK client for the page, bundled (the SDK's bare imports cannot load in a page as is).
  await mkdir(join(ROOT, 'www', 'vendor'), { recursive: true });
  await build({
    stdin: { contents: "export { Client } from '@modelcontextprotocol/sdk/client/index.js';", resolveDir: join(ROOT, 'www'), loader: 'js' },
    bundle: true, format: 'esm', platform: 'browser', outfile: join(ROOT, 'www', 'vendor', 'sdk-client.js'), logLevel: 'warning',
  });

  const dir = await mkdtemp(join(tmpdir(), 'gw-e2e-'));
  const cfg = join(dir, 'gateway.json');
  await writeFile(cfg, JSON.stringify({ mcpServers: { everything: { command: 'node', args: [EVERYTHING, 'stdio'] } } }));
  gwPort = await freePort();
  gateway = spawn(GATEWAY_BIN, ['serve', '--config', cfg, '--listen', `127.0.0.1:${gwPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  gateway.stderr.on('data', (d) => { gatewayLog += d; });
  await waitReady(`http://127.0.0.1:${gwPort}`);

  web = createServer(async (req, res) => {
    const path = normalize(join(ROOT, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    if (!path.startsWith(ROOT)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch { res.writeHead(404).end(); }
  });
  webPort = await freePort();
  await new Promise((r) => web.listen(webPort, '127.0.0.1', r));

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(`http://127.0.0.1:${webPort}/www/e2e.html`);
  await page.waitForFunction(() => window.e2eReady === true, null, { timeout: 30000 }).catch((e) => {
    throw new Error(`the page did not load the package: ${e.message}\n${problems.join('\n')}`);
  });
});

after(async () => {
  await browser?.close();
  web?.close();
  if (gateway) { gateway.kill('SIGTERM'); await new Promise((r) => gateway.once('exit', r)); }
  assert.ok(!gatewayLog.includes('panicked'), gatewayLog);
});

for (const [transport, path] of [['http', '/mcp'], ['websocket', '/ws']]) {
  test(`the package in Chromium lists and calls tools of server-everything behind the native gateway over ${transport}`, async () => {
    const url = transport === 'http' ? `http://127.0.0.1:${gwPort}${path}` : `ws://127.0.0.1:${gwPort}${path}`;
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

test('the official TypeScript SDK Client works in the page through GatewayTransport', async () => {
  const r = await page.evaluate((u) => window.e2e.viaSdk(u), `http://127.0.0.1:${gwPort}/mcp`);
  assert.ok(r.tools.includes('native__everything__echo'));
  assert.ok(r.tools.includes('page__greet'));
  assert.equal(r.echo, 'Echo: from the SDK');
  assert.equal(r.greet, 'hello SDK');
  assert.equal(r.server.name, 'mcp-edge-gateway');
});
