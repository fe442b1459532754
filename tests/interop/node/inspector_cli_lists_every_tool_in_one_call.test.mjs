// The MCP Inspector CLI (@modelcontextprotocol/inspector, pinned in package.json) launches the gateway as
// its stdio server, the way a desktop app does, with a Claude-Desktop-style mcpServers file naming two
// stdio upstreams: server-everything and server-memory. Its one `tools/list` must hold every tool of
// both: the gateway merges the upstreams' first pages into one page (up to gateway.listPageSize, 500 by
// default), so even a client that never follows nextCursor sees everything. The Inspector itself would
// follow a nextCursor, so the stdio between it and the gateway goes through node/common/stdio-tap.mjs,
// which records the wire: one tools/list request, one answer, no nextCursor.
// Then the TypeScript SDK v1 client, with listPageSize 5, has to follow cursors over more than one page
// and gets the same tools, each once.
// The truth for both: each server listed directly with the SDK client, declaring what the gateway
// declares to its upstreams (server-everything registers some tools only for such clients).
// Last, the Inspector CLI over Streamable HTTP (`serve`): the same tools, and a call. With
// MCP_GW_TEST_AUTH=1 that gateway wants a bearer token, which the Inspector sends with --header.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import {
  EVERYTHING_JS, GATEWAY_BIN, GATEWAY_UPSTREAM_CAPABILITIES, INSPECTOR_JS, INTEROP_DIR, MEMORY_JS, STDIO_TAP,
  authHeaders, listAll, readJsonLines, startGateway,
} from './common/topology.mjs';

const UPSTREAMS = ['everything', 'memory'];

function upstreamConfig(tmp) {
  return {
    everything: { command: process.execPath, args: [EVERYTHING_JS, 'stdio'] },
    memory: { command: process.execPath, args: [MEMORY_JS], env: { MEMORY_FILE_PATH: path.join(tmp, 'memory.jsonl') } },
  };
}

/** The gateway in stdio mode behind the tap, as [command, ...args] for a client that launches it. */
function tappedGateway(tmp, name, gatewayConfig) {
  const configPath = path.join(tmp, `${name}.json`);
  fs.writeFileSync(configPath, JSON.stringify(gatewayConfig, null, 2));
  const wire = path.join(tmp, `${name}.wire.jsonl`);
  fs.writeFileSync(wire, '');
  return {
    configPath,
    wire,
    stderrLog: `${wire}.stderr`,
    argv: [process.execPath, STDIO_TAP, '--log', wire, '--wait-ready', UPSTREAMS.join(','), '--',
      GATEWAY_BIN, 'stdio', '--config', configPath, '--no-store'],
  };
}

/** Run a command to its end (killed after timeoutMs); resolves { code, signal, stdout, stderr }. */
function run(argv, { timeoutMs = 30000, env = process.env, cwd = INTEROP_DIR } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/** List one stdio server's tools directly (following cursors), as the gateway's upstream connection would. */
async function listDirectly(cfg, stderrFile) {
  const client = new Client({ name: 'direct-lister', version: '0.0.1' }, { capabilities: GATEWAY_UPSTREAM_CAPABILITIES });
  // roots are declared, so a server asking for them must get an answer
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [] }));
  const transport = new StdioClientTransport({ command: cfg.command, args: cfg.args, env: { ...process.env, ...cfg.env }, stderr: 'pipe' });
  transport.stderr?.on('data', (d) => fs.appendFileSync(stderrFile, d));
  await client.connect(transport);
  try {
    return (await listAll((p) => client.listTools(p), 'tools')).items.map((t) => t.name);
  } finally {
    await client.close().catch(() => {});
  }
}

const dump = (what, file) => {
  try { console.error(`----- ${what} (${file}) -----\n${fs.readFileSync(file, 'utf8')}\n-----`); } catch { /* none */ }
};

