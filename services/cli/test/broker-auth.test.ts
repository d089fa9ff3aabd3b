// Least-privilege broker credentials against a real nats-server run by `mcpq nats --auth`: an
// anonymous client is refused; the worker credential cannot read sessions, publish requests or
// create streams; an edge, a worker and replay, each with its own credential, serve a call end
// to end (official SDK client -> edge -> JetStream -> worker, then `mcpq replay`), and the server
// logs no permission violation for any of them (each role needs nothing it was not given).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { loadEdgeConfig, startEdge, type RunningEdge } from "@mcpq/edge";
import { loadWorkerConfig, startWorker, type RunningWorker } from "@mcpq/worker";
import {
  BUCKETS,
  INBOX_PREFIX,
  STREAMS,
  TaskStore,
  newTaskId,
  subjects,
  taskOwner,
  type TaskRecord,
} from "@mcpq/bus";
import { eventually } from "@mcpq/testkit";
import { runCli, sdkClient } from "./support/replay-stack.js";

const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
// The loop-lag check off: these in-process edges share the test's event loop (see services/edge/test/support/stack.ts).
const QUIET = {
  MCPQ_LOG_LEVEL: "silent",
  MCPQ_REGISTRY_TTL_MS: "3000",
  MCPQ_MAX_EVENT_LOOP_LAG_MS: "0",
};

let dir: string;
let server: ChildProcess;
let log = "";
let url: string;
const roleEnv: Record<string, Record<string, string>> = {};
const open: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mcpq-auth-"));
  // --port 0: the launcher picks free ports (and retries a lost race); the URL is printed.
  server = spawn(process.execPath, [MAIN, "nats", "--auth", "--port", "0", "--store", dir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  server.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  await eventually(() => log.includes("Ctrl-C stops it") || server.exitCode !== null, {
    timeoutMs: 30_000,
    what: "mcpq nats --auth ready",
  });
  expect(server.exitCode, log).toBeNull();
  url = /JetStream \(nats-server [^)]+\) on (nats:\/\/[\d.:]+)/.exec(log)![1]!;
  for (const role of ["edge", "worker", "replay"]) {
    const text = await readFile(join(dir, "auth", `${role}.env`), "utf8");
    roleEnv[role] = Object.fromEntries(
      text
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
  }
});

