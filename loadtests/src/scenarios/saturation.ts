/**
 * saturation: closed loop with C requests in flight (C sessions, one request each: one
 * keep-alive connection per session for HTTP, one socket per session for WS), fixed duration
 * per C after a short warm-up. Throughput = verified echo responses answered inside the window
 * / window.
 *
 * The load comes from the lean generator in its own process (../storm/storm-proc.ts, closed
 * mode: raw HTTP/1.1 lanes with a prebuilt request head, or ws). The in-process undici client
 * used before cost the box about 300 µs of CPU per call (a pool, an AbortController and a timer
 * per request, an SSE parser, under the orchestrator's samplers) against ~170 µs for a plain
 * node:http client; on two cores that CPU is taken from the servers, and more from mcpq (three
 * processes wanting ~1.5 cores) than from the one-process SDK reference.
 *
 * CPU per call (µs) = process CPU over the window / verified calls in it, for every serving
 * process: `cpu_us_per_call` in `extra` (edge, worker, nats, or the SDK reference's server).
 */
import { makeResult, type WorkloadResult } from "../lib/report.js";
import { LatencyHistogram } from "../lib/histogram.js";
import { transportLabel, type Target, type TransportKind } from "../lib/target.js";
import { startStorm, type StormResult } from "../storm/storm.js";
import { cpuSet, defaultLog, rssSampler, type Log } from "./common.js";

export interface SaturationOpts {
  transport: TransportKind;
  concurrencies: number[];
  durationMs: number;
  warmupMs?: number;
  timeoutMs?: number;
  payloadBytes?: number;
  log?: Log;
  /** workload id suffix (e.g. `-edge2`) for variants of the same stack shape */
  idSuffix?: string;
}

/** µs of CPU per verified call for each metered process (`<name>_cpu_pct` → name). */
function cpuPerCall(
  target: Target,
  cpuPct: number | null,
  extra: Record<string, number | null>,
  callsPerS: number,
): Record<string, number | null> {
  const us = (pct: number | null | undefined) =>
    pct == null || callsPerS <= 0 ? null : Math.round(((pct / 100) * 1e6) / callsPerS);
  const out: Record<string, number | null> = {
    [target.name === "mcpq" ? "edge" : "server"]: us(cpuPct),
  };
  for (const k of Object.keys(target.siblings ?? {})) out[k] = us(extra[`${k}_cpu_pct`]);
  const serving = Object.values(out);
  out.total = serving.every((v) => v !== null) ? serving.reduce((a, b) => a! + b!, 0) : null;
  out.generator = us(extra.generator_cpu_pct);
  return out;
}

export async function runSaturation(target: Target, o: SaturationOpts): Promise<WorkloadResult[]> {
  const log = o.log ?? defaultLog;
  const out: WorkloadResult[] = [];
  const url = o.transport === "http" ? target.mcpUrl : target.wsUrl;
  if (!url) throw new Error(`saturation: target has no ${o.transport} URL`);
  const warm = o.warmupMs ?? 1000;
  for (const C of o.concurrencies) {
    const id = `saturation-${o.transport}-c${C}${o.idSuffix ?? ""}`;
    const gen = startStorm({
      mode: "closed",
      transport: o.transport,
      url,
      toolName: target.toolName ?? "echo",
      sessions: C,
      lanesPerSession: 1,
      window: 1,
      ratePerS: 0,
      durationMs: o.durationMs,
      warmupMs: warm,
      timeoutMs: o.timeoutMs ?? 10_000,
      graceMs: 1000,
      maxHoldMs: 0,
      payloadBytes: o.payloadBytes ?? 32,
      tag: id,
    });
    let st: StormResult;
    const rss = rssSampler(target, 1000);
    const cpu = cpuSet(target, { generator: gen.pid });
    let c: ReturnType<typeof cpu.stop>;
    try {
      const opened = await gen.ready;
      if (opened.sessions === 0)
        throw new Error(`${id}: could not open any session (${opened.errors.join("; ")})`);
      await rss.sampleNow();
      gen.go();
      await gen.measuring;
      cpu.start();
      rss.start();
      await gen.ended;
      c = cpu.stop();
      st = await gen.result;
      await rss.stop();
    } finally {
      gen.kill();
    }
    const windowS = st.window_s ?? o.durationMs / 1000;
    const okInWindow = st.ok_in_window ?? 0;
    const callsPerS = okInWindow / windowS;
    const hist = new LatencyHistogram();
    const errors: Record<string, number> = {};
    for (const [k, v] of Object.entries(st.codes)) errors[k] = v;
    const r = makeResult({
      workload_id: id,
      target: target.name,
      transport: transportLabel(o.transport),
      sessions: st.sessions_opened,
      in_flight: C,
      duration_s: windowS,
      requests: st.scheduled,
      ok: okInWindow,
      hist,
      errors_by_code: errors,
      edge_rss_bytes: rss.peak,
      cpu_pct: c.cpu_pct,
      extra: {
        ...c.extra,
        generator_cpu_pct: st.client_cpu_pct,
        cpu_us_per_call: cpuPerCall(
          target,
          c.cpu_pct,
          { ...c.extra, generator_cpu_pct: st.client_cpu_pct },
          callsPerS,
        ),
        outcomes: st.classes,
        warmup_s: warm / 1000,
      },
    });
    // the generator's histogram (send → verified answer) replaces the empty one
    r.latency_p50_us = st.ok_service.p50_us;
    r.latency_p95_us = st.ok_service.p95_us;
    r.latency_p99_us = st.ok_service.p99_us;
    r.latency_p999_us = st.ok_service.p999_us;
    r.extra = { ...r.extra, latency_max_us: st.ok_service.max_us, latency_mean_us: null };
    const cpc = r.extra.cpu_us_per_call as Record<string, number | null>;
    log(
      `    ${id}: ${Object.entries(st.classes)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}; CPU µs/call ${Object.entries(cpc)
        .map(([k, v]) => `${k}=${v ?? "—"}`)
        .join(" ")}`,
    );
    out.push(r);
  }
  return out;
}
