import { afterAll, describe, expect } from "vitest";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, stack } from "./support/stack.js";
import {
  featuresCatalog,
  lateCatalog,
  observed,
  startCatalogWorker,
} from "./support/features-worker.js";
import {
  RpcClient,
  grpcWire,
  tcpWire,
  text,
  wsWire,
  type Message,
} from "./support/socket-client.js";
import { StdioPeer } from "./support/stdio-bridge.js";

const V = "2026-07-28";
const META = {
  "io.modelcontextprotocol/protocolVersion": V,
  "io.modelcontextprotocol/clientInfo": { name: "modern-streams", version: "1.0.0" },
  "io.modelcontextprotocol/clientCapabilities": {},
};
const SUB = "io.modelcontextprotocol/subscriptionId";

/** A subscriptions/listen POST whose SSE messages are collected as they arrive; `close()` ends it (the HTTP cancel). */
async function listen(
  url: string,
  notifications: Record<string, unknown>,
  id: number | string = "listen-1",
) {
  const ctl = new AbortController();
  const messages: Message[] = [];
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": V,
      "mcp-method": "subscriptions/listen",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id,
      method: "subscriptions/listen",
      params: { notifications, _meta: META },
    }),
    signal: ctl.signal,
  });
  const done = (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.startsWith("data: ") && line.length > 6)
            messages.push(JSON.parse(line.slice(6)) as Message);
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    res,
    messages,
    async close() {
      ctl.abort();
      await done;
    },
  };
}

async function call(url: string, name: string, args: Record<string, unknown>): Promise<Message> {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": V,
      "mcp-method": "tools/call",
      "mcp-name": name,
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name, arguments: args, _meta: META },
    }),
  });
  return (await res.json()) as Message;
}

/**
 * Long-lived and connection-bound uses of the stateless era: subscriptions/listen through the
 * broker (the listening edge is not the one that saw the change), and modern requests over
 * WebSocket, TCP, gRPC and the stdio bridge (per-message `_meta`, notifications/cancelled).
 */
