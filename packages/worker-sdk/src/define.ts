import { z } from "zod";
import type {
  CacheHint,
  CacheHintInput,
  CacheListKind,
  CatalogCacheHints,
  EdgeCachePolicy,
  EntryCacheInput,
  Icon,
  JsonSchemaObject,
  PromptArgumentDescriptor,
  PromptDescriptor,
  ResourceDescriptor,
  ResourceTemplateDescriptor,
  ToolDescriptor,
  Catalog,
} from "@mcpq/protocol";
import {
  TOOL_NAME_PATTERN,
  assertCacheHintInput,
  assertEntryCacheInput,
  combineCacheHints,
  isDefaultCacheHint,
  resolveCacheHint,
} from "@mcpq/protocol";
import type { HandlerContext } from "./context.js";
import type { ToolTaskOptions } from "./tasks.js";

/** MCP content blocks a tool or prompt may return. */
export type ContentBlock =
  | {
      type: "text";
      text: string;
      annotations?: Record<string, unknown>;
      _meta?: Record<string, unknown>;
    }
  | { type: "image"; data: string; mimeType: string; annotations?: Record<string, unknown> }
  | { type: "audio"; data: string; mimeType: string; annotations?: Record<string, unknown> }
  | {
      type: "resource_link";
      uri: string;
      name: string;
      title?: string;
      description?: string;
      mimeType?: string;
    }
  | { type: "resource"; resource: ResourceContents; annotations?: Record<string, unknown> };

export type ResourceContents =
  | { uri: string; mimeType?: string; text: string; _meta?: Record<string, unknown> }
  | { uri: string; mimeType?: string; blob: string; _meta?: Record<string, unknown> };

