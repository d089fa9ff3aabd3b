/**
 * flood: ramp idle, connected sessions to a target count and hold them.
 *  - http: initialize + notifications/initialized, then GET /mcp (accept: text/event-stream,
 *          mcp-session-id) held open = one idle socket per session.
 *  - ws:   one WebSocket (subprotocol "mcp") per session, initialized, then idle.
 * Client sockets are spread over loopback source addresses 127.0.0.2, 127.0.0.3, … so that
 * the 4-tuple space (≈28K ephemeral ports per source address) is not the limit.
 * While held, a probe measures tools/call latency at 16 in flight on separate sessions.
 * per_session_kib = (edge RSS while held − edge RSS before ramp) / sessions held, each the median
 * of 5 samples once it has stopped falling (GC settles first).
 */
import { closedLoop, outcomeLine } from "../lib/drivers.js";
import { median } from "../lib/histogram.js";
import { HttpMcpSession, parseMcpUrl, type HeldStream } from "../client/http.js";
import { WsMcpSession } from "../client/ws.js";
import type { Outcome } from "../client/types.js";
import { makeResult, openFilesLimit, type WorkloadResult } from "../lib/report.js";
import { mib } from "../lib/procstat.js";
import {
  forEachLimit,
  httpAgent,
  openSessions,
  transportLabel,
  type Target,
  type TransportKind,
} from "../lib/target.js";
import { cpuSet, defaultLog, rssSampler, type Log } from "./common.js";
import type { Agent } from "undici";
import { spawnSync } from "node:child_process";

/** Count established client sockets to `port` by source address (via `ss`; null if unavailable). */
function sourceAddressCounts(port: number): Record<string, number> | null {
  try {
    const r = spawnSync("ss", ["-Htn", "state", "established", `( dport = :${port} )`], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) return null;
    const counts: Record<string, number> = {};
    for (const line of r.stdout.split("\n")) {
      const cols = line.trim().split(/\s+/);
      const local = cols[2];
      if (!local) continue;
      const addr = local.slice(0, local.lastIndexOf(":"));
      counts[addr] = (counts[addr] ?? 0) + 1;
    }
    return counts;
  } catch {
    return null;
  }
}

export interface FloodOpts {
  transport: TransportKind;
  sessions: number;
  rampConcurrency?: number;
  perAddress?: number;
  /** stop opening new sessions after this long (default 30 s; the bench uses 300 s in --full) */
  rampTimeoutMs?: number;
  /** overall bound for closing sessions afterwards (default 20 s; then sockets are destroyed) */
  teardownTimeoutMs?: number;
  probeMs?: number;
  probeInFlight?: number;
  timeoutMs?: number;
  log?: Log;
}

const FD_HEADROOM = 600;

