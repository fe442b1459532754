// The offline PWA's page. It registers sw.js (the gateway and the app shell cache) and then is an
// ordinary MCP client of `./mcp`: the official TypeScript SDK's Client over Streamable HTTP. What
// MCP itself does not tell (the upstreams' state, the cache's counters, the offline queue) the page
// asks the worker by postMessage.
import { Client, StreamableHTTPClientTransport } from '../vendor/sdk-bench.js';

const CACHE_META = 'io.github.mcp-edge-gateway/cache';
const QUEUED_META = 'io.github.mcp-edge-gateway/queued';
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};

// The worker's configuration (see sw.js): this page's query string, remembered for the next launch
// (the manifest's start_url has none). The worker's URL stays the same from one launch to the next,
// so a launch does not replace it.
const KEYS = ['upstream', 'name', 'queue', 'ttl'];
const query = new URLSearchParams(location.search);
const cfg = JSON.parse(localStorage.getItem('mcp-edge-pwa') ?? '{}');
for (const k of KEYS) if (query.has(k)) cfg[k] = query.get(k);
localStorage.setItem('mcp-edge-pwa', JSON.stringify(cfg));
const swUrl = `sw.js?${new URLSearchParams(KEYS.filter((k) => cfg[k] != null).map((k) => [k, cfg[k]]))}`;

let client;
let tools = [];
const last = { status: null, list: null, call: null };
let relisting = false;

async function startWorker() {
  try {
    await navigator.serviceWorker.register(swUrl, { type: 'module', scope: './' });
  } catch (e) {
    // Offline with a worker already installed: keep it.
    if (!navigator.serviceWorker.controller) throw e;
  }
  await navigator.serviceWorker.ready;
  if (!navigator.serviceWorker.controller) {
    await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }));
  }
}

/** Ask the worker something (`status`, `retry`); resolves to its reply. */
async function ask(type) {
  const worker = navigator.serviceWorker.controller ?? (await navigator.serviceWorker.ready).active;
  const { port1, port2 } = new MessageChannel();
  let timer;
  const reply = new Promise((resolve, reject) => {
    port1.onmessage = (e) => (e.data.ok ? resolve(e.data) : reject(new Error(e.data.error)));
    timer = setTimeout(() => reject(new Error('the worker did not answer')), 10000);
  });
  worker.postMessage({ type }, [port2]);
  return reply.finally(() => { clearTimeout(timer); port1.close(); });
}

// ---- Rendering -------------------------------------------------------------------------------------

function showNetwork() {
  const on = navigator.onLine;
  $('net').textContent = on ? 'online' : 'offline';
  $('net').className = `badge ${on ? 'online' : 'offline'}`;
}

function showStatus(s) {
  last.status = s;
  const { status, queue, config } = s;
  // The upstream is back while the tools shown came from the cache: list them again.
  if (last.list?.cache && !relisting && status.upstreams.some((u) => u.name === last.list.cache.upstream && u.state === 'ready')) {
    relisting = true;
    listTools().catch(() => {}).finally(() => { relisting = false; });
  }
  $('upstreams').replaceChildren(...status.upstreams.map((u) => el('tr', {},
    el('td', { textContent: u.name }),
    el('td', { className: 'url', textContent: u.name === config.name ? config.upstream : 'in the worker' }),
    el('td', { className: `state ${u.state}`, textContent: u.state }),
    el('td', { textContent: u.era ?? '—' }),
    el('td', { textContent: u.tools }))));
  $('worker').textContent = `worker started ${new Date(s.startedAt).toLocaleTimeString()}`;
  const c = status.cache;
  $('cache').replaceChildren(...[
    ['entries', c.entries], ['hits', c.hits], ['misses', c.misses],
    ['stale answers', c.stale], ['evictions', c.evictions], ['bytes', c.bytes],
  ].map(([k, v]) => el('div', {}, el('dt', { textContent: k }), el('dd', { textContent: v }))));
  const waiting = queue.filter((e) => e.status === 'queued' || e.status === 'running').length;
  $('queue-note').textContent = waiting
    ? `${waiting} call(s) waiting for the upstream; they run once each, in order, when it is back.`
    : `Nothing waiting.${queue.length ? ' Finished calls stay listed for a day.' : ''}`;
  $('queue').replaceChildren(...queue.map((e) => el('tr', {},
    el('td', { textContent: e.position }),
    el('td', { textContent: e.taskId.slice(0, 8) }),
    el('td', { textContent: e.name }),
    el('td', { className: 'args', textContent: JSON.stringify(e.arguments) }),
    el('td', { className: `status-${e.status}`, textContent: e.status }),
    el('td', { textContent: e.attempts }),
    el('td', { textContent: e.result?.content?.map((x) => x.text ?? `[${x.type}]`).join(' ') ?? e.error?.message ?? e.message ?? '' }))));
}

