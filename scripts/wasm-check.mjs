// Fails if any given wasm module imports from "env" (or anything at all: the core needs no host),
// then runs each test module's `main` (libtest) and fails on a trap (a failed test aborts).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

let failed = false;
for (const path of process.argv.slice(2)) {
  const mod = new WebAssembly.Module(readFileSync(path));
  const imports = WebAssembly.Module.imports(mod);
  const env = imports.filter((i) => i.module === 'env');
  const name = basename(path);
  if (env.length) {
    console.error(`FAIL ${name}: imports from env: ${env.map((i) => i.name).join(', ')}`);
    failed = true;
    continue;
  }
  if (imports.length) {
    console.error(`FAIL ${name}: the core must not import anything, found ${JSON.stringify(imports)}`);
    failed = true;
    continue;
  }
  const main = new WebAssembly.Instance(mod, {}).exports.main;
  // Golden fixtures read files, which wasm32-unknown-unknown cannot: they run natively only.
  if (!main || name.startsWith('golden_round_trip')) {
    console.log(`ok   ${name}: no imports`);
    continue;
  }
  try {
    const code = main(0, 0);
    if (code !== 0) throw new Error(`exit code ${code}`);
    console.log(`ok   ${name}: no imports, tests pass in wasm`);
  } catch (e) {
    console.error(`FAIL ${name}: tests failed in wasm (${e.message})`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
