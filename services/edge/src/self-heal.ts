import {
  BUCKETS,
  H,
  LivenessView,
  SelfHeal,
  STREAMS,
  decodeEnvelope,
  ensurePoolConsumer,
  headerValue,
  poolConsumer,
  cancelContract,
  type CancelNotice,
  type MsgHdrs,
  type Bus,
  type Correlator,
  type HealReport,
  type PubAck,
} from "@mcpq/bus";
import { Fault, type FaultKind, type Logger } from "@mcpq/protocol";
import { BrokerHealth, guardedBus } from "./broker-health.js";
import type { CatalogView } from "./core/catalog.js";

export interface EdgeHealingOptions {
  /** MCPQ_BROKER_UNAVAILABLE_MS (see BrokerHealth). */
  unavailableMs: number;
  /** MCPQ_HEAL_CHECK_MS (see SelfHeal). */
  healCheckMs: number;
  /**
   * MCPQ_MAX_QUEUE_MS: a request still queued (delivered to no worker) at its start-by time is
   * answered -32010 by the edge and cancelled; 0 = off (the deadline alone).
   */
  maxQueueMs?: number;
  log: Logger;
  /** Counts requests this edge answered because of a fault (`no_worker`, `request_lost`). */
  onFaultAnswer?: (reason: FaultKind) => void;
  /** Counts what self-heal found missing or re-created (stream, bucket or consumer names). */
  onHealed?: (what: string) => void;
}

/** The -32012 for a pool whose every worker stopped beating. */
const noLiveWorker = (pool: string) =>
  new Fault("no_worker", `no live worker in pool ${pool}`, { retryAfterMs: 2_000 });

/** A routed request as published: when (disconnect epoch), and its envelope, to cancel it. */
interface Tracked {
  epoch: number;
  headers: MsgHdrs | undefined;
  /** Its `Mcpq-Start-By` (NaN when it has none). */
  startBy: number;
  /** Its MCPQ_REQ sequence, once the PubAck came. */
  seq?: number;
  /** A worker was delivered it: past its start-by, it is the worker's to refuse or run. */
  delivered?: boolean;
}

const REQUEST_PREFIX = "mcpq.req.";

/** Requests this edge tracks per pool while they wait, to answer them when the pool dies. */
const MAX_TRACKED_BEFORE_PRUNE = 4_096;

/**
 * An edge's self-healing, wired around the session core without changing it:
 *
 * - `health` (BrokerHealth): refuses with -32010 at once while the broker is down; `bus` is the
 *   guarded view the session store and core use.
 * - `heal` (SelfHeal): re-provisions lost streams, buckets and the pool consumers of pools in
 *   the catalog; restarts the registry watch when the registry bucket was re-created (a watcher
 *   on a re-created stream would wait for sequence numbers the new stream has not reached).
 * - worker liveness (LivenessView): a pool whose every worker stopped beating is refused with
 *   -32012 and its requests waiting here are answered -32012 at once, instead of at their
 *   deadline; requests queued in a stream the broker lost (memory storage across a restart)
 *   are answered -32010 once the loss is detected.
 *
 * `gate(pool)` is the admission hook; `readiness()` feeds /readyz.
 */
export class EdgeHealing {
  readonly health: BrokerHealth;
  readonly bus: Bus;
  readonly heal: SelfHeal;
  readonly liveness: LivenessView;
  readonly #waiting = new Map<string, Map<string, Tracked>>();
  /** Counts this edge's disconnects; a tracked request remembers the epoch it was published in. */
  #epoch = 0;
  #epochAtLastRound = 0;
  #sweep: NodeJS.Timeout | undefined;
  /** Pools whose consumer is being asked for its delivered sequence now. */
  readonly #asking = new Set<string>();
  correlator: Correlator<unknown> | undefined;

