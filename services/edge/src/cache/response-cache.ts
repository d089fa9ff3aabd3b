import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import {
  distinctKeys,
  EDGE_CACHE_QUEUE_GROUP,
  REPLAY_PRINCIPAL,
  cacheInvalidateContract,
  digestToken,
  isReplaySession,
  resourceUpdatedContract,
  subjects,
  type Bus,
  type KV,
  type TargetKind,
} from "@mcpq/bus";
import {
  MCPQ_META,
  isModernEra,
  silentLogger,
  type JsonRpcRequest,
  type Logger,
} from "@mcpq/protocol";
import type { CatalogView } from "../core/catalog.js";
import { errorMessage } from "../core/http-errors.js";
import type { SessionRecord } from "../core/session-store.js";
import type {
  Dispatched,
  ResultCache,
  RouteToWorker,
  StreamContext,
} from "../core/session-core.js";
import type { CacheMetrics } from "./cache-metrics.js";
import { PolicyIndex, canonicalJson, type MatchedPolicy } from "./policies.js";

/** Settings of the response cache (edge env MCPQ_CACHE_*). */
export interface ResponseCacheConfig {
  /** L1: most entries per edge (0 = no L1). */
  l1MaxEntries: number;
  /** L1: most bytes (keys and result JSON, UTF-16 units counted as bytes) per edge. */
  l1MaxBytes: number;
  /** Results larger than this (bytes of JSON) are not cached. */
  maxEntryBytes: number;
  /** Caps every declared ttlMs (and is the L2 bucket's max_age). */
  maxTtlMs: number;
  /** Most distinct keys with a miss in flight (single-flight table); beyond it misses are not coalesced. */
  maxFlights: number;
  /** Most requests waiting on one in-flight miss; beyond it they call a worker themselves. */
  maxWaiters: number;
  /** Upper bound on one L2 read (ms): past it the lookup counts as a miss. */
  l2TimeoutMs: number;
}

/** One cached result. */
interface Entry {
  /** The result object's JSON (the `result` member of the worker's response). */
  json: string;
  pool: string;
  entryId: string;
  /** resources/read: the URI (for eviction by resource update). */
  uri: string | undefined;
  tags: readonly string[] | undefined;
  /** Epoch ms. */
  expiresAt: number;
}

/** A cacheable request, resolved. */
interface Plan {
  /** The L1 key (the full key, or its digest when long). */
  key: string;
  /** The L2 key: `<pool>.<entry digest>.<target digest>.<key digest>` (prefix filters purge by entry or URI); built on an L1 miss only. */
  l2Key(): string;
  pool: string;
  matched: MatchedPolicy;
  uri: string | undefined;
  ttlMs: number;
}

/** A miss in flight on this edge: identical requests wait for its result (single-flight). */
interface Flight {
  waiters: number;
  result: Promise<string | undefined>;
  settle(json: string | undefined): void;
}

const ANSWERED: Dispatched = { accepted: Promise.resolve(), done: Promise.resolve() };
/** L1 keys longer than this are digested (memory per entry; lookups of short keys skip hashing). */
const MAX_RAW_KEY = 256;

/**
 * The edge response cache (docs/caching.md): results of `tools/call`, `resources/read` and
 * `prompts/get` whose entries opted in (`cache: { edge: true, ttlMs > 0 }`) are answered from
 * a per-edge LRU (L1, lru-cache) or the shared `mcpq_cache` KV bucket (L2) without crossing the
 * queue. Keys: era, target kind and name, canonical JSON of the arguments, the principal for
 * `principal`-scoped entries, and the serving pool's catalog version. Only complete, non-error
 * results are stored; identical concurrent misses on one edge make one worker call. Updates
 * of a resource (`mcpq.evt.resources.updated`), tag invalidations (`mcpq.evt.cache.invalidate`)
 * and catalog version changes evict on every edge; one edge per event purges L2.
 */
export class ResponseCache implements ResultCache {
  readonly #cfg: ResponseCacheConfig;
  readonly #bus: Bus;
  readonly #catalog: CatalogView;
  readonly #l2: KV | undefined;
  readonly #log: Logger;
  readonly #m: CacheMetrics | undefined;
  readonly #l1: LRUCache<string, Entry> | undefined;
  readonly #index = new PolicyIndex();
  readonly #flights = new Map<string, Flight>();
  /** Bumped by every invalidation: a miss that saw another epoch start stores nothing (it may be stale). */
  #epoch = 0;
  readonly #subs: { unsubscribe(): void }[] = [];

