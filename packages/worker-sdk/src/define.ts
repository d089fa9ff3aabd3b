import { z } from "zod";
import type {
  Icon,
  JsonSchemaObject,
  PromptArgumentDescriptor,
  PromptDescriptor,
  ResourceDescriptor,
  ResourceTemplateDescriptor,
  ToolDescriptor,
  Catalog,
} from "@mcpq/protocol";
import { TOOL_NAME_PATTERN } from "@mcpq/protocol";
import type { HandlerContext } from "./context.js";

/** MCP content blocks a tool or prompt may return. */
export type ContentBlock =
  | { type: "text"; text: string; annotations?: Record<string, unknown>; _meta?: Record<string, unknown> }
  | { type: "image"; data: string; mimeType: string; annotations?: Record<string, unknown> }
  | { type: "audio"; data: string; mimeType: string; annotations?: Record<string, unknown> }
  | { type: "resource_link"; uri: string; name: string; title?: string; description?: string; mimeType?: string }
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
export type Completer = (value: string, context: { arguments: Record<string, string> }, ctx: HandlerContext) =>
  | Promise<string[] | CompletionResult>
  | string[]
  | CompletionResult;

type AnyObject = z.ZodObject<z.ZodRawShape>;

export interface ToolDefinition<I extends AnyObject = AnyObject, O extends AnyObject | undefined = undefined> {
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
   * Replay policy: false marks a side-effecting tool that `mcpq replay` skips unless forced.
   * Defaults to `!annotations.destructiveHint`.
   */
  replayable?: boolean;
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
  read: (ctx: HandlerContext) => Promise<ResourceReadOutput> | ResourceReadOutput;
}
export type ResourceReadOutput = ResourceContents | ResourceContents[] | { text: string } | { blob: string };

export interface ResourceTemplateDefinition {
  readonly kind: "resourceTemplate";
  uriTemplate: string;
  name: string;
  title?: string;
  description?: string;
  mimeType?: string;
  icons?: Icon[];
  read: (vars: Record<string, string>, uri: string, ctx: HandlerContext) => Promise<ResourceReadOutput> | ResourceReadOutput;
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
  get: (args: z.output<A>, ctx: HandlerContext) => Promise<GetPromptResult> | GetPromptResult;
  complete?: Record<string, Completer>;
}

export function defineTool<I extends AnyObject, O extends AnyObject | undefined = undefined>(
  def: Omit<ToolDefinition<I, O>, "kind">,
): ToolDefinition<I, O> {
  if (!TOOL_NAME_PATTERN.test(def.name)) throw new Error(`tool name ${JSON.stringify(def.name)} must match ${TOOL_NAME_PATTERN}`);
  if (!def.description) throw new Error(`tool ${def.name} needs a description`);
  return { kind: "tool", ...def };
}
export function defineResource(def: Omit<ResourceDefinition, "kind">): ResourceDefinition {
  return { kind: "resource", ...def };
}
export function defineResourceTemplate(def: Omit<ResourceTemplateDefinition, "kind">): ResourceTemplateDefinition {
  return { kind: "resourceTemplate", ...def };
}
export function definePrompt<A extends AnyObject>(def: Omit<PromptDefinition<A>, "kind">): PromptDefinition<A> {
  if (!def.description) throw new Error(`prompt ${def.name} needs a description`);
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
}
export function defineCatalog(def: CatalogDefinition): CatalogDefinition {
  return def;
}

function jsonSchemaOf(schema: AnyObject): JsonSchemaObject {
  const js = z.toJSONSchema(schema, { target: "draft-2020-12", io: "input", unrepresentable: "any" }) as Record<string, unknown>;
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
  const replayable = t.replayable ?? !t.annotations?.destructiveHint;
  if (!replayable) d._meta = { "io.mcpq/replayable": false };
  return d;
}

function resourceDescriptor(r: ResourceDefinition): ResourceDescriptor {
  return strip({ uri: r.uri, name: r.name, title: r.title, description: r.description, mimeType: r.mimeType, icons: r.icons });
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
  return strip({ name: p.name, title: p.title, description: p.description, arguments: args.length ? args : undefined, icons: p.icons });
}

export function catalogOf(defs: CatalogDefinition[]): Catalog {
  return {
    tools: defs.flatMap((c) => (c.tools ?? []).map(toolDescriptor)),
    resources: defs.flatMap((c) => (c.resources ?? []).map(resourceDescriptor)),
    resourceTemplates: defs.flatMap((c) => (c.resourceTemplates ?? []).map(templateDescriptor)),
    prompts: defs.flatMap((c) => (c.prompts ?? []).map(promptDescriptor)),
  };
}

function strip<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}
