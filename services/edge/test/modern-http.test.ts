import { afterAll, describe, expect } from "vitest";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import {
  featuresCatalog,
  observed,
  startCatalogWorker,
  type Outcomes,
} from "./support/features-worker.js";
import { rawInitialize } from "./support/raw-init.js";

const V = "2026-07-28";
const META = {
  "io.modelcontextprotocol/protocolVersion": V,
  "io.modelcontextprotocol/clientInfo": { name: "modern-test", version: "1.0.0" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

interface Answer {
  status: number;
  contentType: string;
  body:
    | {
        id?: unknown;
        result?: Record<string, unknown>;
        error?: { code: number; message: string; data?: Record<string, unknown> };
      }
    | undefined;
  /** SSE answers: every JSON-RPC message of the stream, in order. */
  events: Record<string, unknown>[];
  headers: Headers;
}

/**
 * One stateless-era POST with conformant headers (MCP-Protocol-Version, Mcp-Method, Mcp-Name);
 * `headers` overrides or removes (value null) them.
 */
async function post(
  url: string,
  method: string,
  params: Record<string, unknown> | undefined,
  headers: Record<string, string | null> = {},
  id: number | string = 1,
  signal?: AbortSignal,
): Promise<Answer> {
  const h: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": V,
    "mcp-method": method,
  };
  const name =
    method === "resources/read"
      ? params?.["uri"]
      : method === "tools/call" || method === "prompts/get"
        ? params?.["name"]
        : undefined;
  if (typeof name === "string") h["mcp-name"] = name;
  for (const [k, v] of Object.entries(headers)) {
    if (v === null) delete h[k.toLowerCase()];
    else h[k.toLowerCase()] = v;
  }
  const res = await fetch(url, {
    method: "POST",
    headers: h,
    body: JSON.stringify({ jsonrpc: "2.0", id, method, ...(params ? { params } : {}) }),
    ...(signal ? { signal } : {}),
  });
  const contentType = res.headers.get("content-type") ?? "";
  const text = await res.text();
  if (contentType.includes("text/event-stream")) {
    const events = text
      .split("\n")
      .filter((l) => l.startsWith("data: ") && l.length > 6)
      .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>);
    return {
      status: res.status,
      contentType,
      body: events.find((e) => "result" in e || "error" in e) as Answer["body"],
      events,
      headers: res.headers,
    };
  }
  return {
    status: res.status,
    contentType,
    body: text ? (JSON.parse(text) as Answer["body"]) : undefined,
    events: [],
    headers: res.headers,
  };
}

/**
 * The 2026-07-28 (stateless) era over Streamable HTTP, on the endpoint that keeps serving
 * 2025 sessions: requests carry their client in `_meta`, any edge serves them, no session.
 */
