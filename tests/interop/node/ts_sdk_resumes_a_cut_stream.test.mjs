// The official TypeScript SDK v1 (1.32.2) client resumes a call's event stream that the network cut, and
// the gateway (a legacy session, 2025-11-25) carries it on: every progress notification reaches the
// caller once, then the result, and the upstream ran the tool once.
//
//   SDK Client ──► servers/cut_proxy.py ──► mcp-edge-gateway ──stdio──► common/stdio-tap.mjs ──► server-everything
//
// - server-everything's trigger-long-running-operation sends notifications/progress at each of its
//   steps when the request carries a progressToken (the SDK adds one with `onprogress`). The stdio tap
//   logs every JSON-RPC message between the gateway and server-everything, so the test counts how many
//   times the gateway sent the call upstream.
// - cut_proxy.py resets (RST, both sides) the connection that carries the second progress event of a
//   response stream, once. The SDK's StreamableHTTPClientTransport reconnects a POST's stream only when
//   it has seen an event id on it (the gateway's priming event `<stream>-0`, sent as the reply becomes a
//   stream): after the server's `retry` delay it sends GET with `Last-Event-ID: <last id it saw>`, and the
//   gateway answers with what the client missed and the rest of the stream, up to the response.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  EVERYTHING_JS, INTEROP_DIR, PYTHON, STDIO_TAP, childrenOf, readJsonLines, startGateway, textOf,
} from './common/topology.mjs';
import { closeQuietly, connectV1 } from './common/harness.mjs';

const CUT_PROXY = path.join(INTEROP_DIR, 'servers', 'cut_proxy.py');
const TOOL = 'trigger-long-running-operation';
const STEPS = 6;
const DURATION_S = 3;

