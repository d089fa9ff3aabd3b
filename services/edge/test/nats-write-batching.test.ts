// The bus connection coalesces NATS socket writes per event-loop iteration (packages/bus
// write-batching.ts): the socket stays corked until the iteration's check phase, then
// everything goes out, in order.
import type { Socket } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { eventually, freePort, natsTest as it, startLocalNats } from "@mcpq/testkit";
import { connectBus, type Bus } from "@mcpq/bus";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

const socketOf = (nc: NatsConnection) =>
  (nc as unknown as { protocol: { transport: { socket: Socket } } }).protocol.transport.socket;
const nextIteration = () => new Promise((r) => setImmediate(r));

describe("NATS write batching", () => {
  it("publishes from separate callbacks of one iteration leave together, in order, after it", async ({
    nats,
  }) => {
    const bus: Bus = await connectBus({ url: nats.url, name: "batching", provision: false });
    open.push(bus);
    const reader = await connect({ servers: nats.url });
    open.push(reader);
    const got: string[] = [];
    const all = new Promise<void>((resolve) => {
      reader.subscribe("batch.test", {
        callback: (_e, m) => {
          got.push(m.string());
          if (got.length === 300) resolve();
        },
      });
    });
    await reader.flush();

    const sock = socketOf(bus.nc);
    const corkedDuring: number[] = [];
    // 300 publishes from 100 timer callbacks that fire in the same iteration, 3 each
    await new Promise<void>((resolve) => {
      let fired = 0;
      for (let t = 0; t < 100; t++) {
        setTimeout(() => {
          for (let i = 0; i < 3; i++) bus.nc.publish("batch.test", `${t * 3 + i}`);
          queueMicrotask(() => corkedDuring.push(sock.writableCorked));
          if (++fired === 100) resolve();
        }, 0);
      }
    });
    // nats.js flushed into the corked socket at each callback's microtask drain
    expect(Math.min(...corkedDuring)).toBe(1);
    await nextIteration();
    expect(sock.writableCorked).toBe(0);
    await all;
    expect(got).toEqual(Array.from({ length: 300 }, (_, i) => String(i)));
  });

  it("batchWrites: false leaves nats.js's own flushing alone (MCPQ_NATS_WRITE_BATCHING=off)", async ({
    nats,
  }) => {
    const bus = await connectBus({
      url: nats.url,
      name: "plain",
      provision: false,
      batchWrites: false,
    });
    open.push(bus);
    const sock = socketOf(bus.nc);
    const corked = await new Promise<number>((resolve) =>
      setTimeout(() => {
        bus.nc.publish("batch.plain", "x");
        queueMicrotask(() => resolve(sock.writableCorked));
      }, 0),
    );
    expect(corked).toBe(0);
    await bus.nc.flush();
  });

  it("after the broker restarts, the new connection's writes are batched too", async () => {
    const port = await freePort();
    const storeDir = await mkdtemp(join(tmpdir(), "mcpq-batch-"));
    let server = await startLocalNats({ port, storeDir });
    try {
      const bus = await connectBus({
        url: `nats://127.0.0.1:${port}`,
        name: "restart",
        provision: false,
      });
      open.push(bus);
      const first = socketOf(bus.nc);
      await server.stop();
      server = await startLocalNats({ port, storeDir });
      await eventually(() => socketOf(bus.nc) !== first && !socketOf(bus.nc).destroyed, {
        what: "reconnected on a new socket",
      });
      await bus.nc.flush();
      const corked = await new Promise<number>((resolve) =>
        setTimeout(() => {
          bus.nc.publish("batch.after", "x");
          queueMicrotask(() => resolve(socketOf(bus.nc).writableCorked));
        }, 0),
      );
      expect(corked).toBe(1);
      await bus.nc.flush(); // the PING/PONG round trip goes through the batched socket
    } finally {
      for (const c of open.splice(0)) await c.close();
      await server.stop();
      await rm(storeDir, { recursive: true, force: true });
    }
  });
});