describe("stateless era (2026-07-28) over Streamable HTTP", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  let features: Awaited<ReturnType<typeof startCatalogWorker>> | undefined;
  let ready: Promise<Stack<RunningEdge, RunningWorker>> | undefined;
  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, {
        edges: 2,
        workers: [{ catalogs: ["example"] }, { catalogs: ["conformance"] }],
      });
      features = await startCatalogWorker(nats.url, [featuresCatalog], "features");
      for (const e of s.edges)
        await eventually(
          () => e.runtime.catalog.toolPool("regional") && e.runtime.catalog.toolPool("echo"),
          { what: "catalogs on every edge" },
        );
      return s;
    })());
  const url = async (nats: NatsHandle, i = 0) => (await setup(nats)).edges[i]!.url;
  const outcomes = (): Outcomes => features?.outcomes ?? [];

  afterAll(async () => {
    await features?.close();
    await s?.close();
  });

  it("server/discover: versions of both eras, capabilities from the catalog, serverInfo in _meta, caching hints", async ({
    nats,
  }) => {
    const r = await post(await url(nats), "server/discover", { _meta: META });
    expect(r.status).toBe(200);
    expect(r.headers.get("mcp-session-id")).toBeNull();
    const result = r.body!.result!;
    expect(result).toMatchObject({ resultType: "complete", cacheScope: "public" });
    expect(result["supportedVersions"]).toEqual([
      "2026-07-28",
      "2025-11-25",
      "2025-06-18",
      "2025-03-26",
      "2024-11-05",
    ]);
    expect(result["capabilities"]).toMatchObject({
      tools: { listChanged: true },
      resources: {},
      prompts: {},
    });
    expect(Number.isInteger(result["ttlMs"]) && (result["ttlMs"] as number) >= 0).toBe(true);
    expect(
      (result["_meta"] as Record<string, { name: string }>)["io.modelcontextprotocol/serverInfo"]!
        .name,
    ).toBe("mcpq");
  });

  it("lists carry resultType and caching hints; calls, reads and prompts are answered by workers on either edge", async ({
    nats,
  }) => {
    const [u0, u1] = [await url(nats, 0), await url(nats, 1)];
    const tools = await post(u0, "tools/list", { _meta: META });
    expect(tools.body!.result).toMatchObject({ resultType: "complete" });
    // `example` declares no hints: the list is as fresh as its least fresh entry, and private.
    expect(tools.body!.result).toMatchObject({ ttlMs: 0, cacheScope: "private" });
    expect((tools.body!.result!["tools"] as { name: string }[]).map((t) => t.name)).toContain(
      "echo",
    );

    const call = await post(
      u1,
      "tools/call",
      { name: "echo", arguments: { text: "hi" }, _meta: META },
      {},
      7,
    );
    expect(call.status).toBe(200);
    expect(call.body).toMatchObject({
      id: 7,
      result: { resultType: "complete", content: [{ type: "text", text: "hi" }] },
    });
    expect(
      (call.body!.result!["_meta"] as Record<string, unknown>)[
        "io.modelcontextprotocol/serverInfo"
      ],
    ).toBeDefined();

    const resources = await post(u0, "resources/list", { _meta: META });
    const uri = (resources.body!.result!["resources"] as { uri: string }[])[0]!.uri;
    const read = await post(u1, "resources/read", { uri, _meta: META });
    expect(read.body!.result).toMatchObject({ resultType: "complete" });
    expect(read.body!.result!["ttlMs"]).toBeTypeOf("number");
    expect(["public", "private"]).toContain(read.body!.result!["cacheScope"]);

    const missing = await post(u0, "resources/read", { uri: "test://nope-for-sure", _meta: META });
    expect(missing.body!.error).toMatchObject({
      code: -32602,
      data: { uri: "test://nope-for-sure" },
    });
  });

  it("progress before the answer makes an SSE stream without event ids; the response ends it", async ({
    nats,
  }) => {
    const r = await post(await url(nats), "tools/call", {
      name: "test_tool_with_progress",
      arguments: {},
      _meta: { ...META, progressToken: "p1" },
    });
    expect(r.contentType).toContain("text/event-stream");
    const progress = r.events.filter((e) => e["method"] === "notifications/progress");
    expect(progress.length).toBeGreaterThan(0);
    expect(r.events.at(-1)).toMatchObject({ result: { resultType: "complete" } });
  });

  it("malformed _meta is -32602, header mismatches -32020, an unknown version -32022 with what is supported: all HTTP 400, with the request's id", async ({
    nats,
  }) => {
    const u = await url(nats);
    const noMeta = await post(u, "server/discover", {}, {}, 101);
    expect([noMeta.status, noMeta.body?.error?.code, noMeta.body?.id]).toEqual([400, -32602, 101]);
    const noCaps = await post(
      u,
      "server/discover",
      { _meta: { "io.modelcontextprotocol/protocolVersion": V } },
      {},
      102,
    );
    expect([noCaps.status, noCaps.body?.error?.code]).toEqual([400, -32602]);
    const noInfo = await post(u, "server/discover", {
      _meta: {
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {},
      },
    });
    expect(noInfo.status).toBe(200);

    const unknown = await post(
      u,
      "server/discover",
      { _meta: { ...META, "io.modelcontextprotocol/protocolVersion": "v999" } },
      { "mcp-protocol-version": "v999" },
      301,
    );
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({
      id: 301,
      error: { code: -32022, data: { requested: "v999" } },
    });
    expect(unknown.body!.error!.data!["supported"]).toContain(V);

    const mismatch = await post(u, "server/discover", {
      _meta: { ...META, "io.modelcontextprotocol/protocolVersion": "v999" },
    });
    expect([mismatch.status, mismatch.body?.error?.code]).toEqual([400, -32020]);
    const noVersionHeader = await post(
      u,
      "tools/list",
      { _meta: META },
      { "mcp-protocol-version": null },
    );
    expect([noVersionHeader.status, noVersionHeader.body?.error?.code]).toEqual([400, -32020]);
    const wrongMethod = await post(
      u,
      "tools/list",
      { _meta: META },
      { "mcp-method": "prompts/list" },
    );
    expect([wrongMethod.status, wrongMethod.body?.error?.code]).toEqual([400, -32020]);
    const noMethod = await post(u, "tools/list", { _meta: META }, { "mcp-method": null });
    expect([noMethod.status, noMethod.body?.error?.code]).toEqual([400, -32020]);
    const wrongName = await post(
      u,
      "tools/call",
      { name: "echo", arguments: { text: "x" }, _meta: META },
      { "mcp-name": "other" },
    );
    expect([wrongName.status, wrongName.body?.error?.code]).toEqual([400, -32020]);
    const noName = await post(
      u,
      "tools/call",
      { name: "echo", arguments: { text: "x" }, _meta: META },
      { "mcp-name": null },
    );
    expect([noName.status, noName.body?.error?.code]).toEqual([400, -32020]);
    const encoded = await post(
      u,
      "tools/call",
      { name: "echo", arguments: { text: "x" }, _meta: META },
      { "mcp-name": `=?base64?${Buffer.from("echo").toString("base64")}?=` },
    );
    expect(encoded.body?.result).toMatchObject({ resultType: "complete" });
  });

  it("x-mcp-header parameters: the Mcp-Param-* header must be there when the value is, and match it (base64 decoded strictly, numbers numerically)", async ({
    nats,
  }) => {
    const u = await url(nats);
    const regional = (args: Record<string, unknown>, headers: Record<string, string | null>) =>
      post(u, "tools/call", { name: "regional", arguments: args, _meta: META }, headers);
    const ok = await regional(
      { region: "us-west1", count: 42 },
      { "mcp-param-region": "us-west1", "mcp-param-count": "42.0" },
    );
    expect(ok.body?.result).toMatchObject({
      resultType: "complete",
      content: [{ text: "us-west1 42" }],
    });
    const encoded = await regional(
      { region: "Hello, 世界" },
      { "mcp-param-region": `=?base64?${Buffer.from("Hello, 世界").toString("base64")}?=` },
    );
    expect(encoded.body?.result).toMatchObject({ content: [{ text: "Hello, 世界 undefined" }] });
    // Without the full sentinel the value is literal text.
    const literal = await regional(
      { region: "=?base64?SGVsbG8=" },
      { "mcp-param-region": "=?base64?SGVsbG8=" },
    );
    expect(literal.body?.result).toBeDefined();
    for (const [args, headers] of [
      [{ region: "a" }, {}],
      [{ region: "a" }, { "mcp-param-region": "b" }],
      [{ region: "Hello" }, { "mcp-param-region": "=?base64?SGVsbG8?=" }],
      [{ region: "Hello" }, { "mcp-param-region": "=?base64?SGVs!!!bG8=?=" }],
      [
        { region: "a", count: 1 },
        { "mcp-param-region": "a", "mcp-param-count": "2" },
      ],
    ] as [Record<string, unknown>, Record<string, string>][]) {
      const r = await regional(args, headers);
      expect([JSON.stringify(headers), r.status, r.body?.error?.code]).toEqual([
        JSON.stringify(headers),
        400,
        -32020,
      ]);
    }
  });

  it("removed and unknown methods are 404 with -32601; GET and DELETE of this era are 405; legacy initialize still opens a session", async ({
    nats,
  }) => {
    const u = await url(nats);
    for (const method of [
      "initialize",
      "ping",
      "logging/setLevel",
      "resources/subscribe",
      "resources/unsubscribe",
      "unknown/method",
    ]) {
      const r = await post(u, method, { _meta: META }, {}, 500);
      expect([method, r.status, r.body?.error?.code, r.body?.id]).toEqual([
        method,
        404,
        -32601,
        500,
      ]);
    }
    const get = await fetch(u, {
      headers: { accept: "text/event-stream", "mcp-protocol-version": V },
    });
    expect(get.status).toBe(405);
    const del = await fetch(u, { method: "DELETE", headers: { "mcp-protocol-version": V } });
    expect(del.status).toBe(405);

    // Rejects unless it is a 200 with an Mcp-Session-Id.
    const init = await rawInitialize(u, { protocolVersion: "2025-11-25", clientName: "old" });
    expect(init.protocolVersion).toBe("2025-11-25");
  });

  it("closing the request's connection cancels it: the worker's handler is aborted", async ({
    nats,
  }) => {
    const u = await url(nats);
    const before = outcomes().filter((o) => o.outcome === "cancelled").length;
    const marker = `modern-cancel-${Date.now()}`;
    const ctl = new AbortController();
    const call = post(
      u,
      "tools/call",
      { name: "wait_for_cancel", arguments: { marker }, _meta: META },
      {},
      9,
      ctl.signal,
    ).catch((e: unknown) => e);
    await eventually(() => observed.started.has(marker), { what: "handler started" });
    ctl.abort();
    expect(await call).toBeInstanceOf(Error);
    await eventually(() => observed.aborted.has(marker), { what: "handler aborted" });
    await eventually(() => outcomes().filter((o) => o.outcome === "cancelled").length > before, {
      what: "worker reported cancelled",
    });
  });
});

