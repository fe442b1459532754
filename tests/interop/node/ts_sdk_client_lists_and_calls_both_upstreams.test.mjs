// A legacy-era client (TypeScript SDK v1 1.32.2, Streamable HTTP) sees and uses both upstreams through
// the gateway: the legacy stdio `everything` server and the modern (2026-07-28) HTTP server. Listing is
// checked in a topology with a third, paginating upstream (servers/paged_server.mjs), since neither of
// the two paginates: only there does following nextCursor matter.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PAGED_CATALOG } from '../servers/paged_server.mjs';
import { listAll, pagedUpstream, readJsonLines, sleep, textOf } from './common/topology.mjs';
import { closeQuietly, connectV1, guard, tapTransport, useTopology } from './common/harness.mjs';

describe('TS SDK v1 client lists and calls both upstreams', { timeout: 90000 }, () => {
  const ref = useTopology();

  it('initializes a legacy session with the gateway', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url);
    try {
      assert.equal(transport.protocolVersion, '2025-11-25');
      assert.ok(transport.sessionId, 'gateway should hand out an mcp-session-id');
      const caps = client.getServerCapabilities();
      for (const k of ['tools', 'prompts', 'resources']) assert.ok(caps?.[k], `server capability ${k} missing: ${JSON.stringify(caps)}`);
      assert.ok(client.getServerVersion()?.name, 'serverInfo.name');
    } finally { await closeQuietly(client, transport); }
  }));

  it('calls tools, reads resources and gets prompts on both upstreams', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url);
    try {
      const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'hello gateway' } });
      assert.notEqual(echo.isError, true, JSON.stringify(echo));
      assert.equal(textOf(echo), 'Echo: hello gateway');

      const add = await client.callTool({ name: 'modern__add', arguments: { a: 2, b: 40 } });
      assert.notEqual(add.isError, true, JSON.stringify(add));
      assert.equal(textOf(add), '42');
      assert.deepEqual(add.structuredContent, { result: 42 });

      const hello = await client.readResource({ uri: 'demo://hello' });
      assert.equal(hello.contents.length, 1);
      assert.equal(hello.contents[0].uri, 'demo://hello');
      assert.equal(hello.contents[0].text, 'hello from the modern upstream');

      const dyn = await client.readResource({ uri: 'demo://resource/dynamic/text/1' });
      assert.equal(dyn.contents[0].uri, 'demo://resource/dynamic/text/1');
      assert.match(dyn.contents[0].text, /^Resource 1: This is a plaintext resource/);

      const user = await client.readResource({ uri: 'demo://users/42' });
      assert.deepEqual(JSON.parse(user.contents[0].text), { id: '42', name: 'user-42' });

      const greet = await client.getPrompt({ name: 'modern__greet', arguments: { name: 'Bob' } });
      assert.equal(greet.messages[0].role, 'user');
      assert.equal(greet.messages[0].content.text, 'Please greet Bob warmly.');

      const args = await client.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Paris', state: 'IDF' } });
      assert.equal(args.messages[0].content.text, "What's weather in Paris, IDF?");
    } finally { await closeQuietly(client, transport); }
  }));

  for (const [label, name, args, expectText] of [
    ['legacy stdio upstream', 'everything__trigger-long-running-operation', { duration: 1, steps: 3 }, /Long running operation completed/],
    ['modern HTTP upstream', 'modern__slow', { steps: 3 }, /^done$/],
  ]) {
    it(`relays progress from the ${label} under the client's own progress token`, { timeout: 20000 }, guard(ref, async (_t, topo) => {
      const { client, transport, errors } = await connectV1(topo.url);
      try {
        const tap = tapTransport(transport);
        const seen = [];
        const result = await client.callTool({ name, arguments: args }, undefined, { onprogress: (p) => seen.push(p) });
        assert.notEqual(result.isError, true, JSON.stringify(result));
        assert.match(textOf(result), expectText);

        const call = tap.sent.find((m) => m.method === 'tools/call' && m.params?.name === name);
        const token = call?.params?._meta?.progressToken;
        assert.notEqual(token, undefined, 'the SDK should have sent a progressToken');
        const notes = tap.received.filter((m) => m.method === 'notifications/progress');
        assert.equal(notes.length, 3, `expected 3 progress notifications, got ${JSON.stringify(notes)}`);
        for (const n of notes) assert.deepEqual(n.params.progressToken, token, `progress token rewritten back to the client's: ${JSON.stringify(n)}`);
        assert.deepEqual(notes.map((n) => n.params.progress), [1, 2, 3]);
        assert.ok(notes.every((n) => n.params.total === 3));
        assert.equal(seen.length, 3, `onprogress calls: ${JSON.stringify(seen)}`);
        const unknown = errors.filter((e) => /progress/i.test(String(e?.message)));
        assert.deepEqual(unknown.map(String), [], 'no progress notification with an unknown token');
      } finally { await closeQuietly(client, transport); }
    }));
  }

  it('relays progress under a client-chosen string token', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url);
    try {
      const tap = tapTransport(transport);
      const token = 'my-own-token-Ω';
      const result = await client.callTool({ name: 'modern__slow', arguments: { steps: 2 }, _meta: { progressToken: token } });
      assert.equal(textOf(result), 'done');
      const notes = tap.received.filter((m) => m.method === 'notifications/progress');
      assert.deepEqual(notes.map((n) => n.params.progressToken), [token, token], JSON.stringify(notes));
    } finally { await closeQuietly(client, transport); }
  }));
  // server-everything caches the roots it got from "its client" (the gateway) and get-roots-list reports them.
  const rootsSeenByUpstream = async (client) => {
    const r = await client.callTool({ name: 'everything__get-roots-list', arguments: {} });
    assert.notEqual(r.isError, true, JSON.stringify(r));
    return textOf(r).split('\n').filter((l) => l.includes('URI:')).map((l) => l.trim().replace(/^URI: /, ''));
  };
  const pollRoots = async (client, want, ms = 3000) => {
    let got;
    for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
      got = await rootsSeenByUpstream(client);
      if (JSON.stringify(got) === JSON.stringify(want)) break;
    }
    return got;
  };

  it("a client's notifications/roots/list_changed makes the legacy upstream fetch that client's roots", { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url, { roots: [{ uri: 'file:///srv/changed-root', name: 'changed-root' }] });
    try {
      await client.sendRootsListChanged();
      assert.deepEqual(await pollRoots(client, ['file:///srv/changed-root']), ['file:///srv/changed-root']);
    } finally { await closeQuietly(client, transport); }
  }));

  it("a new session's tool calls do not see the roots of a session that already ended", { timeout: 20000 }, guard(ref, async (_t, topo) => {
    // Session A makes sure the upstream holds A's roots, then ends.
    const A = await connectV1(topo.url, { roots: [{ uri: 'file:///home/alice/secret-project', name: 'alice' }] });
    try {
      await A.client.sendRootsListChanged();
      assert.deepEqual(await pollRoots(A.client, ['file:///home/alice/secret-project']), ['file:///home/alice/secret-project'], 'precondition');
    } finally { await closeQuietly(A.client, A.transport); }
    // Session B declares other roots and never changes them; the upstream must not report A's.
    const B = await connectV1(topo.url, { roots: [{ uri: 'file:///home/bob/work', name: 'bob' }] });
    try {
      const seen = await pollRoots(B.client, ['file:///home/bob/work'], 1500);
      assert.ok(!seen.includes('file:///home/alice/secret-project'),
        `session B's call to everything__get-roots-list reported the roots of ended session A: ${JSON.stringify(seen)}`);
      assert.deepEqual(seen, ['file:///home/bob/work']);
    } finally { await closeQuietly(B.client, B.transport); }
  }));
});

