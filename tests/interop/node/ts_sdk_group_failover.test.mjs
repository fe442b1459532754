// Upstream groups: two server-everything instances behind one namespace, `g`. `local` runs over stdio
// (launched, and respawned when it dies, by the gateway), `cloud` over Streamable HTTP (started here):
//   "gateway": {"groups": {"g": {"members": ["local", "cloud"], "firstByteTimeoutMs": 1000,
//                                "breaker": {"failures": 3, "cooldownMs": 2000}}}}
// The official TypeScript SDK v1 client (Streamable HTTP, the gateway's `serve`) sees the group's tools once,
// as g__<tool>, and calls g__echo in a loop from several workers while `local` is killed with SIGKILL
// and comes back. Each member's environment has GW_MEMBER=<its name>, so g__get-env tells who served a call.
//  - echo is annotated readOnlyHint and idempotentHint: a call in flight at the kill may be repeated on
//    cloud, so every echo call must succeed, none "in doubt";
//  - also in flight at the kill: g__trigger-long-running-operation (readOnly/idempotent too: it must
//    complete, on cloud) and g__trigger-sampling-request (not annotated; held in the middle by its sampling
//    request to this client): it may have run on local, so it must fail "in doubt" and never be sent to
//    cloud (its sampling request reaches the client once);
//  - right after the kill, calls go to cloud; once local is back (/status groups[0].serving == "local"),
//    calls go to local again and succeed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import {
  EVERYTHING_JS, GATEWAY_UPSTREAM_CAPABILITIES, childrenOf, cmdlineOf, listAll, sleep, startEverythingHttp, startGateway, textOf,
} from './common/topology.mjs';
import { closeQuietly, connectV1 } from './common/harness.mjs';

const GROUP = {
  members: ['local', 'cloud'],
  firstByteTimeoutMs: 1000,
  breaker: { failures: 3, cooldownMs: 2000 },
};
const WORKERS = 4;
const CALL_TIMEOUT_MS = 20000;
// Each worker's pause between calls: a few hundred calls in all, not thousands.
const PACE_MS = 15;

const memberOf = async (client) => {
  const r = await client.callTool({ name: 'g__get-env', arguments: {} }, undefined, { timeout: CALL_TIMEOUT_MS });
  assert.notEqual(r.isError, true, JSON.stringify(r));
  return JSON.parse(textOf(r)).GW_MEMBER;
};

async function waitUntil(cond, what, detail = async () => undefined, timeoutMs = 20000, everyMs = 50) {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(everyMs)) {
    if (await cond()) return;
  }
  assert.fail(`${what} within ${timeoutMs} ms; last: ${JSON.stringify(await detail())}`);
}

