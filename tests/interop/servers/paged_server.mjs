// A real MCP upstream that paginates, for the node interop tests: the official TypeScript SDK's
// low-level Server (@modelcontextprotocol/sdk 1.32.2) over stdio, with its own cursor handling for
// tools/list, prompts/list, resources/list and resources/templates/list.
//
// - tools      paged-tool-01 .. paged-tool-23, 5 a page (5 pages); tools/call answers "called <name>"
// - prompts    paged-prompt-01 .. paged-prompt-07, 3 a page (3 pages)
// - resources  paged://item/01 .. paged://item/11, 4 a page (3 pages)
// - templates  paged://tmpl/{a} .. paged://tmpl/{c}, 2 a page (2 pages)
//
// Cursors are opaque: base64url of {k: method, o: offset, s: a secret drawn at start-up}. A cursor that
// does not decode, belongs to another list, points outside the list or carries another secret (say, one
// minted by an earlier process) is refused with JSON-RPC error -32602 (Invalid params).
//
// With `--log FILE`, every list request is appended to FILE as one JSON line, written synchronously
// before the answer is sent: {method, cursor (null for the first page), ok, nextCursor?, count?,
// error?}. Tests read it to see which cursors the gateway passed back.
//
// Usage: node paged_server.mjs [--log FILE]
// The catalogue is exported (PAGED_CATALOG) so tests know the full lists; importing this module does not
// start the server.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const pad = (i) => String(i + 1).padStart(2, '0');

export const PAGED_CATALOG = {
  tools: { method: 'tools/list', field: 'tools', pageSize: 5, items: Array.from({ length: 23 }, (_, i) => `paged-tool-${pad(i)}`) },
  prompts: { method: 'prompts/list', field: 'prompts', pageSize: 3, items: Array.from({ length: 7 }, (_, i) => `paged-prompt-${pad(i)}`) },
  resources: { method: 'resources/list', field: 'resources', pageSize: 4, items: Array.from({ length: 11 }, (_, i) => `paged://item/${pad(i)}`) },
  templates: { method: 'resources/templates/list', field: 'resourceTemplates', pageSize: 2, items: ['paged://tmpl/{a}', 'paged://tmpl/{b}', 'paged://tmpl/{c}'] },
};

async function main() {
  const { Server } = await import('@modelcontextprotocol/sdk/server/index.js');
  const { StdioServerTransport } = await import('@modelcontextprotocol/sdk/server/stdio.js');
  const {
    CallToolRequestSchema, ErrorCode, GetPromptRequestSchema, ListPromptsRequestSchema, ListResourcesRequestSchema,
    ListResourceTemplatesRequestSchema, ListToolsRequestSchema, ReadResourceRequestSchema,
  } = await import('@modelcontextprotocol/sdk/types.js');
  // The SDK answers a thrown error with its `code` and `message` (McpError would prefix the message).
  const invalidParams = (message) => Object.assign(new Error(message), { code: ErrorCode.InvalidParams });

  const argv = process.argv.slice(2);
  const li = argv.indexOf('--log');
  const logFile = li >= 0 ? argv[li + 1] : undefined;
  const log = (entry) => { if (logFile) fs.appendFileSync(logFile, `${JSON.stringify(entry)}\n`); };

  const secret = crypto.randomBytes(8).toString('hex');
  const mint = (method, offset) => Buffer.from(JSON.stringify({ k: method, o: offset, s: secret })).toString('base64url');
  const offsetOf = (method, cursor, total) => {
    if (cursor === undefined) return 0;
    let c;
    try { c = JSON.parse(Buffer.from(String(cursor), 'base64url').toString('utf8')); } catch { c = undefined; }
    if (!c || c.k !== method || c.s !== secret || !Number.isInteger(c.o) || c.o <= 0 || c.o >= total) {
      throw invalidParams(`Invalid cursor for ${method}: ${JSON.stringify(cursor)}`);
    }
    return c.o;
  };

  const server = new Server({ name: 'paged-upstream', version: '1.0.0' },
    { capabilities: { tools: {}, prompts: {}, resources: {} } });

  const paginate = (list, toItem) => async (req) => {
    const cursor = req.params?.cursor;
    let offset;
    try {
      offset = offsetOf(list.method, cursor, list.items.length);
    } catch (e) {
      log({ method: list.method, cursor: cursor ?? null, ok: false, error: e.message });
      throw e;
    }
    const end = Math.min(offset + list.pageSize, list.items.length);
    const result = { [list.field]: list.items.slice(offset, end).map(toItem) };
    if (end < list.items.length) result.nextCursor = mint(list.method, end);
    log({ method: list.method, cursor: cursor ?? null, ok: true, count: end - offset, nextCursor: result.nextCursor ?? null });
    return result;
  };

  server.setRequestHandler(ListToolsRequestSchema, paginate(PAGED_CATALOG.tools,
    (name) => ({ name, description: `paged tool ${name}`, inputSchema: { type: 'object', properties: {} } })));
  server.setRequestHandler(ListPromptsRequestSchema, paginate(PAGED_CATALOG.prompts,
    (name) => ({ name, description: `paged prompt ${name}` })));
  server.setRequestHandler(ListResourcesRequestSchema, paginate(PAGED_CATALOG.resources,
    (uri) => ({ uri, name: uri.replace('paged://item/', 'item-'), mimeType: 'text/plain' })));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, paginate(PAGED_CATALOG.templates,
    (uriTemplate) => ({ uriTemplate, name: uriTemplate.replace(/\W+/g, '-'), mimeType: 'text/plain' })));

  server.setRequestHandler(CallToolRequestSchema, async (req) => {
    if (!PAGED_CATALOG.tools.items.includes(req.params.name)) throw invalidParams(`Unknown tool: ${req.params.name}`);
    return { content: [{ type: 'text', text: `called ${req.params.name}` }] };
  });
  server.setRequestHandler(GetPromptRequestSchema, async (req) => {
    if (!PAGED_CATALOG.prompts.items.includes(req.params.name)) throw invalidParams(`Unknown prompt: ${req.params.name}`);
    return { messages: [{ role: 'user', content: { type: 'text', text: `prompt ${req.params.name}` } }] };
  });
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const { uri } = req.params;
    if (!PAGED_CATALOG.resources.items.includes(uri)) throw invalidParams(`Unknown resource: ${uri}`);
    return { contents: [{ uri, mimeType: 'text/plain', text: `content of ${uri}` }] };
  });

  await server.connect(new StdioServerTransport());
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