describe('TS SDK v1 client lists all upstreams through the gateway, one of them paginating', { timeout: 90000 }, () => {
  // everything + modern as usual, and `paged`: 23 tools in pages of 5, 7 prompts in pages of 3,
  // 11 resources in pages of 4, 3 templates in pages of 2, with opaque cursors (see paged_server.mjs).
  const ref = useTopology({ extraUpstreams: { paged: pagedUpstream() } });
  const KINDS = [
    // [the server's full list, v1 client method, result field, an item's key, the key the gateway exposes it under]
    [PAGED_CATALOG.tools, (c, p) => c.listTools(p), 'tools', (x) => x.name, (n) => `paged__${n}`],
    [PAGED_CATALOG.prompts, (c, p) => c.listPrompts(p), 'prompts', (x) => x.name, (n) => `paged__${n}`],
    [PAGED_CATALOG.resources, (c, p) => c.listResources(p), 'resources', (x) => x.uri, (u) => u],
    [PAGED_CATALOG.templates, (c, p) => c.listResourceTemplates(p), 'resourceTemplates', (x) => x.uriTemplate, (u) => u],
  ];

  it('lists tools, prompts, resources and templates of all upstreams, following nextCursor', { timeout: 30000 }, guard(ref, async (_t, topo) => {
    // The gateway walks every upstream's lists itself once it is ready (its catalogue). Wait until that
    // walk is over (each list's last page served, or a page refused), so the paged server's log from
    // `mark` on holds only what this client's listing caused.
    const upstreamLog = () => readJsonLines(topo.upstreamLogs.paged);
    const walkEnded = (e) => !e.ok || e.nextCursor === null;
    await waitFor(() => KINDS.every(([cat]) => upstreamLog().some((e) => e.method === cat.method && walkEnded(e))),
      'the gateway\'s own walk of the paged upstream\'s lists should finish', () => upstreamLog());
    const mark = upstreamLog().length;

    const { client, transport } = await connectV1(topo.url);
    const lists = {};
    try {
      for (const [, list, field] of KINDS) lists[field] = await listAll((p) => list(client, p), field);
    } finally { await closeQuietly(client, transport); }
    const { tools, prompts, resources, resourceTemplates: templates } = lists;

    // the two non-paginating upstreams' items are all there
    const toolNames = tools.items.map((x) => x.name);
    for (const n of ['everything__echo', 'everything__get-sum', 'everything__trigger-long-running-operation',
      // present only because the gateway declares sampling/elicitation/roots to the upstream
      'everything__trigger-sampling-request', 'everything__trigger-elicitation-request', 'everything__get-roots-list',
      'modern__add', 'modern__echo', 'modern__delete_thing', 'modern__haiku', 'modern__slow']) {
      assert.ok(toolNames.includes(n), `tool ${n} missing from ${toolNames.join(', ')}`);
    }
    assert.equal(new Set(toolNames).size, toolNames.length, 'tool names must be unique');
    assert.ok(toolNames.every((n) => /^(everything|modern|paged)__/.test(n)), `unprefixed tool: ${toolNames}`);
    for (const tool of tools.items) assert.equal(tool.inputSchema?.type, 'object', `${tool.name} inputSchema`);

    const promptNames = prompts.items.map((x) => x.name);
    for (const n of ['everything__simple-prompt', 'everything__args-prompt', 'modern__greet']) {
      assert.ok(promptNames.includes(n), `prompt ${n} missing from ${promptNames.join(', ')}`);
    }
    const uris = resources.items.map((x) => x.uri);
    for (const u of ['demo://hello', 'demo://resource/static/document/features.md']) {
      assert.ok(uris.includes(u), `resource ${u} missing from ${uris.join(', ')}`);
    }
    const tmpl = templates.items.map((x) => x.uriTemplate);
    for (const u of ['demo://users/{user_id}', 'demo://resource/dynamic/text/{resourceId}']) {
      assert.ok(tmpl.includes(u), `template ${u} missing from ${tmpl.join(', ')}`);
    }

    // the paginating upstream: all of its items, each once, over more than one client page
    const after = upstreamLog().slice(mark);
    for (const [cat, , field, keyOf, exposed] of KINDS) {
      const want = cat.items.map(exposed);
      const upstreamPages = Math.ceil(cat.items.length / cat.pageSize);
      assert.ok(upstreamPages > 1, `precondition: the paged server splits its ${field} (${cat.items.length} in pages of ${cat.pageSize})`);
      const isPaged = (x) => want.includes(keyOf(x));
      const got = lists[field].items.filter(isPaged).map(keyOf);
      const clientPages = lists[field].pageItems.filter((page) => page.some(isPaged)).length;
      assert.ok(clientPages > 1, `the paged upstream's ${field} should have taken more than one page to list, `
        + `took ${clientPages} (of ${lists[field].pages} pages in all)`);
      const dups = got.filter((k, i) => got.indexOf(k) !== i);
      assert.deepEqual(dups, [], `paged ${field} listed more than once`);
      assert.deepEqual([...got].sort(), [...want].sort(), `the paged upstream's ${field} as the client listed them vs the server's full list`);

      // The gateway asked the upstream for its first page and then for each page with exactly the
      // cursor the upstream had handed out for it (which the client never saw: the gateway wraps them).
      const asked = after.filter((e) => e.method === cat.method);
      assert.deepEqual(asked.map((e) => e.cursor), [null, ...asked.slice(0, -1).map((e) => e.nextCursor)],
        `${cat.method} requests the paged server got during the client's listing, each with the previous page's nextCursor: ${JSON.stringify(asked)}`);
      assert.equal(asked.length, upstreamPages, `${cat.method}: one request per upstream page: ${JSON.stringify(asked)}`);
      assert.ok(asked.every((e) => e.ok) && asked.at(-1).nextCursor === null, `${cat.method}: every page served, the last one final: ${JSON.stringify(asked)}`);
      const clientCursors = new Set(lists[field].cursors.filter(Boolean));
      assert.ok(asked.every((e) => !clientCursors.has(e.nextCursor)), 'the client saw the gateway\'s cursors, not the upstream\'s');
    }
  }));

  it('routes calls to items from the paged upstream\'s later pages', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url);
    try {
      const last = PAGED_CATALOG.tools.items.at(-1);
      assert.equal(textOf(await client.callTool({ name: `paged__${last}`, arguments: {} })), `called ${last}`);
      const prompt = PAGED_CATALOG.prompts.items.at(-1);
      assert.equal((await client.getPrompt({ name: `paged__${prompt}` })).messages[0].content.text, `prompt ${prompt}`);
      const uri = PAGED_CATALOG.resources.items.at(-1);
      assert.equal((await client.readResource({ uri })).contents[0].text, `content of ${uri}`);
    } finally { await closeQuietly(client, transport); }
  }));

  it('refuses a cursor it did not hand out with -32602', { timeout: 20000 }, guard(ref, async (_t, topo) => {
    const { client, transport } = await connectV1(topo.url);
    try {
      await assert.rejects(client.listTools({ cursor: 'not-a-cursor-of-the-gateway' }), (e) => {
        assert.equal(e.code, -32602, String(e));
        return true;
      });
    } finally { await closeQuietly(client, transport); }
  }));
});

async function waitFor(cond, what, detail = () => undefined, timeoutMs = 10000) {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(50)) {
    if (cond()) return;
  }
  assert.fail(`${what} within ${timeoutMs} ms; last: ${JSON.stringify(detail())}`);
}
