import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect } from "vitest";
import { natsTest as it, eventually, freePort } from "@mcpq/testkit";
import { connectBus, distinctKeys, type Bus } from "@mcpq/bus";
import { collectRecords } from "@mcpq/replay";
import { sdkClient } from "./support/replay-stack.js";
import { stopChildren } from "./support/children.js";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));

/** Sum of one metric's samples (any labels) in Prometheus text, filtered by a label substring. */
function metricSum(text: string, name: string, labels = ""): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

// `mcpq edge --processes N` / `mcpq worker --processes N` (node:cluster): the processes share
// their ports, all serve traffic, and /metrics answers for all of them.
describe("mcpq edge|worker --processes 2", () => {
  const procs: ChildProcess[] = [];
  let bus: Bus | undefined;
  afterAll(async () => {
    await bus?.close();
    await stopChildren(procs);
  });
  const start = (args: string[], env: Record<string, string>) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "inherit"],
    });
    procs.push(child);
    return child;
  };

  it("two edge processes and two worker processes share their ports; calls reach both workers; /metrics sums them", async ({
    nats,
  }) => {
    const [http, tcp, grpc, workerMetrics] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const env = { MCPQ_NATS_URL: nats.url, MCPQ_LOG_LEVEL: "warn" };
    start(["worker", "--catalog", "example", "--processes", "2"], {
      ...env,
      MCPQ_WORKER_METRICS_PORT: String(workerMetrics),
    });
    start(["edge", "--port", String(http), "--processes", "2"], {
      ...env,
      MCPQ_TCP_PORT: String(tcp),
      MCPQ_GRPC_PORT: String(grpc),
    });
    bus = await connectBus({ url: nats.url, name: "cluster-test", provision: false });
    const b = bus;
    const workers = async () => {
      let n = 0;
      for await (const k of distinctKeys(b.kv.registry)) if (k.startsWith("example.")) n++;
      return n;
    };
    await eventually(async () => (await workers()) === 2, {
      timeoutMs: 50_000,
      what: "two worker processes in pool example",
    });
    const edgeMetrics = async () =>
      (await fetch(`http://127.0.0.1:${http}/metrics`).catch(() => undefined))?.text();
    // Both edge processes report (each labels its series with its own edge id).
    const edgeIds = await eventually(
      async () => {
        const text = await edgeMetrics();
        const ids = new Set(
          [...(text ?? "").matchAll(/^process_resident_memory_bytes\{edge="([^"]+)"\}/gm)].map(
            (m) => m[1],
          ),
        );
        return ids.size === 2 ? ids : undefined;
      },
      { timeoutMs: 50_000, what: "aggregated /metrics of two edge processes" },
    );
    expect(edgeIds.size).toBe(2);
    await eventually(
      async () =>
        (await fetch(`http://127.0.0.1:${http}/readyz`).catch(() => undefined))?.status === 200,
      { timeoutMs: 50_000, what: "edge ready" },
    );

    // Calls over several connections until both worker processes have answered one.
    let calls = 0;
    await eventually(
      async () => {
        const clients = await Promise.all(
          Array.from({ length: 4 }, () => sdkClient(`http://127.0.0.1:${http}/mcp`)),
        );
        try {
          await Promise.all(
            clients.flatMap(({ client }) =>
              Array.from({ length: 4 }, (_, i) =>
                client.callTool({ name: "echo", arguments: { text: `c${i}` } }),
              ),
            ),
          );
          calls += 16;
        } finally {
          await Promise.all(clients.map(({ client }) => client.close()));
        }
        const ids = new Set(
          (await collectRecords(b, { pool: "example", name: "echo" }, { idleMs: 2_000 })).map(
            (r) => r.workerId,
          ),
        );
        return ids.size === 2 ? ids : undefined;
      },
      { timeoutMs: 50_000, intervalMs: 50, what: "echo answered by both worker processes" },
    );

    // The worker's /metrics (one port, two processes) counts every call, whichever process ran it.
    const handled = await eventually(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${workerMetrics}/metrics`)).text();
        const n = metricSum(text, "mcpq_worker_requests_total", 'method="tools/call"');
        return n === calls ? n : undefined;
      },
      {
        timeoutMs: 30_000,
        what: `mcpq_worker_requests_total summed over both processes = ${calls}`,
      },
    );
    expect(handled).toBe(calls);
  });

  it("--processes names itself when malformed", async () => {
    const child = spawn(process.execPath, [CLI, "edge", "--processes", "two"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).toBe(2);
    expect(stderr).toMatch(/--processes must be an integer 1-256 or "auto", not "two"/);
  });
});
