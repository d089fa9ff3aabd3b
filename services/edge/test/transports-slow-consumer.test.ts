import { describe, expect, afterAll } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { sdkClient, stack } from "./support/stack.js";
import { RpcClient, grpcWire, tcpWire, text, wsWire, type Wire } from "./support/socket-client.js";

const BUFFER = 256 * 1024;
/** Enough answers to fill the kernel's socket buffers on both ends and then the edge's bound. */
const CALLS = 160;
const PAYLOAD = "x".repeat(64 * 1024);

async function slowConsumers(edge: RunningEdge, transport: string): Promise<number> {
  const m = await edge.runtime.metrics.slowConsumers.get();
  return m.values.find((v) => v.labels["transport"] === transport)?.value ?? 0;
}

/** A connection whose reading the test controls; `sent()` after the client's last request. */
type Slow = { wire: Wire; pause(): void; resume(): void; sent?(): void };

describe("slow consumers are cut off; everyone else keeps being served; the session stays resumable", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  const cases: [
    string,
    string,
    (e: RunningEdge) => Promise<Slow>,
    (closed: { code?: number | string; reason?: string }) => void,
  ][] = [
    [
      "WebSocket: close 1008 'slow consumer'",
      "ws",
      async (e) => {
        const w = await wsWire(e.wsUrl!);
        return { wire: w, pause: () => w.ws.pause(), resume: () => w.ws.resume() };
      },
      (closed) => expect(closed).toEqual({ code: 1008, reason: "slow consumer" }),
    ],
    [
      "TCP: a JSON-RPC error line, then the socket ends",
      "tcp",
      async (e) => {
        const w = await tcpWire(e.tcpPort!);
        return { wire: w, pause: () => w.socket.pause(), resume: () => w.socket.resume() };
      },
      (closed) =>
        expect(JSON.parse(closed.reason!)).toMatchObject({
          id: null,
          error: { code: -32010, data: { reason: "slow_consumer" } },
        }),
    ],
    [
      "gRPC: status RESOURCE_EXHAUSTED 'slow consumer'",
      "grpc",
      async (e) => {
        const w = grpcWire(e.grpcPort!);
        // A gRPC client half-closes once it has nothing more to send: the edge then ends the call.
        return {
          wire: w,
          pause: () => w.call.pause(),
          resume: () => w.call.resume(),
          sent: () => w.call.end(),
        };
      },
      (closed) =>
        expect(closed).toMatchObject({
          code: grpc.status.RESOURCE_EXHAUSTED,
          reason: "slow consumer",
        }),
    ],
  ];

  for (const [name, transport, dial, expectClose] of cases) {
    // Heavy by design (megabytes through NATS and the sockets): a generous bound for loaded CI.
    it(name, { timeout: 120_000 }, async ({ nats }) => {
      // No per-session in-flight cap and no queue-time admission (its prediction depends on how
      // fast a loaded machine runs the pool): this test is about the send buffer, not admission.
      s ??= await stack(nats, {
        edgeEnv: {
          MCPQ_MAX_SEND_BUFFER_BYTES: String(BUFFER),
          MCPQ_MAX_IN_FLIGHT_PER_SESSION: "0",
          MCPQ_POOL_QUEUE_MIN: "0",
        },
      });
      const edge = s.edges[0]!;
      const before = await slowConsumers(edge, transport);
      const slowConn = await dial(edge);
      const slow = new RpcClient(slowConn.wire);
      await slow.initialize();
      const healthy = await sdkClient(edge.url);

      // The slow client stops reading, then asks for far more than it will take.
      slowConn.pause();
      const answers = Array.from({ length: CALLS }, (_, i) =>
        slow.call("tools/call", { name: "echo", arguments: { text: `${i}:${PAYLOAD}` } }, `e${i}`),
      );
      slowConn.sent?.();
      await eventually(async () => (await slowConsumers(edge, transport)) > before, {
        what: "slow consumer cut off",
        timeoutMs: 30_000,
      });

      // Meanwhile other sessions on the same edge are served, correctly.
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          healthy.client.callTool({ name: "add", arguments: { a: i, b: 1000 } }),
        ),
      );
      expect(results.map((r) => (r.structuredContent as { sum: number }).sum)).toEqual(
        Array.from({ length: 10 }, (_, i) => i + 1000),
      );

      // Reading again, the client drains what was sent before the cut, then learns why.
      slowConn.resume();
      expectClose(await slowConn.wire.closed);
      const isEcho = (m: { id?: unknown }) => typeof m.id === "string" && m.id.startsWith("e");
      const early = slow.received.filter(isEcho).length;
      expect(early).toBeLessThan(CALLS);

      // Every request it sent was still dispatched; resuming delivers the rest exactly once.
      const again = await dial(edge);
      const r = await slow.resume(again.wire);
      expect(r.result).toMatchObject({ sessionId: slow.sessionId });
      const all = await Promise.all(answers);
      expect(all.filter((m, i) => !text(m)?.startsWith(`${i}:`))).toEqual([]);
      const ids = slow.received.filter(isEcho).map((m) => m.id);
      expect(ids).toHaveLength(CALLS);
      expect(new Set(ids).size).toBe(CALLS);
      again.wire.close();
      await healthy.client.close();
    });
  }
});
