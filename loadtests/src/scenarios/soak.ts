/**
 * soak: N minutes open loop at a fraction (default 50 %) of capacity over S sessions;
 * reports edge RSS drift over the steady part (after the first 20 %: last − first steady
 * sample, and the least-squares slope in MiB/min), sampled every second.
 */
import { openLoop, outcomeLine } from "../lib/drivers.js";
import { makeResult, type WorkloadResult } from "../lib/report.js";
import { mib, sampleRss } from "../lib/procstat.js";
import {
  openSessions,
  failuresLine,
  transportLabel,
  type Target,
  type TransportKind,
} from "../lib/target.js";
import { cpuSet, defaultLog, type Log } from "./common.js";

export interface SoakOpts {
  transport: TransportKind;
  capacity: number;
  fraction?: number;
  minutes: number;
  sessions?: number;
  log?: Log;
}

export async function runSoak(target: Target, o: SoakOpts): Promise<WorkloadResult> {
  const log = o.log ?? defaultLog;
  const S = o.sessions ?? 25;
  const frac = o.fraction ?? 0.5;
  const rate = Math.max(1, Math.round(o.capacity * frac));
  const id = `soak-${o.transport}-${o.minutes}min`;
  const set = await openSessions(target, o.transport, S, { connections: 64 });
  if (set.sessions.length === 0)
    throw new Error(`${id}: no sessions (${failuresLine(set.failures)})`);
  const samples: { t: number; rss: number }[] = [];
  const t0 = performance.now();
  const sample = async () => {
    const v = await sampleRss(target.proc);
    if (v !== null) samples.push({ t: (performance.now() - t0) / 60_000, rss: v });
  };
  await sample();
  const timer = setInterval(() => void sample(), 1000);
  const cpu = cpuSet(target);
  cpu.start();
  log(`    ${id}: ${rate}/s (${frac * 100}% of ${o.capacity}) for ${o.minutes} min`);
  const st = await openLoop({
    sessions: set.sessions,
    ratePerS: rate,
    durationMs: o.minutes * 60_000,
    timeoutMs: 5000,
    maxInFlight: 64,
    tag: id,
  });
  const c = cpu.stop();
  clearInterval(timer);
  await sample();
  await set.close();
  // drift/slope over the steady part: skip the first 20 % (JIT, pools and session state warming up)
  const steady = samples.filter((x) => x.t >= 0.2 * o.minutes);
  let slope: number | null = null;
  if (steady.length >= 3) {
    const n = steady.length;
    const mx = steady.reduce((a, s) => a + s.t, 0) / n;
    const my = steady.reduce((a, s) => a + s.rss, 0) / n;
    let num = 0;
    let den = 0;
    for (const s of steady) {
      num += (s.t - mx) * (s.rss - my);
      den += (s.t - mx) ** 2;
    }
    slope = den > 0 ? Math.round((num / den / 1048576) * 100) / 100 : null;
  }
  const first = samples[0]?.rss ?? null;
  const steadyFirst = steady[0]?.rss ?? null;
  const last = samples[samples.length - 1]?.rss ?? null;
  const peak = samples.length ? Math.max(...samples.map((s) => s.rss)) : null;
  log(
    `    ${id}: ${outcomeLine(st)} rss ${mib(first)} → ${mib(last)} MiB (slope ${slope} MiB/min)`,
  );
  return makeResult({
    workload_id: id,
    target: target.name,
    transport: transportLabel(o.transport),
    sessions: S,
    in_flight: null,
    duration_s: st.duration_s,
    requests: st.requests,
    ok: st.ok,
    hist: st.hist,
    errors_by_code: st.errors_by_code,
    edge_rss_bytes: last,
    cpu_pct: c.cpu_pct,
    extra: {
      ...c.extra,
      outcomes: st.outcomes,
      offered_rate_msg_per_s: rate,
      achieved_send_rate_msg_per_s: st.achieved_send_rate,
      rss_first_mib: mib(first),
      rss_last_mib: mib(last),
      rss_peak_mib: mib(peak),
      rss_steady_first_mib: mib(steadyFirst),
      rss_drift_mib: steadyFirst !== null && last !== null ? mib(last - steadyFirst) : null,
      rss_slope_mib_per_min: slope,
      unaccounted: st.unaccounted,
    },
  });
}
