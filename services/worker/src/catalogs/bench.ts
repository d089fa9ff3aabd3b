import { setTimeout as sleep } from "node:timers/promises";
import { defineCatalog, defineTool, z } from "@mcpq/worker-sdk";

/**
 * The loadtests' catalog. `echo`: the example catalog's, opted in to the edge response cache
 * (public, 10 min), so the `cache` scenario (loadtests/src/cache-bench.ts) sets hit rates by the
 * texts sent. `echo_io`: an I/O-bound handler (awaits 20 ms, no CPU) for the worker scale-out
 * figure (loadtests/src/scale-out.ts).
 */
export const benchCatalog = defineCatalog({
  name: "bench",
  tools: [
    defineTool({
      name: "echo",
      title: "Echo (edge-cached)",
      description:
        "Returns the given text unchanged, as one text content item; edge-cached for 10 minutes.",
      input: z.object({ text: z.string().describe("Text to echo back") }),
      annotations: { readOnlyHint: true, idempotentHint: true },
      cache: { edge: true, ttlMs: 600_000, cacheScope: "public", tags: ["bench"] },
      handler: ({ text }) => text,
    }),
    defineTool({
      name: "echo_io",
      title: "Echo after 20 ms",
      description:
        "Waits 20 ms (a timer: an I/O-bound handler), then returns the given text unchanged; not cached.",
      input: z.object({ text: z.string().describe("Text to echo back") }),
      annotations: { readOnlyHint: true, idempotentHint: true },
      handler: async ({ text }, ctx) => {
        await sleep(20, undefined, { signal: ctx.signal });
        return text;
      },
    }),
  ],
});
