import { EventEmitter } from "node:events";
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { silentLogger, type Logger } from "@mcpq/protocol";
import type { Bus } from "./connection.js";
import { isNotFound } from "./errors.js";
import { bucketConfigs, provision, provisionBuckets, streamConfigs } from "./provision.js";

/** A consumer its owner provisions and self-heal re-creates when it is gone (a worker's pool consumer). */
interface HealedConsumer {
  stream: string;
  name: string;
  /** Creates (or updates) the consumer; idempotent. */
  ensure(): Promise<unknown>;
}

export interface SelfHealOptions {
  /** Period of the existence check (ms); 0 = check only after reconnects and on `check()`. */
  checkMs: number;
  log?: Logger;
  /** Consumers checked (and re-created when missing) in every round, e.g. the pool consumers in use. */
  consumers?: () => readonly HealedConsumer[];
  /** Bound on each broker request of a round (ms). Default 2000. */
  requestTimeoutMs?: number;
  /** Delay before retrying a round that failed while connected (ms). Default 250. */
  retryMs?: number;
  /**
   * false: never create streams or buckets, only check and report them (a least-privilege
   * worker credential, MCPQ_PROVISION=off: the edges re-create them). Default true.
   */
  provision?: boolean;
  /** The streams (`KV_<bucket>` for buckets) to check; default all of mcpq's (a least-privilege worker may look up only its own). */
  streams?: readonly string[];
}

/** What one round of checks found. */
export interface HealReport {
  /** Every stream, bucket and listed consumer existed at the end of the round. */
  ok: boolean;
  /** Streams and buckets all exist (after re-provisioning, if any was missing). */
  streams: boolean;
  /** Every listed consumer exists (after re-creating missing ones). */
  consumers: boolean;
  /** Epoch ms of the round's end. */
  checkedAt: number;
  /** What this round found missing (stream names, `KV_<bucket>`, `<stream>/<consumer>`) and re-created. */
  missing: string[];
  /**
   * Streams, buckets and listed consumers created anew since the previous round by another
   * process (or found missing and re-created by this one: then also in `missing`): consumers,
   * watchers and registrations on the old ones are gone with them.
   */
  recreated: string[];
  /**
   * Listed consumers whose leader changed since the previous round (a cluster node died or
   * stepped down): pull requests parked on the old leader are gone, so pull loops restart.
   */
  moved: string[];
  /** Why the round could not finish (broker unreachable); the next round retries. */
  error?: string;
}

/**
 * Keeps the broker topology mcpq needs in place without a process restart. After every
 * reconnect and every `checkMs`, it looks up each stream (MCPQ_REQ, MCPQ_OUT, MCPQ_REC), each KV
 * bucket's stream and each consumer the owner lists; anything missing (memory storage lost in a
 * broker restart, a purge or delete, a new meta leader that lost an asset) is provisioned again
 * with the same functions the connect path uses (`provision`, `openBuckets`, the owner's
 * `ensure`). A stream whose creation time changed was re-created (maybe by another process):
 * the round reports it in `recreated` so owners re-attach what died with it (consumers,
 * KV watchers, registry entries).
 *
 * Events: `healed` when a round re-created something or found something re-created, then
 * `checked` after every round; `reconnected` after the first round that follows a reconnect (the
 * topology is back: re-register now).
 */
