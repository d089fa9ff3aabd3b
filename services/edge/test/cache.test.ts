import { afterAll, describe, expect } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, sdkClient, stack } from "./support/stack.js";
import { startCatalogWorker } from "./support/features-worker.js";
import { cacheCatalog, cacheCatalogV2, gate, ran } from "./support/cache-worker.js";

/**
 * The edge response cache (docs/caching.md) with the official SDK client, a real nats-server
 * and in-process workers of the test catalog `cachetest` (pool `cache`): edges 0 and 1 have L1
 * and the shared L2, edge 2 has L2 only (MCPQ_CACHE_L1_MAX_ENTRIES=0), so a hit there is an L2
 * hit. Worker-side execution counters prove whether a request reached a worker.
 */
const AUTH = "tok-alice=alice,tok-bob=bob";
const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

type Edges = [RunningEdge, RunningEdge, RunningEdge];

const V = "2026-07-28";
const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": V,
  "io.modelcontextprotocol/clientInfo": { name: "cache-test", version: "1.0.0" },
  "io.modelcontextprotocol/clientCapabilities": { elicitation: {} },
};

/** One stateless-era (2026-07-28) POST with conformant headers; returns the JSON-RPC result. */
async function modern(
  url: string,
  method: string,
  params: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const name = method === "resources/read" ? params["uri"] : params["name"];
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: "Bearer tok-alice",
      "mcp-protocol-version": V,
      "mcp-method": method,
      "mcp-name": String(name),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: { ...params, _meta: MODERN_META },
    }),
  });
  const text = await res.text();
  const body = (res.headers.get("content-type") ?? "").includes("text/event-stream")
    ? text
        .split("\n")
        .filter((l) => l.startsWith("data: ") && l.length > 6)
        .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
        .find((e) => "result" in e || "error" in e)
    : (JSON.parse(text) as Record<string, unknown>);
  if (!body || !("result" in body)) throw new Error(`no result: ${res.status} ${text}`);
  return body["result"] as Record<string, unknown>;
}
const textOf = (r: Record<string, unknown>) => (r["content"] as { text: string }[])[0]!.text;

