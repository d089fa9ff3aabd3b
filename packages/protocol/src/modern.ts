import { z } from "zod";
import { ErrorCode, McpError } from "./errors.js";
import { LogLevelSchema, type LogLevel } from "./mcp.js";
import {
  ALL_PROTOCOL_VERSIONS,
  isModernProtocolVersion,
  type ModernProtocolVersion,
} from "./versions.js";

/**
 * The stateless era (MCP 2026-07-28): every request carries what a server needs in
 * `params._meta` under these keys, instead of a session opened by `initialize`.
 */
export const META = {
  protocolVersion: "io.modelcontextprotocol/protocolVersion",
  clientCapabilities: "io.modelcontextprotocol/clientCapabilities",
  clientInfo: "io.modelcontextprotocol/clientInfo",
  logLevel: "io.modelcontextprotocol/logLevel",
  serverInfo: "io.modelcontextprotocol/serverInfo",
  subscriptionId: "io.modelcontextprotocol/subscriptionId",
} as const;

/** Methods of the stateless era a client may call; anything else is -32601 (HTTP 404). */
export const MODERN_METHODS: ReadonlySet<string> = new Set([
  "server/discover",
  "tools/list",
  "tools/call",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "subscriptions/listen",
  // Tasks extension (io.modelcontextprotocol/tasks); answered only by edges that serve it.
  "tasks/get",
  "tasks/update",
  "tasks/cancel",
]);

/**
 * Methods whose `Mcp-Name` header (Streamable HTTP) mirrors `params.name` or `params.uri`, and
 * (tasks extension) the tasks methods' `params.taskId`.
 */
export const NAMED_METHODS: Readonly<Record<string, "name" | "uri" | "taskId">> = {
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
  "tasks/get": "taskId",
  "tasks/update": "taskId",
  "tasks/cancel": "taskId",
};

const ImplementationSchema = z
  .object({ name: z.string().max(256), version: z.string().max(256) })
  .loose();

/** What a stateless-era request's `_meta` says about its client (validated; see `modernMeta`). */
export interface ModernMeta {
  protocolVersion: ModernProtocolVersion;
  clientCapabilities: Record<string, unknown>;
  clientInfo: { name: string; version: string } | undefined;
  /** Deprecated in 2026-07-28; absent means no `notifications/message` for the request. */
  logLevel: LogLevel | undefined;
  /** W3C trace context, when the client propagates one in `_meta`. */
  traceparent: string | undefined;
  tracestate: string | undefined;
}

/** The `_meta` value of a request's params, when it is an object. */
function requestMeta(params: unknown): Record<string, unknown> | undefined {
  const meta =
    typeof params === "object" && params !== null
      ? (params as { _meta?: unknown })._meta
      : undefined;
  return typeof meta === "object" && meta !== null && !Array.isArray(meta)
    ? (meta as Record<string, unknown>)
    : undefined;
}

/** The protocol version a request's `_meta` declares, if any (unvalidated). */
export function declaredVersion(params: unknown): string | undefined {
  const v = requestMeta(params)?.[META.protocolVersion];
  return typeof v === "string" ? v : undefined;
}

const TRACE_MAX = 512;

/**
 * Validates the per-request `_meta` of a stateless-era request:
 * - `_meta`, its `protocolVersion` (string) and `clientCapabilities` (object) are required:
 *   -32602 Invalid params otherwise (HTTP 400);
 * - a version mcpq does not speak: -32022 with `data: { supported, requested }` (HTTP 400);
 * - `clientInfo` is optional (a SHOULD); `logLevel` must be a known level when present.
 * The HTTP transport checks the `MCP-Protocol-Version` header against the declared version
 * before the version itself (a mismatch is -32020, not -32022).
 */
