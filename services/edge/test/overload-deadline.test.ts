import { describe, expect } from "vitest";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import { stack } from "./support/stack.js";
import { metricValue, rawSession } from "./support/raw-http.js";

describe("request deadlines", () => {
  it("a call whose deadline passes while queued gets -32001 from the edge and is never run by a worker", async ({
    nats,
  }) => {
    const s = await stack(nats, { workerEnv: { MCPQ_WORKER_CONCURRENCY: "1" } });
    try {
      const edge = s.edges[0]!.runtime;
      const worker = s.workers[0]!;
      const a = await rawSession(s.edges[0]!.url);
      // Occupies the worker's only slot; the echo below queues behind it.
      const busy = await a.start("sleep", { ms: 3_000 });
      expect(busy.status).toBe(200);
      const expired = await a.call("echo", { text: "too late" }, { "io.mcpq/timeoutMs": 300 });
      expect(expired.status).toBe(200);
      expect(expired.message?.error).toMatchObject({
        code: ErrorCode.RequestTimeout,
        data: { timeoutMs: 300 },
      });
      expect((await busy.done).message?.result).toEqual({
        content: [{ type: "text", text: "slept 3000 ms" }],
      });
      // The worker pulled the echo only after its deadline: dropped (term), never handled.
      await eventually(
        async () =>
          (await metricValue(worker.registry, "mcpq_worker_deadline_expired_total")) === 1,
        { what: "worker drop" },
      );
      expect(
        await metricValue(worker.registry, "mcpq_worker_requests_total", { method: "tools/call" }),
      ).toBe(1);
      expect(await metricValue(edge.registry, "mcpq_edge_deadline_expired_total")).toBe(1);
      // The pool keeps working, and one expiry did not open its circuit.
      expect((await a.call("echo", { text: "on time" })).message?.result).toEqual({
        content: [{ type: "text", text: "on time" }],
      });
      expect(edge.admission.circuitState("example")).toBe("closed");
    } finally {
      await s.close();
    }
  });

  it("an absolute deadline (_meta io.mcpq/deadline) bounds the budget; one already past is shed as overload, unrun", async ({
    nats,
  }) => {
    const s = await stack(nats, { workerEnv: { MCPQ_WORKER_CONCURRENCY: "1" } });
    try {
      const edge = s.edges[0]!.runtime;
      const worker = s.workers[0]!;
      const a = await rawSession(s.edges[0]!.url);
      // Past already (the client's clock is the edge's here): refused at once, never queued.
      const stale = await a.call(
        "echo",
        { text: "read too late" },
        { "io.mcpq/timeoutMs": 30_000, "io.mcpq/deadline": Date.now() - 1 },
      );
      expect(stale.status).toBe(503);
      expect(stale.retryAfter).toBe("1");
      expect(stale.message?.error).toMatchObject({
        code: ErrorCode.Overloaded,
        message: "overloaded: the request's deadline passed before the edge could read it",
        data: {
          reason: "the request's deadline passed before the edge could read it",
          retryAfterMs: 1000,
        },
      });
      expect(
        await metricValue(edge.registry, "mcpq_edge_rejected_total", { reason: "expired_unread" }),
      ).toBe(1);
      // Not a usable epoch-ms deadline (text, zero, negative): ignored, the call runs as usual.
      for (const junk of ["soon", 0, -5, null]) {
        const r = await a.call(
          "echo",
          { text: `junk ${String(junk)}` },
          { "io.mcpq/deadline": junk },
        );
        expect(r.message?.result).toEqual({
          content: [{ type: "text", text: `junk ${String(junk)}` }],
        });
      }
      // Ahead, and earlier than the relative timeout: the earlier one is the deadline.
      const busy = await a.start("sleep", { ms: 2_000 });
      expect(busy.status).toBe(200);
      const bounded = await a.call(
        "echo",
        { text: "bounded" },
        { "io.mcpq/timeoutMs": 30_000, "io.mcpq/deadline": Date.now() + 300 },
      );
      expect(bounded.message?.error?.code).toBe(ErrorCode.RequestTimeout);
      const budget = (bounded.message?.error?.data as { timeoutMs: number }).timeoutMs;
      expect(budget).toBeGreaterThan(0);
      expect(budget).toBeLessThanOrEqual(300);
      await busy.done;
      // Neither timed-out echo ran (the worker dropped the one it pulled late).
      await eventually(
        async () =>
          (await metricValue(worker.registry, "mcpq_worker_deadline_expired_total")) === 1,
        { what: "worker drop" },
      );
      // Only the sleep and the four junk-deadline echoes were handled.
      expect(
        await metricValue(worker.registry, "mcpq_worker_requests_total", { method: "tools/call" }),
      ).toBe(5);
    } finally {
      await s.close();
    }
  });
});
