// Compiled with `tsc --noEmit` (never run): the package's TypeScript types accept correct use and
// reject wrong use (each @ts-expect-error must be an error, or tsc fails).
import init, { Gateway, GatewayTransport, type GatewayConfig, type QueuedCall, type ToolHandler } from '../../pkg/index.js';

export async function correctUse(): Promise<void> {
  await init();
  const config: GatewayConfig = {
    upstreams: {
      board: { url: 'http://127.0.0.1:8787/mcp', headers: { Authorization: 'Bearer x' }, prefix: 'b', era: 'auto' },
      desk: { url: 'ws://127.0.0.1:8787/ws', transport: 'websocket', prefix: false },
    },
    namespace: { separator: '__' },
    local: { name: 'page' },
    requestTimeoutMs: 30_000,
    reconnectBackoffMs: { min: 1000, max: 60_000 },
    onElicitation: async () => ({ action: 'accept', content: { name: 'Ada' } }),
  };
  const gw: Gateway = await Gateway.create(config);
  const tools: any[] = await gw.listTools();
  const handler: ToolHandler = (args) => ({ got: args });
  const off: () => void = gw.registerTool({ name: 'echo', inputSchema: { type: 'object' } }, handler);
  off();
  const unsubscribe: () => void = gw.on('listchanged', () => {});
  unsubscribe();
  await gw.callTool('board__load', {});
  await gw.readResource('demo://x');
  await gw.getPrompt('board__p', { a: 'b' });
  const response = await gw.request({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
  void response;
  const transport = new GatewayTransport(gw);
  await transport.start();
  await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  await transport.close();
  void tools;
  const offline = await Gateway.create({
    storage: 'indexeddb',
    storageName: 'app',
    cacheMaxBytes: 1 << 20,
    upstreams: { cloud: { url: 'https://x/mcp', offlineQueue: ['add_note', '@idempotentHint'], cacheTtlMs: { 'resources/read': 5000 } } },
  });
  const queued: QueuedCall[] = offline.listQueue();
  if (queued[0]?.status === 'queued') await offline.cancelQueued(queued[0].taskId);
  await offline.queuedResult('some-task');
  offline.retryNow();
  offline.close();
  gw.close();
}

export async function wrongUse(gw: Gateway): Promise<void> {
  // @ts-expect-error transport must be "http" or "websocket"
  await Gateway.create({ upstreams: { a: { url: 'x', transport: 'ftp' } } });
  // @ts-expect-error url is required
  await Gateway.create({ upstreams: { a: { transport: 'http' } } });
  // @ts-expect-error prefix is a string or false
  await Gateway.create({ upstreams: { a: { url: 'x', prefix: true } } });
  // @ts-expect-error unknown event
  gw.on('bogus', () => {});
  // @ts-expect-error a tool needs a name
  gw.registerTool({ description: 'nameless' }, () => 1);
  // @ts-expect-error callTool takes a name
  await gw.callTool(42, {});
  // @ts-expect-error storage is "indexeddb" or "memory"
  await Gateway.create({ storage: 'localStorage' });
  // @ts-expect-error offlineQueue lists tool names
  await Gateway.create({ upstreams: { a: { url: 'x', offlineQueue: 'all' } } });
  // @ts-expect-error a message must be JSON-RPC 2.0
  await gw.request({ jsonrpc: '1.0', id: 1, method: 'x' });
}
