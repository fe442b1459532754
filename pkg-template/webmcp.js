// WebMCP (document.modelContext, webmachinelearning/webmcp) both ways. The package entry loads this
// module only when a page uses it (so the default entry does not carry it):
//
//   const exposure = await gateway.exposeToWebMcp();   // the gateway's tools → document.modelContext
//   exposure.close();                                   // unregisters them all
//
//   const gw = await Gateway.create({ webmcp: true });  // the page's WebMCP tools → the gateway,
//                                                       // as `page__<name>`, callable by its MCP clients
//
// Exposed tools are registered with `registerTool(tool, { signal })` and unregistered by aborting
// that signal; they follow the gateway's "listchanged" (tools) event. Imported tools are listed
// with `document.modelContext.getTools()` (Chromium; the @mcp-b polyfill) or, failing that,
// `navigator.modelContextTesting.listTools()`, run with the matching `executeTool`, and follow the
// `toolchange` event. Neither direction takes in what the other put there, so nothing loops.
import { Gateway } from './mcp_edge_gateway.js';

/** What the entry keeps on each gateway from its creation (see index.js): `{ config, appTools,
 *  registerTool }` — the create config, the names the app registered itself, the unwrapped method. */
const HOOK = Symbol.for('mcp-edge-gateway.webmcp');
const hook = (gateway) => gateway[HOOK] ?? { config: {}, appTools: new Map(), registerTool: Gateway.prototype.registerTool };

/** `_meta` key of a gateway tool imported from WebMCP: `{ name, origin }` of the page's tool. */
export const WEBMCP_META = 'io.github.mcp-edge-gateway/webmcp';

const PATCHED = Symbol.for('mcp-edge-gateway.webmcp.patched');
const VALID_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** gateway → its config as given to `create` (without `webmcp`): to know its page tools' prefix. */
/** gateway → Map(definition name → count) of tools the app registered with `registerTool`. */
/** gateway → Set of its exposures and importer (stopped by `close()`/`free()`). */
const attached = new WeakMap();
/** modelContext → Map(WebMCP name → count) of names that gateways put there (never imported). */
const claimed = new WeakMap();

const warn = (what, e) => console.warn(`[mcp-edge-gateway] ${what}:`, e);

function modelContextOf(options) {
  const mc = options?.modelContext ?? globalThis.document?.modelContext ?? globalThis.navigator?.modelContext;
  if (!mc || typeof mc.registerTool !== 'function') {
    throw new TypeError(
      'WebMCP is not available here (no document.modelContext): it is Window-only; in Chromium enable ' +
        'chrome://flags/#enable-webmcp-testing, or load a polyfill such as @mcp-b/webmcp-polyfill first',
    );
  }
  return mc;
}

function claim(mc, name, delta) {
  let m = claimed.get(mc);
  if (!m) claimed.set(mc, (m = new Map()));
  const n = (m.get(name) ?? 0) + delta;
  if (n > 0) m.set(name, n);
  else m.delete(name);
}
const isClaimed = (mc, name) => (claimed.get(mc)?.get(name) ?? 0) > 0;

function attach(gateway, thing) {
  let s = attached.get(gateway);
  if (!s) attached.set(gateway, (s = new Set()));
  s.add(thing);
}
const detach = (gateway, thing) => attached.get(gateway)?.delete(thing);

/** The exposed-name prefix of the gateway's in-page upstream (`page__` by default). */
function localPrefix(config) {
  const ns = config?.namespace ?? {};
  const sep = typeof ns.separator === 'string' ? ns.separator : '__';
  const local = config?.local ?? {};
  const name = typeof local.name === 'string' ? local.name : 'page';
  if (local.prefix === false) return '';
  if (typeof local.prefix === 'string') return local.prefix + sep;
  if (local.prefix === true) return name + sep;
  return ns.prefix === false ? '' : name + sep;
}

/** Run `once` again whenever asked while it runs; callers get the promise of the run that covers them. */
function coalesced(once) {
  let running = null;
  let again = false;
  return function run() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await once();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  };
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// The gateway's tools → WebMCP

class Exposure {
  #gateway;
  #mc;
  #options;
  /** WebMCP name → { key, controller, tool } */
  #regs = new Map();
  #off;
  #closed = false;

