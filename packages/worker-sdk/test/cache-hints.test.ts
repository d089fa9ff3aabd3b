import { describe, expect, it } from "vitest";
import { DEFAULT_CACHE_HINT, cacheHintOf, combineCacheHints, listCacheHint } from "@mcpq/protocol";
import {
  catalogOf,
  defineCatalog,
  definePrompt,
  defineResource,
  defineResourceTemplate,
  defineTool,
  entryCacheHint,
  z,
} from "../src/index.js";

const t = (name: string, cache?: { ttlMs?: number; cacheScope?: "public" | "private" }) =>
  defineTool({
    name,
    description: name,
    input: z.object({}),
    ...(cache ? { cache } : {}),
    handler: () => "",
  });

describe("caching hints (2026-07-28) in catalog definitions and the registry catalog", () => {
  it("resolves field by field: entry, then the list's value, then the catalog default, then the default", () => {
    const c = defineCatalog({
      name: "c",
      cache: { default: { ttlMs: 60_000, cacheScope: "public" }, tools: { ttlMs: 5_000 } },
      tools: [t("a"), t("b", { cacheScope: "private" }), t("c", { ttlMs: 0 })],
      resources: [defineResource({ uri: "x://r", name: "r", read: () => ({ text: "" }) })],
      prompts: [
        definePrompt({
          name: "p",
          description: "p",
          cache: { ttlMs: 1 },
          get: () => ({ messages: [] }),
        }),
      ],
    });
    expect(entryCacheHint(c, "tools", c.tools![0]!)).toEqual({
      ttlMs: 5_000,
      cacheScope: "public",
    });
    expect(entryCacheHint(c, "tools", c.tools![1]!)).toEqual({
      ttlMs: 5_000,
      cacheScope: "private",
    });
    expect(entryCacheHint(c, "tools", c.tools![2]!)).toEqual({ ttlMs: 0, cacheScope: "public" });
    expect(entryCacheHint(c, "resources", c.resources![0]!)).toEqual({
      ttlMs: 60_000,
      cacheScope: "public",
    });
    const cat = catalogOf([c]);
    // Descriptors stay clean; the hints travel beside them.
    expect(cat.tools.map((d) => Object.keys(d).includes("cache"))).toEqual([false, false, false]);
    expect(cat.cacheHints?.lists).toEqual({
      tools: { ttlMs: 5_000, cacheScope: "public" },
      resources: { ttlMs: 60_000, cacheScope: "public" },
      resourceTemplates: { ttlMs: 60_000, cacheScope: "public" },
      prompts: { ttlMs: 60_000, cacheScope: "public" },
    });
    expect(cacheHintOf(cat.cacheHints, "prompts", "p")).toEqual({ ttlMs: 1, cacheScope: "public" });
    expect(
      listCacheHint("tools", [{ hints: cat.cacheHints, keys: cat.tools.map((d) => d.name) }]),
    ).toEqual({ ttlMs: 0, cacheScope: "private" });
    expect(listCacheHint("resources", [{ hints: cat.cacheHints, keys: ["x://r"] }])).toEqual({
      ttlMs: 60_000,
      cacheScope: "public",
    });
  });

  it("declares nothing by default (the registry entry stays as before) and lists then get the default", () => {
    const cat = catalogOf([defineCatalog({ name: "plain", tools: [t("a")] })]);
    expect(cat.cacheHints).toBeUndefined();
    expect(listCacheHint("tools", [{ hints: cat.cacheHints, keys: ["a"] }])).toEqual(
      DEFAULT_CACHE_HINT,
    );
    // An undeclared catalog next to a public one makes the merged list private and stale.
    const pub = catalogOf([
      defineCatalog({
        name: "pub",
        cache: { default: { ttlMs: 9, cacheScope: "public" } },
        tools: [t("b")],
      }),
    ]);
    expect(listCacheHint("tools", [{ hints: pub.cacheHints, keys: ["b"] }])).toEqual({
      ttlMs: 9,
      cacheScope: "public",
    });
    expect(
      listCacheHint("tools", [
        { hints: pub.cacheHints, keys: ["b"] },
        { hints: cat.cacheHints, keys: ["a"] },
      ]),
    ).toEqual(DEFAULT_CACHE_HINT);
    expect(combineCacheHints([], { ttlMs: 7, cacheScope: "public" })).toEqual({
      ttlMs: 7,
      cacheScope: "public",
    });
  });

  it("refuses invalid hints when defined", () => {
    expect(() => t("bad", { ttlMs: -1 })).toThrow(/ttlMs must be an integer >= 0/);
    expect(() => t("bad", { ttlMs: 1.5 })).toThrow(/ttlMs/);
    expect(() =>
      defineResourceTemplate({
        uriTemplate: "x://{a}",
        name: "x",
        cache: { cacheScope: "shared" as "public" },
        read: () => ({ text: "" }),
      }),
    ).toThrow(/cacheScope/);
    expect(() => defineCatalog({ name: "c", cache: { default: { ttlMs: -5 } } })).toThrow(
      /catalog c cache.default/,
    );
  });
});
