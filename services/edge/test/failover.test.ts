import { describe, expect, afterAll } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { spawnEdge } from "./support/edge-process.js";
import { startProxy } from "@mcpq/testkit";
import { RpcClient, progressOf, text, wsWire } from "./support/socket-client.js";
import { StdioPeer } from "./support/stdio-bridge.js";

// Short server `retry` so clients come back quickly; the same settings on every edge.
const EDGE_ENV = { MCPQ_SSE_RETRY_MS: "100" };
const STEPS = 10;
const COUNTDOWN = { name: "countdown", arguments: { steps: STEPS, delayMs: 150 } };
const ALL = Array.from({ length: STEPS }, (_, i) => i + 1);

/**
 * Edge A is a child process killed with SIGKILL while a client's long call is in flight; the
 * client reaches edge B with its session id and last event id and gets the rest: every progress
 * notification exactly once and the final result exactly once.
 */
describe("edge failover (kill -9 mid-call): nothing lost, nothing duplicated", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("Streamable HTTP: the official SDK client behind a load balancer resumes on edge B", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 1, edgeEnv: EDGE_ENV });
    const edgeB = s.edges[0]!;
    const a = await spawnEdge(nats.url, EDGE_ENV);
    const lb = await startProxy([a.port, edgeB.port]);
    try {
      const errors: Error[] = [];
      const client = new Client({ name: "failover", version: "1" }, { capabilities: {} });
      client.onerror = (e) => errors.push(e);
      const transport = new StreamableHTTPClientTransport(
        new URL(`http://127.0.0.1:${lb.port}/mcp`),
        {
          reconnectionOptions: {
            initialReconnectionDelay: 50,
            maxReconnectionDelay: 500,
            reconnectionDelayGrowFactor: 1.5,
            maxRetries: 30,
          },
        },
      );
      await client.connect(transport);
      const progress: number[] = [];
      const result = client.callTool(COUNTDOWN, undefined, {
        onprogress: (p) => progress.push(p.progress),
        timeout: 30_000,
      });
      await eventually(() => progress.length >= 3, { what: "progress through edge A" });
      expect(edgeB.runtime.router.subscribedSessions).toBe(0);
      await a.kill9();
      const r = await result;
      expect(r.content).toEqual([{ type: "text", text: `done after ${STEPS} steps` }]);
      expect(progress).toEqual(ALL);
      // Edge B served the rest (its router subscribed to the session for the resumed stream).
      expect(edgeB.runtime.router.subscribedSessions).toBeGreaterThan(0);
      // No duplicate or unknown response reached the SDK.
      expect(errors.map(String).filter((e) => /unknown message ID|response/i.test(e))).toEqual([]);
      // The session lives on: a new call goes through edge B.
      expect(
        (await client.callTool({ name: "echo", arguments: { text: "still here" } })).content,
      ).toEqual([{ type: "text", text: "still here" }]);
      await client.close();
    } finally {
      await a.kill9();
      await lb.close();
    }
  });

  it("WebSocket: the client resumes on edge B with $/mcpq/resume", async ({ nats }) => {
    const edgeB = s.edges[0]!;
    const a = await spawnEdge(nats.url, EDGE_ENV);
    try {
      const c = new RpcClient(await wsWire(a.wsUrl));
      await c.initialize();
      const call = c.call("tools/call", { ...COUNTDOWN, _meta: { progressToken: "ws" } }, "long");
      await eventually(() => progressOf(c, "ws").length >= 3, { what: "progress through edge A" });
      const gone = c.wire.closed;
      await a.kill9();
      await gone;
      const r = await c.resume(await wsWire(edgeB.wsUrl!));
      expect(r.result).toMatchObject({ sessionId: c.sessionId });
      expect(text(await call)).toBe(`done after ${STEPS} steps`);
      expect(progressOf(c, "ws")).toEqual(ALL);
      expect(c.received.filter((m) => m.id === "long")).toHaveLength(1);
      c.wire.close();
    } finally {
      await a.kill9();
    }
  });

  it("stdio bridge: `mcpq stdio --url A --url B` resumes on B by itself", async ({ nats }) => {
    const edgeB = s.edges[0]!;
    const a = await spawnEdge(nats.url, EDGE_ENV);
    const peer = new StdioPeer(["--url", a.url, "--url", edgeB.url]);
    try {
      await peer.initialize();
      const call = peer.call("long", "tools/call", {
        ...COUNTDOWN,
        _meta: { progressToken: "stdio" },
      });
      await eventually(() => peer.progress("stdio").length >= 3, {
        what: "progress through edge A",
      });
      await a.kill9();
      expect(text(await call)).toBe(`done after ${STEPS} steps`);
      expect(peer.progress("stdio")).toEqual(ALL);
      expect(peer.received.filter((m) => m.id === "long")).toHaveLength(1);
      // Later messages go to edge B.
      expect(
        text(await peer.call("after", "tools/call", { name: "echo", arguments: { text: "on B" } })),
      ).toBe("on B");
      expect(await peer.end()).toBe(0);
    } finally {
      peer.kill();
      await a.kill9();
    }
  });
});
