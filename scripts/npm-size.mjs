// Sizes of the built npm package, per entry: the default entry (`.`: wasm + its JS) and the service
// worker's (`./sw`: its own wasm + JS), raw and gzip, against the default entry's budget.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const dir = process.argv[2];
const size = (f) => readFileSync(join(dir, f)).length;
const gz = (f) => gzipSync(readFileSync(join(dir, f)), { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1) + ' KiB';
const BUDGET = 150 * 1024;
const entries = {
  '`.` (default)': { wasm: 'mcp_edge_gateway_bg.wasm', js: ['mcp_edge_gateway.js', 'index.js', 'transport.js'] },
  '`./sw`': { wasm: 'sw/mcp_edge_gateway_bg.wasm', js: ['sw/mcp_edge_gateway.js', 'sw.js'] },
};
// Loaded on demand by the default entry, only by pages that use WebMCP.
const lazy = ['webmcp.js'];
console.log('| npm entry | wasm raw | wasm gzip | JS gzip | wasm + JS gzip |\n|---|---|---|---|---|');
for (const [name, e] of Object.entries(entries)) {
  const jsGz = e.js.reduce((a, f) => a + gz(f), 0);
  const total = gz(e.wasm) + jsGz;
  const budget = name.includes('default') ? ` (budget 150 KiB: ${total <= BUDGET ? 'within' : 'OVER'})` : '';
  console.log(`| ${name} | ${kb(size(e.wasm))} | ${kb(gz(e.wasm))} | ${kb(jsGz)} | ${kb(total)}${budget} |`);
}
for (const f of lazy) console.log(`| \`${f}\` (loaded when used) | | | ${kb(gz(f))} | |`);
