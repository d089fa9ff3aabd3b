import {
  ErrorCode,
  Fault,
  McpError,
  isModernEra,
  rejection,
  type FaultKind,
  type JsonRpcRequest,
} from "@mcpq/protocol";
import type { TargetKind } from "@mcpq/bus";
import { ANONYMOUS } from "./security.js";
import type { BufferBudget } from "./buffer-budget.js";
import type { Admission, RouteOutcome } from "./session-core.js";
import type { SessionRecord } from "./session-store.js";
import { LoopLagMonitor } from "./loop-lag.js";

/** Limits of one edge's admission control; 0 disables a limit. See docs/overload.md. */
export interface AdmissionLimits {
  /** Routed requests one session may have waiting at once (excess: -32011, HTTP 429). */
  maxInFlightPerSession: number;
  /** Routed requests the whole edge may have waiting at once (excess: -32010, HTTP 503). */
  maxInFlight: number;
  /** Sustained `tools/call` rate per principal (per session when anonymous), tokens per second. */
  toolRatePerSec: number;
  /** Token-bucket size: calls a principal may make at once before the rate applies. */
  toolBurst: number;
  /** Consecutive timeouts / internal errors from a pool that open its circuit. */
  circuitFailures: number;
  /** How long an open circuit rejects before a half-open probe is let through (ms). */
  circuitOpenMs: number;
  /**
   * Queue-time admission: a pool with at least this many of this edge's requests in flight
   * refuses a request whose predicted wait (in flight / measured completion rate) exceeds its
   * deadline, instead of letting it time out later. 0 disables.
   */
  poolQueueMin: number;
  /**
   * Longest admitted work may be predicted to wait for a worker (ms), whatever its deadline:
   * queue-time admission refuses against min(deadline, this). 0 = the deadline alone.
   */
  maxQueueMs: number;
  /** Event-loop lag above which every new routed request is refused at once (ms); 0 = off. */
  maxEventLoopLagMs: number;
}

/** Why a request was refused; the `reason` label of `mcpq_edge_rejected_total`. */
export type RejectReason =
  | "event_loop_lag"
  | "expired_unread"
  | "session_in_flight"
  | "edge_in_flight"
  | "fair_share"
  | "buffered_bytes"
  | "rate_limited"
  | "circuit_open"
  | "pool_saturated"
  /** A fault's own kind: the broker refused the publish, or no worker serves the target. */
  | Extract<FaultKind, "stream_full" | "target_queue_full" | "broker_unavailable" | "no_worker">
  | "other";

/** A check run first on every routed request (broker down, pool without live worker): the refusal, if any. */
export type AdmissionGate = (pool: string) => Fault | undefined;

export type CircuitState = "closed" | "open" | "half_open";

/** Hooks backed by Prometheus in the service; all decisions are counted. */
export interface AdmissionMetrics {
  admitted(kind: TargetKind): void;
  rejected(reason: RejectReason): void;
  /** The edge answered -32001 because the request's deadline passed without a response. */
  expired(): void;
  circuit(pool: string, state: CircuitState): void;
}

/**
 * Share of the edge-wide cap above which sessions are held to a fair share of it: a session
 * may then hold at most cap / (sessions holding work), so one hot session cannot take the slots
 * other sessions need (their requests are still admitted while it is refused).
 */
const FAIR_SHARE_FROM = 0.75;
/** A timeout counts against a pool's circuit only if the request waited at least this long. */
const MIN_STALL_MS = 100;
/** Retry hint for in-flight and memory rejections: roughly one short request's lifetime. */
const BUSY_RETRY_MS = 1_000;
/** Longest an open circuit waits before probing again after repeated failed probes. */
const MAX_OPEN_MS = 30_000;
/** How often buckets that have refilled completely are dropped (bounded memory). */
const SWEEP_MS = 10_000;

