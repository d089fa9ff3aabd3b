import { describe, expect, afterAll } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, sdkClient, stack } from "./support/stack.js";
import { fourConcurrentCalls, servesExampleCatalog } from "./support/sdk-scenario.js";

/**
 * Four concurrent calls (one with progress) through an SDK client. With `exact` false only a
 * prefix of the progress is required: the SDK runs notification handlers a microtask late but
 * settles responses at once, so over transports that hand it several messages per tick (legacy
 * SSE, WebSocket, stdio) it drops a progress notification that arrives in the same chunk as the
 * response ("unknown token"). Raw clients check exact delivery (transports-sockets, -resume).
 */

describe("HTTP transports with the official SDK client", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("Streamable HTTP: initialize, four concurrent calls, progress", async ({ nats }) => {
    s = await stack(nats);
    const { client } = await sdkClient(s.edges[0]!.url);
    await fourConcurrentCalls(client, true);
    await client.close();
  });

  it("legacy HTTP+SSE (2024-11-05): SSEClientTransport unchanged", async () => {
    const client = new Client({ name: "legacy", version: "1" }, { capabilities: {} });
    const transport = new SSEClientTransport(new URL(s.edges[0]!.sseUrl!));
    await client.connect(transport);
    await servesExampleCatalog(client);
    await fourConcurrentCalls(client, false);
    expect((await client.readResource({ uri: "mcpq://example/readme" })).contents[0]).toMatchObject(
      { mimeType: "text/markdown" },
    );
    await expect(client.callTool({ name: "nope", arguments: {} })).rejects.toMatchObject({
      code: -32602,
    });
    await client.close();
    await eventually(() => s.edges[0]!.runtime.connections.count("sse") === 0, {
      what: "SSE stream closed",
    });
  });

  it("legacy SSE: the endpoint event names /messages; POSTs to unknown connections are 404; Origin is checked", async () => {
    const base = new URL(s.edges[0]!.sseUrl!);
    const ctl = new AbortController();
    const res = await fetch(base, { headers: { accept: "text/event-stream" }, signal: ctl.signal });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let buf = "";
    while (!buf.includes("\n\n")) buf += new TextDecoder().decode((await reader.read()).value);
    const endpoint = /event: endpoint\ndata: (\S+)/.exec(buf)![1]!;
    expect(endpoint).toMatch(/^\/messages\?sessionId=[A-Za-z0-9_-]{22}$/);
    const post = (path: string, headers: Record<string, string> = {}) =>
      fetch(new URL(path, base), {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      });
    expect((await post(endpoint)).status).toBe(202);
    expect((await post("/messages?sessionId=unknown")).status).toBe(404);
    expect((await post(endpoint, { origin: "http://evil.example.com" })).status).toBe(403);
    expect((await fetch(base, { headers: { origin: "http://evil.example.com" } })).status).toBe(
      403,
    );
    ctl.abort();
  });

  it("legacy SSE can be disabled (MCPQ_ENABLE_SSE=false) and so can WebSocket, TCP and gRPC", async ({
    nats,
  }) => {
    const edge = await factories.startEdge(nats.url, {
      MCPQ_ENABLE_SSE: "false",
      MCPQ_ENABLE_WS: "false",
      MCPQ_ENABLE_TCP: "false",
      MCPQ_ENABLE_GRPC: "false",
    });
    try {
      expect(edge.sseUrl).toBeUndefined();
      expect(edge.wsUrl).toBeUndefined();
      expect(edge.tcpPort).toBeUndefined();
      expect(edge.grpcPort).toBeUndefined();
      expect((await fetch(edge.url.replace("/mcp", "/sse"))).status).toBe(404);
    } finally {
      await edge.close();
    }
  });
});