describe("stateless era: subscriptions/listen, sockets and stdio", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  const closers: (() => Promise<unknown>)[] = [];
  let ready: Promise<Stack<RunningEdge, RunningWorker>> | undefined;
  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, { edges: 2, workers: [{ catalogs: ["example"] }] });
      const features = await startCatalogWorker(nats.url, [featuresCatalog], "features");
      closers.push(() => features.close());
      for (const e of s.edges)
        await eventually(
          () => e.runtime.catalog.toolPool("touch_resource") && e.runtime.catalog.toolPool("echo"),
          { what: "catalogs on every edge" },
        );
      return s;
    })());

  afterAll(async () => {
    await Promise.allSettled(closers.map((c) => c()));
    await s?.close();
  });

  it("HTTP: the listen stream is acknowledged first, then gets a worker's resource update and a list change seen by another edge, each tagged; closing it ends the listener", async ({
    nats,
  }) => {
    const st = await setup(nats);
    const [e0, e1] = st.edges as [RunningEdge, RunningEdge];
    const l = await listen(
      e1.url,
      {
        resourceSubscriptions: ["test://watched"],
        toolsListChanged: true,
        promptsListChanged: true,
        bogus: true,
      },
      42,
    );
    expect(l.res.headers.get("content-type")).toContain("text/event-stream");
    await eventually(() => l.messages.length >= 1, { what: "acknowledgement" });
    expect(l.messages[0]).toMatchObject({
      method: "notifications/subscriptions/acknowledged",
      params: {
        notifications: {
          resourceSubscriptions: ["test://watched"],
          toolsListChanged: true,
          promptsListChanged: true,
        },
        _meta: { [SUB]: 42 },
      },
    });
    expect(e1.runtime.core.listeners).toBe(1);

    // A tool run through edge 0 by some worker publishes the update; edge 1 holds the stream.
    expect(text(await call(e0.url, "touch_resource", { uri: "test://watched" }))).toBe(
      "touched test://watched",
    );
    expect(text(await call(e0.url, "touch_resource", { uri: "test://not-subscribed" }))).toBe(
      "touched test://not-subscribed",
    );
    await eventually(() => l.messages.some((m) => m.method === "notifications/resources/updated"), {
      what: "resource update",
    });
    const updates = l.messages.filter((m) => m.method === "notifications/resources/updated");
    expect(updates.map((m) => m.params?.["uri"])).toEqual(["test://watched"]);
    expect(updates[0]!.params!["_meta"]).toEqual({ [SUB]: 42 });

    // A worker joining changes the lists (the registry, through the broker).
    const late = await startCatalogWorker(nats.url, [lateCatalog], "late");
    closers.push(() => late.close());
    await eventually(
      () =>
        l.messages.some((m) => m.method === "notifications/tools/list_changed") &&
        l.messages.some((m) => m.method === "notifications/prompts/list_changed"),
      { what: "list changes" },
    );
    expect(l.messages.some((m) => m.method === "notifications/resources/list_changed")).toBe(false);
    for (const m of l.messages)
      expect((m.params?.["_meta"] as Record<string, unknown>)[SUB]).toBe(42);

    await l.close();
    await eventually(() => e1.runtime.core.listeners === 0, {
      what: "listener gone with its stream",
    });
  });

  it("an edge shutting down ends its listen streams gracefully: a SubscriptionsListenResult tagged with the subscription id", async ({
    nats,
  }) => {
    await setup(nats);
    const edge = await factories.startEdge(nats.url, {});
    const l = await listen(edge.url, { toolsListChanged: true }, "bye");
    await eventually(() => l.messages.length >= 1, { what: "acknowledgement" });
    await edge.close();
    await eventually(() => l.messages.some((m) => m.id === "bye"), { what: "final result" });
    expect(l.messages.find((m) => m.id === "bye")?.result).toMatchObject({
      resultType: "complete",
      _meta: { [SUB]: "bye" },
    });
    await l.close();
  });

  it("WebSocket, TCP and gRPC carry stateless-era requests: discover, call, notifications/cancelled, listen", async ({
    nats,
  }) => {
    const st = await setup(nats);
    const e = st.edges[0]!;
    const wires = [
      ["ws", await wsWire(e.wsUrl!)],
      ["tcp", await tcpWire(e.tcpPort!)],
      ["grpc", await grpcWire(e.grpcPort!)],
    ] as const;
    for (const [name, wire] of wires) {
      const c = new RpcClient(wire);
      const discover = await c.call("server/discover", { _meta: META });
      expect([
        name,
        discover.result?.["resultType"],
        (discover.result?.["supportedVersions"] as string[])[0],
      ]).toEqual([name, "complete", V]);
      const echo = await c.call("tools/call", {
        name: "echo",
        arguments: { text: name },
        _meta: META,
      });
      expect(echo.result).toMatchObject({
        resultType: "complete",
        content: [{ type: "text", text: name }],
      });
      const removed = await c.call("ping", { _meta: META });
      expect(removed.error?.code).toBe(-32601);

      const marker = `${name}-modern-cancel-${Date.now()}`;
      const waiting = c.call(
        "tools/call",
        { name: "wait_for_cancel", arguments: { marker }, _meta: META },
        `w-${name}`,
      );
      await eventually(() => observed.started.has(marker), { what: `${name}: handler started` });
      c.notify("notifications/cancelled", { requestId: `w-${name}`, reason: "test" });
      await eventually(() => observed.aborted.has(marker), { what: `${name}: handler aborted` });

      const acked = new Promise<Message>((resolve) =>
        c.onMessage((m) => m.method === "notifications/subscriptions/acknowledged" && resolve(m)),
      );
      c.wire.send(
        JSON.stringify({
          jsonrpc: "2.0",
          id: `l-${name}`,
          method: "subscriptions/listen",
          params: { notifications: { resourceSubscriptions: [`test://${name}`] }, _meta: META },
        }),
      );
      expect((await acked).params?.["_meta"]).toEqual({ [SUB]: `l-${name}` });
      expect(text(await call(st.edges[1]!.url, "touch_resource", { uri: `test://${name}` }))).toBe(
        `touched test://${name}`,
      );
      await eventually(
        () =>
          c.received.some(
            (m) =>
              m.method === "notifications/resources/updated" &&
              m.params?.["uri"] === `test://${name}`,
          ),
        { what: `${name}: update` },
      );
      // A cancelled listen ends without an answer; the cancelled call got none either.
      c.notify("notifications/cancelled", { requestId: `l-${name}` });
      await eventually(() => e.runtime.core.listeners === 0, {
        what: `${name}: listener cancelled`,
      });
      expect(c.received.some((m) => m.id === `w-${name}` || m.id === `l-${name}`)).toBe(false);
      void waiting;
      c.wire.close();
    }
  });

  it("stdio bridge: a 2026-07-28 client needs no initialize; its cancel closes the request's stream; a listen ends when stdin does", async ({
    nats,
  }) => {
    const st = await setup(nats);
    const peer = new StdioPeer(["--url", st.edges[0]!.url]);
    closers.push(async () => peer.kill());
    const discover = await peer.call(1, "server/discover", { _meta: META });
    expect(discover.result).toMatchObject({ resultType: "complete" });
    const echo = await peer.call(2, "tools/call", {
      name: "echo",
      arguments: { text: "stdio" },
      _meta: META,
    });
    expect(text(echo)).toBe("stdio");
    const bad = await peer.call(3, "tools/call", {
      name: "echo",
      arguments: { text: "x" },
      _meta: { "io.modelcontextprotocol/protocolVersion": V },
    });
    expect(bad.error?.code).toBe(-32602);

    const marker = `stdio-modern-cancel-${Date.now()}`;
    peer.send({
      id: 4,
      method: "tools/call",
      params: { name: "wait_for_cancel", arguments: { marker }, _meta: META },
    });
    await eventually(() => observed.started.has(marker), { what: "handler started" });
    peer.send({ method: "notifications/cancelled", params: { requestId: 4 } });
    await eventually(() => observed.aborted.has(marker), { what: "handler aborted" });

    peer.send({
      id: 5,
      method: "subscriptions/listen",
      params: { notifications: { resourceSubscriptions: ["test://stdio"] }, _meta: META },
    });
    await eventually(
      () => peer.received.some((m) => m.method === "notifications/subscriptions/acknowledged"),
      { what: "acknowledged" },
    );
    expect(text(await call(st.edges[1]!.url, "touch_resource", { uri: "test://stdio" }))).toBe(
      "touched test://stdio",
    );
    await eventually(
      () => peer.received.some((m) => m.method === "notifications/resources/updated"),
      { what: "update through the bridge" },
    );
    expect(await peer.end()).toBe(0);
    await eventually(() => st.edges[0]!.runtime.core.listeners === 0, {
      what: "listener ended with the client",
    });
    expect(peer.received.some((m) => m.id === 4)).toBe(false);
  });
});