describe("edge response cache", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  const closers: (() => Promise<unknown>)[] = [];
  let ready: Promise<Edges> | undefined;

  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, { edges: 2, workers: [], edgeEnv: { MCPQ_AUTH_TOKENS: AUTH } });
      const l2only = await factories.startEdge(nats.url, {
        MCPQ_AUTH_TOKENS: AUTH,
        MCPQ_CACHE_L1_MAX_ENTRIES: "0",
      });
      closers.push(() => l2only.close());
      const w = await startCatalogWorker(nats.url, [cacheCatalog], "cache");
      closers.push(() => w.close());
      const edges: Edges = [s.edges[0]!, s.edges[1]!, l2only];
      for (const e of edges)
        await eventually(() => e.runtime.catalog.toolPool("cached_echo"), {
          what: "catalog on every edge",
        });
      return edges;
    })());

  const clients = new Map<string, Client>();
  /** One SDK client per (edge, principal), reused. */
  const client = async (
    nats: NatsHandle,
    edge: 0 | 1 | 2,
    token = "tok-alice",
  ): Promise<Client> => {
    const k = `${edge}/${token}`;
    let c = clients.get(k);
    if (!c) {
      const edges = await setup(nats);
      c = (await sdkClient(edges[edge].url, as(token))).client;
      clients.set(k, c);
      closers.push(() => c!.close());
    }
    return c;
  };
  const call = async (
    nats: NatsHandle,
    edge: 0 | 1 | 2,
    name: string,
    args: Record<string, unknown> = {},
    token?: string,
    extra: Record<string, unknown> = {},
  ) => {
    const r = await (await client(nats, edge, token)).callTool({ name, arguments: args, ...extra });
    return (r.content as { text: string }[])[0]!.text;
  };
  const read = async (nats: NatsHandle, edge: 0 | 1 | 2) => {
    const r = await (await client(nats, edge)).readResource({ uri: "cache://counter" });
    return (r.contents[0] as { text: string }).text;
  };
  const metric = async (
    e: RunningEdge,
    name: string,
    labels: Record<string, string> = {},
  ): Promise<number> => {
    const m = await e.runtime.registry.getSingleMetric(name)?.get();
    return (m?.values ?? [])
      .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
      .reduce((a, v) => a + v.value, 0);
  };
  /** Waits until `edge` stored `n` results in the shared L2 (the store is not on the answer's path). */
  const l2Stored = async (e: RunningEdge, n: number) =>
    eventually(
      async () => (await metric(e, "mcpq_edge_cache_stores_total", { layer: "l2" })) >= n,
      { what: "L2 store" },
    );

  afterAll(async () => {
    await Promise.allSettled(closers.map((c) => c()));
    await s?.close();
  });

  it("L1 hit on the same edge and L2 hit on another edge never reach the worker; other arguments miss", async ({
    nats,
  }) => {
    const [e0, e1, e2] = await setup(nats);
    expect(await call(nats, 0, "cached_echo", { x: "a" })).toBe("a#1");
    expect(await call(nats, 0, "cached_echo", { x: "a" })).toBe("a#1");
    expect(
      await metric(e0, "mcpq_edge_cache_lookups_total", { layer: "l1", outcome: "hit" }),
    ).toBeGreaterThanOrEqual(1);
    await l2Stored(e0, 1);
    // Edge 2 has no L1: this is an L2 hit; edge 1 fills its L1 from L2.
    expect(await call(nats, 2, "cached_echo", { x: "a" })).toBe("a#1");
    expect(await call(nats, 1, "cached_echo", { x: "a" })).toBe("a#1");
    expect(await metric(e2, "mcpq_edge_cache_lookups_total", { layer: "l2", outcome: "hit" })).toBe(
      1,
    );
    expect(await metric(e1, "mcpq_edge_cache_lookups_total", { layer: "l2", outcome: "hit" })).toBe(
      1,
    );
    expect(await call(nats, 1, "cached_echo", { x: "a" })).toBe("a#1");
    expect(await metric(e1, "mcpq_edge_cache_lookups_total", { layer: "l1", outcome: "hit" })).toBe(
      1,
    );
    expect(ran("echo:a")).toBe(1);
    // Different arguments are a different key.
    expect(await call(nats, 1, "cached_echo", { x: "b" })).toBe("b#1");
    expect(ran("echo:b")).toBe(1);
    // resources/read and prompts/get are cached the same way.
    expect(await read(nats, 0)).toBe("read#1");
    await l2Stored(e0, 2);
    expect(await read(nats, 2)).toBe("read#1");
    expect(await read(nats, 0)).toBe("read#1");
    const prompt = async (edge: 0 | 1 | 2) =>
      (
        (
          await (
            await client(nats, edge)
          ).getPrompt({ name: "cached_prompt", arguments: { topic: "t" } })
        ).messages[0]!.content as { text: string }
      ).text;
    expect(await prompt(0)).toBe("t#1");
    expect(await prompt(0)).toBe("t#1");
    expect(ran("prompt:t")).toBe(1);
    expect(await metric(e0, "mcpq_edge_cache_entries", { layer: "l1" })).toBeGreaterThanOrEqual(3);
  });

  it("expiry per layer: past its ttlMs an entry is a miss in L1 and in L2 (per-entry expiry checked on read)", async ({
    nats,
  }) => {
    const [e0, , e2] = await setup(nats);
    const stores = await metric(e0, "mcpq_edge_cache_stores_total", { layer: "l2" });
    expect(await call(nats, 0, "short_lived", { x: "e" })).toBe("e#1");
    // The entry was stored (expiry = store time + ttl) before its answer reached the client.
    const stored = Date.now();
    await l2Stored(e0, stores + 1);
    // Wait for the condition "the entry's ttl has passed" (no assertion on durations).
    await eventually(() => Date.now() > stored + 400, { what: "ttl to pass" });
    const staleBefore =
      (await metric(e0, "mcpq_edge_cache_stale_total", { layer: "l2" })) +
      (await metric(e2, "mcpq_edge_cache_stale_total", { layer: "l2" }));
    // Edge 0: L1 expired; L2 holds the entry (bucket max_age is longer) but it is past its expiry.
    expect(await call(nats, 0, "short_lived", { x: "e" })).toBe("e#2");
    expect(ran("short:e")).toBe(2);
    const staleAfter =
      (await metric(e0, "mcpq_edge_cache_stale_total", { layer: "l2" })) +
      (await metric(e2, "mcpq_edge_cache_stale_total", { layer: "l2" }));
    expect(staleAfter).toBeGreaterThan(staleBefore);
    // L2-only edge: a fresh entry hits, an expired one misses.
    const storesBefore = await metric(e0, "mcpq_edge_cache_stores_total", { layer: "l2" });
    expect(await call(nats, 0, "short_lived", { x: "f" })).toBe("f#1");
    const second = Date.now();
    await l2Stored(e0, storesBefore + 1);
    await eventually(() => Date.now() > second + 400, { what: "ttl to pass" });
    expect(await call(nats, 2, "short_lived", { x: "f" })).toBe("f#2");
  });

  it("principal scope: a private entry is never served to another principal, on any edge or layer", async ({
    nats,
  }) => {
    const [e0] = await setup(nats);
    const stores = await metric(e0, "mcpq_edge_cache_stores_total", { layer: "l2" });
    expect(await call(nats, 0, "whoami", {}, "tok-alice")).toBe("alice#1");
    expect(await call(nats, 0, "whoami", {}, "tok-alice")).toBe("alice#1");
    expect(await call(nats, 0, "whoami", {}, "tok-bob")).toBe("bob#2");
    await l2Stored(e0, stores + 2);
    // Both entries are in L2 now: each principal gets its own from the L2-only edge.
    expect(await call(nats, 2, "whoami", {}, "tok-bob")).toBe("bob#2");
    expect(await call(nats, 2, "whoami", {}, "tok-alice")).toBe("alice#1");
    expect(ran("whoami")).toBe(2);
    expect(await call(nats, 1, "whoami", {}, "tok-bob")).toMatch(/^bob#/);
    expect(await call(nats, 2, "whoami", {}, "tok-alice")).toMatch(/^alice#/);
    expect(await call(nats, 1, "whoami", {}, "tok-alice")).toMatch(/^alice#/);
    // Every answer bob got names bob, every one alice got names alice.
    for (const e of [0, 1, 2] as const) {
      expect(await call(nats, e, "whoami", {}, "tok-bob")).toMatch(/^bob#/);
      expect(await call(nats, e, "whoami", {}, "tok-alice")).toMatch(/^alice#/);
    }
  });

  it("single-flight: N concurrent identical calls on one edge make one worker execution", async ({
    nats,
  }) => {
    const [e0] = await setup(nats);
    const c = await client(nats, 0);
    const before = await metric(e0, "mcpq_edge_cache_coalesced_total");
    const N = 8;
    const calls = Array.from({ length: N }, () => c.callTool({ name: "gated", arguments: {} }));
    // All N reached the edge (one in flight to the worker, N-1 waiting on it) before the worker answers.
    await eventually(
      async () =>
        (await metric(e0, "mcpq_edge_cache_coalesced_total")) - before === N - 1 &&
        ran("gated") === 1,
      { what: "N-1 coalesced" },
    );
    gate.open();
    const texts = (await Promise.all(calls)).map((r) => (r.content as { text: string }[])[0]!.text);
    expect(texts).toEqual(Array.from({ length: N }, () => "gated#1"));
    expect(ran("gated")).toBe(1);
  });

  it("nothing uncacheable is cached: not opted in, isError, thrown errors, progress tokens, client bypass", async ({
    nats,
  }) => {
    await setup(nats);
    for (let i = 1; i <= 2; i++) expect(await call(nats, 0, "hinted_only")).toBe(`hinted#${i}`);
    for (let i = 1; i <= 2; i++) expect(await call(nats, 0, "failing")).toBe(`failed#${i}`);
    for (let i = 1; i <= 2; i++) {
      const r = await (await client(nats, 0)).callTool({ name: "throwing", arguments: {} }).then(
        (x) => JSON.stringify(x),
        (err: unknown) => String(err),
      );
      expect(r).toContain(`thrown#${i}`);
    }
    for (let i = 1; i <= 2; i++) {
      const r = await (
        await client(nats, 0)
      ).callTool({ name: "with_progress", arguments: {} }, undefined, {
        onprogress: () => undefined,
      });
      expect((r.content as { text: string }[])[0]!.text).toBe(`progress#${i}`);
    }
    // The same tool without a progress token is cached...
    expect(await call(nats, 0, "with_progress")).toBe("progress#3");
    expect(await call(nats, 0, "with_progress")).toBe("progress#3");
    // ... and `_meta["io.mcpq/cache"]: "bypass"` skips it (neither served nor stored).
    const bypass = { _meta: { "io.mcpq/cache": "bypass" } };
    expect(await call(nats, 0, "with_progress", {}, undefined, bypass)).toBe("progress#4");
    expect(await call(nats, 0, "with_progress", {}, undefined, bypass)).toBe("progress#5");
    expect(await call(nats, 0, "with_progress")).toBe("progress#3");
  });

  it("2026-07-28: hits are shaped like a worker's answer and keyed by era; input_required results and retries are never cached", async ({
    nats,
  }) => {
    const [e0] = await setup(nats);
    const first = await modern(e0.url, "tools/call", {
      name: "cached_echo",
      arguments: { x: "m" },
    });
    const again = await modern(e0.url, "tools/call", {
      name: "cached_echo",
      arguments: { x: "m" },
    });
    expect(textOf(first)).toBe("m#1");
    expect(again).toEqual(first);
    expect(again["resultType"]).toBe("complete");
    expect(
      (again["_meta"] as Record<string, unknown>)["io.modelcontextprotocol/serverInfo"],
    ).toBeDefined();
    // The legacy era has its own entry (results differ in shape).
    expect(await call(nats, 0, "cached_echo", { x: "m" })).toBe("m#2");
    // resources/read hits carry the declared hint.
    const read = await modern(e0.url, "resources/read", { uri: "cache://counter" });
    expect(await modern(e0.url, "resources/read", { uri: "cache://counter" })).toEqual(read);
    expect(read).toMatchObject({ resultType: "complete", ttlMs: 3_600_000, cacheScope: "public" });
    // input_required is not stored: the same first round runs again.
    const r1 = await modern(e0.url, "tools/call", { name: "asks", arguments: {} });
    expect(r1["resultType"]).toBe("input_required");
    const r1b = await modern(e0.url, "tools/call", { name: "asks", arguments: {} });
    expect(r1b["resultType"]).toBe("input_required");
    expect(ran("asks")).toBe(2);
    // A retry carrying answers goes to a worker every time (its result depends on them).
    const key = Object.keys(r1["inputRequests"] as object)[0]!;
    const retry = {
      name: "asks",
      arguments: {},
      inputResponses: { [key]: { action: "accept", content: { name: "Z" } } },
      requestState: r1["requestState"],
    };
    expect(textOf(await modern(e0.url, "tools/call", retry))).toBe('asked#3:{"name":"Z"}');
    const retryB = { ...retry, requestState: r1b["requestState"] };
    expect(textOf(await modern(e0.url, "tools/call", retryB))).toBe('asked#4:{"name":"Z"}');
    // The same retry again reaches the worker too, which refuses the used state (single use).
    await expect(modern(e0.url, "tools/call", retry)).rejects.toThrow(
      /Invalid or expired requestState/,
    );
  });

  it("invalidation by URI (ctx.resourceUpdated) and by tag (ctx.invalidate) reaches every edge and L2", async ({
    nats,
  }) => {
    await setup(nats);
    // Every edge holds cache://counter (edge 0/1 in L1, edge 2 in L2).
    const first = await read(nats, 0);
    await eventually(
      async () => (await read(nats, 1)) === first && (await read(nats, 2)) === first,
      { what: "same value everywhere" },
    );
    const n = ran("counter");
    // Touched on edge 0. Edge 2 (L2 only) first: until L2 is purged it keeps serving the old
    // value; then edge 1, whose L1 keeps the old value until the eviction reaches it.
    await call(nats, 0, "touch");
    await eventually(async () => (await read(nats, 2)) !== first, { what: "L2 purged the URI" });
    await eventually(async () => (await read(nats, 1)) !== first, {
      what: "edge 1 evicted the URI",
    });
    expect(ran("counter")).toBeGreaterThan(n);

    // Tag "echo": cached_echo entries in edge 1's L1 and in L2.
    const [, e1] = await setup(nats);
    const stores = await metric(e1, "mcpq_edge_cache_stores_total", { layer: "l2" });
    const before = await call(nats, 1, "cached_echo", { x: "tag" });
    await l2Stored(e1, stores + 1);
    expect(await call(nats, 1, "cached_echo", { x: "tag" })).toBe(before);
    expect(await call(nats, 2, "cached_echo", { x: "tag" })).toBe(before);
    await call(nats, 0, "invalidate_echo");
    await eventually(async () => (await call(nats, 2, "cached_echo", { x: "tag" })) !== before, {
      what: "L2 purged tag echo",
    });
    await eventually(async () => (await call(nats, 1, "cached_echo", { x: "tag" })) !== before, {
      what: "edge 1 evicted tag echo",
    });
  });

  it("a worker with a new catalog joining the pool evicts the pool's entries on every edge", async ({
    nats,
  }) => {
    const edges = await setup(nats);
    const v1 = await call(nats, 1, "cached_echo", { x: "ver" });
    expect(await call(nats, 1, "cached_echo", { x: "ver" })).toBe(v1);
    const runs = ran("echo:ver");
    const w2 = await startCatalogWorker(nats.url, [cacheCatalogV2], "cache");
    closers.push(() => w2.close());
    for (const e of edges)
      await eventually(() => e.runtime.catalog.toolPool("v2_only"), {
        what: "v2 catalog on every edge",
      });
    expect(await call(nats, 1, "cached_echo", { x: "ver" })).not.toBe(v1);
    expect(ran("echo:ver")).toBe(runs + 1);
    expect(
      await metric(edges[1], "mcpq_edge_cache_evictions_total", {
        layer: "l1",
        reason: "invalidated",
      }),
    ).toBeGreaterThan(0);
  });
});
