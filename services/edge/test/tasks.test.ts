import { afterAll, describe, expect } from "vitest";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { connectBus, distinctKeys, type Bus } from "@mcpq/bus";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { defineCatalog, defineTool, z } from "@mcpq/worker-sdk";
import { sdkClient, stack } from "./support/stack.js";
import { startCatalogWorker } from "./support/features-worker.js";
import { modernMeta, modernPost, type ModernAnswer } from "./support/modern-post.js";

/** What the task handlers saw, in this process (the workers run in-process). */
const started = new Set<string>();
const aborted = new Set<string>();
const releases = new Map<string, () => void>();

const tasksCatalog = defineCatalog({
  name: "tasks-test",
  tools: [
    defineTool({
      name: "long_job",
      description: "A task that runs until the test releases `marker` (or it is cancelled)",
      input: z.object({ marker: z.string() }),
      task: { support: "optional", pollIntervalMs: 100 },
      handler: ({ marker }, ctx) =>
        new Promise<string>((resolve, reject) => {
          started.add(marker);
          releases.set(marker, () => resolve(`done ${marker}`));
          ctx.signal.addEventListener(
            "abort",
            () => {
              aborted.add(marker);
              reject(ctx.signal.reason as Error);
            },
            { once: true },
          );
        }),
    }),
    defineTool({
      name: "ask_job",
      description: "A task that asks the user to confirm, then reports the answer",
      input: z.object({}),
      task: { support: "optional" },
      handler: async (_a, ctx) => {
        const r = await ctx.elicit({
          message: "Go on?",
          requestedSchema: { type: "object", properties: { ok: { type: "boolean" } } },
        });
        return `answered ${JSON.stringify(r["content"])}`;
      },
    }),
    defineTool({
      name: "required_job",
      description: "A task-only tool",
      input: z.object({}),
      task: { support: "required" },
      handler: () => "ran",
    }),
  ],
});

const A = "tok-alice";
const B = "tok-bob";

async function task(url: string, taskId: string, token = A): Promise<ModernAnswer> {
  return modernPost(url, "tasks/get", { taskId }, { token });
}

/** Polls tasks/get (any edge) until the task reaches `status`. */
function until(url: string, taskId: string, status: string): Promise<Record<string, unknown>> {
  return eventually(
    async () => {
      const r = (await task(url, taskId)).result;
      return r?.["status"] === status ? r : undefined;
    },
    { what: `task ${taskId} ${status}` },
  );
}

