import { describe, expect, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, stack } from "./support/stack.js";
import {
  RpcClient,
  grpcWire,
  progressOf,
  tcpWire,
  text,
  wsWire,
  type Wire,
} from "./support/socket-client.js";

type Dial = (edge: RunningEdge) => Promise<Wire> | Wire;
const transports: [string, Dial][] = [
  ["raw TCP (newline-delimited JSON-RPC)", (e) => tcpWire(e.tcpPort!)],
  ["gRPC (mcpq.v1.Mcp/Session)", (e) => grpcWire(e.grpcPort!)],
  ["WebSocket (raw ws client)", (e) => wsWire(e.wsUrl!)],
];

describe("socket transports with raw clients: TCP, gRPC, WebSocket", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("start on random ports when MCPQ_PORT is 0", async ({ nats }) => {
    s = await stack(nats, { edges: 2 });
    for (const e of s.edges) {
      expect(e.tcpPort).toBeGreaterThan(0);
      expect(e.grpcPort).toBeGreaterThan(0);
    }
  });

  for (const [name, dial] of transports) {
    describe(name, () => {
      it("initializes, answers four concurrent calls and delivers progress", async () => {
        const c = new RpcClient(await dial(s.edges[0]!));
        await c.initialize(false);
        const tools = await c.request("tools/list");
        expect((tools["tools"] as { name: string }[]).map((t) => t.name)).toEqual([
          "add",
          "countdown",
          "echo",
          "sleep",
        ]);
        const [a, b, cd, d] = await Promise.all([
          c.call("tools/call", { name: "echo", arguments: { text: "héllo ✓" } }),
          c.call("tools/call", { name: "add", arguments: { a: 20, b: 22 } }),
          c.call("tools/call", {
            name: "countdown",
            arguments: { steps: 3, delayMs: 20 },
            _meta: { progressToken: 9 },
          }),
          c.call("tools/call", { name: "sleep", arguments: { ms: 30 } }),
        ]);
        expect(text(a)).toBe("héllo ✓");
        expect(b.result?.["structuredContent"]).toEqual({ sum: 42 });
        expect(text(cd)).toBe("done after 3 steps");
        expect(text(d)).toBe("slept 30 ms");
        expect(progressOf(c, 9)).toEqual([1, 2, 3]);
        // Without `$/mcpq/resume` no event markers are sent.
        expect(c.lastEventIds.size).toBe(0);
        c.wire.close();
      });

      it("protocol errors: parse error, invalid request, unknown tool", async () => {
        const c = new RpcClient(await dial(s.edges[0]!));
        await c.initialize(false);
        const errors: unknown[] = [];
        c.onMessage((m) => m.id === null && errors.push(m.error));
        c.wire.send("{not json");
        c.wire.send(JSON.stringify([{ jsonrpc: "2.0", id: 1, method: "ping" }]));
        await eventually(() => errors.length === 2, { what: "two id-null errors" });
        expect(errors).toMatchObject([{ code: -32700 }, { code: -32600 }]);
        expect((await c.call("tools/call", { name: "nope", arguments: {} })).error?.code).toBe(
          -32602,
        );
        c.wire.close();
      });

      it("a cancelled call gets no response and later calls still work", async () => {
        const c = new RpcClient(await dial(s.edges[0]!));
        await c.initialize(false);
        void c.call("tools/call", { name: "sleep", arguments: { ms: 30_000 } }, "long");
        await eventually(() => s.edges[0]!.runtime.router.correlator.size > 0, {
          what: "call in flight",
        });
        c.notify("notifications/cancelled", { requestId: "long", reason: "test" });
        await eventually(() => s.edges[0]!.runtime.router.correlator.size === 0, {
          what: "call cancelled",
        });
        expect(
          text(await c.call("tools/call", { name: "echo", arguments: { text: "next" } })),
        ).toBe("next");
        expect(c.received.filter((m) => m.id === "long")).toHaveLength(0);
        c.wire.close();
      });

      it("a dropped connection resumes on another edge: remaining progress and the result, once", async () => {
        const c = new RpcClient(await dial(s.edges[0]!));
        await c.initialize(true);
        const call = c.call(
          "tools/call",
          {
            name: "countdown",
            arguments: { steps: 6, delayMs: 100 },
            _meta: { progressToken: "t" },
          },
          5,
        );
        await eventually(() => progressOf(c, "t").length >= 2, {
          what: "two progress notifications",
        });
        c.wire.close();
        const r = await c.resume(await dial(s.edges[1]!));
        expect(r.result).toMatchObject({ sessionId: c.sessionId });
        expect(text(await call)).toBe("done after 6 steps");
        expect(progressOf(c, "t")).toEqual([1, 2, 3, 4, 5, 6]);
        expect(c.received.filter((m) => m.id === 5)).toHaveLength(1);
        c.wire.close();
      });
    });
  }

  it("TCP with MCPQ_AUTH_TOKENS authenticates in-band; gRPC through metadata", async ({ nats }) => {
    const guarded = await factories.startEdge(nats.url, { MCPQ_AUTH_TOKENS: "sekrit=alice" });
    try {
      const anon = new RpcClient(await tcpWire(guarded.tcpPort!));
      expect(
        (
          await anon.call("initialize", {
            protocolVersion: "2025-11-25",
            capabilities: {},
            clientInfo: { name: "x", version: "1" },
          })
        ).error?.code,
      ).toBe(-32013);
      const wrong = new RpcClient(await tcpWire(guarded.tcpPort!));
      expect(
        (await wrong.call("$/mcpq/resume", { authorization: "Bearer nope" })).error?.code,
      ).toBe(-32013);
      await wrong.wire.closed;
      const ok = new RpcClient(await tcpWire(guarded.tcpPort!));
      expect(
        (await ok.call("$/mcpq/resume", { authorization: "Bearer sekrit" })).result,
      ).toHaveProperty("streamId");
      expect(
        (
          await ok.call("initialize", {
            protocolVersion: "2025-11-25",
            capabilities: {},
            clientInfo: { name: "x", version: "1" },
          })
        ).result,
      ).toHaveProperty("serverInfo");
      expect((await ok.call("ping")).result).toEqual({});

      const g = grpcWire(guarded.grpcPort!);
      expect(await g.closed).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      const g2 = new RpcClient(grpcWire(guarded.grpcPort!, { authorization: "Bearer sekrit" }));
      await g2.initialize(false);
      expect((await g2.call("ping")).result).toEqual({});
      for (const c of [anon, ok, g2]) c.wire.close();
    } finally {
      await guarded.close();
    }
  });
});
