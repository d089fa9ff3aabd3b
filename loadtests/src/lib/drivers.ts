/**
 * Load patterns.
 *  - closedLoop: C workers, each with exactly one request in flight (send → await → send).
 *  - openLoop:   requests scheduled on a fixed timestamp grid (no per-message sleeps: one
 *                timer re-armed to the next due time fires every request that is due);
 *                latency is measured from the *scheduled* send time, so server stalls show
 *                up as latency instead of silently lowering the offered rate (no coordinated
 *                omission). Every scheduled request gets exactly one outcome.
 */
import { LatencyHistogram } from "./histogram.js";
import { runGrid, type GridSchedule } from "./schedule.js";
import type { McpSession, Outcome, OutcomeKind } from "../client/types.js";

export interface LoopStats {
  hist: LatencyHistogram;
  requests: number;
  ok: number;
  outcomes: Record<OutcomeKind, number>;
  errors_by_code: Record<string, number>;
  duration_s: number;
}

type ResultHook = (endMs: number, latencyUs: number, o: Outcome) => void;

function newStats(): LoopStats {
  return {
    hist: new LatencyHistogram(),
    requests: 0,
    ok: 0,
    outcomes: { ok: 0, rejected: 0, timeout: 0, error: 0 },
    errors_by_code: {},
    duration_s: 0,
  };
}

function tally(st: LoopStats, o: Outcome, latencyUs: number): void {
  st.requests++;
  st.outcomes[o.kind]++;
  if (o.kind === "ok") {
    st.ok++;
    st.hist.record(latencyUs);
  } else {
    const c = o.code ?? o.kind;
    st.errors_by_code[c] = (st.errors_by_code[c] ?? 0) + 1;
  }
}

/** Unique, verifiable payload text for request `seq`. */
function makeText(tag: string, seq: number, payloadBytes: number): string {
  const head = `${tag}:${seq}:`;
  return payloadBytes > head.length ? head + "x".repeat(payloadBytes - head.length) : head;
}

export interface ClosedLoopOpts {
  sessions: McpSession[];
  inFlight: number;
  durationMs: number;
  warmupMs?: number;
  timeoutMs?: number;
  payloadBytes?: number;
  tag?: string;
  /** The text of request `seq` (default: unique per request, `makeText`); the cache scenario sets hit rates with it. */
  textFor?: (seq: number) => string;
  onResult?: ResultHook;
  /** polled after every completion; return true to stop early */
  stop?: () => boolean;
}

/**
 * Closed loop. Counted: every request that *starts* inside the window
 * [start+warmup, start+warmup+duration] — all outcomes and latencies, including ones that
 * complete after the window (so a stalled target shows up as timeouts, not as silence).
 * Throughput uses only the ok responses that completed inside the window
 * (`ok_in_window`), so late completions do not inflate it.
 */
export async function closedLoop(
  o: ClosedLoopOpts,
): Promise<LoopStats & { ok_in_window: number; completed_after_window: number }> {
  if (o.sessions.length === 0) throw new Error("closedLoop: no sessions");
  const st = newStats();
  const timeout = o.timeoutMs ?? 10_000;
  const payload = o.payloadBytes ?? 32;
  const tag = o.tag ?? "c";
  const t0 = performance.now();
  const tMeasure = t0 + (o.warmupMs ?? 0);
  const tEnd = tMeasure + o.durationMs;
  let seq = 0;
  let late = 0;
  let okInWindow = 0;
  let stopped = false;
  let measuredEnd = tEnd;
  const worker = async (w: number) => {
    const s = o.sessions[w % o.sessions.length]!;
    for (;;) {
      const start = performance.now();
      if (start >= tEnd || stopped) return;
      const n = seq++;
      const text = o.textFor ? o.textFor(n) : makeText(tag, n, payload);
      const out = await s.callEcho(text, timeout);
      const end = performance.now();
      const lat = (end - start) * 1000;
      if (start >= tMeasure) {
        tally(st, out, lat);
        if (end <= tEnd) {
          if (out.kind === "ok") okInWindow++;
        } else late++;
      }
      o.onResult?.(end, lat, out);
      if (!stopped && o.stop?.()) {
        stopped = true;
        measuredEnd = end;
      }
    }
  };
  await Promise.all(Array.from({ length: o.inFlight }, (_, w) => worker(w)));
  st.duration_s = Math.max(0.001, (Math.min(measuredEnd, tEnd) - tMeasure) / 1000);
  return { ...st, ok_in_window: okInWindow, completed_after_window: late };
}

export interface OpenLoopOpts {
  sessions: McpSession[];
  /** aggregate offered rate (requests/s), spread round-robin over sessions */
  ratePerS: number;
  durationMs: number;
  /**
   * A request is a timeout when no response arrives within `timeoutMs` of its *scheduled*
   * send time (so every request settles by scheduled + timeout, whatever happens).
   */
  timeoutMs?: number;
  /**
   * Max requests on the wire at once (match the HTTP pool's connection count). Requests
   * scheduled while all slots are busy wait in a cheap client-side FIFO of timestamps; their
   * wait counts in their latency. Those still waiting when their timeout expires become
   * outcome timeout/"client_queue_timeout" without being sent.
   */
  maxInFlight?: number;
  payloadBytes?: number;
  tag?: string;
  onResult?: ResultHook;
}