/**
 * The edge's admission control (`SessionCore.admission`), consulted before a routed request is
 * queued. In order: the pool's circuit, the edge-wide in-flight cap, the buffered-bytes budget,
 * the session's in-flight cap, the session's fair share of a busy edge, and for `tools/call` the
 * principal's token bucket. A refusal throws a retryable `McpError` (-32010 overloaded, -32011
 * rate limited, -32012 unavailable) with `data.retryAfterMs`; transports map it to HTTP 503/429
 * + `Retry-After` or send it as is. Nothing is queued for a refused request.
 */
export class EdgeAdmission implements Admission {
  #inFlight = 0;
  readonly #perSession = new Map<string, number>();
  readonly #buckets: TokenBuckets;
  readonly #circuits = new Map<string, PoolCircuit>();
  readonly #pools = new Map<string, PoolLoad>();
  readonly #sweep: NodeJS.Timeout;
  /** Checks before all others but the loop-lag one (services/edge/src/self-heal.ts). */
  readonly gates: AdmissionGate[] = [];
  readonly #lag: LoopLagMonitor;

  constructor(
    private readonly limits: Readonly<AdmissionLimits>,
    private readonly buffers: BufferBudget,
    private readonly metrics?: AdmissionMetrics,
  ) {
    this.#buckets = new TokenBuckets(limits.toolRatePerSec, Math.max(1, limits.toolBurst));
    this.#sweep = setInterval(() => this.#buckets.sweep(Date.now()), SWEEP_MS);
    this.#sweep.unref();
    this.#lag = new LoopLagMonitor(limits.maxEventLoopLagMs);
  }

  /** The edge's largest event-loop lag since the previous call (ms; 0 when the check is off). */
  takeMaxEventLoopLagMs(): number {
    return this.#lag.takeMaxLagMs();
  }

  /** Routed requests admitted and not yet finished on this edge. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Current state of a pool's circuit ("closed" when never seen). */
  circuitState(pool: string): CircuitState {
    return this.#circuits.get(pool)?.state ?? "closed";
  }

