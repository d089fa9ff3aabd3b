// MCPQ_REPLICAS reaches the broker through the edge's and the worker's env.ts: on a 3-node
// JetStream cluster (real nats-server processes), a call goes through the stack and every
// stream, bucket and the pool consumer mcpq created holds three copies, MCPQ_REQ/MCPQ_OUT on file.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StorageType } from "@nats-io/jetstream";
import { BUCKETS, STREAMS, connectBus, poolConsumer, type Bus } from "@mcpq/bus";
import { eventually, startLocalCluster, type LocalCluster } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, sdkClient } from "./support/stack.js";

let cluster: LocalCluster;
const open: { close(): Promise<unknown> }[] = [];
beforeAll(async () => {
  cluster = await startLocalCluster({ nodes: 3 });
});
afterAll(async () => {
  for (const c of open.splice(0).reverse()) await c.close().catch(() => undefined);
  await cluster?.stop();
});

describe("MCPQ_REPLICAS=3 on a 3-node cluster", () => {
  it("serves a call, and every stream, bucket and the pool consumer has three replicas", async () => {
    const env = { MCPQ_REPLICAS: "3" };
    const edge: RunningEdge = await factories.startEdge(cluster.url, env);
    open.push(edge);
    const worker: RunningWorker = await factories.startWorker(cluster.url, ["example"], {
      ...env,
      MCPQ_POOL: "main",
    });
    open.push(worker);
    const { client } = await sdkClient(edge.url);
    open.push(client);
    await eventually(async () => (await client.listTools()).tools.some((t) => t.name === "echo"), {
      what: "echo listed",
    });
    expect(await client.callTool({ name: "echo", arguments: { text: "replicated" } })).toEqual({
      content: [{ type: "text", text: "replicated" }],
    });

    const bus: Bus = await connectBus({ url: cluster.url, name: "observer", provision: false });
    open.push(bus);
    expect(bus.clustered).toBe(true);
    for (const name of [
      STREAMS.requests,
      STREAMS.outbound,
      STREAMS.records,
      ...Object.values(BUCKETS).map((b) => `KV_${b}`),
    ]) {
      expect((await bus.jsm.streams.info(name)).config.num_replicas, name).toBe(3);
    }
    for (const name of [STREAMS.requests, STREAMS.outbound])
      expect((await bus.jsm.streams.info(name)).config.storage, name).toBe(StorageType.File);
    await eventually(
      async () =>
        (
          (await bus.jsm.consumers.info(STREAMS.requests, poolConsumer("main"))).cluster
            ?.replicas ?? []
        ).length === 2,
      {
        what: "pool consumer on three nodes",
      },
    );
  });
});
