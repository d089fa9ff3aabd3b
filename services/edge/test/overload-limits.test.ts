import { describe, expect } from "vitest";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { connectBus } from "@mcpq/bus";
import { ErrorCode, McpError, type JsonRpcRequest } from "@mcpq/protocol";
import { Worker, defineCatalog, defineTool, z } from "@mcpq/worker-sdk";
import { stack } from "./support/stack.js";
import { metricValue, rawSession, type RawReply } from "./support/raw-http.js";

/** Asserts an explicit, retryable refusal: HTTP status + Retry-After and the JSON-RPC error body. */
function expectRefusal(
  r: RawReply,
  status: 429 | 503,
  code: number,
  label: string,
  reason: RegExp,
) {
  expect(r.status).toBe(status);
  expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
  expect(r.message?.error?.code).toBe(code);
  expect(r.message?.error?.message).toMatch(new RegExp(`^${label}: `));
  expect(r.message?.error?.data?.reason).toMatch(reason);
  expect(r.message?.error?.data?.retryAfterMs).toBeGreaterThan(0);
}

const echoReq = (id: number, text: string): JsonRpcRequest =>
  ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "echo", arguments: { text } },
  }) as JsonRpcRequest;

describe("edge admission control: every limit refuses explicitly and retryably", () => {
  it("per-session in-flight cap -> 429, -32011, Retry-After; other sessions unaffected; slots come back", async ({
    nats,
  }) => {
    const s = await stack(nats, { edgeEnv: { MCPQ_MAX_IN_FLIGHT_PER_SESSION: "2" } });
    try {
      const rt = s.edges[0]!.runtime;
      const a = await rawSession(s.edges[0]!.url);
      const h1 = await a.start("sleep", { ms: 60_000 });
      const h2 = await a.start("sleep", { ms: 60_000 });
      expect([h1.status, h2.status]).toEqual([200, 200]);
      expectRefusal(
        await a.call("echo", { text: "x" }),
        429,
        ErrorCode.RateLimited,
        "rate limited",
        /in flight for this session/,
      );
      // Transport-neutral: the core throws the same McpError every transport frames as JSON-RPC.
      const rec = (await rt.core.sessions.get(a.id, "anonymous"))!;
      const err = await rt.core
        .dispatch(rec, echoReq(99, "core"), {
          id: "0a",
          sink: { closed: false, send: () => undefined },
        })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(McpError);
      expect(err).toMatchObject({ code: ErrorCode.RateLimited, data: { retryAfterMs: 1000 } });
      // Fairness: another session of the same principal is not held back by a's cap.
      const b = await rawSession(s.edges[0]!.url);
      expect((await b.call("echo", { text: "b" })).message?.result).toEqual({
        content: [{ type: "text", text: "b" }],
      });
      await a.notify("notifications/cancelled", { requestId: h1.id });
      await a.notify("notifications/cancelled", { requestId: h2.id });
      await Promise.all([h1.done, h2.done]);
      await eventually(() => rt.admission.inFlight === 0, { what: "slots released" });
      expect((await a.call("echo", { text: "again" })).message?.result).toEqual({
        content: [{ type: "text", text: "again" }],
      });
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "session_in_flight" }),
      ).toBe(2);
    } finally {
      await s.close();
    }
  });

  it("per-principal tool rate limit -> 429, -32011, retryAfterMs from the bucket; other principals and non-tool requests unaffected", async ({
    nats,
  }) => {
    const s = await stack(nats, {
      edgeEnv: {
        MCPQ_AUTH_TOKENS: "ta=alice,tb=bob",
        MCPQ_TOOL_RATE_PER_SEC: "0.01",
        MCPQ_TOOL_RATE_BURST: "2",
      },
    });
    try {
      const url = s.edges[0]!.url;
      const alice1 = await rawSession(url, { authorization: "Bearer ta" });
      const alice2 = await rawSession(url, { authorization: "Bearer ta" });
      const bob = await rawSession(url, { authorization: "Bearer tb" });
      expect((await alice1.call("echo", { text: "1" })).message?.result).toBeDefined();
      expect((await alice2.call("echo", { text: "2" })).message?.result).toBeDefined();
      // The bucket is the principal's, not the session's: a third call from either session is refused.
      const limited = await alice1.call("echo", { text: "3" });
      expectRefusal(limited, 429, ErrorCode.RateLimited, "rate limited", /rate limit/);
      // 0.01 tokens/s: the next token is ~100 s away, and the hint says so.
      expect(limited.message!.error!.data!.retryAfterMs).toBeGreaterThan(50_000);
      expect(Number(limited.retryAfter)).toBeGreaterThan(50);
      expectRefusal(
        await alice2.call("echo", { text: "4" }),
        429,
        ErrorCode.RateLimited,
        "rate limited",
        /rate limit/,
      );
      expect((await bob.call("echo", { text: "bob" })).message?.result).toEqual({
        content: [{ type: "text", text: "bob" }],
      });
      // Only tool invocations are rate limited.
      expect(
        (await alice1.request("resources/read", { uri: "mcpq://example/readme" })).message?.result,
      ).toBeDefined();
      expect(
        await metricValue(s.edges[0]!.runtime.registry, "mcpq_edge_rejected_total", {
          reason: "rate_limited",
        }),
      ).toBe(2);
    } finally {
      await s.close();
    }
  });

  it("anonymous mode rate-limits per session (no shared identity to starve others)", async ({
    nats,
  }) => {
    const s = await stack(nats, {
      edgeEnv: { MCPQ_TOOL_RATE_PER_SEC: "0.01", MCPQ_TOOL_RATE_BURST: "1" },
    });
    try {
      const a = await rawSession(s.edges[0]!.url);
      const b = await rawSession(s.edges[0]!.url);
      expect((await a.call("echo", { text: "a" })).message?.result).toBeDefined();
      expectRefusal(
        await a.call("echo", { text: "a2" }),
        429,
        ErrorCode.RateLimited,
        "rate limited",
        /rate limit/,
      );
      expect((await b.call("echo", { text: "b" })).message?.result).toBeDefined();
    } finally {
      await s.close();
    }
  });

  it("global in-flight cap -> 503, -32010, Retry-After; recovers when work finishes", async ({
    nats,
  }) => {
    const s = await stack(nats, { edgeEnv: { MCPQ_MAX_PENDING_REQUESTS: "2" } });
    try {
      const rt = s.edges[0]!.runtime;
      const a = await rawSession(s.edges[0]!.url);
      const b = await rawSession(s.edges[0]!.url);
      const c = await rawSession(s.edges[0]!.url);
      const ha = await a.start("sleep", { ms: 60_000 });
      const hb = await b.start("sleep", { ms: 60_000 });
      expect([ha.status, hb.status]).toEqual([200, 200]);
      expectRefusal(
        await c.call("echo", { text: "c" }),
        503,
        ErrorCode.Overloaded,
        "overloaded",
        /too many requests in flight/,
      );
      expect(await metricValue(rt.registry, "mcpq_edge_admission_in_flight")).toBe(2);
      await a.notify("notifications/cancelled", { requestId: ha.id });
      await ha.done;
      await eventually(() => rt.admission.inFlight === 1, { what: "one slot released" });
      expect((await c.call("echo", { text: "c2" })).message?.result).toEqual({
        content: [{ type: "text", text: "c2" }],
      });
      await b.notify("notifications/cancelled", { requestId: hb.id });
      await hb.done;
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "edge_in_flight" }),
      ).toBe(1);
    } finally {
      await s.close();
    }
  });

  it("fair share: near the edge-wide cap a session over its share is refused (503) while others are still admitted", async ({
    nats,
  }) => {
    const s = await stack(nats, { edgeEnv: { MCPQ_MAX_PENDING_REQUESTS: "8" } });
    const open: {
      s: Awaited<ReturnType<typeof rawSession>>;
      h: Awaited<ReturnType<Awaited<ReturnType<typeof rawSession>>["start"]>>;
    }[] = [];
    const hold = async (sess: Awaited<ReturnType<typeof rawSession>>) => {
      const h = await sess.start("sleep", { ms: 60_000 });
      expect(h.status).toBe(200);
      open.push({ s: sess, h });
    };
    try {
      const rt = s.edges[0]!.runtime;
      const url = s.edges[0]!.url;
      const [hot, quiet, late, later] = await Promise.all([
        rawSession(url),
        rawSession(url),
        rawSession(url),
        rawSession(url),
      ]);
      // Alone, a session may use the whole edge; hot takes 5 of 8 slots, quiet 1 (6 = 75 %: contention).
      for (let i = 0; i < 5; i++) await hold(hot!);
      await hold(quiet!);
      // Two sessions hold work: a share is 4, hot holds 5 and is refused...
      expectRefusal(
        await hot!.call("echo", { text: "more" }),
        503,
        ErrorCode.Overloaded,
        "overloaded",
        /fair share/,
      );
      // ...while sessions under their share are still admitted, up to the hard cap.
      await hold(quiet!);
      await hold(late!);
      expectRefusal(
        await later!.call("echo", { text: "later" }),
        503,
        ErrorCode.Overloaded,
        "overloaded",
        /too many requests in flight/,
      );
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "fair_share" }),
      ).toBe(1);
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "edge_in_flight" }),
      ).toBe(1);
    } finally {
      for (const o of open) await o.s.notify("notifications/cancelled", { requestId: o.h.id });
      await Promise.all(open.map((o) => o.h.done));
      await s.close();
    }
  });

  it("buffered-bytes budget -> 503, -32010 while the edge holds more than the budget; gauge follows", async ({
    nats,
  }) => {
    const s = await stack(nats, { edgeEnv: { MCPQ_MAX_BUFFERED_BYTES: "1024" } });
    try {
      const rt = s.edges[0]!.runtime;
      const a = await rawSession(s.edges[0]!.url);
      // Real streams report here; a stuck reader is simulated by an account holding 4 KiB
      // (a loopback socket absorbs megabytes in kernel buffers before Node holds any).
      const stuck = rt.buffers.open();
      stuck.set(4096);
      expect(await metricValue(rt.registry, "mcpq_edge_buffered_bytes")).toBe(4096);
      expectRefusal(
        await a.call("echo", { text: "x" }),
        503,
        ErrorCode.Overloaded,
        "overloaded",
        /buffers are full/,
      );
      stuck.close();
      expect(await metricValue(rt.registry, "mcpq_edge_buffered_bytes")).toBe(0);
      // A response larger than the budget is still delivered (the budget gates admission, not
      // delivery) and its stream's bytes are returned once the socket took them.
      const big = "y".repeat(64 * 1024);
      expect((await a.call("echo", { text: big })).message?.result).toEqual({
        content: [{ type: "text", text: big }],
      });
      await eventually(() => rt.buffers.bytes === 0 && rt.buffers.accounts === 0, {
        what: "buffers released",
      });
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "buffered_bytes" }),
      ).toBe(1);
    } finally {
      await s.close();
    }
  });

  it("circuit breaker: internal errors or timeouts of N different callers in a row open a pool's circuit (-32012, 503), one caller's never do; a half-open probe closes it", async ({
    nats,
  }) => {
    const s = await stack(nats, {
      edgeEnv: {
        MCPQ_CIRCUIT_FAILURES: "3",
        MCPQ_CIRCUIT_OPEN_MS: "200",
        MCPQ_AUTH_TOKENS: "t1=p1,t2=p2,t3=p3",
      },
    });
    // Same limits as the stack's services (support/stack.ts), so provisioning converges.
    const bus = await connectBus({
      url: nats.url,
      name: "flaky-worker",
      limits: { registryTtlMs: 3000 },
    });
    let mode: "fail" | "hang" | "ok" = "fail";
    let runs = 0;
    const flaky = new Worker({
      bus,
      pool: "flaky",
      catalogs: [
        defineCatalog({
          name: "flaky",
          tools: [
            defineTool({
              name: "flaky",
              description: "Fails, hangs or answers, as the test says.",
              input: z.object({}),
              handler: async (_args, ctx) => {
                runs++;
                if (mode === "fail") throw new McpError(ErrorCode.InternalError, "Internal error");
                if (mode === "hang")
                  await new Promise((_r, reject) =>
                    ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason as Error)),
                  );
                return "fine";
              },
            }),
          ],
        }),
      ],
    });
    await flaky.start();
    try {
      const rt = s.edges[0]!.runtime;
      await eventually(() => rt.catalog.toolPool("flaky") === "flaky", {
        what: "flaky pool visible",
      });
      const a = await rawSession(s.edges[0]!.url, { authorization: "Bearer t1" });
      const b = await rawSession(s.edges[0]!.url, { authorization: "Bearer t2" });
      const c = await rawSession(s.edges[0]!.url, { authorization: "Bearer t3" });
      const callers = [a, b, c];
      // One caller's failures, however many, fail only its own calls (issue 14 hole 6).
      for (let i = 0; i < 6; i++)
        expect((await a.call("flaky", {})).message?.error?.code).toBe(ErrorCode.InternalError);
      expect(rt.admission.circuitState("flaky")).toBe("closed");
      for (let i = 0; i < 3; i++)
        expect((await callers[i]!.call("flaky", {})).message?.error?.code).toBe(
          ErrorCode.InternalError,
        );
      expect(rt.admission.circuitState("flaky")).toBe("open");
      const before = runs;
      expectRefusal(
        await a.call("flaky", {}),
        503,
        ErrorCode.Unavailable,
        "unavailable",
        /pool flaky is failing/,
      );
      expect(runs).toBe(before); // failed fast: nothing was queued
      expect(await metricValue(rt.registry, "mcpq_edge_circuit_state", { pool: "flaky" })).toBe(2);
      // Other pools are not affected.
      expect((await a.call("echo", { text: "e" })).message?.result).toBeDefined();
      // The pool recovers: after the open interval one probe passes, succeeds, and closes the circuit.
      mode = "ok";
      const ok = await eventually(
        async () => {
          const r = await a.call("flaky", {});
          if (r.status === 503) expect(r.message?.error?.code).toBe(ErrorCode.Unavailable);
          return r.message?.result;
        },
        { what: "half-open probe succeeds" },
      );
      expect(ok).toEqual({ content: [{ type: "text", text: "fine" }] });
      expect(rt.admission.circuitState("flaky")).toBe("closed");
      expect((await a.call("flaky", {})).message?.result).toBeDefined();
      // Timeouts count too (a pool whose workers stopped answering).
      mode = "hang";
      for (let i = 0; i < 3; i++)
        expect(
          (await callers[i]!.call("flaky", {}, { "io.mcpq/timeoutMs": 150 })).message?.error?.code,
        ).toBe(ErrorCode.RequestTimeout);
      expectRefusal(
        await a.call("flaky", {}),
        503,
        ErrorCode.Unavailable,
        "unavailable",
        /circuit open/,
      );
      mode = "ok";
      await eventually(async () => (await a.call("flaky", {})).message?.result, {
        what: "recovered again",
      });
      expect(await metricValue(rt.registry, "mcpq_edge_circuit_state", { pool: "flaky" })).toBe(0);
      expect(
        await metricValue(rt.registry, "mcpq_edge_circuit_opened_total", { pool: "flaky" }),
      ).toBeGreaterThanOrEqual(2);
      expect(
        await metricValue(rt.registry, "mcpq_edge_rejected_total", { reason: "circuit_open" }),
      ).toBeGreaterThanOrEqual(2);
    } finally {
      await flaky.stop(1_000);
      await bus.close();
      await s.close();
    }
  });
});
