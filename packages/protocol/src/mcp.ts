import { z } from "zod";
import type { CatalogCacheHints } from "./cache-hints.js";

/** The eight syslog levels of `logging/setLevel` and `notifications/message`, lowest first. */
const LOG_LEVELS = [
  "debug",
  "info",
  "notice",
  "warning",
  "error",
  "critical",
  "alert",
  "emergency",
] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LogLevelSchema = z.enum(LOG_LEVELS);
/** True when a message at `level` passes a session whose threshold is `threshold`. */
export function logLevelPasses(level: LogLevel, threshold: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(threshold);
}

const Meta = z.record(z.string(), z.unknown()).optional();

/**
 * mcpq's own `_meta` keys: `sessionId` (socket InitializeResult: the session to resume),
 * `timeoutMs` / `deadline` (a request's budget, relative or absolute epoch ms), `replayable`
 * (a tool descriptor: false when replay must skip it).
 */
export const MCPQ_META = {
  sessionId: "io.mcpq/sessionId",
  timeoutMs: "io.mcpq/timeoutMs",
  deadline: "io.mcpq/deadline",
  replayable: "io.mcpq/replayable",
  /** Request `_meta`: `"bypass"` skips the edge response cache (neither served from it nor stored). */
  cache: "io.mcpq/cache",
} as const;
/** Progress tokens are echoed exactly as received: a string or a number. */
export type ProgressToken = string | number;

const ImplementationSchema = z
  .object({ name: z.string(), version: z.string(), title: z.string().optional() })
  .loose();

export const InitializeParamsSchema = z
  .object({
    protocolVersion: z.string(),
    capabilities: z.record(z.string(), z.unknown()),
    clientInfo: ImplementationSchema,
    _meta: Meta,
  })
  .loose();

export const PaginatedParamsSchema = z
  .object({ cursor: z.string().optional(), _meta: Meta })
  .loose()
  .optional();

export const CallToolParamsSchema = z
  .object({
    name: z.string().min(1),
    arguments: z.record(z.string(), z.unknown()).optional(),
    _meta: Meta,
    task: z.unknown().optional(),
  })
  .loose();

export const ReadResourceParamsSchema = z.object({ uri: z.string().min(1), _meta: Meta }).loose();
export const SubscribeParamsSchema = z.object({ uri: z.string().min(1), _meta: Meta }).loose();
export const GetPromptParamsSchema = z
  .object({
    name: z.string().min(1),
    arguments: z.record(z.string(), z.string()).optional(),
    _meta: Meta,
  })
  .loose();
export const SetLevelParamsSchema = z.object({ level: LogLevelSchema, _meta: Meta }).loose();
export const CompleteParamsSchema = z
  .object({
    ref: z.discriminatedUnion("type", [
      z.object({ type: z.literal("ref/prompt"), name: z.string() }).loose(),
      z.object({ type: z.literal("ref/resource"), uri: z.string() }).loose(),
    ]),
    argument: z.object({ name: z.string(), value: z.string() }),
    context: z
      .object({ arguments: z.record(z.string(), z.string()).optional() })
      .loose()
      .optional(),
    _meta: Meta,
  })
  .loose();
export const CancelledParamsSchema = z
  .object({ requestId: z.union([z.string(), z.number()]), reason: z.string().optional() })
  .loose();

/** A JSON Schema object as listed to clients (kept verbatim: `$schema`, `$defs`, ...). */
export type JsonSchemaObject = { type: "object"; [k: string]: unknown };

export interface Icon {
  src: string;
  mimeType?: string;
  sizes?: string[];
  theme?: "light" | "dark";
}

/** A tool as listed by `tools/list`. */
export interface ToolDescriptor {
  name: string;
  title?: string;
  description: string;
  inputSchema: JsonSchemaObject;
  outputSchema?: JsonSchemaObject;
  annotations?: Record<string, unknown>;
  icons?: Icon[];
  execution?: { taskSupport?: "forbidden" | "optional" | "required" };
  _meta?: Record<string, unknown>;
}
export interface ResourceDescriptor {
  uri: string;
  name: string;
  title?: string;
  description?: string;
  mimeType?: string;
  size?: number;
  icons?: Icon[];
  annotations?: Record<string, unknown>;
}
export interface ResourceTemplateDescriptor {
  uriTemplate: string;
  name: string;
  title?: string;
  description?: string;
  mimeType?: string;
  icons?: Icon[];
  annotations?: Record<string, unknown>;
}
export interface PromptArgumentDescriptor {
  name: string;
  title?: string;
  description?: string;
  required?: boolean;
}
export interface PromptDescriptor {
  name: string;
  title?: string;
  description: string;
  arguments?: PromptArgumentDescriptor[];
  icons?: Icon[];
}

/** What one worker serves, as advertised in the registry. */
export interface Catalog {
  tools: ToolDescriptor[];
  resources: ResourceDescriptor[];
  resourceTemplates: ResourceTemplateDescriptor[];
  prompts: PromptDescriptor[];
  /** Caching hints (2026-07-28) of the entries and lists; absent from older workers. */
  cacheHints?: CatalogCacheHints;
}

/** Tool names SHOULD be 1-128 chars of [A-Za-z0-9_.-]. */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Every client-to-server request method of the MCP revisions mcpq speaks (2025-11-25 and
 * 2026-07-28), e.g. to bound a metric label: anything else a client sends is not MCP.
 */
export const CLIENT_REQUEST_METHODS: ReadonlySet<string> = new Set([
  "initialize",
  "ping",
  "logging/setLevel",
  "server/discover",
  "subscriptions/listen",
  "tools/list",
  "tools/call",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "tasks/get",
  "tasks/result",
  "tasks/cancel",
  "tasks/list",
]);

/**
 * RFC 6570 level-1 template matching (`{var}` segments), enough for MCP resource templates.
 * Returns the variables, or null when `uri` does not match.
 */
export function matchUriTemplate(template: string, uri: string): Record<string, string> | null {
  const names: string[] = [];
  let pattern = "";
  // Split into literal text and {var} expressions; odd indexes are expressions.
  template.split(/\{([^}]+)\}/).forEach((part, i) => {
    if (i % 2 === 0) {
      pattern += part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      return;
    }
    const reserved = part.startsWith("+") || part.startsWith("#");
    names.push(part.replace(/^[+#]/, ""));
    pattern += reserved ? "(.+)" : "([^/]+)";
  });
  const m = new RegExp(`^${pattern}$`).exec(uri);
  if (!m) return null;
  const out: Record<string, string> = {};
  names.forEach((n, i) => {
    try {
      out[n] = decodeURIComponent(m[i + 1] ?? "");
    } catch {
      out[n] = m[i + 1] ?? "";
    }
  });
  return out;
}
