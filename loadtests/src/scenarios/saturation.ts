/**
 * saturation: closed loop with C requests in flight (C sessions, one request each, sharing a
 * keep-alive pool of C connections for HTTP / C sockets for WS), fixed duration per C after
 * a short warm-up. Throughput = verified echo responses / measured window.
 */
import { closedLoop, outcomeLine } from "../lib/drivers.js";
import { makeResult, type WorkloadResult } from "../lib/report.js";
import {
  openSessions,
  failuresLine,
  transportLabel,
  type Target,
  type TransportKind,
} from "../lib/target.js";
import { cpuSet, defaultLog, rssSampler, type Log } from "./common.js";

export interface SaturationOpts {
  transport: TransportKind;
  concurrencies: number[];
  durationMs: number;
  warmupMs?: number;
  timeoutMs?: number;
  payloadBytes?: number;
  log?: Log;
}

export async function runSaturation(target: Target, o: SaturationOpts): Promise<WorkloadResult[]> {
  const log = o.log ?? defaultLog;
  const out: WorkloadResult[] = [];
  for (const C of o.concurrencies) {
    const id = `saturation-${o.transport}-c${C}`;
    const set = await openSessions(target, o.transport, C, { connections: C, concurrency: 32 });
    if (set.sessions.length === 0) {
      await set.close();
      throw new Error(`${id}: could not open any session (${failuresLine(set.failures)})`);
    }
    const rss = rssSampler(target);
    const cpu = cpuSet(target);
    await rss.sampleNow();
    // start meters after warm-up so CPU covers the measured window
    const warm = o.warmupMs ?? 1000;
    const meterTimer = setTimeout(() => {
      cpu.start();
      rss.start();
    }, warm);
    const st = await closedLoop({
      sessions: set.sessions,
      inFlight: C,
      durationMs: o.durationMs,
      warmupMs: warm,
      timeoutMs: o.timeoutMs ?? 10_000,
      payloadBytes: o.payloadBytes,
      tag: id,
    });
    clearTimeout(meterTimer);
    const c = cpu.stop();
    await rss.stop();
    await set.close();
    const r = makeResult({
      workload_id: id,
      target: target.name,
      transport: transportLabel(o.transport),
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
        outcomes: st.outcomes,
        completed_after_window: st.completed_after_window,
        session_open_failures: set.failures,
        warmup_s: warm / 1000,
      },
    });
    log(`    ${id}: ${outcomeLine(st)}`);
    out.push(r);
  }
  return out;
}
