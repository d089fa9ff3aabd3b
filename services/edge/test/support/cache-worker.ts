import {
  defineCatalog,
  definePrompt,
  defineResource,
  defineTool,
  z,
  type CatalogDefinition,
} from "@mcpq/worker-sdk";

/**
 * A test-only catalog for the edge response cache. Every handler counts its executions in
 * `executions` (same process as the in-process workers), so "a hit did not reach the worker"
 * is seen where it happens, not inferred from timing.
 */
const executions = new Map<string, number>();
const run = (what: string): number => {
  const n = (executions.get(what) ?? 0) + 1;
  executions.set(what, n);
  return n;
};
export const ran = (what: string): number => executions.get(what) ?? 0;

/** Single-flight: `gated` handlers wait until the test opens the gate. */
export const gate = (() => {
  let open!: () => void;
  let opened = new Promise<void>((r) => (open = r));
  return {
    wait: () => opened,
    open: () => open(),
    reset: () => {
      opened = new Promise<void>((r) => (open = r));
    },
  };
})();

const HOUR = 3_600_000;

export const cacheCatalog: CatalogDefinition = defineCatalog({
  name: "cachetest",
  tools: [
    defineTool({
      name: "cached_echo",
      description: "Echoes x with its execution count; edge-cached (public, tag echo).",
      input: z.object({ x: z.string() }),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public", tags: ["echo"] },
      handler: ({ x }) => `${x}#${run(`echo:${x}`)}`,
    }),
    defineTool({
      name: "whoami",
      description: "The caller's principal with the execution count; edge-cached per principal.",
      input: z.object({}),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "private" },
      handler: (_a, ctx) => `${ctx.principal}#${run("whoami")}`,
    }),
    defineTool({
      name: "short_lived",
      description: "Edge-cached for 300 ms.",
      input: z.object({ x: z.string() }),
      cache: { edge: true, ttlMs: 300, cacheScope: "public" },
      handler: ({ x }) => `${x}#${run(`short:${x}`)}`,
    }),
    defineTool({
      name: "hinted_only",
      description: "Declares a 2026-07-28 hint but does not opt in to edge caching.",
      input: z.object({}),
      cache: { ttlMs: HOUR, cacheScope: "public" },
      handler: () => `hinted#${run("hinted")}`,
    }),
    defineTool({
      name: "failing",
      description: "Opted in, but answers an isError result.",
      input: z.object({}),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public" },
      handler: () => ({
        content: [{ type: "text" as const, text: `failed#${run("failing")}` }],
        isError: true,
      }),
    }),
    defineTool({
      name: "throwing",
      description:
        "Opted in, but throws (a JSON-RPC error... or an isError result, whichever the SDK makes).",
      input: z.object({}),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public" },
      handler: () => {
        throw new Error(`thrown#${run("throwing")}`);
      },
    }),
    defineTool({
      name: "with_progress",
      description: "Opted in without allowProgress: calls with a progress token are never cached.",
      input: z.object({}),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public" },
      handler: async (_a, ctx) => {
        await ctx.progress(1, 1);
        return `progress#${run("progress")}`;
      },
    }),
    defineTool({
      name: "gated",
      description: "Edge-cached; waits for the test's gate.",
      input: z.object({}),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public" },
      handler: async () => {
        const n = run("gated");
        await gate.wait();
        return `gated#${n}`;
      },
    }),
    defineTool({
      name: "asks",
      description: "Opted in; asks the user (2026-07-28: an input_required round first).",
      input: z.object({}),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public" },
      handler: async (_a, ctx) => {
        const n = run("asks");
        const answer = await ctx.elicit({
          message: "name?",
          requestedSchema: { type: "object", properties: { name: { type: "string" } } },
        });
        return `asked#${n}:${JSON.stringify(answer["content"] ?? null)}`;
      },
    }),
    defineTool({
      name: "touch",
      description: "ctx.resourceUpdated(cache://counter).",
      input: z.object({}),
      handler: (_a, ctx) => {
        ctx.resourceUpdated("cache://counter");
        return "touched";
      },
    }),
    defineTool({
      name: "invalidate_echo",
      description: "ctx.invalidate([echo]).",
      input: z.object({}),
      handler: (_a, ctx) => {
        ctx.invalidate(["echo"]);
        return "invalidated";
      },
    }),
  ],
  resources: [
    defineResource({
      uri: "cache://counter",
      name: "counter",
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public" },
      read: () => ({ text: `read#${run("counter")}` }),
    }),
  ],
  prompts: [
    definePrompt({
      name: "cached_prompt",
      description: "Edge-cached prompt.",
      args: z.object({ topic: z.string() }),
      cache: { edge: true, ttlMs: HOUR, cacheScope: "public" },
      get: ({ topic }) => ({
        messages: [
          { role: "user", content: { type: "text", text: `${topic}#${run(`prompt:${topic}`)}` } },
        ],
      }),
    }),
  ],
});

/** The same catalog with one more tool: a new catalog version of the pool. */
export const cacheCatalogV2: CatalogDefinition = {
  ...cacheCatalog,
  tools: [
    ...(cacheCatalog.tools ?? []),
    defineTool({
      name: "v2_only",
      description: "Only in version 2.",
      input: z.object({}),
      handler: () => "v2",
    }),
  ],
};
