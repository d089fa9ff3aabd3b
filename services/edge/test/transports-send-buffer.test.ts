import { request as httpRequest, type IncomingMessage } from "node:http";
import { describe, expect, afterAll } from "vitest";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { allEvents, rawClient } from "./support/raw-sse.js";
import { RpcClient, grpcWire, tcpWire, text, wsWire, type Wire } from "./support/socket-client.js";

/** A small bound, so one ordinary answer is many times larger than it. */
const BOUND = 16 * 1024;
/** One answer 32x the bound (and below NATS's 1 MiB payload limit). */
const BIG = "b".repeat(32 * BOUND);

async function slowConsumers(edge: RunningEdge, transport: string): Promise<number> {
  const m = await edge.runtime.metrics.slowConsumers.get();
  return m.values.find((v) => v.labels["transport"] === transport)?.value ?? 0;
}

const echoCall = (id: number | string, textArg: string) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "echo", arguments: { text: textArg } },
});

/**
 * MCPQ_MAX_SEND_BUFFER_BYTES is checked before each message against what the connection still
 * holds from earlier ones: a reader is cut off only when it actually stopped reading, never
 * because a single message is larger than the bound.
 */
describe("send-buffer bound: one large message reaches a reader that keeps up; a stopped reader is cut off", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  afterAll(() => s?.close());
  const edgeOf = async (nats: NatsHandle): Promise<RunningEdge> => {
    s ??= await stack(nats, {
      edgeEnv: {
        MCPQ_MAX_SEND_BUFFER_BYTES: String(BOUND),
        MCPQ_MAX_IN_FLIGHT_PER_SESSION: "0",
        MCPQ_MAX_BODY_BYTES: String(16 * 1024 * 1024),
      },
    });
    return s.edges[0]!;
  };

  it("HTTP: a GET replay of an answer larger than the bound is delivered whole", async ({
    nats,
  }) => {
    const edge = await edgeOf(nats);
    const before = await slowConsumers(edge, "http");
    const c = await rawClient(edge.url);
    const posted = await allEvents(await c.post(edge.url, echoCall(1, BIG)));
    const priming = posted[0]?.id;
    expect(priming).toMatch(/_0$/);

    // The replay writes the retained answer through the bounded path (not a POST's final write).
    const replayed = await allEvents(await c.get(edge.url, priming));
    const answers = replayed.filter((e) => e.message?.id === 1);
    expect(answers).toHaveLength(1);
    expect(text(answers[0]!.message)).toBe(BIG);
    expect(await slowConsumers(edge, "http")).toBe(before);
  });

  it("HTTP: a batch answer larger than the bound, written live on the stream, is delivered", async ({
    nats,
  }) => {
    const edge = await edgeOf(nats);
    const before = await slowConsumers(edge, "http");
    // Batches (2025-03-26) answer on the stream with live writes, the final one included.
    const c = await rawClient(edge.url, { protocolVersion: "2025-03-26" });
    const res = await c.post(edge.url, [echoCall("big", BIG)]);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const answers = (await allEvents(res)).filter((e) => e.message?.id === "big");
    expect(answers).toHaveLength(1);
    expect(text(answers[0]!.message)).toBe(BIG);
    expect(await slowConsumers(edge, "http")).toBe(before);
  });

  const sockets: [string, string, (e: RunningEdge) => Promise<Wire>][] = [
    ["WebSocket", "ws", (e) => wsWire(e.wsUrl!)],
    ["TCP", "tcp", (e) => tcpWire(e.tcpPort!)],
    ["gRPC", "grpc", (e) => Promise.resolve(grpcWire(e.grpcPort!))],
  ];
  for (const [name, transport, dial] of sockets) {
    it(`${name}: an answer larger than the bound is delivered, and the connection stays usable`, async ({
      nats,
    }) => {
      const edge = await edgeOf(nats);
      const before = await slowConsumers(edge, transport);
      const c = new RpcClient(await dial(edge));
      await c.initialize();
      const big = await c.call("tools/call", { name: "echo", arguments: { text: BIG } });
      expect(text(big)).toBe(BIG);
      const small = await c.call("tools/call", { name: "echo", arguments: { text: "after" } });
      expect(text(small)).toBe("after");
      expect(await slowConsumers(edge, transport)).toBe(before);
      c.wire.close();
    });
  }

  it("HTTP: an SSE reader that stops reading is cut off as a slow consumer", async ({ nats }) => {
    const edge = await edgeOf(nats);
    const before = await slowConsumers(edge, "http");
    const c = await rawClient(edge.url, { protocolVersion: "2025-03-26" });
    // Far more than the kernel's socket buffers on both ends can take, then the bound.
    const calls = 40;
    const payload = "s".repeat(256 * 1024);
    const body = JSON.stringify(Array.from({ length: calls }, (_, i) => echoCall(i, payload)));
    const url = new URL(edge.url);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            "mcp-session-id": c.sessionId,
            "mcp-protocol-version": c.protocolVersion,
            "content-length": String(Buffer.byteLength(body)),
          },
        },
        resolve,
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(res.statusCode).toBe(200);
    // The reader stops reading as soon as the stream opens.
    res.pause();
    await eventually(async () => (await slowConsumers(edge, "http")) > before, {
      what: "the paused SSE reader cut off",
      timeoutMs: 30_000,
    });

    // Reading again, it gets what was sent before the cut, then the stream breaks off.
    let received = "";
    res.setEncoding("utf8");
    res.on("data", (d: string) => (received += d));
    const ended = new Promise<void>((resolve) => res.once("close", () => resolve()));
    res.on("error", () => undefined);
    res.resume();
    await ended;
    expect(res.complete).toBe(false);
    const answered = received.split("\n\n").filter((b) => b.includes('"result"')).length;
    expect(answered).toBeLessThan(calls);
  });
});
