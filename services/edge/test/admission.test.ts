import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, McpError, type JsonRpcRequest } from "@mcpq/protocol";
import {
  EdgeAdmission,
  type AdmissionLimits,
  type CircuitState,
  type RejectReason,
} from "../src/core/admission.js";
import { BufferBudget } from "../src/core/buffer-budget.js";
import type { SessionRecord } from "../src/core/session-store.js";

// Direct unit tests of the edge's admission logic (token buckets, circuit breaker, pool load,
// in-flight caps) through EdgeAdmission's own API. Only `Date` is faked, so every decision that
// depends on elapsed time is deterministic; timers (the bucket sweep) keep running for real.

const OFF: AdmissionLimits = {
  maxInFlightPerSession: 0,
  maxInFlight: 0,
  toolRatePerSec: 0,
  toolBurst: 1,
  circuitFailures: 0,
  circuitOpenMs: 1_000,
  poolQueueMin: 0,
  maxQueueMs: 0,
  maxEventLoopLagMs: 0,
};

const session = (id: string, principal = "anonymous"): SessionRecord => ({
  id,
  principal,
  protocolVersion: "2025-11-25",
  clientInfo: {},
  clientCapabilities: {},
  initialized: true,
  createdAt: 0,
  lastSeenAt: 0,
});
const call: JsonRpcRequest = {
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: { name: "echo" },
};
const read: JsonRpcRequest = {
  jsonrpc: "2.0",
  id: 2,
  method: "resources/read",
  params: { uri: "x://y" },
};
const echo = { kind: "tool" as const, name: "echo", pool: "example" };

/** The refusal an admit() call threw, or undefined when it was admitted. */
function refusal(fn: () => unknown): McpError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof McpError) return err;
    throw err;
  }
}
const reasonOf = (e: McpError | undefined) =>
  e?.data as { reason?: string; retryAfterMs?: number } | undefined;

