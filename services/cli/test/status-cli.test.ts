import { afterAll, describe, expect, it as plainIt } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { natsTest as it, eventually, startNats } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { runCli, sdkClient, startTestEdge, startTestWorker } from "./support/replay-stack.js";

/** `mcpq status` (the built CLI, as an operator runs it) against a real broker, edge and workers. */
describe("mcpq status: pools, live workers, queue and edge rates from the broker and /metrics", () => {
  let edge: RunningEdge;
  const workers: RunningWorker[] = [];
  afterAll(async () => {
    await edge?.close();
    await Promise.allSettled(workers.map((w) => w.close()));
  });

  it("shows each pool with its live worker count, and the edge's traffic and refusals", async ({
    nats,
  }) => {
    workers.push(await startTestWorker(nats.url, "example"));
    workers.push(await startTestWorker(nats.url, "example"));
    workers.push(await startTestWorker(nats.url, "conformance", { MCPQ_CATALOGS: "conformance" }));
    edge = await startTestEdge(nats.url);
    await eventually(() => edge.runtime.catalog.workerCount === 3, {
      what: "three workers in the registry",
    });
    const { client } = await sdkClient(edge.url);
    await client.callTool({ name: "echo", arguments: { text: "x" } });
    await expect(client.callTool({ name: "nope", arguments: {} })).rejects.toMatchObject({
      code: -32602,
    });

    const json = await runCli(["status", "--edge", edge.url, "--json", "--interval", "0.2"], {
      MCPQ_NATS_URL: nats.url,
    });
    expect(json.stderr).toBe("");
    expect(json.code).toBe(0);
    const snap = JSON.parse(json.stdout) as {
      pools: { pool: string; workers: number; tools: number; circuit: string }[];
      edges: { reachable: boolean; brokerConnected: boolean }[];
    };
    expect(snap.pools.find((p) => p.pool === "example")).toMatchObject({
      workers: 2,
      tools: 4,
      circuit: "closed",
    });
    expect(snap.pools.find((p) => p.pool === "conformance")).toMatchObject({ workers: 1 });
    expect(snap.edges).toEqual([
      expect.objectContaining({ reachable: true, brokerConnected: true }),
    ]);

    // The table, with traffic flowing while it samples.
    const load = (async () => {
      for (let i = 0; i < 40; i++)
        await client.callTool({ name: "echo", arguments: { text: String(i) } });
    })();
    const table = await runCli(["status", "--edge", edge.url, "--interval", "1"], {
      MCPQ_NATS_URL: nats.url,
    });
    await load;
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/POOLS \(2 pools, 3 live workers\)/);
    expect(table.stdout).toMatch(/^\s+example\s+2\s+0\s+4\s+\d+\s+\d+\s+\d+\s+closed$/m);
    expect(table.stdout).toMatch(/^\s+conformance\s+1\s/m);
    expect(table.stdout).toMatch(/EDGES \(1\/1 reachable\)/);
    expect(table.stdout).toContain(edge.url);
    await client.close();
  });

  it("an unreachable edge is shown as such; an unreachable broker exits 4", async ({ nats }) => {
    const r = await runCli(["status", "--edge", "http://127.0.0.1:1/mcp", "--interval", "0.1"], {
      MCPQ_NATS_URL: nats.url,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/http:\/\/127\.0\.0\.1:1\/mcp\s+unreachable/);
    const down = await runCli(["status", "--interval", "0.1"], {
      MCPQ_NATS_URL: "nats://127.0.0.1:1",
    });
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/cannot reach the broker/);
  });
});

describe("mcpq status on a broker nothing has provisioned yet", () => {
  plainIt(
    "prints a snapshot with no pools and says MCPQ_REQ is not provisioned yet (exit 0), creating nothing",
    async () => {
      // Its own server: this file's shared one is provisioned by the edges and workers above.
      const nats = await startNats();
      try {
        const env = { MCPQ_NATS_URL: nats.url };
        const args = ["status", "--edge", "http://127.0.0.1:1/mcp", "--interval", "0.1"];
        const table = await runCli(args, env);
        expect(table.stderr).toBe("");
        expect(table.code).toBe(0);
        expect(table.stdout).toMatch(/POOLS \(0 pools, 0 live workers\)/);
        expect(table.stdout).toContain(
          "QUEUE  MCPQ_REQ not provisioned yet (no edge or worker has connected to this broker)",
        );
        expect(table.stdout).toMatch(/EDGES \(0\/1 reachable\)/);

        const json = await runCli([...args, "--json"], env);
        expect(json.stderr).toBe("");
        expect(json.code).toBe(0);
        expect(JSON.parse(json.stdout)).toMatchObject({ broker: nats.url, queue: null, pools: [] });

        // Looking is read-only: the broker still has no stream.
        const nc = await connect({ servers: nats.url });
        try {
          const names: string[] = [];
          for await (const n of (await jetstreamManager(nc)).streams.names()) names.push(n);
          expect(names).toEqual([]);
        } finally {
          await nc.close();
        }
      } finally {
        await nats.stop();
      }
    },
  );
});
