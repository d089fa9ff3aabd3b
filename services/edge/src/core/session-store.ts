import { randomBytes } from "node:crypto";
import { digestToken, type Bus, type KV } from "@mcpq/bus";
import type { LogLevel, ProtocolVersion } from "@mcpq/protocol";

/** A session as stored in JetStream KV; any edge can load it. */
export interface SessionRecord {
  id: string;
  principal: string;
  protocolVersion: ProtocolVersion;
  clientInfo: Record<string, unknown>;
  clientCapabilities: Record<string, unknown>;
  logLevel?: LogLevel;
  initialized: boolean;
  createdAt: number;
  lastSeenAt: number;
}

const EVICT_SUBJECT = "mcpq.evt.session.changed";

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
  readonly #maxCache: number;

  constructor(
    private readonly bus: Bus,
    opts: { cacheMs: number; maxCache?: number },
  ) {
    this.#kv = bus.kv.sessions;
    this.#cacheMs = opts.cacheMs;
    this.#maxCache = opts.maxCache ?? 200_000;
    this.#touchEveryMs = Math.max(1_000, Math.floor(bus.limits.sessionIdleTtlMs / 4));
    bus.nc.subscribe(EVICT_SUBJECT, { callback: (_e, m) => {
        this.#cache.delete(m.string());
      },
    });
  }

  /** 32 random bytes, base64url: unguessable, subject-safe, visible ASCII. */
  static newId(): string {
    return randomBytes(32).toString("base64url");
  }

  async countForPrincipal(principal: string): Promise<number> {
    let n = 0;
    for await (const _k of await this.#kv.keys(`p.${digestToken(principal)}.*`)) n++;
    return n;
  }

  async create(rec: SessionRecord): Promise<void> {
    await this.#kv.put(`s.${rec.id}`, JSON.stringify(rec));
    await this.#kv.put(`p.${digestToken(rec.principal)}.${rec.id}`, "");
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
    let rec: SessionRecord | null = hit && now - hit.at < this.#cacheMs ? hit.rec : null;
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

  /** Refreshes the idle TTL. */
  async touch(rec: SessionRecord): Promise<void> {
    rec.lastSeenAt = Date.now();
    await this.#kv.put(`s.${rec.id}`, JSON.stringify(rec));
    await this.#kv.put(`p.${digestToken(rec.principal)}.${rec.id}`, "");
  }

  async update(rec: SessionRecord): Promise<void> {
    rec.lastSeenAt = Date.now();
    await this.#kv.put(`s.${rec.id}`, JSON.stringify(rec));
    this.#remember(rec);
    this.bus.nc.publish(EVICT_SUBJECT, rec.id);
  }

  /** Ends a session everywhere: later requests with its id get 404 on every edge. */
  async delete(rec: SessionRecord): Promise<void> {
    this.#cache.delete(rec.id);
    await this.#kv.purge(`s.${rec.id}`);
    await this.#kv.purge(`p.${digestToken(rec.principal)}.${rec.id}`);
    this.bus.nc.publish(EVICT_SUBJECT, rec.id);
  }

  #remember(rec: SessionRecord): void {
    if (this.#cache.size >= this.#maxCache) {
      const first = this.#cache.keys().next().value;
      if (first !== undefined) this.#cache.delete(first);
    }
    this.#cache.set(rec.id, { rec, at: Date.now() });
  }
}