/** servers/cut_proxy.py in front of `targetPort`; stats() asks it what it saw. */
async function startCutProxy(targetPort, tmp) {
  const errFile = path.join(tmp, 'cut-proxy.stderr.log');
  const errFd = fs.openSync(errFile, 'w');
  const child = spawn(PYTHON, [CUT_PROXY, '--target', String(targetPort), '--marker', 'notifications/progress', '--count', '2'],
    { stdio: ['pipe', 'pipe', errFd] });
  fs.closeSync(errFd);
  let buf = '';
  const waiters = [];
  child.stdout.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiters.shift()?.(line);
    }
  });
  const nextLine = (what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cut_proxy.py: no ${what} within 10 s; stderr: ${fs.readFileSync(errFile, 'utf8')}`)), 10000);
    waiters.push((line) => { clearTimeout(timer); resolve(line); });
  });
  const ready = await nextLine('READY line');
  const m = ready.match(/^READY (\d+)$/);
  assert.ok(m, `cut_proxy.py said ${ready}`);
  return {
    url: new URL(`http://127.0.0.1:${m[1]}/mcp`),
    async stats() {
      const answer = nextLine('stats');
      child.stdin.write('stats\n');
      return JSON.parse(await answer);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('TS SDK v1 client: a POST stream cut by the network is resumed with Last-Event-ID', { timeout: 60000 }, () => {
  let tmp;
  let gw;
  let proxy;
  let tapLog;
  let gwChildren = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-node-resume-'));
    tapLog = path.join(tmp, 'everything.tap.jsonl');
    fs.writeFileSync(tapLog, '');
    gw = await startGateway(tmp, {
      mcpServers: {
        everything: { command: process.execPath, args: [STDIO_TAP, '--log', tapLog, '--', process.execPath, EVERYTHING_JS, 'stdio'] },
      },
    });
    gwChildren = childrenOf(gw.gateway.pid);
    proxy = await startCutProxy(gw.port, tmp);
  }, { timeout: 45000 });

  after(async () => {
    await proxy?.stop();
    // The tap and its server-everything end with the gateway; make sure of it (by PID).
    const tree = gwChildren.flatMap((p) => [p, ...childrenOf(p)]);
    await gw?.stop();
    for (const p of tree) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('gets every progress once and the result; the tool ran once', { timeout: 20000 }, async (t) => {
    const { client, transport, errors } = await connectV1(proxy.url, { name: 'ts-resume' });
    let stats;
    try {
      assert.equal(transport.protocolVersion, '2025-11-25', 'the session is a resumable (2025-11-25) one');
      const seen = [];
      const r = await client.callTool({ name: `everything__${TOOL}`, arguments: { duration: DURATION_S, steps: STEPS } }, undefined,
        { onprogress: (p) => seen.push(p), timeout: 20000 });
      stats = await proxy.stats();

      assert.notEqual(r.isError, true, JSON.stringify(r));
      assert.equal(textOf(r), `Long running operation completed. Duration: ${DURATION_S} seconds, Steps: ${STEPS}.`);
      assert.deepEqual(seen.map((p) => p.progress), Array.from({ length: STEPS }, (_, i) => i + 1),
        `the progress the caller saw: ${JSON.stringify(seen)}`);
      assert.ok(seen.every((p) => p.total === STEPS), JSON.stringify(seen));

      // The connection carrying the call's stream was really cut, and the SDK noticed.
      assert.equal(stats.cuts.length, 1, JSON.stringify(stats.cuts));
      const cutConn = stats.cuts[0].conn;
      const calls = stats.requests.filter((q) => q.method === 'POST' && q.rpc?.method === 'tools/call');
      assert.equal(calls.length, 1, `the client sent the call ${calls.length} times: ${JSON.stringify(calls)}`);
      assert.equal(calls[0].conn, cutConn, 'the cut connection is the one that carried the call');
      assert.ok(errors.some((e) => /SSE stream disconnected/.test(String(e?.message ?? e))),
        `the transport reported no disconnect: ${errors.map(String)}`);
      // ... and resumed it with GET and Last-Event-ID, on another connection of the same session.
      const resumes = stats.requests.filter((q) => q.method === 'GET' && q.headers['last-event-id'] !== undefined);
      assert.equal(resumes.length, 1, `resumptions: ${JSON.stringify(resumes)}`);
      assert.notEqual(resumes[0].conn, cutConn);
      assert.equal(resumes[0].headers['mcp-session-id'], calls[0].headers['mcp-session-id']);
      // From an event it got before the cut, past the priming one (`<stream>-0`).
      const resumedFrom = resumes[0].headers['last-event-id'];
      const delivered = stats.cuts[0].event_ids;
      assert.ok(delivered.includes(resumedFrom) && !resumedFrom.endsWith('-0'),
        `the client resumed from ${resumedFrom}; the ids on the stream before the cut were ${delivered}`);

      // The gateway sent the call upstream once, and it ran to its end. The tap logs what it passes
      // on after passing it, so its line for the answer may land just after the client has it.
      let tapped = readJsonLines(tapLog).map((e) => e.msg);
      for (let i = 0; i < 40 && !tapped.some((msg) => msg.result && !msg.method); i++) {
        await new Promise((res) => setTimeout(res, 50));
        tapped = readJsonLines(tapLog).map((e) => e.msg);
      }
      const upCalls = tapped.filter((msg) => msg.method === 'tools/call' && msg.params?.name === TOOL);
      assert.equal(upCalls.length, 1, `tools/call sent upstream: ${JSON.stringify(upCalls)}`);
      assert.ok(tapped.some((msg) => msg.id === upCalls[0].id && msg.result && !msg.method), 'server-everything answered the call');
      assert.ok(!tapped.some((msg) => msg.method === 'notifications/cancelled'), 'the cut cancelled the call upstream');
    } catch (e) {
      console.error(`\n### test failed: ${t.name}\nproxy: ${JSON.stringify(stats ?? await proxy.stats().catch(() => null))}`);
      gw.dumpLogs();
      throw e;
    } finally {
      await closeQuietly(client, transport);
    }
  });
});
