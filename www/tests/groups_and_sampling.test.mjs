// Groups and the sampling chain in Chromium. Group failover: the page's Gateway has a group of two
// real upstreams (two native gateways, each in front of server-everything); the preferred one is
// stopped, the group's calls go to the other, and come back once it is restarted on its port. The
// sampling chain: server-everything (behind a native gateway) asks for sampling; a real small model
// (SmolLM2-135M behind llama.cpp's OpenAI-compatible server, from the cache scripts/setup-model.sh
// fills) answers through a `fetch` provider; once it is stopped, the page's onSampling answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, startGateway, stopGateway, startWeb, launchChromium } from './harness.mjs';

const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? join(ROOT, 'target', 'debug', 'mcp-edge-gateway');
const MODEL_CACHE = process.env.MCP_GW_MODEL_CACHE ?? join(homedir(), '.cache', 'mcp-edge-gateway', 'model');
let web, browser, page;
const gateways = [];
let model;

const status = async (gw) => (await fetch(`http://127.0.0.1:${gw.port}/status`)).json();
const calls = async (gw) => (await status(gw)).stats.clientRequests;
const waitFor = async (what, pred, ms = 20000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

/** llama.cpp's OpenAI-compatible server with the real model, on a free port. */
async function startModel() {
  const python = join(MODEL_CACHE, 'venv', 'bin', 'python');
  const gguf = join(MODEL_CACHE, 'SmolLM2-135M-Instruct.Q4_1.gguf');
  await access(python).catch(() => { throw new Error(`no model server at ${python}: run scripts/setup-model.sh`); });
  await access(gguf).catch(() => { throw new Error(`no model at ${gguf}: run scripts/setup-model.sh`); });
  const port = await freePort();
  const proc = spawn(python, ['-m', 'llama_cpp.server', '--model', gguf, '--model_alias', 'smollm2-135m', '--host', '127.0.0.1',
    '--port', String(port), '--n_ctx', '2048', '--interrupt_requests', 'False'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const m = { port, proc, log: '', url: `http://127.0.0.1:${port}/v1` };
  proc.stderr.on('data', (d) => { m.log += d; });
  await waitFor('the model server', async () => {
    if (proc.exitCode !== null) throw new Error(`the model server exited:\n${m.log.slice(-2000)}`);
    try { return (await fetch(`${m.url}/models`)).ok; } catch { return false; }
  }, 120000);
  return m;
}

before(async () => {
  await access(join(ROOT, 'pkg', 'mcp_edge_gateway_bg.wasm')).catch(() => { throw new Error('pkg/ is missing: run scripts/build-npm.sh'); });
  web = await startWeb();
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${web.port}/www/groups.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30000 });
});

after(async () => {
  await browser?.close();
  web?.close();
  model?.proc.kill('SIGTERM');
  for (const gw of gateways) {
    await stopGateway(gw);
    assert.ok(!gw.log.includes('panicked'), gw.log);
  }
});

test('a group in the page fails over between two real upstreams and returns to the preferred one', async () => {
  let local = await startGateway(GATEWAY_BIN);
  const cloud = await startGateway(GATEWAY_BIN);
  gateways.push(local, cloud);
  const tools = await page.evaluate(([a, b]) => window.t.group(a, b), [`http://127.0.0.1:${local.port}/mcp`, `http://127.0.0.1:${cloud.port}/mcp`]);
  assert.equal(tools.filter((n) => n === 'g__everything__echo').length, 1, tools.join(','));
  assert.ok(!tools.some((n) => n.startsWith('local__') || n.startsWith('cloud__')), 'the members\' own names are not exposed');

  const [l0, c0] = [await calls(local), await calls(cloud)];
  for (let i = 0; i < 5; i++) assert.deepEqual(await page.evaluate((m) => window.t.echo(m), `one ${i}`), { text: `Echo: one ${i}` });
  assert.equal(await calls(local) - l0, 5, 'the preferred member served every call');
  assert.equal(await calls(cloud) - c0, 0);
  assert.equal((await page.evaluate(() => window.t.status())).groups[0].serving, 'local');

  // The preferred member goes away: echo (annotated read-only) goes to the other member.
  const port = local.port;
  await stopGateway(local);
  gateways.splice(gateways.indexOf(local), 1);
  const c1 = await calls(cloud);
  for (let i = 0; i < 5; i++) assert.deepEqual(await page.evaluate((m) => window.t.echo(m), `two ${i}`), { text: `Echo: two ${i}` });
  assert.equal(await calls(cloud) - c1, 5);
  const st = await page.evaluate(() => window.t.status());
  assert.equal(st.groups[0].serving, 'cloud', JSON.stringify(st.groups));
  assert.ok(st.stats.failovers >= 1 || st.upstreams.find((u) => u.name === 'local').state !== 'ready', JSON.stringify(st.stats));

  // Back on its port: the page reconnects and traffic returns to it.
  local = await startGateway(GATEWAY_BIN, { port });
  gateways.push(local);
  await waitFor('the group to serve from local again', async () => (await page.evaluate(() => window.t.status())).groups[0].serving === 'local');
  const l1 = await calls(local);
  for (let i = 0; i < 3; i++) assert.deepEqual(await page.evaluate((m) => window.t.echo(m), `three ${i}`), { text: `Echo: three ${i}` });
  assert.equal(await calls(local) - l1, 3);
  await page.evaluate(() => window.t.close());
});

test('the sampling chain in the page: a real local model through fetch, then onSampling', async () => {
  const upstream = await startGateway(GATEWAY_BIN);
  gateways.push(upstream);
  model = await startModel();
  await page.evaluate(([u, p]) => window.t.sampling(u, p), [`http://127.0.0.1:${upstream.port}/mcp`, model.url]);
  const first = await page.evaluate(() => window.t.sample('Say hello'));
  assert.ok(first.text, JSON.stringify(first));
  assert.match(first.text, /"model": "smollm2-135m"/, first.text);
  assert.deepEqual(await page.evaluate(() => window.t.asked()), [], 'the page handler was not asked');
  const st = await page.evaluate(() => window.t.status());
  assert.equal(st.sampling.answers.local, 1, JSON.stringify(st.sampling));

  model.proc.kill('SIGTERM');
  await new Promise((r) => model.proc.once('exit', r));
  model = undefined;
  const second = await page.evaluate(() => window.t.sample('Say hello again'));
  assert.match(second.text ?? '', /answered in the page/, JSON.stringify(second));
  assert.match(second.text, /"model": "page-handler"/);
  assert.equal((await page.evaluate(() => window.t.asked())).length, 1);
  assert.equal((await page.evaluate(() => window.t.status())).sampling.failures.local, 1);
  await page.evaluate(() => window.t.close());
});
