/**
 * The `cache` benchmark (issue 16): in one run, on free loopback ports,
 *  1. throughput over Streamable HTTP at C (default 64) of the `echo` tool at 0 %, 70 % and
 *     100 % hit rate: the SDK reference server, mcpq with MCPQ_CACHE=off, and mcpq with the
 *     cache on (worker catalog `bench`: echo opted in to edge caching);
 *  2. in-process micro figures against the same nats-server: L1 and L2 hit latency of
 *     `ResponseCache.dispatch` (p50/p99), local tag invalidation time, invalidation propagation
 *     to a second edge's cache over NATS (p50/p99), and heap per L1 entry.
 * Writes results/cache-<timestamp>/report.json and prints a table.
 *
 *   pnpm --filter @mcpq/loadtests cache-bench [--c 64] [--duration 8]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  cacheInvalidateContract,
  connectBus,
  openCacheBucket,
  registryContract,
  type Bus,
} from "@mcpq/bus";
import { CatalogView, ResponseCache, type ResponseCacheConfig } from "@mcpq/edge";
import { bool, num, parseArgs } from "./lib/args.js";
import { installExitHooks, startNats } from "./lib/procs.js";
import { LOADTESTS_DIR, startMcpq, startReferenceServer } from "./lib/stack.js";
import type { WorkloadResult } from "./lib/report.js";
import { runCache } from "./scenarios/cache.js";

const { flags: args } = parseArgs(process.argv.slice(2));
const C = num(args, "c", 64);
const durationMs = num(args, "duration", 8) * 1000;
const RATES = [0, 0.7, 1];

installExitHooks();
const log = (s: string) => console.log(s);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
function summary(samplesNs: number[]): { p50_us: number; p99_us: number; n: number } {
  const s = [...samplesNs].sort((a, b) => a - b);
  return {
    p50_us: Math.round(pct(s, 0.5) / 10) / 100,
    p99_us: Math.round(pct(s, 0.99) / 10) / 100,
    n: s.length,
  };
}

async function throughput(
  natsHandle: Awaited<ReturnType<typeof startNats>>,
): Promise<WorkloadResult[]> {
  const out: WorkloadResult[] = [];
  log("SDK reference server");
  const ref = await startReferenceServer();
  try {
    for (const rate of RATES)
      out.push(
        await runCache(ref.target, {
          hitRate: rate,
          concurrency: C,
          durationMs,
          label: "sdk-reference",
          log,
        }),
      );
  } finally {
    await ref.stop();
  }
  process.env.MCPQ_LT_CATALOG = "bench";
  for (const mode of ["off", "on"] as const) {
    log(`mcpq, MCPQ_CACHE=${mode}`);
    process.env.MCPQ_CACHE = mode;
    const m = await startMcpq(natsHandle);
    try {
      for (const rate of RATES)
        out.push(
          await runCache(m.target, {
            hitRate: rate,
            concurrency: C,
            durationMs,
            label: `mcpq-cache-${mode}`,
            log,
          }),
        );
    } finally {
      await m.stop();
    }
  }
  delete process.env.MCPQ_CACHE;
  return out;
}

const CFG: ResponseCacheConfig = {
  l1MaxEntries: 100_000,
  l1MaxBytes: 256 * 1024 * 1024,
  maxEntryBytes: 256 * 1024,
  maxTtlMs: 600_000,
  maxFlights: 10_000,
  maxWaiters: 1_000,
  l2TimeoutMs: 1_000,
};

async function micro(natsUrl: string): Promise<Record<string, unknown>> {
  const buses: Bus[] = [];
  const bus = async (name: string) => {
    const b = await connectBus({ url: natsUrl, name });
    buses.push(b);
    return b;
  };
  const w = await bus("micro-worker");
  // A registry entry declaring `echo` edge-cacheable (what a bench-catalog worker publishes).
  const catalog = {
    tools: [{ name: "echo", description: "echo", inputSchema: { type: "object" as const } }],
    resources: [],
    resourceTemplates: [],
    prompts: [],
    cacheHints: {
      edge: { tools: { echo: { ttlMs: 600_000, scope: "public" as const, tags: ["bench"] } } },
    },
  };
  await w.kv.registry.put(
    "micro.w1",
    registryContract.encode({
      workerId: "w1",
      pool: "micro",
      heartbeatAt: Date.now(),
      ttlMs: 600_000,
      catalog,
    }),
  );
  const edge = async (name: string, cfg: ResponseCacheConfig) => {
    const b = await bus(name);
    const view = new CatalogView(b);
    await view.start();
    const l2 = await openCacheBucket(b, {
      maxBytes: 256 * 1024 * 1024,
      maxAgeMs: cfg.maxTtlMs,
      storage: "memory",
      maxValueBytes: cfg.maxEntryBytes + 32,
    });
    const cache = new ResponseCache({ config: cfg, bus: b, catalog: view, l2 });
    cache.start();
    return { cache, view, bus: b };
  };
  const a = await edge("micro-edge-a", CFG);
  const b = await edge("micro-edge-b", CFG);
  const l2only = await edge("micro-edge-l2", { ...CFG, l1MaxEntries: 0 });
  const session = {
    id: "s-micro",
    principal: "p",
    protocolVersion: "2025-11-25" as const,
    clientInfo: {},
    clientCapabilities: {},
    initialized: true,
    createdAt: 0,
    lastSeenAt: 0,
  };
  let sent = 0;
  const stream = { id: "x", sink: { closed: false, send: () => void sent++ } };
  const req = (text: string, id: number) => ({
    jsonrpc: "2.0" as const,
    id,
    method: "tools/call",
    params: { name: "echo", arguments: { text } },
  });
  const answer = (text: string) =>
    JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text }] } });
  const routed = { accepted: Promise.resolve(), done: Promise.resolve() };
  const route = (text: string) => (onAnswer?: (json: string) => void) => {
    onAnswer?.(answer(text));
    return Promise.resolve(routed);
  };
  const N = 10_000;
  const text = (i: number) => `hot:${i}:${"x".repeat(16)}`;
  for (let i = 0; i < N; i++)
    await a.cache.dispatch(session, req(text(i), i), stream, route(text(i)));
  // Wait for the L2 writes (not on the answer path).
  for (;;) {
    const st = await (
      await openCacheBucket(w, {
        maxBytes: 256 * 1024 * 1024,
        maxAgeMs: CFG.maxTtlMs,
        storage: "memory",
        maxValueBytes: CFG.maxEntryBytes + 32,
      })
    ).status();
    if (st.values >= N) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const timeHits = async (cache: ResponseCache, count: number) => {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      const t = text(i % N);
      const r = req(t, i);
      const t0 = process.hrtime.bigint();
      await cache.dispatch(session, r, stream, route(t));
      samples.push(Number(process.hrtime.bigint() - t0));
    }
    return samples;
  };
  await timeHits(a.cache, 20_000); // warm-up (JIT)
  const l1 = summary(await timeHits(a.cache, 100_000));
  const l2 = summary(await timeHits(l2only.cache, 5_000));
  // Raw L1 lookup (the LRU get on a built key), beside the full dispatch path.
  const rawKeys = Array.from({ length: 1000 }, (_, i) =>
    a.cache.lookupKey(session, req(text(i), i))!,
  );
  const rawSamples: number[] = [];
  for (let i = 0; i < 100_000; i++) {
    const t0 = process.hrtime.bigint();
    a.cache.l1Get(rawKeys[i % 1000]!);
    rawSamples.push(Number(process.hrtime.bigint() - t0));
  }
  const l1Raw = summary(rawSamples);

  // Tag invalidation, local (edge A with N entries): the eviction sweep itself.
  const tagLocal: number[] = [];
  for (let k = 0; k < 5; k++) {
    for (let i = 0; i < N; i++)
      await a.cache.dispatch(session, req(text(i), i), stream, route(text(i)));
    const t0 = process.hrtime.bigint();
    a.cache.evictTags(["bench"]);
    tagLocal.push(Number(process.hrtime.bigint() - t0));
  }
  // Propagation: a worker publishes the tag invalidation; time until edge B's L1 is empty.
  const prop: number[] = [];
  for (let k = 0; k < 50; k++) {
    for (let i = 0; i < 100; i++)
      await b.cache.dispatch(session, req(text(i), i), stream, route(text(i)));
    if (b.cache.l1Size === 0) throw new Error("edge B did not fill");
    const t0 = process.hrtime.bigint();
    w.nc.publish(
      cacheInvalidateContract.subject,
      cacheInvalidateContract.encode({ tags: ["bench"] }),
    );
    while (b.cache.l1Size > 0) await new Promise((r) => setImmediate(r));
    prop.push(Number(process.hrtime.bigint() - t0));
  }

  // Heap per L1 entry: a fresh L1-only cache filled with M small results.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const solo = new ResponseCache({ config: CFG, bus: a.bus, catalog: a.view });
  solo.start();
  const M = 50_000;
  gc();
  const h0 = process.memoryUsage().heapUsed;
  for (let i = 0; i < M; i++)
    await solo.dispatch(session, req(`m:${i}`, i), stream, route(`m:${i}`));
  gc();
  const h1 = process.memoryUsage().heapUsed;
  const perEntry = Math.round((h1 - h0) / M);
  const sampleBytes = answer("m:12345").length;

  for (const c of [a, b, l2only]) {
    c.cache.stop();
    c.view.stop();
  }
  solo.stop();
  await Promise.all(buses.map((x) => x.close()));
  return {
    l1_hit_dispatch: l1,
    l1_lookup_raw: l1Raw,
    l2_hit_dispatch: l2,
    tag_invalidation_local_10k_entries: summary(tagLocal),
    propagation_to_second_edge: summary(prop),
    heap_bytes_per_l1_entry: perEntry,
    entry_result_json_bytes: sampleBytes,
    sink_sends: sent,
  };
}

const nats = await startNats();
try {
  const microFigures = await micro(nats.url);
  log(JSON.stringify(microFigures, null, 2));
  const results = bool(args, "skip-throughput") ? [] : await throughput(nats);
  const dir = join(
    LOADTESTS_DIR,
    "results",
    `cache-${new Date().toISOString().replace(/[:.]/g, "-")}`,
  );
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "report.json"),
    JSON.stringify(
      { concurrency: C, duration_ms: durationMs, micro: microFigures, results },
      null,
      2,
    ),
  );
  log("\n| variant | hit rate | msg/s | p50 µs | p99 µs | L1 hit ratio measured |");
  log("| --- | --- | --- | --- | --- | --- |");
  for (const r of results) {
    const x = r.extra as {
      variant: string;
      hit_rate_offered: number;
      l1_hit_ratio_measured: number | null;
    };
    log(
      `| ${x.variant} | ${x.hit_rate_offered * 100} % | ${r.throughput_msg_per_s} | ${r.latency_p50_us} | ${r.latency_p99_us} | ${x.l1_hit_ratio_measured === null ? "-" : `${(x.l1_hit_ratio_measured * 100).toFixed(1)} %`} |`,
    );
  }
  log(`\nreport: ${dir}/report.json`);
} finally {
  await nats.stop();
}
process.exit(0);
