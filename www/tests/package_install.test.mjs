// The packed npm package, installed by name into a fresh project, imported through its `exports`
// (both "." and "./web") and used in Node: in-page tools, errors with codes, request().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));

test('the packed package installs by name and works through its exports', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-pkg-'));
  const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: join(ROOT, 'pkg') }).toString().trim().split('\n').pop();
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', join(dir, tgz)], { cwd: dir, stdio: 'ignore' });
  // Resolve through the exports map, as a bundler or Node would.
  const resolved = execFileSync('node', ['--input-type=module', '-e',
    "console.log(import.meta.resolve('mcp-edge-gateway'), import.meta.resolve('mcp-edge-gateway/web'))"], { cwd: dir }).toString().trim().split(' ');
  assert.ok(resolved.every((u) => u.endsWith('/node_modules/mcp-edge-gateway/index.js')), resolved.join(' '));
  const mod = await import(resolved[0]);
  const web = await import(resolved[1]);
  assert.equal(web.Gateway, mod.Gateway, '"./web" is the same module');
  const wasm = readFileSync(join(dir, 'node_modules', 'mcp-edge-gateway', 'mcp_edge_gateway_bg.wasm'));
  await mod.default({ module_or_path: wasm });
  const gw = await mod.Gateway.create({ local: { name: 'node', prefix: false } });
  gw.registerTool({ name: 'add', inputSchema: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } } },
    async ({ a, b }) => ({ sum: a + b }));
  gw.registerTool({ name: 'boom', inputSchema: { type: 'object' } }, () => { throw new Error('kaput'); });
  assert.deepEqual((await gw.listTools()).map((t) => t.name).sort(), ['add', 'boom']);
  assert.deepEqual((await gw.callTool('add', { a: 2, b: 40 })).structuredContent, { sum: 42 });
  const boom = await gw.callTool('boom', {});
  assert.equal(boom.isError, true);
  assert.equal(boom.content[0].text, 'kaput');
  await assert.rejects(gw.callTool('missing', {}), (e) => e instanceof Error && e.name === 'McpError' && e.code === -32602);
  await assert.rejects(gw.request({ jsonrpc: '2.0', id: 1 }), TypeError);
  const r = await gw.request({ jsonrpc: '2.0', id: 'x', method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 1 } } });
  assert.equal(r.id, 'x');
  assert.deepEqual(r.result.structuredContent, { sum: 2 });
  gw.close();
});
