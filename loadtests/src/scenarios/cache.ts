/**
 * cache: closed loop at C in flight on the `echo` tool with a set hit rate. Texts come from a
 * hot set (64 texts, cached after their first call) or are unique (always a miss), so the hit
 * rate is a property of the workload, the same for every target; against mcpq with the
 * `bench` catalog (edge-cached echo) it is also read back from the edge's
 * `mcpq_edge_cache_lookups_total` (measured L1 hit ratio in `extra`).
 */
import { closedLoop, outcomeLine } from "../lib/drivers.js";
import { makeResult, type WorkloadResult } from "../lib/report.js";
import { openSessions, failuresLine, transportLabel, type Target } from "../lib/target.js";
import { cpuSet, defaultLog, rssSampler, type Log } from "./common.js";

export interface CacheOpts {
  /** 0..1: share of requests drawn from the hot set. */
  hitRate: number;
  concurrency: number;
  durationMs: number;
  warmupMs?: number;
  /** Label of the target variant (e.g. `mcpq-cache-off`). */
  label: string;
  log?: Log;
}

const HOT = 64;

/** The text of request `seq` at hit rate `rate`: deterministic, so every target sees the same sequence. */
function cacheText(rate: number, seq: number): string {
  const hot = (seq * 7919) % 100 < Math.round(rate * 100);
  return hot ? `hot:${seq % HOT}` : `cold:${seq}:${process.pid}:${Date.now()}`;
}

async function lookups(
  metricsUrl: string | undefined,
): Promise<{ hit: number; miss: number } | null> {
  if (!metricsUrl) return null;
  try {
    const text = await (await fetch(metricsUrl)).text();
    let hit = 0;
    let miss = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith("mcpq_edge_cache_lookups_total{") || !line.includes('layer="l1"'))
        continue;
      const v = Number(line.slice(line.lastIndexOf(" ") + 1));
      if (line.includes('outcome="hit"')) hit += v;
      else miss += v;
    }
    return { hit, miss };
  } catch {
    return null;
  }
}

export async function runCache(target: Target, o: CacheOpts): Promise<WorkloadResult> {
  const log = o.log ?? defaultLog;
  const C = o.concurrency;
  const id = `cache-${o.label}-hit${Math.round(o.hitRate * 100)}-c${C}`;
  const set = await openSessions(target, "http", C, { connections: C, concurrency: 32 });
  if (set.sessions.length === 0) {
    await set.close();
    throw new Error(`${id}: could not open any session (${failuresLine(set.failures)})`);
  }
  const rss = rssSampler(target);
  const cpu = cpuSet(target);
  await rss.sampleNow();
  const warm = o.warmupMs ?? 1000;
  let before: { hit: number; miss: number } | null = null;
  const meterTimer = setTimeout(() => {
    cpu.start();
    rss.start();
    void lookups(target.proc?.metricsUrl).then((v) => (before = v));
  }, warm);
  const st = await closedLoop({
    sessions: set.sessions,
    inFlight: C,
    durationMs: o.durationMs,
    warmupMs: warm,
    timeoutMs: 10_000,
    textFor: (seq) => cacheText(o.hitRate, seq),
  });
  clearTimeout(meterTimer);
  const c = cpu.stop();
  await rss.stop();
  await set.close();
  const after = await lookups(target.proc?.metricsUrl);
  const b = before as { hit: number; miss: number } | null;
  const measured =
    b && after && after.hit + after.miss > b.hit + b.miss
      ? (after.hit - b.hit) / (after.hit + after.miss - b.hit - b.miss)
      : null;
  const r = makeResult({
    workload_id: id,
    target: target.name,
    transport: transportLabel("http"),
    sessions: set.sessions.length,
    in_flight: C,
    duration_s: st.duration_s,
    requests: st.requests,
    ok: st.ok_in_window,
    hist: st.hist,
    errors_by_code: st.errors_by_code,
    edge_rss_bytes: rss.peak,
    cpu_pct: c.cpu_pct,
    extra: {
      ...c.extra,
      variant: o.label,
      hit_rate_offered: o.hitRate,
      l1_hit_ratio_measured: measured,
      outcomes: st.outcomes,
    },
  });
  log(
    `    ${id}: ${outcomeLine(st)}${measured === null ? "" : ` (L1 hit ratio ${(measured * 100).toFixed(1)} %)`}`,
  );
  return r;
}
