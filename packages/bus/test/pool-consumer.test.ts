import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import {
  BusEnvSchema,
  DEFAULT_BUS_LIMITS,
  STREAMS,
  busLimitsFromEnv,
  connectBus,
  ensurePoolConsumer,
  poolConsumer,
  subjects,
  type Bus,
} from "@mcpq/bus";

// A pool's durable consumer (packages/bus/src/pool.ts) against a real nats-server, and the
// broker limits every service derives from its environment (limits.ts, env-schema.ts).
describe("ensurePoolConsumer: one durable consumer per pool on mcpq.req.<pool>.>", () => {
  let bus: Bus | undefined;
  afterAll(async () => bus?.close());

  it("creates pool-<pool> with the pool's filter and the bounded delivery settings", async ({
    nats,
  }) => {
    bus = await connectBus({ url: nats.url, name: "pool-test" });
    const limits = { ...DEFAULT_BUS_LIMITS, ackWaitMs: 12_000, maxAckPending: 33, maxDeliver: 4 };
    const name = await ensurePoolConsumer(bus.jsm, "alpha", limits);
    expect(name).toBe(poolConsumer("alpha"));
    expect(name).toBe("pool-alpha");
    const info = await bus.jsm.consumers.info(STREAMS.requests, name);
    expect(info.config).toMatchObject({
      durable_name: "pool-alpha",
      filter_subject: "mcpq.req.alpha.>",
      ack_policy: "explicit",
      ack_wait: 12_000 * 1_000_000,
      max_ack_pending: 33,
      max_deliver: 4,
    });
  });

  it("updates the existing consumer in place when the limits change (same name, new bounds)", async () => {
    const b = bus!;
    await ensurePoolConsumer(b.jsm, "alpha", {
      ...DEFAULT_BUS_LIMITS,
      ackWaitMs: 5_000,
      maxAckPending: 7,
      maxDeliver: 2,
    });
    const info = await b.jsm.consumers.info(STREAMS.requests, "pool-alpha");
    expect(info.config).toMatchObject({
      filter_subject: "mcpq.req.alpha.>",
      ack_wait: 5_000 * 1_000_000,
      max_ack_pending: 7,
      max_deliver: 2,
    });
    const names: string[] = [];
    for await (const c of b.jsm.consumers.list(STREAMS.requests)) names.push(c.name);
    expect(names.filter((n) => n === "pool-alpha")).toHaveLength(1);
  });

  it("concurrent first calls (workers of one pool starting together) end with one consumer", async () => {
    const b = bus!;
    const names = await Promise.all(
      Array.from({ length: 6 }, () => ensurePoolConsumer(b.jsm, "racing", DEFAULT_BUS_LIMITS)),
    );
    expect(new Set(names)).toEqual(new Set(["pool-racing"]));
    const all: string[] = [];
    for await (const c of b.jsm.consumers.list(STREAMS.requests)) all.push(c.name);
    expect(all.filter((n) => n === "pool-racing")).toHaveLength(1);
  });

  it("each pool's consumer sees only its own pool's requests", async () => {
    const b = bus!;
    await ensurePoolConsumer(b.jsm, "beta", DEFAULT_BUS_LIMITS);
    await b.js.publish(subjects.request("alpha", "tool", "echo"), "{}");
    await b.js.publish(subjects.request("alpha", "prompt", "greet"), "{}");
    await b.js.publish(subjects.request("beta", "tool", "echo"), "{}");
    const pending = async (n: string) =>
      (await b.jsm.consumers.info(STREAMS.requests, n)).num_pending;
    expect(await pending("pool-alpha")).toBe(2);
    expect(await pending("pool-beta")).toBe(1);
  });
});

describe("busLimitsFromEnv", () => {
  it("is DEFAULT_BUS_LIMITS for an empty environment", () => {
    expect(busLimitsFromEnv(BusEnvSchema.parse({}))).toEqual(DEFAULT_BUS_LIMITS);
  });

  it("maps each MCPQ_* broker variable onto its limit", () => {
    const l = busLimitsFromEnv(
      BusEnvSchema.parse({
        MCPQ_MAX_ACK_PENDING: "7",
        MCPQ_ACK_WAIT_MS: "1500",
        MCPQ_MAX_DELIVER: "3",
        MCPQ_REQ_STREAM_MAX_MSGS: "10",
        MCPQ_REQ_MAX_PER_TARGET: "0",
        MCPQ_REQ_STORAGE: "file",
        MCPQ_REGISTRY_TTL_MS: "4000",
      }),
    );
    expect(l).toMatchObject({
      maxAckPending: 7,
      ackWaitMs: 1_500,
      maxDeliver: 3,
      requestStreamMaxMsgs: 10,
      requestStreamMaxPerTarget: 0,
      requestStorage: "file",
      registryTtlMs: 4_000,
      duplicateWindowMs: DEFAULT_BUS_LIMITS.duplicateWindowMs,
    });
  });

  it("refuses a negative or non-numeric bound, naming the variable", () => {
    const r = BusEnvSchema.safeParse({ MCPQ_MAX_ACK_PENDING: "-1", MCPQ_OUT_STORAGE: "disk" });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join("."))).toEqual(
      expect.arrayContaining(["MCPQ_MAX_ACK_PENDING", "MCPQ_OUT_STORAGE"]),
    );
  });
});
