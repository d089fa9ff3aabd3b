import type { JetStreamClient } from "@nats-io/jetstream";
import { Kvm, type KV, type KvOptions } from "@nats-io/kv";
import type { BusLimits } from "./limits.js";
import { BUCKETS } from "./subjects.js";

/** The KV buckets mcpq runs on (session records, worker registry, resource subscriptions). */
export interface Buckets {
  sessions: KV;
  registry: KV;
  subscriptions: KV;
}

/** Each bucket's configuration, derived from the limits (one place for connect and self-heal). */
export function bucketConfigs(l: BusLimits): Record<keyof Buckets, { name: string; opts: Partial<KvOptions> }> {
  return {
    sessions: {
      name: BUCKETS.sessions,
      opts: { history: 1, ttl: l.sessionIdleTtlMs, storage: "file" as never, max_bytes: 256 * 1024 * 1024 },
    },
    registry: {
      name: BUCKETS.registry,
      opts: { history: 1, ttl: l.registryTtlMs, storage: "memory" as never, max_bytes: 64 * 1024 * 1024 },
    },
    subscriptions: {
      name: BUCKETS.subscriptions,
      opts: { history: 1, ttl: l.sessionIdleTtlMs, storage: "file" as never, max_bytes: 64 * 1024 * 1024 },
    },
  };
}

/**
 * Creates every bucket that is missing (idempotent: an existing bucket with this configuration
 * is bound as it is) and returns the handles. Used at connect and again by self-heal after a
 * bucket was lost (memory storage across a broker restart, a purge or delete).
 */
export async function openBuckets(js: JetStreamClient, limits: BusLimits): Promise<Buckets> {
  const kvm = new Kvm(js);
  const cfg = bucketConfigs(limits);
  return {
    sessions: await kvm.create(cfg.sessions.name, cfg.sessions.opts),
    registry: await kvm.create(cfg.registry.name, cfg.registry.opts),
    subscriptions: await kvm.create(cfg.subscriptions.name, cfg.subscriptions.opts),
  };
}
