// The service-worker example in Chromium: www/sw/index.html registers www/sw/sw.js (a module service
// worker importing the package); the official TypeScript SDK Client on the page then talks
// Streamable HTTP to ./mcp on the page's own origin, and the worker answers from its Gateway: a tool
// served by the worker itself and, behind it, server-everything behind the native gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, bundleSdk, startGateway, stopGateway, startWeb, launchChromium } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
let gw, web, browser;

before(async () => {
  await bundleSdk('sdk-bench.js', [['Client', 'client/index.js'], ['StreamableHTTPClientTransport', 'client/streamableHttp.js']]);
  gw = await startGateway(GATEWAY_BIN);
  web = await startWeb();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  web?.close();
  await stopGateway(gw);
});

test('a service worker answers the page\'s MCP endpoint from the package, in front of a native gateway', async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  const upstream = encodeURIComponent(`http://127.0.0.1:${gw.port}/mcp`);
  await page.goto(`http://127.0.0.1:${web.port}/www/sw/index.html?upstream=${upstream}`);
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
