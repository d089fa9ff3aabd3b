import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { BusLimits } from "./limits.js";
import { BUCKETS, STREAMS, subjects } from "./subjects.js";

const ns = (ms: number) => ms * 1_000_000;
const storage = (s: "file" | "memory") => (s === "memory" ? StorageType.Memory : StorageType.File);

/** The stream configurations mcpq runs on, derived from the limits. */
export function streamConfigs(l: BusLimits): (Partial<StreamConfig> & { name: string })[] {
  return [
    {
      name: STREAMS.requests,
      subjects: [subjects.requestsAll],
      // Work queue: a request is removed once acked, so the bound counts only queued work.
      retention: RetentionPolicy.Workqueue,
      discard: DiscardPolicy.New,
      max_msgs: l.requestStreamMaxMsgs,
      max_bytes: l.requestStreamMaxBytes,
      // Per-target bound (subjects are mcpq.req.<pool>.<kind>.<target>); refused like a full stream.
      max_msgs_per_subject: l.requestStreamMaxPerTarget > 0 ? l.requestStreamMaxPerTarget : -1,
      discard_new_per_subject: l.requestStreamMaxPerTarget > 0,
      max_age: ns(l.requestMaxAgeMs),
      max_msg_size: l.maxMessageBytes,
      storage: storage(l.requestStorage),
      duplicate_window: ns(l.duplicateWindowMs),
      num_replicas: 1,
    },
    {
      name: STREAMS.outbound,
      subjects: [subjects.outboundAll],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: ns(l.outboundMaxAgeMs),
      max_bytes: l.outboundMaxBytes,
      max_msg_size: l.maxMessageBytes,
      storage: storage(l.outboundStorage),
      duplicate_window: ns(Math.min(l.duplicateWindowMs, l.outboundMaxAgeMs)),
      num_replicas: 1,
    },
    {
      name: STREAMS.records,
      subjects: [subjects.recordsAll],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: ns(l.recordMaxAgeMs),
      max_bytes: l.recordMaxBytes,
      max_msg_size: l.maxMessageBytes * 2,
      storage: StorageType.File,
      duplicate_window: ns(Math.min(l.duplicateWindowMs, l.recordMaxAgeMs)),
      num_replicas: 1,
    },
  ];
}

/**
 * Creates or updates every stream. Safe to run concurrently from many edges and workers:
 * "already in use" races fall back to an update with the same config.
 */
export async function provision(jsm: JetStreamManager, limits: BusLimits): Promise<void> {
  for (const cfg of streamConfigs(limits)) {
    const name = cfg.name;
    try {
      await jsm.streams.info(name);
      await jsm.streams.update(name, cfg);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await jsm.streams.add(cfg);
      } catch (addErr) {
        // Another process won the race; converge on the same config.
        if (!(addErr instanceof JetStreamApiError)) throw addErr;
        await jsm.streams.update(name, cfg);
      }
    }
  }
}

function isNotFound(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === 404 || /not found/i.test(err.message);
  return err instanceof Error && /not found/i.test(err.message);
}

/** Bounds of the edges' shared response-cache bucket (edge env MCPQ_CACHE_L2_*). */
export interface CacheBucketOptions {
  /** Bytes the bucket may hold; the oldest entries are discarded beyond it. */
  maxBytes: number;
  /** No entry outlives this (ms): the bucket's max_age; shorter per-entry expiry is checked on read. */
  maxAgeMs: number;
  storage: "file" | "memory";
  /** Largest single entry (bytes). */
  maxValueBytes: number;
}

/**
 * Creates (or opens, converging its bounds) the `mcpq_cache` KV bucket the edges share as the
 * response cache's L2. One revision per key; keys are digests (see services/edge/src/cache).
 */
export async function openCacheBucket(js: JetStreamClient, o: CacheBucketOptions): Promise<KV> {
  return new Kvm(js).create(BUCKETS.cache, {
    history: 1,
    ttl: o.maxAgeMs,
    max_bytes: o.maxBytes,
    maxValueSize: o.maxValueBytes,
    storage: storage(o.storage),
  });
}
