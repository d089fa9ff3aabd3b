import { describe, expect, afterAll } from "vitest";
import {
  natsTest as it,
  eventually,
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
  type Stack,
} from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, sdkClient, stack } from "./support/stack.js";

const SERVER = 2;
const PRODUCER = 4;
const CONSUMER = 5;
const INTERNAL = 1;

// A client-side span the edge must continue (W3C trace context in params._meta, SEP-414).
const CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";
const TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

/** The spans of one trace once the server span and the worker's handler span arrived. */
async function traceOf(
  otlp: OtlpReceiver,
  pick: (s: ReceivedSpan) => boolean,
  want: number,
): Promise<ReceivedSpan[]> {
  return eventually(
    () => {
      const root = otlp.spans.find((s) => s.kind === SERVER && pick(s));
      if (!root) return null;
      const spans = otlp.spans.filter((s) => s.traceId === root.traceId);
      return spans.length >= want ? spans : null;
    },
    { what: "the call's spans at the OTLP receiver", timeoutMs: 20_000 },
  );
}

function one(
  spans: ReceivedSpan[],
  pred: (s: ReceivedSpan) => boolean,
  what: string,
): ReceivedSpan {
  const found = spans.filter(pred);
  expect(found, what).toHaveLength(1);
  return found[0]!;
}

/**
 * One trace per call, across edge, NATS and worker: spans exported by every service to an
 * in-process OTLP/HTTP receiver, with the official SDK client's session served by two edges.
 */
