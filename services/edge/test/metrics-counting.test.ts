import { describe, expect, afterAll } from "vitest";
import { natsTest as it, eventually, freePort, startNats, type Stack } from "@mcpq/testkit";
import type { Registry } from "@mcpq/observability";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, sdkClient, stack } from "./support/stack.js";
import { rawSession } from "./support/raw-http.js";

type Labels = Record<string, string>;

/** Sum of a metric's samples whose labels include `labels` (histograms: the `_count` samples). */
async function sum(registry: Registry, name: string, labels: Labels = {}): Promise<number> {
  const metrics = await registry.getMetricsAsJSON();
  const histogram = name.endsWith("_count");
  const m = metrics.find((x) => x.name === (histogram ? name.slice(0, -"_count".length) : name));
  if (!m) return 0;
  let total = 0;
  for (const v of m.values as { value: number; labels: Labels; metricName?: string }[]) {
    if (histogram && v.metricName !== name) continue;
    if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) total += v.value;
  }
  return total;
}

/** Counters that must move together for one answered request. */
async function snapshot(r: Registry) {
  return {
    requests: await sum(r, "mcpq_edge_requests_total"),
    errors: await sum(r, "mcpq_edge_errors_total"),
    rejectedOutcomes: await sum(r, "mcpq_edge_requests_total", { outcome: "rejected" }),
    errorOutcomes: await sum(r, "mcpq_edge_requests_total", { outcome: "error" }),
    rejected: await sum(r, "mcpq_edge_rejected_total"),
    operations: await sum(r, "mcp_server_operation_duration_seconds_count", { service: "edge" }),
  };
}

/**
 * The counting rules of issue 15: every answered request counts once in requests_total (by
 * outcome), once in the per-tool operation histogram, errors by code and refusals by reason.
 */
