#!/usr/bin/env node
// A transparent stdio tap, for clients that launch their MCP server themselves (the Inspector CLI, the
// SDK's StdioClientTransport):
//   node stdio-tap.mjs --log FILE [--wait-ready a,b] -- COMMAND ARGS...
// runs COMMAND with ARGS, passes stdin to it and its stdout back unchanged, and appends each
// newline-delimited JSON-RPC message to FILE as a JSON line {dir: "in" | "out", msg} ("in": client ->
// server). COMMAND's stderr is passed through, and also appended to FILE.stderr.
// With --wait-ready, the client's input is held back until COMMAND's stderr (the gateway's log) has said
// `upstream "NAME" ready` for each NAME, so that a one-shot client lists a gateway whose upstreams have
// all been heard (as startTopology waits on /status). The tap exits with COMMAND's exit code; when its
// stdin closes, COMMAND's stdin is closed; SIGTERM/SIGINT are passed on.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
if (sep < 0 || sep === argv.length - 1) {
  console.error('usage: stdio-tap.mjs --log FILE [--wait-ready a,b] -- COMMAND ARGS...');
  process.exit(64);
}
const opts = argv.slice(0, sep);
const [command, ...args] = argv.slice(sep + 1);
const opt = (name) => { const i = opts.indexOf(name); return i >= 0 ? opts[i + 1] : undefined; };
const logFile = opt('--log');
if (!logFile) { console.error('stdio-tap: --log FILE is required'); process.exit(64); }
const waitFor = new Set((opt('--wait-ready') ?? '').split(',').filter(Boolean));

const record = (dir, line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { msg = { unparsed: line }; }
  fs.appendFileSync(logFile, `${JSON.stringify({ dir, t: Date.now(), msg })}\n`);
};
const lines = (onLine) => {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) onLine(line);
    }
  };
};

const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { try { child.kill(sig); } catch { /* gone */ } });
child.on('exit', (code, signal) => { process.exitCode = code ?? (signal ? 128 : 1); });
child.on('close', () => process.exit());
child.on('error', (e) => { console.error(`stdio-tap: cannot start ${command}: ${e.message}`); process.exit(127); });

const stderrFile = `${logFile}.stderr`;
let released = waitFor.size === 0;
const held = [];
const release = () => {
  released = true;
  for (const c of held.splice(0)) child.stdin.write(c);
};
child.stderr.on('data', (d) => {
  process.stderr.write(d);
  fs.appendFileSync(stderrFile, d);
});
child.stderr.on('data', lines((line) => {
  const m = line.match(/upstream "([^"]+)" ready/);
  if (m && waitFor.delete(m[1]) && waitFor.size === 0 && !released) release();
}));
// Nothing hangs forever: after 30 s the input goes through whatever the log said.
if (!released) setTimeout(() => { if (!released) { console.error(`stdio-tap: still not ready: ${[...waitFor]}`); release(); } }, 30000).unref();

child.stdout.on('data', (d) => process.stdout.write(d));
child.stdout.on('data', lines((line) => record('out', line)));
process.stdin.on('data', (d) => { if (released) child.stdin.write(d); else held.push(d); });
process.stdin.on('data', lines((line) => record('in', line)));
process.stdin.on('end', () => {
  const end = () => child.stdin.end();
  if (released) end(); else { const t = setInterval(() => { if (released) { clearInterval(t); end(); } }, 20); }
});
child.stdin.on('error', () => { /* the child went away; its exit ends the tap */ });
