import { describe, expect } from "vitest";
import { natsTest as it, eventually, replayFixtures } from "@mcpq/testkit";
import {
  RecordSchema,
  STREAMS,
  connectBus,
  encodeEnvelope,
  subjects,
  type Bus,
  type TargetKind,
} from "@mcpq/bus";
import { loadWorkerConfig, startWorker } from "../src/index.js";

/** Recorded from the dev stack (`mcpq dev`) with `mcpq replay --export` — see docs/replay.md. */
const FIXTURES = new URL("./fixtures/example.jsonl", import.meta.url);

const worker = (natsUrl: string, env: Record<string, string> = {}) =>
  startWorker(
    loadWorkerConfig({
      MCPQ_NATS_URL: natsUrl,
      MCPQ_CATALOGS: "example",
      MCPQ_LOG_LEVEL: "silent",
      ...env,
    }),
  );

/** Sends one request straight to a pool's subject, as a live (non-replay) session would, and waits for its response. */
async function call(
  bus: Bus,
  pool: string,
  kind: TargetKind,
  target: string,
  method: string,
  params: Record<string, unknown>,
): Promise<void> {
  const requestId = `t-${Math.random().toString(36).slice(2)}`;
  const session = "s-live";
  const replyTo = subjects.outbound(session, requestId);
  const sub = bus.nc.subscribe(replyTo, { max: 1 });
  const headers = encodeEnvelope({
    requestId,
    session,
    principal: "tester",
    protocolVersion: "2025-11-25",
    deadline: Date.now() + 10_000,
    replyTo,
    logLevel: undefined,
    targetKind: kind,
    target,
    edge: "test",
    receivedAt: Date.now(),
    traceparent: undefined,
  });
  await bus.js.publish(
    subjects.request(pool, kind, target),
    JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    { headers },
  );
  for await (const _ of sub) break;
}

describe("replay fixtures and recording settings", () => {
  it("the committed example fixtures replay unchanged against a fresh example worker", async ({
    nats,
  }) => {
    const w = await worker(nats.url);
    try {
      const report = await replayFixtures(FIXTURES, { natsUrl: nats.url, pool: "example" });
      expect(report.counts).toMatchObject({ unchanged: 8, changed: 0, failed: 0, skipped: 0 });
    } finally {
      await w.close();
    }
  });

  it("MCPQ_RECORD_SAMPLE samples per tool; MCPQ_RECORD=off records nothing", async ({ nats }) => {
    const sampled = await worker(nats.url, {
      MCPQ_POOL: "sampled",
      MCPQ_RECORD_SAMPLE: "*=1,echo=0",
    });
    const off = await worker(nats.url, { MCPQ_POOL: "off", MCPQ_RECORD: "off" });
    const bus = await connectBus({ url: nats.url, name: "t" });
    try {
      await call(bus, "off", "tool", "add", "tools/call", {
        name: "add",
        arguments: { a: 1, b: 1 },
      });
      await call(bus, "sampled", "tool", "echo", "tools/call", {
        name: "echo",
        arguments: { text: "x" },
      });
      await call(bus, "sampled", "tool", "add", "tools/call", {
        name: "add",
        arguments: { a: 1, b: 2 },
      });
      // Records of one worker are published in order: once add's is stored, echo's would be too.
      const info = await eventually(async () => {
        const i = await bus.jsm.streams.info(STREAMS.records, { subjects_filter: ">" });
        return i.state.subjects && Object.keys(i.state.subjects).length > 0 ? i : null;
      });
      expect(info.state.subjects).toEqual({ "mcpq.rec.sampled.tool.add": 1 });
      // The "off" worker answered first; give a (wrongly) recorded message time to show up anyway.
      await new Promise((r) => setTimeout(r, 300));
      expect((await bus.jsm.streams.info(STREAMS.records)).state.messages).toBe(1);
      const m = await bus.jsm.streams.getMessage(STREAMS.records, {
        last_by_subj: "mcpq.rec.sampled.tool.add",
      });
      expect(RecordSchema.parse(m!.json())).toMatchObject({
        pool: "sampled",
        principal: "tester",
        session: "s-live",
        target: "add",
      });
    } finally {
      await bus.close();
      await sampled.close();
      await off.close();
    }
  });
});