describe('TS SDK v1 client: group failover from a killed stdio member to an HTTP one and back', { timeout: 60000 }, () => {
  let tmp;
  let cloud;
  let gw;
  let directTools;
  const dump = () => {
    gw?.dumpLogs();
    try { console.error(`----- cloud (server-everything streamableHttp) log -----\n${fs.readFileSync(cloud.log, 'utf8').split('\n').filter((l) => !/Received MCP (POST|GET) request/.test(l)).join('\n')}\n-----`); } catch { /* none */ }
  };
  const guard = (fn) => async (t) => {
    try { await fn(t); } catch (e) {
      console.error(`\n### test failed: ${t.name}`);
      dump();
      throw e;
    }
  };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-node-group-'));
    // the truth for the group's tools: server-everything's own list, for a client declaring what the gateway
    // declares to its upstreams
    const direct = new Client({ name: 'direct-lister', version: '0.0.1' }, { capabilities: GATEWAY_UPSTREAM_CAPABILITIES });
    direct.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [] }));
    const transport = new StdioClientTransport({ command: process.execPath, args: [EVERYTHING_JS, 'stdio'], stderr: 'ignore' });
    await direct.connect(transport);
    try { directTools = (await listAll((p) => direct.listTools(p), 'tools')).items.map((t) => t.name); } finally { await direct.close().catch(() => {}); }

    cloud = await startEverythingHttp(tmp, { name: 'cloud', env: { GW_MEMBER: 'cloud' } });
    gw = await startGateway(tmp, {
      mcpServers: {
        local: { command: process.execPath, args: [EVERYTHING_JS, 'stdio'], env: { GW_MEMBER: 'local' } },
        cloud: { url: cloud.url },
      },
      gateway: { groups: { g: GROUP } },
    }, { until: (st) => st.groups?.[0]?.serving === 'local' });
  }, { timeout: 45000 });
  after(async () => {
    await gw?.stop();
    await cloud?.stop();
    if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const localPid = () => {
    const kids = childrenOf(gw.gateway.pid).filter((p) => cmdlineOf(p).includes(EVERYTHING_JS));
    return kids.length === 1 ? kids[0] : undefined;
  };

  it('lists each of the group\'s tools once, as g__<tool>', { timeout: 15000 }, guard(async () => {
    const { client, transport } = await connectV1(gw.url);
    try {
      const { items } = await listAll((p) => client.listTools(p), 'tools');
      const names = items.map((t) => t.name);
      assert.equal(new Set(names).size, names.length, `a tool listed twice: ${names}`);
      assert.deepEqual([...names].sort(), directTools.map((n) => `g__${n}`).sort(),
        'the gateway\'s tools vs server-everything\'s own list under the group\'s prefix (and nothing as local__ or cloud__)');
      const st = await gw.status();
      assert.equal(st.groups.length, 1);
      assert.equal(st.groups[0].name, 'g');
      assert.deepEqual(st.groups[0].members.map((m) => [m.name, m.breaker]), [['local', 'closed'], ['cloud', 'closed']]);
      assert.equal(await memberOf(client), 'local', 'with both members healthy, the first one serves');
    } finally { await closeQuietly(client, transport); }
  }));

  it('g__echo keeps answering while local is killed and respawned; unsafe calls in flight fail "in doubt"', { timeout: 50000 }, guard(async () => {
    const killedPid = localPid();
    assert.ok(killedPid, `local's process among the gateway's children: ${childrenOf(gw.gateway.pid).map(cmdlineOf)}`);
    const stats0 = (await gw.status()).stats;

    // One client makes every call: over stdio nothing ties local's sampling request to the call that
    // caused it, so the gateway relays it only while a single client has calls in flight there.
    let samplingAsks = 0;
    let releaseSampling;
    const samplingHeld = new Promise((r) => { releaseSampling = r; });
    const A = await connectV1(gw.url, {
      name: 'group-caller',
      onSample: async () => {
        samplingAsks++;
        await samplingHeld;
        return { role: 'assistant', content: { type: 'text', text: 'too late' }, model: 'test-model', stopReason: 'endTurn' };
      },
    });
    try {
      // The loop: WORKERS workers calling g__echo, each call recorded.
      const results = [];
      let next = 0;
      let inflight = 0;
      let stop = false;
      const worker = async () => {
        while (!stop) {
          const i = next++;
          const t0 = Date.now();
          inflight++;
          try {
            const r = await A.client.callTool({ name: 'g__echo', arguments: { message: `m${i}` } }, undefined, { timeout: CALL_TIMEOUT_MS });
            const ok = r.isError !== true && textOf(r) === `Echo: m${i}`;
            results.push({ i, t0, t1: Date.now(), ok, text: ok ? undefined : JSON.stringify(r) });
          } catch (e) {
            results.push({ i, t0, t1: Date.now(), ok: false, error: String(e?.message ?? e) });
          } finally { inflight--; }
          await sleep(PACE_MS);
        }
      };
      const workers = Array.from({ length: WORKERS }, worker);
      const loopDone = Promise.all(workers);
      try {
        await waitUntil(() => results.length >= 50, '50 echo calls before the kill', () => results.length);

        // Two calls that will be in flight at the kill, both on local (it serves).
        const progress = [];
        const longCall = A.client.callTool({ name: 'g__trigger-long-running-operation', arguments: { duration: 3, steps: 15 } },
          undefined, { timeout: CALL_TIMEOUT_MS, onprogress: (p) => progress.push(p) })
          .then((r) => ({ r }), (e) => ({ e }));
        const samplingCall = A.client.callTool({ name: 'g__trigger-sampling-request', arguments: { prompt: 'hold on', maxTokens: 5 } },
          undefined, { timeout: CALL_TIMEOUT_MS })
          .then((r) => ({ r }), (e) => ({ e }));
        await waitUntil(() => progress.length >= 1, 'the long call\'s first progress (it runs)', () => progress);
        await waitUntil(() => samplingAsks >= 1, 'the sampling call\'s sampling request at its client (it runs)', () => samplingAsks, 10000);
        assert.equal((await gw.status()).groups[0].serving, 'local', 'precondition: local serves the calls about to be cut off');

        // Kill local, with echo calls in flight (as the client sees them: sent, not yet answered).
        await waitUntil(() => inflight >= 2, 'two echo calls in flight', () => inflight, 5000, 0);
        const echoInFlightAtKill = inflight;
        const killedAt = Date.now();
        const doneAtKill = results.length;
        process.kill(killedPid, 'SIGKILL');
        const firstAfterKill = await memberOf(A.client);

        const sampled = await samplingCall;
        releaseSampling();
        assert.ok(sampled.e, `the unannotated call in flight at the kill must fail, not be repeated: ${JSON.stringify(sampled.r)}`);
        assert.match(sampled.e.message, /in doubt/, `its error says it is in doubt: ${sampled.e.message}`);
        const long = await longCall;
        assert.ok(long.r && long.r.isError !== true, `the readOnly/idempotent long call in flight at the kill completes elsewhere: ${long.e ?? JSON.stringify(long.r)}`);
        assert.match(textOf(long.r), /Long running operation completed/);

        // local comes back: a new process, ready, and serving the group again (its breaker closed).
        let last;
        await waitUntil(async () => {
          last = await gw.status();
          const pid = localPid();
          return pid && pid !== killedPid && last.upstreams.find((u) => u.name === 'local')?.state === 'ready' && last.groups[0].serving === 'local';
        }, 'local respawned and serving group g again', () => ({ groups: last?.groups, pid: localPid() }), 25000, 100);
        const backAt = Date.now();
        const doneAtBack = results.length;
        await waitUntil(() => results.length >= doneAtBack + 60, '60 more echo calls after local is back', () => results.length);
        stop = true;
        await loopDone;
        const lastMember = await memberOf(A.client);

        // Every echo call succeeded, the ones in the outage included.
        const failed = results.filter((r) => !r.ok);
        const inDoubt = failed.filter((r) => /in doubt/.test(r.error ?? r.text ?? ''));
        const duringOutage = results.filter((r) => r.t0 >= killedAt && r.t1 <= backAt);
        const st = await gw.status();
        const delta = (k) => st.stats[k] - stats0[k];
        const summary = {
          echoCalls: results.length, failed: failed.length, inDoubt: inDoubt.length, echoInFlightAtKill,
          echoDoneBeforeKill: doneAtKill, echoDuringOutage: duringOutage.length, outageMs: backAt - killedAt,
          firstAfterKill, lastMember, samplingAsks, longCallProgress: progress.map((p) => p.progress).join(','),
          failovers: delta('failovers'), retries: delta('retries'), inDoubtStat: delta('inDoubt'), breakerTransitions: delta('breakerTransitions'),
          members: st.groups[0].members,
        };
        console.log(`[group failover] ${JSON.stringify(summary)}`);
        assert.deepEqual(failed.slice(0, 5), [], `echo is readOnly/idempotent: no call may fail, ${failed.length} did (${inDoubt.length} in doubt, ${echoInFlightAtKill} in flight at the kill)`);
        assert.ok(results.length >= 200, `a few hundred calls: ${results.length}`);
        assert.ok(duringOutage.length >= 1, `echo calls made and answered while local was away: ${duringOutage.length}`);
        assert.equal(firstAfterKill, 'cloud', 'right after the kill, cloud serves the group');
        assert.equal(lastMember, 'local', 'once local is back, it serves the group again');
        assert.equal(samplingAsks, 1, 'the in-doubt call was never sent to cloud (its sampling request came once)');
        assert.equal(delta('inDoubt'), 1, 'one call in doubt: the unannotated one');
        assert.ok(delta('failovers') >= 1, `the long call at least failed over: ${delta('failovers')}`);
        assert.deepEqual(st.groups[0].members.map((m) => [m.name, m.breaker]), [['local', 'closed'], ['cloud', 'closed']]);
      } finally {
        stop = true;
        releaseSampling();
        await loopDone;
      }
    } finally {
      await closeQuietly(A.client, A.transport);
    }
  }));
});
