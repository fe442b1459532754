// WebMCP both ways in Chromium's own WebMCP (document.modelContext; Chromium 146+ has it behind
// --enable-features=WebMCPTesting, with getTools()/executeTool() for agents and tests).
// (a) gateway.exposeToWebMcp(): the aggregate of a real upstream (a native gateway in front of
//     server-everything) and an in-page tool is registered in document.modelContext; executeTool runs
//     the upstream's tool; the registrations follow the gateway's tool list and close() removes them.
// (b) Gateway.create({ webmcp: true }): tools the page registered with WebMCP, before and after the
//     gateway was made, are tools of the gateway that the official TypeScript SDK Client (through
//     GatewayTransport) lists and calls; list_changed reaches it on toolchange; nothing loops back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, bundleSdk, startGateway, stopGateway, startWeb } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
let web, browser, page, upstream;
const problems = []; // page errors (unhandled rejections too) and the package's warnings

const waitFor = async (what, pred, ms = 10000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
const call = (fn, ...args) => page.evaluate(([f, a]) => window.t[f](...a), [fn, args]);

before(async () => {
  await access(join(ROOT, 'pkg', 'mcp_edge_gateway_bg.wasm')).catch(() => { throw new Error('pkg/ is missing: run scripts/build-npm.sh'); });
  await bundleSdk('sdk-webmcp.js', [['Client', 'client/index.js'], ['ToolListChangedNotificationSchema', 'types.js']]);
  [upstream, web] = await Promise.all([startGateway(GATEWAY_BIN), startWeb()]);
  // harness.mjs's launchChromium() flags, plus WebMCP.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-features=WebMCPTesting'],
  });
  page = await browser.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'warning' && m.text().includes('[mcp-edge-gateway]')) problems.push(m.text()); });
  await page.goto(`http://127.0.0.1:${web.port}/www/webmcp.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 15000 });
});

after(async () => {
  await browser?.close();
  web?.close();
  await stopGateway(upstream);
  if (upstream) assert.ok(!upstream.log.includes('panicked'), upstream.log);
});

test('Chromium has its own WebMCP here (no polyfill)', async () => {
  const s = await call('support');
  assert.deepEqual(s, { documentModelContext: true, navigatorModelContext: false, getTools: 'function', executeTool: 'function', native: true });
});

test('exposeToWebMcp: the aggregate of a real upstream and an in-page tool, in document.modelContext', async () => {
  const { gateway, exposed } = await call('expose', `http://127.0.0.1:${upstream.port}/mcp`);
  const names = gateway.map((t) => t.name);
  assert.ok(names.includes('native__everything__echo'), names.join(','));
  assert.ok(names.includes('page__greet'));
  assert.deepEqual([...exposed].sort(), [...names].sort(), 'every tool of the gateway is exposed');

  const tools = await call('webmcpTools');
  assert.deepEqual(tools.map((t) => t.name).sort(), [...names].sort(), 'and an agent lists exactly those');
  const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
  // Annotations carried over: readOnlyHint as the gateway says; the upstream's output is untrusted,
  // the page's own tool's is not.
  for (const t of gateway) assert.equal(byName[t.name].readOnlyHint, t.readOnlyHint, t.name);
  assert.equal(byName.native__everything__echo.untrustedContentHint, true);
  assert.equal(byName.page__greet.untrustedContentHint, false);
  assert.equal(byName.page__greet.readOnlyHint, true);
  assert.equal(byName.page__greet.title, 'Greet');
  assert.equal(byName.page__greet.description, 'Greets someone');
  assert.deepEqual(byName.page__greet.inputSchema.required, ['who']);
  assert.equal(byName.native__everything__echo.inputSchema.type, 'object');

  // An agent's call runs the upstream's tool (server-everything, behind the native gateway).
  const echo = await call('run', 'native__everything__echo', { message: 'hi from WebMCP' });
  assert.equal(echo.result?.content?.[0]?.text, 'Echo: hi from WebMCP', JSON.stringify(echo));
  const greet = await call('run', 'page__greet', { who: 'Ada' });
  assert.equal(greet.result?.content?.[0]?.text, 'Hello, Ada!', JSON.stringify(greet));

  // The registrations follow the gateway's list: a tool registered later appears, and goes.
  const changes = await call('toolchanges');
  assert.ok((await call('addLocal', 'late')).includes('page__late'));
  await waitFor('page__late in WebMCP', async () => (await call('webmcpTools')).some((t) => t.name === 'page__late'));
  assert.deepEqual((await call('run', 'page__late', {})).result?.structuredContent, { late: 'late' });
  assert.ok(!(await call('removeLocal')).includes('page__late'));
  await waitFor('page__late gone from WebMCP', async () => !(await call('webmcpTools')).some((t) => t.name === 'page__late'));
  assert.ok(await call('toolchanges') >= changes + 2, 'toolchange fired for each');
  assert.equal((await call('webmcpTools')).length, names.length, 'the others stayed registered');

  // close() unregisters everything (through each registration's AbortSignal).
  assert.deepEqual(await call('closeExposure'), []);
  await waitFor('no tools in WebMCP', async () => (await call('webmcpTools')).length === 0);
  await call('closeGateway');
});

