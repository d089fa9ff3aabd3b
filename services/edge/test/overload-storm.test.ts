import { describe, expect } from "vitest";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import { stack } from "./support/stack.js";
import { metricValue, rawSession, type RawReply } from "./support/raw-http.js";

const RETRYABLE = new Set<number>([
  ErrorCode.Overloaded,
  ErrorCode.RateLimited,
  ErrorCode.Unavailable,
]);

describe("storm with small limits", () => {
  it("hundreds of concurrent calls over several sessions: each ends in its correct result or an explicit rejection; buffers return to zero", async ({
    nats,
  }) => {
    const s = await stack(nats, {
      edges: 2,
      edgeEnv: {
        MCPQ_MAX_IN_FLIGHT_PER_SESSION: "8",
        MCPQ_MAX_PENDING_REQUESTS: "12",
        MCPQ_TOOL_RATE_PER_SEC: "20",
        MCPQ_TOOL_RATE_BURST: "40",
      },
      workerEnv: { MCPQ_WORKER_CONCURRENCY: "8" },
    });
    try {
      const SESSIONS = 8;
      const PER_SESSION = 60;
      const sessions = await Promise.all(
        Array.from({ length: SESSIONS }, (_, i) => rawSession(s.edges[i % 2]!.url)),
      );
      const calls = sessions.flatMap((sess, si) =>
        Array.from({ length: PER_SESSION }, (_, ci) => {
          const text = `s${si}-c${ci}-${"p".repeat(ci * 50)}`;
          // A third of the calls hold a worker slot for a while, so in-flight caps are reached too.
          const call =
            ci % 3 === 0
              ? sess.call("add", { a: si, b: ci })
              : ci % 3 === 1
                ? sess.call("sleep", { ms: 500 })
                : sess.call("echo", { text });
          return call.then((r) => ({ r, si, ci, text }));
        }),
      );
      const results = await Promise.all(calls);
      expect(results).toHaveLength(SESSIONS * PER_SESSION);
      let ok = 0;
      const rejected: Record<number, number> = {};
      const bad: { si: number; ci: number; r: RawReply }[] = [];
      for (const { r, si, ci, text } of results) {
        const err = r.message?.error;
        if (r.status === 200 && r.message?.result) {
          const expected =
            ci % 3 === 0
              ? {
                  content: [{ type: "text", text: String(si + ci) }],
                  structuredContent: { sum: si + ci },
                }
              : { content: [{ type: "text", text: ci % 3 === 1 ? "slept 500 ms" : text }] };
          expect(r.message.result).toEqual(expected);
          ok++;
        } else if (err && RETRYABLE.has(err.code) && (r.status === 429 || r.status === 503)) {
          expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
          expect(err.message).toMatch(/^(rate limited|overloaded|unavailable): /);
          expect(err.data?.retryAfterMs).toBeGreaterThan(0);
          expect(r.status).toBe(err.code === ErrorCode.RateLimited ? 429 : 503);
          rejected[err.code] = (rejected[err.code] ?? 0) + 1;
        } else {
          bad.push({ si, ci, r });
        }
      }
      expect(bad, "every call ends in a correct result or an explicit rejection").toEqual([]);
      expect(ok).toBeGreaterThan(0);
      // Both the per-session caps / rate limit (429) and the edge-wide cap (503) were exercised.
      expect(rejected[ErrorCode.RateLimited]).toBeGreaterThan(0);
      expect(rejected[ErrorCode.Overloaded]).toBeGreaterThan(0);
      // Nothing held afterwards: no buffered bytes, no admitted work, no waiting correlations.
      for (const e of s.edges) {
        const rt = e.runtime;
        await eventually(
          () =>
            rt.buffers.bytes === 0 &&
            rt.admission.inFlight === 0 &&
            rt.router.correlator.size === 0,
          { what: "edge idle" },
        );
        expect(await metricValue(rt.registry, "mcpq_edge_buffered_bytes")).toBe(0);
      }
      // Every decision was counted: admitted + rejected = offered (no publish was refused here).
      let admitted = 0;
      let refusedCount = 0;
      for (const e of s.edges) {
        admitted += await metricValue(e.runtime.registry, "mcpq_edge_admitted_total");
        refusedCount += await metricValue(e.runtime.registry, "mcpq_edge_rejected_total");
      }
      expect(admitted + refusedCount).toBe(SESSIONS * PER_SESSION);
      expect(admitted).toBe(ok);
      const byReason = async (reason: string) => {
        let n = 0;
        for (const e of s.edges)
          n += await metricValue(e.runtime.registry, "mcpq_edge_rejected_total", { reason });
        return n;
      };
      expect(await byReason("session_in_flight")).toBeGreaterThan(0);
      expect((await byReason("edge_in_flight")) + (await byReason("fair_share"))).toBeGreaterThan(
        0,
      );
      // Recovery: once the storm is over every session is served again.
      for (const sess of sessions) {
        await eventually(async () => (await sess.call("echo", { text: "after" })).message?.result, {
          what: "served after the storm",
          intervalMs: 100,
        });
      }
    } finally {
      await s.close();
    }
  });
});
