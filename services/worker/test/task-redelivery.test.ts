import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect } from "vitest";
import { natsTest as it, eventually, type NatsHandle } from "@mcpq/testkit";
import { connectBus, distinctKeys } from "@mcpq/bus";
import { factories } from "../../edge/test/support/stack.js";
import { modernMeta, modernPost } from "../../edge/test/support/modern-post.js";

const CLI = fileURLToPath(new URL("../../cli/dist/main.js", import.meta.url));
/** A dead worker's unacked request is redelivered after this long. */
const env = { MCPQ_ACK_WAIT_MS: "1000", MCPQ_REGISTRY_TTL_MS: "3000" };

/** A worker process serving `conformance` (killed -9 by the tests). */
function spawnWorker(nats: NatsHandle): ChildProcess {
  return spawn(process.execPath, [CLI, "worker", "--catalog", "conformance"], {
    env: { ...process.env, ...env, MCPQ_NATS_URL: nats.url, MCPQ_LOG_LEVEL: "warn" },
    stdio: "ignore",
  });
}

/**
 * A task whose worker dies: the request was never acked, so JetStream redelivers it to another
 * worker of the pool, which continues the same task (found by its request's index entry in
 * mcpq_tasks) instead of making a second one; past the request's deadline it fails the task.
 */
describe("tasks across worker death (redelivery)", () => {
  it("the redelivered request continues the task it created: the client's task id completes", async ({
    nats,
  }) => {
    const edge = await factories.startEdge(nats.url, env);
    const a = spawnWorker(nats);
    let b: Awaited<ReturnType<typeof factories.startWorker>> | undefined;
    const bus = await connectBus({ url: nats.url, name: "redelivery-reader", provision: false });
    try {
      await eventually(() => edge.runtime.catalog.toolPool("slow_compute"), {
        what: "the worker process registered",
        timeoutMs: 20_000,
      });
      const meta = { ...modernMeta(), "io.mcpq/timeoutMs": 120_000 };
      const created = await modernPost(
        edge.url,
        "tools/call",
        { name: "slow_compute", arguments: { seconds: 3, label: "survivor" } },
        { meta },
      );
      const taskId = created.result!["taskId"] as string;
      expect(created.result).toMatchObject({ resultType: "task", status: "working" });
      a.kill("SIGKILL");
      b = await factories.startWorker(nats.url, ["conformance"], env);
      const done = await eventually(
        async () => {
          const r = (await modernPost(edge.url, "tasks/get", { taskId })).result;
          return r?.["status"] === "completed" ? r : undefined;
        },
        { what: "the task completed by the second worker", timeoutMs: 30_000 },
      );
      expect(done["result"]).toMatchObject({
        content: [{ text: "computed survivor after 3 s" }],
      });
      const tasks: string[] = [];
      for await (const k of distinctKeys(bus.kv.tasks, "t.>")) tasks.push(k);
      expect(tasks).toEqual([`t.${taskId}`]);
    } finally {
      a.kill("SIGKILL");
      await b?.close();
      await bus.close();
      await edge.close();
    }
  });

  it("a redelivery past the request's deadline fails the task (-32603) instead of leaving it working", async ({
    nats,
  }) => {
    const edge = await factories.startEdge(nats.url, env);
    const a = spawnWorker(nats);
    let b: Awaited<ReturnType<typeof factories.startWorker>> | undefined;
    try {
      await eventually(() => edge.runtime.catalog.toolPool("slow_compute"), {
        what: "the worker process registered",
        timeoutMs: 20_000,
      });
      const timeoutMs = 1_500;
      const sent = Date.now();
      const created = await modernPost(
        edge.url,
        "tools/call",
        { name: "slow_compute", arguments: { seconds: 60, label: "orphan" } },
        { meta: { ...modernMeta(), "io.mcpq/timeoutMs": timeoutMs } },
      );
      const taskId = created.result!["taskId"] as string;
      a.kill("SIGKILL");
      // Only a worker started after the deadline gets the redelivery.
      await eventually(() => Date.now() > sent + timeoutMs + 100, { what: "the deadline passed" });
      b = await factories.startWorker(nats.url, ["conformance"], env);
      const failed = await eventually(
        async () => {
          const r = (await modernPost(edge.url, "tasks/get", { taskId })).result;
          return r?.["status"] === "failed" ? r : undefined;
        },
        { what: "the abandoned task failed", timeoutMs: 30_000 },
      );
      expect(failed["error"]).toMatchObject({ code: -32603 });
      expect(failed).not.toHaveProperty("result");
    } finally {
      a.kill("SIGKILL");
      await b?.close();
      await edge.close();
    }
  });
});
