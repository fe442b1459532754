// The browser connector (fetch) resumes the streams a legacy (2025-11-25) upstream ends, in Chromium.
// The page (www/tests/resume.html) creates a Gateway with one upstream, tests/interop/servers/
// resumable_server.py (stdlib http.server, raw SSE, on another origin: it answers CORS preflights and
// exposes Mcp-Session-Id). That server ends every standalone GET stream right after one event
// (`id: g-<n>`, `retry: 500`), and ends the SSE reply to a `slow_echo` call after its priming event
// (`id: p<k>-0`, `retry: 300`) and one notification (`id: p<k>-1`), before the answer. It logs, in its
// own clock, when each GET arrived (with its Last-Event-ID and Origin) and when it ended each stream,
// and each run of the tool; the test reads that from its /log endpoint.
// - The page's GET stream is opened again 450–700 ms after the server ended it (retry 500), with
//   Last-Event-ID the last id the server sent, several times in a row.
// - A call whose POST stream was cut is answered: the page resumed it with a GET carrying
//   Last-Event-ID p<k>-1 after the 300 ms retry, the answer came on that stream, the tool ran once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, startWeb, launchChromium } from './harness.mjs';

const PYTHON = join(ROOT, 'tests/interop/.venv/bin/python');
const SERVER = join(ROOT, 'tests/interop/servers/resumable_server.py');
const TOOL = 'resumable__slow_echo';
const LEGACY = '2025-11-25';
let web, browser, page, server, serverPort, webOrigin;
let serverErr = '';

const serverLog = async () => (await fetch(`http://127.0.0.1:${serverPort}/log`)).json();
const explain = (log) => JSON.stringify({ gets: log.gets, calls: log.calls, runs: log.runs,
  posts: log.posts.map((p) => [p.method, p.id, +p.t.toFixed(3)]), options: log.options.length }, null, 1);
const waitFor = async (what, pred, ms = 10000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${explain(await serverLog())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

before(async () => {
  await access(join(ROOT, 'pkg', 'mcp_edge_gateway_bg.wasm')).catch(() => { throw new Error('pkg/ is missing: run scripts/build-npm.sh'); });
  server = spawn(PYTHON, [SERVER, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr.on('data', (d) => { serverErr += d; });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).once('line', resolve);
    server.once('exit', (c) => reject(new Error(`resumable_server.py exited with ${c}\n${serverErr}`)));
  });
  assert.match(line, /^READY \d+$/);
  serverPort = Number(line.split(' ')[1]);
  web = await startWeb();
  webOrigin = `http://127.0.0.1:${web.port}`;
  browser = await launchChromium();
  page = await browser.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${webOrigin}/www/tests/resume.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 15000 });
  const tools = await page.evaluate((u) => window.t.start(u), `http://127.0.0.1:${serverPort}/mcp`);
  assert.deepEqual(tools, [TOOL]);
});

after(async () => {
  await page?.evaluate(() => window.t.close()).catch(() => {});
  await browser?.close();
  web?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGKILL');
    await new Promise((r) => server.once('exit', r));
  }
});

const session = (log) => {
  assert.equal(log.sessions.length, 1, `the page should hold one session upstream\n${explain(log)}`);
  return log.sessions[0];
};

