import { describe, expect, afterAll } from "vitest";
import WebSocket from "ws";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { WebSocketClientTransport } from "@modelcontextprotocol/sdk/client/websocket.js";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { RpcClient, progressOf, text, wsWire } from "./support/socket-client.js";
import { fourConcurrentCalls, servesExampleCatalog } from "./support/sdk-scenario.js";

// Node 20 has no global WebSocket; the SDK's WebSocketClientTransport expects one.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

describe("WebSocket transport (ws://HOST:PORT/ws, subprotocol mcp)", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("the official SDK client initializes, runs four concurrent calls and receives progress", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 2 });
    const client = new Client({ name: "ws-sdk", version: "1" }, { capabilities: {} });
    await client.connect(new WebSocketClientTransport(new URL(s.edges[0]!.wsUrl!)));
    await servesExampleCatalog(client);
    await fourConcurrentCalls(client, false);
    await client.close();
  });

  it("a raw client gets event markers and resumes its session on another edge with nothing lost or repeated", async () => {
    const c = new RpcClient(await wsWire(s.edges[0]!.wsUrl!));
    await c.initialize();
    // Socket transports carry the session id in the InitializeResult's _meta.
    expect(c.sessionId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const call = c.call(
      "tools/call",
      { name: "countdown", arguments: { steps: 8, delayMs: 80 }, _meta: { progressToken: "cd" } },
      77,
    );
    await eventually(() => progressOf(c, "cd").length >= 3, {
      what: "three progress notifications",
    });
    // Every retained message was announced by a marker carrying the connection's stream id.
    expect([...c.lastEventIds.keys()]).toEqual([c.streamId]);
    const sid = c.sessionId!;
    c.wire.close();
    const r = await c.resume(await wsWire(s.edges[1]!.wsUrl!), sid);
    expect(r.result).toMatchObject({ sessionId: sid, protocolVersion: "2025-11-25" });
    const done = await call;
    expect(text(done)).toBe("done after 8 steps");
    expect(progressOf(c, "cd")).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(c.received.filter((m) => m.id === 77)).toHaveLength(1);
    // The resumed connection serves new calls too.
    expect(text(await c.call("tools/call", { name: "echo", arguments: { text: "after" } }))).toBe(
      "after",
    );
    c.wire.close();
  });

  it("resume with an unknown session is refused; a malformed event id is invalid params", async () => {
    const c = new RpcClient(await wsWire(s.edges[0]!.wsUrl!));
    const r = await c.call("$/mcpq/resume", { sessionId: "x".repeat(43) });
    expect(r.error).toMatchObject({ code: -32600, message: "Session not found" });
    const c2 = new RpcClient(await wsWire(s.edges[0]!.wsUrl!));
    await c2.initialize();
    const sid = c2.sessionId!;
    const c3 = new RpcClient(await wsWire(s.edges[1]!.wsUrl!));
    const bad = await c3.call("$/mcpq/resume", { sessionId: sid, lastEventId: "no-underscore" });
    expect(bad.error?.code).toBe(-32602);
    for (const x of [c, c2, c3]) x.wire.close();
  });

  it("requests before initialize are refused; initialize twice is refused", async () => {
    const c = new RpcClient(await wsWire(s.edges[0]!.wsUrl!));
    expect((await c.call("tools/list")).error).toMatchObject({ code: -32600 });
    await c.initialize(false);
    expect(
      (
        await c.call("initialize", {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "x", version: "1" },
        })
      ).error?.code,
    ).toBe(-32600);
    expect((await c.call("ping")).result).toEqual({});
    c.wire.close();
  });

  it("the upgrade is guarded: foreign Origin 403, missing subprotocol 400, other paths 404", async () => {
    const url = s.edges[0]!.wsUrl!;
    await expect(
      wsWire(url, { headers: { origin: "http://evil.example.com" } }),
    ).rejects.toMatchObject({ status: 403 });
    await expect(wsWire(url, { protocols: [] })).rejects.toMatchObject({ status: 400 });
    await expect(wsWire(url.replace("/ws", "/nope"))).rejects.toMatchObject({ status: 404 });
  });
});
