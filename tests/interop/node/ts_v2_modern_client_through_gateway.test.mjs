// The v2 TypeScript client (@modelcontextprotocol/client 2.4.0) through the gateway, in three modes:
//   versionNegotiation {mode:'auto'}                 -> must negotiate 2026-07-28 (modern era) via server/discover
//   versionNegotiation {mode:{pin:'2026-07-28'}}     -> must negotiate 2026-07-28, no fallback
//   default (legacy)                                 -> the plain 2025 initialize handshake with a session
// In every mode it must see and use both upstreams. For the modern client, the legacy upstream's
// server-to-client requests (elicitation, sampling) come back as input_required results that the
// client fulfils, and the gateway must answer the legacy upstream with them.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { authHeaders, textOf } from './common/topology.mjs';
import { closeQuietly, connectV1, guard, recordingFetch, useTopology } from './common/harness.mjs';

const MODES = [
  { label: "mode 'auto'", versionNegotiation: { mode: 'auto' }, modern: true },
  { label: "pin '2026-07-28'", versionNegotiation: { mode: { pin: '2026-07-28' } }, modern: true },
  { label: 'default (legacy) negotiation', versionNegotiation: undefined, modern: false },
];

async function connectV2(url, mode, { onElicit, onSample } = {}) {
  const wire = [];
  const client = new Client({ name: 'node-v2-test', version: '0.0.1' }, {
    capabilities: { elicitation: { form: {} }, sampling: {} },
    ...(mode.versionNegotiation ? { versionNegotiation: mode.versionNegotiation } : {}),
    inputRequired: { maxRounds: 5 },
  });
  client.setRequestHandler('elicitation/create', async (req) => {
    if (!onElicit) throw new Error('unexpected elicitation/create');
    return onElicit(req.params);
  });
  client.setRequestHandler('sampling/createMessage', async (req) => {
    if (!onSample) throw new Error('unexpected sampling/createMessage');
    return onSample(req.params);
  });
  const transport = new StreamableHTTPClientTransport(url, { fetch: recordingFetch(wire), requestInit: { headers: authHeaders() } });
  await client.connect(transport);
  return { client, transport, wire };
}

async function close({ client, transport }) {
  try { if (transport.sessionId) await transport.terminateSession(); } catch { /* gone */ }
  try { await client.close(); } catch { /* ignore */ }
}