export interface CallToolResult {
  content: ContentBlock[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  _meta?: Record<string, unknown>;
}

export interface PromptMessage {
  role: "user" | "assistant";
  content: ContentBlock;
}
export interface GetPromptResult {
  description?: string;
  messages: PromptMessage[];
}

export interface CompletionResult {
  values: string[];
  total?: number;
  hasMore?: boolean;
}
/** Completes one argument: receives the partial value and the other arguments already given. */
export type Completer = (
  value: string,
  context: { arguments: Record<string, string> },
  ctx: HandlerContext,
) => Promise<string[] | CompletionResult> | string[] | CompletionResult;

type AnyObject = z.ZodObject<z.ZodRawShape>;

export interface ToolDefinition<
  I extends AnyObject = AnyObject,
  O extends AnyObject | undefined = undefined,
> {
  readonly kind: "tool";
  name: string;
  title?: string;
  description: string;
  /** Validates `arguments`; invalid input becomes an `isError` result (SEP-1303), not a protocol error. */
  input: I;
  /** When set, `structuredContent` is validated against it and mirrored as a text block. */
  output?: O;
  /** Listed verbatim instead of the schema derived from `input` (e.g. a JSON Schema 2020-12 with `$defs`). */
  inputJsonSchema?: JsonSchemaObject;
  annotations?: {
    title?: string;
    readOnlyHint?: boolean;
    destructiveHint?: boolean;
    idempotentHint?: boolean;
    openWorldHint?: boolean;
    [k: string]: unknown;
  };
  icons?: Icon[];
  /**
   * Caching hint (2026-07-28) of this entry; it bounds the `tools/list` hint (see
   * `CatalogDefinition.cache`). With `edge: true` (and a `ttlMs` above 0) edges answer repeated
   * identical calls from their response cache for `ttlMs` (docs/caching.md).
   */
  cache?: EntryCacheInput;
  /**
   * Replay policy: false marks a side-effecting tool that `mcpq replay` skips unless forced.
   * Defaults to `!annotations.destructiveHint`.
   */
  replayable?: boolean;
  /**
   * Long-running tool (tasks extension, protocol 2026-07-28): the call becomes a task the client
   * polls with `tasks/get` on any edge, instead of waiting on the request (see `ToolTaskOptions`).
   * Listed as `execution.taskSupport`.
   */
  task?: ToolTaskOptions;
  handler: (
    args: z.output<I>,
    ctx: HandlerContext,
  ) => Promise<CallToolResult | string | ContentBlock[]> | CallToolResult | string | ContentBlock[];
}

export interface ResourceDefinition {
  readonly kind: "resource";
  uri: string;
  name: string;
  title?: string;
  description?: string;
  mimeType?: string;
  icons?: Icon[];
  /** Caching hint (2026-07-28) of `resources/read` of this resource; it also bounds the `resources/list` hint. `edge: true`: edge-cached (docs/caching.md). */
  cache?: EntryCacheInput;
  read: (ctx: HandlerContext) => Promise<ResourceReadOutput> | ResourceReadOutput;
}
export type ResourceReadOutput =
  ResourceContents | ResourceContents[] | { text: string } | { blob: string };

export interface ResourceTemplateDefinition {
  readonly kind: "resourceTemplate";
  uriTemplate: string;
  name: string;
  title?: string;
  description?: string;
  mimeType?: string;
  icons?: Icon[];
  /** Caching hint (2026-07-28) of `resources/read` of URIs of this template; it also bounds the `resources/templates/list` hint. `edge: true`: edge-cached. */
  cache?: EntryCacheInput;
  read: (
    vars: Record<string, string>,
    uri: string,
    ctx: HandlerContext,
  ) => Promise<ResourceReadOutput> | ResourceReadOutput;
  complete?: Record<string, Completer>;
}

export interface PromptDefinition<A extends AnyObject = AnyObject> {
  readonly kind: "prompt";
  name: string;
  title?: string;
  description: string;
  /** Prompt arguments are strings; invalid arguments are a -32602 protocol error. */
  args?: A;
  /** Per-argument descriptions shown in `prompts/list` (zod `.describe()` also works). */
  icons?: Icon[];
  /** Caching hint (2026-07-28) of this entry; it bounds the `prompts/list` hint. `edge: true`: `prompts/get` is edge-cached. */
  cache?: EntryCacheInput;
  get: (args: z.output<A>, ctx: HandlerContext) => Promise<GetPromptResult> | GetPromptResult;
  complete?: Record<string, Completer>;
}

export function defineTool<I extends AnyObject, O extends AnyObject | undefined = undefined>(
  def: Omit<ToolDefinition<I, O>, "kind">,
): ToolDefinition<I, O> {
  if (!TOOL_NAME_PATTERN.test(def.name))
    throw new Error(`tool name ${JSON.stringify(def.name)} must match ${TOOL_NAME_PATTERN}`);
  if (!def.description) throw new Error(`tool ${def.name} needs a description`);
  assertEntryCacheInput(def.cache, `tool ${def.name}`);
  // An edge-cached answer would hand every caller the same task (or a stale CreateTaskResult).
  if (def.task && def.cache?.edge)
    throw new Error(`tool ${def.name}: a task tool cannot be edge-cached (cache.edge)`);
  return { kind: "tool", ...def };
}
export function defineResource(def: Omit<ResourceDefinition, "kind">): ResourceDefinition {
  assertEntryCacheInput(def.cache, `resource ${def.uri}`);
  return { kind: "resource", ...def };
}
export function defineResourceTemplate(
  def: Omit<ResourceTemplateDefinition, "kind">,
): ResourceTemplateDefinition {
  assertEntryCacheInput(def.cache, `resource template ${def.uriTemplate}`);
  return { kind: "resourceTemplate", ...def };
}
export function definePrompt<A extends AnyObject>(
  def: Omit<PromptDefinition<A>, "kind">,
): PromptDefinition<A> {
  if (!def.description) throw new Error(`prompt ${def.name} needs a description`);
  assertEntryCacheInput(def.cache, `prompt ${def.name}`);
  return { kind: "prompt", ...def };
}

/**
 * Any tool or prompt, whatever its schemas. Handlers are contravariant in their input, so a
 * concrete definition is only assignable to the `any`-parameterised form.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type AnyToolDefinition = ToolDefinition<any, any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type AnyPromptDefinition = PromptDefinition<any>;

/** A named set of definitions a worker serves. */
export interface CatalogDefinition {
  name: string;
  tools?: AnyToolDefinition[];
  resources?: ResourceDefinition[];
  resourceTemplates?: ResourceTemplateDefinition[];
  prompts?: AnyPromptDefinition[];
  /**
   * Caching hints (2026-07-28), field by field: an entry's own `cache`, else this list's value
   * here, else `default`, else `DEFAULT_CACHE_HINT` (`ttlMs: 0`, `private`). A list result is as
   * fresh as its least fresh entry (and this catalog's list value) and private if any is.
   */
  cache?: { default?: CacheHintInput } & Partial<Record<CacheListKind, CacheHintInput>>;
}
export function defineCatalog(def: CatalogDefinition): CatalogDefinition {
  for (const [k, v] of Object.entries(def.cache ?? {}))
    assertCacheHintInput(v, `catalog ${def.name} cache.${k}`);
  return def;
}

/** The resolved caching hint of one entry of `catalog` (entry, then list, then catalog default). */
export function entryCacheHint(
  catalog: CatalogDefinition,
  kind: CacheListKind,
  entry: { cache?: CacheHintInput | undefined },
): CacheHint {
  return resolveCacheHint(entry.cache, catalog.cache?.[kind], catalog.cache?.default);
}

/** The registry form of the catalogs' hints: only what differs from the default, plus declared list hints. */
function cacheHintsOf(defs: CatalogDefinition[]): CatalogCacheHints | undefined {
  const out: CatalogCacheHints = {};
  let any = false;
  const put = (
    kind: CacheListKind,
    key: string,
    entry: { cache?: EntryCacheInput | undefined },
    c: CatalogDefinition,
  ) => {
    const h = entryCacheHint(c, kind, entry);
    const edge = edgePolicyOf(h, entry.cache);
    if (edge) {
      ((out.edge ??= {})[kind] ??= {})[key] = edge;
      any = true;
    }
    if (isDefaultCacheHint(h)) return;
    (out[kind] ??= {})[key] = h;
    any = true;
  };
  for (const c of defs) {
    for (const t of c.tools ?? []) put("tools", t.name, t, c);
    for (const r of c.resources ?? []) put("resources", r.uri, r, c);
    for (const t of c.resourceTemplates ?? []) put("resourceTemplates", t.uriTemplate, t, c);
    for (const p of c.prompts ?? []) put("prompts", p.name, p, c);
    for (const kind of ["tools", "resources", "resourceTemplates", "prompts"] as const) {
      if (!c.cache?.[kind] && !c.cache?.default) continue;
      // Several catalogs in one worker: the list value is their combination (shortest, private wins).
      const h = resolveCacheHint(c.cache[kind], c.cache.default);
      const prev = (out.lists ??= {})[kind];
      out.lists[kind] = prev ? combineCacheHints([prev, h]) : h;
      any = true;
    }
  }
  return any ? out : undefined;
}

/**
 * The edge-cache policy of an entry that opted in (`cache.edge: true`) with a resolved `ttlMs`
 * above 0: the same ttl and scope as its 2026-07-28 hint (`private` = per principal).
 */
function edgePolicyOf(
  h: CacheHint,
  input: EntryCacheInput | undefined,
): EdgeCachePolicy | undefined {
  if (input?.edge !== true || h.ttlMs <= 0) return undefined;
  const p: EdgeCachePolicy = {
    ttlMs: h.ttlMs,
    scope: h.cacheScope === "public" ? "public" : "principal",
  };
  if (input.tags && input.tags.length > 0) p.tags = [...new Set(input.tags)];
  if (input.allowProgress) p.allowProgress = true;
  return p;
}

function jsonSchemaOf(schema: AnyObject): JsonSchemaObject {
  const js = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io: "input",
    unrepresentable: "any",
  }) as Record<string, unknown>;
  delete js["$schema"];
  return { ...js, type: "object" } as JsonSchemaObject;
}

