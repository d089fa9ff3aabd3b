// One response per request id when the broker carries two copies of a worker's answer: a
// redelivered request (its first ack lost in a leader change) runs again and publishes a second
// answer with its own event id. MCPQ_OUT keeps one (the response's message id is per request),
// but every core subscriber of the session's subject sees both. The router, on a real
// nats-server, must hand a stream's reader one of them whether it meets the copies live, during
// a claim it loses, or in a resume's replay.
import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { H, connectBus, eventId, outboundHeaders, subjects, type Bus } from "@mcpq/bus";
import { OutboundRouter, type OutboundMessage, type StreamSink } from "../src/core/outbound.js";

const buses: Bus[] = [];
afterAll(async () => {
  for (const b of buses) await b.close();
});

/** A reader that keeps everything it is handed. */
function collector(): StreamSink & { got: OutboundMessage[] } {
  const got: OutboundMessage[] = [];
  return { got, closed: false, send: (m) => void got.push(m) };
}

let n = 0;
async function setUp(url: string) {
  const bus = await connectBus({ url, name: `dups-${++n}` });
  buses.push(bus);
  let late = 0;
  const router = new OutboundRouter({ bus, maxPending: 100, onLateResponse: () => late++ });
  const session = `s${n}${Date.now().toString(36)}`;
  const stream = `st${n}`;
  const requestId = `r${n}`;
  /**
   * A worker's answer to the request, as one of its runs publishes it (its own event id);
   * `msgId` overrides the message id (a copy the stream's dedup did not catch).
   */
  const answer = (token: string, msgId?: string) => {
    const headers = outboundHeaders("response", eventId(stream, token), requestId);
    if (msgId) headers.set(H.msgId, msgId);
    bus.nc.publish(subjects.outbound(session, stream), JSON.stringify({ token }), { headers });
  };
  /** A reader of the stream, subscribed on the server. */
  const reader = async () => {
    const sink = collector();
    router.attach(session, stream, sink);
    await roundTrip(bus);
    return sink;
  };
  const responses = (sink: { got: OutboundMessage[] }) =>
    sink.got.filter((m) => m.kind === "response").map((m) => m.eventId);
  return {
    bus,
    router,
    session,
    stream,
    requestId,
    answer,
    reader,
    responses,
    late: () => late,
  };
}

/** Until every message published so far on this connection has been through the server and back. */
const roundTrip = (bus: Bus) => bus.nc.flush();
/** Until what was published so far has been delivered back to this connection's subscriptions. */
const delivered = async (bus: Bus) => {
  await roundTrip(bus);
  await roundTrip(bus);
};

describe("outbound router: two copies of a worker's answer reach the reader once", () => {
  it("live: the second copy is dropped", async ({ nats }) => {
    const t = await setUp(nats.url);
    const sink = await t.reader();
    t.answer("a1");
    t.answer("a2");
    await delivered(t.bus);
    expect(t.responses(sink)).toEqual([eventId(t.stream, "a1")]);
    expect(t.late()).toBe(1);
  });

  it("a claim the worker's answer wins, with both copies arriving while it is in flight: one delivered", async ({
    nats,
  }) => {
    const t = await setUp(nats.url);
    const sink = await t.reader();
    // Both copies go out before the claim on this connection: the first is stored (the claim then
    // loses to it), and both are delivered to the router while the claim waits for its PubAck.
    t.answer("b1");
    t.answer("b2");
    const outcome = await t.router.claim(t.session, t.stream, t.requestId);
    expect(outcome).toBe("lost");
    await roundTrip(t.bus);
    expect(t.responses(sink)).toEqual([eventId(t.stream, "b1")]);
    // A third copy after the claim is dropped too.
    t.answer("b3");
    await delivered(t.bus);
    expect(t.responses(sink)).toEqual([eventId(t.stream, "b1")]);
    expect(t.late()).toBe(2);
  });

  it("a resume whose replay sends the stored copy does not send the other copy, which arrives live", async ({
    nats,
  }) => {
    const t = await setUp(nats.url);
    // The first run's answer is stored while no edge reads the stream (the client is away).
    t.answer("c1");
    await roundTrip(t.bus);
    const sink = collector();
    // The client resumes from the stream's start; the second run's answer comes meanwhile.
    const resumed = t.router.resume(t.session, t.stream, null, sink);
    t.answer("c2");
    const release = await resumed;
    await delivered(t.bus);
    // And once more after the replay has handed over to live delivery.
    t.answer("c3");
    await delivered(t.bus);
    expect(t.responses(sink)).toEqual([eventId(t.stream, "c1")]);
    expect(t.late()).toBe(2);
    release();
  });

  it("a resume after the response itself sends no other copy of it, retained (a dedup that missed) or live", async ({
    nats,
  }) => {
    const t = await setUp(nats.url);
    t.answer("e1");
    t.answer("e2", "not-the-same-message-id");
    await roundTrip(t.bus);
    const sink = collector();
    // The client got e1 and resumes after it (a socket connection resuming its stream).
    const release = await t.router.resume(t.session, t.stream, "e1", sink);
    t.answer("e3");
    await delivered(t.bus);
    expect(t.responses(sink)).toEqual([]);
    release();
  });

  it("a replay holding the edge's own answer and a worker's copy stored past a dedup miss sends the edge's only", async ({
    nats,
  }) => {
    const t = await setUp(nats.url);
    // The edge answered the request itself (its claim won) and published its answer...
    const headers = outboundHeaders("response", eventId(t.stream, "f1"));
    headers.set(H.answers, t.requestId);
    t.bus.nc.publish(subjects.outbound(t.session, t.stream), JSON.stringify({ token: "f1" }), {
      headers,
    });
    // ...and a new stream leader stored the worker's late answer too (nats-server before 2.11).
    t.answer("f2", "not-the-same-message-id");
    await roundTrip(t.bus);
    const sink = collector();
    const release = await t.router.resume(t.session, t.stream, null, sink);
    await roundTrip(t.bus);
    expect(t.responses(sink)).toEqual([eventId(t.stream, "f1")]);
    release();
  });

  it("a claim lost to a worker's answer this edge never saw live delivers the retained answer (a socket cannot resume to get it)", async ({
    nats,
  }) => {
    const t = await setUp(nats.url);
    // The worker's answer is stored while this edge does not read the session (its connection
    // was moving between nodes, say)...
    t.answer("g1");
    await roundTrip(t.bus);
    const sink = await t.reader();
    // ...so at the deadline the edge claims, loses, and must hand the retained answer over itself.
    expect(await t.router.claim(t.session, t.stream, t.requestId, { deliverRetained: true })).toBe(
      "lost",
    );
    expect(t.responses(sink)).toEqual([eventId(t.stream, "g1")]);
    // A later live copy is dropped.
    t.answer("g2");
    await delivered(t.bus);
    expect(t.responses(sink)).toEqual([eventId(t.stream, "g1")]);
  });
});
