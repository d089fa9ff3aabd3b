import { describe, expect } from "vitest";
import { eventually, natsTest as it, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";

/** Raw HTTP against the edge: every Streamable HTTP rule of the 2025-11-25 transport spec. */
describe("Streamable HTTP rules", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  let url: string;
  const TOKENS = { alice: "tok-alice", bob: "tok-bob" };

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${TOKENS.alice}`,
        ...headers,
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  const init = async (token = TOKENS.alice, protocolVersion = "2025-11-25") => {
    const r = await post(
      {
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: { protocolVersion, capabilities: {}, clientInfo: { name: "raw", version: "1" } },
      },
      { authorization: `Bearer ${token}` },
    );
    expect(r.status).toBe(200);
    const sid = r.headers.get("mcp-session-id");
    expect(sid).toMatch(/^[\x21-\x7e]{43}$/);
    return { sid: sid!, body: (await r.json()) as { result: { protocolVersion: string } } };
  };
  const json = async (r: Response) =>
    (await r.json()) as {
      id: unknown;
      error?: { code: number; message: string };
      result?: unknown;
    };

  it("starts a stack with auth and a small body limit", async ({ nats }) => {
    s = await stack(nats, {
      edgeEnv: {
        MCPQ_AUTH_TOKENS: `${TOKENS.alice}=alice,${TOKENS.bob}=bob`,
        MCPQ_MAX_BODY_BYTES: "2048",
      },
    });
    url = s.edges[0]!.url;
  });

  it("initialize issues a session id and negotiates the version", async () => {
    const { body } = await init();
    expect(body.result.protocolVersion).toBe("2025-11-25");
    expect((await init(TOKENS.alice, "2024-11-05")).body.result.protocolVersion).toBe("2024-11-05");
    expect((await init(TOKENS.alice, "1999-01-01")).body.result.protocolVersion).toBe("2025-11-25");
  });

  it("malformed JSON -> 400 -32700", async () => {
    const r = await post("{not json", { "mcp-session-id": "x" });
    expect(r.status).toBe(400);
    expect((await json(r)).error!.code).toBe(-32700);
  });

  it("invalid JSON-RPC -> 400 -32600 (id salvaged when possible)", async () => {
    const r = await post({ jsonrpc: "1.0", id: 9, method: "ping" });
    expect(r.status).toBe(400);
    const b = await json(r);
    expect(b.error!.code).toBe(-32600);
    expect(b.id).toBe(9);
  });

  it("missing session id -> 400; unknown session -> 404", async () => {
    expect((await post({ jsonrpc: "2.0", id: 1, method: "ping" })).status).toBe(400);
    const r = await post(
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { "mcp-session-id": "A".repeat(43) },
    );
    expect(r.status).toBe(404);
  });

  it("unsupported MCP-Protocol-Version -> 400; absent is accepted (2025-03-26)", async () => {
    const { sid } = await init();
    const bad = await post(
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { "mcp-session-id": sid, "mcp-protocol-version": "2030-01-01" },
    );
    expect(bad.status).toBe(400);
    const ok = await post(
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { "mcp-session-id": sid, accept: "application/json" },
    );
    expect(ok.status).toBe(200);
    expect(await json(ok)).toEqual({ jsonrpc: "2.0", id: 1, result: {} });
  });

  it("unknown method -> -32601; invalid params -> -32602; bad cursor -> -32602", async () => {
    const { sid } = await init();
    const h = {
      "mcp-session-id": sid,
      "mcp-protocol-version": "2025-11-25",
      accept: "application/json",
    };
    expect(
      (await json(await post({ jsonrpc: "2.0", id: 1, method: "does/not/exist" }, h))).error!.code,
    ).toBe(-32601);
    expect(
      (await json(await post({ jsonrpc: "2.0", id: 2, method: "tools/call", params: {} }, h)))
        .error!.code,
    ).toBe(-32602);
    expect(
      (
        await json(
          await post({ jsonrpc: "2.0", id: 3, method: "tools/list", params: { cursor: "%%%" } }, h),
        )
      ).error!.code,
    ).toBe(-32602);
  });

  it("a notification or a response gets 202 with no body", async () => {
    const { sid } = await init();
    const h = { "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" };
    const n = await post({ jsonrpc: "2.0", method: "notifications/initialized" }, h);
    expect(n.status).toBe(202);
    expect(await n.text()).toBe("");
    const r = await post({ jsonrpc: "2.0", id: "mcpq-unknown", result: {} }, h);
    expect(r.status).toBe(202);
  });

  it("a request answers as SSE (priming event first) or JSON, by Accept", async () => {
    const { sid } = await init();
    const h = { "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" };
    const sse = await post(
      {
        jsonrpc: "2.0",
        id: 5,
        method: "tools/call",
        params: { name: "echo", arguments: { text: "x" } },
      },
      h,
    );
    expect(sse.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await sse.text();
    const events = text.split("\n\n").filter(Boolean);
    expect(events[0]).toMatch(/^id: [0-9a-f]{12}_0\nretry: \d+\ndata: $/);
    expect(events.at(-1)).toContain('"result":{"content":[{"type":"text","text":"x"}]}');
    const js = await post(
      {
        jsonrpc: "2.0",
        id: 6,
        method: "tools/call",
        params: { name: "echo", arguments: { text: "y" } },
      },
      { ...h, accept: "application/json" },
    );
    expect(js.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await json(js)).toEqual({
      jsonrpc: "2.0",
      id: 6,
      result: { content: [{ type: "text", text: "y" }] },
    });
  });

  it("Origin and Host are validated (403)", async () => {
    const { sid } = await init();
    const h = { "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" };
    expect(
      (
        await post(
          { jsonrpc: "2.0", id: 1, method: "ping" },
          { ...h, origin: "http://evil.example.com" },
        )
      ).status,
    ).toBe(403);
    expect(
      (
        await post(
          { jsonrpc: "2.0", id: 1, method: "ping" },
          { ...h, origin: "http://localhost:5173" },
        )
      ).status,
    ).toBe(200);
    // fetch forbids overriding Host; use node:http for that one.
    const { request } = await import("node:http");
    const u = new URL(url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: "POST",
          headers: {
            host: "evil.example.com",
            "content-type": "application/json",
            accept: "application/json",
            authorization: `Bearer ${TOKENS.alice}`,
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end(
        JSON.stringify({
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: {
            protocolVersion: "2025-11-25",
            capabilities: {},
            clientInfo: { name: "x", version: "1" },
          },
        }),
      );
    });
    expect(status).toBe(403);
  });

  it("a body over the limit -> 413", async () => {
    const { sid } = await init();
    const r = await post(
      {
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "echo", arguments: { text: "z".repeat(4096) } },
      },
      { "mcp-session-id": sid },
    );
    expect(r.status).toBe(413);
  });

  it("no token -> 401; a session id is not a credential: another principal's session is 404", async () => {
    const noAuth = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    expect(noAuth.status).toBe(401);
    const { sid } = await init(TOKENS.alice);
    const asBob = await post(
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { "mcp-session-id": sid, authorization: `Bearer ${TOKENS.bob}` },
    );
    expect(asBob.status).toBe(404);
  });

  it("a held GET stream counts while open and is released when its client leaves, twice over", async () => {
    const { sid } = await init();
    const edge = s.edges[0]!;
    const openStreams = async () =>
      (await edge.runtime.registry.getSingleMetric("mcpq_edge_open_streams")?.get())?.values.find(
        (v) => v.labels["transport"] === "http",
      )?.value ?? 0;
    const streamsBefore = await openStreams();
    const connsBefore = edge.runtime.connections.open;
    for (let round = 0; round < 2; round++) {
      const leave = new AbortController();
      const g = await fetch(url, {
        headers: {
          accept: "text/event-stream",
          "mcp-session-id": sid,
          "mcp-protocol-version": "2025-11-25",
          authorization: `Bearer ${TOKENS.alice}`,
        },
        signal: leave.signal,
      });
      expect(g.status).toBe(200);
      expect(g.headers.get("content-type")).toMatch(/^text\/event-stream/);
      // The handler has returned (the stream is open): the stream, not the handler, holds it.
      expect(await openStreams()).toBe(streamsBefore + 1);
      expect(edge.runtime.connections.open).toBe(connsBefore + 1);
      leave.abort();
      await eventually(
        async () =>
          (await openStreams()) === streamsBefore && edge.runtime.connections.open === connsBefore,
        { what: `GET stream ${round + 1} released` },
      );
    }
  });

  it("GET needs Accept: text/event-stream (406); DELETE ends the session, then 404", async () => {
    const { sid } = await init();
    const g = await fetch(url, {
      headers: {
        accept: "application/json",
        "mcp-session-id": sid,
        authorization: `Bearer ${TOKENS.alice}`,
      },
    });
    expect(g.status).toBe(406);
    const d = await fetch(url, {
      method: "DELETE",
      headers: { "mcp-session-id": sid, authorization: `Bearer ${TOKENS.alice}` },
    });
    expect(d.status).toBe(200);
    expect(
      (await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { "mcp-session-id": sid })).status,
    ).toBe(404);
  });

  it("batches are refused on 2025-11-25 sessions and answered on 2025-03-26 ones", async () => {
    const modern = await init();
    const r1 = await post([{ jsonrpc: "2.0", id: 1, method: "ping" }], {
      "mcp-session-id": modern.sid,
      "mcp-protocol-version": "2025-11-25",
    });
    expect(r1.status).toBe(400);
    const old = await init(TOKENS.alice, "2025-03-26");
    const r2 = await post(
      [
        { jsonrpc: "2.0", id: 1, method: "ping" },
        { jsonrpc: "2.0", method: "notifications/initialized" },
        {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: { name: "add", arguments: { a: 1, b: 2 } },
        },
      ],
      {
        "mcp-session-id": old.sid,
        "mcp-protocol-version": "2025-03-26",
        accept: "application/json",
      },
    );
    expect(r2.status).toBe(200);
    const arr = (await r2.json()) as { id: number; result: Record<string, unknown> }[];
    expect(arr.map((x) => x.id).sort()).toEqual([1, 2]);
    expect(arr.find((x) => x.id === 2)!.result).toMatchObject({ structuredContent: { sum: 3 } });
    await s.close();
  });
});
