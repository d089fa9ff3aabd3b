// Provisioning against real nats-server processes: idempotent, replicas from one setting
// (MCPQ_REPLICAS) with per-stream overrides, file storage once replicated, reconciliation of an
// existing stream's replicas and limits, and a clear refusal of replicas a single server lacks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StorageType } from "@nats-io/jetstream";
import type { Logger } from "@mcpq/protocol";
import {
  eventually,
  startLocalCluster,
  startLocalNats,
  type LocalCluster,
  type LocalNats,
} from "@mcpq/testkit";
import {
  BUCKETS,
  BusEnvSchema,
  DEFAULT_BUS_LIMITS,
  STREAMS,
  busLimitsFromEnv,
  connectBus,
  ensurePoolConsumer,
  provision,
  type Bus,
  type BusLimits,
} from "../src/index.js";

interface Line {
  level: string;
  obj: object;
  msg: string | undefined;
}
function capture(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const l = {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => l,
  };
  return l;
}
const limitsFrom = (env: Record<string, string>): BusLimits =>
  busLimitsFromEnv(BusEnvSchema.parse(env));
const ALL_STREAMS = [
  STREAMS.requests,
  STREAMS.outbound,
  STREAMS.records,
  ...Object.values(BUCKETS).map((b) => `KV_${b}`),
];

describe("MCPQ_REPLICAS and storage settings", () => {
  it("default to 1 replica and memory for MCPQ_REQ/MCPQ_OUT; replicated means file unless set; overrides per stream", () => {
    const one = limitsFrom({});
    expect(one).toMatchObject({ replicas: 1, requestStorage: "memory", outboundStorage: "memory" });
    const three = limitsFrom({ MCPQ_REPLICAS: "3" });
    expect(three).toMatchObject({ replicas: 3, requestStorage: "file", outboundStorage: "file" });
    const mixed = limitsFrom({
      MCPQ_REPLICAS: "3",
      MCPQ_OUT_STORAGE: "memory",
      MCPQ_REC_REPLICAS: "1",
      MCPQ_REQ_REPLICAS: "1",
    });
    expect(mixed).toMatchObject({
      requestStorage: "memory",
      outboundStorage: "memory",
      recordReplicas: 1,
      requestReplicas: 1,
    });
    expect(BusEnvSchema.safeParse({ MCPQ_REPLICAS: "0" }).success).toBe(false);
    expect(BusEnvSchema.safeParse({ MCPQ_REPLICAS: "6" }).success).toBe(false);
  });
});

describe("provisioning on one server", () => {
  let nats: LocalNats;
  const buses: Bus[] = [];
  beforeAll(async () => {
    nats = await startLocalNats();
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    await nats?.stop();
  });

  it("creates every stream and bucket with one replica; a second provisioning changes nothing", async () => {
    const bus = await connectBus({ url: nats.url, name: "prov-1" });
    buses.push(bus);
    for (const name of ALL_STREAMS)
      expect((await bus.jsm.streams.info(name)).config.num_replicas).toBe(1);
    expect((await bus.jsm.streams.info(STREAMS.requests)).config.storage).toBe(StorageType.Memory);
    const log = capture();
    await provision(bus.jsm, bus.limits, { log, clustered: false });
    const again = await connectBus({ url: nats.url, name: "prov-2", log });
    buses.push(again);
    expect(log.lines).toEqual([]);
  });

  it("reconciles an existing stream's limits; keeps its storage with a warning naming the setting", async () => {
    const bus = buses[0]!;
    const log = capture();
    const limits: BusLimits = {
      ...DEFAULT_BUS_LIMITS,
      requestStreamMaxMsgs: 1234,
      requestStorage: "file",
    };
    await provision(bus.jsm, limits, { log, clustered: false });
    const cfg = (await bus.jsm.streams.info(STREAMS.requests)).config;
    expect(cfg.max_msgs).toBe(1234);
    expect(cfg.storage).toBe(StorageType.Memory);
    const warn = log.lines.find((l) => l.level === "warn");
    expect(warn?.msg).toContain("storage cannot change");
    expect(warn?.obj).toMatchObject({ stream: STREAMS.requests, setting: "storage" });
    expect(
      log.lines.some(
        (l) =>
          l.level === "info" &&
          l.obj &&
          (l.obj as { changed?: string[] }).changed?.includes("max_msgs"),
      ),
    ).toBe(true);
    await provision(bus.jsm, DEFAULT_BUS_LIMITS);
    expect((await bus.jsm.streams.info(STREAMS.requests)).config.max_msgs).toBe(
      DEFAULT_BUS_LIMITS.requestStreamMaxMsgs,
    );
  });

  it("a lowered bucket TTL (MCPQ_REGISTRY_TTL_MS) is applied, its duplicate window brought down with it", async () => {
    const bus = buses[0]!;
    const stream = `KV_${BUCKETS.registry}`;
    const before = (await bus.jsm.streams.info(stream)).config;
    const lower = before.max_age / 1_000_000 / 4;
    expect(before.duplicate_window).toBeGreaterThan(lower * 1_000_000);
    // A new process with a quarter of the TTL connects (the server refuses a max age below the
    // duplicate window, which would fail every connect).
    const low = await connectBus({
      url: nats.url,
      name: "prov-low-ttl",
      limits: { ...DEFAULT_BUS_LIMITS, registryTtlMs: lower },
    });
    buses.push(low);
    const after = (await bus.jsm.streams.info(stream)).config;
    expect(after.max_age).toBe(lower * 1_000_000);
    expect(after.duplicate_window).toBe(lower * 1_000_000);
    // And back up again.
    const again = await connectBus({ url: nats.url, name: "prov-ttl-back" });
    buses.push(again);
    expect((await bus.jsm.streams.info(stream)).config.max_age).toBe(before.max_age);
  });

  it("refuses 3 replicas for a new stream on a server that is not clustered, naming MCPQ_REPLICAS; an existing stream keeps its count with a warning", async () => {
    const bus = buses[0]!;
    const log = capture();
    await provision(bus.jsm, { ...DEFAULT_BUS_LIMITS, replicas: 3 }, { log, clustered: false });
    expect((await bus.jsm.streams.info(STREAMS.requests)).config.num_replicas).toBe(1);
    expect(
      log.lines.some((l) => l.level === "warn" && /not a JetStream cluster/.test(l.msg ?? "")),
    ).toBe(true);

    const fresh = await startLocalNats();
    try {
      const err = await connectBus({
        url: fresh.url,
        name: "prov-r3",
        limits: { replicas: 3 },
      }).catch((e: unknown) => e);
      expect(String(err)).toMatch(/MCPQ_REPLICAS/);
      expect(String(err)).toContain(STREAMS.requests);
    } finally {
      await fresh.stop();
    }
  });
});

