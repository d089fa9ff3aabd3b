import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect } from "vitest";
import { natsTest as it, eventually, freePort } from "@mcpq/testkit";
import { connectBus, distinctKeys, type Bus } from "@mcpq/bus";
import { collectRecords } from "@mcpq/replay";
import { sdkClient } from "./support/replay-stack.js";
import { stopChildren } from "./support/children.js";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));

/** A long-running `mcpq …` child whose stderr is kept for assertions. */
interface CliProcess {
  child: ChildProcess;
  stderr(): string;
}

// README, "Running pieces by hand": `make dev` (= `mcpq dev`), then `mcpq worker --catalog example`
// "a worker serving a named catalog" — started for capacity, it must receive calls for the
// tools dev's worker already serves.
describe("capacity by adding workers, as the README shows", () => {
  const procs: CliProcess[] = [];
  let bus: Bus | undefined;

  const startCli = (args: string[], env: Record<string, string>): CliProcess => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const p = { child, stderr: () => stderr };
    procs.push(p);
    return p;
  };

  afterAll(async () => {
    await bus?.close();
    await stopChildren(procs.map((p) => p.child));
  });

  const registryPools = async (b: Bus): Promise<string[]> => {
    const pools: string[] = [];
    for await (const k of distinctKeys(b.kv.registry)) pools.push(k.slice(0, k.indexOf(".")));
    return pools.sort();
  };

  it("mcpq dev runs one worker per catalog; mcpq worker --catalog example joins pool example and both workers answer echo", async ({
    nats,
  }) => {
    const port = await freePort();
    // Random TCP/gRPC ports: the derived ones (port+10, port+41971) may be taken on a shared host.
    const env = {
      MCPQ_NATS_URL: nats.url,
      MCPQ_TCP_PORT: "0",
      MCPQ_GRPC_PORT: "0",
      MCPQ_LOG_LEVEL: "warn",
    };
    const dev = startCli(["dev", "--port", String(port), "--catalog", "example,conformance"], env);
    bus = await connectBus({ url: nats.url, name: "pools-test", provision: false });
    const b = bus;
    await eventually(async () => (await registryPools(b)).join() === "conformance,example", {
      timeoutMs: 50_000,
      what: "dev's workers in pools conformance and example",
    });
    await eventually(
      async () =>
        (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
      { timeoutMs: 50_000, what: "dev's edge ready" },
    );

    const extra = startCli(["worker", "--catalog", "example"], env);
    await eventually(
      async () => (await registryPools(b)).join() === "conformance,example,example",
      { timeoutMs: 50_000, what: "the second worker in pool example" },
    );

    const { client } = await sdkClient(`http://127.0.0.1:${port}/mcp`);
    try {
      // Batches of concurrent calls until each of the two example workers has answered one: a
      // worker outside the pool would never get one, and the test would fail at its timeout.
      const workers = await eventually(
        async () => {
          const calls = Array.from({ length: 16 }, (_, i) =>
            client.callTool({ name: "echo", arguments: { text: `call ${i}` } }),
          );
          for (const r of await Promise.all(calls)) expect(r.isError).not.toBe(true);
          const recs = await collectRecords(
            b,
            { pool: "example", name: "echo" },
            { idleMs: 2_000 },
          );
          const ids = new Set(recs.map((r) => r.workerId));
          return ids.size >= 2 ? ids : undefined;
        },
        {
          timeoutMs: 50_000,
          intervalMs: 50,
          what: "echo answered by both workers of pool example",
        },
      );
      expect(workers.size).toBe(2);
    } finally {
      await client.close();
    }
    expect(extra.stderr()).not.toMatch(/WARNING/);
    expect(dev.stderr()).toMatch(/workers in pools example, conformance/);
  });

  it("a worker whose pool shares tools with another pool warns and names the pool that adds capacity", async ({
    nats,
  }) => {
    const odd = startCli(["worker", "--catalog", "example,conformance"], {
      MCPQ_NATS_URL: nats.url,
      MCPQ_LOG_LEVEL: "warn",
    });
    const text = await eventually(
      () =>
        /WARNING[\s\S]*--pool conformance[\s\S]*\n/.test(odd.stderr()) ? odd.stderr() : undefined,
      { timeoutMs: 50_000, what: "the overlap warning" },
    );
    expect(text).toMatch(/pool conformance_example shares targets with other pools/);
    expect(text).toMatch(/tool echo.*also served by pool example; .*--pool example/);
  });
});
