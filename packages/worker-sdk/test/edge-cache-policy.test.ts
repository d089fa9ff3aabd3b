import { describe, expect, it } from "vitest";
import { registryContract } from "@mcpq/bus";
import {
  catalogOf,
  defineCatalog,
  definePrompt,
  defineResource,
  defineResourceTemplate,
  defineTool,
  z,
} from "../src/index.js";

describe("edge-cache policies (cache.edge) in the registry catalog", () => {
  it("only entries with edge: true and a resolved ttlMs above 0; scope from cacheScope; tags deduplicated", () => {
    const c = defineCatalog({
      name: "c",
      cache: { default: { ttlMs: 60_000, cacheScope: "public" } },
      tools: [
        defineTool({ name: "hinted", description: "d", input: z.object({}), handler: () => "" }),
        defineTool({
          name: "pub",
          description: "d",
          input: z.object({}),
          cache: { edge: true, tags: ["a", "a", "b"] },
          handler: () => "",
        }),
        defineTool({
          name: "priv",
          description: "d",
          input: z.object({}),
          cache: { edge: true, ttlMs: 5, cacheScope: "private", allowProgress: true },
          handler: () => "",
        }),
        defineTool({
          name: "zero",
          description: "d",
          input: z.object({}),
          cache: { edge: true, ttlMs: 0 },
          handler: () => "",
        }),
      ],
      resources: [
        defineResource({
          uri: "x://r",
          name: "r",
          cache: { edge: true },
          read: () => ({ text: "" }),
        }),
      ],
      resourceTemplates: [
        defineResourceTemplate({
          uriTemplate: "x://{id}",
          name: "t",
          cache: { edge: true },
          read: () => ({ text: "" }),
        }),
      ],
      prompts: [definePrompt({ name: "p", description: "p", get: () => ({ messages: [] }) })],
    });
    const cat = catalogOf([c]);
    expect(cat.cacheHints?.edge).toEqual({
      tools: {
        pub: { ttlMs: 60_000, scope: "public", tags: ["a", "b"] },
        priv: { ttlMs: 5, scope: "principal", allowProgress: true },
      },
      resources: { "x://r": { ttlMs: 60_000, scope: "public" } },
      resourceTemplates: { "x://{id}": { ttlMs: 60_000, scope: "public" } },
    });
    // The policies survive the registry contract the edges decode with.
    const entry = { workerId: "w", pool: "p", heartbeatAt: 1, ttlMs: 1, catalog: cat };
    expect(
      registryContract.decode(registryContract.encode(entry))?.catalog.cacheHints?.edge,
    ).toEqual(cat.cacheHints?.edge);
  });

  it("rejects malformed declarations at definition time", () => {
    const tool = (cache: unknown) => () =>
      defineTool({
        name: "t",
        description: "d",
        input: z.object({}),
        cache: cache as never,
        handler: () => "",
      });
    expect(tool({ edge: "yes" })).toThrow(/cache.edge/);
    expect(tool({ edge: true, tags: [""] })).toThrow(/cache.tags/);
    expect(tool({ edge: true, tags: Array.from({ length: 17 }, (_, i) => `t${i}`) })).toThrow(
      /cache.tags/,
    );
    expect(tool({ allowProgress: 1 })).toThrow(/allowProgress/);
    // A long-running (task) tool's answer is a task of its own caller: never edge-cached.
    const taskTool = (edge: boolean) => () =>
      defineTool({
        name: "t",
        description: "d",
        input: z.object({}),
        task: { support: "optional" },
        cache: { edge, ttlMs: 1_000 },
        handler: () => "",
      });
    expect(taskTool(true)).toThrow(/task tool cannot be edge-cached/);
    expect(taskTool(false)).not.toThrow();
  });
});