export function modernMeta(params: unknown, checkDeclared?: (version: string) => void): ModernMeta {
  const meta = requestMeta(params);
  if (!meta) throw new McpError(ErrorCode.InvalidParams, "Invalid params: _meta is required");
  const version = meta[META.protocolVersion];
  if (typeof version !== "string") {
    throw new McpError(
      ErrorCode.InvalidParams,
      `Invalid params: _meta["${META.protocolVersion}"] is required`,
    );
  }
  const caps = meta[META.clientCapabilities];
  if (typeof caps !== "object" || caps === null || Array.isArray(caps)) {
    throw new McpError(
      ErrorCode.InvalidParams,
      `Invalid params: _meta["${META.clientCapabilities}"] must be an object`,
    );
  }
  checkDeclared?.(version);
  if (!isModernProtocolVersion(version)) throw unsupportedVersion(version);
  const info = ImplementationSchema.safeParse(meta[META.clientInfo]);
  const rawLevel = meta[META.logLevel];
  let logLevel: LogLevel | undefined;
  if (rawLevel !== undefined) {
    const l = LogLevelSchema.safeParse(rawLevel);
    if (!l.success)
      throw new McpError(
        ErrorCode.InvalidParams,
        `Invalid params: _meta["${META.logLevel}"] is not a log level`,
      );
    logLevel = l.data;
  }
  const trace = (k: string) => {
    const v = meta[k];
    return typeof v === "string" && v.length <= TRACE_MAX ? v : undefined;
  };
  return {
    protocolVersion: version,
    clientCapabilities: caps as Record<string, unknown>,
    clientInfo: info.success ? { name: info.data.name, version: info.data.version } : undefined,
    logLevel,
    traceparent: trace("traceparent"),
    tracestate: trace("tracestate"),
  };
}

/** -32022: the requested version is not one mcpq speaks; `data` lists what it does speak. */
function unsupportedVersion(requested: string): McpError {
  return new McpError(ErrorCode.UnsupportedProtocolVersion, "Unsupported protocol version", {
    supported: [...ALL_PROTOCOL_VERSIONS],
    requested,
  });
}

/** -32020: a request metadata header is missing, malformed or differs from the body. */
export function headerMismatch(message: string): McpError {
  return new McpError(ErrorCode.HeaderMismatch, `Header mismatch: ${message}`);
}

/**
 * Decodes a header value that may use the `=?base64?…?=` sentinel (Mcp-Name, Mcp-Param-*);
 * null when the sentinel's content is not valid base64 of UTF-8.
 */
export function decodeHeaderValue(value: string): string | null {
  if (!value.startsWith("=?base64?") || !value.endsWith("?=") || value.length < 11) return value;
  const b64 = value.slice(9, -2);
  // Strict: the alphabet, whole quanta, padding only at the end (lenient decoders accept less).
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return null;
  try {
    const binary = atob(b64);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** Where a tool's `inputSchema` asks for a parameter to be mirrored into an `Mcp-Param-<name>` header. */
export interface HeaderParam {
  /** The property path in `arguments` (the chain of `properties` keys). */
  path: string[];
  /** The `x-mcp-header` name: the header is `Mcp-Param-<name>`. */
  header: string;
  /** The property's JSON Schema type, for comparing header text with the body value. */
  type: string | undefined;
}

/** The `x-mcp-header` annotations of a tool's `inputSchema` (nested `properties` included; bounded). */
export function headerParams(inputSchema: unknown, max = 32): HeaderParam[] {
  const out: HeaderParam[] = [];
  const walk = (schema: unknown, path: string[], depth: number) => {
    if (depth > 8 || out.length >= max || typeof schema !== "object" || schema === null) return;
    const props = (schema as { properties?: unknown }).properties;
    if (typeof props !== "object" || props === null) return;
    for (const [key, def] of Object.entries(props as Record<string, unknown>)) {
      if (typeof def !== "object" || def === null) continue;
      const header = (def as Record<string, unknown>)["x-mcp-header"];
      const type = (def as { type?: unknown }).type;
      if (typeof header === "string" && header !== "")
        out.push({
          path: [...path, key],
          header,
          type: typeof type === "string" ? type : undefined,
        });
      walk(def, [...path, key], depth + 1);
    }
  };
  walk(inputSchema, [], 0);
  return out;
}

/** Whether a decoded `Mcp-Param-*` header value stands for `body` (numbers compared numerically). */
export function headerMatchesValue(header: string, body: unknown): boolean {
  if (typeof body === "string") return header === body;
  if (typeof body === "number") return header.trim() !== "" && Number(header) === body;
  if (typeof body === "boolean") return header === String(body);
  return false;
}

/** `notifications/subscriptions/acknowledged` and `subscriptions/listen`'s filter. */
const SubscriptionFilterSchema = z
  .object({
    toolsListChanged: z.boolean().optional(),
    promptsListChanged: z.boolean().optional(),
    resourcesListChanged: z.boolean().optional(),
    resourceSubscriptions: z.array(z.string().min(1).max(2048)).max(256).optional(),
  })
  .loose();
export type SubscriptionFilter = z.infer<typeof SubscriptionFilterSchema>;
export const ListenParamsSchema = z.object({ notifications: SubscriptionFilterSchema }).loose();