export function toolDescriptor(t: AnyToolDefinition): ToolDescriptor {
  const d: ToolDescriptor = {
    name: t.name,
    description: t.description,
    inputSchema: t.inputJsonSchema ?? jsonSchemaOf(t.input),
  };
  if (t.title) d.title = t.title;
  if (t.output) d.outputSchema = jsonSchemaOf(t.output);
  if (t.annotations) d.annotations = t.annotations;
  if (t.icons) d.icons = t.icons;
  if (t.task) d.execution = { taskSupport: t.task.support };
  const replayable = t.replayable ?? !t.annotations?.destructiveHint;
  if (!replayable) d._meta = { "io.mcpq/replayable": false };
  return d;
}

function resourceDescriptor(r: ResourceDefinition): ResourceDescriptor {
  return strip({
    uri: r.uri,
    name: r.name,
    title: r.title,
    description: r.description,
    mimeType: r.mimeType,
    icons: r.icons,
  });
}
function templateDescriptor(r: ResourceTemplateDefinition): ResourceTemplateDescriptor {
  return strip({
    uriTemplate: r.uriTemplate,
    name: r.name,
    title: r.title,
    description: r.description,
    mimeType: r.mimeType,
    icons: r.icons,
  });
}
function promptDescriptor(p: AnyPromptDefinition): PromptDescriptor {
  const args: PromptArgumentDescriptor[] = [];
  if (p.args) {
    for (const [name, schema] of Object.entries(p.args.shape as Record<string, z.ZodType>)) {
      const a: PromptArgumentDescriptor = { name, required: !schema.safeParse(undefined).success };
      if (schema.description) a.description = schema.description;
      args.push(a);
    }
  }
  return strip({
    name: p.name,
    title: p.title,
    description: p.description,
    arguments: args.length ? args : undefined,
    icons: p.icons,
  });
}

export function catalogOf(defs: CatalogDefinition[]): Catalog {
  const catalog: Catalog = {
    tools: defs.flatMap((c) => (c.tools ?? []).map(toolDescriptor)),
    resources: defs.flatMap((c) => (c.resources ?? []).map(resourceDescriptor)),
    resourceTemplates: defs.flatMap((c) => (c.resourceTemplates ?? []).map(templateDescriptor)),
    prompts: defs.flatMap((c) => (c.prompts ?? []).map(promptDescriptor)),
  };
  const cacheHints = cacheHintsOf(defs);
  if (cacheHints) catalog.cacheHints = cacheHints;
  return catalog;
}

function strip<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}