describe("provisioning on a 3-node cluster", () => {
  let cluster: LocalCluster;
  const buses: Bus[] = [];
  beforeAll(async () => {
    cluster = await startLocalCluster({ nodes: 3 });
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    await cluster?.stop();
  });

  it("scales existing R1 streams and buckets to MCPQ_REPLICAS=3 and creates them on file", async () => {
    const r1 = await connectBus({ url: cluster.url, name: "prov-c1" });
    buses.push(r1);
    for (const name of ALL_STREAMS)
      expect((await r1.jsm.streams.info(name)).config.num_replicas).toBe(1);
    await ensurePoolConsumer(r1.jsm, "main", r1.limits);

    const log = capture();
    const r3 = await connectBus({
      url: cluster.url,
      name: "prov-c3",
      limits: limitsFrom({ MCPQ_REPLICAS: "3" }),
      log,
    });
    buses.push(r3);
    for (const name of ALL_STREAMS) {
      // A stream that has just scaled may be electing its leader: its info can time out once.
      const info = await eventually(() => r3.jsm.streams.info(name), { what: `${name} info` });
      expect(info.config.num_replicas, name).toBe(3);
    }
    // Storage of the existing memory streams cannot change: said, not silently ignored.
    expect(
      log.lines
        .filter((l) => l.level === "warn" && (l.obj as { setting?: string }).setting === "storage")
        .map((l) => (l.obj as { stream: string }).stream)
        .sort(),
    ).toEqual([STREAMS.outbound, STREAMS.requests].sort());
    // Every replica catches up: the cluster really holds three copies (a leader and two current peers).
    await eventually(
      async () => {
        const peers = (await r3.jsm.streams.info(STREAMS.records)).cluster?.replicas ?? [];
        return peers.length === 2 && peers.every((p) => p.current);
      },
      { timeoutMs: 30_000, what: "MCPQ_REC replicas current" },
    );

    // The pool consumer (replicas 0 = its stream's) follows the stream to three copies.
    await eventually(
      async () =>
        ((await r3.jsm.consumers.info(STREAMS.requests, "pool-main")).cluster?.replicas ?? [])
          .length === 2,
      { timeoutMs: 30_000, what: "pool consumer replicated" },
    );

    // A stream created fresh at R3 gets file storage (the replicated default).
    // A delete whose answer timed out may have happened: "not found" on the retry is done.
    await eventually(
      () =>
        r3.jsm.streams.delete(STREAMS.requests).catch((err: unknown) => {
          if (/not found/i.test(String(err))) return true;
          throw err;
        }),
      { what: "delete MCPQ_REQ" },
    );
    await provision(r3.jsm, r3.limits, { clustered: true });
    const req = (await eventually(() => r3.jsm.streams.info(STREAMS.requests))).config;
    expect(req).toMatchObject({ num_replicas: 3, storage: StorageType.File });
  });
});
