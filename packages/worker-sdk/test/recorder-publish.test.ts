import { afterAll, describe, expect } from "vitest";
import { natsTest as it, startLocalNats } from "@mcpq/testkit";
import {
  H,
  RecordSchema,
  STREAMS,
  connectBus,
  decodeRecords,
  type Bus,
  type RequestEnvelope,
} from "@mcpq/bus";
import { createRecorder, type RecordEntry, type RecordResult } from "../src/index.js";

// createRecorder's publishing against a real nats-server: the records of one run of callbacks
// go out as one MCPQ_REC message per subject (a lone record with its request id as the only
// header), within the stream's message size, every record's PubAck counted, and a store that
// refuses is counted as failed (never silently lost).
const entry = (requestId: string, target = "echo", text = "x"): RecordEntry => {
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
    request: { id: 1, method: "tools/call", params: { name: target, arguments: { text } } },
    response: { result: { content: [{ type: "text", text }] } },
    outcome: "ok",
    workerId: "w-1",
    pool: "p",
    startedAt: Date.now(),
    durationMs: 1,
    replayable: true,
  };
};

/** Records stored in MCPQ_REC, each message checked to be at most `maxBytes`. */
/** A recorder on `b` that counts each record's outcome (stored, failed, dropped...). */
function countingRecorder(b: Bus, opts: { maxInFlight?: number } = {}) {
  const counts: Record<string, number> = {};
  const recorder = createRecorder({
    bus: b,
    ...opts,
    metrics: { record: (r: RecordResult) => void (counts[r] = (counts[r] ?? 0) + 1) },
  });
  return { recorder, counts };
}

async function storedRecords(b: Bus, maxBytes: number): Promise<number> {
  const si = await b.jsm.streams.info(STREAMS.records);
  let records = 0;
  for (let seq = si.state.first_seq; seq <= si.state.last_seq; seq++) {
    const m = await b.jsm.streams.getMessage(STREAMS.records, { seq });
    expect(m!.data.length).toBeLessThanOrEqual(maxBytes);
    records += decodeRecords(m!.data).records.length;
  }
  return records;
}

describe("recorder: publishing to MCPQ_REC", () => {
  let bus: Bus | undefined;
  afterAll(async () => bus?.close());

  it("publishes one message per subject for the records of one turn, a lone record with its request id as the only header, and counts each record's PubAck; a missing stream counts as failed", async ({
    nats,
  }) => {
    bus = await connectBus({ url: nats.url, name: "recorder-publish-test" });
    const b = bus;
    const { recorder, counts } = countingRecorder(b);
    const message = async (seq: number) => {
      const m = await b.jsm.streams.getMessage(STREAMS.records, { seq });
      return { m: m!, ...decodeRecords(m!.data) };
    };
    // 20 records in one turn, two targets (two subjects): two messages of 10 records each
    for (let i = 0; i < 20; i++) recorder(entry(`req-${i}`, i % 2 ? "add" : "echo"));
    expect(recorder.inFlight).toBe(20);
    await recorder.flush(10_000);
    expect(recorder.inFlight).toBe(0);
    expect(counts).toEqual({ stored: 20 });
    let si = await b.jsm.streams.info(STREAMS.records);
    expect(si.state.messages).toBe(2);
    const seen: string[] = [];
    for (const seq of [si.state.first_seq, si.state.last_seq]) {
      const { m, records, invalid } = await message(seq);
      expect(invalid).toBe(0);
      expect(records).toHaveLength(10);
      expect(new Set(records.map((r) => `mcpq.rec.p.tool.${r.target}`))).toEqual(
        new Set([m.subject]),
      );
      expect(m.header.get(H.msgId)).toBe("");
      seen.push(...records.map((r) => r.requestId));
    }
    expect(seen.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `req-${i}`).sort());

    // a lone record: its own message, its request id as the only header (the duplicate window
    // stores a redelivered request's record once)
    for (let i = 0; i < 2; i++) {
      recorder(entry("req-alone"));
      await recorder.flush(10_000);
    }
    expect(counts).toEqual({ stored: 22 });
    si = await b.jsm.streams.info(STREAMS.records);
    expect(si.state.messages).toBe(3);
    const { m } = await message(si.state.last_seq);
    expect([...m.header.keys()]).toEqual([H.msgId]);
    expect(m.header.get(H.msgId)).toBe("req-alone");
    expect(RecordSchema.parse(m.json())).toMatchObject({ requestId: "req-alone", target: "echo" });

    // the store is gone: the broker says no one stores the subject, and each record is counted
    await b.jsm.streams.delete(STREAMS.records);
    recorder(entry("req-lost-1"));
    recorder(entry("req-lost-2"));
    await recorder.flush(10_000);
    expect(recorder.inFlight).toBe(0);
    expect(counts).toEqual({ stored: 22, failed: 2 });
  });

  it("keeps a batch within MCPQ_REC's message size", async ({ nats }) => {
    const b = await connectBus({
      url: nats.url,
      name: "recorder-size-test",
      limits: { maxMessageBytes: 2_048 },
    });
    try {
      const { recorder, counts } = countingRecorder(b);
      // ~1.3 KB each against a 4 KiB message bound (twice MCPQ_MAX_MESSAGE_BYTES): 3 per message
      for (let i = 0; i < 9; i++) recorder(entry(`big-${i}`, "echo", "y".repeat(500)));
      await recorder.flush(10_000);
      expect(counts).toEqual({ stored: 9 });
      const si = await b.jsm.streams.info(STREAMS.records);
      expect(si.state.messages).toBeGreaterThanOrEqual(3);
      expect(await storedRecords(b, 4_096)).toBe(9);
    } finally {
      await b.close();
    }
  });

  // A broker whose max_payload is below MCPQ_REC's message size (twice MCPQ_MAX_MESSAGE_BYTES):
  // records that fit alone must not be lost by being batched past what the server takes.
  it("keeps a batch within the server's max_payload, so every record that fits alone is stored", async () => {
    const small = await startLocalNats({ maxPayload: 64 * 1024 });
    const b = await connectBus({ url: small.url, name: "recorder-payload-test" });
    try {
      expect(b.nc.info?.max_payload).toBe(64 * 1024);
      const { recorder, counts } = countingRecorder(b);
      // ~20 KB each (the text is in params and result), 12 in one turn: ~240 KB in all
      for (let i = 0; i < 12; i++) recorder(entry(`big-${i}`, "echo", "z".repeat(10_000)));
      await recorder.flush(10_000);
      expect(counts).toEqual({ stored: 12 });
      const si = await b.jsm.streams.info(STREAMS.records);
      expect(await storedRecords(b, 64 * 1024)).toBe(12);
      expect(si.state.messages).toBeGreaterThan(1);
      expect(si.state.messages).toBeLessThan(12);
    } finally {
      await b.close();
      await small.stop();
    }
  });

  it("drops (and counts) records beyond maxInFlight instead of queueing them", async ({ nats }) => {
    const b = await connectBus({ url: nats.url, name: "recorder-bound-test" });
    try {
      const { recorder, counts } = countingRecorder(b, { maxInFlight: 3 });
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
