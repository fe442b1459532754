// WebMCP (document.modelContext) for Gateway: `gateway.exposeToWebMcp()` and
// `Gateway.create({ webmcp: true })`. Loaded by the package entry.
/** `_meta` key of a gateway tool imported from WebMCP: `{ name, origin }` of the page's tool. */
export declare const WEBMCP_META: 'io.github.mcp-edge-gateway/webmcp';

/** WebMCP tool annotations. */
export interface WebMcpToolAnnotations {
  readOnlyHint?: boolean;
  /** The tool's output holds data the page's author does not vouch for. */
  untrustedContentHint?: boolean;
}

/** A tool as given to `document.modelContext.registerTool`. */
export interface WebMcpTool {
  name: string;
  title?: string;
  description: string;
  inputSchema?: object;
  execute(input: Record<string, unknown>, client?: unknown): unknown;
  annotations?: WebMcpToolAnnotations;
}

/** A tool as `document.modelContext.getTools()` lists it (Chromium; the @mcp-b polyfill). */
export interface WebMcpRegisteredTool {
  name: string;
  title?: string;
  description: string;
  /** The input schema: an object in Chromium, a JSON string in the @mcp-b polyfill. */
  inputSchema?: string | object;
  origin?: string;
  annotations?: WebMcpToolAnnotations;
}

/** The part of WebMCP's `ModelContext` the gateway uses (`document.modelContext` by default). */
export interface WebMcpModelContext extends EventTarget {
  registerTool(tool: WebMcpTool, options?: { signal?: AbortSignal; exposedTo?: string[] }): Promise<void> | void;
  getTools?(): Promise<WebMcpRegisteredTool[]>;
  executeTool?(tool: WebMcpRegisteredTool, input: any): Promise<string | null>;
}

/** Options of `gateway.exposeToWebMcp`. */
export interface WebMcpExposeOptions {
  /** Where to register (default `document.modelContext`). */
  modelContext?: WebMcpModelContext;
  /** Expose only the tools (gateway `tools/list` entries) for which this is true. */
  filter?: (tool: any) => boolean;
  /** Default: true for tools of remote upstreams (their output comes from another server), false for
   *  tools registered in the page with `registerTool`, true wherever the tool's own annotations say so. */
  untrustedContentHint?: boolean | ((tool: any, origin: { local: boolean }) => boolean);
  /** A registration WebMCP refused (e.g. a name the page already registered). Default: console.warn. */
  onError?: (error: unknown, tool?: { name: string }) => void;
}

/** The gateway's tools as registered in WebMCP; they follow the gateway's tool list until `close()`. */
export interface WebMcpExposure {
  /** The WebMCP names registered now. */
  readonly tools: string[];
  readonly closed: boolean;
  /** Bring the registrations in line with the gateway's tools now. */
  refresh(): Promise<void>;
  /** Unregister every tool (aborting each registration's signal) and stop following the list. */
  close(): void;
  [Symbol.dispose](): void;
}

/** `Gateway.create({ webmcp })`: the page's WebMCP tools as tools of the gateway's in-page upstream. */
export interface WebMcpImportOptions {
  /** Put before each WebMCP name on the gateway (default none: `add` is exposed as `page__add`). */
  prefix?: string;
  /** Where to list the page's tools (default `document.modelContext`). */
  modelContext?: WebMcpModelContext;
}

declare module './mcp_edge_gateway.js' {
  interface Gateway {
    /** Register every tool of the gateway (all upstreams and in-page tools) with WebMCP
     *  (`document.modelContext.registerTool`), each calling `callTool`; re-registered when the
     *  gateway's tool list changes. Tools that came from WebMCP are left out. Resolves once the
     *  tools are registered. */
    exposeToWebMcp(options?: WebMcpExposeOptions): Promise<WebMcpExposure>;
  }
  interface GatewayConfig {
    /** Serve the page's WebMCP tools (`document.modelContext`) through the gateway, kept in sync on
     *  `toolchange`; tools a gateway exposed to WebMCP are left out. Window only. */
    webmcp?: boolean | WebMcpImportOptions;
  }
}
