// wasm-check.mjs [--glue] FILE...
// Fails if a module imports from "env". Without --glue a module must import nothing at all (the core
// needs no host) and its `main`, if any, is run (a failed assertion traps). With --glue (the npm
// package) imports may come only from the package's own wasm-bindgen JS glue.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const args = process.argv.slice(2);
const glue = args[0] === '--glue';
let failed = false;
for (const path of glue ? args.slice(1) : args) {
  const mod = new WebAssembly.Module(readFileSync(path));
  const imports = WebAssembly.Module.imports(mod);
  const name = basename(path);
  const env = imports.filter((i) => i.module === 'env');
  const foreign = glue ? imports.filter((i) => !i.module.endsWith('_bg.js') && i.module !== 'wbg') : imports;
  if (env.length || foreign.length) {
    console.error(`FAIL ${name}: unexpected imports: ${JSON.stringify(env.length ? env : foreign)}`);
    failed = true;
    continue;
  }
  const main = glue ? null : new WebAssembly.Instance(mod, {}).exports.main;
  if (!main) {
    console.log(`ok   ${name}: ${glue ? `${imports.length} imports, all from its wasm-bindgen glue` : 'no imports'}`);
    continue;
  }
  try {
    const code = main(0, 0);
    if (code !== 0) throw new Error(`exit code ${code}`);
    console.log(`ok   ${name}: no imports, runs in wasm`);
  } catch (e) {
    console.error(`FAIL ${name}: failed in wasm (${e.message})`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
