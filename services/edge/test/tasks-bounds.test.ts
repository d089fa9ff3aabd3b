import { afterAll, describe, expect } from "vitest";
import { distinctKeys } from "@mcpq/bus";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { sharedConformanceStack } from "./support/conformance-stack.js";
import { factories } from "./support/stack.js";
import { modernMeta, modernPost } from "./support/modern-post.js";
import { rawInitialize } from "./support/raw-init.js";

/**
 * The broker-side bounds of the stateless era's shared state: the task store's size
 * (MCPQ_TASKS_MAX, refused with a clear retryable error), single use of MRTR `requestState`
 * across edges (KV mcpq_used_states), and no session records for session-less requests.
 */
describe("tasks and request-state bounds", () => {
  // Two tasks at most in the whole store (edges and workers share the bus settings).
  const env = { MCPQ_TASKS_MAX: "2", MCPQ_REQUEST_STATE_KEYS: "k".repeat(40) };
  const t = sharedConformanceStack(
    { edges: 2, workers: [{ catalogs: ["conformance"] }], edgeEnv: env, workerEnv: env },
    "bounds-test-reader",
  );
  const setup = t.setup;
  const url = t.url;
  afterAll(() => t.close());

  it("MCPQ_TASKS_MAX: a task beyond it is refused with a retryable -32010 naming the setting; the stored tasks still finish", async ({
    nats,
  }) => {
    const u = await url(nats, 0);
    const long = (label: string) =>
      modernPost(u, "tools/call", { name: "slow_compute", arguments: { seconds: 60, label } });
    const ids: string[] = [];
    for (const label of ["one", "two"]) {
      const r = await long(label);
      expect(r.result, label).toMatchObject({ resultType: "task", status: "working" });
      ids.push(r.result!["taskId"] as string);
    }
    const third = await long("three");
    expect(third.error).toMatchObject({ code: -32010 });
    expect(third.error!.message).toContain("MCPQ_TASKS_MAX");
    expect(third.error!.data).toMatchObject({ retryAfterMs: expect.any(Number) });
    // A full store still takes changes to the tasks it holds: both cancel and settle.
    for (const taskId of ids) {
      const ack = await modernPost(await url(nats, 1), "tasks/cancel", { taskId });
      expect(ack.result).toMatchObject({ resultType: "complete" });
      const r = await modernPost(u, "tasks/get", { taskId });
      expect(r.result).toMatchObject({ status: "cancelled" });
    }
  });

  it("requestState is single use: the retry works on the other edge, a replay of it on either edge is refused", async ({
    nats,
  }) => {
    const [u0, u1] = [await url(nats, 0), await url(nats, 1)];
    const meta = modernMeta({ tasks: false, capabilities: { elicitation: {} } });
    const call = { name: "test_input_required_result_elicitation", arguments: {} };
    const round1 = await modernPost(u0, "tools/call", call, { meta });
    expect(round1.result).toMatchObject({ resultType: "input_required" });
    const retry = {
      ...call,
      inputResponses: { user_name: { action: "accept", content: { name: "Ada" } } },
      requestState: round1.result!["requestState"],
    };
    const round2 = await modernPost(u1, "tools/call", retry, { meta });
    expect(round2.result).toMatchObject({
      resultType: "complete",
      content: [{ text: "Hello, Ada!" }],
    });
    for (const u of [u0, u1]) {
      const replay = await modernPost(u, "tools/call", retry, { meta });
      expect(replay.error).toMatchObject({
        code: -32602,
        message: "Invalid or expired requestState",
      });
    }
  });

  it("session-less (2026-07-28) requests create no session records in the broker", async ({
    nats,
  }) => {
    const u = await url(nats, 0);
    const count = async () => {
      let n = 0;
      for await (const _k of distinctKeys(t.bus.kv.sessions)) n++;
      return n;
    };
    const before = await count();
    for (let i = 0; i < 20; i++) {
      const r =
        i % 2
          ? await modernPost(u, "tools/list", {})
          : await modernPost(u, "tools/call", { name: "test_simple_text", arguments: {} });
      expect(r.result, `call ${i}`).toMatchObject({ resultType: "complete" });
    }
    expect(await count()).toBe(before);
    // The count sees records: a legacy session makes one.
    // Rejects unless it opened a session (200 with an Mcp-Session-Id).
    await rawInitialize(u, { protocolVersion: "2025-11-25" });
    await eventually(async () => (await count()) > before, { what: "the legacy session record" });
  });

  it("anonymous session-less calls share their client address's tool-call rate limit (not a bucket per request)", async ({
    nats,
  }) => {
    await setup(nats);
    // Two calls of burst, practically no refill.
    const edge = await factories.startEdge(nats.url, {
      ...env,
      MCPQ_TOOL_RATE_PER_SEC: "0.001",
      MCPQ_TOOL_RATE_BURST: "2",
      // Only this edge's own grants count (the other edges' anonymous calls share the address).
      MCPQ_SHARED_LIMITS_MS: "0",
    });
    try {
      // Routed and answered by the pool (resources/read takes no tool-call tokens).
      await eventually(
        async () =>
          (await modernPost(edge.url, "resources/read", { uri: "test://static-text" })).result,
        { what: "the new edge routes to the pool" },
      );
      const call = () =>
        modernPost(edge.url, "tools/call", { name: "test_simple_text", arguments: {} });
      for (const n of [1, 2]) {
        const r = await call();
        expect(r.result, `call ${n}: ${JSON.stringify(r.error)}`).toMatchObject({
          resultType: "complete",
        });
      }
      const third = await call();
      expect(third.status).toBe(429);
      expect(third.error).toMatchObject({ message: expect.stringContaining("rate limit") });
    } finally {
      await edge.close();
    }
  });
});
