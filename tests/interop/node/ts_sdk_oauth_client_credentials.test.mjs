// The official TypeScript SDK v1 (1.32.2) client with its OAuth support, against the gateway as an
// OAuth 2.1 resource server (issue 12, point 1):
//
//   TS SDK client (ClientCredentialsProvider) ──► mcp-edge-gateway ("gateway": {"auth": {issuer, audience}})
//        │                                            ├─► notes (servers/header_recorder.py; static "Bearer ${UP_STATIC}")
//        │                                            └─► vault (servers/header_recorder.py; the gateway's own
//        │                                                       client-credentials token from the same AS)
//        └── token for the gateway's resource ──► servers/auth_server.mjs (npm oidc-provider, RFC 9068 at+jwt)
//
// The client is given the gateway's URL, its client id/secret, the issuer they belong to and the scope
// to ask for (SDK 1.32.2's client_credentials token request sends only the provider's own `scope`, not
// the challenge's nor scopes_supported; without it the token has no scope and gets 403), nothing else:
// its first request is refused 401, it reads /.well-known/oauth-protected-resource/mcp, then the
// authorization server's metadata, gets a token for the gateway's resource and calls tools. The
// gateway's config is the JSON shape ("gateway": {"auth": ...}, "mcpServers": {...: {"oauth": ...}}).
// Every process started here is killed by PID in after().
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { auth, discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { GATEWAY_BIN, INTEROP_DIR, PYTHON, freePort, listAll, readJsonLines, sleep, textOf } from './common/topology.mjs';

const AUTH_SERVER = path.join(INTEROP_DIR, 'servers', 'auth_server.mjs');
const HEADER_RECORDER = path.join(INTEROP_DIR, 'servers', 'header_recorder.py');
const secret = () => randomBytes(18).toString('base64url');
const MCP_CLIENT = { client_id: 'ts-mcp-client', client_secret: secret(), scope: 'mcp mcp:admin' };
const GW_UPSTREAM = { client_id: 'gw-upstream', client_secret: secret(), scope: 'notes' };
const OPS_TOKEN = secret();
const UP_STATIC = `up-${secret()}`;

const b64json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
const jwtParts = (t) => { const [h, p] = t.split('.'); return { header: b64json(h), claims: b64json(p) }; };

/** Resolves with the first stdout line matching `re` (its match), rejects on exit or timeout. */
function lineFrom(child, re, what, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { done(); reject(new Error(`${what}: nothing matching ${re} in ${timeoutMs} ms; got ${buf}`)); }, timeoutMs);
    const onData = (d) => { buf += d; const m = buf.match(re); if (m) { done(); resolve(m); } };
    const onExit = (code) => { done(); reject(new Error(`${what} exited (${code}) before it was ready; got ${buf}`)); };
    function done() { clearTimeout(timer); child.stdout.off('data', onData); child.off('exit', onExit); }
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.on('exit', onExit);
  });
}

async function stopChild(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try { process.kill(child.pid, 'SIGKILL'); } catch { return; }
  await Promise.race([exited, sleep(3000)]);
}

/** A fetch that logs every exchange as { method, url, status, authorization } (the SDK passes it to discovery too). */
function loggingFetch(log) {
  return async (url, init = {}) => {
    const res = await fetch(url, init);
    const h = new Headers(init.headers ?? {});
    log.push({ method: init.method ?? 'GET', url: String(url), status: res.status, authorization: h.get('authorization') });
    return res;
  };
}