test('the page reopens the GET stream after the server\'s retry, with Last-Event-ID', async () => {
  await waitFor('four standalone GET streams opened and ended', async () =>
    (await serverLog()).gets.filter((g) => g.kind === 'standalone' && g.t_end !== null).length >= 4);
  const log = await serverLog();
  const sid = session(log);
  assert.ok(log.gets.every((g) => g.kind !== 'refused'), explain(log));
  const gets = log.gets.filter((g) => g.kind === 'standalone');
  assert.equal(gets[0].last_event_id, null, `the first GET stream starts fresh\n${explain(log)}`);
  const gaps = [];
  for (let i = 1; i < gets.length; i++) {
    const [prev, next] = [gets[i - 1], gets[i]];
    assert.notEqual(prev.t_end, null, `a GET came while stream ${prev.stream} was open\n${explain(log)}`);
    assert.equal(next.origin, webOrigin, 'the GET came from the page');
    assert.equal(next.session, sid);
    assert.equal(next.version, LEGACY);
    assert.match(next.accept, /text\/event-stream/);
    assert.equal(next.last_event_id, prev.sent_ids.at(-1),
      `GET at ${next.t.toFixed(3)} carried Last-Event-ID ${next.last_event_id}; the stream before it sent ${prev.sent_ids}\n${explain(log)}`);
    const gap = next.t - prev.t_end;
    gaps.push(Math.round(gap * 1000));
    assert.ok(gap >= 0.45 && gap <= 0.7,
      `GET stream ${prev.stream} ended at ${prev.t_end.toFixed(3)}; the next GET came ${Math.round(gap * 1000)} ms later (retry 500)\n${explain(log)}`);
  }
  assert.ok(gaps.length >= 3, String(gaps));
  assert.ok(log.options.length >= 1, 'the page preflighted its requests (another origin)');
  // What each stream carried reached the page, once each, in order.
  const ended = gets.filter((g) => g.t_end !== null).map((g) => `standalone stream ${g.sent_ids.at(-1)}`);
  const pageLogs = async () => (await page.evaluate(() => window.t.logs())).filter((l) => l.logger === 'resumable').map((l) => l.data);
  await waitFor('the page to see every standalone stream\'s notification', async () => (await pageLogs()).length >= ended.length);
  assert.deepEqual((await pageLogs()).slice(0, ended.length), ended);
  console.log(`page's GET stream reopened after ${gaps} ms, Last-Event-IDs ${gets.map((g) => g.last_event_id)}`);
});

test('a call whose POST stream was cut is answered after the page resumes it', async () => {
  const sid = session(await serverLog());
  const out = await page.evaluate(([n, a]) => window.t.call(n, a), [TOOL, { text: 'hello from the page' }]);
  const log = await serverLog();
  assert.ok(!out.error, `${out.error}\n${explain(log)}`);
  assert.deepEqual(out.result.content, [{ type: 'text', text: 'echo: hello from the page' }]);
  assert.ok(!out.result.isError);

  const posts = log.posts.filter((p) => p.method === 'tools/call');
  assert.equal(posts.length, 1, `the call was POSTed ${posts.length} times\n${explain(log)}`);
  assert.equal(log.calls.length, 1);
  const call = log.calls[0];
  assert.deepEqual(call.sent_ids, [`p${call.k}-0`, `p${call.k}-1`], 'the POST stream ended after the priming event and one notification');
  assert.notEqual(call.t_end, null);
  const resumes = log.gets.filter((g) => g.kind === 'resume');
  assert.equal(resumes.length, 1, `expected one resumption GET\n${explain(log)}`);
  const res = resumes[0];
  assert.equal(res.last_event_id, call.sent_ids.at(-1), explain(log));
  assert.equal(res.session, sid);
  assert.equal(res.version, LEGACY);
  assert.equal(res.origin, webOrigin);
  const gap = res.t - call.t_end;
  assert.ok(gap >= 0.25 && gap <= 0.6,
    `the POST stream ended at ${call.t_end.toFixed(3)}; the resuming GET came ${Math.round(gap * 1000)} ms later (retry 300)\n${explain(log)}`);
  assert.deepEqual(res.sent_ids, [`p${call.k}-2`], 'the answer went out on the resumed stream');
  assert.equal(call.response_id, posts[0].id);
  assert.deepEqual(log.runs.map((r) => [r.k, r.request_id]), [[call.k, call.request_id]], 'the tool ran exactly once');
  assert.ok(out.ms >= 300, `answered in ${out.ms} ms: before a resume could have happened`);
  console.log(`page: POST stream ended, resumed ${Math.round(gap * 1000)} ms later with Last-Event-ID ${res.last_event_id}; answered in ${Math.round(out.ms)} ms`);
});