describe('the Inspector CLI lists every tool of both upstreams in one tools/list', { timeout: 60000 }, () => {
  let tmp;
  const direct = {};
  const logs = [];
  const guard = (fn) => async (t) => {
    try { await fn(t); } catch (e) {
      console.error(`\n### test failed: ${t.name}`);
      for (const [what, file] of logs) dump(what, file);
      throw e;
    }
  };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-node-inspector-'));
    const cfg = upstreamConfig(tmp);
    for (const name of UPSTREAMS) {
      const err = path.join(tmp, `${name}.direct.stderr`);
      logs.push([`${name} listed directly, stderr`, err]);
      direct[name] = await listDirectly(cfg[name], err);
    }
  }, { timeout: 30000 });
  after(() => { if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true }); });

  let inspectorNames;

  it('one tools/list through the Inspector CLI holds every tool of both servers, prefixed, with no nextCursor', { timeout: 30000 }, guard(async () => {
    // preconditions: both servers have tools, and together more than the SDK test's page size below
    assert.ok(direct.everything.length >= 10, `server-everything lists ${direct.everything.length} tools: ${direct.everything}`);
    assert.ok(direct.memory.length >= 5, `server-memory lists ${direct.memory.length} tools: ${direct.memory}`);

    const gw = tappedGateway(tmp, 'inspector-gateway', { mcpServers: upstreamConfig(tmp) });
    logs.push(['gateway stderr (Inspector run)', gw.stderrLog], ['stdio wire (Inspector run)', gw.wire]);
    // mcp-inspector --cli --format json --method tools/list -- <node> stdio-tap.mjs ... -- mcp-edge-gateway stdio --config FILE --no-store
    const argv = [process.execPath, INSPECTOR_JS, '--cli', '--format', 'json', '--method', 'tools/list', '--', ...gw.argv];
    const r = await run(argv, { env: { ...process.env, HOME: tmp, MCP_CATALOG_PATH: path.join(tmp, 'inspector-catalog.json') } });
    const detail = `Inspector exit ${r.code} (${r.signal}); stdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(-4000)}`;
    assert.equal(r.code, 0, detail);
    const out = JSON.parse(r.stdout);
    const tools = out.result?.tools;
    assert.ok(Array.isArray(tools), `no result.tools in the Inspector's output: ${detail}`);
    inspectorNames = tools.map((t) => t.name);

    const want = [...direct.everything.map((n) => `everything__${n}`), ...direct.memory.map((n) => `memory__${n}`)];
    assert.equal(new Set(inspectorNames).size, inspectorNames.length, `a tool listed twice: ${inspectorNames}`);
    assert.deepEqual([...inspectorNames].sort(), [...want].sort(), 'the Inspector\'s tools vs both servers\' own lists, prefixed');
    assert.equal(inspectorNames.filter((n) => n.startsWith('everything__')).length, direct.everything.length);
    assert.equal(inspectorNames.filter((n) => n.startsWith('memory__')).length, direct.memory.length);
    assert.ok(tools.every((t) => t.inputSchema?.type === 'object'), 'every tool keeps its inputSchema');

    // The wire: the Inspector asked once and got everything in that one answer.
    const wire = readJsonLines(gw.wire);
    const asked = wire.filter((e) => e.dir === 'in' && e.msg.method === 'tools/list');
    assert.equal(asked.length, 1, `tools/list requests on the wire: ${JSON.stringify(asked)}`);
    assert.equal(asked[0].msg.params?.cursor, undefined, 'the one tools/list carries no cursor');
    const answer = wire.find((e) => e.dir === 'out' && e.msg.id === asked[0].msg.id && ('result' in e.msg || 'error' in e.msg));
    assert.ok(answer?.msg.result, `the gateway's answer to tools/list: ${JSON.stringify(answer)}`);
    assert.equal(answer.msg.result.tools.length, want.length, 'the one page holds every tool');
    assert.ok(!('nextCursor' in answer.msg.result), `no nextCursor in the one page: ${JSON.stringify(answer.msg.result.nextCursor)}`);
    console.log(`[inspector] everything: ${direct.everything.length} tools, memory: ${direct.memory.length}, `
      + `one tools/list answered with ${answer.msg.result.tools.length} tools and no nextCursor`);
  }));

  it('the TS SDK client with listPageSize 5 follows cursors over several pages to the same tools, each once', { timeout: 30000 }, guard(async () => {
    assert.ok(inspectorNames, 'needs the Inspector test\'s list');
    const gw = tappedGateway(tmp, 'paged-gateway', { mcpServers: upstreamConfig(tmp), gateway: { listPageSize: 5 } });
    logs.push(['gateway stderr (SDK run)', gw.stderrLog], ['stdio wire (SDK run)', gw.wire]);
    const client = new Client({ name: 'node-v1-paging', version: '0.0.1' }, { capabilities: {} });
    const transport = new StdioClientTransport({ command: gw.argv[0], args: gw.argv.slice(1), stderr: 'pipe', cwd: INTEROP_DIR });
    transport.stderr?.resume();
    await client.connect(transport);
    let listed;
    try {
      listed = await listAll((p) => client.listTools(p), 'tools');
    } finally {
      await client.close().catch(() => {});
    }
    const names = listed.items.map((t) => t.name);
    const dups = names.filter((n, i) => names.indexOf(n) !== i);
    assert.deepEqual(dups, [], 'tools listed more than once across pages');
    assert.deepEqual([...names].sort(), [...inspectorNames].sort(), 'the paged listing vs the Inspector\'s one page');
    assert.ok(listed.pages > 1, `listPageSize 5 should split the list, got ${listed.pages} page(s) of ${listed.pageItems.map((p) => p.length)}`);
    // Pages hold whole upstream pages: none mixes the two servers here, as neither paginates itself.
    for (const page of listed.pageItems) {
      assert.equal(new Set(page.map((t) => t.name.split('__')[0])).size, 1, `a page of one upstream: ${page.map((t) => t.name)}`);
    }
    const asked = readJsonLines(gw.wire).filter((e) => e.dir === 'in' && e.msg.method === 'tools/list');
    assert.equal(asked.length, listed.pages, 'one tools/list on the wire per page');
    console.log(`[sdk] listPageSize 5: ${listed.pages} pages of ${listed.pageItems.map((p) => p.length).join(' + ')} tools`);
  }));

  it('the Inspector CLI over Streamable HTTP lists the same tools and calls one', { timeout: 60000 }, guard(async () => {
    assert.ok(inspectorNames, 'needs the Inspector test\'s list');
    const gw = await startGateway(tmp, { mcpServers: upstreamConfig(tmp) }, { name: 'http-gateway' });
    logs.push(['gateway stderr (Inspector over HTTP)', gw.gatewayLog]);
    try {
      const headers = Object.entries(authHeaders()).flatMap(([k, v]) => ['--header', `${k}: ${v}`]);
      const inspector = (...args) => run([process.execPath, INSPECTOR_JS, '--cli', '--format', 'json', '--transport', 'http',
        '--server-url', String(gw.url), ...args, ...headers],
      { env: { ...process.env, HOME: tmp, MCP_CATALOG_PATH: path.join(tmp, 'inspector-http-catalog.json') } });
      const detail = (r) => `Inspector exit ${r.code} (${r.signal}); stdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(-4000)}`;

      const listed = await inspector('--method', 'tools/list');
      assert.equal(listed.code, 0, detail(listed));
      const names = JSON.parse(listed.stdout).result?.tools?.map((t) => t.name);
      assert.ok(Array.isArray(names), `no result.tools in the Inspector's output: ${detail(listed)}`);
      assert.deepEqual([...names].sort(), [...inspectorNames].sort(), 'over HTTP vs over stdio');

      const called = await inspector('--method', 'tools/call', '--tool-name', 'everything__echo', '--tool-arg', 'message=inspector over http');
      assert.equal(called.code, 0, detail(called));
      const result = JSON.parse(called.stdout).result;
      assert.equal(result?.content?.[0]?.text, 'Echo: inspector over http', detail(called));
      console.log(`[inspector http] ${names.length} tools, everything__echo answered${authHeaders().authorization ? ' (with a bearer token)' : ''}`);
    } finally {
      await gw.stop();
    }
  }));
});