export class SelfHeal extends EventEmitter<{
  checked: [HealReport];
  healed: [HealReport];
  reconnected: [HealReport];
}> {
  readonly #log: Logger;
  readonly #created = new Map<string, string>();
  readonly #leaders = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #connected = true;
  #jsm: JetStreamManager | undefined;
  #js: JetStreamClient | undefined;
  #running: Promise<HealReport> | undefined;
  #next: Promise<HealReport> | undefined;
  #stopped = false;
  #last: HealReport | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly opts: SelfHealOptions,
  ) {
    super();
    this.#log = opts.log ?? silentLogger;
  }

  /** The last round's findings (undefined before the first round ends). */
  get report(): HealReport | undefined {
    return this.#last;
  }

  /** Runs a first round, then watches the connection and checks periodically. */
  async start(): Promise<HealReport> {
    // Own handles with a short request bound: a round must not sit on a request sent into a
    // dead connection for the client's default 5-10 s while the broker is already back.
    const timeout = this.opts.requestTimeoutMs ?? 2_000;
    this.#jsm = await jetstreamManager(this.bus.nc, { timeout, checkAPI: false });
    this.#js = jetstream(this.bus.nc, { timeout });
    void (async () => {
      for await (const s of this.bus.nc.status()) {
        if (this.#stopped) return;
        if (s.type === "disconnect") this.#connected = false;
        else if (s.type === "reconnect") {
          this.#connected = true;
          this.#log.info(
            { server: s.server },
            "broker reconnected; checking streams, buckets and consumers",
          );
          // A fresh round now, not after a round that started before the reconnect.
          void this.#fresh().then((r) => this.emit("reconnected", r));
        }
      }
    })().catch(() => undefined);
    const first = await this.check();
    if (this.opts.checkMs > 0) {
      this.#timer = setInterval(() => {
        if (this.#connected) void this.check();
      }, this.opts.checkMs);
      this.#timer.unref();
    }
    return first;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
  }

  #fresh(): Promise<HealReport> {
    const round = this.#round().finally(() => {
      if (this.#running === round) this.#running = undefined;
    });
    this.#running = round;
    return round;
  }

  /**
   * One round of checks (rounds never overlap: a call during a round gets a round that starts
   * after it). Never throws; an unreachable broker is reported in `error`.
   */
  check(): Promise<HealReport> {
    if (this.#running) {
      // Callers during a round share one follow-up round.
      this.#next ??= this.#running.then(() => {
        this.#next = undefined;
        return this.check();
      });
      return this.#next;
    }
    return this.#fresh();
  }

  async #round(): Promise<HealReport> {
    const missing: string[] = [];
    const recreated: string[] = [];
    const moved: string[] = [];
    let streamsOk = false;
    let consumersOk = false;
    let error: string | undefined;
    try {
      const names = this.opts.streams ?? [
        ...streamConfigs(this.bus.limits).map((c) => c.name),
        ...bucketConfigs(this.bus.limits).map((b) => `KV_${b.bucket}`),
      ];
      const found = new Map<string, string | null>();
      for (const n of names) {
        const created = await this.#created_(n);
        found.set(n, created);
        if (created === null) missing.push(n);
      }
      if (missing.length > 0 && this.opts.provision === false) {
        throw new Error(
          `missing ${missing.join(", ")}; not re-creating them (provisioning is off here)`,
        );
      }
      if (missing.length > 0) {
        this.#log.warn({ missing }, "broker lost streams or buckets; provisioning them again");
        // The same provisioning as at connect (configuration, replicas, reconciliation).
        const jsm = this.#jsm ?? this.bus.jsm;
        const p = { log: this.#log, clustered: Boolean(this.bus.nc.info?.cluster) };
        await provision(jsm, this.bus.limits, p);
        await provisionBuckets(this.#js ?? this.bus.js, jsm, this.bus.limits, p);
        for (const n of missing) found.set(n, await this.#created_(n));
      }
      for (const n of names) {
        const created = found.get(n) ?? null;
        if (created === null) throw new Error(`${n} still missing after provisioning`);
        const before = this.#created.get(n);
        if (before !== undefined && before !== created) recreated.push(n);
        this.#created.set(n, created);
      }
      streamsOk = true;
      for (const c of this.opts.consumers?.() ?? []) {
        const key = `${c.stream}/${c.name}`;
        let info = await this.#consumerInfo(c.stream, c.name);
        if (info === null) {
          missing.push(key);
          this.#log.warn(
            { stream: c.stream, consumer: c.name },
            "consumer lost; creating it again",
          );
          await c.ensure();
          info = await this.#consumerInfo(c.stream, c.name);
        }
        // Re-created by another process since the last round: pull loops on it must restart.
        const before = this.#created.get(key);
        if (
          info !== null &&
          before !== undefined &&
          before !== info.created &&
          !missing.includes(key)
        )
          recreated.push(key);
        if (info !== null) this.#created.set(key, info.created);
        const leaderBefore = this.#leaders.get(key);
        if (info?.leader !== undefined) {
          if (leaderBefore !== undefined && leaderBefore !== info.leader) moved.push(key);
          this.#leaders.set(key, info.leader);
        }
      }
      consumersOk = true;
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      this.#log.warn({ err }, "broker topology check failed; retrying");
    }
    const report: HealReport = {
      ok: streamsOk && consumersOk,
      streams: streamsOk,
      consumers: consumersOk,
      checkedAt: Date.now(),
      missing,
      recreated,
      moved,
      ...(error !== undefined ? { error } : {}),
    };
    this.#last = report;
    if (!report.ok && this.#connected && !this.#stopped && this.#retry === undefined) {
      // The broker may be back but not ready yet (JetStream still starting): retry soon.
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        void this.check();
      }, this.opts.retryMs ?? 250);
      this.#retry.unref();
    }
    if (recreated.length > 0 || missing.length > 0 || moved.length > 0) this.emit("healed", report);
    this.emit("checked", report);
    return report;
  }

  /** The stream's creation time, or null when it does not exist. */
  async #created_(name: string): Promise<string | null> {
    try {
      const info = await (this.#jsm ?? this.bus.jsm).streams.info(name);
      return info.created;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** The consumer's creation time and leader (clustered), or null when it does not exist. */
  async #consumerInfo(
    stream: string,
    name: string,
  ): Promise<{ created: string; leader: string | undefined } | null> {
    try {
      const info = await (this.#jsm ?? this.bus.jsm).consumers.info(stream, name);
      return { created: info.created, leader: info.cluster?.leader };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }
}
