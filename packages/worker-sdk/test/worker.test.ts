import { describe, expect } from "vitest";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { H, STREAMS, connectBus, encodeEnvelope, subjects, type Bus, type Msg } from "@mcpq/bus";
import { Worker, defineCatalog, defineTool, toolDescriptor, z } from "../src/index.js";

let ran = 0;
const catalog = defineCatalog({
  name: "unit",
  tools: [
    defineTool({
      name: "double",
      description: "Doubles n",
      input: z.object({ n: z.number() }),
      output: z.object({ value: z.number() }),
      handler: ({ n }) => {
        ran++;
        return { content: [], structuredContent: { value: n * 2 } };
      },
    }),
    defineTool({
      name: "boom",
      description: "Throws an internal error",
      input: z.object({}),
      handler: () => {
        throw new Error("secret internals at /srv/app.ts:1");
      },
    }),
  ],
});

function request(
  bus: Bus,
  id: number,
  name: string,
  args: unknown,
  deadline = Date.now() + 10_000,
) {
  const requestId = `r${id}-${Math.random().toString(36).slice(2)}`;
  return bus.js.publish(
    subjects.request("unit", "tool", name),
    JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }),
    {
      headers: encodeEnvelope({
        requestId,
        session: "sessionAAAAAAAAAAAAAAAA",
        principal: "p",
        protocolVersion: "2025-11-25",
        deadline,
        replyTo: subjects.outbound("sessionAAAAAAAAAAAAAAAA", "abc123"),
        logLevel: undefined,
        targetKind: "tool",
        target: name,
        edge: "test",
        receivedAt: Date.now(),
        traceparent: undefined,
      }),
      msgID: requestId,
    },
  );
}

describe("Worker against a real JetStream", () => {
  it("lists zod schemas as JSON Schema and keeps a verbatim inputJsonSchema", () => {
    const d = toolDescriptor(catalog.tools![0]!);
    expect(d.inputSchema).toMatchObject({
      type: "object",
      properties: { n: { type: "number" } },
      required: ["n"],
    });
    expect(d.outputSchema).toMatchObject({
      type: "object",
      properties: { value: { type: "number" } },
    });
    const raw = {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object" as const,
      $defs: { a: { type: "string" } },
      additionalProperties: false,
    };
    expect(
      toolDescriptor(
        defineTool({
          name: "t",
          description: "d",
          input: z.object({}),
          inputJsonSchema: raw,
          handler: () => "",
        }),
      ).inputSchema,
    ).toEqual(raw);
  });

  it("consumes, answers on the reply subject, acks; drops expired requests unrun; hides internals", async ({
    nats,
  }) => {
    const bus = await connectBus({ url: nats.url, name: "unit" });
    const worker = new Worker({ bus, pool: "unit", catalogs: [catalog], concurrency: 4 });
    await worker.start();
    const got: Msg[] = [];
    bus.nc.subscribe(subjects.sessionOutbound("sessionAAAAAAAAAAAAAAAA"), {
      callback: (_e, m) => {
        got.push(m);
      },
    });

    await request(bus, 1, "double", { n: 21 });
    await request(bus, 2, "double", { n: "x" });
    await request(bus, 3, "boom", {});
    await request(bus, 4, "double", { n: 1 }, Date.now() - 1); // already expired
    await request(bus, 5, "missing", {});
    await eventually(() => got.length >= 4, { what: "four responses" });
    const byId = new Map(
      got.map((m) => [m.json<{ id: number }>().id, m.json<Record<string, unknown>>()]),
    );
    expect(byId.get(1)).toEqual({
      jsonrpc: "2.0",
      id: 1,
      result: {
        content: [{ type: "text", text: '{"value":42}' }],
        structuredContent: { value: 42 },
      },
    });
    expect(byId.get(2)).toMatchObject({ result: { isError: true } });
    expect(byId.get(3)).toEqual({
      jsonrpc: "2.0",
      id: 3,
      result: {
        content: [{ type: "text", text: "secret internals at /srv/app.ts:1" }],
        isError: true,
      },
    });
    expect(byId.get(5)).toMatchObject({
      error: { code: -32602, message: "Unknown tool: missing" },
    });
    expect(byId.has(4)).toBe(false);
    expect(
      got.every(
        (m) =>
          m.headers?.get(H.kind) === "response" && m.headers.get(H.event)?.startsWith("abc123_"),
      ),
    ).toBe(true);
    expect(ran).toBe(1);
    // Everything was acked or terminated: the work queue is empty.
    await eventually(
      async () => (await bus.jsm.streams.info(STREAMS.requests)).state.messages === 0,
      { what: "queue drained" },
    );
    // The catalog is advertised in the registry and removed on stop.
    expect(await bus.kv.registry.get(`unit.${worker.workerId}`)).not.toBeNull();
    await worker.stop();
    const after = await bus.kv.registry.get(`unit.${worker.workerId}`);
    expect(after === null || after.operation !== "PUT").toBe(true);
    await bus.close();
  });
});
