// Shared test plumbing: one topology per test file, gateway stderr printed when a test fails,
// wire taps on SDK transports, and v1 (legacy-era) client construction.
import { after, before } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { authHeaders, startTopology } from './topology.mjs';

/**
 * Registers before/after hooks that start and stop one topology for the enclosing describe().
 * Returns a getter; use guard() around test bodies so the gateway's stderr is printed on failure.
 */
export function useTopology(options = {}) {
  const ref = { topo: undefined };
  before(async () => { ref.topo = await startTopology(options); }, { timeout: 60000 });
  after(async () => { await ref.topo?.stop(); });
  return ref;
}

/** Wrap a test body: on failure, print the gateway's (and modern upstream's) stderr, then rethrow. */
export function guard(ref, fn) {
  return async (t) => {
    try {
      await fn(t, ref.topo);
    } catch (e) {
      console.error(`\n### test failed: ${t.name}`);
      ref.topo?.dumpLogs();
      throw e;
    }
  };
}

/**
 * Record JSON-RPC messages a connected SDK transport sends and receives (v1 and v2 transports alike).
 * Call after client.connect() (connect installs onmessage).
 */
export function tapTransport(transport) {
  const tap = { sent: [], received: [] };
  const send = transport.send.bind(transport);
  transport.send = (msg, opts) => { tap.sent.push(structuredClone(msg)); return send(msg, opts); };
  const onmessage = transport.onmessage;
  transport.onmessage = (msg, extra) => { tap.received.push(structuredClone(msg)); return onmessage?.(msg, extra); };
  return tap;
}

/** A fetch that records every HTTP request (method, mcp headers, JSON-RPC method) before sending it. */
export function recordingFetch(log) {
  return async (url, init = {}) => {
    const h = new Headers(init.headers ?? {});
    let body;
    try { body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined; } catch { body = undefined; }
    const res = await fetch(url, init);
    log.push({
      httpMethod: init.method ?? 'GET',
      status: res.status,
      protocolVersionHeader: h.get('mcp-protocol-version'),
      mcpMethodHeader: h.get('mcp-method'),
      sessionHeader: h.get('mcp-session-id'),
      rpcMethod: body?.method,
    });
    return res;
  };
}

/**
 * A v1 (@modelcontextprotocol/sdk 1.32.2) client over Streamable HTTP, with sampling, elicitation and
 * roots declared and handled by the given functions. Returns { client, transport, errors }.
 * Its requests carry `headers` (default: authHeaders(), the test token in auth mode).
 */
export async function connectV1(url, { name = 'node-v1-test', onSample, onElicit, roots, headers = authHeaders() } = {}) {
  const client = new Client({ name, version: '0.0.1' },
    { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } });
  const errors = [];
  client.onerror = (e) => errors.push(e);
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    if (!onSample) throw new Error('unexpected sampling/createMessage');
    return onSample(req.params);
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    if (!onElicit) throw new Error('unexpected elicitation/create');
    return onElicit(req.params);
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: roots ?? [{ uri: 'file:///tmp', name: 'tmp' }] }));
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  await client.connect(transport);
  return { client, transport, errors };
}

/** Close an SDK client (ending its session with DELETE first when it has one); never throws. */
export async function closeQuietly(client, transport) {
  try { if (transport?.sessionId) await transport.terminateSession(); } catch { /* already gone */ }
  try { await client?.close(); } catch { /* ignore */ }
}
