// Shared by the browser tests and the browser benchmark: a native gateway in front of
// server-everything, a static server for the repository, Debian Chromium, and the bundled SDK.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, writeFile, mkdtemp, mkdir } from 'node:fs/promises';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, extname, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

export const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
export const EVERYTHING = join(ROOT, 'tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

export const freePort = () => new Promise((resolve) => {
  const s = netServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

/** Bundle the official SDK's client pieces for pages (its bare imports cannot load as is). */
export async function bundleSdk(name, exports) {
  await mkdir(join(ROOT, 'www', 'vendor'), { recursive: true });
  const contents = exports.map(([what, from]) => `export { ${what} } from '@modelcontextprotocol/sdk/${from}';`).join('\n');
  await build({
    stdin: { contents, resolveDir: join(ROOT, 'www'), loader: 'js' },
    bundle: true, format: 'esm', platform: 'browser', outfile: join(ROOT, 'www', 'vendor', name), logLevel: 'warning',
  });
}

/** `mcp-edge-gateway serve` in front of server-everything over stdio; resolves once it is ready. */
export async function startGateway(bin, { prefix, port: fixed } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'gw-www-'));
  const cfg = join(dir, 'gateway.json');
  const everything = { command: 'node', args: [EVERYTHING, 'stdio'], ...(prefix === false ? { prefix: false } : {}) };
  await writeFile(cfg, JSON.stringify({ mcpServers: { everything } }));
  const port = fixed ?? await freePort();
  const proc = spawn(bin, ['serve', '--config', cfg, '--listen', `127.0.0.1:${port}`, '--no-store'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const gw = { port, proc, log: '' };
  proc.stderr.on('data', (d) => { gw.log += d; });
  const end = Date.now() + 30000;
  while (Date.now() < end) {
    try {
      const s = await (await fetch(`http://127.0.0.1:${port}/status`)).json();
      if (s.upstreams.every((u) => u.state === 'ready')) return gw;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGTERM');
  throw new Error(`gateway not ready:\n${gw.log}`);
}

export async function stopGateway(gw) {
  if (!gw) return;
  gw.proc.kill('SIGTERM');
  await new Promise((r) => gw.proc.once('exit', r));
}

/** A static server for the repository root (pages, pkg/, vendor bundles). */
export async function startWeb() {
  const web = createServer(async (req, res) => {
    const path = normalize(join(ROOT, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    let body;
    try {
      if (!path.startsWith(ROOT)) throw new Error('outside');
      body = await readFile(path);
    } catch { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
  });
  const port = await freePort();
  await new Promise((r) => web.listen(port, '127.0.0.1', r));
  return { port, close: () => web.close() };
}

/** Debian Chromium, headless, with the flags this machine's closed network needs. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
