import { describe, expect, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { RpcClient, grpcWire, tcpWire, wsWire, type Wire } from "./support/socket-client.js";

const MAX = 2;

describe(`connection limits (MCPQ_MAX_CONNECTIONS=${MAX}, one count shared by every transport)`, () => {
  let s: Stack<RunningEdge, RunningWorker>;
  let edge: RunningEdge;
  afterAll(() => s?.close());
  const idle = () =>
    eventually(() => edge.runtime.connections.open === 0, { what: "all connections released" });

  /** Opens a GET SSE stream that stays open (one HTTP connection in flight). */
  async function openGet(sessionId: string) {
    const ctl = new AbortController();
    const res = await fetch(edge.url, {
      headers: {
        accept: "text/event-stream",
        "mcp-session-id": sessionId,
        "mcp-protocol-version": "2025-11-25",
      },
      signal: ctl.signal,
    });
    expect(res.status).toBe(200);
    return () => ctl.abort();
  }

  async function newSession(): Promise<string> {
    const res = await fetch(edge.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "l", version: "1" },
        },
      }),
    });
    await res.text();
    return res.headers.get("mcp-session-id")!;
  }

  it("HTTP: the (N+1)th request in flight gets 503 with Retry-After and a -32010 body; /healthz is never refused", async ({
    nats,
  }) => {
    s = await stack(nats, { edgeEnv: { MCPQ_MAX_CONNECTIONS: String(MAX) } });
    edge = s.edges[0]!;
    const sid = await newSession();
    await idle();
    const closers = [await openGet(sid), await openGet(sid)];
    await eventually(() => edge.runtime.connections.count("http") === MAX);
    const refused = await fetch(edge.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: "{}",
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toMatchObject({
      jsonrpc: "2.0",
      id: null,
      error: {
        code: -32010,
        message: "Overloaded: too many connections",
        data: { retryAfterMs: 1000 },
      },
    });
    expect((await fetch(edge.url.replace("/mcp", "/healthz"))).status).toBe(200);
    // Legacy SSE counts too.
    expect((await fetch(edge.sseUrl!)).status).toBe(503);
    closers.forEach((c) => c());
    await idle();
    expect(
      (
        await fetch(edge.url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
        })
      ).status,
    ).toBe(400);
  });

  it("WebSocket: the (N+1)th socket is closed with 1013 'too many connections'", async () => {
    const held = [await wsWire(edge.wsUrl!), await wsWire(edge.wsUrl!)];
    const extra = await wsWire(edge.wsUrl!);
    expect(await extra.closed).toEqual({ code: 1013, reason: "too many connections" });
    // A held socket still works.
    const c = new RpcClient(held[0]!);
    await c.initialize(false);
    expect((await c.call("ping")).result).toEqual({});
    held.forEach((w) => w.close());
    await idle();
  });

  it("TCP: the (N+1)th socket gets a JSON-RPC error line, then the socket ends", async () => {
    const held = [await tcpWire(edge.tcpPort!), await tcpWire(edge.tcpPort!)];
    await eventually(() => edge.runtime.connections.count("tcp") === MAX);
    const extra = await tcpWire(edge.tcpPort!);
    const closed = await extra.closed;
    expect(JSON.parse(closed.reason!)).toEqual({
      jsonrpc: "2.0",
      id: null,
      error: {
        code: -32010,
        message: "Overloaded: too many connections",
        data: { retryAfterMs: 1000 },
      },
    });
    held.forEach((w) => w.close());
    await idle();
  });

  it("gRPC: the (N+1)th Session call fails with RESOURCE_EXHAUSTED", async () => {
    const held: Wire[] = [grpcWire(edge.grpcPort!), grpcWire(edge.grpcPort!)];
    // A call reaches the server when its first frame is sent.
    for (const w of held) await new RpcClient(w).call("ping");
    await eventually(() => edge.runtime.connections.count("grpc") === MAX);
    const extra = grpcWire(edge.grpcPort!);
    extra.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }));
    expect(await extra.closed).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      reason: "too many connections",
    });
    held.forEach((w) => w.close());
    await idle();
  });

  it("the count is shared: a WebSocket and a TCP socket fill the edge for HTTP and gRPC too", async () => {
    const ws = await wsWire(edge.wsUrl!);
    const tcp = await tcpWire(edge.tcpPort!);
    await eventually(() => edge.runtime.connections.open === MAX);
    expect(
      (
        await fetch(edge.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        })
      ).status,
    ).toBe(503);
    const g = grpcWire(edge.grpcPort!);
    g.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }));
    expect(await g.closed).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    ws.close();
    tcp.close();
    await idle();
    // Room again: a new socket is served.
    const c = new RpcClient(await tcpWire(edge.tcpPort!));
    await c.initialize(false);
    expect((await c.call("ping")).result).toEqual({});
    c.wire.close();
  });
});
