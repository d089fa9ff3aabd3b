import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { H, RecordSchema, STREAMS, connectBus, type Bus, type RequestEnvelope } from "@mcpq/bus";
import { createRecorder, type RecordEntry, type RecordResult } from "../src/index.js";

// createRecorder's publishing against a real nats-server: one MCPQ_REC message per record with
// its request id as the only header, every PubAck counted, and a store that refuses is counted
// as failed (never silently lost).
const entry = (requestId: string, target = "echo"): RecordEntry => {
  const envelope: RequestEnvelope = {
    requestId,
    session: "sess",
    principal: "alice",
    protocolVersion: "2025-11-25",
    deadline: Date.now() + 30_000,
    replyTo: "mcpq.out.sess.1",
    logLevel: undefined,
    targetKind: "tool",
    target,
    edge: "edge-1",
    receivedAt: Date.now(),
    traceparent: undefined,
  };
  return {
    envelope,
    request: { id: 1, method: "tools/call", params: { name: target, arguments: { text: "x" } } },
    response: { result: { content: [{ type: "text", text: "x" }] } },
    outcome: "ok",
    workerId: "w-1",
    pool: "p",
    startedAt: Date.now(),
    durationMs: 1,
    replayable: true,
  };
};

describe("recorder: publishing to MCPQ_REC", () => {
  let bus: Bus | undefined;
  afterAll(async () => bus?.close());

  it("stores one message per record (header: the request id only) and counts each PubAck; a missing stream counts as failed", async ({
    nats,
  }) => {
    bus = await connectBus({ url: nats.url, name: "recorder-publish-test" });
    const counts: Record<string, number> = {};
    const recorder = createRecorder({
      bus,
      metrics: { record: (r: RecordResult) => void (counts[r] = (counts[r] ?? 0) + 1) },
    });
    for (let i = 0; i < 20; i++) recorder(entry(`req-${i}`));
    expect(recorder.inFlight).toBeGreaterThan(0);
    await recorder.flush(10_000);
    expect(recorder.inFlight).toBe(0);
    expect(counts).toEqual({ stored: 20 });
    const si = await bus.jsm.streams.info(STREAMS.records);
    expect(si.state.messages).toBe(20);
    const m = await bus.jsm.streams.getMessage(STREAMS.records, { seq: si.state.last_seq });
    expect([...m!.header.keys()]).toEqual([H.msgId]);
    expect(m!.header.get(H.msgId)).toBe("req-19");
    expect(RecordSchema.parse(m!.json())).toMatchObject({ requestId: "req-19", target: "echo" });

    // the store is gone: the broker says no one stores the subject, and the record is counted
    await bus.jsm.streams.delete(STREAMS.records);
    recorder(entry("req-lost"));
    await recorder.flush(10_000);
    expect(recorder.inFlight).toBe(0);
    expect(counts).toEqual({ stored: 20, failed: 1 });
  });

  it("drops (and counts) records beyond maxInFlight instead of queueing them", async ({ nats }) => {
    const b = await connectBus({ url: nats.url, name: "recorder-bound-test" });
    try {
      const counts: Record<string, number> = {};
      const recorder = createRecorder({
        bus: b,
        maxInFlight: 3,
        metrics: { record: (r: RecordResult) => void (counts[r] = (counts[r] ?? 0) + 1) },
      });
      // synchronously: no PubAck can have come back in between
      for (let i = 0; i < 10; i++) recorder(entry(`bound-${i}`));
      expect(recorder.inFlight).toBe(3);
      await recorder.flush(10_000);
      expect(counts).toEqual({ stored: 3, dropped: 7 });
    } finally {
      await b.close();
    }
  });
});
