import { EventEmitter } from "node:events";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { subjects } from "./subjects.js";

/** One liveness beat (core NATS, never stored): who, and how often to expect the next one. */
export interface LivenessBeat {
  pool: string;
  workerId: string;
  /** The sender's beat interval (ms). */
  everyMs: number;
  /** The worker has stopped for good (graceful stop finished): judge it dead now. */
  bye?: true;
}

/** Beats a worker is judged dead after missing (dead after `LIVENESS_MISSES × everyMs` of silence: 2 s by default). */
const LIVENESS_MISSES = 4;

/**
 * Publishes a worker's liveness beat now and every `everyMs` on `mcpq.live.<pool>.<worker>`
 * (core NATS, a few bytes). Much shorter than the registry heartbeat: edges learn about a
 * killed worker within `LIVENESS_MISSES × everyMs`, not the registry TTL. The returned stop
 * sends a final `bye` beat (graceful stop) unless `silent`.
 */
export function startLivenessBeats(
  nc: NatsConnection,
  pool: string,
  workerId: string,
  everyMs: number,
): (opts?: { silent?: boolean }) => void {
  const subject = subjects.liveness(pool, workerId);
  const beat = (bye?: true) => {
    if (nc.isClosed()) return;
    const b: LivenessBeat = { pool, workerId, everyMs, ...(bye ? { bye } : {}) };
    nc.publish(subject, JSON.stringify(b));
  };
  beat();
  const t = setInterval(beat, everyMs);
  t.unref();
  let stopped = false;
  return (opts = {}) => {
    if (stopped) return;
    stopped = true;
    clearInterval(t);
    if (!opts.silent) beat(true);
  };
}

/**
 * An edge's view of which pools have a live worker, from the liveness beats. A pool is "dead"
 * once every worker heard from has been silent for `LIVENESS_MISSES` of its beat intervals (or
 * said bye), and "unknown" when no beat from it was ever heard (older workers, or an edge that
 * just started: treat as alive). While this edge's own connection is down nothing is judged;
 * after a reconnect every worker gets a fresh grace period. Emits `dead(pool)` when a pool
 * loses its last live worker and `alive(pool)` when one comes back. Memory: one entry per
 * worker heard from, dropped `forgetMs` after its last beat.
 */
export class LivenessView extends EventEmitter<{ dead: [string]; alive: [string] }> {
  readonly #workers = new Map<
    string,
    { pool: string; at: number; everyMs: number; bye: boolean }
  >();
  readonly #dead = new Set<string>();
  #sub: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #paused = false;
  #stopped = false;
  #lastSweep = Date.now();

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: { sweepMs?: number; forgetMs?: number; maxWorkers?: number } = {},
  ) {
    super();
  }

  start(): void {
    this.#sub = this.nc.subscribe(subjects.livenessAll, {
      callback: (_e, m) => {
        let b: LivenessBeat;
        try {
          b = m.json<LivenessBeat>();
        } catch {
          return;
        }
        if (typeof b?.pool !== "string" || typeof b.workerId !== "string" || !(b.everyMs > 0))
          return;
        this.#beat(b);
      },
    });
    void (async () => {
      for await (const s of this.nc.status()) {
        if (this.#stopped) return;
        if (s.type === "disconnect") this.#paused = true;
        else if (s.type === "reconnect") {
          // Beats sent while we were away never reached us: start every worker's clock again.
          const now = Date.now();
          for (const w of this.#workers.values()) w.at = now;
          this.#paused = false;
        }
      }
    })().catch(() => undefined);
    // Judged after the next I/O poll: timers run before pending socket reads, so after a stall of
    // this process the beats that did arrive are counted first.
    this.#timer = setInterval(() => setImmediate(() => this.#sweep()), this.opts.sweepMs ?? 200);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#sub?.unsubscribe();
  }

  /** False when the pool is known to have no live worker; true when it has one or is unknown. */
  alive(pool: string): boolean {
    return !this.#dead.has(pool);
  }

  #beat(b: LivenessBeat): void {
    const key = `${b.pool}\u0000${b.workerId}`;
    if (!this.#workers.has(key) && this.#workers.size >= (this.opts.maxWorkers ?? 100_000)) return;
    this.#workers.set(key, {
      pool: b.pool,
      at: Date.now(),
      everyMs: b.everyMs,
      bye: b.bye === true,
    });
    if (b.bye) this.#sweep();
    else if (this.#dead.delete(b.pool)) this.emit("alive", b.pool);
  }

  #sweep(): void {
    if (this.#paused) return;
    const now = Date.now();
    const sweepMs = this.opts.sweepMs ?? 200;
    const stalled = now - this.#lastSweep > 2 * sweepMs + 500;
    this.#lastSweep = now;
    if (stalled) {
      // This process did not run for a while: silence says nothing about the workers.
      for (const w of this.#workers.values()) w.at = Math.max(w.at, now - w.everyMs);
      return;
    }
    const live = new Set<string>();
    const pools = new Set<string>();
    for (const [k, w] of this.#workers) {
      pools.add(w.pool);
      const silent = now - w.at;
      if (!w.bye && silent < w.everyMs * LIVENESS_MISSES) live.add(w.pool);
      else if (silent > (this.opts.forgetMs ?? 10 * 60_000)) this.#workers.delete(k);
    }
    for (const p of pools) {
      if (!live.has(p) && !this.#dead.has(p)) {
        this.#dead.add(p);
        this.emit("dead", p);
      }
    }
  }
}
