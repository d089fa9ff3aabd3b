import { afterAll, describe, expect } from "vitest";
import { BUCKETS, countKeys } from "@mcpq/bus";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { sharedConformanceStack } from "./support/conformance-stack.js";
import { sdkClient } from "./support/stack.js";
import { modernPost, type ModernAnswer } from "./support/modern-post.js";

const A = "tok-alice";
const B = "tok-bob";

/**
 * The per-principal task quota (MCPQ_TASKS_MAX_PER_PRINCIPAL, a worker setting): two workers of
 * one pool share the count through the broker, so a principal at its quota is refused whichever
 * worker takes its call, another principal is not, and a task that ends (cancelled on an edge,
 * completed on a worker) frees its slot.
 */
describe("tasks per principal (MCPQ_TASKS_MAX_PER_PRINCIPAL)", () => {
  const t = sharedConformanceStack(
    {
      edges: 2,
      workers: [{ catalogs: ["conformance"] }, { catalogs: ["conformance"] }],
      edgeEnv: { MCPQ_AUTH_TOKENS: `${A}=alice,${B}=bob` },
      workerEnv: { MCPQ_TASKS_MAX_PER_PRINCIPAL: "2" },
    },
    "quota-test-reader",
  );
  const url = t.url;
  afterAll(() => t.close());

  it("a principal at its quota is refused with a retryable -32010 naming the setting; another principal is not; an ended task frees a slot", async ({
    nats,
  }) => {
    const [u0, u1] = [await url(nats, 0), await url(nats, 1)];
    const start = (token: string, seconds: number, label: string) =>
      modernPost(
        u0,
        "tools/call",
        { name: "slow_compute", arguments: { seconds, label } },
        { token },
      );
    const taskOf = (r: ModernAnswer, what: string): string => {
      expect(r.result, `${what}: ${JSON.stringify(r.error)}`).toMatchObject({
        resultType: "task",
        status: "working",
      });
      return r.result!["taskId"] as string;
    };
    const expectRefused = (r: ModernAnswer, what: string) => {
      expect(r.result, what).toBeUndefined();
      expect(r.error, what).toMatchObject({ code: -32010 });
      expect(r.error!.message).toContain("MCPQ_TASKS_MAX_PER_PRINCIPAL");
      expect(r.error!.data).toMatchObject({ retryAfterMs: expect.any(Number) });
      // Nothing of the store's inside on the wire (keys, digests, stream names).
      expect(JSON.stringify(r.error)).not.toMatch(/KV_|mcpq_tasks|\$KV/);
    };
    const cancel = async (token: string, taskId: string) => {
      const ack = await modernPost(u1, "tasks/cancel", { taskId }, { token });
      expect(ack.result, JSON.stringify(ack.error)).toMatchObject({ resultType: "complete" });
    };

    const a1 = taskOf(await start(A, 60, "a1"), "alice's first task");
    const a2 = taskOf(await start(A, 60, "a2"), "alice's second task");
    // Whichever worker takes them, alice's third and fourth calls see her two tasks.
    expectRefused(await start(A, 60, "a3"), "alice's third task");
    expectRefused(await start(A, 60, "a3 again"), "alice's third task, retried");
    const b1 = taskOf(await start(B, 60, "b1"), "bob's task while alice is at her quota");

    // Cancelled on the other edge: alice may start one again, and is then at her quota again.
    await cancel(A, a1);
    const a3 = taskOf(await start(A, 1, "a3"), "alice's task after a cancel");
    expectRefused(await start(A, 60, "a4"), "alice at her quota again");

    // Completed on its worker (the end is written before its slot is erased, so a call right
    // after tasks/get shows `completed` may still be refused: it is retried until it is not).
    await eventually(
      async () =>
        (await modernPost(u1, "tasks/get", { taskId: a3 }, { token: A })).result?.["status"] ===
        "completed",
      { what: "alice's short task completed" },
    );
    const a4 = await eventually(
      async () => {
        const r = await start(A, 60, "a4");
        if (r.error?.code === -32010) return undefined;
        return taskOf(r, "alice's task after one completed");
      },
      { what: "alice's completed task frees its slot" },
    );
    expectRefused(await start(A, 60, "a5"), "alice at her quota after a completion");

    // Every end erases its slot: nothing counts once all tasks ended.
    for (const [token, taskId] of [
      [A, a2],
      [A, a4],
      [B, b1],
    ] as const)
      await cancel(token, taskId);
    expect(await countKeys(t.bus.jsm, BUCKETS.tasks, "p.>")).toBe(0);
  });

  it("a task that expires (its ttl shorter than the store's) frees its slot", async ({ nats }) => {
    const u = await url(nats, 0);
    const start = (label: string) =>
      modernPost(
        u,
        "tools/call",
        { name: "slow_compute", arguments: { seconds: 60, label } },
        { token: A },
      );
    // A 2025-11-25 session may ask for a shorter ttl (params.task.ttl): 1 s, while the handler
    // would run 60 s; the worker stops it at its ttl.
    const { client } = await sdkClient(u, { headers: { authorization: `Bearer ${A}` } });
    try {
      const stream = client.experimental.tasks.callToolStream(
        { name: "slow_compute", arguments: { seconds: 60, label: "short-lived" } },
        undefined,
        { task: { ttl: 1_000 } },
      );
      const created = await stream.next();
      expect(created.value).toMatchObject({ type: "taskCreated", task: { ttl: 1_000 } });
      await stream.return(undefined);
      const long = await start("long");
      expect(long.result, JSON.stringify(long.error)).toMatchObject({ resultType: "task" });
      const longId = long.result!["taskId"] as string;
      // At the quota (2) until the short task expires; then a call gets a task again.
      const next = await eventually(
        async () => {
          const r = await start("after expiry");
          if (r.error?.code === -32010) return undefined;
          return r;
        },
        { timeoutMs: 30_000, what: "the expired task frees its slot" },
      );
      expect(next.result, JSON.stringify(next.error)).toMatchObject({ resultType: "task" });
      for (const taskId of [longId, next.result!["taskId"] as string]) {
        const ack = await modernPost(u, "tasks/cancel", { taskId }, { token: A });
        expect(ack.result, JSON.stringify(ack.error)).toMatchObject({ resultType: "complete" });
      }
      expect(await countKeys(t.bus.jsm, BUCKETS.tasks, "p.>")).toBe(0);
    } finally {
      await client.close();
    }
  });
});
