// Holes found by a hostile client (issue 14): client-chosen names that reach NATS subjects
// (hole 2) and session counting at initialize (hole 4).
import { afterAll, describe, expect } from "vitest";
import { connect } from "@nats-io/transport-node";
import { natsTest as it, type Stack } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import { MAX_SUBJECT_TOKEN, subjectToken, subjects } from "@mcpq/bus";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { rawSession } from "./support/raw-http.js";

describe("subject tokens stay short", () => {
  it("names of any length encode to a bounded, distinct token; short ones are unchanged", () => {
    expect(subjectToken("echo")).toBe("echo");
    expect(subjectToken("a.b")).toBe("a~2eb");
    const long = `mcpq://example/items/${"é".repeat(3000)}`;
    const t = subjectToken(long);
    expect(t.length).toBeLessThanOrEqual(MAX_SUBJECT_TOKEN);
    expect(t).toMatch(/^[A-Za-z0-9_~-]+$/);
    expect(subjectToken(`${long}x`)).not.toBe(t);
    expect(subjects.request("p", "resource", long).length).toBeLessThan(200);
  });
});

describe("hostile names and initialize floods against a real stack", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("a 5 KB resource URI is -32602 before anything is published; unbounded, it is served on a short subject and the edge's NATS connection survives", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 2, edgeEnv: { MCPQ_MAX_NAME_BYTES: "2048" } });
    const bounded = await rawSession(s.edges[0]!.url);
    const longUri = `mcpq://example/items/${"x".repeat(5_000)}`;
    const r = await bounded.request("resources/read", { uri: longUri });
    expect(r.status).toBe(200);
    expect(r.message?.error?.code).toBe(ErrorCode.InvalidParams);
    expect(r.message?.error?.message).toMatch(/longer than 2048 bytes/);
    // A line break in a URI (it would end a NATS header) is refused the same way, never a 500.
    const nl = await bounded.request("resources/read", { uri: "mcpq://example/items/a\nb" });
    expect(nl.status).toBe(200);
    expect(nl.message?.error?.code).toBe(ErrorCode.InvalidParams);
    // A trace context with a line break (it would end a NATS header) is ignored, as W3C asks
    // of an invalid one: the call is answered, not failed with -32603.
    const traced = await bounded.call(
      "echo",
      { text: "traced" },
      {
        traceparent:
          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nMcpq-Principal: root",
        tracestate: "vendor=x\nMcpq-Claims: {}",
      },
    );
    expect(traced.message?.error).toBeUndefined();
    expect(JSON.stringify(traced.message?.result)).toContain("traced");
    expect((await bounded.call("echo", { text: "still here" })).message?.result).toBeDefined();
    await bounded.close();
  });

  it("with no name bound, a long URI and a long client answer id travel on bounded subjects and other sessions keep working", async ({
    nats,
  }) => {
    const edge = await import("./support/stack.js").then((m) =>
      m.factories.startEdge(nats.url, { MCPQ_MAX_NAME_BYTES: "0" }),
    );
    try {
      const a = await rawSession(edge.url);
      const b = await rawSession(edge.url);
      const longUri = `mcpq://example/items/${"y".repeat(5_000)}`;
      const read = await a.request("resources/read", { uri: longUri });
      expect(read.message?.result?.["contents"]).toBeDefined();
      // A client "answer" to a server request with a 10 KB id: routed on a bounded subject.
      const res = await fetch(edge.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-session-id": a.id,
          "mcp-protocol-version": "2025-06-18",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: `mcpq-${"z".repeat(10_000)}`, result: {} }),
      });
      expect(res.status).toBe(202);
      expect(edge.runtime.bus.nc.isClosed()).toBe(false);
      expect((await b.call("echo", { text: "b" })).message?.result).toEqual({
        content: [{ type: "text", text: "b" }],
      });
      expect((await a.call("echo", { text: "a" })).message?.result).toEqual({
        content: [{ type: "text", text: "a" }],
      });
      await a.close();
      await b.close();
    } finally {
      await edge.close();
    }
  });

  it("initialize counts open sessions without creating a consumer on the server, and the cap still holds", async ({
    nats,
  }) => {
    const edge = await import("./support/stack.js").then((m) =>
      m.factories.startEdge(nats.url, { MCPQ_MAX_SESSIONS_PER_PRINCIPAL: "5" }),
    );
    const monitor = await connect({ servers: nats.url });
    let consumerCreates = 0;
    const sub = monitor.subscribe("$JS.API.CONSUMER.>", {
      callback: (_e, m) => {
        if (m.subject.includes(".CREATE.") || m.subject.includes(".DURABLE.CREATE."))
          consumerCreates++;
      },
    });
    await monitor.flush();
    try {
      const sessions = [];
      for (let i = 0; i < 5; i++) sessions.push(await rawSession(edge.url));
      // The sixth is over the cap: 429, still without a consumer.
      const sixth = await fetch(edge.url, {
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
            protocolVersion: "2025-06-18",
            capabilities: {},
            clientInfo: { name: "x", version: "1" },
          },
        }),
      });
      expect(sixth.status).toBe(429);
      await edge.runtime.bus.nc.flush();
      await monitor.flush();
      expect(consumerCreates).toBe(0);
      // Ending one frees its slot.
      await sessions.shift()!.close();
      sessions.push(await rawSession(edge.url));
      for (const x of sessions) await x.close();
    } finally {
      sub.unsubscribe();
      await monitor.close();
      await edge.close();
    }
  });
});