  constructor(gateway, mc, options) {
    this.#gateway = gateway;
    this.#mc = mc;
    this.#options = options;
    this.refresh = coalesced(() => this.#syncOnce());
    this.#off = gateway.on('listchanged', (detail) => {
      if (detail?.kind === 'tools' && !this.#closed) this.refresh().catch((e) => this.#report(e));
    });
  }

  get closed() {
    return this.#closed;
  }

  /** The WebMCP names registered now. */
  get tools() {
    return [...this.#regs.keys()];
  }

  #report(e, tool) {
    if (this.#closed) return; // a sync that was under way when the gateway closed
    if (this.#options.onError) this.#options.onError(e, tool);
    else warn(tool ? `WebMCP registration of ${tool.name} failed` : 'exposing tools to WebMCP failed', e);
  }

  #untrusted(tool) {
    const o = this.#options.untrustedContentHint;
    const local = isLocal(this.#gateway, tool.name);
    if (typeof o === 'function') return !!o(tool, { local });
    if (typeof o === 'boolean') return o;
    if (tool.annotations?.untrustedContentHint === true) return true;
    // Another server's output is not the page's own: say so. The page's own tools are trusted.
    return !local;
  }

  async #syncOnce() {
    if (this.#closed) return;
    const tools = await this.#gateway.listTools();
    if (this.#closed) return;
    const desired = new Map();
    for (const tool of tools) {
      if (!isObject(tool) || typeof tool.name !== 'string') continue;
      if (tool._meta?.[WEBMCP_META]) continue; // came from WebMCP: it is there already
      if (this.#options.filter && !this.#options.filter(tool)) continue;
      const name = webMcpName(tool.name);
      if (!name || desired.has(name)) continue;
      desired.set(name, this.#describe(name, tool));
    }
    for (const [name, reg] of [...this.#regs]) {
      const d = desired.get(name);
      if (!d || d.key !== reg.key) this.#unregister(name);
    }
    const pending = [];
    for (const [name, d] of desired) {
      if (!this.#regs.has(name)) pending.push(this.#register(name, d));
    }
    await Promise.all(pending);
  }

  #describe(name, tool) {
    const annotations = {
      readOnlyHint: tool.annotations?.readOnlyHint === true,
      untrustedContentHint: this.#untrusted(tool),
    };
    const descriptor = {
      name,
      description: tool.description || tool.title || tool.annotations?.title || tool.name,
      inputSchema: isObject(tool.inputSchema) ? tool.inputSchema : { type: 'object' },
      annotations,
    };
    const title = tool.title ?? tool.annotations?.title;
    if (typeof title === 'string' && title) descriptor.title = title;
    return { descriptor, gatewayName: tool.name, key: JSON.stringify([tool.name, descriptor]) };
  }

  #register(name, { descriptor, gatewayName, key }) {
    const controller = new AbortController();
    const reg = { key, controller, gatewayName };
    this.#regs.set(name, reg);
    claim(this.#mc, name, 1);
    const gateway = this.#gateway;
    const tool = {
      ...descriptor,
      // The CallToolResult as it is (content, structuredContent, isError): WebMCP hands the value to
      // the agent as JSON. Protocol errors (unknown tool, bad arguments) reject.
      execute: async (input) => gateway.callTool(gatewayName, isObject(input) ? input : {}),
    };
    let registered;
    try {
      registered = Promise.resolve(this.#mc.registerTool(tool, { signal: controller.signal }));
    } catch (e) {
      registered = Promise.reject(e);
    }
    return registered.then(
      () => {},
      (e) => {
        if (controller.signal.aborted) return; // unregistered before it was done
        if (this.#regs.get(name) === reg) {
          this.#regs.delete(name);
          claim(this.#mc, name, -1);
        }
        this.#report(e, descriptor);
      },
    );
  }

  #unregister(name) {
    const reg = this.#regs.get(name);
    if (!reg) return;
    this.#regs.delete(name);
    reg.controller.abort();
    claim(this.#mc, name, -1);
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#off?.();
    for (const name of [...this.#regs.keys()]) this.#unregister(name);
    detach(this.#gateway, this);
  }

  [Symbol.dispose]() {
    this.close();
  }
}

function webMcpName(name) {
  if (VALID_NAME.test(name)) return name;
  const n = name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128);
  return n || null;
}

function isLocal(gateway, exposedName) {
  const { appTools: names, config } = hook(gateway);
  if (!names.size) return false;
  const prefix = localPrefix(config);
  return exposedName.startsWith(prefix) && names.has(exposedName.slice(prefix.length));
}

// ---------------------------------------------------------------------------------------------
// The page's WebMCP tools → the gateway

class Importer {
  #gateway;
  #mc;
  #prefix;
  /** page tool name → { key, ref, undo } */
  #regs = new Map();
  #listeners = [];
  #closed = false;

  constructor(gateway, mc, options) {
    this.#gateway = gateway;
    this.#mc = mc;
    this.#prefix = typeof options.prefix === 'string' ? options.prefix : '';
    this.refresh = coalesced(() => this.#syncOnce());
    const onChange = () => {
      if (!this.#closed) this.refresh().catch((e) => this.#closed || warn('importing WebMCP tools failed', e));
    };
    const targets = [mc];
    const testing = globalThis.navigator?.modelContextTesting;
    if (typeof mc.getTools !== 'function' && testing && typeof testing.addEventListener === 'function') targets.push(testing);
    for (const t of targets) {
      if (typeof t.addEventListener === 'function') {
        t.addEventListener('toolchange', onChange);
        this.#listeners.push(() => t.removeEventListener('toolchange', onChange));
      }
    }
  }

  get tools() {
    return [...this.#regs.keys()];
  }

  /** The page's own WebMCP tools: `{ name, title, description, inputSchema, annotations, ref }`. */
  async #list() {
    const mc = this.#mc;
    if (typeof mc.getTools === 'function') {
      const tools = await mc.getTools();
      return [...tools]
        .filter((t) => !('window' in t) || t.window === globalThis.window)
        .map((t) => ({ ...pick(t), ref: t }));
    }
    const testing = globalThis.navigator?.modelContextTesting;
    if (testing && typeof testing.listTools === 'function') {
      const tools = await testing.listTools();
      return [...tools].map((t) => ({ ...pick(t), ref: t.name }));
    }
    throw new TypeError('this WebMCP implementation cannot list its tools (no getTools() nor modelContextTesting.listTools())');
  }

  async #syncOnce() {
    if (this.#closed) return;
    const listed = await this.#list();
    if (this.#closed) return;
    const desired = new Map();
    const owned = hook(this.#gateway).appTools;
    for (const t of listed) {
      if (typeof t.name !== 'string' || !t.name || desired.has(t.name)) continue;
      if (isClaimed(this.#mc, t.name)) continue; // a gateway put it there
      const gatewayName = this.#prefix + t.name;
      if (owned?.has(gatewayName)) continue; // the app registered that name on the gateway itself
      desired.set(t.name, t);
    }
    for (const [name, reg] of [...this.#regs]) {
      const t = desired.get(name);
      if (!t || definitionKey(t) !== reg.key) this.#unregister(name);
      else reg.ref = t.ref;
    }
    for (const [name, t] of desired) {
      if (this.#regs.has(name)) continue;
      const definition = {
        name: this.#prefix + name,
        description: t.description || t.title || name,
        inputSchema: t.inputSchema,
        _meta: { [WEBMCP_META]: { name, ...(typeof t.origin === 'string' ? { origin: t.origin } : {}) } },
      };
      if (t.title) definition.title = t.title;
      const annotations = {};
      if (t.annotations?.readOnlyHint === true) annotations.readOnlyHint = true;
      if (t.annotations?.untrustedContentHint === true) annotations.untrustedContentHint = true;
      if (Object.keys(annotations).length) definition.annotations = annotations;
      const reg = { key: definitionKey(t), ref: t.ref, undo: null };
      this.#regs.set(name, reg);
      try {
        reg.undo = hook(this.#gateway).registerTool.call(this.#gateway, definition, (args) => this.#execute(reg, args));
      } catch (e) {
        this.#regs.delete(name);
        warn(`importing WebMCP tool ${name} failed`, e);
      }
    }
  }

  async #execute(reg, args) {
    const input = isObject(args) ? args : {};
    return fromWebMcpResult(await this.#invoke(reg.ref, input));
  }

  async #invoke(ref, input) {
    if (typeof ref === 'string') {
      return globalThis.navigator.modelContextTesting.executeTool(ref, JSON.stringify(input));
    }
    // Chromium takes the input as an object, the @mcp-b polyfill as a JSON string (as Chromium's
    // earlier testing API did). Both refuse the other form before running the tool.
    const mc = this.#mc;
    const native = /\{\s*\[native code\]\s*\}/.test(Function.prototype.toString.call(mc.executeTool));
    try {
      return await mc.executeTool(ref, native ? input : JSON.stringify(input));
    } catch (e) {
      const m = String(e?.message ?? '');
      if (/invalid input object|^Failed to parse input arguments/.test(m)) {
        return mc.executeTool(ref, native ? JSON.stringify(input) : input);
      }
      throw e;
    }
  }

  #unregister(name) {
    const reg = this.#regs.get(name);
    if (!reg) return;
    this.#regs.delete(name);
    try {
      reg.undo?.();
    } catch {
      /* the gateway is gone */
    }
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#listeners) off();
    this.#listeners = [];
    for (const name of [...this.#regs.keys()]) this.#unregister(name);
    detach(this.#gateway, this);
  }
}

function pick(t) {
  let inputSchema = t.inputSchema;
  if (typeof inputSchema === 'string') {
    try {
      inputSchema = inputSchema ? JSON.parse(inputSchema) : undefined;
    } catch {
      inputSchema = undefined;
    }
  }
  return {
    name: t.name,
    title: typeof t.title === 'string' && t.title ? t.title : undefined,
    description: typeof t.description === 'string' ? t.description : '',
    inputSchema: isObject(inputSchema) ? inputSchema : { type: 'object' },
    annotations: isObject(t.annotations) ? t.annotations : undefined,
    origin: t.origin,
  };
}

const definitionKey = (t) =>
  JSON.stringify([t.title, t.description, t.inputSchema, t.annotations?.readOnlyHint === true, t.annotations?.untrustedContentHint === true]);

/** What `executeTool` gave (Chromium: the tool's value as JSON, or `String(value)`) → a tool result. */
function fromWebMcpResult(out) {
  if (out === null || out === undefined || out === 'undefined') return { content: [] };
  let value = out;
  if (typeof out === 'string') {
    try {
      value = JSON.parse(out);
    } catch {
      return { content: [{ type: 'text', text: out }] };
    }
  }
  if (isObject(value) && Array.isArray(value.content)) return value; // a CallToolResult already
  return value ?? { content: [] };
}

// ---------------------------------------------------------------------------------------------
// Patching Gateway

const proto = Gateway.prototype;

// Closing a gateway ends what it exposed and imported (exposures first: the importer's
// unregistrations would make them list the tools once more).
if (!proto[PATCHED]) {
  const originalClose = proto.close;
  const originalFree = proto.free;
  Object.defineProperty(proto, PATCHED, { value: true });
  const stopAll = (gateway) => {
    const s = attached.get(gateway);
    if (s) for (const thing of [...s].sort((a, b) => (b instanceof Exposure) - (a instanceof Exposure))) thing.close();
  };
  proto.close = function close() {
    stopAll(this);
    return originalClose.call(this);
  };
  proto.free = function free() {
    stopAll(this);
    return originalFree.call(this);
  };
  if (Symbol.dispose) proto[Symbol.dispose] = proto.free;
}

/** `gateway.exposeToWebMcp(options)`. */
export async function expose(gateway, options = {}) {
  const exposure = new Exposure(gateway, modelContextOf(options), options);
  attach(gateway, exposure);
  try {
    await exposure.refresh();
  } catch (e) {
    exposure.close();
    throw e;
  }
  return exposure;
}

/** `Gateway.create({ webmcp })`, once the gateway exists: the page's WebMCP tools become its tools. */
export async function importInto(gateway, webmcp) {
  const importer = new Importer(gateway, modelContextOf(webmcp), isObject(webmcp) ? webmcp : {});
  attach(gateway, importer);
  await importer.refresh();
}