afterAll(async () => {
  for (const c of open.splice(0).reverse()) await c.close().catch(() => undefined);
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGINT");
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

const violations = () => log.split("\n").filter((l) => /Violation/.test(l));

async function as(role: string, inboxPrefix: string): Promise<NatsConnection> {
  const e = roleEnv[role]!;
  const nc = await connect({
    servers: url,
    user: e["MCPQ_NATS_USER"]!,
    pass: e["MCPQ_NATS_PASSWORD"]!,
    inboxPrefix,
  });
  open.push(nc);
  return nc;
}

describe("broker credentials (mcpq nats --auth)", () => {
  it("writes one settings file per role; the worker's creates no streams", () => {
    expect(roleEnv["edge"]).toMatchObject({ MCPQ_NATS_USER: "edge" });
    expect(roleEnv["worker"]).toMatchObject({ MCPQ_NATS_USER: "worker", MCPQ_PROVISION: "off" });
    expect(roleEnv["replay"]).toMatchObject({ MCPQ_NATS_USER: "replay" });
    expect(new Set(Object.values(roleEnv).map((e) => e["MCPQ_NATS_PASSWORD"])).size).toBe(3);
    // The passwords are not in the server's output.
    for (const e of Object.values(roleEnv)) expect(log).not.toContain(e["MCPQ_NATS_PASSWORD"]);
  });

  it("refuses an anonymous client and a wrong password", async () => {
    await expect(connect({ servers: url, reconnect: false })).rejects.toThrow(
      /Authorization Violation/,
    );
    await expect(
      connect({ servers: url, reconnect: false, user: "edge", pass: "wrong" }),
    ).rejects.toThrow(/Authorization Violation/);
  });

  it("an edge, a worker and replay with their own credentials serve calls end to end, with no permission violation", async () => {
    // The edge provisions; the worker (MCPQ_PROVISION=off) only uses what exists.
    const edge: RunningEdge = await startEdge(
      loadEdgeConfig({ MCPQ_NATS_URL: url, MCPQ_PORT: "0", ...QUIET, ...roleEnv["edge"] }),
    );
    open.push(edge);
    const worker: RunningWorker = await startWorker(
      loadWorkerConfig({
        MCPQ_NATS_URL: url,
        MCPQ_CATALOGS: "example",
        MCPQ_POOL: "main",
        ...QUIET,
        ...roleEnv["worker"],
      }),
    );
    open.push(worker);

    const { client } = await sdkClient(edge.url);
    open.push(client);
    await eventually(async () => (await client.listTools()).tools.some((t) => t.name === "echo"), {
      what: "echo listed",
    });
    expect(
      await client.callTool({ name: "echo", arguments: { text: "through the broker" } }),
    ).toEqual({
      content: [{ type: "text", text: "through the broker" }],
    });
    expect(await client.callTool({ name: "add", arguments: { a: 2, b: 40 } })).toMatchObject({
      content: [{ type: "text", text: "42" }],
    });

    // Replay, with the replay credential, re-runs the recorded calls against the pool.
    const admin = await as("edge", INBOX_PREFIX.edge);
    await eventually(
      async () =>
        (await (await jetstreamManager(admin)).streams.info(STREAMS.records)).state.messages >= 2,
      { what: "2 records" },
    );
    const r = await runCli(["replay", "--since", "10m", "--against", "main", "--diff"], {
      MCPQ_NATS_URL: url,
      ...roleEnv["replay"],
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/unchanged\s+2/);
    expect(r.stdout).toContain("RESULT: SAME");

    // The rest of what an edge and a worker do on the broker: progress notifications, resources,
    // prompts, resource subscriptions (KV), cancellation (core fan-out).
    const progress: number[] = [];
    await client.callTool({ name: "countdown", arguments: { steps: 3, delayMs: 1 } }, undefined, {
      onprogress: (p) => void progress.push(p.progress),
    });
    expect(progress).toEqual([1, 2, 3]);
    expect((await client.readResource({ uri: "mcpq://example/readme" })).contents).toHaveLength(1);
    expect(
      (await client.getPrompt({ name: "greet", arguments: { name: "Ada" } })).messages.length,
    ).toBeGreaterThan(0);
    expect(await client.subscribeResource({ uri: "mcpq://example/readme" })).toEqual({});
    expect(await client.unsubscribeResource({ uri: "mcpq://example/readme" })).toEqual({});
    const ctl = new AbortController();
    const sleeping = client.callTool({ name: "sleep", arguments: { ms: 600_000 } }, undefined, {
      signal: ctl.signal,
    });
    const adminJsm = await jetstreamManager(admin);
    const held = async () =>
      (await adminJsm.consumers.info(STREAMS.requests, "pool-main")).num_ack_pending;
    await eventually(async () => (await held()) === 1, { what: "the worker holds the sleep" });
    ctl.abort("enough");
    await expect(sleeping).rejects.toThrow();
    // The cancel reached the worker: it stopped the handler and gave the request back.
    await eventually(async () => (await held()) === 0, {
      what: "the worker let go of the cancelled sleep",
    });

    expect(violations()).toEqual([]);
  });

  it("the worker credential counts and frees a principal's task slots, the edge's frees one on cancel, with no permission violation", async () => {
    const before = violations().length;
    const storeAs = async (role: string, inboxPrefix: string) => {
      const nc = await as(role, inboxPrefix);
      const kv = await new Kvm(jetstream(nc)).open(BUCKETS.tasks);
      return new TaskStore(kv, await jetstreamManager(nc), { maxPerPrincipal: 1 });
    };
    const worker = await storeAs("worker", INBOX_PREFIX.worker("main"));
    const edge = await storeAs("edge", INBOX_PREFIX.edge);
    let n = 0;
    const task = (): TaskRecord => ({
      v: 1,
      taskId: newTaskId(),
      owner: taskOwner("broker-auth-test"),
      status: "working",
      createdAt: Date.now(),
      lastUpdatedAt: Date.now(),
      ttlMs: 60_000,
      session: "broker-auth-test",
      requestId: `broker-auth-test-${++n}`,
    });
    const first = task();
    await worker.create(first);
    await expect(worker.create(task())).rejects.toMatchObject({ code: -32010 });
    // The worker's end of the task erases its slot (a purge of the bucket's stream)...
    await worker.update(first.taskId, (r) => ({ ...r, status: "completed", result: {} }));
    const second = task();
    await worker.create(second);
    // ... and so does an edge's tasks/cancel.
    await edge.update(second.taskId, (r) => ({ ...r, status: "cancelled" }));
    await worker.create(task());
    expect(violations().slice(before)).toEqual([]);
  });

  it("the worker credential cannot read sessions, publish requests, read other sessions' inboxes or create streams", async () => {
    const nc = await as("worker", INBOX_PREFIX.worker("main"));
    const js = jetstream(nc);
    const denied = /Permissions Violation/;
    await expect(
      js.publish(subjects.request("main", "tool", "echo"), "{}", { timeout: 5_000 }),
    ).rejects.toThrow(denied);
    const sessions = await new Kvm(js).open(BUCKETS.sessions);
    await expect(sessions.get("anything")).rejects.toThrow(denied);
    await expect(
      (await jetstreamManager(nc)).streams.add({ name: "ROGUE", subjects: ["rogue.>"] }),
    ).rejects.toThrow(denied);
    await expect(
      nc.request(`$JS.API.STREAM.PURGE.${STREAMS.requests}`, "", { timeout: 5_000 }),
    ).rejects.toThrow(denied);
    const refused = (subject: string) =>
      violations().some(
        (l) =>
          l.includes('Subscription Violation - User "worker"') &&
          l.includes(`Subject "${subject}"`),
      );
    nc.subscribe(`${INBOX_PREFIX.edge}.>`);
    nc.subscribe(`$KV.${BUCKETS.sessions}.>`);
    await eventually(
      () => refused(`${INBOX_PREFIX.edge}.>`) && refused(`$KV.${BUCKETS.sessions}.>`),
      { what: "subscription violations logged" },
    );
    for (const subject of [
      subjects.request("main", "tool", "echo"),
      `$JS.API.STREAM.CREATE.ROGUE`,
    ]) {
      expect(
        violations().some(
          (l) => l.includes('Publish Violation - User "worker"') && l.includes(subject),
        ),
      ).toBe(true);
    }
  });

  it("the replay credential hears only replay runs, never a live session's outbound messages", async () => {
    const nc = await as("replay", INBOX_PREFIX.replay);
    const subject = subjects.sessionOutbound("some-live-session");
    nc.subscribe(subject);
    await eventually(
      () =>
        violations().some(
          (l) => l.includes('Subscription Violation - User "replay"') && l.includes(subject),
        ),
      { what: "subscription violation logged" },
    );
  });
});
