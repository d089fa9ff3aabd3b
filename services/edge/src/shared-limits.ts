import { digestToken, subjects, type NatsConnection, type Subscription } from "@mcpq/bus";
import type { EdgeAdmission } from "./core/admission.js";

export interface SharedLimitsOptions {
  edgeId: string;
  /** How often this edge publishes the tokens it granted (ms); MCPQ_SHARED_LIMITS_MS. */
  intervalMs: number;
  /** Most keys reported per message (the busiest first); the rest are reported next time. */
  maxKeysPerMessage?: number;
  /** Most keys remembered (by digest) to apply other edges' use to. */
  maxKeys?: number;
  /** Time an empty bucket takes to refill (burst ÷ rate, ms): older use of unseen keys is moot. */
  refillMs: number;
}

interface UsageMessage {
  edge: string;
  /** [key digest, tokens granted since the last message] */
  used: [string, number][];
}

/**
 * Cluster-wide `tools/call` rate limits: every edge keeps its own token bucket per principal
 * (EdgeAdmission) and, every `intervalMs`, publishes on `mcpq.limits.usage` (core NATS) how
 * many tokens it granted per key since its last message; every other edge takes the same
 * number from its own bucket for that key. So each edge's bucket sees the whole cluster's use
 * and the principal's rate holds across N edges, not N times over.
 *
 * Accuracy: another edge's use is charged here up to one interval plus delivery late, so in
 * steady state the cluster admits at most rate + (N−1) × rate × interval extra tokens per
 * interval of lag (a few percent at the 250 ms default), and a burst that hits every edge at the
 * same moment can take up to N × burst before the charges arrive (then the buckets are in debt,
 * down to −burst, and refuse until refilled). Keys travel as digests (no principal names on the
 * bus); a key this edge has not seen yet is charged when it first appears. While NATS is
 * unreachable each edge limits alone (at most N × the limit) — and refuses routed work anyway.
 */
export class SharedRateLimits {
  readonly #used = new Map<string, number>();
  /** digest -> local key, for keys this edge has seen. */
  readonly #keys = new Map<string, string>();
  /** local key -> digest (hashed once per key). */
  readonly #digests = new Map<string, string>();
  /** digest -> tokens other edges granted, for keys not seen here yet. */
  readonly #pending = new Map<string, { n: number; at: number }>();
  #sub: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Tokens charged here for other edges' grants (tests and metrics). */
  charged = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly admission: EdgeAdmission,
    private readonly opts: SharedLimitsOptions,
  ) {}

  start(): void {
    this.admission.shared = {
      before: (key) => void this.#digest(key),
      granted: (key) => this.#granted(key),
    };
    this.#sub = this.nc.subscribe(subjects.limitsUsage, {
      callback: (_e, m) => {
        let msg: UsageMessage;
        try {
          msg = m.json<UsageMessage>();
        } catch {
          return;
        }
        if (msg?.edge === this.opts.edgeId || !Array.isArray(msg.used)) return;
        for (const u of msg.used) {
          if (
            !Array.isArray(u) ||
            typeof u[0] !== "string" ||
            !(typeof u[1] === "number" && u[1] > 0)
          )
            continue;
          this.#remote(u[0], Math.min(u[1], 1e6));
        }
      },
    });
    this.#timer = setInterval(() => this.#flush(), this.opts.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#sub?.unsubscribe();
    this.admission.shared = undefined;
  }

  /** The key's digest; a key seen for the first time is charged what other edges already used. */
  #digest(key: string): string {
    let d = this.#digests.get(key);
    if (d !== undefined) return d;
    d = digestToken(key);
    this.#bound(this.#digests);
    this.#digests.set(key, d);
    this.#bound(this.#keys);
    this.#keys.set(d, key);
    const owed = this.#pending.get(d);
    if (owed !== undefined) {
      this.#pending.delete(d);
      if (Date.now() - owed.at < this.opts.refillMs) this.admission.charge(key, owed.n);
    }
    return d;
  }

  #granted(key: string): void {
    const d = this.#digest(key);
    this.#used.set(d, (this.#used.get(d) ?? 0) + 1);
  }

  #remote(digest: string, n: number): void {
    this.charged += n;
    const key = this.#keys.get(digest);
    if (key !== undefined) return this.admission.charge(key, n);
    this.#bound(this.#pending);
    const p = this.#pending.get(digest);
    this.#pending.set(digest, { n: (p?.n ?? 0) + n, at: Date.now() });
  }

  #bound(m: Map<string, unknown>): void {
    // Oldest first (insertion order): keys not used for the longest go.
    if (m.size >= (this.opts.maxKeys ?? 100_000)) m.delete(m.keys().next().value as string);
  }

  #flush(): void {
    if (this.#used.size === 0 || this.nc.isClosed()) return;
    const max = this.opts.maxKeysPerMessage ?? 1_000;
    const all = [...this.#used].sort((a, b) => b[1] - a[1]);
    const used = all.slice(0, max);
    this.#used.clear();
    for (const [d, n] of all.slice(max)) this.#used.set(d, n);
    const msg: UsageMessage = { edge: this.opts.edgeId, used };
    this.nc.publish(subjects.limitsUsage, JSON.stringify(msg));
  }
}
