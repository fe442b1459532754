// Browser benchmark in headless Chromium: per-call cost of gateway.request to an in-page tool, and a
// tools/call through the package to the native host next to the official TypeScript SDK client
// making the same call to the same host. Interleaved rounds, medians. Prints markdown.
// Usage: node bench/browser_bench.mjs GATEWAY_BIN EVERYTHING_JS [calls] [rounds]
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, writeFile, mkdtemp, mkdir } from 'node:fs/promises';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, extname, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const [gatewayBin, everything, callsArg, roundsArg] = process.argv.slice(2);
const CALLS = Number(callsArg ?? 500);
const ROUNDS = Number(roundsArg ?? 5);
const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
const freePort = () => new Promise((r) => { const s = netServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

await mkdir(join(ROOT, 'www', 'vendor'), { recursive: true });
await build({
  stdin: { contents: "export { Client } from '@modelcontextprotocol/sdk/client/index.js'; export { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';", resolveDir: join(ROOT, 'www'), loader: 'js' },
  bundle: true, format: 'esm', platform: 'browser', outfile: join(ROOT, 'www', 'vendor', 'sdk-bench.js'), logLevel: 'warning',
});
const dir = await mkdtemp(join(tmpdir(), 'gw-bench-'));
const cfg = join(dir, 'gateway.json');
await writeFile(cfg, JSON.stringify({ mcpServers: { everything: { command: 'node', args: [everything, 'stdio'], prefix: false } } }));
const gwPort = await freePort();
const gw = spawn(gatewayBin, ['serve', '--config', cfg, '--listen', `127.0.0.1:${gwPort}`], { stdio: 'ignore' });
for (let i = 0; i < 300; i++) {
  try { const s = await (await fetch(`http://127.0.0.1:${gwPort}/status`)).json(); if (s.upstreams.every((u) => u.state === 'ready')) break; } catch {}
  await new Promise((r) => setTimeout(r, 100));
}
const web = createServer(async (req, res) => {
  const path = normalize(join(ROOT, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
  let body;
  try { body = await readFile(path); } catch { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
});
const webPort = await freePort();
await new Promise((r) => web.listen(webPort, '127.0.0.1', r));
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${webPort}/www/bench/bench.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 30000 });
  const url = `http://127.0.0.1:${gwPort}/mcp`;
  const r = { inPage: [], pkg: [], sdk: [] };
  for (let i = 0; i < ROUNDS; i++) {
    r.inPage.push(await page.evaluate((n) => window.bench.inPage(n), CALLS * 4));
    r.pkg.push(await page.evaluate(([u, n]) => window.bench.viaPackage(u, n), [url, CALLS]));
    r.sdk.push(await page.evaluate(([u, n]) => window.bench.viaSdk(u, n), [url, CALLS]));
  }
  const [inPage, pkg, sdk] = [median(r.inPage), median(r.pkg), median(r.sdk)];
  console.log(`Headless Chromium, ${ROUNDS} interleaved rounds, medians:\n`);
  console.log('| browser case | per call |\n|---|---|');
  console.log(`| gateway.request → in-page tool (${CALLS * 4} calls) | ${inPage.toFixed(1)} µs |`);
  console.log(`| tools/call through the package → native host → stdio echo (${CALLS} calls) | ${(pkg / 1000).toFixed(3)} ms |`);
  console.log(`| same call with the official TS SDK client → native host (${CALLS} calls) | ${(sdk / 1000).toFixed(3)} ms |`);
  console.log(`| package vs SDK client | ${(pkg / sdk).toFixed(2)}× the time |`);
} finally {
  await browser.close();
  web.close();
  gw.kill('SIGTERM');
}