  admit(
    session: SessionRecord,
    req: JsonRpcRequest,
    target: { kind: TargetKind; name: string; pool: string },
    timeoutMs: number,
  ): (outcome?: RouteOutcome, err?: unknown) => void {
    const now = Date.now();
    const l = this.limits;
    const lagRetry = this.#lag.shedFor();
    if (lagRetry > 0) {
      // The edge itself is behind: this request sat unread while the loop stalled, and admitting
      // it would only queue it behind the backlog. Refuse before anything is queued.
      throw this.#reject(
        "event_loop_lag",
        rejection(
          ErrorCode.Overloaded,
          "edge is lagging behind its clients",
          Math.max(BUSY_RETRY_MS, lagRetry),
        ),
      );
    }
    for (const gate of this.gates) {
      const refused = gate(target.pool);
      if (refused) throw this.#reject(refusalReason(refused), refused);
    }
    if (timeoutMs <= 0) {
      // The client's absolute deadline passed while the request waited to be read: this edge is
      // behind its clients. Shed it without queueing (never run, safe to retry).
      throw this.#reject(
        "expired_unread",
        rejection(
          ErrorCode.Overloaded,
          "the request's deadline passed before the edge could read it",
          BUSY_RETRY_MS,
        ),
      );
    }
    const circuit = l.circuitFailures > 0 ? this.#circuit(target.pool) : undefined;
    const wait = circuit?.blockedFor(now, l.circuitOpenMs);
    if (wait !== undefined) {
      throw this.#reject(
        "circuit_open",
        rejection(
          ErrorCode.Unavailable,
          `worker pool ${target.pool} is failing (circuit open)`,
          wait,
        ),
      );
    }
    const load = this.#poolLoad(target.pool);
    if (l.poolQueueMin > 0 && load.inFlight >= l.poolQueueMin) {
      const waitMs = load.expectedWaitMs(now);
      // Admitted work may wait at most the queue bound, however patient its client says it is.
      const bound = l.maxQueueMs > 0 ? Math.min(timeoutMs, l.maxQueueMs) : timeoutMs;
      if (waitMs !== undefined && waitMs > bound) {
        const what = bound < timeoutMs ? `${bound} ms queue bound` : `${timeoutMs} ms deadline`;
        throw this.#reject(
          "pool_saturated",
          rejection(
            ErrorCode.Overloaded,
            `worker pool ${target.pool} is saturated (predicted wait ${Math.round(waitMs)} ms exceeds the ${what})`,
            Math.max(BUSY_RETRY_MS, waitMs - bound),
          ),
        );
      }
    }
    if (l.maxInFlight > 0 && this.#inFlight >= l.maxInFlight) {
      throw this.#reject(
        "edge_in_flight",
        rejection(ErrorCode.Overloaded, "edge has too many requests in flight", BUSY_RETRY_MS),
      );
    }
    if (this.buffers.exceeded) {
      throw this.#reject(
        "buffered_bytes",
        rejection(ErrorCode.Overloaded, "edge response buffers are full", BUSY_RETRY_MS),
      );
    }
    const mine = this.#perSession.get(session.id) ?? 0;
    if (l.maxInFlightPerSession > 0 && mine >= l.maxInFlightPerSession) {
      throw this.#reject(
        "session_in_flight",
        rejection(
          ErrorCode.RateLimited,
          "too many requests in flight for this session",
          BUSY_RETRY_MS,
        ),
      );
    }
    if (l.maxInFlight > 0 && mine > 0 && this.#inFlight >= l.maxInFlight * FAIR_SHARE_FROM) {
      const share = Math.max(1, Math.floor(l.maxInFlight / this.#perSession.size));
      if (mine >= share) {
        throw this.#reject(
          "fair_share",
          rejection(
            ErrorCode.Overloaded,
            "edge is busy and this session holds its fair share of it",
            BUSY_RETRY_MS,
          ),
        );
      }
    }
    if (req.method === "tools/call" && l.toolRatePerSec > 0) {
      // Anonymous mode has no identity to be fair between; each session is its own principal.
      // A session-less (2026-07-28) HTTP request's synthetic session is its own: it counts for
      // its client address instead, or every anonymous request would get a fresh bucket.
      const key =
        session.principal !== ANONYMOUS
          ? `p:${session.principal}`
          : isModernEra(session.protocolVersion) && session.quotaKey
            ? `a:${session.quotaKey}`
            : `s:${session.id}`;
      this.shared?.before(key);
      const retryAfter = this.#buckets.take(key, now);
      if (retryAfter === 0) this.shared?.granted(key);
      if (retryAfter > 0) {
        throw this.#reject(
          "rate_limited",
          rejection(ErrorCode.RateLimited, "tool call rate limit exceeded", retryAfter),
        );
      }
    }
    const probe = circuit?.acquire(now) ?? false;
    this.#inFlight++;
    load.inFlight++;
    const completionsAtAdmit = load.completions;
    const admittedAt = now;
    this.#perSession.set(session.id, mine + 1);
    this.metrics?.admitted(target.kind);
    let done = false;
    // Failures are attributed to the caller (principal, or anonymous client address): see PoolCircuit.
    const caller = session.quotaKey ?? session.principal;
    return (outcome = "ok", err) => {
      if (done) return;
      done = true;
      this.#inFlight--;
      load.inFlight--;
      if (outcome === "ok" || outcome === "failed") load.completed(Date.now());
      const left = (this.#perSession.get(session.id) ?? 1) - 1;
      if (left <= 0) this.#perSession.delete(session.id);
      else this.#perSession.set(session.id, left);
      if (outcome === "timeout") this.metrics?.expired();
      if (outcome === "refused") {
        if (err instanceof McpError && err.code === ErrorCode.RequestTimeout)
          this.metrics?.expired();
        else this.metrics?.rejected(refusalReason(err));
      }
      if (!circuit) return;
      if (outcome !== "timeout") {
        circuit.record(outcome, probe, Date.now(), l, caller);
        return;
      }
      // A timeout says the pool is failing only when it answered nothing else while this request
      // waited a meaningful time. Timeouts during steady answers are queueing under overload
      // (queue-time admission handles that), and near-zero client budgets say nothing at all.
      // Judged after the event loop's next I/O poll: deadline timers run before pending socket
      // reads, so after a stall of the edge itself the answers that did arrive are counted first.
      const waited = Date.now() - admittedAt;
      setImmediate(() => {
        const stalled = load.completions === completionsAtAdmit && waited >= MIN_STALL_MS;
        circuit.record(stalled ? "timeout" : "cancelled", probe, Date.now(), l, caller);
      });
    };
  }

  /** Cluster-wide limits (shared-limits.ts): settles other edges' use of `key`, sees each grant. */
  shared: { before(key: string): void; granted(key: string): void } | undefined;

  /** Takes `n` tokens from `key`'s bucket that another edge granted (cluster-wide limits). */
  charge(key: string, n: number): void {
    if (this.limits.toolRatePerSec > 0) this.#buckets.charge(key, n, Date.now());
  }

  /** Stops the bucket sweeper. */
  close(): void {
    clearInterval(this.#sweep);
    this.#lag.close();
  }

  #poolLoad(pool: string): PoolLoad {
    let p = this.#pools.get(pool);
    if (!p) {
      p = new PoolLoad();
      this.#pools.set(pool, p);
    }
    return p;
  }

  #circuit(pool: string): PoolCircuit {
    let c = this.#circuits.get(pool);
    if (!c) {
      c = new PoolCircuit((s) => this.metrics?.circuit(pool, s));
      this.#circuits.set(pool, c);
    }
    return c;
  }

  #reject<E extends McpError | Fault>(reason: RejectReason, err: E): E {
    this.metrics?.rejected(reason);
    return err;
  }
}

