import { describe, expect } from "vitest";
import { eventually, natsTest as it } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import { stack } from "./support/stack.js";
import { metricValue, rawSession } from "./support/raw-http.js";
import { featuresCatalog, observed, startCatalogWorker } from "./support/features-worker.js";

describe("queue-time admission", () => {
  it("work queued longer than MCPQ_MAX_QUEUE_MS is refused unrun (-32010, retryable), not left to time out", async ({
    nats,
  }) => {
    const MAX_QUEUE_MS = 300;
    const s = await stack(nats, {
      workers: [],
      edgeEnv: {
        MCPQ_MAX_QUEUE_MS: String(MAX_QUEUE_MS),
        MCPQ_POOL_QUEUE_MIN: "0",
        MCPQ_TOOL_RATE_PER_SEC: "0",
      },
    });
    // One handler at a time: while the blocker runs, everything else waits in the queue.
    const w = await startCatalogWorker(nats.url, [featuresCatalog], "queue-bound", {
      concurrency: 1,
    });
    try {
      const edge = s.edges[0]!;
      await eventually(() => edge.runtime.catalog.toolPool("wait_for_cancel"), {
        what: "tool registered",
      });
      const a = await rawSession(edge.url);
      const blocker = await a.start("wait_for_cancel", { marker: "qb-blocker" });
      await eventually(() => observed.started.has("qb-blocker"), { what: "blocker running" });
      // Admitted (the edge answered the POST) behind the blocker; the client would wait 30 s.
      const queued = await Promise.all(
        ["qb-1", "qb-2", "qb-3"].map((marker) => a.start("wait_for_cancel", { marker })),
      );
      for (const q of queued) expect(q.status).toBe(200);
      // Refused once their start-by time passes, while the blocker still runs: by the worker
      // for what it pulled (it waits for a slot or the start-by, whichever comes first), by the
      // edge for what no worker was delivered.
      for (const q of queued) {
        const r = await q.done;
        expect(r.message?.error?.code).toBe(ErrorCode.Overloaded);
        expect(r.message?.error?.message).toMatch(
          /^overloaded: (request waited \d+ ms in the queue|no worker could start the request within the queue-time bound)/,
        );
        expect(r.message?.error?.data?.retryAfterMs).toBeGreaterThanOrEqual(1);
      }
      // The blocker was still running when they were refused: nothing freed the slot.
      expect(observed.aborted.has("qb-blocker")).toBe(false);
      await a.notify("notifications/cancelled", { requestId: blocker.id, reason: "test" });
      // Never run: the worker refused them before their handler started.
      for (const m of ["qb-1", "qb-2", "qb-3"]) expect(observed.started.has(m)).toBe(false);
      expect(w.outcomes.filter((o) => o.method === "tools/call" && o.outcome === "ok")).toEqual([]);
      // The pool serves again: a call that does not queue behind anything runs.
      const next = await a.start("wait_for_cancel", { marker: "qb-after" });
      await eventually(() => observed.started.has("qb-after"), { what: "next call running" });
      await a.notify("notifications/cancelled", { requestId: next.id, reason: "test" });
      await a.close();
    } finally {
      await w.close();
      await s.close();
    }
  });

  it("work no worker pulls (the pool consumer's max_ack_pending is used up) is answered -32010 by the edge at its start-by, cancelled and never run", async ({
    nats,
  }) => {
    const MAX_QUEUE_MS = 300;
    const s = await stack(nats, {
      workers: [],
      edgeEnv: {
        MCPQ_MAX_QUEUE_MS: String(MAX_QUEUE_MS),
        MCPQ_POOL_QUEUE_MIN: "0",
        MCPQ_TOOL_RATE_PER_SEC: "0",
        MCPQ_MAX_ACK_PENDING: "1",
      },
    });
    // The broker delivers one unacked request to the pool at a time: while the blocker runs,
    // nothing else reaches any worker (a wedged or exhausted pool, as far as the queue can tell).
    const w = await startCatalogWorker(nats.url, [featuresCatalog], "undelivered", {
      concurrency: 4,
      maxAckPending: 1,
    });
    try {
      const edge = s.edges[0]!;
      await eventually(() => edge.runtime.catalog.toolPool("wait_for_cancel"), {
        what: "tool registered",
      });
      const a = await rawSession(edge.url);
      const blocker = await a.start("wait_for_cancel", { marker: "ud-blocker" });
      await eventually(() => observed.started.has("ud-blocker"), { what: "blocker running" });
      const queued = await Promise.all(
        ["ud-1", "ud-2"].map((marker) =>
          a.start("wait_for_cancel", { marker }, { "io.mcpq/timeoutMs": 60_000 }),
        ),
      );
      for (const q of queued) {
        const r = await q.done;
        expect(r.message?.error?.code).toBe(ErrorCode.Overloaded);
        expect(r.message?.error?.message).toBe(
          "overloaded: no worker could start the request within the queue-time bound",
        );
        expect(r.message?.error?.data?.retryAfterMs).toBe(1_000);
      }
      expect(
        await metricValue(edge.runtime.registry, "mcpq_edge_fault_answers_total", {
          reason: "not_started",
        }),
      ).toBe(2);
      // The blocker ends; the refused requests reach the worker now and are dropped unrun.
      await a.notify("notifications/cancelled", { requestId: blocker.id, reason: "test" });
      const next = await a.start("wait_for_cancel", { marker: "ud-after" });
      await eventually(() => observed.started.has("ud-after"), { what: "next call running" });
      for (const m of ["ud-1", "ud-2"]) expect(observed.started.has(m)).toBe(false);
      await a.notify("notifications/cancelled", { requestId: next.id, reason: "test" });
      await a.close();
    } finally {
      await w.close();
      await s.close();
    }
  });

  it("refuses at once (503, -32010, Retry-After) what the saturated pool could not answer before its deadline", async ({
    nats,
  }) => {
    // One worker running one handler at a time: the pool's capacity is ~1 / handler time.
    const s = await stack(nats, {
      edgeEnv: { MCPQ_POOL_QUEUE_MIN: "2", MCPQ_TOOL_RATE_PER_SEC: "0" },
      workerEnv: { MCPQ_WORKER_CONCURRENCY: "1" },
    });
    try {
      const a = await rawSession(s.edges[0]!.url);
      // Warm-up calls let the edge measure the pool's completion rate (~3/s).
      for (let i = 0; i < 3; i++) expect((await a.call("sleep", { ms: 300 })).status).toBe(200);
      // 12 calls at once, each willing to wait 1 s: only about three can finish in time.
      const replies = await Promise.all(
        Array.from({ length: 12 }, () =>
          a.call("sleep", { ms: 300 }, { "io.mcpq/timeoutMs": 1000 }),
        ),
      );
      const ok = replies.filter((r) => r.status === 200 && r.message?.result);
      const refused = replies.filter((r) => r.status === 503);
      const timedOut = replies.filter((r) => r.message?.error?.code === ErrorCode.RequestTimeout);
      // Every call ends in a result or an explicit error; most of the excess is refused up front.
      expect(ok.length + refused.length + timedOut.length).toBe(12);
      expect(refused.length).toBeGreaterThanOrEqual(5);
      for (const r of refused) {
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(r.message?.error?.code).toBe(ErrorCode.Overloaded);
        expect(r.message?.error?.message).toMatch(/^overloaded: worker pool .* is saturated/);
      }
      expect(
        await metricValue(s.edges[0]!.runtime.registry, "mcpq_edge_rejected_total", {
          reason: "pool_saturated",
        }),
      ).toBe(refused.length);
      await a.close();
    } finally {
      await s.close();
    }
  });

  it("timeouts while the pool keeps answering are overload, not failure: the circuit stays closed", async ({
    nats,
  }) => {
    const s = await stack(nats, {
      edgeEnv: {
        MCPQ_POOL_QUEUE_MIN: "0",
        MCPQ_TOOL_RATE_PER_SEC: "0",
        MCPQ_CIRCUIT_FAILURES: "2",
      },
      workerEnv: { MCPQ_WORKER_CONCURRENCY: "1" },
    });
    try {
      const a = await rawSession(s.edges[0]!.url);
      // One handler at a time, 200 ms each, 500 ms deadlines: the first two finish, the rest expire.
      const replies = await Promise.all(
        Array.from({ length: 6 }, () => a.call("sleep", { ms: 200 }, { "io.mcpq/timeoutMs": 500 })),
      );
      const expired = replies.filter((r) => r.message?.error?.code === ErrorCode.RequestTimeout);
      expect(expired.length).toBeGreaterThanOrEqual(2);
      expect(replies.filter((r) => r.message?.result).length).toBeGreaterThanOrEqual(1);
      expect(s.edges[0]!.runtime.admission.circuitState("example")).toBe("closed");
      const after = await a.call("echo", { text: "still served" });
      expect(after.status).toBe(200);
      expect(after.message?.result).toEqual({ content: [{ type: "text", text: "still served" }] });
      await a.close();
    } finally {
      await s.close();
    }
  });
});