describe("tracing: edge -> NATS -> worker is one trace per call", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  let otlp: OtlpReceiver;
  afterAll(async () => {
    await s?.close();
    await otlp?.close();
  });

  it("continues the client's traceparent through two edges and a worker, with the MCP attributes", async ({
    nats,
  }) => {
    otlp = await startOtlpReceiver();
    // The in-process receiver reads OTLP/HTTP JSON (the exporters' default is protobuf).
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "50",
    };
    s = await stack(nats, { edges: 2, edgeEnv: env, workerEnv: env });
    const [edgeA, edgeB] = s.edges as [RunningEdge, RunningEdge];
    const workerId = s.workers[0]!.worker.workerId;
    const a = await sdkClient(edgeA.url);
    const sessionId = a.transport.sessionId!;
    const b = await sdkClient(edgeB.url, { sessionId });

    // Call 1 on edge A, continuing the client's span.
    const r1 = await a.client.callTool({
      name: "echo",
      arguments: { text: "traced" },
      _meta: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: TRACESTATE },
    });
    expect(r1.content).toEqual([{ type: "text", text: "traced" }]);
    const t1 = await traceOf(
      otlp,
      (sp) => sp.traceId === CLIENT_TRACE && sp.attributes["mcp.method.name"] === "tools/call",
      5,
    );

    const server = one(t1, (sp) => sp.kind === SERVER, "one server span");
    expect(server.parentSpanId).toBe(CLIENT_SPAN);
    expect(server.traceState).toBe(TRACESTATE);
    expect(server.name).toBe("tools/call echo");
    expect(server.resource["service.name"]).toBe("mcpq-edge");
    expect(server.resource["service.instance.id"]).toBe(edgeA.runtime.config.edgeId);
    expect(server.attributes).toMatchObject({
      "mcp.method.name": "tools/call",
      "gen_ai.tool.name": "echo",
      "gen_ai.operation.name": "execute_tool",
      "mcp.session.id": sessionId,
      "mcp.protocol.version": expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/),
      "jsonrpc.request.id": expect.any(String),
    });
    expect(server.attributes["error.type"]).toBeUndefined();

    const producer = one(t1, (sp) => sp.kind === PRODUCER, "one producer span");
    expect(producer.parentSpanId).toBe(server.spanId);
    expect(producer.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.operation.type": "send",
      "messaging.destination.name": expect.stringMatching(/^mcpq\.req\.example\.tool\.echo$/),
      "messaging.message.id": expect.any(String),
    });

    const consumer = one(
      t1,
      (sp) => sp.kind === CONSUMER && sp.resource["service.name"] === "mcpq-worker",
      "one worker consumer span",
    );
    expect(consumer.parentSpanId).toBe(producer.spanId);
    expect(consumer.resource["service.instance.id"]).toBe(workerId);
    expect(consumer.attributes).toMatchObject({
      "messaging.system": "nats",
      "messaging.operation.type": "process",
      "messaging.destination.name": producer.attributes["messaging.destination.name"],
      "messaging.message.id": producer.attributes["messaging.message.id"],
      "messaging.consumer.group.name": "example",
    });

    const handler = one(
      t1,
      (sp) => sp.kind === INTERNAL && sp.resource["service.name"] === "mcpq-worker",
      "one handler span",
    );
    expect(handler.parentSpanId).toBe(consumer.spanId);
    expect(handler.name).toBe("tools/call echo");
    expect(handler.attributes).toMatchObject({
      "mcp.method.name": "tools/call",
      "gen_ai.tool.name": "echo",
      "mcp.session.id": sessionId,
    });

    const delivery = one(
      t1,
      (sp) => sp.kind === CONSUMER && sp.resource["service.name"] === "mcpq-edge",
      "one edge delivery span",
    );
    expect(delivery.parentSpanId).toBe(server.spanId);
    expect(delivery.attributes["messaging.system"]).toBe("nats");
    // No stray spans: the five above are the whole trace.
    expect(t1).toHaveLength(5);

    // Call 2 on edge B, no client context: a new trace, rooted at edge B's server span.
    const r2 = await b.client.callTool({ name: "add", arguments: { a: "two", b: 1 } });
    expect(r2.isError).toBe(true);
    const t2 = await traceOf(
      otlp,
      (sp) =>
        sp.resource["service.instance.id"] === edgeB.runtime.config.edgeId &&
        sp.attributes["gen_ai.tool.name"] === "add",
      5,
    );
    const server2 = one(t2, (sp) => sp.kind === SERVER, "one server span on edge B");
    expect(server2.traceId).not.toBe(CLIENT_TRACE);
    expect(server2.parentSpanId).toBe("");
    expect(server2.attributes["error.type"]).toBe("tool_error");
    const handler2 = one(t2, (sp) => sp.kind === INTERNAL, "one handler span");
    expect(handler2.attributes["error.type"]).toBe("tool_error");
    expect(t2.map((sp) => sp.resource["service.name"]).sort()).toEqual([
      "mcpq-edge",
      "mcpq-edge",
      "mcpq-edge",
      "mcpq-worker",
      "mcpq-worker",
    ]);

    // A protocol error: the code is the error type and the response status code.
    await expect(b.client.callTool({ name: "nope", arguments: {} })).rejects.toMatchObject({
      code: -32602,
    });
    const t3 = await traceOf(otlp, (sp) => sp.attributes["gen_ai.tool.name"] === "nope", 1);
    const server3 = one(t3, (sp) => sp.kind === SERVER, "one server span for the unknown tool");
    expect(server3.attributes).toMatchObject({
      "error.type": "-32602",
      "rpc.response.status_code": "-32602",
    });
    expect(server3.status.code).toBe(2);
    // Nothing was queued for it: no producer or worker span.
    expect(t3).toHaveLength(1);

    await a.client.close();
    await b.client.close();
  });

  it("exports OTLP/HTTP protobuf by default (OTEL_EXPORTER_OTLP_PROTOCOL unset)", async ({
    nats,
  }) => {
    const proto = await startOtlpReceiver();
    const edge = await factories.startEdge(nats.url, {
      OTEL_EXPORTER_OTLP_ENDPOINT: proto.url,
      OTEL_BSP_SCHEDULE_DELAY: "50",
    });
    try {
      const { client } = await sdkClient(edge.url);
      await client.ping();
      await client.close();
      await eventually(() => proto.protobufExports > 0, { what: "a protobuf export" });
      expect(proto.count).toBe(0);
    } finally {
      await edge.close();
      await proto.close();
    }
  });

  it("a client's unsampled decision (flags 00) is kept by edge and worker: no spans for that trace", async () => {
    const { client } = await sdkClient(s.edges[0]!.url);
    const unsampled = "0af7651916cd43dd8448eb211c80319c";
    await client.callTool({
      name: "echo",
      arguments: { text: "quiet" },
      _meta: { traceparent: `00-${unsampled}-b7ad6b7169203331-00` },
    });
    // A sampled call after it: once its spans (edge and worker) arrived, every span either
    // service ended before them has been exported too (each exports in order).
    const marker = "5bf92f3577b34da6a3ce929d0e0e4737";
    await client.callTool({
      name: "echo",
      arguments: { text: "loud" },
      _meta: { traceparent: `00-${marker}-00f067aa0ba902b7-01` },
    });
    await traceOf(otlp, (sp) => sp.traceId === marker, 5);
    expect(otlp.spans.filter((sp) => sp.traceId === unsampled)).toEqual([]);
    await client.close();
  });
});
