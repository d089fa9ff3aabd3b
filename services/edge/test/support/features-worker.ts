import { DEFAULT_BUS_LIMITS, connectBus } from "@mcpq/bus";
import {
  Worker,
  defineCatalog,
  definePrompt,
  defineResource,
  defineTool,
  z,
  type CatalogDefinition,
  type WorkerMetrics,
} from "@mcpq/worker-sdk";

/**
 * A test-only catalog exercising the handler context from the worker's side. Its tools record
 * what they observed in module-level state the tests read (same process as the in-process
 * workers), so "the handler was aborted" is seen where it happens, not inferred from the wire.
 */
export const observed = {
  started: new Set<string>(),
  aborted: new Set<string>(),
};

const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

export const featuresCatalog = defineCatalog({
  name: "features",
  tools: [
    defineTool({
      name: "wait_for_cancel",
      description:
        "Records `marker` as started, then waits until the request is aborted (records it as aborted).",
      input: z.object({ marker: z.string() }),
      handler: ({ marker }, ctx) => {
        observed.started.add(marker);
        return new Promise<string>((_resolve, reject) => {
          const onAbort = () => {
            observed.aborted.add(marker);
            reject(ctx.signal.reason as Error);
          };
          if (ctx.signal.aborted) onAbort();
          else ctx.signal.addEventListener("abort", onAbort, { once: true });
        });
      },
    }),
    defineTool({
      name: "log_levels",
      description: "Logs one message at each of debug, info, warning and error (data = the level).",
      input: z.object({}),
      handler: async (_args, ctx) => {
        for (const level of ["debug", "info", "warning", "error"] as const)
          await ctx.log(level, level, "features");
        return "logged";
      },
    }),
    defineTool({
      name: "sequence",
      description: "Interleaves `steps` logs and progress notifications, then answers.",
      input: z.object({ steps: z.number().int().min(1).max(50).default(5) }),
      handler: async ({ steps }, ctx) => {
        for (let i = 1; i <= steps; i++) {
          await ctx.log("info", `step ${i}`);
          await ctx.progress(i, steps);
        }
        return `done ${steps}`;
      },
    }),
    defineTool({
      name: "touch_resource",
      description: "Announces notifications/resources/updated for `uri` from the worker.",
      input: z.object({ uri: z.string() }),
      handler: ({ uri }, ctx) => {
        ctx.resourceUpdated(uri);
        return `touched ${uri}`;
      },
    }),
    defineTool({
      name: "regional",
      description:
        "Echoes its region and count; both are mirrored into Mcp-Param-* headers (x-mcp-header, 2026-07-28).",
      input: z.object({
        region: z.string().meta({ "x-mcp-header": "Region" }),
        count: z.number().int().optional().meta({ "x-mcp-header": "Count" }),
      }),
      handler: ({ region, count }) => `${region} ${String(count)}`,
    }),
    defineTool({
      name: "structured",
      title: "Structured sum",
      description: "Returns only structuredContent; the worker mirrors it as text.",
      input: z.object({ a: z.number(), b: z.number() }),
      output: z.object({ sum: z.number() }),
      handler: ({ a, b }) => ({ content: [], structuredContent: { sum: a + b } }),
    }),
    defineTool({
      name: "structured_bad",
      description: "Returns structuredContent that violates its outputSchema.",
      input: z.object({}),
      output: z.object({ sum: z.number() }),
      handler: () => ({ content: [], structuredContent: { sum: "not a number" } }),
    }),
    defineTool({
      name: "rich",
      title: "Rich content",
      description: "Returns a resource_link, an image, audio and an embedded resource.",
      input: z.object({}),
      annotations: { title: "Rich", readOnlyHint: true, openWorldHint: false },
      icons: [{ src: "https://example.com/icon.png", mimeType: "image/png", sizes: ["48x48"] }],
      handler: () => [
        {
          type: "resource_link",
          uri: "test://static-text",
          name: "static-text",
          mimeType: "text/plain",
        },
        { type: "image", data: PNG, mimeType: "image/png" },
        { type: "audio", data: WAV, mimeType: "audio/wav" },
        {
          type: "resource",
          resource: { uri: "test://embedded", mimeType: "application/octet-stream", blob: PNG },
        },
      ],
    }),
    defineTool({
      name: "ask",
      description:
        "Sends one server->client request (`method`) and returns the outcome as text (error code and message when it fails).",
      input: z.object({
        method: z.enum(["sample", "elicit", "roots"]),
        timeoutMs: z.number().int().positive().optional(),
      }),
      handler: async ({ method, timeoutMs }, ctx) => {
        const opts = timeoutMs === undefined ? {} : { timeoutMs };
        try {
          const r =
            method === "sample"
              ? await ctx.sample(
                  {
                    messages: [{ role: "user", content: { type: "text", text: "hi" } }],
                    maxTokens: 10,
                  },
                  opts,
                )
              : method === "elicit"
                ? await ctx.elicit(
                    {
                      message: "name?",
                      requestedSchema: { type: "object", properties: { name: { type: "string" } } },
                    },
                    opts,
                  )
                : await ctx.listRoots(opts);
          return `ok ${JSON.stringify(r)}`;
        } catch (err) {
          const e = err as { code?: number; message?: string };
          return `failed ${String(e.code)} ${String(e.message)}`;
        }
      },
    }),
  ],
});

/** A catalog that joins later (list_changed tests). */
export const lateCatalog = defineCatalog({
  name: "late",
  tools: [
    defineTool({
      name: "late_tool",
      description: "Served by a worker that joined later.",
      input: z.object({}),
      handler: () => "late",
    }),
  ],
  resources: [
    defineResource({
      uri: "test://late",
      name: "late",
      description: "A late resource",
      read: () => ({ text: "late" }),
    }),
  ],
  prompts: [
    definePrompt({
      name: "late_prompt",
      description: "A late prompt",
      get: () => ({ messages: [] }),
    }),
  ],
});

/** Outcomes a worker reported through its metrics hook, per method. */
export type Outcomes = { method: string; outcome: string }[];

/** Starts a Worker (own NATS connection) serving `catalogs` in `pool`, in this process. */
export async function startCatalogWorker(
  natsUrl: string,
  catalogs: CatalogDefinition[],
  pool: string,
  opts: { concurrency?: number; maxAckPending?: number } = {},
): Promise<{ worker: Worker; outcomes: Outcomes; close(): Promise<void> }> {
  const bus = await connectBus({
    url: natsUrl,
    name: `test-worker-${pool}`,
    limits: {
      ...DEFAULT_BUS_LIMITS,
      registryTtlMs: 6000,
      ...(opts.maxAckPending ? { maxAckPending: opts.maxAckPending } : {}),
    },
  });
  const outcomes: Outcomes = [];
  const metrics: WorkerMetrics = {
    inFlight: () => undefined,
    handled: (method, outcome) => void outcomes.push({ method, outcome }),
    expired: () => undefined,
    redelivered: () => undefined,
  };
  const worker = new Worker({
    bus,
    pool,
    catalogs,
    metrics,
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
  });
  await worker.start();
  return {
    worker,
    outcomes,
    async close() {
      await worker.stop(1_000);
      await bus.close();
    },
  };
}
