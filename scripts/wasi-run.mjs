// Runs a wasm32-wasip1 program under Node's WASI (preview1), with this process's stdin, stdout and
// stderr: node scripts/wasi-run.mjs program.wasm [args...]; exits with the program's exit code.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [file, ...args] = argv.slice(2);
const wasi = new WASI({ version: "preview1", args: [file, ...args], env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
