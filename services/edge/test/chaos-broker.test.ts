import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUCKETS, STREAMS, connectBus, poolConsumer, type HealReport } from "@mcpq/bus";
import { eventually, startLocalNats, type LocalNats } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, sdkClient } from "./support/stack.js";
import { postInitialize, rawInitialize } from "./support/raw-init.js";
import { RpcClient, wsWire } from "./support/socket-client.js";

/**
 * Broker faults on a single node with memory streams (the default MCPQ_REQ/MCPQ_OUT storage):
 * a kill -9 and restart on the same port and store loses MCPQ_REQ, MCPQ_OUT and the registry.
 * While the broker is down every transport answers at once with the retryable -32010; once it
 * is back, the edge and the worker re-provision what was lost themselves and the same client
 * sessions go on, without restarting any process. Deleting streams, a consumer or the registry
 * bucket under a running system heals the same way.
 */
describe("self-healing after broker faults (single node)", () => {
  let nats: LocalNats;
  let edge: RunningEdge;
  let worker: RunningWorker;
  const heals: HealReport[] = [];
  const ENV = { MCPQ_HEAL_CHECK_MS: "500" };

  beforeAll(async () => {
    nats = await startLocalNats();
    worker = await factories.startWorker(nats.url, ["example"], ENV);
    edge = await factories.startEdge(nats.url, ENV);
    edge.runtime.healing.heal.on("healed", (r) => heals.push(r));
    worker.worker.heal?.on("healed", (r) => heals.push(r));
    await eventually(() => edge.runtime.catalog.workerCount === 1, { what: "worker registered" });
  });
  afterAll(async () => {
    await edge?.close();
    await worker?.close();
    await nats?.stop();
  });

  const echo = (client: Awaited<ReturnType<typeof sdkClient>>["client"], text: string) =>
    client.callTool({ name: "echo", arguments: { text } });

  it("kill -9 and restart: every transport refuses with -32010 while it is down, then the same sessions work again", async () => {
    const { client } = await sdkClient(edge.url);
    expect((await echo(client, "before")).content).toEqual([{ type: "text", text: "before" }]);
    const raw = await rawInitialize(edge.url, { protocolVersion: "2025-11-25" });
    const ws = new RpcClient(await wsWire(edge.wsUrl!));
    await ws.initialize();
    expect(
      await ws.request("tools/call", { name: "echo", arguments: { text: "ws before" } }),
    ).toMatchObject({ content: [{ text: "ws before" }] });

    await nats.kill("SIGKILL");
    await eventually(() => !edge.runtime.healing.health.up, { what: "edge sees the broker down" });

    // A new session: initialize is refused with the documented retryable 503, not a 500.
    const init = await postInitialize(edge.url, { protocolVersion: "2025-11-25", id: 1 });
    expect(init.status).toBe(503);
    expect(Number(init.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await init.json()).toMatchObject({
      id: 1,
      error: { code: -32010, data: { reason: "broker unavailable" } },
    });

    // A call on a live session, over HTTP.
    const call = await fetch(edge.url, {
      method: "POST",
      headers: raw.headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 2,
        method: "tools/call",
        params: { name: "echo", arguments: { text: "x" } },
      }),
    });
    expect(call.status).toBe(503);
    expect(call.headers.get("retry-after")).not.toBeNull();
    expect(await call.json()).toMatchObject({ id: 2, error: { code: -32010 } });

    // A session this edge has not cached must be looked up in the broker: refused, not a 500 or 404.
    const unknown = await fetch(edge.url, {
      method: "POST",
      headers: { ...raw.headers, "mcp-session-id": "A".repeat(43) },
      body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "ping" }),
    });
    expect(unknown.status).toBe(503);
    expect(await unknown.json()).toMatchObject({ id: 3, error: { code: -32010 } });

    // WebSocket: the same refusal as a JSON-RPC error on the socket.
    const wsCall = await ws.call("tools/call", { name: "echo", arguments: { text: "ws during" } });
    expect(wsCall.error).toMatchObject({ code: -32010, data: { reason: "broker unavailable" } });
    const ws2 = new RpcClient(await wsWire(edge.wsUrl!));
    const wsInit = await ws2.call("initialize", {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "t", version: "1" },
    });
    expect(wsInit.error).toMatchObject({ code: -32010 });

    // The SDK client sees an explicit refusal too (HTTP 503), never a hang.
    await expect(echo(client, "during")).rejects.toThrow(/503|-32010|unavailable/i);

    await nats.restart(); // same port and store
    // Same client, same session: calls succeed again once edge and worker have healed.
    await eventually(async () => (await echo(client, "after")).isError !== true, {
      what: "calls succeed after the restart",
      timeoutMs: 60_000,
    });
    expect((await echo(client, "after 2")).content).toEqual([{ type: "text", text: "after 2" }]);
    expect(
      await ws.request("tools/call", { name: "echo", arguments: { text: "ws after" } }),
    ).toMatchObject({ content: [{ text: "ws after" }] });
    const lost = heals.flatMap((h) => [...h.missing, ...h.recreated]);
    expect(lost).toEqual(
      expect.arrayContaining([STREAMS.requests, STREAMS.outbound, `KV_${BUCKETS.registry}`]),
    );
    // The worker re-registered without a restart; /readyz checks the broker's streams and consumers.
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${edge.port}/readyz`)).status === 200,
      { what: "ready again" },
    );
    const ready = (await (await fetch(`http://127.0.0.1:${edge.port}/readyz`)).json()) as {
      checks: Record<string, unknown>;
    };
    expect(ready.checks).toMatchObject({ nats: true, streams: true, consumers: true, workers: 1 });
    expect((await client.listTools()).tools.map((t) => t.name)).toContain("echo");
    ws.wire.close();
    ws2.wire.close();
    await client.close();
  });

  it("a pool consumer, a stream and the registry bucket deleted while serving are re-created and calls go on", async () => {
    const { client } = await sdkClient(edge.url);
    expect((await echo(client, "a")).content).toEqual([{ type: "text", text: "a" }]);
    const admin = await connectBus({ url: nats.url, name: "chaos-admin", provision: false });
    try {
      heals.length = 0;
      await admin.jsm.consumers.delete(STREAMS.requests, poolConsumer(worker.worker.pool));
      await eventually(async () => (await echo(client, "b")).isError !== true, {
        what: "calls after the consumer was deleted",
        timeoutMs: 60_000,
      });
      expect(heals.flatMap((h) => h.missing)).toContain(
        `${STREAMS.requests}/${poolConsumer(worker.worker.pool)}`,
      );

      heals.length = 0;
      await admin.jsm.streams.delete(STREAMS.requests);
      await admin.jsm.streams.delete(`KV_${BUCKETS.registry}`);
      await eventually(
        () => heals.some((h) => [...h.missing, ...h.recreated].includes(`KV_${BUCKETS.registry}`)),
        { what: "registry loss noticed" },
      );
      await eventually(
        async () =>
          (await admin.jsm.consumers.info(STREAMS.requests, poolConsumer(worker.worker.pool))) !==
          undefined,
        { what: "consumer re-created", timeoutMs: 60_000 },
      );
      await eventually(async () => (await echo(client, "c")).isError !== true, {
        what: "calls after the stream was deleted",
        timeoutMs: 60_000,
      });
      // The worker re-registered in the new bucket and the edge's registry watch follows it.
      await eventually(async () => (await admin.kv.registry.status()).values >= 1, {
        what: "worker re-registered",
      });
      await eventually(() => edge.runtime.catalog.workerCount === 1, {
        what: "edge sees the worker again",
      });
      expect((await echo(client, "d")).content).toEqual([{ type: "text", text: "d" }]);
    } finally {
      await admin.close();
      await client.close();
    }
  });
});