describe("stateless era: a capability whose workers are gone for now", () => {
  it("tools/call while no worker serves tools (any more) is a retryable -32012 (503), not -32601 'this server has no tools'; discovery still advertises tools", async ({
    nats,
  }) => {
    const s = await stack(nats, { edges: 1, workers: [] });
    try {
      const edge = s.edges[0]!;
      const worker = await s.addWorker(["example"]);
      await eventually(() => edge.runtime.catalog.toolPool("echo"), { what: "echo registered" });
      const ok = await post(edge.url, "tools/call", {
        _meta: META,
        name: "echo",
        arguments: { text: "x" },
      });
      expect(ok.status).toBe(200);
      // Its only worker stops (or, at a broker fault, has not registered again yet).
      await worker.close();
      await eventually(() => edge.runtime.catalog.tools().length === 0, { what: "no tools now" });
      const r = await post(edge.url, "tools/call", {
        _meta: META,
        name: "echo",
        arguments: { text: "x" },
      });
      expect([r.status, r.body?.error?.code]).toEqual([503, -32012]);
      // And discovery still advertises tools (a client caches it for ttlMs), with none listed now.
      const discover = await post(edge.url, "server/discover", { _meta: META });
      expect(discover.body?.result?.["capabilities"]).toHaveProperty("tools");
      const list = await post(edge.url, "tools/list", { _meta: META });
      expect([list.status, list.body?.result?.["tools"]]).toEqual([200, []]);
      // Resources behind a template and prompts alike.
      expect(Object.keys(discover.body?.result?.["capabilities"] ?? {})).toEqual(
        expect.arrayContaining(["resources", "prompts", "completions"]),
      );
      const read = await post(edge.url, "resources/read", {
        _meta: META,
        uri: "mcpq://example/items/7",
      });
      expect([read.status, read.body?.error?.code]).toEqual([503, -32012]);
      const prompt = await post(edge.url, "prompts/get", {
        _meta: META,
        name: "greet",
        arguments: { name: "Ada" },
      });
      expect([prompt.status, prompt.body?.error?.code]).toEqual([503, -32012]);
      expect(r.body?.error?.data).toMatchObject({ reason: expect.stringMatching(/no worker/) });
    } finally {
      await s.close();
    }
  });
});