  constructor(
    private readonly raw: Bus,
    private readonly catalog: CatalogView,
    private readonly opts: EdgeHealingOptions,
  ) {
    this.health = new BrokerHealth(raw, { unavailableMs: opts.unavailableMs, log: opts.log });
    this.bus = guardedBus(raw, this.health, (subject, h, acked) => this.#track(subject, h, acked));
    this.liveness = new LivenessView(raw.nc);
    this.heal = new SelfHeal(raw, {
      checkMs: opts.healCheckMs,
      log: opts.log,
      consumers: () =>
        this.catalog.pools().map((pool) => ({
          stream: STREAMS.requests,
          name: poolConsumer(pool),
          ensure: () => ensurePoolConsumer(raw.jsm, pool, raw.limits),
        })),
    });
  }

  async start(): Promise<void> {
    this.health.start();
    this.liveness.start();
    this.liveness.on("dead", (pool) => {
      this.opts.log.warn(
        { pool },
        "every worker of the pool stopped beating; answering its waiting requests -32012",
      );
      this.#fail(pool, () => noLiveWorker(pool), undefined);
    });
    void (async () => {
      for await (const s of this.raw.nc.status()) if (s.type === "disconnect") this.#epoch++;
    })().catch(() => undefined);
    this.heal.on("healed", (r) => this.#healed(r));
    this.heal.on("checked", () => (this.#epochAtLastRound = this.#epoch));
    await this.heal.start();
    const maxQueueMs = this.opts.maxQueueMs ?? 0;
    if (maxQueueMs > 0) {
      const every = Math.min(1_000, Math.max(50, Math.floor(maxQueueMs / 4)));
      this.#sweep = setInterval(() => this.#sweepQueued(), every);
      this.#sweep.unref();
    }
  }

  stop(): void {
    clearInterval(this.#sweep);
    this.heal.stop();
    this.liveness.stop();
    this.health.stop();
  }

  /** Admission gate: the refusal for a request to `pool` now, if any. */
  gate(pool: string): Fault | undefined {
    if (!this.health.up) return this.health.refusal();
    if (!this.liveness.alive(pool)) return noLiveWorker(pool);
    return undefined;
  }

  /** What /readyz reports about the broker: reachable, and every stream, bucket and consumer exists. */
  readiness(): { broker: boolean; streams: boolean; consumers: boolean } {
    const r = this.heal.report;
    return {
      broker: this.health.up,
      streams: r?.streams ?? false,
      consumers: r?.consumers ?? false,
    };
  }

  #healed(r: HealReport): void {
    for (const what of new Set([...r.missing, ...r.recreated])) this.opts.onHealed?.(what);
    const lost = (n: string) => r.recreated.includes(n) || r.missing.includes(n);
    if (lost(`KV_${BUCKETS.registry}`)) {
      this.opts.log.info(
        { bucket: BUCKETS.registry },
        "registry bucket re-created; restarting the registry watch",
      );
      this.catalog.stop();
      void this.catalog
        .start()
        .catch((err: unknown) => this.opts.log.warn({ err }, "registry watch restart failed"));
    }
    if (lost(STREAMS.requests) || lost(STREAMS.outbound)) {
      // Requests queued (or answers stored) in the lost stream will never be answered. After a
      // reconnect, those published since it went to the new stream; otherwise (deleted while
      // connected) every waiting request is affected.
      const before = this.#epoch !== this.#epochAtLastRound ? this.#epoch : undefined;
      for (const pool of [...this.#waiting.keys()]) {
        this.#fail(
          pool,
          () => new Fault("request_lost", "queued in a lost stream", { retryAfterMs: 1_000 }),
          before,
        );
      }
    }
  }

  #track(subject: string, headers: MsgHdrs | undefined, acked: Promise<PubAck>): void {
    if (!headers || !subject.startsWith(REQUEST_PREFIX)) return;
    const msgId = headerValue(headers, H.msgId);
    if (!msgId) return;
    const end = subject.indexOf(".", REQUEST_PREFIX.length);
    const pool =
      end < 0 ? subject.slice(REQUEST_PREFIX.length) : subject.slice(REQUEST_PREFIX.length, end);
    let ids = this.#waiting.get(pool);
    if (!ids) this.#waiting.set(pool, (ids = new Map()));
    // Answered and refused requests are not removed one by one (hot path): once the map is
    // large, everything the correlator no longer waits for is dropped (amortised O(1)).
    if (ids.size >= MAX_TRACKED_BEFORE_PRUNE && this.correlator) {
      for (const id of ids.keys()) if (!this.correlator.has(id)) ids.delete(id);
    }
    // Only the envelope headers are kept, never the body (requests can be megabytes).
    const t: Tracked = {
      epoch: this.#epoch,
      headers,
      startBy: Number(headerValue(headers, H.startBy) || NaN),
    };
    ids.set(msgId, t);
    if (t.startBy > 0)
      acked.then(
        (ack) => (t.seq = ack.seq),
        () => undefined,
      );
  }

  /**
   * Requests past their start-by time that no worker was delivered yet (their MCPQ_REQ sequence
   * is beyond the pool consumer's delivered sequence: every worker is busy, or none pulls) are
   * answered -32010 `not_started` and cancelled, so none runs later; what a worker holds is the
   * worker's to refuse (it checks the start-by too). Per pool, one consumer-info request per
   * sweep, only when something is overdue. Tracked requests are in publish order, so a sweep
   * stops at the first one not yet due, dropping the answered ones before it.
   */
  #sweepQueued(): void {
    const now = Date.now();
    for (const [pool, ids] of this.#waiting) {
      let overdue: [string, Tracked][] | undefined;
      for (const [id, t] of ids) {
        if (this.correlator && !this.correlator.has(id)) {
          ids.delete(id);
          continue;
        }
        if (!(t.startBy <= now)) break;
        if (t.seq !== undefined && !t.delivered) (overdue ??= []).push([id, t]);
      }
      if (ids.size === 0) this.#waiting.delete(pool);
      if (overdue && !this.#asking.has(pool)) void this.#refuseUndelivered(pool, ids, overdue);
    }
  }

  async #refuseUndelivered(
    pool: string,
    ids: Map<string, Tracked>,
    overdue: [string, Tracked][],
  ): Promise<void> {
    this.#asking.add(pool);
    try {
      const info = await this.raw.jsm.consumers.info(STREAMS.requests, poolConsumer(pool));
      const delivered = info.delivered.stream_seq;
      for (const [id, t] of overdue) {
        if (t.seq! <= delivered) {
          t.delivered = true;
          continue;
        }
        ids.delete(id);
        const fault = new Fault("not_started", "queued past its start-by", {
          retryAfterMs: 1_000,
        });
        if (this.correlator?.reject(id, fault)) {
          this.opts.onFaultAnswer?.(fault.kind);
          this.#cancel(t);
        }
      }
    } catch (err) {
      // The broker is unreachable or the consumer gone: health and self-heal deal with that.
      this.opts.log.debug({ err, pool }, "queue-time check skipped");
    } finally {
      this.#asking.delete(pool);
    }
  }

  /**
   * The client has its answer: a worker that receives the request later (a new worker of the
   * pool, or redelivery) drops it unrun, like a request cancelled while queued.
   */
  #cancel(t: Tracked): void {
    const env = decodeEnvelope(t.headers);
    if (!env) return;
    // Named by the internal id: the client's id is in the body, which is not kept.
    const notice: CancelNotice = {
      session: env.session,
      principal: env.principal,
      requestId: env.requestId,
      internalId: env.requestId,
      reason: "answered by the edge",
    };
    this.raw.nc.publish(cancelContract.subject(notice), cancelContract.encode(notice));
  }

  /** Answers the tracked requests of `pool` (published in an epoch before `beforeEpoch`, if given). */
  #fail(pool: string, err: () => Fault, beforeEpoch: number | undefined): void {
    const ids = this.#waiting.get(pool);
    if (!ids || !this.correlator) return;
    for (const [id, t] of ids) {
      if (beforeEpoch !== undefined && t.epoch >= beforeEpoch) continue;
      ids.delete(id);
      const fault = err();
      if (this.correlator.reject(id, fault)) {
        this.opts.onFaultAnswer?.(fault.kind);
        this.#cancel(t);
      }
    }
    if (ids.size === 0) this.#waiting.delete(pool);
  }
}