describe('TS SDK v1 client with OAuth client credentials through the gateway', { timeout: 90000 }, () => {
  const children = [];
  let tmp;
  let as;
  let gwUrl;
  let gwBase;
  let audience;
  const rec = {};
  let gatewayLog;
  const clientTokens = new Set();

  const dump = () => {
    for (const f of [gatewayLog, path.join(tmp, 'as.stderr.log'), rec.notes?.log, rec.vault?.log]) {
      try { console.error(`----- ${f} -----\n${fs.readFileSync(f, 'utf8')}\n-----`); } catch { /* none */ }
    }
  };
  const guard = (fn) => async (t) => {
    try { await fn(t); } catch (e) { console.error(`\n### test failed: ${t.name}`); dump(); throw e; }
  };

  async function startRecorder(name) {
    const log = path.join(tmp, `${name}.requests.jsonl`);
    fs.writeFileSync(log, '');
    const err = fs.openSync(path.join(tmp, `${name}.stderr.log`), 'w');
    const child = spawn(PYTHON, [HEADER_RECORDER, '--log', log, '--name', name], { stdio: ['ignore', 'pipe', err] });
    fs.closeSync(err);
    children.push(child);
    const m = await lineFrom(child, /READY (\d+)/, `header_recorder ${name}`);
    return { log, url: `http://127.0.0.1:${m[1]}/mcp`, entries: () => readJsonLines(log) };
  }

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-node-oauth-'));
    const gwPort = await freePort();
    gwBase = `http://127.0.0.1:${gwPort}`;
    gwUrl = new URL(`${gwBase}/mcp`);
    audience = gwUrl.href;
    rec.notes = await startRecorder('notes');
    rec.vault = await startRecorder('vault');

    // The authorization server.
    const asConfig = path.join(tmp, 'as.json');
    fs.writeFileSync(asConfig, JSON.stringify({
      clients: [MCP_CLIENT, GW_UPSTREAM],
      resources: { [audience]: { scope: 'mcp mcp:admin' }, [rec.vault.url]: { scope: 'notes' } },
    }));
    const asErr = fs.openSync(path.join(tmp, 'as.stderr.log'), 'w');
    const asChild = spawn(process.execPath, [AUTH_SERVER, '--config', asConfig, '--log', path.join(tmp, 'as.grants.jsonl')],
      { stdio: ['ignore', 'pipe', asErr], cwd: INTEROP_DIR });
    fs.closeSync(asErr);
    children.push(asChild);
    as = JSON.parse((await lineFrom(asChild, /^\{.*\}$/m, 'auth_server.mjs'))[0]);

    // The gateway, JSON config.
    const config = {
      gateway: {
        auth: {
          issuer: as.issuer,
          audience,
          scopes: ['mcp'],
          admin_scopes: ['mcp:admin'],
          tokens: [{ principal: 'ops', token_env: 'TS_GW_OPS', scopes: ['mcp', 'mcp:admin'] }],
        },
      },
      mcpServers: {
        notes: { url: rec.notes.url, headers: { Authorization: 'Bearer ${TS_UP_STATIC}' } },
        vault: {
          url: rec.vault.url,
          oauth: { token_url: as.token_endpoint, client_id: GW_UPSTREAM.client_id, client_secret_env: 'TS_GW_UP_SECRET', scopes: ['notes'], resource: rec.vault.url },
        },
      },
    };
    const configPath = path.join(tmp, 'gateway.json');
    fs.writeFileSync(configPath, JSON.stringify(config, null, 1));
    gatewayLog = path.join(tmp, 'gateway.stderr.log');
    const gwErr = fs.openSync(gatewayLog, 'w');
    const gw = spawn(GATEWAY_BIN, ['serve', '--config', configPath, '--listen', `127.0.0.1:${gwPort}`, '--no-store'], {
      stdio: ['ignore', 'ignore', gwErr],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info', TS_GW_OPS: OPS_TOKEN, TS_UP_STATIC: UP_STATIC, TS_GW_UP_SECRET: GW_UPSTREAM.client_secret },
    });
    fs.closeSync(gwErr);
    children.push(gw);
    let last = '';
    for (const end = Date.now() + 30000; ; await sleep(100)) {
      if (gw.exitCode !== null) { dump(); throw new Error(`gateway exited with ${gw.exitCode}`); }
      try {
        const r = await fetch(`${gwBase}/status`, { headers: { authorization: `Bearer ${OPS_TOKEN}` } });
        last = await r.text();
        const ups = r.ok ? JSON.parse(last).upstreams : [];
        if (['notes', 'vault'].every((n) => ups.some((u) => u.name === n && u.state === 'ready'))) break;
      } catch { /* not listening yet */ }
      if (Date.now() > end) { dump(); throw new Error(`gateway not ready in 30 s; last /status: ${last}`); }
    }
  }, { timeout: 60000 });

  after(async () => {
    for (const c of children.reverse()) await stopChild(c);
    if (!process.env.KEEP_TMP && tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('serves its protected resource metadata, which the SDK discovers at /.well-known/oauth-protected-resource/mcp', { timeout: 20000 }, guard(async () => {
    const refused = await fetch(gwUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    assert.equal(refused.status, 401);
    const challenge = refused.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer /i);
    assert.ok(challenge.includes(`resource_metadata="${gwBase}/.well-known/oauth-protected-resource/mcp"`), challenge);
    const log = [];
    const prm = await discoverOAuthProtectedResourceMetadata(gwUrl, undefined, loggingFetch(log));
    assert.equal(prm.resource, audience);
    assert.deepEqual(prm.authorization_servers, [as.issuer]);
    assert.ok(prm.scopes_supported?.includes('mcp'), JSON.stringify(prm));
    assert.deepEqual(log.map((e) => [e.url, e.status]), [[`${gwBase}/.well-known/oauth-protected-resource/mcp`, 200]]);
  }));

  it('connects from a 401, gets a token for the gateway\'s resource and calls tools', { timeout: 30000 }, guard(async () => {
    const log = [];
    const provider = new ClientCredentialsProvider({ clientId: MCP_CLIENT.client_id, clientSecret: MCP_CLIENT.client_secret, expectedIssuer: as.issuer, scope: 'mcp' });
    const transport = new StreamableHTTPClientTransport(gwUrl, { authProvider: provider, fetch: loggingFetch(log) });
    const client = new Client({ name: 'ts-oauth-client', version: '0.0.1' });
    try {
      await client.connect(transport);
      const { items } = await listAll((p) => client.listTools(p), 'tools');
      const names = new Set(items.map((t) => t.name));
      for (const n of ['notes__echo', 'notes__read_note', 'vault__echo']) assert.ok(names.has(n), `${n} missing from ${[...names]}`);
      const echo = await client.callTool({ name: 'notes__echo', arguments: { text: 'hello from the TS SDK' } });
      assert.equal(textOf(echo), 'hello from the TS SDK');
      const note = await client.callTool({ name: 'vault__read_note', arguments: { id: 'ts-1' } });
      assert.equal(textOf(note), 'note ts-1');
    } finally {
      try { await transport.terminateSession(); } catch { /* gone */ }
      await client.close().catch(() => {});
    }

    const seen = log.map((e) => [e.method, e.url.split('?')[0], e.status]);
    assert.deepEqual(seen[0], ['POST', gwUrl.href, 401], `the first request was not refused: ${JSON.stringify(seen)}`);
    const at = (m, u, s) => seen.findIndex(([m2, u2, s2]) => m2 === m && u2 === u && s2 === s);
    const prmAt = at('GET', `${gwBase}/.well-known/oauth-protected-resource/mcp`, 200);
    const asMetaAt = seen.findIndex(([m, u, s]) => m === 'GET' && u.startsWith(`${as.issuer}/.well-known/`) && s === 200);
    const tokenAt = at('POST', as.token_endpoint, 200);
    assert.ok(prmAt > 0 && asMetaAt > prmAt && tokenAt > asMetaAt, `discovery out of order: ${JSON.stringify(seen)}`);
    const afterToken = log.slice(tokenAt + 1).filter((e) => e.url.startsWith(gwUrl.href));
    assert.ok(afterToken.length >= 3, JSON.stringify(seen));
    for (const e of afterToken) {
      assert.ok([200, 202].includes(e.status), `refused after getting a token: ${JSON.stringify(seen)}`);
      assert.match(e.authorization ?? '', /^Bearer /);
    }

    const token = provider.tokens()?.access_token;
    assert.ok(token, 'the provider holds no token');
    clientTokens.add(token);
    const { header, claims } = jwtParts(token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, 'RS256');
    assert.equal(claims.aud, audience);
    assert.equal(claims.iss, as.issuer);
    assert.equal(claims.client_id, MCP_CLIENT.client_id);
    assert.ok(claims.scope.split(' ').includes('mcp'), claims.scope);
    const grants = readJsonLines(path.join(tmp, 'as.grants.jsonl')).filter((g) => g.client_id === MCP_CLIENT.client_id);
    assert.equal(grants.at(-1).resource, audience, JSON.stringify(grants));
  }));

  it('auth() on its own gets a token the gateway accepts; a wrong secret gets none', { timeout: 30000 }, guard(async () => {
    const provider = new ClientCredentialsProvider({ clientId: MCP_CLIENT.client_id, clientSecret: MCP_CLIENT.client_secret, expectedIssuer: as.issuer, scope: 'mcp' });
    assert.equal(await auth(provider, { serverUrl: gwUrl }), 'AUTHORIZED');
    const token = provider.tokens().access_token;
    clientTokens.add(token);
    assert.equal(jwtParts(token).claims.aud, audience);
    const transport = new StreamableHTTPClientTransport(gwUrl, { requestInit: { headers: { authorization: `Bearer ${token}` } } });
    const client = new Client({ name: 'ts-oauth-bare', version: '0.0.1' });
    try {
      await client.connect(transport);
      const r = await client.callTool({ name: 'vault__echo', arguments: { text: 'with a bare token' } });
      assert.equal(textOf(r), 'with a bare token');
    } finally {
      try { await transport.terminateSession(); } catch { /* gone */ }
      await client.close().catch(() => {});
    }

    const wrong = new ClientCredentialsProvider({ clientId: MCP_CLIENT.client_id, clientSecret: 'not-the-secret', expectedIssuer: as.issuer, scope: 'mcp' });
    const t2 = new StreamableHTTPClientTransport(gwUrl, { authProvider: wrong });
    const c2 = new Client({ name: 'ts-oauth-wrong', version: '0.0.1' });
    await assert.rejects(c2.connect(t2), (e) => /InvalidClient|invalid_client/.test(`${e?.constructor?.name} ${e?.name} ${e?.message}`));
    await c2.close().catch(() => {});
    assert.equal(wrong.tokens(), undefined);
  }));

  it('no client token reaches an upstream: each sees only the gateway\'s own credential', { timeout: 20000 }, guard(async () => {
    assert.ok(clientTokens.size >= 2, 'the tests above got no tokens');
    const notes = rec.notes.entries();
    const vault = rec.vault.entries();
    assert.ok(notes.some((e) => e.rpc.some((m) => m.method === 'tools/call' && m.name === 'echo')), 'notes never got the echo call');
    assert.ok(vault.some((e) => e.rpc.some((m) => m.method === 'tools/call' && m.name === 'read_note')), 'vault never got the read_note call');
    assert.deepEqual([...new Set(notes.map((e) => e.headers.authorization))], [`Bearer ${UP_STATIC}`]);
    for (const e of vault) {
      const a = e.headers.authorization ?? '';
      assert.match(a, /^Bearer /);
      const { claims } = jwtParts(a.slice(7));
      assert.equal(claims.client_id, GW_UPSTREAM.client_id);
      assert.equal(claims.aud, rec.vault.url);
      assert.equal(claims.iss, as.issuer);
    }
    for (const e of [...notes, ...vault]) {
      for (const [k, v] of Object.entries(e.headers)) {
        for (const t of clientTokens) assert.ok(!v.includes(t), `a client token in upstream header ${k}: ${JSON.stringify(e)}`);
      }
    }
  }));
});
