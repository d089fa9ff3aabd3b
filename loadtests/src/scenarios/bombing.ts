/**
 * bombing: S sessions (default 20) offered `multiplier` × capacity (default 10×) for a fixed
 * time, open loop. Every scheduled request ends in exactly one class: ok, rejected
 * (HTTP 429/503, or JSON-RPC -32000..-32099 whose message says rate limited / overloaded /
 * unavailable …), timeout (no response within the timeout of the request's *scheduled* time,
 * including requests that waited in the client FIFO because all `connections` slots were busy,
 * and requests still queued client-side when the storm stops: "queued_at_end"), error. Then a 16-in-flight probe on separate sessions and a
 * separate connection pool (so it does not queue behind the storm client-side) measures
 * recovery: time from storm end until the p50 of a 200 ms sliding window is within 2× the
 * pre-storm median (and ≥90 % of that window's probe requests succeed); bounded to 30 s.
 */
import { closedLoop, openLoop, outcomeLine } from "../lib/drivers.js";
import { median } from "../lib/histogram.js";
import { makeResult, type WorkloadResult } from "../lib/report.js";
import { mib } from "../lib/procstat.js";
import {
  openSessions,
  failuresLine,
  transportLabel,
  type Target,
  type TransportKind,
} from "../lib/target.js";
import { cpuSet, defaultLog, rssSampler, type Log } from "./common.js";

export interface BombingOpts {
  transport: TransportKind;
  capacity: number;
  multiplier?: number;
  sessions?: number;
  stormMs?: number;
  /** requests the storm keeps on the wire at once (= HTTP pool connections); default 256 */
  connections?: number;
  /** timeout measured from each request's scheduled send time; default 5 s */
  timeoutMs?: number;
  preStormMs?: number;
  recoveryBoundMs?: number;
  windowMs?: number;
  log?: Log;
}

