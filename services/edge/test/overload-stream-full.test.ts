import { describe, expect } from "vitest";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import { stack } from "./support/stack.js";
import { metricValue, rawSession, type RawReply } from "./support/raw-http.js";
import { RpcClient, wsWire, type Message } from "./support/socket-client.js";

// Own file: the tiny MCPQ_REQ bound is provisioned on this file's nats-server only.
const LIMITS = { MCPQ_REQ_STREAM_MAX_MSGS: "4" };

/** A stack whose MCPQ_REQ holds two queued requests per target, with one worker slot. */
function perTargetStack(nats: Parameters<typeof stack>[0]) {
  const env = { MCPQ_REQ_STREAM_MAX_MSGS: "1000", MCPQ_REQ_MAX_PER_TARGET: "2" };
  return stack(nats, { edgeEnv: env, workerEnv: { ...env, MCPQ_WORKER_CONCURRENCY: "1" } });
}

describe("a full MCPQ_REQ stream", () => {
  it("refuses publishes as explicit overload rejections; the accepted backlog is answered; then calls succeed again", async ({
    nats,
  }) => {
    const s = await stack(nats, {
      edgeEnv: { ...LIMITS, MCPQ_BUS_STATS_MS: "100" },
      workerEnv: { ...LIMITS, MCPQ_WORKER_CONCURRENCY: "1" },
    });
    try {
      const rt = s.edges[0]!.runtime;
      const a = await rawSession(s.edges[0]!.url);
      // The only worker slot is busy; everything after it stays in the stream (unacked) until it ends.
      const blocker = await a.start("sleep", { ms: 120_000 });
      expect(blocker.status).toBe(200);
      const accepted: { text: string; done: Promise<RawReply> }[] = [];
      let refused: RawReply | undefined;
      for (let i = 0; i < 20 && !refused; i++) {
        const text = `queued-${i}`;
        const h = await a.start("echo", { text });
        if (h.status === 200) accepted.push({ text, done: h.done });
        else refused = await h.done;
      }
      expect(refused, "a publish was refused by the full stream").toBeDefined();
      expect(accepted.length).toBeGreaterThanOrEqual(1);
      expect(accepted.length).toBeLessThanOrEqual(3);
      expect(refused!.status).toBe(503);
      expect(refused!.retryAfter).toBe("1");
      expect(refused!.message?.error).toMatchObject({
        code: ErrorCode.Overloaded,
        message: "overloaded: request queue is full",
        data: { reason: "request queue is full", retryAfterMs: 1000 },
      });
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "stream_full" }),
      ).toBe(1);
      // The poller sees the full stream and the pool's unacked work.
      await eventually(
        async () => (await metricValue(rt.registry, "mcpq_edge_request_stream_messages")) === 4,
        { what: "stream gauge" },
      );
      // Stream and consumer stats come from separate broker calls: wait for both.
      await eventually(
        async () =>
          (await metricValue(rt.registry, "mcpq_edge_pool_ack_pending", { pool: "example" })) >= 1,
        { what: "ack-pending gauge" },
      );

      // Drain: cancel the blocker; every accepted request is answered correctly (nothing dropped).
      await a.notify("notifications/cancelled", { requestId: blocker.id });
      await blocker.done;
      for (const q of accepted) {
        expect((await q.done).message?.result).toEqual({
          content: [{ type: "text", text: q.text }],
        });
      }
      expect((await a.call("echo", { text: "after" })).message?.result).toEqual({
        content: [{ type: "text", text: "after" }],
      });
      await eventually(
        async () => (await metricValue(rt.registry, "mcpq_edge_request_stream_messages")) === 0,
        { what: "stream drained" },
      );
    } finally {
      await s.close();
    }
  });

  it("per-target bound: a hot tool's queue fills (503, -32010) while other tools are still queued", async ({
    nats,
  }) => {
    // Re-provisions the same stream with a per-subject bound (also exercises the config update).
    const s = await perTargetStack(nats);
    try {
      const rt = s.edges[0]!.runtime;
      const si = await rt.bus.jsm.streams.info("MCPQ_REQ");
      expect(si.config).toMatchObject({
        max_msgs: 1000,
        max_msgs_per_subject: 2,
        discard_new_per_subject: true,
      });
      const a = await rawSession(s.edges[0]!.url);
      const blocker = await a.start("sleep", { ms: 120_000 });
      expect(blocker.status).toBe(200);
      const e1 = await a.start("echo", { text: "e1" });
      const e2 = await a.start("echo", { text: "e2" });
      expect([e1.status, e2.status]).toEqual([200, 200]);
      const hot = await a.call("echo", { text: "e3" });
      expect(hot.status).toBe(503);
      expect(hot.retryAfter).toBe("1");
      expect(hot.message?.error).toMatchObject({
        code: ErrorCode.Overloaded,
        message: "overloaded: request queue for this target is full",
        data: { reason: "request queue for this target is full", retryAfterMs: 1000 },
      });
      // Another target of the same pool is not starved by echo's backlog.
      const add = await a.start("add", { a: 1, b: 2 });
      expect(add.status).toBe(200);
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "target_queue_full" }),
      ).toBe(1);
      await a.notify("notifications/cancelled", { requestId: blocker.id });
      await blocker.done;
      expect((await e1.done).message?.result).toEqual({ content: [{ type: "text", text: "e1" }] });
      expect((await e2.done).message?.result).toEqual({ content: [{ type: "text", text: "e2" }] });
      expect((await add.done).message?.result).toMatchObject({ structuredContent: { sum: 3 } });
      expect((await a.call("echo", { text: "e4" })).message?.result).toEqual({
        content: [{ type: "text", text: "e4" }],
      });
    } finally {
      await s.close();
    }
  });

  it("over a WebSocket, a refused publish is a JSON-RPC -32010 with retryAfterMs and the connection reads on", async ({
    nats,
  }) => {
    const s = await perTargetStack(nats);
    try {
      const rt = s.edges[0]!.runtime;
      const c = new RpcClient(await wsWire(s.edges[0]!.wsUrl!));
      await c.initialize();
      const blocker = c.call(
        "tools/call",
        { name: "sleep", arguments: { ms: 120_000 } },
        "blocker",
      );
      // The socket's messages are handled in order without waiting for each PubAck, so these
      // are all sent at once; echo's queue holds two, the rest are refused.
      const echoes: Promise<Message>[] = [];
      for (let i = 0; i < 5; i++)
        echoes.push(c.call("tools/call", { name: "echo", arguments: { text: `w${i}` } }));
      const settled = await Promise.race([
        Promise.all(echoes.slice(2)),
        blocker.then(() => "blocker answered first"),
      ]);
      expect(settled).not.toBe("blocker answered first");
      for (const m of settled as Message[]) {
        expect(m.error).toMatchObject({
          code: ErrorCode.Overloaded,
          message: "overloaded: request queue for this target is full",
          data: { reason: "request queue for this target is full", retryAfterMs: 1000 },
        });
      }
      // The connection still serves other work while echo's queue is full.
      expect((await c.call("tools/list")).result?.["tools"]).toBeDefined();
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "target_queue_full" }),
      ).toBe(3);
      // Drain: the two queued echoes are answered correctly once the blocker is cancelled.
      c.notify("notifications/cancelled", { requestId: "blocker" });
      const queued = await Promise.all(echoes.slice(0, 2));
      expect(queued.map((m) => m.result)).toEqual([
        { content: [{ type: "text", text: "w0" }] },
        { content: [{ type: "text", text: "w1" }] },
      ]);
      c.wire.close();
    } finally {
      await s.close();
    }
  });
});