export interface OpenLoopStats extends LoopStats {
  scheduled: number;
  offered_rate: number;
  /** requests actually put on the wire per second */
  achieved_send_rate: number;
  /** dispatch time − scheduled time (timer lag + client-side queueing while all slots busy) */
  send_lag_p50_us: number | null;
  send_lag_p99_us: number | null;
  /** response time − dispatch time, successful requests only */
  service_p50_us: number | null;
  service_p99_us: number | null;
  max_outstanding_seen: number;
  max_queued_seen: number;
  never_sent: number;
  unaccounted: number;
  /** performance.now() when the last request was scheduled */
  schedule_end_ms: number;
}

export function openLoop(o: OpenLoopOpts): Promise<OpenLoopStats> {
  if (o.sessions.length === 0) throw new Error("openLoop: no sessions");
  const st = newStats();
  const lag = new LatencyHistogram();
  const service = new LatencyHistogram();
  const timeout = o.timeoutMs ?? 5_000;
  const payload = o.payloadBytes ?? 32;
  const tag = o.tag ?? "o";
  const maxIn = o.maxInFlight ?? 256;
  const n = o.sessions.length;
  let grid: GridSchedule = { t0: 0, interval: 0, total: 0 };
  let allScheduled = false;
  let inFlight = 0;
  let maxSeen = 0;
  let maxQueued = 0;
  let sent = 0;
  let neverSent = 0;
  let firstSend = 0;
  let lastSend = 0;
  let scheduleEnd = 0;
  let fifo: number[] = [];
  let head = 0;
  let done = false;
  let sweep: NodeJS.Timeout | undefined;

  return new Promise<OpenLoopStats>((resolve) => {
    const settleUnsent = (k: number, code: string, now: number) => {
      const out: Outcome = { kind: "timeout", code };
      neverSent++;
      tally(st, out, 0);
      o.onResult?.(now, (now - (grid.t0 + k * grid.interval)) * 1000, out);
    };
    const maybeDone = () => {
      if (done || !allScheduled || inFlight > 0 || head < fifo.length) return;
      done = true;
      if (sweep) clearInterval(sweep);
      const sendSpan = (lastSend - firstSend) / 1000;
      resolve({
        ...st,
        duration_s: o.durationMs / 1000,
        scheduled: grid.total,
        offered_rate: o.ratePerS,
        achieved_send_rate: sendSpan > 0 ? Math.round((sent - 1) / sendSpan) : sent,
        send_lag_p50_us: lag.p(50),
        send_lag_p99_us: lag.p(99),
        service_p50_us: service.p(50),
        service_p99_us: service.p(99),
        max_outstanding_seen: maxSeen,
        max_queued_seen: maxQueued,
        never_sent: neverSent,
        unaccounted: grid.total - st.requests,
        schedule_end_ms: scheduleEnd,
      });
    };
    const dispatch = (k: number, now: number, budget: number) => {
      const scheduled = grid.t0 + k * grid.interval;
      inFlight++;
      if (inFlight > maxSeen) maxSeen = inFlight;
      if (sent === 0) firstSend = now;
      lastSend = now;
      sent++;
      lag.record((now - scheduled) * 1000);
      const s = o.sessions[k % n]!;
      s.callEcho(makeText(tag, k, payload), budget).then(
        (out) => {
          const end = performance.now();
          if (out.kind === "ok") service.record((end - now) * 1000);
          tally(st, out, (end - scheduled) * 1000);
          o.onResult?.(end, (end - scheduled) * 1000, out);
          inFlight--;
          pump();
          maybeDone();
        },
        (e) => {
          // callEcho never rejects by contract; account anyway
          tally(st, { kind: "error", code: `exception:${(e as Error)?.name ?? "?"}` }, 0);
          inFlight--;
          pump();
          maybeDone();
        },
      );
    };
    /** expire aged heads, then fill free slots from the FIFO */
    const pump = () => {
      if (head >= fifo.length) return;
      const now = performance.now();
      while (head < fifo.length) {
        const k = fifo[head]!;
        const budget = grid.t0 + k * grid.interval + timeout - now;
        if (budget < 1) {
          head++;
          settleUnsent(k, "client_queue_timeout", now);
          continue;
        }
        if (inFlight >= maxIn) break;
        head++;
        dispatch(k, now, budget);
      }
      if (head > 65_536 && head * 2 > fifo.length) {
        fifo = fifo.slice(head);
        head = 0;
      }
    };
    sweep = setInterval(() => {
      pump();
      maybeDone();
    }, 50);
    grid = runGrid({
      ratePerS: o.ratePerS,
      durationMs: o.durationMs,
      burst: 5000,
      due: (k) => fifo.push(k),
      afterBatch: () => {
        const q = fifo.length - head;
        if (q > maxQueued) maxQueued = q;
        pump();
      },
      end: (at) => {
        scheduleEnd = at;
        allScheduled = true;
        maybeDone();
      },
    });
  });
}

/** Short human summary of outcome classes. */
export function outcomeLine(st: LoopStats): string {
  const o = st.outcomes;
  return `ok=${o.ok} rejected=${o.rejected} timeout=${o.timeout} error=${o.error}`;
}
