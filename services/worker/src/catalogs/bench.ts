import { defineCatalog, defineTool, z } from "@mcpq/worker-sdk";

/**
 * The loadtests' `cache` scenario (loadtests/src/cache-bench.ts): the example catalog's `echo`,
 * opted in to the edge response cache (public, 10 min), so hit rates are set by the texts sent.
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
  ],
});