describe('TS v2 client (@modelcontextprotocol/client 2.4.0) through the gateway', { timeout: 100000 }, () => {
  const ref = useTopology();

  for (const mode of MODES) {
    describe(mode.label, () => {
      it(mode.modern ? 'negotiates 2026-07-28 with the gateway (server/discover, no session)' : 'initializes a 2025-11-25 session',
        { timeout: 20000 }, guard(ref, async (_t, topo) => {
          const c = await connectV2(topo.url, mode);
          try {
            const rpc = c.wire.map((w) => w.rpcMethod).filter(Boolean);
            if (mode.modern) {
              assert.equal(c.client.getNegotiatedProtocolVersion(), '2026-07-28');
              assert.equal(c.client.getProtocolEra(), 'modern');
              assert.equal(c.transport.sessionId, undefined, 'a modern connection has no session');
              assert.equal(rpc[0], 'server/discover', `wire: ${JSON.stringify(c.wire)}`);
              assert.ok(!rpc.includes('initialize'), `a modern connect must not initialize: ${JSON.stringify(c.wire)}`);
              await c.client.listTools();
              const posts = c.wire.filter((w) => w.httpMethod === 'POST');
              assert.ok(posts.every((w) => w.protocolVersionHeader === '2026-07-28'), JSON.stringify(posts));
              assert.ok(posts.every((w) => w.sessionHeader === null), JSON.stringify(posts));
            } else {
              assert.equal(c.client.getNegotiatedProtocolVersion(), '2025-11-25');
              assert.equal(c.client.getProtocolEra(), 'legacy');
              assert.ok(c.transport.sessionId, 'a legacy connection gets an mcp-session-id');
              assert.equal(rpc[0], 'initialize');
              assert.ok(!rpc.includes('server/discover'));
            }
            assert.ok(c.client.getServerVersion()?.name, 'server name');
            const caps = c.client.getServerCapabilities();
            assert.ok(caps?.tools && caps?.prompts && caps?.resources, JSON.stringify(caps));
          } finally { await close(c); }
        }));

      it('lists tools, prompts, resources and templates of both upstreams', { timeout: 20000 }, guard(ref, async (_t, topo) => {
        const c = await connectV2(topo.url, mode);
        try {
          const tools = (await c.client.listTools()).tools.map((x) => x.name);
          for (const n of ['everything__echo', 'everything__trigger-elicitation-request', 'everything__trigger-sampling-request',
            'modern__add', 'modern__delete_thing', 'modern__haiku']) {
            assert.ok(tools.includes(n), `tool ${n} missing from ${tools.join(', ')}`);
          }
          assert.equal(new Set(tools).size, tools.length);
          const prompts = (await c.client.listPrompts()).prompts.map((x) => x.name);
          assert.ok(prompts.includes('modern__greet') && prompts.includes('everything__args-prompt'), prompts.join(', '));
          const uris = (await c.client.listResources()).resources.map((x) => x.uri);
          assert.ok(uris.includes('demo://hello') && uris.includes('demo://resource/static/document/features.md'), uris.join(', '));
          const tmpl = (await c.client.listResourceTemplates()).resourceTemplates.map((x) => x.uriTemplate);
          assert.ok(tmpl.includes('demo://users/{user_id}') && tmpl.includes('demo://resource/dynamic/text/{resourceId}'), tmpl.join(', '));
        } finally { await close(c); }
      }));

      it('calls everything__echo and modern__add, gets prompts of both upstreams, reads demo://hello', { timeout: 20000 }, guard(ref, async (_t, topo) => {
        const c = await connectV2(topo.url, mode);
        try {
          const echo = await c.client.callTool({ name: 'everything__echo', arguments: { message: 'via v2' } });
          assert.equal(textOf(echo), 'Echo: via v2');
          assert.notEqual(echo.isError, true);
          const add = await c.client.callTool({ name: 'modern__add', arguments: { a: 7, b: 35 } });
          assert.equal(textOf(add), '42');
          assert.deepEqual(add.structuredContent, { result: 42 });

          const greet = await c.client.getPrompt({ name: 'modern__greet', arguments: { name: 'Ann' } });
          assert.equal(greet.messages[0].content.text, 'Please greet Ann warmly.');
          const args = await c.client.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Oslo' } });
          assert.equal(args.messages[0].content.text, "What's weather in Oslo?");

          const hello = await c.client.readResource({ uri: 'demo://hello' });
          assert.equal(hello.contents[0].text, 'hello from the modern upstream');
        } finally { await close(c); }
      }));

      it('reads a resource of the legacy upstream (demo://resource/dynamic/text/1)', { timeout: 20000 }, guard(ref, async (_t, topo) => {
        const c = await connectV2(topo.url, mode);
        try {
          const dyn = await c.client.readResource({ uri: 'demo://resource/dynamic/text/1' });
          assert.equal(dyn.contents[0].uri, 'demo://resource/dynamic/text/1');
          assert.match(dyn.contents[0].text, /^Resource 1: This is a plaintext resource/);
        } finally { await close(c); }
      }));

      it('elicitation of both upstreams reaches the client and its answers reach the tools', { timeout: 20000 }, guard(ref, async (_t, topo) => {
        const token = randomUUID().slice(0, 8);
        const seen = [];
        const c = await connectV2(topo.url, mode, {
          onElicit: (p) => {
            seen.push(p.message);
            return p.requestedSchema?.properties?.confirm
              ? { action: 'accept', content: { confirm: true, note: `n-${token}` } }
              : { action: 'accept', content: { name: `Grace-${token}` } };
          },
        });
        try {
          const ev = await c.client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
          assert.ok(textOf(ev).includes(`Name: Grace-${token}`), textOf(ev));
          const del = await c.client.callTool({ name: 'modern__delete_thing', arguments: { thing: 'cache' } });
          assert.equal(textOf(del), `deleted=True note='n-${token}' thing=cache`);
          assert.deepEqual(seen, ['Please provide inputs for the following fields:', 'Really delete cache?']);
        } finally { await close(c); }
      }));

      it('sampling of both upstreams reaches the client and its answers reach the tools', { timeout: 20000 }, guard(ref, async (_t, topo) => {
        const token = randomUUID().slice(0, 8);
        const seen = [];
        const c = await connectV2(topo.url, mode, {
          onSample: (p) => { seen.push(p.messages.at(-1).content.text); return { model: 'v2-llm', role: 'assistant', content: { type: 'text', text: `answer-${token}` } }; },
        });
        try {
          const ev = await c.client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } });
          assert.ok(textOf(ev).includes(`answer-${token}`), textOf(ev));
          const hk = await c.client.callTool({ name: 'modern__haiku', arguments: { topic: 'edges' } });
          assert.equal(textOf(hk), `[v2-llm] answer-${token}`);
          assert.deepEqual(seen, ['Resource trigger-sampling-request context: hi', 'Write a haiku about edges']);
        } finally { await close(c); }
      }));

      it('relays progress of the legacy upstream', { timeout: 20000 }, guard(ref, async (_t, topo) => {
        const c = await connectV2(topo.url, mode);
        try {
          const seen = [];
          const r = await c.client.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
            { onprogress: (p) => seen.push(p) });
          assert.match(textOf(r), /Long running operation completed/);
          assert.deepEqual(seen.map((p) => [p.progress, p.total]), [[1, 3], [2, 3], [3, 3]]);
        } finally { await close(c); }
      }));
    });
  }
  // Wire-level statement of the same requirement, independent of the SDK's result validation:
  // in 2026-07-28 resources/read is a CacheableResult, so ttlMs and cacheScope are REQUIRED; a gateway
  // fronting a legacy upstream (which never sends them) must synthesize them, as it already does for lists.
  it('modern resources/read answers carry ttlMs and cacheScope for every upstream (wire)', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const envelope = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'raw-wire', version: '0' },
      'io.modelcontextprotocol/clientCapabilities': {},
    };
    const post = async (method, params, name) => {
      const headers = { ...authHeaders(), 'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28', 'mcp-method': method, ...(name ? { 'mcp-name': name } : {}) };
      const r = await fetch(topo.url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: envelope } }) });
      assert.equal(r.status, 200);
      const body = await r.json();
      assert.ok(body.result, JSON.stringify(body));
      return body.result;
    };
    const problems = [];
    for (const uri of ['demo://hello', 'demo://resource/dynamic/text/1', 'demo://resource/static/document/features.md']) {
      const res = await post('resources/read', { uri }, uri);
      assert.equal(res.contents?.[0]?.uri, uri);
      if (typeof res.ttlMs !== 'number' || !['public', 'private'].includes(res.cacheScope)) {
        problems.push(`${uri}: ttlMs=${JSON.stringify(res.ttlMs)} cacheScope=${JSON.stringify(res.cacheScope)} (result keys: ${Object.keys(res).join(',')})`);
      }
    }
    const list = await post('resources/list', {});
    assert.equal(typeof list.ttlMs, 'number', 'lists already carry ttlMs');
    assert.deepEqual(problems, [], 'resources/read results missing the 2026-07-28 cache hints');
  }));
  // Same routing requirement as in ts_two_sessions_are_isolated, across eras: the legacy stdio upstream's
  // sampling request for the modern client's call must be answered by the modern client (bridged through
  // input_required), not by a legacy session that happens to have a call in flight too. As there, the
  // first round in which both calls overlap upstream may be refused (the gateway cannot attribute the
  // request yet, and learns that the tool asks its client); after that every round succeeds.
  it('legacy upstream sampling for a modern client is not answered by a concurrent legacy session', { timeout: 30000 }, guard(ref, async (_t, topo) => {
    const seen = { modern: [], legacy: [] };
    const M = await connectV2(topo.url, MODES[0], {
      onSample: (p) => { seen.modern.push(p.messages.at(-1).content.text); return { model: 'modern-llm', role: 'assistant', content: { type: 'text', text: 'modern-answer' } }; },
    });
    const L = await connectV1(topo.url, {
      onSample: (p) => { seen.legacy.push(p.messages.at(-1).content.text); return { model: 'legacy-llm', role: 'assistant', content: { type: 'text', text: 'legacy-answer' } }; },
    });
    const misrouted = [];
    const refused = [];
    const unattributable = (t) => t.includes('cannot be attributed to one client');
    try {
      assert.equal(M.client.getProtocolEra(), 'modern');
      for (let round = 0; round < 5; round++) {
        seen.modern.length = 0;
        seen.legacy.length = 0;
        const [rl, rm] = await Promise.all([
          L.client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'from-legacy', maxTokens: 5 } }),
          M.client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'from-modern', maxTokens: 5 } }),
        ]);
        const [tm, tl] = [textOf(rm), textOf(rl)];
        const detail = { round, modern_result: tm.replace(/\s+/g, ' ').slice(0, 140), legacy_result: tl.replace(/\s+/g, ' ').slice(0, 140),
          modern_handler_saw: [...seen.modern], legacy_handler_saw: [...seen.legacy] };
        const crossed = tm.includes('legacy-answer') || tl.includes('modern-answer')
          || seen.modern.some((x) => x.includes('from-legacy')) || seen.legacy.some((x) => x.includes('from-modern'));
        if (crossed) misrouted.push(detail);
        else if (!tm.includes('modern-answer') || !tl.includes('legacy-answer')) {
          // Allowed once: the first overlap, refused as unattributable; never a second time.
          if (refused.length === 0 && (unattributable(tm) || unattributable(tl))) refused.push(detail);
          else misrouted.push(detail);
        }
      }
    } finally {
      await close(M);
      await closeQuietly(L.client, L.transport);
    }
    assert.deepEqual(misrouted, [], 'sampling for the modern client\'s call was answered by the legacy client (or vice versa)');
  }));
});
