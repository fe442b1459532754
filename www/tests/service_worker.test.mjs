// The service-worker example in Chromium: www/sw/index.html registers www/sw/sw.js (a module service
// worker importing the package); the official TypeScript SDK Client on the page then talks
// Streamable HTTP to ./mcp on the page's own origin, and the worker answers from its Gateway: a tool
// served by the worker itself and, behind it, server-everything behind the native gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, writeFile, mkdtemp, mkdir } from 'node:fs/promises';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, extname, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
const EVERYTHING = join(ROOT, 'tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
const freePort = () => new Promise((r) => { const s = netServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });

let gateway, web, browser, gwPort, webPort, log = '';

before(async () => {
  await mkdir(join(ROOT, 'www', 'vendor'), { recursive: true });
  await build({
    stdin: { contents: "export { Client } from '@modelcontextprotocol/sdk/client/index.js'; export { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';", resolveDir: join(ROOT, 'www'), loader: 'js' },
    bundle: true, format: 'esm', platform: 'browser', outfile: join(ROOT, 'www', 'vendor', 'sdk-bench.js'), logLevel: 'warning',
  });
  const dir = await mkdtemp(join(tmpdir(), 'gw-sw-'));
  const cfg = join(dir, 'gateway.json');
  await writeFile(cfg, JSON.stringify({ mcpServers: { everything: { command: 'node', args: [EVERYTHING, 'stdio'] } } }));
  gwPort = await freePort();
  gateway = spawn(GATEWAY_BIN, ['serve', '--config', cfg, '--listen', `127.0.0.1:${gwPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  gateway.stderr.on('data', (d) => { log += d; });
  for (let i = 0; i < 300; i++) {
    try { const s = await (await fetch(`http://127.0.0.1:${gwPort}/status`)).json(); if (s.upstreams.every((u) => u.state === 'ready')) break; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  web = createServer(async (req, res) => {
    const path = normalize(join(ROOT, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    let body;
    try { body = await readFile(path); } catch { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
  });
  webPort = await freePort();
  await new Promise((r) => web.listen(webPort, '127.0.0.1', r));
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
});

after(async () => {
  await browser?.close();
  web?.close();
  if (gateway) { gateway.kill('SIGTERM'); await new Promise((r) => gateway.once('exit', r)); }
});

test('a service worker answers the page\'s MCP endpoint from the package, in front of a native gateway', async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  const upstream = encodeURIComponent(`http://127.0.0.1:${gwPort}/mcp`);
  await page.goto(`http://127.0.0.1:${webPort}/www/sw/index.html?upstream=${upstream}`);
  await page.waitForFunction(() => window.swReady === true, null, { timeout: 30000 }).catch((e) => {
    throw new Error(`service worker did not start: ${e.message}\n${problems.join('\n')}`);
  });
  const r = await page.evaluate(() => window.demo());
  assert.equal(r.server.name, 'mcp-edge-gateway');
  assert.ok(r.tools.includes('sw__clock'), r.tools.join(','));
  assert.ok(r.tools.includes('board__everything__echo'), r.tools.join(','));
  assert.match(r.clock.now, /^\d{4}-\d\d-\d\dT/);
  assert.equal(r.echo, 'Echo: via the service worker');
});
