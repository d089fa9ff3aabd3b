/**
 * baseline: S sessions × R msg/s each (default 25 × 100), open loop on a timestamp grid;
 * latency measured from the scheduled send time (coordinated-omission free).
 */
import { openLoop, outcomeLine } from "../lib/drivers.js";
import { makeResult, type WorkloadResult } from "../lib/report.js";
import {
  openSessions,
  failuresLine,
  transportLabel,
  type Target,
  type TransportKind,
} from "../lib/target.js";
import { cpuSet, defaultLog, rssSampler, type Log } from "./common.js";

export interface BaselineOpts {
  transport: TransportKind;
  sessions?: number;
  ratePerSession?: number;
  durationMs: number;
  timeoutMs?: number;
  payloadBytes?: number;
  log?: Log;
}

export async function runBaseline(target: Target, o: BaselineOpts): Promise<WorkloadResult> {
  const log = o.log ?? defaultLog;
  const S = o.sessions ?? 25;
  const R = o.ratePerSession ?? 100;
  const id = `baseline-${o.transport}-${S}x${R}`;
  const set = await openSessions(target, o.transport, S, { connections: Math.max(S, 64) });
  if (set.sessions.length < S) {
    await set.close();
    throw new Error(
      `${id}: opened ${set.sessions.length}/${S} sessions (${failuresLine(set.failures)})`,
    );
  }
  const rss = rssSampler(target);
  const cpu = cpuSet(target);
  await rss.sampleNow();
  cpu.start();
  rss.start();
  const st = await openLoop({
    sessions: set.sessions,
    ratePerS: S * R,
    durationMs: o.durationMs,
    timeoutMs: o.timeoutMs ?? 5000,
    maxInFlight: Math.max(S, 64),
    payloadBytes: o.payloadBytes,
    tag: id,
  });
  const c = cpu.stop();
  await rss.stop();
  await set.close();
  log(
    `    ${id}: ${outcomeLine(st)} offered=${st.offered_rate}/s sent=${st.achieved_send_rate}/s send_lag_p99=${st.send_lag_p99_us}us`,
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
    edge_rss_bytes: rss.peak,
    cpu_pct: c.cpu_pct,
    extra: {
      ...c.extra,
      outcomes: st.outcomes,
      offered_rate_msg_per_s: st.offered_rate,
      achieved_send_rate_msg_per_s: st.achieved_send_rate,
      send_lag_p50_us: st.send_lag_p50_us,
      send_lag_p99_us: st.send_lag_p99_us,
      service_time_p50_us: st.service_p50_us,
      service_time_p99_us: st.service_p99_us,
      max_in_flight: st.max_outstanding_seen,
      max_client_queue: st.max_queued_seen,
      never_sent: st.never_sent,
      unaccounted: st.unaccounted,
    },
  });
}
