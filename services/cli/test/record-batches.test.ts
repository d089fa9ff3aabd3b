import { afterAll, describe, expect, it } from "vitest";
import { startLocalNats, type LocalNats } from "@mcpq/nats-launcher";
import { STREAMS, connectBus, decodeRecords, type Bus, type RequestEnvelope } from "@mcpq/bus";
import { createRecorder, type RecordEntry, type RecordResult } from "@mcpq/worker-sdk";

const entry = (requestId: string, text: string): RecordEntry => {
  const envelope: RequestEnvelope = {
    requestId,
    session: "sess",
    principal: "alice",
    protocolVersion: "2025-11-25",
    deadline: Date.now() + 30_000,
    replyTo: "mcpq.out.sess.1",
    logLevel: undefined,
    targetKind: "tool",
    target: "echo",
    edge: "edge-1",
    receivedAt: Date.now(),
    traceparent: undefined,
  };
  return {
    envelope,
    request: { id: 1, method: "tools/call", params: { name: "echo", arguments: { text } } },
    response: { result: { content: [{ type: "text", text }] } },
    outcome: "ok",
    workerId: "w-1",
    pool: "p",
    startedAt: Date.now(),
    durationMs: 1,
    replayable: true,
  };
};

// A broker whose max_payload is below MCPQ_REC's message size (twice MCPQ_MAX_MESSAGE_BYTES):
// records that fit alone must not be lost by being batched past what the server takes.
describe("recorder batches on a server with a small max_payload", () => {
  let nats: LocalNats | undefined;
  let bus: Bus | undefined;
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it("split at the server's max_payload, so every record that fits alone is stored", async () => {
    nats = await startLocalNats({ maxPayload: 64 * 1024 });
    bus = await connectBus({ url: nats.url, name: "record-batches-test" });
    expect(bus.nc.info?.max_payload).toBe(64 * 1024);
    const counts: Record<string, number> = {};
    const recorder = createRecorder({
      bus,
      metrics: { record: (r: RecordResult) => void (counts[r] = (counts[r] ?? 0) + 1) },
    });
    // ~20 KB each (the text is in params and result), 12 in one turn: ~240 KB in all
    for (let i = 0; i < 12; i++) recorder(entry(`big-${i}`, "z".repeat(10_000)));
    await recorder.flush(10_000);
    expect(counts).toEqual({ stored: 12 });
    const si = await bus.jsm.streams.info(STREAMS.records);
    let records = 0;
    for (let seq = si.state.first_seq; seq <= si.state.last_seq; seq++) {
      const m = await bus.jsm.streams.getMessage(STREAMS.records, { seq });
      expect(m!.data.length).toBeLessThanOrEqual(64 * 1024);
      records += decodeRecords(m!.data).records.length;
    }
    expect(records).toBe(12);
    expect(si.state.messages).toBeGreaterThan(1);
    expect(si.state.messages).toBeLessThan(12);
  });
});
