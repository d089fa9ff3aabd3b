/**
 * bombing: S sessions (default 20) offered `multiplier` × capacity (default 10×) for a fixed
 * time, open loop, from a separate generator process (../storm/storm-proc.ts: raw HTTP/1.1
 * keep-alive connections, one request each at a time, or one WebSocket per session with a
 * bounded window). Every scheduled request ends in exactly one class — ok, rejected (explicit
 * retryable refusal), deadline (the server's -32001 at the stated deadline), error, lost (no
 * answer by deadline + grace), held (never sent: the generator's lanes were all busy) — and
 * the done-criterion of the overload issue is evaluated: deadline = error = lost = 0, edge
 * RSS growth ≤ 256 MiB, probe back within 2× its pre-storm median within 5 s.
 *
 * Recovery: a 16-in-flight probe on its own sessions and connection pool (in this process)
 * measures the time from the storm's end until the p50 of a 200 ms sliding window is within
 * 2× the pre-storm median (and ≥ 90 % of that window's probe requests succeed); bounded to 30 s.
 */
import { closedLoop, outcomeLine } from "../lib/drivers.js";
import { median } from "../lib/histogram.js";
import type { WorkloadResult } from "../lib/report.js";
import { mib } from "../lib/procstat.js";
import {
  openSessions,
  failuresLine,
  transportLabel,
  type Target,
  type TransportKind,
} from "../lib/target.js";
import { startStorm, type StormResult } from "../storm/storm.js";
import { cpuSet, defaultLog, rssSampler, type Log } from "./common.js";

export interface BombingOpts {
  transport: TransportKind;
  capacity: number;
  multiplier?: number;
  sessions?: number;
  stormMs?: number;
  /** HTTP: keep-alive connections per storm session (one request each at a time); default 50 */
  connectionsPerSession?: number;
  /** WebSocket: requests one storm socket carries at once; default 1000 (admitted requests hold their slot while they queue, so a narrow window throttles the offer) */
  window?: number;
  /** the storm client's patience, from each request's scheduled time; default 5 s */
  timeoutMs?: number;
  /** how long past the stated deadline an answer is still awaited before it counts as lost; default 1 s */
  graceMs?: number;
  /** how long a due request waits for a free generator lane before it counts as held; default 250 ms */
  maxHoldMs?: number;
  /**
   * Plain clients (the overload issue's storm): no `io.mcpq/*` deadline hints, 200 connections
   * per session (4,000 over 20 sessions) spread over source addresses 127.0.0.2… (the edge
   * bounds the connections of one client address), a 30 s client timeout and no grace. `lost`
   * is then a request that hung until the client gave up. Id `bombing-http-plain-10x`.
   */
  plain?: boolean;
  preStormMs?: number;
  recoveryBoundMs?: number;
  windowMs?: number;
  log?: Log;
}

/** The overload issue's done-criterion. */
const CRITERION = { rssGrowthMiB: 256, recoveryS: 5, probeFactor: 2 } as const;