export async function runBombing(target: Target, o: BombingOpts): Promise<WorkloadResult> {
  const log = o.log ?? defaultLog;
  const S = o.sessions ?? 20;
  const mult = o.multiplier ?? 10;
  const rate = Math.max(1, Math.round(o.capacity * mult));
  const stormMs = o.stormMs ?? 10_000;
  const windowMs = o.windowMs ?? 200;
  const bound = o.recoveryBoundMs ?? 30_000;
  const id = `bombing-${o.transport}-${mult}x`;

  const storm = await openSessions(target, o.transport, S, { connections: o.connections ?? 256 });
  const probe = await openSessions(target, o.transport, 16, { connections: 16 });
  if (storm.sessions.length === 0 || probe.sessions.length === 0) {
    await storm.close();
    await probe.close();
    throw new Error(
      `${id}: could not open sessions (storm: ${failuresLine(storm.failures)}, probe: ${failuresLine(probe.failures)})`,
    );
  }

  const rss = rssSampler(target, 200);
  const rssBefore = await rss.sampleNow();

  // 1. pre-storm reference
  const pre = await closedLoop({
    sessions: probe.sessions,
    inFlight: 16,
    durationMs: o.preStormMs ?? 2000,
    warmupMs: 1000,
    tag: `${id}-pre`,
  });
  const preP50 = pre.hist.p(50);
  if (preP50 === null)
    throw new Error(`${id}: pre-storm probe got no successful response (${outcomeLine(pre)})`);
  log(
    `    ${id}: pre-storm probe p50=${preP50}us (${Math.round(pre.ok_in_window / pre.duration_s)}/s); storm ${rate}/s (${mult}× ${o.capacity}) for ${stormMs / 1000}s over ${storm.sessions.length} sessions`,
  );

  // 2. storm
  rss.start();
  const cpu = cpuSet(target);
  cpu.start();
  let stormEndMs = 0;
  let scheduleEnded: () => void = () => undefined;
  const scheduleEnd = new Promise<void>((r) => (scheduleEnded = r));
  const stormP = openLoop({
    sessions: storm.sessions,
    ratePerS: rate,
    durationMs: stormMs,
    timeoutMs: o.timeoutMs ?? 5000,
    maxInFlight: o.connections ?? 256,
    expireQueuedAtEnd: true,
    tag: id,
    onScheduleEnd: () => scheduleEnded(),
  });

  // 3. recovery probe starts when the storm stops scheduling
  await scheduleEnd;
  stormEndMs = performance.now();
  const cpuStorm = cpu.stop();
  const win: { t: number; lat: number; ok: boolean }[] = [];
  let recoveredAt: number | null = null;
  const check = setInterval(() => {
    const now = performance.now();
    while (win.length && win[0]!.t < now - windowMs) win.shift();
    if (win.length < 3) return;
    const okLat = win.filter((x) => x.ok).map((x) => x.lat);
    const p50 = median(okLat);
    if (
      p50 !== null &&
      p50 <= 2 * preP50 &&
      okLat.length / win.length >= 0.9 &&
      recoveredAt === null
    )
      recoveredAt = now;
  }, 20);
  const rec = await closedLoop({
    sessions: probe.sessions,
    inFlight: 16,
    durationMs: bound,
    warmupMs: 0,
    timeoutMs: 5000,
    tag: `${id}-rec`,
    onResult: (end, lat, out) => win.push({ t: end, lat, ok: out.kind === "ok" }),
    stop: () => recoveredAt !== null,
  });
  clearInterval(check);
  const recoveryS =
    recoveredAt !== null ? Math.round(((recoveredAt - stormEndMs) / 1000) * 1000) / 1000 : null;

  const st = await stormP; // all storm requests settled (each bounded by its timeout)
  await rss.stop();
  const rssAfter = await rss.sampleNow();
  await storm.close();
  await probe.close();

  const accounted = st.outcomes.ok + st.outcomes.rejected + st.outcomes.timeout + st.outcomes.error;
  log(
    `    ${id}: storm ${outcomeLine(st)} (scheduled ${st.scheduled}, accounted ${accounted}, sent ${st.achieved_send_rate}/s); ` +
      `recovery ${recoveryS === null ? `NOT within ${bound / 1000}s` : `${recoveryS}s`}`,
  );
  if (accounted !== st.scheduled)
    log(`    WARNING: ${st.scheduled - accounted} storm requests unaccounted`);

  return makeResult({
    workload_id: id,
    target: target.name,
    transport: transportLabel(o.transport),
    sessions: storm.sessions.length,
    in_flight: null,
    duration_s: st.duration_s,
    requests: st.requests,
    ok: st.ok,
    hist: st.hist,
    errors_by_code: st.errors_by_code,
    edge_rss_bytes: rss.peak,
    cpu_pct: cpuStorm.cpu_pct,
    extra: {
      ...cpuStorm.extra,
      outcomes: st.outcomes,
      scheduled: st.scheduled,
      unaccounted: st.scheduled - accounted,
      capacity_msg_per_s: o.capacity,
      multiplier: mult,
      offered_rate_msg_per_s: rate,
      achieved_send_rate_msg_per_s: st.achieved_send_rate,
      send_lag_p99_us: st.send_lag_p99_us,
      max_in_flight: st.max_outstanding_seen,
      max_client_queue: st.max_queued_seen,
      never_sent: st.never_sent,
      client_limited: st.achieved_send_rate < 0.9 * rate && st.max_queued_seen < 2,
      pre_storm_p50_us: preP50,
      pre_storm_throughput_msg_per_s: Math.round(pre.ok_in_window / pre.duration_s),
      recovery_s: recoveryS,
      recovery_bound_s: bound / 1000,
      recovery_probe: {
        requests: rec.requests,
        outcomes: rec.outcomes,
        p50_us: rec.hist.p(50),
        p99_us: rec.hist.p(99),
      },
      edge_rss_before_mib: mib(rssBefore),
      edge_rss_after_mib: mib(rssAfter),
      edge_rss_peak_mib: mib(rss.peak),
    },
  });
}