test('Gateway.create({ webmcp: true }): page WebMCP tools are callable by an MCP client of the gateway', async () => {
  await call('registerPageTool', 'add', 'add');
  await call('registerPageTool', 'fail', 'fail');
  await call('importing', `http://127.0.0.1:${upstream.port}/mcp`);

  let tools = await call('clientTools');
  const add = tools.find((t) => t.name === 'page__add');
  assert.ok(add, tools.map((t) => t.name).join(','));
  assert.equal(add.description, 'Adds two numbers');
  assert.deepEqual(add.inputSchema.required, ['a', 'b']);
  assert.equal(add.annotations?.readOnlyHint, true);
  assert.deepEqual(add.fromWebMcp, { name: 'add', origin: `http://127.0.0.1:${web.port}` });
  assert.ok(tools.some((t) => t.name === 'native__everything__echo'), 'beside the real upstream');

  assert.deepEqual(await call('clientCall', 'page__add', { a: 2, b: 40 }), { text: '42', isError: false, structuredContent: null });
  const failed = await call('clientCall', 'page__fail', {});
  assert.equal(failed.isError, true, JSON.stringify(failed));

  // A WebMCP tool registered later: toolchange → the gateway's list changes → the client is told.
  const before = await call('listChanged');
  await call('registerPageTool', 'shout', 'shout');
  await waitFor('list_changed at the client', async () => (await call('listChanged')) > before);
  tools = await call('clientTools');
  const shout = tools.find((t) => t.name === 'page__shout');
  assert.ok(shout, tools.map((t) => t.name).join(','));
  assert.equal(shout.title, 'Shout');
  const loud = await call('clientCall', 'page__shout', { text: 'quiet please' });
  assert.deepEqual(loud.structuredContent, { loud: 'QUIET PLEASE' }, JSON.stringify(loud));

  // Unregistered in WebMCP (its signal aborted): gone from the gateway.
  await call('unregisterPageTool', 'shout');
  await waitFor('page__shout gone', async () => !(await call('clientTools')).some((t) => t.name === 'page__shout'));
  assert.match((await call('clientCall', 'page__shout', { text: 'x' })).error ?? '', /-32602/);
});

test('both ways at once: nothing loops back', async () => {
  // The importing gateway now exposes its own tools to WebMCP as well.
  const { exposed, gateway } = await call('exposeImporting');
  assert.ok(exposed.includes('native__everything__echo'));
  assert.ok(!exposed.includes('page__add'), 'a tool that came from WebMCP is not registered there again');
  await new Promise((r) => setTimeout(r, 300)); // let toolchange and list_changed run their course
  const webmcp = (await call('webmcpTools')).map((t) => t.name);
  assert.equal(webmcp.filter((n) => n === 'add').length, 1);
  assert.ok(!webmcp.some((n) => n.startsWith('page__')), webmcp.join(','));
  const now = await call('gatewayTools');
  assert.deepEqual([...now].sort(), [...gateway].sort(), 'the gateway did not import what it exposed');
  assert.ok(!now.some((n) => n.startsWith('page__native__')), now.join(','));
  // The page's tool is still the page's, and the upstream's still runs from WebMCP.
  assert.equal((await call('clientCall', 'page__add', { a: 1, b: 2 })).text, '3');
  assert.equal((await call('run', 'native__everything__echo', { message: 'round trip' })).result?.content?.[0]?.text, 'Echo: round trip');
  // Closing the gateway takes its registrations out of WebMCP; the page's own stay.
  await call('closeImporting');
  await waitFor('only the page tools left', async () => {
    const left = (await call('webmcpTools')).map((t) => t.name).sort();
    return left.join() === 'add,fail';
  });
  assert.deepEqual(problems, [], 'no failed registration, page error or unhandled rejection');
});
