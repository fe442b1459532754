// Starts the interop topology on free ports and tears it down:
//   upstream `everything` = server-everything over stdio (legacy era, launched by the gateway),
//   upstream `modern`     = the Python modern (2026-07-28) server over Streamable HTTP,
//   the gateway           = target/debug/mcp-edge-gateway serve, in front of both,
//   plus, only when a test asks for them (extraUpstreams), more upstreams, e.g. pagedUpstream().
// Every process started here is killed by PID in stop(). The gateway's stderr goes to a temp file,
// printed by dumpLogs() (call it when a test fails).
// With MCP_GW_TEST_AUTH=1 every gateway started here is authenticated: its config gets a
// `gateway.auth` section with a static bearer token (random per run, given to the gateway in its
// environment), and the helpers' own /status requests carry it; clients take authHeaders().
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startWireProxy } from './wire-proxy.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const INTEROP_DIR = path.resolve(here, '..', '..');
export const REPO_DIR = path.resolve(INTEROP_DIR, '..', '..');
export const GATEWAY_BIN = process.env.MCP_EDGE_GATEWAY_BIN ?? path.join(REPO_DIR, 'target', 'debug', 'mcp-edge-gateway');
export const PYTHON = path.join(INTEROP_DIR, '.venv', 'bin', 'python');
export const MODERN_SERVER = path.join(INTEROP_DIR, 'servers', 'modern_server.py');
export const EVERYTHING_JS = path.join(INTEROP_DIR, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
export const PAGED_SERVER = path.join(INTEROP_DIR, 'servers', 'paged_server.mjs');
export const MEMORY_JS = path.join(INTEROP_DIR, 'node_modules', '@modelcontextprotocol', 'server-memory', 'dist', 'index.js');
export const INSPECTOR_JS = path.join(INTEROP_DIR, 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');
/** node/common/stdio-tap.mjs: runs a command, passing stdio through and logging each JSON-RPC line (see there). */
export const STDIO_TAP = path.join(here, 'stdio-tap.mjs');
/** The client capabilities the gateway declares to its legacy upstreams (src/protocol.rs), for listing one directly. */
export const GATEWAY_UPSTREAM_CAPABILITIES = { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } };

// ---- Auth mode (MCP_GW_TEST_AUTH=1) ----
export const TEST_AUTH = process.env.MCP_GW_TEST_AUTH === '1';
export const AUTH_PRINCIPAL = 'interop-tests';
/** The variable the gateway reads the test token from (auth.tokens[].token_env). */
export const AUTH_TOKEN_ENV = 'MCP_GW_TEST_TOKEN';
const AUTH_TOKEN = TEST_AUTH ? randomBytes(32).toString('base64url') : undefined;

/** `{ authorization: 'Bearer <token>' }` in auth mode, `{}` otherwise: for every request to a gateway started here. */
export function authHeaders() {
  return TEST_AUTH ? { authorization: `Bearer ${AUTH_TOKEN}` } : {};
}

/**
 * A gateway config (mcpServers JSON) as the gateway gets it: in auth mode with `gateway.auth` (static
 * token for AUTH_PRINCIPAL, scopes mcp and mcp:admin, so /status and /admin work too), unless it has
 * an auth section of its own; otherwise unchanged.
 */
export function withAuth(config) {
  if (!TEST_AUTH || config.gateway?.auth) return config;
  return {
    ...config,
    gateway: {
      ...(config.gateway ?? {}),
      auth: {
        scopes: ['mcp'],
        admin_scopes: ['mcp:admin'],
        tokens: [{ principal: AUTH_PRINCIPAL, token_env: AUTH_TOKEN_ENV, scopes: ['mcp', 'mcp:admin'] }],
      },
    },
  };
}

/** The gateway's environment: ours, RUST_LOG=info by default, and in auth mode the token. */
export function gatewayEnv() {
  return { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info', ...(TEST_AUTH ? { [AUTH_TOKEN_ENV]: AUTH_TOKEN } : {}) };
}

/**
 * An extraUpstreams entry for servers/paged_server.mjs over stdio. It logs every list request it gets
 * (JSON lines: method, cursor, nextCursor) to topo.upstreamLogs[name]; read them with readJsonLines().
 */
export function pagedUpstream() {
  return (topo, name) => {
    const log = path.join(topo.tmp, `${name}.requests.jsonl`);
    fs.writeFileSync(log, '');
    topo.upstreamLogs[name] = log;
    return { command: process.execPath, args: [PAGED_SERVER, '--log', log] };
  };
}

/** The JSON lines of a file written by an upstream (e.g. topo.upstreamLogs.paged). */
export function readJsonLines(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function waitForLine(child, stream, re, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { cleanup(); reject(new Error(`${what}: no line matching ${re} within ${timeoutMs} ms; got: ${buf}`)); }, timeoutMs);
    const onData = (d) => {
      buf += d.toString();
      const m = buf.match(re);
      if (m) { cleanup(); resolve(m); }
    };
    const onExit = (code, sig) => { cleanup(); reject(new Error(`${what} exited early (code ${code}, signal ${sig}); output: ${buf}`)); };
    function cleanup() { clearTimeout(timer); stream.off('data', onData); child.off('exit', onExit); }
    stream.on('data', onData);
    child.on('exit', onExit);
  });
}