/** The label for a refusal after admission (its publish failed) or at a gate: a fault's kind. */
function refusalReason(err: unknown): RejectReason {
  if (err instanceof Fault) {
    switch (err.kind) {
      case "stream_full":
      case "target_queue_full":
      case "broker_unavailable":
      case "no_worker":
        return err.kind;
      default:
        return "other";
    }
  }
  // The edge's own in-flight bound, checked after admission (the correlator is full).
  if (err instanceof McpError && err.code === ErrorCode.Overloaded) return "edge_in_flight";
  return "other";
}

/**
 * Per-key token buckets: `burst` calls at once, refilled at `rate` per second. Full buckets
 * carry no information and are swept, so memory follows the keys active in the last seconds.
 */
class TokenBuckets {
  readonly #b = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  /** Takes one token; returns 0 when granted, else the ms until one is available. */
  take(key: string, now: number): number {
    let b = this.#b.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.#b.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.rate) / 1000);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - b.tokens) * 1000) / this.rate));
  }

  /** Takes `n` tokens granted elsewhere; the balance may go down to -burst (a debt refilled first). */
  charge(key: string, n: number, now: number): void {
    let b = this.#b.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.#b.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.rate) / 1000);
      b.at = now;
    }
    b.tokens = Math.max(-this.burst, b.tokens - n);
  }

  sweep(now: number): void {
    for (const [k, b] of this.#b) {
      if (b.tokens + ((now - b.at) * this.rate) / 1000 >= this.burst) this.#b.delete(k);
    }
  }
}

/**
 * One pool's circuit breaker, local to this edge. Closed: everything passes; `failures`
 * consecutive timeouts or internal errors open it. Open: everything is refused (-32012) until
 * the open interval ends. Half-open: one request at a time is let through as a probe (a probe
 * outstanding longer than the interval no longer blocks the next); a success closes the circuit,
 * a failure reopens it with the interval doubled (up to 30 s). Any success from the pool closes it.
 */
