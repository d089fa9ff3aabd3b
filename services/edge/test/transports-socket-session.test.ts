import { describe, expect, afterAll } from "vitest";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import type { SocketPort } from "../src/core/socket-channel.js";
import { stack } from "./support/stack.js";
import { RpcClient, wsWire } from "./support/socket-client.js";

/**
 * The socket channel on a real runtime, driven through a recording port (the one seam faked
 * here) so the order "connection gone, then the edge answers" is deterministic.
 */
describe("socket session: answers produced after the connection is gone are parked for the resume", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("an edge-answered result and a refusal reach the resumed connection on another edge, once", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 2 });
    const written: string[] = [];
    const framer: SocketPort = {
      write: (json) => void written.push(json),
      bufferedBytes: 0,
      close: () => undefined,
    };
    const session = s.edges[0]!.runtime.edge.socket(framer, {
      transport: "tcp",
      caller: {
        principal: "anonymous",
        quotaKey: "anonymous@test",
        anonymous: true,
        scopes: [],
        claims: {},
      },
    });
    session.receive(
      JSON.stringify({ jsonrpc: "2.0", id: "r", method: "$/mcpq/resume", params: {} }),
    );
    session.receive(
      JSON.stringify({
        jsonrpc: "2.0",
        id: "i",
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "seam", version: "1" },
        },
      }),
    );
    await session.idle();
    const init = JSON.parse(written[1]!) as { result: { _meta: Record<string, string> } };
    const sessionId = init.result._meta["io.mcpq/sessionId"]!;
    expect(sessionId).toBe(session.sessionId);

    // The connection goes away; two requests it had already sent are still in the queue.
    session.transportClosed();
    session.receive(
      JSON.stringify({
        jsonrpc: "2.0",
        id: "lost-1",
        method: "tools/call",
        params: { name: "nope", arguments: {} },
      }),
    );
    session.receive(JSON.stringify({ jsonrpc: "2.0", id: "lost-2", method: "ping" }));
    await session.idle();
    expect(written).toHaveLength(2);

    const c = new RpcClient(await wsWire(s.edges[1]!.wsUrl!));
    const r = await c.call("$/mcpq/resume", { sessionId, lastEventId: `${session.streamId}_0` });
    expect(r.result).toMatchObject({ sessionId });
    await eventually(
      () =>
        c.received.filter((m) => typeof m.id === "string" && m.id.startsWith("lost")).length === 2,
      {
        what: "both parked answers",
      },
    );
    expect(c.received.find((m) => m.id === "lost-1")?.error?.code).toBe(-32602);
    expect(c.received.find((m) => m.id === "lost-2")?.result).toEqual({});
    c.wire.close();
  });
});