describe("edge metrics: requests, outcomes, errors and refusals add up", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("an unknown tool counts as a tools/call request with error -32602 and tool `_other`", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 1 });
    const r = s.edges[0]!.runtime.registry;
    const { client } = await sdkClient(s.edges[0]!.url);
    // The session's initialize counted like any request.
    expect(await sum(r, "mcpq_edge_requests_total", { method: "initialize", outcome: "ok" })).toBe(
      1,
    );
    const before = await snapshot(r);
    await expect(client.callTool({ name: "no-such-tool", arguments: {} })).rejects.toMatchObject({
      code: -32602,
    });
    const after = await snapshot(r);
    expect(after.requests - before.requests).toBe(1);
    expect(after.errorOutcomes - before.errorOutcomes).toBe(1);
    expect(after.errors - before.errors).toBe(1);
    expect(after.operations - before.operations).toBe(1);
    expect(
      await sum(r, "mcpq_edge_requests_total", { method: "tools/call", outcome: "error" }),
    ).toBe(1);
    expect(await sum(r, "mcpq_edge_errors_total", { code: "-32602" })).toBe(1);
    expect(
      await sum(r, "mcp_server_operation_duration_seconds_count", {
        mcp_method_name: "tools/call",
        gen_ai_tool_name: "_other",
        error_type: "-32602",
        service: "edge",
      }),
    ).toBe(1);
    await client.close();
  });

  it("an isError result is a tool_error on edge and worker, not ok", async () => {
    const r = s.edges[0]!.runtime.registry;
    const w = s.workers[0]!.registry;
    const { client } = await sdkClient(s.edges[0]!.url);
    const okBefore = await sum(r, "mcpq_edge_requests_total", {
      method: "tools/call",
      outcome: "ok",
    });
    const bad = await client.callTool({ name: "add", arguments: { a: "two", b: 1 } });
    expect(bad.isError).toBe(true);
    expect(
      await sum(r, "mcpq_edge_requests_total", { method: "tools/call", outcome: "tool_error" }),
    ).toBe(1);
    expect(await sum(r, "mcpq_edge_requests_total", { method: "tools/call", outcome: "ok" })).toBe(
      okBefore,
    );
    expect(
      await sum(r, "mcp_server_operation_duration_seconds_count", {
        gen_ai_tool_name: "add",
        error_type: "tool_error",
        service: "edge",
      }),
    ).toBe(1);
    await eventually(
      async () =>
        (await sum(w, "mcpq_worker_requests_total", {
          method: "tools/call",
          outcome: "tool_error",
        })) === 1,
      {
        what: "the worker's tool_error count",
      },
    );
    expect(
      await sum(w, "mcp_server_operation_duration_seconds_count", {
        gen_ai_tool_name: "add",
        error_type: "tool_error",
        service: "worker",
      }),
    ).toBe(1);
    // A good call: ok on both sides, labelled by the tool.
    await client.callTool({ name: "echo", arguments: { text: "x" } });
    expect(
      await sum(r, "mcp_server_operation_duration_seconds_count", {
        gen_ai_tool_name: "echo",
        error_type: "",
        service: "edge",
      }),
    ).toBe(1);
    await eventually(
      async () =>
        (await sum(w, "mcp_server_operation_duration_seconds_count", {
          gen_ai_tool_name: "echo",
          service: "worker",
        })) === 1,
    );
    expect(await sum(w, "mcpq_worker_queue_wait_seconds_count")).toBeGreaterThanOrEqual(2);
    await client.close();
  });

  it("methods MCP does not define collapse to one `_other` label", async () => {
    const edge = s.edges[0]!;
    const raw = await rawSession(edge.url);
    for (const method of ["x/one", "x/two", "x/three"]) {
      const res = await raw.request(method, {});
      expect(res.message).toMatchObject({ error: { code: -32601 } });
    }
    await raw.close();
    const r = edge.runtime.registry;
    expect(await sum(r, "mcpq_edge_requests_total", { method: "_other", outcome: "error" })).toBe(
      3,
    );
    expect(await sum(r, "mcpq_edge_requests_total", { method: "x/one" })).toBe(0);
  });

  it("-32012 (no worker serves the tool any more) is a refusal with reason no_worker", async () => {
    const edge = s.edges[0]!;
    const r = edge.runtime.registry;
    const gone = await s.addWorker(["conformance"]);
    await eventually(() => edge.runtime.catalog.toolPool("test_simple_text"), {
      what: "the conformance tool in the registry",
    });
    await gone.close();
    await eventually(() => edge.runtime.catalog.toolPool("test_simple_text") === undefined, {
      what: "the tool gone",
    });
    const raw = await rawSession(edge.url);
    const before = await snapshot(r);
    const refused = await raw.call("test_simple_text", {});
    expect(refused.status).toBe(503);
    expect(refused.message).toMatchObject({ error: { code: -32012 } });
    const after = await snapshot(r);
    expect(after.requests - before.requests).toBe(1);
    expect(after.rejectedOutcomes - before.rejectedOutcomes).toBe(1);
    expect(after.rejected - before.rejected).toBe(1);
    expect(after.errors - before.errors).toBe(1);
    expect(await sum(r, "mcpq_edge_rejected_total", { reason: "no_worker" })).toBe(1);
    expect(await sum(r, "mcpq_edge_errors_total", { code: "-32012" })).toBe(1);
    await raw.close();
  });

  it("worker /healthz and /readyz answer on the metrics listener (127.0.0.1)", async ({ nats }) => {
    const port = await freePort();
    const w = await s.addWorker(["example"], { MCPQ_WORKER_METRICS_PORT: String(port) });
    expect(w.port).toBe(port);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { nats: true } });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^mcpq_worker_broker_connected\{pool="example"\} 1$/m);
    expect(metrics).toContain("mcpq_worker_consumer_lag_messages");
    void nats;
  });

  // Each request waits for the session lookup's JetStream timeout (10 s) while the broker is down.
  it(
    "during a broker outage every failed request is counted once",
    { timeout: 120_000 },
    async () => {
      const own = await startNats();
      const edge = await factories.startEdge(own.url, {
        MCPQ_SESSION_CACHE_MS: "0",
        MCPQ_REQUEST_TIMEOUT_MS: "2000",
      });
      try {
        const r = edge.runtime.registry;
        const raw = await rawSession(edge.url);
        expect(await sum(r, "mcpq_edge_broker_connected")).toBe(1);
        if (own.kill) own.kill();
        else await own.stop();
        await eventually(async () => (await sum(r, "mcpq_edge_broker_connected")) === 0, {
          what: "the broker gauge at 0",
        });
        const before = await snapshot(r);
        const statuses: number[] = [];
        for (let i = 0; i < 3; i++) {
          statuses.push((await raw.call("echo", { text: String(i) })).status);
        }
        expect(statuses.every((st) => st >= 500)).toBe(true);
        const after = await snapshot(r);
        expect(after.requests - before.requests).toBe(3);
        expect(after.errors - before.errors).toBe(3);
        expect(
          after.errorOutcomes +
            after.rejectedOutcomes -
            (before.errorOutcomes + before.rejectedOutcomes),
        ).toBe(3);
      } finally {
        await edge.close().catch(() => undefined);
        await own.stop().catch(() => undefined);
      }
    },
  );
});
