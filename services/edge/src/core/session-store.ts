import { randomBytes } from "node:crypto";
import {
  BUCKETS,
  countKeys,
  digestToken,
  eraseKey,
  isWrongLastSequence,
  sessionChangedContract,
  subscriptionKey,
  type Bus,
  type KV,
} from "@mcpq/bus";
import { Fault, type AnyProtocolVersion, type LogLevel } from "@mcpq/protocol";

/**
 * A session as stored in JetStream KV; any edge can load it. A stateless-era (2026-07-28)
 * request gets a synthetic record instead (SessionCore.modernSession), built from its `_meta`
 * and never stored.
 */
export interface SessionRecord {
  id: string;
  principal: string;
  /** The key the session is counted under when it is not the principal (anonymous: per client address). */
  quotaKey?: string;
  protocolVersion: AnyProtocolVersion;
  clientInfo: Record<string, unknown>;
  clientCapabilities: Record<string, unknown>;
  logLevel?: LogLevel;
  initialized: boolean;
  /** URIs of `resources/subscribe`; their `mcpq_subs` keys are refreshed with the session. */
  subscriptions?: string[];
  createdAt: number;
  lastSeenAt: number;
}

/** Compare-and-set rounds before a session update gives up (each lost round means another write landed). */
const MAX_CAS_ATTEMPTS = 20;

/**
 * Randomised pause before compare-and-set round `attempt` (capped exponential, full jitter): with
 * N writers racing, retrying at once lets the same writers collide again round after round (a
 * loser of 10 straight races was seen with 12 concurrent subscribes on a loaded machine).
 */
function casBackoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(50, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The session ended (deleted or expired) while it was being changed: the client sees "Session not found". */
const sessionGone = () => new Fault("session_gone", "the session ended while it was changed");

/**
 * Sessions live in KV (`s.<id>`, plus `p.<principal-digest>.<id>` for per-principal caps); the
 * bucket TTL is the idle timeout, refreshed by `touch`. Edges keep a short-lived cache and evict
 * it when any edge announces a change, so no edge depends on its own memory.
 */
export class SessionStore {
  readonly #kv: KV;
  readonly #cache = new Map<string, { rec: SessionRecord; at: number }>();
  readonly #cacheMs: number;
  readonly #touchEveryMs: number;
  readonly #idleTtlMs: number;
  readonly #maxCache: number;

  constructor(
    private readonly bus: Bus,
    opts: { cacheMs: number; maxCache?: number },
  ) {
    this.#kv = bus.kv.sessions;
    this.#cacheMs = opts.cacheMs;
    this.#maxCache = opts.maxCache ?? 200_000;
    this.#idleTtlMs = bus.limits.sessionIdleTtlMs;
    this.#touchEveryMs = Math.min(
      Math.max(1_000, Math.floor(this.#idleTtlMs / 4)),
      Math.max(1, Math.floor(this.#idleTtlMs / 2)),
    );
    bus.nc.subscribe(sessionChangedContract.subject, {
      callback: (_e, m) => {
        const id = sessionChangedContract.decode(m.data);
        if (id !== null) this.#cache.delete(id);
      },
    });
  }

  /** 32 random bytes, base64url: unguessable, subject-safe, visible ASCII. */
  static newId(): string {
    return randomBytes(32).toString("base64url");
  }

  /**
   * Open sessions of a principal (or of an anonymous client: see `quotaKey`): its index keys,
   * counted by the server (`countKeys`; expired ones have aged out, ended ones are erased
   * without a marker, see `delete`).
   */
  countForPrincipal(principal: string): Promise<number> {
    return countKeys(this.bus.jsm, BUCKETS.sessions, `p.${digestToken(principal)}.*`);
  }

  async create(rec: SessionRecord): Promise<void> {
    // independent keys: one round trip for both (a session open is on the ramp of every client)
    await Promise.all([
      this.#kv.put(`s.${rec.id}`, JSON.stringify(rec)),
      this.#kv.put(indexKey(rec), ""),
    ]);
    this.#remember(rec);
  }

  /**
   * Loads a session for `principal`. Returns null when unknown, expired, or owned by another
   * principal (indistinguishable to the caller: 404, never a hint that the id exists).
   */
  async get(id: string, principal: string): Promise<SessionRecord | null> {
    if (!/^[A-Za-z0-9_-]{16,128}$/.test(id)) return null;
    const now = Date.now();
    const hit = this.#cache.get(id);
    // A cached record never outlives the idle TTL: past it the session may have expired in KV.
    let rec: SessionRecord | null =
      hit && now - hit.at < this.#cacheMs && now - hit.rec.lastSeenAt < this.#idleTtlMs
        ? hit.rec
        : null;
    if (!rec) {
      const e = await this.#kv.get(`s.${id}`);
      if (!e || e.operation !== "PUT" || e.length === 0) {
        this.#cache.delete(id);
        return null;
      }
      rec = e.json<SessionRecord>();
      this.#remember(rec);
    }
    if (rec.principal !== principal) return null;
    if (now - rec.lastSeenAt > this.#touchEveryMs) void this.touch(rec).catch(() => undefined);
    return rec;
  }

  /**
   * Refreshes the idle TTL of everything the session holds in KV: its record, its
   * per-principal key and its resource subscriptions (`mcpq_subs` has the same TTL). The record
   * is rewritten from the stored copy (compare-and-set), never from this edge's cached one: a
   * touch neither undoes another edge's change nor brings back a session that was ended.
   */
  async touch(rec: SessionRecord): Promise<void> {
    const stored = await this.#change(rec.id, () => undefined, { retry: false });
    if (!stored) return;
    Object.assign(rec, stored);
    await this.#refreshIndex(stored);
  }

  async #refreshIndex(rec: SessionRecord): Promise<void> {
    await this.#kv.put(indexKey(rec), "");
    // The record lists its subscriptions, so refreshing them needs no scan of the bucket.
    for (const uri of rec.subscriptions ?? []) await this.#putSubscription(rec, uri);
  }

  /**
   * Read-modify-write of the stored record with compare-and-set on its KV revision, so
   * concurrent changes from different edges (setLevel on one, subscribe on another) all take
   * effect. Returns the record as written, or null when the session no longer exists. Without
   * `retry`, a concurrent write wins and null is returned (it refreshed the TTL already).
   */
  async #change(
    id: string,
    apply: (r: SessionRecord) => void,
    opts: { retry: boolean },
  ): Promise<SessionRecord | null> {
    for (let attempt = 0; ; attempt++) {
      const e = await this.#kv.get(`s.${id}`);
      if (!e || e.operation !== "PUT" || e.length === 0) {
        this.#cache.delete(id);
        return null;
      }
      const stored = e.json<SessionRecord>();
      apply(stored);
      stored.lastSeenAt = Date.now();
      try {
        await this.#kv.update(`s.${id}`, JSON.stringify(stored), e.revision);
        this.#remember(stored);
        return stored;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        if (!opts.retry) return null;
        if (attempt >= MAX_CAS_ATTEMPTS) throw err;
        await casBackoff(attempt);
      }
    }
  }

  /** Subscribes the session to `uri`: its `mcpq_subs` key (found by fan-out) and its record. */
  async subscribe(rec: SessionRecord, uri: string): Promise<void> {
    await this.#putSubscription(rec, uri);
    await this.update(rec, (r) => {
      if (!r.subscriptions?.includes(uri)) r.subscriptions = [...(r.subscriptions ?? []), uri];
    });
  }

  async unsubscribe(rec: SessionRecord, uri: string): Promise<void> {
    await this.bus.kv.subscriptions.purge(subscriptionKey(uri, rec.id));
    await this.update(rec, (r) => {
      if (r.subscriptions?.includes(uri))
        r.subscriptions = r.subscriptions.filter((u) => u !== uri);
    });
  }

  #putSubscription(rec: SessionRecord, uri: string): Promise<number> {
    return this.bus.kv.subscriptions.put(
      subscriptionKey(uri, rec.id),
      JSON.stringify({ uri, principal: rec.principal }),
    );
  }

  /**
   * Keeps a session alive while a client holds a stream open on it (a GET listener sends no
   * requests, yet is not idle). Returns the stop function.
   */
  keepAlive(rec: SessionRecord): () => void {
    const timer = setInterval(
      () => void this.touch(rec).catch(() => undefined),
      this.#touchEveryMs,
    );
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Changes the session: `apply` runs on the stored record (compare-and-set, retried when
   * another edge wrote in between) and the result is copied into `rec`. Every edge's cache of
   * the session is evicted. Throws a `session_gone` fault when the session ended meanwhile.
   */
  async update(rec: SessionRecord, apply: (r: SessionRecord) => void): Promise<void> {
    const stored = await this.#change(rec.id, apply, { retry: true });
    if (!stored) throw sessionGone();
    Object.assign(rec, stored);
    this.bus.nc.publish(sessionChangedContract.subject, sessionChangedContract.encode(rec.id));
    // The client may send its next request to another edge as soon as this one answers: make
    // sure the eviction has reached the server first (e.g. logging/setLevel, then tools/call).
    // A session younger than the touch interval has fresh keys (the index written by `create`,
    // a subscription's key by `subscribe` just before): `notifications/initialized` right after
    // `initialize` needs no second write of them.
    await Promise.all([
      Date.now() - stored.createdAt < this.#touchEveryMs ? undefined : this.#refreshIndex(stored),
      this.bus.nc.flush(),
    ]);
  }

  /** Ends a session everywhere: later requests with its id get 404 on every edge. */
  async delete(rec: SessionRecord): Promise<void> {
    this.#cache.delete(rec.id);
    await this.#kv.purge(`s.${rec.id}`);
    // A stream purge leaves no marker, so the ended session stops counting against the cap.
    await eraseKey(this.bus.jsm, BUCKETS.sessions, indexKey(rec));
    this.bus.nc.publish(sessionChangedContract.subject, sessionChangedContract.encode(rec.id));
  }

  #remember(rec: SessionRecord): void {
    if (this.#cache.size >= this.#maxCache) {
      const first = this.#cache.keys().next().value;
      if (first !== undefined) this.#cache.delete(first);
    }
    this.#cache.set(rec.id, { rec, at: Date.now() });
  }
}

/** The per-principal (or per anonymous client) index key of a session, counted at initialize. */
function indexKey(rec: SessionRecord): string {
  return `p.${digestToken(rec.quotaKey ?? rec.principal)}.${rec.id}`;
}
