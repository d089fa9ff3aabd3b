/**
 * The open-loop clock shared by every open-loop driver: `total` requests on a fixed timestamp
 * grid (request k is due at t0 + k / rate). One timer is re-armed to the next due time and fires
 * every request that is due (no per-request sleeps); during catch-up bursts it yields to the
 * event loop every `burst` requests so responses keep being read.
 */
export interface GridSchedule {
  /** performance.now() of request 0 */
  t0: number;
  /** ms between two requests */
  interval: number;
  total: number;
}

export function runGrid(o: {
  ratePerS: number;
  durationMs: number;
  /** request k is due; `now` is a recent performance.now() */
  due(k: number, now: number): void;
  /** after each batch of due requests */
  afterBatch?(): void;
  /** the last request was scheduled */
  end(at: number): void;
  burst?: number;
}): GridSchedule {
  const interval = 1000 / o.ratePerS;
  const total = Math.max(1, Math.floor((o.durationMs / 1000) * o.ratePerS));
  const t0 = performance.now() + 5;
  const burst = o.burst ?? 2000;
  let j = 0;
  const tick = () => {
    let now = performance.now();
    let fired = 0;
    while (j < total && t0 + j * interval <= now) {
      o.due(j++, now);
      if (++fired >= burst) break;
      if ((fired & 127) === 0) now = performance.now();
    }
    o.afterBatch?.();
    if (j >= total) {
      o.end(performance.now());
      return;
    }
    if (fired >= burst) {
      setImmediate(tick);
      return;
    }
    const wait = t0 + j * interval - performance.now();
    setTimeout(tick, wait > 1 ? Math.floor(wait) : 0);
  };
  setTimeout(tick, 5);
  return { t0, interval, total };
}
