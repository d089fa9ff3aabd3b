import { performance } from "node:perf_hooks";

/** How often the lag monitor's timer is due (ms): the resolution of the measurement. */
const TICK_MS = 20;
/** Longest a single stall keeps the door shut after it ended (ms). */
const MAX_HOLD_MS = 5_000;
/** A tick at most this late (ms; or half the threshold if lower) shows the loop has caught up. */
const CAUGHT_UP_MS = 50;

/**
 * The edge's event-loop lag, measured the way `@fastify/under-pressure` does it (a timer that is
 * due every 20 ms; how late it runs is the lag) and read at admission on every transport. While
 * the edge lags more than `thresholdMs`, requests read now sat unread in socket buffers for
 * about that long: they are refused (-32010, HTTP 503) instead of admitted late. A stall of L ms
 * keeps the door shut after it ended until the loop runs on time again (a tick at most 50 ms
 * late), at most L ms (capped at 5 s): libuv reads everything the stall left unread in the next
 * poll phase, so the tick after it is late by the time that backlog took, and a tick on time
 * means none is left. Holding for the full L after that only refused fresh requests (a storm's
 * probe came back 5.9 s after the storm). A stall still in progress (the timer overdue at the
 * moment a request is read, e.g. inside one long poll phase) counts too. 0 disables it (no timer).
 */
export class LoopLagMonitor {
  #expected = 0;
  #shedUntil = 0;
  #maxLagMs = 0;
  readonly #timer: NodeJS.Timeout | undefined;

  readonly #caughtUpMs: number;

  constructor(private readonly thresholdMs: number) {
    this.#caughtUpMs = Math.min(CAUGHT_UP_MS, thresholdMs / 2);
    if (thresholdMs <= 0) return;
    this.#expected = performance.now() + TICK_MS;
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  /** The largest lag measured since the previous call (ms), for a metrics scrape; resets it. */
  takeMaxLagMs(): number {
    const m = this.#maxLagMs;
    this.#maxLagMs = 0;
    return m;
  }

  /**
   * Ms the caller should wait before retrying when the edge is lagging now, else 0. Called once
   * per routed request: two comparisons, no allocation. Monotonic clock: a wall-clock step is
   * not a stall.
   */
  shedFor(): number {
    if (this.#timer === undefined) return 0;
    const now = performance.now();
    if (now < this.#shedUntil) return this.#shedUntil - now;
    // The tick is overdue right now: the loop is inside a stall that has not ended yet.
    const overdue = now - this.#expected;
    return overdue > this.thresholdMs ? Math.min(MAX_HOLD_MS, overdue) : 0;
  }

  /** Stops the timer. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  #tick(): void {
    const now = performance.now();
    const lag = Math.max(0, now - this.#expected);
    if (lag > this.#maxLagMs) this.#maxLagMs = lag;
    this.#expected = now + TICK_MS;
    if (lag > this.thresholdMs) this.#shedUntil = now + Math.min(MAX_HOLD_MS, lag);
    else if (lag <= this.#caughtUpMs) this.#shedUntil = 0;
  }
}