export async function runBombing(target: Target, o: BombingOpts): Promise<WorkloadResult> {
  const log = o.log ?? defaultLog;
  const S = o.sessions ?? 20;
  const mult = o.multiplier ?? 10;
  const rate = Math.max(1, Math.round(o.capacity * mult));
  const stormMs = o.stormMs ?? 10_000;
  const windowMs = o.windowMs ?? 200;
  const bound = o.recoveryBoundMs ?? 30_000;
  const plain = o.plain === true;
  const timeoutMs = o.timeoutMs ?? (plain ? 30_000 : 5000);
  const graceMs = o.graceMs ?? (plain ? 0 : 1000);
  const lanes = o.transport === "http" ? (o.connectionsPerSession ?? (plain ? 200 : 50)) : 1;
  const id = `bombing-${o.transport}${plain ? "-plain" : ""}-${mult}x`;
  const stormUrl = o.transport === "http" ? target.mcpUrl : target.wsUrl;
  if (!stormUrl) throw new Error(`${id}: target has no ${o.transport} URL`);

  const storm = startStorm({
    transport: o.transport,
    url: stormUrl,
    toolName: target.toolName ?? "echo",
    sessions: S,
    lanesPerSession: lanes,
    window: o.transport === "http" ? 1 : (o.window ?? 1000),
    ratePerS: rate,
    durationMs: stormMs,
    timeoutMs,
    graceMs,
    maxHoldMs: o.maxHoldMs ?? 250,
    payloadBytes: 32,
    tag: id,
    hints: !plain,
    ...(plain ? { sourceAddresses: { first: 2, perAddress: 500 } } : {}),
  });
  const probe = await openSessions(target, o.transport, 16, { connections: 16 });
  try {
    const opened = await storm.ready;
    if (opened.sessions === 0 || probe.sessions.length === 0)
      throw new Error(
        `${id}: could not open sessions (storm: ${opened.errors.join("; ")}, probe: ${failuresLine(probe.failures)})`,
      );

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
      `    ${id}: pre-storm probe p50=${preP50}us (${Math.round(pre.ok_in_window / pre.duration_s)}/s); storm ${rate}/s (${mult}× ${o.capacity}) for ${stormMs / 1000}s over ${opened.sessions} sessions`,
    );

    // 2. storm
    rss.start();
    const cpu = cpuSet(target, { storm: storm.pid });
    cpu.start();
    storm.go();

    // 3. recovery probe starts when the storm stops scheduling
    await storm.ended;
    const stormEndMs = performance.now();
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
        p50 <= CRITERION.probeFactor * preP50 &&
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

    const st = await storm.result; // every storm request settled (bounded by timeout + grace)
    await rss.stop();
    const rssAfter = await rss.sampleNow();
    const c = st.classes;
    const rssGrowth =
      mib(rss.peak) !== null && mib(rssBefore) !== null ? mib(rss.peak)! - mib(rssBefore)! : null;
    const criterion = {
      only_ok_or_rejected: c.deadline + c.error + c.lost === 0,
      rss_growth_mib: rssGrowth,
      rss_ok: rssGrowth !== null && rssGrowth <= CRITERION.rssGrowthMiB,
      recovery_ok: recoveryS !== null && recoveryS <= CRITERION.recoveryS,
      offered_10x_sent: st.achieved_send_rate >= 0.9 * rate,
    };
    log(
      `    ${id}: storm ${classLine(st)}; sent ${st.achieved_send_rate}/s of ${rate}/s offered, answered ${st.answered_rate}/s; ` +
        `recovery ${recoveryS === null ? `NOT within ${bound / 1000}s` : `${recoveryS}s`}; criterion ${JSON.stringify(criterion)}`,
    );
    const accounted = Object.values(c).reduce((a, b) => a + b, 0);
    if (accounted !== st.scheduled)
      log(`    WARNING: ${st.scheduled - accounted} storm requests unaccounted`);

    const failed = c.deadline + c.error + c.lost;
    return {
      workload_id: id,
      target: target.name,
      transport: transportLabel(o.transport),
      sessions: opened.sessions,
      in_flight: null,
      duration_s: stormMs / 1000,
      requests: st.sent,
      throughput_msg_per_s: Math.round((c.ok / (stormMs / 1000)) * 10) / 10,
      latency_p50_us: st.ok_latency.p50_us,
      latency_p95_us: st.ok_latency.p95_us,
      latency_p99_us: st.ok_latency.p99_us,
      latency_p999_us: st.ok_latency.p999_us,
      // sent requests that ended in neither a correct result nor an explicit rejection
      error_rate: st.sent > 0 ? Math.round((failed / st.sent) * 1e6) / 1e6 : 0,
      errors_by_code: st.codes,
      edge_rss_mib: mib(rss.peak),
      per_session_kib: null,
      cpu_pct: cpuStorm.cpu_pct,
      extra: {
        ...cpuStorm.extra,
        classes: c,
        criterion,
        scheduled: st.scheduled,
        unaccounted: st.scheduled - accounted,
        capacity_msg_per_s: o.capacity,
        multiplier: mult,
        offered_rate_msg_per_s: rate,
        achieved_send_rate_msg_per_s: st.achieved_send_rate,
        answered_rate_msg_per_s: st.answered_rate,
        generator: {
          lanes_per_session: lanes,
          plain,
          window: o.transport === "http" ? 1 : (o.window ?? 1000),
          timeout_ms: timeoutMs,
          grace_ms: graceMs,
          max_hold_ms: o.maxHoldMs ?? 250,
          max_in_flight: st.max_in_flight,
          max_held: st.max_held,
          cpu_pct: st.client_cpu_pct,
          send_lag: st.send_lag,
        },
        // the overload issue's classes: timed out = hung until the client's timeout, or the
        // server's own -32001
        client_classes: {
          ok: c.ok,
          refused: c.rejected,
          timed_out: c.lost + c.deadline,
          error: c.error,
          never_sent: c.held,
        },
        admitted_p99_us: st.ok_service.p99_us,
        ok_service: st.ok_service,
        rejected_service: st.rejected_service,
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
    };
  } finally {
    storm.kill();
    await probe.close();
  }
}

function classLine(st: StormResult): string {
  return Object.entries(st.classes)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}