async function killProc(child, name) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try { process.kill(child.pid, 'SIGTERM'); } catch { return; }
  const done = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
  if (!done) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    await Promise.race([exited, sleep(2000)]);
  }
  void name;
}

/**
 * Start modern upstream + gateway (which spawns everything over stdio).
 * With proxyModern, the gateway reaches the modern upstream through a recording proxy (topo.modernProxy.log).
 * extraUpstreams ({ name: config | (topo, name) => config }) adds upstreams to the gateway's config, after
 * `everything` and `modern`; the topology waits for them to be ready too. Without it the topology is the
 * usual two upstreams.
 * Returns { url, statusUrl, gatewayPort, modernPort, modernProxy?, upstreamLogs, stop(), dumpLogs(), gatewayStderr() }.
 */
export async function startTopology({ readyTimeoutMs = 30000, proxyModern = false, extraUpstreams = {} } = {}) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-node-interop-'));
  const procs = [];
  const topo = {
    tmp,
    upstreamLogs: {},
    gatewayLog: path.join(tmp, 'gateway.stderr.log'),
    modernLog: path.join(tmp, 'modern.stderr.log'),
    gatewayStderr() { try { return fs.readFileSync(topo.gatewayLog, 'utf8'); } catch { return ''; } },
    dumpLogs() {
      console.error(`----- gateway stderr (${topo.gatewayLog}) -----\n${topo.gatewayStderr()}\n----- end gateway stderr -----`);
      try { console.error(`----- modern upstream stderr -----\n${fs.readFileSync(topo.modernLog, 'utf8')}\n-----`); } catch { /* none */ }
      for (const [name, file] of Object.entries(topo.upstreamLogs)) {
        try { console.error(`----- upstream ${name} log (${file}) -----\n${fs.readFileSync(file, 'utf8')}-----`); } catch { /* none */ }
      }
    },
    async stop() {
      for (const p of procs.reverse()) await killProc(p.child, p.name);
      procs.length = 0;
      if (topo.modernProxy) { await topo.modernProxy.close(); topo.modernProxy = undefined; }
      if (!process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
  try {
    // 1. modern upstream: prints READY <port>
    const modernErr = fs.openSync(topo.modernLog, 'w');
    const modern = spawn(PYTHON, [MODERN_SERVER, '--port', '0'], { stdio: ['ignore', 'pipe', modernErr] });
    fs.closeSync(modernErr);
    procs.push({ child: modern, name: 'modern' });
    const m = await waitForLine(modern, modern.stdout, /READY (\d+)/, 20000, 'modern upstream');
    topo.modernPort = Number(m[1]);
    modern.stdout.resume();
    // optional: observe the gateway -> modern upstream wire through a recording proxy
    let modernUrlPort = topo.modernPort;
    if (proxyModern) {
      topo.modernProxy = await startWireProxy(topo.modernPort);
      modernUrlPort = topo.modernProxy.port;
    }

    // 2. gateway
    const config = {
      mcpServers: {
        everything: { command: process.execPath, args: [EVERYTHING_JS, 'stdio'] },
        modern: { url: `http://127.0.0.1:${modernUrlPort}/mcp` },
      },
    };
    for (const [name, cfg] of Object.entries(extraUpstreams)) {
      if (name in config.mcpServers) throw new Error(`extraUpstreams: ${name} is already an upstream`);
      config.mcpServers[name] = typeof cfg === 'function' ? cfg(topo, name) : cfg;
    }
    const upstreamNames = Object.keys(config.mcpServers);
    const configPath = path.join(tmp, 'gateway.json');
    fs.writeFileSync(configPath, JSON.stringify(withAuth(config), null, 2));
    topo.gatewayPort = await freePort();
    const gwErr = fs.openSync(topo.gatewayLog, 'w');
    const gw = spawn(GATEWAY_BIN, ['serve', '--config', configPath, '--listen', `127.0.0.1:${topo.gatewayPort}`, '--no-store'], {
      stdio: ['ignore', 'ignore', gwErr],
      env: gatewayEnv(),
    });
    fs.closeSync(gwErr);
    procs.push({ child: gw, name: 'gateway' });
    topo.gateway = gw;
    topo.url = new URL(`http://127.0.0.1:${topo.gatewayPort}/mcp`);
    topo.statusUrl = `http://127.0.0.1:${topo.gatewayPort}/status`;

    // 3. wait until /status shows every upstream ready
    const deadline = Date.now() + readyTimeoutMs;
    let last = '';
    for (;;) {
      if (gw.exitCode !== null) throw new Error(`gateway exited with code ${gw.exitCode}`);
      try {
        const r = await fetch(topo.statusUrl, { headers: authHeaders() });
        last = await r.text();
        if (r.ok && allReady(JSON.parse(last), upstreamNames)) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`gateway upstreams not ready within ${readyTimeoutMs} ms; last /status: ${last}`);
      await sleep(100);
    }
    topo.status = JSON.parse(last);
    return topo;
  } catch (e) {
    topo.dumpLogs();
    await topo.stop();
    throw e;
  }
}

function allReady(status, names) {
  const text = JSON.stringify(status);
  // Accept either {upstreams:[{name,state}]} or {upstreams:{name:{state}}} shapes.
  const list = Array.isArray(status?.upstreams) ? status.upstreams
    : status?.upstreams && typeof status.upstreams === 'object' ? Object.entries(status.upstreams).map(([name, v]) => ({ name, ...v }))
      : Array.isArray(status) ? status : null;
  if (!list) return false;
  return names.every((n) => list.some((u) => u.name === n && u.state === 'ready')) && text.length > 0;
}

/**
 * Page through a v1 list method, following nextCursor; returns { items, pages, pageItems, cursors }:
 * pageItems[i] holds the items of page i and cursors[i] the cursor sent for page i (undefined for the first).
 */
export async function listAll(fn, key) {
  const items = [];
  const pageItems = [];
  const cursors = [];
  let cursor;
  let pages = 0;
  do {
    cursors.push(cursor);
    const r = await fn(cursor ? { cursor } : {});
    pages++;
    items.push(...r[key]);
    pageItems.push(r[key]);
    cursor = r.nextCursor;
    if (pages > 100) throw new Error(`more than 100 pages of ${key}`);
  } while (cursor);
  return { items, pages, pageItems, cursors };
}

export function textOf(result) {
  return (result?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

export { sleep };

/** Direct children of a process, from the children files of /proc/<pid>/task (as children_of in python/conftest.py). */
export function childrenOf(pid) {
  const kids = [];
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      try { kids.push(...fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number)); } catch { /* thread gone */ }
    }
  } catch { /* process gone */ }
  return kids;
}

/** A process's command line, space-separated ('' once it is gone). */
export function cmdlineOf(pid) {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`).toString('utf8').split('\0').join(' ').trim(); } catch { return ''; }
}

/**
 * server-everything over Streamable HTTP (its `streamableHttp` transport, PORT from the environment) on a
 * free port, with `env` added to its environment. Its output goes to `${tmp}/${name}.log`.
 * Returns { port, url, child, log, stop() }.
 */
export async function startEverythingHttp(tmp, { name = 'everything-http', env = {}, timeoutMs = 20000 } = {}) {
  const port = await freePort();
  const log = path.join(tmp, `${name}.log`);
  const child = spawn(process.execPath, [EVERYTHING_JS, 'streamableHttp'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env, PORT: String(port) },
  });
  const out = fs.createWriteStream(log);
  child.stdout.pipe(out);
  child.stderr.on('data', (d) => out.write(d));
  const srv = { port, url: `http://127.0.0.1:${port}/mcp`, child, log, async stop() { await killProc(child, name); out.end(); } };
  try {
    await waitForLine(child, child.stderr, /listening on port (\d+)/, timeoutMs, `${name} (server-everything streamableHttp)`);
  } catch (e) {
    await srv.stop();
    throw e;
  }
  return srv;
}

/**
 * `mcp-edge-gateway serve --no-store` with the given config object (mcpServers JSON or any other shape
 * the gateway reads; in auth mode withAuth(config)), on a free port. Waits until /status shows each of `readyNames` ready and, if
 * given, `until(status)` is true. Returns { url, statusUrl, gateway, gatewayLog, status(), gatewayStderr(),
 * dumpLogs(), stop() }; stop() kills the gateway (and so its stdio children) by PID.
 */
export async function startGateway(tmp, config, { readyNames = Object.keys(config.mcpServers ?? {}), until, readyTimeoutMs = 30000, name = 'gateway' } = {}) {
  const configPath = path.join(tmp, `${name}.json`);
  fs.writeFileSync(configPath, JSON.stringify(withAuth(config), null, 2));
  const port = await freePort();
  const gatewayLog = path.join(tmp, `${name}.stderr.log`);
  const errFd = fs.openSync(gatewayLog, 'w');
  const gw = spawn(GATEWAY_BIN, ['serve', '--config', configPath, '--listen', `127.0.0.1:${port}`, '--no-store'], {
    stdio: ['ignore', 'ignore', errFd],
    env: gatewayEnv(),
  });
  fs.closeSync(errFd);
  const g = {
    port,
    gateway: gw,
    gatewayLog,
    configPath,
    url: new URL(`http://127.0.0.1:${port}/mcp`),
    statusUrl: `http://127.0.0.1:${port}/status`,
    async status() { return (await fetch(g.statusUrl, { headers: authHeaders() })).json(); },
    gatewayStderr() { try { return fs.readFileSync(gatewayLog, 'utf8'); } catch { return ''; } },
    dumpLogs() { console.error(`----- ${name} stderr (${gatewayLog}) -----\n${g.gatewayStderr()}\n----- end ${name} stderr -----`); },
    async stop() { await killProc(gw, name); },
  };
  const deadline = Date.now() + readyTimeoutMs;
  let last = '';
  try {
    for (;;) {
      if (gw.exitCode !== null) throw new Error(`${name} exited with code ${gw.exitCode}`);
      try {
        const r = await fetch(g.statusUrl, { headers: authHeaders() });
        last = await r.text();
        const st = JSON.parse(last);
        if (r.ok && allReady(st, readyNames) && (!until || until(st))) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`${name}: not ready within ${readyTimeoutMs} ms; last /status: ${last}`);
      await sleep(100);
    }
  } catch (e) {
    g.dumpLogs();
    await g.stop();
    throw e;
  }
  return g;
}