async function refreshStatus() {
  try { showStatus(await ask('status')); } catch (e) { $('worker').textContent = `worker: ${e.message}`; }
}

const queueable = (t) => {
  const q = last.status?.config.queue ?? [];
  const own = t.name.slice((last.status?.config.name ?? '').length + 2);
  return q.includes('*') || q.includes(own) || (q.includes('@idempotentHint') && t.annotations?.idempotentHint === true);
};

/** tools/list (every page); the gateway marks lists it answered from its cache. */
async function listTools() {
  const all = [];
  let cursor;
  let cached = null;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    all.push(...page.tools);
    cached ??= page._meta?.[CACHE_META] ?? null;
    cursor = page.nextCursor;
  } while (cursor);
  tools = all;
  last.list = { tools: all.map((t) => t.name), cache: cached };
  const note = $('tools-note');
  note.className = cached ? 'note stale' : 'note';
  note.textContent = cached
    ? `From the worker's cache: ${cached.upstream} is unreachable${cached.stale ? ', and the list is past its TTL' : ''} (${Math.round(cached.ageMs / 1000)} s old).`
    : `${all.length} tools, live from the upstream.`;
  $('tools').replaceChildren(...all.map((t) => el('li', {},
    el('code', { textContent: t.name }), ' ',
    ...(queueable(t) ? [el('span', { className: 'chip', textContent: 'queued offline' }), ' '] : []),
    el('span', { className: 'muted', textContent: t.description ?? '' }))));
  const select = $('tool');
  const keep = select.value;
  select.replaceChildren(...all.map((t) => el('option', { value: t.name, textContent: t.name })));
  if (all.some((t) => t.name === keep)) select.value = keep;
  else prefillArgs();
  return last.list;
}

/** A skeleton of the tool's arguments from its input schema. */
function prefillArgs() {
  const t = tools.find((x) => x.name === $('tool').value);
  const args = {};
  for (const [k, p] of Object.entries(t?.inputSchema?.properties ?? {})) {
    if (!(t.inputSchema.required ?? []).includes(k)) continue;
    args[k] = p.default ?? ({ string: '', number: 0, integer: 0, boolean: false, array: [], object: {} })[p.type] ?? null;
  }
  $('args').value = JSON.stringify(args);
}

/** tools/call; a call the gateway queued says so in `_meta`. */
async function callTool(name, args) {
  const out = $('result');
  try {
    const r = await client.callTool({ name, arguments: args });
    const queued = r._meta?.[QUEUED_META];
    const text = (r.content ?? []).map((c) => c.text ?? `[${c.type}]`).join('\n');
    last.call = { name, args, result: r, queued: queued ?? null };
    out.className = queued ? 'result queued' : r.isError ? 'result error' : 'result';
    out.textContent = text || JSON.stringify(r.structuredContent ?? r, null, 2);
  } catch (e) {
    last.call = { name, args, error: { code: e.code, message: e.message } };
    out.className = 'result error';
    out.textContent = `${e.code ?? 'error'}: ${e.message}`;
  }
  refreshStatus();
  return last.call;
}

// ---- Start -------------------------------------------------------------------------------------------

async function start() {
  showNetwork();
  await startWorker();
  client = new Client({ name: 'mcp-edge-pwa', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL('mcp', location.href)));
  await refreshStatus();
  await listTools();
  setInterval(refreshStatus, 1000);
  return true;
}

$('tool').addEventListener('change', prefillArgs);
$('call').addEventListener('submit', async (e) => {
  e.preventDefault();
  let args;
  try { args = JSON.parse($('args').value || '{}'); } catch (err) {
    $('result').className = 'result error';
    $('result').textContent = `Arguments: ${err.message}`;
    return;
  }
  $('call-button').disabled = true;
  try { await callTool($('tool').value, args); } finally { $('call-button').disabled = false; }
});
$('reload-tools').addEventListener('click', () => listTools().catch((e) => { $('tools-note').textContent = e.message; }));
$('retry').addEventListener('click', async () => { showStatus(await ask('retry')); });
addEventListener('offline', showNetwork);
// Back online: nudge the worker's gateway (it reconnects and replays the queue; the status poll then
// lists the tools again).
addEventListener('online', async () => {
  showNetwork();
  try { showStatus(await ask('retry')); } catch { /* the poll shows it */ }
});

// For the tests (and the console): what the page last saw, and its actions.
window.pwa = {
  ready: start().catch((e) => {
    window.pwa.error = e.message;
    $('tools-note').textContent = `Could not start: ${e.message}`;
    return false;
  }),
  last,
  listTools,
  callTool,
  status: () => ask('status'),
};