export async function runFlood(target: Target, o: FloodOpts): Promise<WorkloadResult> {
  const log = o.log ?? defaultLog;
  const want = o.sessions;
  const id = `flood-${o.transport}-${want}`;
  const limit = openFilesLimit();
  log(
    `    ${id}: ulimit -n = ${limit ?? "unknown"} (client side; the target inherits the same limit when spawned by the bench)`,
  );
  let N = want;
  let capped = false;
  if (limit !== null && limit < want + FD_HEADROOM) {
    N = Math.max(0, limit - FD_HEADROOM);
    capped = true;
    log(
      `    WARNING: ulimit -n ${limit} is too low for ${want} sessions (need ≥ ${want + FD_HEADROOM} on BOTH client and edge); ` +
        `capping at ${N}. Raise it with e.g. \`ulimit -n 1048576\` (and fs.nr_open / systemd LimitNOFILE) before --full floods.`,
    );
  }
  // under the edge's MCPQ_MAX_CONNECTIONS_PER_CLIENT (1,000 by default): a flood from one address
  // measured the per-client bound (1,000 of 2,000 WebSocket sessions refused), not per-session memory
  const perAddr = o.perAddress ?? 900;
  const nAddr = Math.max(1, Math.ceil(N / perAddr));
  const addrs = Array.from(
    { length: nAddr },
    (_, i) => `127.0.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`,
  );
  const timeout = o.timeoutMs ?? 10_000;
  const probeC = o.probeInFlight ?? 16;

  // probe sessions first so they are not counted in per-session memory
  const probe = await openSessions(target, o.transport, probeC, { connections: probeC });
  if (probe.sessions.length === 0) {
    await probe.close();
    throw new Error(`${id}: probe sessions could not be opened`);
  }
  const rss = rssSampler(target, 500);
  // median of 5 samples 200 ms apart, before and while held (GC makes single samples jumpy)
  const medianRss = async (): Promise<number | null> => {
    const v: number[] = [];
    for (let i = 0; i < 5; i++) {
      const x = await rss.sampleNow();
      if (x !== null) v.push(x);
      await new Promise((r) => setTimeout(r, 200));
    }
    return median(v);
  };
  /**
   * The median once it stops falling: after a busy workload V8 keeps garbage until its memory
   * reducer runs on an idle loop, and a "before" taken while that garbage is still resident made
   * per-session figures negative. Bounded to ~10 s.
   */
  const settledRss = async (): Promise<number | null> => {
    let last = await medianRss();
    for (let i = 0; i < 8 && last !== null; i++) {
      const next = await medianRss();
      if (next === null || next >= last * 0.98) return next ?? last;
      last = next;
    }
    return last;
  };
  const rssBefore = await settledRss();
  rss.start();

  const failures: Record<string, number> = {};
  const fail = (e: unknown) => {
    const oc = (e as { outcome?: Outcome }).outcome;
    const c = oc?.code ?? (e as { code?: string }).code ?? "open_failed";
    failures[c] = (failures[c] ?? 0) + 1;
  };
  const agents: Agent[] = o.transport === "http" ? addrs.map((a) => httpAgent(a)) : [];
  const ep = parseMcpUrl(target.mcpUrl, target.toolName);
  const httpHeld: { s: HttpMcpSession; g: HeldStream }[] = [];
  const wsHeld: WsMcpSession[] = [];
  const rampStart = performance.now();
  const rampDeadline = rampStart + (o.rampTimeoutMs ?? 30_000);
  let lastLog = rampStart;
  let deadlineHit = false;
  const established = () => httpHeld.length + wsHeld.length;

  await forEachLimit(Array.from({ length: N }), o.rampConcurrency ?? 64, async (_, i) => {
    if (performance.now() > rampDeadline) {
      deadlineHit = true;
      return;
    }
    const k = i % nAddr;
    try {
      if (o.transport === "http") {
        const s = await HttpMcpSession.open(ep, agents[k]!, timeout);
        try {
          const g = await s.openGetStream(agents[k]!, timeout);
          httpHeld.push({ s, g });
        } catch (e) {
          fail(e);
          void s.close();
        }
      } else {
        wsHeld.push(
          await WsMcpSession.open(
            { url: target.wsUrl!, localAddress: addrs[k], toolName: target.toolName },
            timeout,
          ),
        );
      }
    } catch (e) {
      fail(e);
    }
    const now = performance.now();
    if (now - lastLog > 2000) {
      lastLog = now;
      log(`      ramp: ${established()}/${N} held (${((now - rampStart) / 1000).toFixed(1)} s)`);
    }
  });
  const rampS = (performance.now() - rampStart) / 1000;
  const held = established();
  log(
    `    ${id}: ramped ${held}/${N} in ${rampS.toFixed(1)} s over ${nAddr} source address(es) ${addrs[0]}..${addrs[nAddr - 1]}` +
      `${Object.keys(failures).length ? ` failures=${JSON.stringify(failures)}` : ""}${deadlineHit ? " (ramp deadline hit)" : ""}`,
  );

  await new Promise((r) => setTimeout(r, 1000));
  const rssHeld = await settledRss();
  const srcCounts = sourceAddressCounts(Number(new URL(target.mcpUrl).port));
  if (srcCounts)
    log(`    ${id}: established client sockets by source address: ${JSON.stringify(srcCounts)}`);

  const cpu = cpuSet(target);
  cpu.start();
  const st = await closedLoop({
    sessions: probe.sessions,
    inFlight: probeC,
    durationMs: o.probeMs ?? 5000,
    warmupMs: 200,
    timeoutMs: timeout,
    tag: id,
  });
  const c = cpu.stop();
  const aliveAfter =
    o.transport === "http"
      ? httpHeld.filter((h) => !h.g.closed).length
      : wsHeld.filter((w) => !w.closed).length;
  await rss.stop();
  log(`    ${id}: probe ${outcomeLine(st)}; still held after probe: ${aliveAfter}/${held}`);

  // teardown (bounded): close streams/sockets, DELETE sessions with a short timeout, then destroy
  const tdStart = performance.now();
  const tdDeadline = tdStart + (o.teardownTimeoutMs ?? 20_000);
  let deleteSkipped = 0;
  if (o.transport === "http") {
    for (const h of httpHeld) h.g.close();
    await forEachLimit(httpHeld, 128, async (h) => {
      if (performance.now() > tdDeadline) {
        deleteSkipped++;
        return;
      }
      await h.s.close(2000);
    });
    await Promise.all(agents.map((a) => a.destroy().catch(() => undefined)));
  } else {
    for (const w of wsHeld) w.terminate();
  }
  await probe.close();
  const teardownS = (performance.now() - tdStart) / 1000;
  log(
    `    ${id}: teardown ${teardownS.toFixed(1)} s${deleteSkipped ? ` (${deleteSkipped} DELETEs skipped at the teardown deadline)` : ""}`,
  );

  const perSessionKib =
    rssBefore !== null && rssHeld !== null && held > 0
      ? Math.round(((rssHeld - rssBefore) / held / 1024) * 100) / 100
      : null;
  return makeResult({
    workload_id: id,
    target: target.name,
    transport: o.transport === "http" ? "streamable-http-get-sse" : transportLabel(o.transport),
    sessions: held,
    in_flight: probeC,
    duration_s: st.duration_s,
    requests: st.requests,
    ok: st.ok_in_window,
    hist: st.hist,
    errors_by_code: st.errors_by_code,
    edge_rss_bytes: rssHeld,
    per_session_kib: perSessionKib,
    cpu_pct: c.cpu_pct,
    extra: {
      ...c.extra,
      target_sessions: want,
      attempted_sessions: N,
      capped_by_ulimit: capped,
      ulimit_n: limit,
      ramp_s: Math.round(rampS * 100) / 100,
      ramp_sessions_per_s: rampS > 0 ? Math.round(held / rampS) : null,
      open_failures: failures,
      held_after_probe: aliveAfter,
      ramp_deadline_hit: deadlineHit,
      teardown_s: Math.round(teardownS * 10) / 10,
      teardown_deletes_skipped: deleteSkipped,
      probe_completed_after_window: st.completed_after_window,
      source_addresses: addrs,
      client_sockets_by_source_address: srcCounts,
      edge_rss_before_mib: mib(rssBefore),
      edge_rss_held_mib: mib(rssHeld),
      edge_rss_peak_mib: mib(rss.peak),
      probe_outcomes: st.outcomes,
    },
  });
}
