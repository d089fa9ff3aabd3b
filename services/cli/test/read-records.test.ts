import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { RECORD_VERSION, connectBus, recordHeaders, type Bus, type RequestRecord } from "@mcpq/bus";
import { collectRecords, resolveSelection } from "@mcpq/replay";

const record = (requestId: string, target = "echo"): RequestRecord => ({
  v: RECORD_VERSION,
  requestId,
  pool: "p",
  workerId: "w-1",
  method: "tools/call",
  targetKind: "tool",
  target,
  session: "sess",
  principal: "alice",
  protocolVersion: "2025-11-25",
  edge: "e-1",
  receivedAt: Date.now(),
  deadline: Date.now() + 30_000,
  startedAt: Date.now(),
  durationMs: 1,
  outcome: "ok",
  replayable: true,
  request: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: target } },
  response: { result: { content: [{ type: "text", text: requestId }] } },
});

// The reader of MCPQ_REC (replay, fixtures) against a real nats-server: a message holds one
// record (an object, as every worker wrote before batching) or a worker's batch (an array); both
// are read, every item is validated, and a request recorded twice in two batches (it ran again
// after its ack was lost) is read once.
describe("readRecords: one record or a batch per MCPQ_REC message", () => {
  let bus: Bus | undefined;
  afterAll(async () => bus?.close());

  it("reads single records and batches, counts invalid items, and skips a repeated request id", async ({
    nats,
  }) => {
    bus = await connectBus({ url: nats.url, name: "read-records-test" });
    const pub = (data: string, headers?: ReturnType<typeof recordHeaders>) =>
      bus!.publisher.publish("mcpq.rec.p.tool.echo", data, { headers });
    await pub(JSON.stringify(record("r-1")), recordHeaders("r-1"));
    await pub(JSON.stringify([record("r-2"), record("r-3"), { v: RECORD_VERSION, junk: true }]));
    await pub(JSON.stringify([record("r-3"), record("r-4")]));
    await pub("not json");
    let invalid = -1;
    const got = await collectRecords(bus, resolveSelection({}), {
      onProgress: (p) => void (invalid = p.invalid),
    });
    expect(got.map((r) => r.requestId)).toEqual(["r-1", "r-2", "r-3", "r-4"]);
    expect(invalid).toBe(2);
    // a limit counts records, not messages
    const two = await collectRecords(bus, resolveSelection({ limit: 2 }));
    expect(two.map((r) => r.requestId)).toEqual(["r-1", "r-2"]);
  });
});