class PoolCircuit {
  state: CircuitState = "closed";
  /**
   * Callers whose requests failed in the current streak. The circuit opens once `circuitFailures`
   * different callers failed in a row: one caller's bad input (an argument that makes the tool
   * fail, e.g. `add(1e308, 1e308)` overflowing its output schema) fails only its own calls and
   * never opens the pool's circuit for everyone. A pool that is really down fails everyone's.
   */
  readonly #failedCallers = new Set<string>();
  #openUntil = 0;
  #openMs = 0;
  #probeSince: number | undefined;

  constructor(private readonly onChange: (s: CircuitState) => void) {}

  /** Ms the caller must wait, or undefined when a request may pass now. */
  blockedFor(now: number, baseOpenMs: number): number | undefined {
    if (this.state === "closed") return undefined;
    if (this.state === "open") return now < this.#openUntil ? this.#openUntil - now : undefined;
    // half-open: one probe at a time
    if (
      this.#probeSince !== undefined &&
      now - this.#probeSince < Math.max(this.#openMs, baseOpenMs)
    ) {
      return Math.max(1, this.#probeSince + Math.max(this.#openMs, baseOpenMs) - now);
    }
    return undefined;
  }

  /** Called once the request is admitted; true when it is the half-open probe. */
  acquire(now: number): boolean {
    if (this.state === "closed") return false;
    this.#set("half_open");
    this.#probeSince = now;
    return true;
  }

  record(
    outcome: RouteOutcome,
    probe: boolean,
    now: number,
    l: Readonly<AdmissionLimits>,
    caller: string,
  ): void {
    switch (outcome) {
      case "ok":
        this.#failedCallers.clear();
        this.#openMs = 0;
        this.#probeSince = undefined;
        this.#set("closed");
        return;
      case "failed":
      case "timeout":
        if (this.#failedCallers.size < l.circuitFailures) this.#failedCallers.add(caller);
        if (probe || (this.state === "closed" && this.#failedCallers.size >= l.circuitFailures)) {
          this.#openMs =
            this.#openMs === 0 ? l.circuitOpenMs : Math.min(MAX_OPEN_MS, this.#openMs * 2);
          this.#openUntil = now + this.#openMs;
          this.#probeSince = undefined;
          this.#set("open");
        }
        return;
      default:
        // cancelled or refused before queueing: says nothing about the pool; free the probe slot.
        if (probe) this.#probeSince = undefined;
    }
  }

  #set(s: CircuitState): void {
    if (this.state === s) return;
    this.state = s;
    this.onChange(s);
  }
}

/**
 * This edge's load on one pool: requests in flight and the rate at which they complete, measured
 * over 250 ms windows (EWMA). By Little's law the wait of a new request is about in-flight / rate.
 * The rate is only trusted while fresh: after an idle spell it reflects demand, not capacity, so
 * a burst after idle is admitted and the windows it fills measure the pool's real capacity.
 */
class PoolLoad {
  inFlight = 0;
  /** Requests the pool answered (results or errors), for telling overload from a dead pool. */
  completions = 0;
  #rate = 0;
  #count = 0;
  #windowStart = Date.now();
  #updatedAt = 0;

  completed(now: number): void {
    this.completions++;
    this.#count++;
    const dt = now - this.#windowStart;
    if (dt >= 250) {
      const r = (this.#count * 1000) / dt;
      this.#rate =
        this.#rate === 0 || now - this.#updatedAt > 2_000 ? r : 0.7 * this.#rate + 0.3 * r;
      this.#count = 0;
      this.#windowStart = now;
      this.#updatedAt = now;
    }
  }

  /** Predicted wait of one more request (ms), or undefined when there is no fresh measurement. */
  expectedWaitMs(now: number): number | undefined {
    if (this.#rate <= 0 || now - this.#updatedAt > 2_000) return undefined;
    return ((this.inFlight + 1) / this.#rate) * 1000;
  }
}