describe("tasks extension (io.modelcontextprotocol/tasks) through the broker", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  let worker: Awaited<ReturnType<typeof startCatalogWorker>> | undefined;
  let bus: Bus | undefined;
  let ready: Promise<Stack<RunningEdge, RunningWorker>> | undefined;
  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, {
        edges: 3,
        workers: [],
        edgeEnv: { MCPQ_AUTH_TOKENS: `${A}=alice,${B}=bob` },
      });
      worker = await startCatalogWorker(nats.url, [tasksCatalog], "tasks");
      bus = await connectBus({ url: nats.url, name: "tasks-test-reader" });
      for (const e of s.edges)
        await eventually(() => e.runtime.catalog.toolPool("long_job"), {
          what: "the tasks catalog on every edge",
        });
      return s;
    })());
  const url = async (nats: NatsHandle, i: number) => (await setup(nats)).edges[i]!.url;

  afterAll(async () => {
    for (const release of releases.values()) release();
    await worker?.close();
    await bus?.close();
    await s?.close();
  });

  it("advertises the extension; a long-running tool answers a task, tasks/get polls it to its inlined result", async ({
    nats,
  }) => {
    const u = await url(nats, 0);
    const discover = await modernPost(u, "server/discover", {}, { token: A });
    expect(discover.result!["capabilities"]).toMatchObject({
      extensions: { "io.modelcontextprotocol/tasks": {} },
    });
    const list = await modernPost(u, "tools/list", {}, { token: A });
    const tools = list.result!["tools"] as { name: string; execution?: unknown }[];
    expect(tools.find((t) => t.name === "long_job")?.execution).toEqual({
      taskSupport: "optional",
    });

    const created = await modernPost(
      u,
      "tools/call",
      { name: "long_job", arguments: { marker: "poll" } },
      { token: A },
    );
    const r = created.result!;
    expect(r).toMatchObject({ resultType: "task", status: "working", ttlMs: expect.any(Number) });
    expect(r["taskId"]).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(r).not.toHaveProperty("result");
    expect(new Date(r["createdAt"] as string).toISOString()).toBe(r["createdAt"]);
    const taskId = r["taskId"] as string;

    // Stored before the answer: readable at once, on another edge.
    const working = await task(await url(nats, 1), taskId);
    expect(working.result).toMatchObject({ resultType: "complete", taskId, status: "working" });
    expect(working.result).not.toHaveProperty("result");

    await eventually(() => releases.has("poll"), { what: "the handler started" });
    releases.get("poll")!();
    const done = await until(await url(nats, 2), taskId, "completed");
    expect(done["result"]).toMatchObject({ content: [{ type: "text", text: "done poll" }] });
    expect(done["result"]).not.toHaveProperty("resultType");
  });

  it("tasks/cancel on another edge reaches the worker running it: its handler is aborted; the task stays cancelled", async ({
    nats,
  }) => {
    const created = await modernPost(
      await url(nats, 0),
      "tools/call",
      { name: "long_job", arguments: { marker: "cancel-me" } },
      { token: A },
    );
    const taskId = created.result!["taskId"] as string;
    await eventually(() => started.has("cancel-me"), { what: "the handler started" });
    const ack = await modernPost(await url(nats, 1), "tasks/cancel", { taskId }, { token: A });
    expect(ack.result).toMatchObject({ resultType: "complete" });
    expect(ack.result).not.toHaveProperty("status");
    await eventually(() => aborted.has("cancel-me"), { what: "the handler saw the abort" });
    expect((await task(await url(nats, 2), taskId)).result).toMatchObject({ status: "cancelled" });
    // Terminal: a second cancel is the same empty ack and changes nothing.
    const again = await modernPost(await url(nats, 0), "tasks/cancel", { taskId }, { token: A });
    expect(again.result).toMatchObject({ resultType: "complete" });
    expect((await task(await url(nats, 0), taskId)).result).toMatchObject({ status: "cancelled" });
  });

  it("input_required: the question is on tasks/get, the answer via tasks/update on any edge resumes the task", async ({
    nats,
  }) => {
    const meta = modernMeta({ capabilities: { elicitation: {} } });
    const created = await modernPost(
      await url(nats, 0),
      "tools/call",
      { name: "ask_job", arguments: {} },
      { token: A, meta },
    );
    const taskId = created.result!["taskId"] as string;
    const waiting = await until(await url(nats, 1), taskId, "input_required");
    const keys = Object.keys(waiting["inputRequests"] as object);
    expect(keys).toHaveLength(1);
    expect(
      (waiting["inputRequests"] as Record<string, { method: string }>)[keys[0]!],
    ).toMatchObject({ method: "elicitation/create" });
    const ack = await modernPost(
      await url(nats, 2),
      "tasks/update",
      { taskId, inputResponses: { [keys[0]!]: { action: "accept", content: { ok: true } } } },
      { token: A },
    );
    expect(ack.result).toMatchObject({ resultType: "complete" });
    const done = await until(await url(nats, 0), taskId, "completed");
    expect(done["result"]).toMatchObject({ content: [{ text: 'answered {"ok":true}' }] });
  });

  it("another principal gets not-found for tasks/get, tasks/update and tasks/cancel; the owner still sees the task", async ({
    nats,
  }) => {
    const u = await url(nats, 0);
    const created = await modernPost(
      u,
      "tools/call",
      { name: "long_job", arguments: { marker: "private" } },
      { token: A },
    );
    const taskId = created.result!["taskId"] as string;
    for (const [method, params] of [
      ["tasks/get", { taskId }],
      ["tasks/update", { taskId, inputResponses: {} }],
      ["tasks/cancel", { taskId }],
    ] as const) {
      const r = await modernPost(await url(nats, 1), method, params, { token: B });
      expect(r.error, method).toMatchObject({ code: -32602, message: "Task not found" });
    }
    expect((await task(u, taskId)).result).toMatchObject({ status: "working" });
    await eventually(() => releases.has("private"), { what: "the handler started" });
    releases.get("private")!();
    await until(u, taskId, "completed");
  });

  it("survives the edge that created it: stopped, the task's status and result come from another edge", async ({
    nats,
  }) => {
    const st = await setup(nats);
    const created = await modernPost(
      st.edges[2]!.url,
      "tools/call",
      { name: "long_job", arguments: { marker: "edge-gone" } },
      { token: A },
    );
    const taskId = created.result!["taskId"] as string;
    await eventually(() => releases.has("edge-gone"), { what: "the handler started" });
    await st.edges[2]!.close();
    expect((await task(st.edges[0]!.url, taskId)).result).toMatchObject({ status: "working" });
    releases.get("edge-gone")!();
    const done = await until(st.edges[1]!.url, taskId, "completed");
    expect(done["result"]).toMatchObject({ content: [{ text: "done edge-gone" }] });
    // The task lives in the broker only: the record is there, in mcpq_tasks.
    const keys: string[] = [];
    for await (const k of distinctKeys(bus!.kv.tasks, `t.${taskId}`)) keys.push(k);
    expect(keys).toEqual([`t.${taskId}`]);
  });

  it("without the extension: tasks/* are -32021, an optional task tool answers synchronously, a required one is -32021", async ({
    nats,
  }) => {
    const u = await url(nats, 0);
    const plain = modernMeta({ tasks: false });
    const get = await modernPost(u, "tasks/get", { taskId: "x" }, { token: A, meta: plain });
    expect(get.error).toMatchObject({
      code: -32021,
      data: { requiredCapabilities: { extensions: { "io.modelcontextprotocol/tasks": {} } } },
    });
    const required = await modernPost(
      u,
      "tools/call",
      { name: "required_job", arguments: {} },
      { token: A, meta: plain },
    );
    expect(required.error).toMatchObject({
      code: -32021,
      data: { requiredCapabilities: { extensions: { "io.modelcontextprotocol/tasks": {} } } },
    });
    const sync = modernPost(
      u,
      "tools/call",
      { name: "long_job", arguments: { marker: "sync" } },
      { token: A, meta: plain },
    );
    await eventually(() => releases.has("sync"), { what: "the handler started" });
    releases.get("sync")!();
    expect((await sync).result).toMatchObject({
      resultType: "complete",
      content: [{ text: "done sync" }],
    });
    expect((await sync).result).not.toHaveProperty("taskId");
  });

  it("2025-11-25 sessions (official SDK 1.32.2, experimental tasks): a task-augmented call polls to its result; tasks/cancel aborts the worker", async ({
    nats,
  }) => {
    const u = await url(nats, 1);
    const { client } = await sdkClient(u, { headers: { authorization: `Bearer ${A}` } });
    try {
      expect(client.getServerCapabilities()?.["tasks"]).toMatchObject({
        requests: { tools: { call: {} } },
      });
      const seen: string[] = [];
      let result: unknown;
      const stream = client.experimental.tasks.callToolStream(
        { name: "long_job", arguments: { marker: "legacy" } },
        undefined,
        { task: { ttl: 60_000 } },
      );
      for await (const m of stream) {
        seen.push(m.type);
        if (m.type === "taskCreated") {
          expect(m.task).toMatchObject({ status: "working", ttl: 60_000 });
          await eventually(() => releases.has("legacy"), { what: "the handler started" });
          releases.get("legacy")!();
        }
        if (m.type === "result") result = m.result;
        if (m.type === "error") throw m.error;
      }
      expect(seen[0]).toBe("taskCreated");
      expect(result).toMatchObject({
        content: [{ type: "text", text: "done legacy" }],
        _meta: { "io.modelcontextprotocol/related-task": { taskId: expect.any(String) } },
      });

      // tasks/result on a running task waits for its end (watched in the broker).
      const waiting = client.experimental.tasks.callToolStream(
        { name: "long_job", arguments: { marker: "legacy-wait" } },
        undefined,
        { task: { ttl: 60_000 } },
      );
      const head = await waiting.next();
      const waitedId = (head.value as { task: { taskId: string } }).task.taskId;
      const pending = client.experimental.tasks.getTaskResult(waitedId, CallToolResultSchema);
      await eventually(() => releases.has("legacy-wait"), { what: "the handler started" });
      releases.get("legacy-wait")!();
      expect(await pending).toMatchObject({ content: [{ text: "done legacy-wait" }] });
      await waiting.return(undefined);

      // Cancel: the SDK's tasks/cancel answers the cancelled task; the worker's handler aborts.
      const created = client.experimental.tasks.callToolStream(
        { name: "long_job", arguments: { marker: "legacy-cancel" } },
        undefined,
        { task: { ttl: 60_000 } },
      );
      const first = await created.next();
      const task = (first.value as { task: { taskId: string } }).task;
      await eventually(() => started.has("legacy-cancel"), { what: "the handler started" });
      const cancelled = await client.experimental.tasks.cancelTask(task.taskId);
      expect(cancelled).toMatchObject({ taskId: task.taskId, status: "cancelled" });
      await eventually(() => aborted.has("legacy-cancel"), { what: "the handler saw the abort" });
      // Read from another edge too (the session is in the broker; so is the task).
      const other = await sdkClient(await url(nats, 0), {
        headers: { authorization: `Bearer ${B}` },
      });
      await expect(other.client.experimental.tasks.getTask(task.taskId)).rejects.toMatchObject({
        code: -32602,
      });
      await other.client.close();
      await created.return(undefined);
    } finally {
      await client.close();
    }
  });

  it("tasks/result and tasks/list do not exist (-32601); an unknown task id is -32602", async ({
    nats,
  }) => {
    const u = await url(nats, 0);
    for (const method of ["tasks/result", "tasks/list"]) {
      const r = await modernPost(u, method, { taskId: "x" }, { token: A });
      expect(r.error, method).toMatchObject({ code: -32601 });
    }
    const unknown = await task(u, "no-such-task-0123456789");
    expect(unknown.error).toMatchObject({ code: -32602 });
  });
});