describe("EdgeAdmission (unit)", () => {
  let admission: EdgeAdmission | undefined;
  const rejected: RejectReason[] = [];
  const circuits: [string, CircuitState][] = [];
  const metrics = {
    admitted: () => undefined,
    rejected: (r: RejectReason) => void rejected.push(r),
    expired: () => undefined,
    circuit: (pool: string, s: CircuitState) => void circuits.push([pool, s]),
  };
  const make = (limits: Partial<AdmissionLimits>, budget = new BufferBudget(0)) =>
    (admission = new EdgeAdmission({ ...OFF, ...limits }, budget, metrics));

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"], now: 1_000_000 });
    rejected.length = 0;
    circuits.length = 0;
  });
  afterEach(() => {
    admission?.close();
    vi.useRealTimers();
  });

  describe("token buckets (tools/call per principal)", () => {
    it("grants the burst at once, then refuses with the ms until the next token", () => {
      const a = make({ toolRatePerSec: 10, toolBurst: 3 });
      const s = session("s1", "alice");
      for (let i = 0; i < 3; i++) a.admit(s, call, echo, 30_000)();
      const e = refusal(() => a.admit(s, call, echo, 30_000));
      expect(e?.code).toBe(ErrorCode.RateLimited);
      // One token at 10/s takes 100 ms.
      expect(reasonOf(e)?.retryAfterMs).toBe(100);
      expect(rejected).toEqual(["rate_limited"]);
    });

    it("refills at the rate: 250 ms at 10/s gives two more calls, not three", () => {
      const a = make({ toolRatePerSec: 10, toolBurst: 3 });
      const s = session("s1", "alice");
      for (let i = 0; i < 3; i++) a.admit(s, call, echo, 30_000)();
      vi.setSystemTime(Date.now() + 250);
      a.admit(s, call, echo, 30_000)();
      a.admit(s, call, echo, 30_000)();
      const e = refusal(() => a.admit(s, call, echo, 30_000));
      expect(e?.code).toBe(ErrorCode.RateLimited);
      // 0.5 token left: 50 ms to the next.
      expect(reasonOf(e)?.retryAfterMs).toBe(50);
    });

    it("never fills beyond the burst however long idle", () => {
      const a = make({ toolRatePerSec: 100, toolBurst: 2 });
      const s = session("s1", "alice");
      vi.setSystemTime(Date.now() + 3_600_000);
      a.admit(s, call, echo, 30_000)();
      a.admit(s, call, echo, 30_000)();
      expect(refusal(() => a.admit(s, call, echo, 30_000))?.code).toBe(ErrorCode.RateLimited);
    });

    it("is per principal; anonymous sessions each get their own bucket", () => {
      const a = make({ toolRatePerSec: 1, toolBurst: 1 });
      a.admit(session("s1", "alice"), call, echo, 30_000)();
      // Another session of the same principal shares alice's bucket.
      expect(refusal(() => a.admit(session("s2", "alice"), call, echo, 30_000))?.code).toBe(
        ErrorCode.RateLimited,
      );
      // bob has his own.
      a.admit(session("s3", "bob"), call, echo, 30_000)();
      // Anonymous: keyed by session.
      a.admit(session("a1"), call, echo, 30_000)();
      a.admit(session("a2"), call, echo, 30_000)();
      expect(refusal(() => a.admit(session("a1"), call, echo, 30_000))?.code).toBe(
        ErrorCode.RateLimited,
      );
    });

    it("applies to tools/call only, and not at all with rate 0", () => {
      const a = make({ toolRatePerSec: 1, toolBurst: 1 });
      const s = session("s1", "alice");
      for (let i = 0; i < 5; i++)
        a.admit(s, read, { kind: "resource", name: "x://y", pool: "example" }, 30_000)();
      a.admit(s, call, echo, 30_000)();
      admission?.close();
      const off = make({ toolRatePerSec: 0, toolBurst: 1 });
      for (let i = 0; i < 50; i++) off.admit(s, call, echo, 30_000)();
    });
  });

  describe("in-flight caps", () => {
    it("refuses beyond the edge-wide cap (-32010) and admits again once one finishes", () => {
      const a = make({ maxInFlight: 2 });
      const d1 = a.admit(session("s1"), call, echo, 30_000);
      a.admit(session("s2"), call, echo, 30_000);
      expect(a.inFlight).toBe(2);
      const e = refusal(() => a.admit(session("s3"), call, echo, 30_000));
      expect(e?.code).toBe(ErrorCode.Overloaded);
      expect(rejected).toEqual(["edge_in_flight"]);
      d1();
      d1(); // idempotent: one finish frees one slot
      expect(a.inFlight).toBe(1);
      a.admit(session("s3"), call, echo, 30_000);
      expect(a.inFlight).toBe(2);
    });

    it("refuses beyond the per-session cap (-32011) without affecting other sessions", () => {
      const a = make({ maxInFlightPerSession: 1 });
      a.admit(session("s1"), call, echo, 30_000);
      expect(refusal(() => a.admit(session("s1"), call, echo, 30_000))?.code).toBe(
        ErrorCode.RateLimited,
      );
      a.admit(session("s2"), call, echo, 30_000);
      expect(rejected).toEqual(["session_in_flight"]);
    });

    it("holds a session to its fair share once the edge is 75 % full", () => {
      const a = make({ maxInFlight: 8 });
      // s1 takes 5 slots, s2 one: 6 of 8 in flight (75 %), two sessions -> a share of 4.
      for (let i = 0; i < 5; i++) a.admit(session("s1"), call, echo, 30_000);
      a.admit(session("s2"), call, echo, 30_000);
      expect(refusal(() => a.admit(session("s1"), call, echo, 30_000))?.data).toMatchObject({
        reason: expect.stringMatching(/fair share/),
      });
      // s2 (1 < 4) and a new session are still admitted.
      a.admit(session("s2"), call, echo, 30_000);
      a.admit(session("s3"), call, echo, 30_000);
      expect(rejected).toEqual(["fair_share"]);
    });

    it("refuses while the buffered-bytes budget is exceeded", () => {
      const budget = new BufferBudget(100);
      const a = make({}, budget);
      const acct = budget.open();
      acct.set(101);
      expect(refusal(() => a.admit(session("s1"), call, echo, 30_000))?.code).toBe(
        ErrorCode.Overloaded,
      );
      acct.set(100);
      a.admit(session("s1"), call, echo, 30_000);
      expect(rejected).toEqual(["buffered_bytes"]);
    });

    it("sheds a request whose deadline already passed (budget <= 0) as overload", () => {
      const a = make({});
      expect(refusal(() => a.admit(session("s1"), call, echo, 0))?.code).toBe(ErrorCode.Overloaded);
      expect(rejected).toEqual(["expired_unread"]);
      expect(a.inFlight).toBe(0);
    });
  });

  describe("circuit breaker (per pool)", () => {
    // Each failure from another caller: one caller's failures alone never open a circuit.
    let failures = 0;
    const fail = (a: EdgeAdmission, pool = "example") => {
      failures++;
      a.admit(
        session(`f${failures}`, `caller-${failures}`),
        call,
        { ...echo, pool },
        30_000,
      )("failed");
    };

    it("one caller's failures do not open the circuit", () => {
      const a = make({ circuitFailures: 3, circuitOpenMs: 2_000 });
      for (let i = 0; i < 10; i++) a.admit(session("s1", "alice"), call, echo, 30_000)("failed");
      expect(a.circuitState("example")).toBe("closed");
      // Two more callers failing make three different callers in a row.
      fail(a);
      fail(a);
      expect(a.circuitState("example")).toBe("open");
    });

    it("opens after N consecutive failures, refuses with -32012 until the open interval ends, then lets one probe through", () => {
      const a = make({ circuitFailures: 3, circuitOpenMs: 2_000 });
      fail(a);
      fail(a);
      expect(a.circuitState("example")).toBe("closed");
      fail(a);
      expect(a.circuitState("example")).toBe("open");
      const e = refusal(() => a.admit(session("s2"), call, echo, 30_000));
      expect(e?.code).toBe(ErrorCode.Unavailable);
      expect(reasonOf(e)?.retryAfterMs).toBe(2_000);
      // Another pool is unaffected.
      a.admit(session("s2"), call, { ...echo, pool: "other" }, 30_000)();
      vi.setSystemTime(Date.now() + 2_000);
      const probe = a.admit(session("s2"), call, echo, 30_000);
      expect(a.circuitState("example")).toBe("half_open");
      // One probe at a time.
      expect(refusal(() => a.admit(session("s3"), call, echo, 30_000))?.code).toBe(
        ErrorCode.Unavailable,
      );
      probe("ok");
      expect(a.circuitState("example")).toBe("closed");
      a.admit(session("s3"), call, echo, 30_000)();
      expect(circuits).toEqual([
        ["example", "open"],
        ["example", "half_open"],
        ["example", "closed"],
      ]);
    });

    it("a success resets the failure count", () => {
      const a = make({ circuitFailures: 2, circuitOpenMs: 1_000 });
      fail(a);
      a.admit(session("s1"), call, echo, 30_000)("ok");
      fail(a);
      expect(a.circuitState("example")).toBe("closed");
      fail(a);
      expect(a.circuitState("example")).toBe("open");
    });

    it("a failed probe reopens with the interval doubled, capped at 30 s", () => {
      const a = make({ circuitFailures: 1, circuitOpenMs: 10_000 });
      fail(a);
      const intervals: number[] = [];
      for (let i = 0; i < 4; i++) {
        const e = refusal(() => a.admit(session("s2"), call, echo, 30_000));
        intervals.push(reasonOf(e)!.retryAfterMs!);
        vi.setSystemTime(Date.now() + intervals.at(-1)!);
        a.admit(session("s2"), call, echo, 30_000)("failed");
      }
      expect(intervals).toEqual([10_000, 20_000, 30_000, 30_000]);
    });

    it("cancelled and refused outcomes say nothing about the pool but free the probe slot", () => {
      const a = make({ circuitFailures: 1, circuitOpenMs: 1_000 });
      fail(a);
      vi.setSystemTime(Date.now() + 1_000);
      a.admit(session("s2"), call, echo, 30_000)("cancelled");
      expect(a.circuitState("example")).toBe("half_open");
      // The next request is the new probe.
      a.admit(session("s3"), call, echo, 30_000)("ok");
      expect(a.circuitState("example")).toBe("closed");
    });

    it("is off with circuitFailures 0", () => {
      const a = make({ circuitFailures: 0 });
      for (let i = 0; i < 20; i++) fail(a);
      expect(a.circuitState("example")).toBe("closed");
      a.admit(session("s1"), call, echo, 30_000)();
    });
  });

  describe("pool load (queue-time admission)", () => {
    it("refuses once the predicted wait (in flight / measured rate) exceeds the deadline", () => {
      const a = make({ poolQueueMin: 4 });
      // Measure a completion rate: 10 completions over 250 ms = 40/s.
      const start = Date.now();
      for (let i = 0; i < 10; i++) {
        const done = a.admit(session(`m${i}`), call, echo, 30_000);
        vi.setSystemTime(start + (i + 1) * 25);
        done("ok");
      }
      // 4 in flight: the next waits (4 + 1) / 40 s = 125 ms.
      for (let i = 0; i < 4; i++) a.admit(session(`w${i}`), call, echo, 30_000);
      const e = refusal(() => a.admit(session("late"), call, echo, 100));
      expect(e?.code).toBe(ErrorCode.Overloaded);
      expect(e?.message).toMatch(/predicted wait 125 ms exceeds the 100 ms deadline/);
      expect(rejected).toEqual(["pool_saturated"]);
      // A client with more patience is admitted.
      a.admit(session("patient"), call, echo, 200);
    });

    it("does not predict below poolQueueMin in flight, nor from a stale measurement", () => {
      const a = make({ poolQueueMin: 2 });
      const start = Date.now();
      for (let i = 0; i < 10; i++) {
        const done = a.admit(session(`m${i}`), call, echo, 30_000);
        vi.setSystemTime(start + (i + 1) * 25);
        done("ok");
      }
      a.admit(session("w0"), call, echo, 30_000);
      // One in flight (< 2): admitted whatever the deadline.
      a.admit(session("w1"), call, echo, 1);
      // The rate is older than 2 s: a burst after idle is admitted to measure again.
      vi.setSystemTime(Date.now() + 2_001);
      a.admit(session("w2"), call, echo, 1);
      expect(rejected).toEqual([]);
    });
  });
});