  constructor(opts: {
    config: ResponseCacheConfig;
    bus: Bus;
    catalog: CatalogView;
    l2?: KV | undefined;
    log?: Logger;
    metrics?: CacheMetrics;
  }) {
    this.#cfg = opts.config;
    this.#bus = opts.bus;
    this.#catalog = opts.catalog;
    this.#l2 = opts.l2;
    this.#log = opts.log ?? silentLogger;
    this.#m = opts.metrics;
    if (this.#cfg.l1MaxEntries > 0 && this.#cfg.l1MaxBytes > 0) {
      this.#l1 = new LRUCache<string, Entry>({
        max: this.#cfg.l1MaxEntries,
        maxSize: this.#cfg.l1MaxBytes,
        sizeCalculation: (e, k) => entrySize(k, e),
        // Expired entries are dropped when looked up (and by LRU pressure), never served.
        allowStale: false,
        updateAgeOnGet: false,
        dispose: (_e, _k, reason) => {
          if (reason === "evict") this.#m?.evictions.inc({ layer: "l1", reason: "size" });
          else if (reason === "expire") this.#m?.evictions.inc({ layer: "l1", reason: "expired" });
        },
      });
    }
    this.#m?.entries.set({ layer: "l1" }, 0);
    this.#m?.bytes.set({ layer: "l1" }, 0);
  }

  /** Subscribes to invalidations and follows catalog changes. */
  start(): void {
    const nc = this.#bus.nc;
    this.#rebuild();
    this.#catalog.on("rebuilt", () => this.#rebuild());
    // Every edge evicts its L1 ...
    this.#subs.push(
      nc.subscribe(subjects.resourceUpdated, {
        callback: (_e, m) => {
          const uri = resourceUpdatedContract.decode(m.data)?.uri;
          if (uri !== undefined) this.evictUri(uri);
        },
      }),
      nc.subscribe(cacheInvalidateContract.subject, {
        callback: (_e, m) => {
          const n = cacheInvalidateContract.decode(m.data);
          if (n) this.evictTags(n.tags);
          else this.#log.warn({ subject: m.subject }, "malformed cache invalidation ignored");
        },
      }),
    );
    // ... and one edge of the queue group purges the shared L2.
    if (this.#l2) {
      this.#subs.push(
        nc.subscribe(subjects.resourceUpdated, {
          queue: EDGE_CACHE_QUEUE_GROUP,
          callback: (_e, m) => {
            const uri = resourceUpdatedContract.decode(m.data)?.uri;
            if (uri !== undefined) void this.#purgeL2([`*.*.${digestToken(uri)}.*`]);
          },
        }),
        nc.subscribe(cacheInvalidateContract.subject, {
          queue: EDGE_CACHE_QUEUE_GROUP,
          callback: (_e, m) => {
            const n = cacheInvalidateContract.decode(m.data);
            if (n)
              void this.#purgeL2(
                [...this.#index.entriesTagged(n.tags)].map((id) => `*.${digestToken(id)}.>`),
              );
          },
        }),
      );
    }
  }

  stop(): void {
    for (const s of this.#subs.splice(0)) s.unsubscribe();
    this.#l1?.clear();
  }

  /** Entries in L1 now. */
  get l1Size(): number {
    return this.#l1?.size ?? 0;
  }

  /** The L1 key of a request, when it is cacheable (for the benchmark's raw lookup timing). */
  lookupKey(session: SessionRecord, req: JsonRpcRequest): string | undefined {
    return this.#plan(session, req)?.key;
  }

  /** Looks a key up in L1 (for the benchmark's raw lookup timing; no metrics). */
  l1Get(key: string): string | undefined {
    return this.#l1?.get(key)?.json;
  }

  /**
   * The hook of `SessionCore.dispatch` for `tools/call`, `resources/read` and `prompts/get`:
   * answers a hit on the stream's sink, coalesces an identical miss in flight, or routes the
   * request to a worker (`route`), storing its answer when it is cacheable.
   */
  async dispatch(
    session: SessionRecord,
    req: JsonRpcRequest,
    stream: StreamContext,
    route: RouteToWorker,
  ): Promise<Dispatched> {
    const plan = this.#plan(session, req);
    if (!plan) return route();
    const hit = this.#l1Lookup(plan.key);
    if (hit !== undefined) {
      this.#send(stream, req, hit);
      return ANSWERED;
    }
    const flying = this.#flights.get(plan.key);
    if (flying && flying.waiters < this.#cfg.maxWaiters) {
      flying.waiters++;
      this.#m?.coalesced.inc();
      const done = flying.result.then(async (json) => {
        if (json !== undefined) this.#send(stream, req, json);
        else await this.#routeForWaiter(req, stream, route);
      });
      return {
        accepted: Promise.resolve(),
        done: done.catch((err: unknown) =>
          this.#log.error({ err }, "answering a coalesced request failed"),
        ),
      };
    }
    if (flying || this.#flights.size >= this.#cfg.maxFlights) return route();
    const flight = this.#flight(plan.key);
    const epoch = this.#epoch;
    try {
      const fromL2 = await this.#l2Lookup(plan);
      if (fromL2 !== undefined) {
        flight.settle(fromL2);
        this.#send(stream, req, fromL2);
        return ANSWERED;
      }
      const d = await route((answer) => flight.settle(this.#store(plan, answer, epoch)));
      // Whatever ends the request without a storable answer (refusal, timeout, cancel) releases the waiters.
      void d.accepted.catch(() => flight.settle(undefined));
      void d.done.finally(() => flight.settle(undefined));
      return d;
    } catch (err) {
      flight.settle(undefined);
      throw err;
    }
  }

  /** Evicts every L1 entry of `uri` (resources/read); counts as an invalidation. */
  evictUri(uri: string): void {
    this.#epoch++;
    this.#evictWhere((e) => e.uri === uri);
  }

  /** Evicts every L1 entry whose declaration carries one of `tags`. */
  evictTags(tags: readonly string[]): void {
    this.#epoch++;
    this.#evictWhere((e) => e.tags !== undefined && e.tags.some((t) => tags.includes(t)));
  }

  #rebuild(): void {
    const changed = this.#index.rebuild(this.#catalog.entries);
    if (changed.length === 0) return;
    // A new catalog version: earlier keys are unreachable anyway; free L1 now (L2 ages out by TTL).
    this.#epoch++;
    this.#evictWhere((e) => changed.includes(e.pool));
  }

  #evictWhere(pred: (e: Entry) => boolean): void {
    const l1 = this.#l1;
    if (!l1) return;
    const doomed: string[] = [];
    for (const [k, e] of l1.entries()) if (pred(e)) doomed.push(k);
    for (const k of doomed) l1.delete(k);
    if (doomed.length > 0)
      this.#m?.evictions.inc({ layer: "l1", reason: "invalidated" }, doomed.length);
    this.#gauges();
  }

  async #purgeL2(filters: string[]): Promise<void> {
    const l2 = this.#l2;
    if (!l2 || filters.length === 0) return;
    try {
      let n = 0;
      for (const f of filters) {
        for await (const k of distinctKeys(l2, f)) {
          await l2.purge(k);
          n++;
        }
      }
      if (n > 0) this.#m?.evictions.inc({ layer: "l2", reason: "invalidated" }, n);
    } catch (err) {
      this.#log.warn({ err }, "purging the shared response cache failed");
    }
  }

  /** The cache plan of a request, or undefined when it must go to a worker uncached. */
  #plan(session: SessionRecord, req: JsonRpcRequest): Plan | undefined {
    const params = req.params ?? {};
    let kind: TargetKind;
    let name: string;
    let args: unknown;
    switch (req.method) {
      case "tools/call":
        kind = "tool";
        name = params["name"] as string;
        args = params["arguments"] ?? {};
        break;
      case "resources/read":
        kind = "resource";
        name = params["uri"] as string;
        args = null;
        break;
      case "prompts/get":
        kind = "prompt";
        name = params["name"] as string;
        args = params["arguments"] ?? {};
        break;
      default:
        return undefined;
    }
    if (typeof name !== "string") return undefined;
    const poolName =
      kind === "tool"
        ? this.#catalog.toolPool(name)
        : kind === "prompt"
          ? this.#catalog.promptPool(name)
          : this.#catalog.resourcePool(name);
    const pool = poolName === undefined ? undefined : this.#index.pool(poolName);
    if (!pool || poolName === undefined) return undefined;
    const matched =
      kind === "tool"
        ? this.#index.tool(pool, name)
        : kind === "prompt"
          ? this.#index.prompt(pool, name)
          : this.#index.resource(pool, name);
    if (!matched) return undefined;
    const meta = params["_meta"];
    const m = typeof meta === "object" && meta !== null ? (meta as Record<string, unknown>) : {};
    const bypass = this.#bypass(session, params, m, matched);
    if (bypass) {
      this.#m?.bypassed.inc({ reason: bypass });
      return undefined;
    }
    const scope = matched.policy.scope === "principal" ? `u:${session.principal}` : "pub";
    // The era is part of the key: results differ in shape (resultType) between eras.
    const era = isModernEra(session.protocolVersion) ? "m" : "l";
    const raw = `${era}\u0000${kind}\u0000${name}\u0000${canonicalJson(args)}\u0000${scope}\u0000${poolName}@${pool.version}`;
    const key =
      raw.length <= MAX_RAW_KEY ? raw : `#${createHash("sha256").update(raw).digest("base64url")}`;
    const l2Key = () =>
      `${poolName}.${digestToken(matched.entryId)}.${digestToken(name)}.${createHash("sha256").update(raw).digest("base64url")}`;
    return {
      key,
      l2Key,
      pool: poolName,
      matched,
      uri: kind === "resource" ? name : undefined,
      ttlMs: Math.min(matched.policy.ttlMs, this.#cfg.maxTtlMs),
    };
  }

  /** Why a request for a cacheable entry must skip the cache, if it must. */
  #bypass(
    session: SessionRecord,
    params: Record<string, unknown>,
    meta: Record<string, unknown>,
    matched: MatchedPolicy,
  ): string | undefined {
    if (meta[MCPQ_META.cache] === "bypass") return "client";
    if (isReplaySession(session.id) || session.principal === REPLAY_PRINCIPAL) return "replay";
    // 2026-07-28 MRTR retries answer input requests: their result depends on the answers.
    if (params["inputResponses"] !== undefined || params["requestState"] !== undefined)
      return "input";
    if (meta["progressToken"] !== undefined && matched.policy.allowProgress !== true)
      return "progress";
    return undefined;
  }

  #l1Lookup(key: string): string | undefined {
    const l1 = this.#l1;
    if (!l1) return undefined;
    const e = l1.get(key);
    this.#m?.lookups.inc({ layer: "l1", outcome: e ? "hit" : "miss" });
    return e?.json;
  }

  async #l2Lookup(plan: Plan): Promise<string | undefined> {
    const l2 = this.#l2;
    if (!l2) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const got = await Promise.race([
        l2.get(plan.l2Key()),
        new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), this.#cfg.l2TimeoutMs);
        }),
      ]);
      if (!got || got.operation !== "PUT" || got.length === 0) {
        this.#m?.lookups.inc({ layer: "l2", outcome: "miss" });
        return undefined;
      }
      const v = decodeL2(got.string());
      const now = Date.now();
      if (!v || v.expiresAt <= now) {
        if (v) this.#m?.stale.inc({ layer: "l2" });
        this.#m?.lookups.inc({ layer: "l2", outcome: "miss" });
        return undefined;
      }
      this.#m?.lookups.inc({ layer: "l2", outcome: "hit" });
      this.#l1Set(plan, v.json, v.expiresAt);
      return v.json;
    } catch (err) {
      this.#log.debug({ err }, "shared response cache lookup failed");
      this.#m?.lookups.inc({ layer: "l2", outcome: "miss" });
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The answer-arrives hook: stores a cacheable answer in L1 and L2 and returns its result JSON
   * (for the waiters), or undefined when it may not be cached: an error, an `isError` result, a
   * result asking for input (`input_required`), one too large, or any that raced an invalidation.
   */
  #store(plan: Plan, answer: string, epoch: number): string | undefined {
    if (epoch !== this.#epoch) return undefined;
    let json: string;
    try {
      const v = JSON.parse(answer) as { result?: unknown; error?: unknown };
      const r = v.result;
      if (v.error !== undefined || typeof r !== "object" || r === null || Array.isArray(r))
        return undefined;
      const rr = r as Record<string, unknown>;
      if (rr["isError"] === true) return undefined;
      if (rr["resultType"] !== undefined && rr["resultType"] !== "complete") return undefined;
      json = JSON.stringify(r);
    } catch {
      return undefined;
    }
    if (json.length > this.#cfg.maxEntryBytes) return undefined;
    const expiresAt = Date.now() + plan.ttlMs;
    this.#l1Set(plan, json, expiresAt);
    const l2 = this.#l2;
    if (l2) {
      l2.put(plan.l2Key(), encodeL2(expiresAt, json)).then(
        () => this.#m?.stores.inc({ layer: "l2" }),
        (err: unknown) => this.#log.debug({ err }, "shared response cache store failed"),
      );
    }
    return json;
  }

  #l1Set(plan: Plan, json: string, expiresAt: number): void {
    const l1 = this.#l1;
    if (!l1) return;
    const ttl = expiresAt - Date.now();
    if (ttl <= 0) return;
    const e: Entry = {
      json,
      pool: plan.pool,
      entryId: plan.matched.entryId,
      uri: plan.uri,
      tags: plan.matched.policy.tags,
      expiresAt,
    };
    const size = entrySize(plan.key, e);
    if (size > this.#cfg.l1MaxBytes) return;
    l1.set(plan.key, e, { ttl, size });
    this.#m?.stores.inc({ layer: "l1" });
    this.#gauges();
  }

  #gauges(): void {
    this.#m?.entries.set({ layer: "l1" }, this.#l1?.size ?? 0);
    this.#m?.bytes.set({ layer: "l1" }, this.#l1?.calculatedSize ?? 0);
  }

  #flight(key: string): Flight {
    let resolve!: (json: string | undefined) => void;
    const result = new Promise<string | undefined>((r) => (resolve = r));
    const f: Flight = {
      waiters: 0,
      result,
      settle: (json) => {
        if (this.#flights.get(key) !== f) return;
        this.#flights.delete(key);
        resolve(json);
      },
    };
    this.#flights.set(key, f);
    return f;
  }

  /** A waiter whose flight ended without a cacheable result: it calls a worker itself and answers any refusal on its sink. */
  async #routeForWaiter(
    req: JsonRpcRequest,
    stream: StreamContext,
    route: RouteToWorker,
  ): Promise<void> {
    try {
      const d = await route();
      await d.accepted;
      await d.done;
    } catch (err) {
      stream.sink.send(errorMessage(req.id, err));
    }
  }

  #send(stream: StreamContext, req: JsonRpcRequest, json: string): void {
    stream.sink.send({
      eventId: undefined,
      kind: "response",
      requestId: undefined,
      json: `{"jsonrpc":"2.0","id":${JSON.stringify(req.id)},"result":${json}}`,
    });
  }

  /** Publishes L2 gauges from the bucket's status (on scrape). */
  async collectL2(): Promise<void> {
    // A scrape never waits on the broker: skipped while it is away, bounded like an L2 lookup.
    if (!this.#l2 || !this.#bus.connected) return;
    const l2 = this.#l2;
    try {
      let timer: NodeJS.Timeout | undefined;
      const s = await Promise.race([
        l2.status(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("L2 status timed out")), this.#cfg.l2TimeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      this.#m?.entries.set({ layer: "l2" }, s.values);
      this.#m?.bytes.set({ layer: "l2" }, s.size);
    } catch {
      // Broker unavailable: keep the last values.
    }
  }
}

function entrySize(key: string, e: Entry): number {
  // Strings count as their length (one byte per ASCII character); the rest is a fixed overhead estimate.
  return key.length + e.json.length + e.entryId.length + (e.uri?.length ?? 0) + 64;
}

/** L2 values: `<expiresAt epoch ms>\n<result JSON>`. */
function encodeL2(expiresAt: number, json: string): string {
  return `${expiresAt}\n${json}`;
}
function decodeL2(s: string): { expiresAt: number; json: string } | undefined {
  const i = s.indexOf("\n");
  if (i <= 0) return undefined;
  const expiresAt = Number(s.slice(0, i));
  return Number.isFinite(expiresAt) ? { expiresAt, json: s.slice(i + 1) } : undefined;
}
