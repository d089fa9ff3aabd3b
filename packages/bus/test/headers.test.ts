import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  connectBus,
  decodeEnvelope,
  decodeOutboundHeaders,
  encodeEnvelope,
  headerValue,
  outboundHeaders,
  type Bus,
  type Msg,
  type RequestEnvelope,
} from "@mcpq/bus";

// The envelope's header encoding (packages/bus/src/headers.ts writes nats.js's header map
// directly) through a real nats-server: what the edge writes is what the worker reads, values
// nats.js would refuse are refused, and "present but empty" stays apart from "absent".
const envelope = (over: Partial<RequestEnvelope> = {}): RequestEnvelope => ({
  requestId: "req-1",
  session: "sess-1",
  principal: "alice",
  protocolVersion: "2026-07-28",
  deadline: 1_900_000_000_000,
  startBy: 1_899_999_999_000,
  replyTo: "mcpq.out.sess-1.s1",
  logLevel: "info",
  targetKind: "tool",
  target: "echo",
  edge: "edge-1",
  receivedAt: 1_899_999_998_000,
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  tracestate: "vendor=x",
  clientCapabilities: ["sampling", "roots"],
  clientInfo: { name: "client", version: "1.0" },
  claims: { tenant: "t1" },
  ...over,
});

describe("envelope headers through nats-server", () => {
  let bus: Bus | undefined;
  afterAll(async () => bus?.close());

  const roundTrip = async (h: ReturnType<typeof natsHeaders>): Promise<Msg> => {
    const got = new Promise<Msg>((resolve) => {
      const sub = bus!.nc.subscribe("t-headers.x", { max: 1 });
      void (async () => {
        for await (const m of sub) resolve(m);
      })();
    });
    await bus!.nc.flush();
    bus!.nc.publish("t-headers.x", "body", { headers: h });
    return got;
  };

  it("decodes on the receiving side exactly what was encoded, optional fields included", async ({
    nats,
  }) => {
    bus = await connectBus({ url: nats.url, name: "headers-test" });
    const e = envelope();
    const m = await roundTrip(encodeEnvelope(e));
    expect(decodeEnvelope(m.headers)).toEqual(e);
    expect(headerValue(m.headers, "Nats-Msg-Id")).toBe("req-1");
    // No client capabilities declared is not the same as an edge that did not say.
    const none = await roundTrip(encodeEnvelope(envelope({ clientCapabilities: [] })));
    expect(decodeEnvelope(none.headers)?.clientCapabilities).toEqual([]);
    const unsaid = await roundTrip(encodeEnvelope(envelope({ clientCapabilities: undefined })));
    expect(decodeEnvelope(unsaid.headers)?.clientCapabilities).toBeUndefined();
    const out = await roundTrip(outboundHeaders("response", "s1_7", "req-1"));
    expect(decodeOutboundHeaders(out.headers)).toEqual({
      kind: "response",
      eventId: "s1_7",
      requestId: "req-1",
    });
    expect(headerValue(out.headers, "Nats-Msg-Id")).toBe("req-1.response");
  });

  it("refuses a value with CR or LF (header injection), as nats.js does; trims surrounding space", () => {
    expect(() => encodeEnvelope(envelope({ traceparent: "00-a\r\nMcpq-Principal: root" }))).toThrow(
      /cannot contain/,
    );
    expect(() => encodeEnvelope(envelope({ target: "echo\n" }))).toThrow(/cannot contain/);
    const h = encodeEnvelope(envelope({ edge: "  edge-2 " }));
    expect(headerValue(h, "Mcpq-Edge")).toBe("edge-2");
    // What nats.js itself reads back agrees with the direct writes.
    expect(h.get("Mcpq-Edge")).toBe("edge-2");
    expect(h.get("Mcpq-Request")).toBe("req-1");
    expect(headerValue(h, "Mcpq-Missing")).toBeUndefined();
  });
});
