// Sizes of the built npm package: wasm raw and gzip, JS glue gzip, and the total against the budget.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const dir = process.argv[2];
const size = (f) => readFileSync(join(dir, f)).length;
const gz = (f) => gzipSync(readFileSync(join(dir, f)), { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1) + ' KiB';
const wasm = 'mcp_edge_gateway_bg.wasm';
const js = ['mcp_edge_gateway.js', 'index.js', 'transport.js'];
const jsGz = js.reduce((a, f) => a + gz(f), 0);
const total = gz(wasm) + jsGz;
const BUDGET = 150 * 1024;
console.log('| npm package | size |\n|---|---|');
console.log(`| wasm raw | ${kb(size(wasm))} |`);
console.log(`| wasm gzip | ${kb(gz(wasm))} |`);
console.log(`| JS glue raw / gzip | ${kb(js.reduce((a, f) => a + size(f), 0))} / ${kb(jsGz)} |`);
console.log(`| wasm + JS gzip | ${kb(total)} (budget 150 KiB: ${total <= BUDGET ? 'within' : 'OVER'}) |`);
