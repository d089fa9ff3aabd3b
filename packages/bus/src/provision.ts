import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { Kvm, type KV, type KvOptions } from "@nats-io/kv";
import { silentLogger, type Logger } from "@mcpq/protocol";
import { isNotFound, isTransientApiFailure } from "./errors.js";
import type { BusLimits, StorageChoice } from "./limits.js";
import { BUCKETS, CACHE_BUCKET, STREAMS, subjects } from "./subjects.js";

const ns = (ms: number) => ms * 1_000_000;
const storage = (s: StorageChoice) => (s === "memory" ? StorageType.Memory : StorageType.File);
/** A per-stream replica count, or MCPQ_REPLICAS when it is 0. */
const replicasOf = (own: number, l: BusLimits) => (own > 0 ? own : l.replicas);

/** How many times one provisioning step is tried when the API only fails for now. */
const API_ATTEMPTS = 6;

/**
 * Runs one idempotent provisioning step (read the current state, change what differs), again
 * while the JetStream API fails only for now — a timeout or a leader election, which a cluster
 * scaling a stream or losing a node goes through — backing off 250 ms, 500 ms, … (under 8 s in
 * all). A step that timed out may have been applied: it starts again from reading the state.
 */
export async function whileTransient<T>(
  what: string,
  log: Logger,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= API_ATTEMPTS || !isTransientApiFailure(err)) throw err;
      const waitMs = 250 * 2 ** (attempt - 1);
      log.warn(
        { what, attempt, waitMs, err: err instanceof Error ? err.message : String(err) },
        `provisioning ${what}: the JetStream API failed for now; trying again in ${waitMs} ms`,
      );
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

/** How provisioning reports and what it knows of the server. */
export interface ProvisionOptions {
  /** Where it says what it changed or could not change. Default: silent. */
  log?: Logger | undefined;
  /**
   * Whether the server is a JetStream cluster (`nc.info.cluster` is set). A single nats-server
   * 2.9 accepts a replica increase on update but keeps one copy: when false, more than one
   * replica is refused for a new stream and left unchanged (with a warning) on an existing one.
   */
  clustered?: boolean | undefined;
}

/** One stream mcpq runs on: its full desired configuration. */
type McpqStreamConfig = Partial<StreamConfig> & { name: string; num_replicas: number };

/** The stream configurations mcpq runs on, derived from the limits. */
export function streamConfigs(l: BusLimits): McpqStreamConfig[] {
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
      num_replicas: replicasOf(l.requestReplicas, l),
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
      num_replicas: replicasOf(l.outboundReplicas, l),
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
      num_replicas: replicasOf(l.recordReplicas, l),
    },
  ];
}

/** One KV bucket mcpq runs on. */
export interface McpqBucketConfig {
  /** The handle's key on `Bus.kv`. */
  key: "sessions" | "registry" | "subscriptions" | "tasks" | "usedStates";
  bucket: string;
  options: Partial<KvOptions> & { replicas: number; ttl: number; max_bytes: number };
  /** Most keys (values) the bucket holds; writing a new key beyond it is refused. */
  maxMsgs?: number;
}

/**
 * The KV buckets: sessions and subscriptions on file (they are the clients' state); the registry
 * in memory (heartbeats, rebuilt by the workers within one heartbeat).
 */
export function bucketConfigs(l: BusLimits): McpqBucketConfig[] {
  const replicas = replicasOf(l.kvReplicas, l);
  return [
    {
      key: "sessions",
      bucket: BUCKETS.sessions,
      options: {
        history: 1,
        ttl: l.sessionIdleTtlMs,
        storage: StorageType.File,
        max_bytes: 256 * 1024 * 1024,
        replicas,
      },
    },
    {
      key: "registry",
      bucket: BUCKETS.registry,
      options: {
        history: 1,
        ttl: l.registryTtlMs,
        storage: StorageType.Memory,
        max_bytes: 64 * 1024 * 1024,
        replicas,
      },
    },
    {
      key: "subscriptions",
      bucket: BUCKETS.subscriptions,
      options: {
        history: 1,
        ttl: l.sessionIdleTtlMs,
        storage: StorageType.File,
        max_bytes: 64 * 1024 * 1024,
        replicas,
      },
    },
    {
      key: "tasks",
      bucket: BUCKETS.tasks,
      options: {
        history: 1,
        ttl: l.taskTtlMs,
        storage: StorageType.File,
        max_bytes: l.tasksMaxBytes,
        maxValueSize: l.taskMaxBytes,
        replicas,
      },
      // Three keys per live task: the task, its request's index entry and its owner's quota key.
      maxMsgs: l.tasksMax * 3,
    },
    {
      key: "usedStates",
      bucket: BUCKETS.usedStates,
      options: {
        history: 1,
        ttl: l.requestStateTtlMs,
        storage: StorageType.File,
        max_bytes: l.usedStatesMaxBytes,
        maxValueSize: 1024,
        replicas,
      },
    },
  ];
}

// What an existing stream's update cannot change (the server refuses the whole update): kept as
// they are, with a warning saying how to change them.
const IMMUTABLE = ["storage", "retention"] as const;
// The fields provisioning reconciles on an existing stream; everything else stays as the server has it.
const RECONCILED = [
  "subjects",
  "discard",
  "max_msgs",
  "max_bytes",
  "max_msgs_per_subject",
  "discard_new_per_subject",
  "max_age",
  "max_msg_size",
  "duplicate_window",
  "num_replicas",
] as const;

// The server omits false flags and empty values from a stream's config: treat them alike, or
// every connect would "change" them.
const norm = (v: unknown) => (v === undefined || v === null || v === false ? null : v);
const same = (a: unknown, b: unknown) => JSON.stringify(norm(a)) === JSON.stringify(norm(b));

/**
 * Creates one stream, or reconciles an existing one with `want`: limits, subjects and replicas
 * are updated when they differ (nothing is sent when nothing differs); storage and retention
 * cannot change on a live stream and are kept, with a warning. A replica change the server
 * refuses (e.g. 3 replicas on a server that is not clustered) is logged and the rest applied.
 * Safe to run concurrently from many edges and workers: a lost creation race becomes a reconcile.
 * This is the function that re-creates a lost stream (`streamConfigs(limits)` gives the config).
 * @throws the server's error when the stream can neither be created nor updated at all.
 */
async function provisionStream(
  jsm: JetStreamManager,
  want: McpqStreamConfig,
  opts: ProvisionOptions = {},
): Promise<StreamInfo> {
  const log = opts.log ?? silentLogger;
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(want.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    if (opts.clustered === false && want.num_replicas > 1)
      throw replicaError(want, "the server is not a JetStream cluster");
    try {
      return await jsm.streams.add(want);
    } catch (addErr) {
      if (!(addErr instanceof JetStreamApiError)) throw addErr;
      if (isReplicaRefusal(addErr)) throw replicaError(want, addErr.message, addErr);
      // Another process won the race: reconcile with what it created.
      info = await jsm.streams.info(want.name);
    }
  }
  return reconcileStream(jsm, info, want, log, opts.clustered);
}

async function reconcileStream(
  jsm: JetStreamManager,
  info: StreamInfo,
  want: McpqStreamConfig,
  log: Logger,
  clustered: boolean | undefined,
): Promise<StreamInfo> {
  const have = info.config;
  const update: Partial<StreamConfig> = {};
  for (const k of RECONCILED)
    if (want[k] !== undefined && !same(want[k], have[k])) Object.assign(update, { [k]: want[k] });
  for (const k of IMMUTABLE) {
    if (want[k] !== undefined && !same(want[k], have[k])) {
      log.warn(
        { stream: want.name, setting: k, current: have[k], wanted: want[k] },
        `stream ${want.name}: ${k} cannot change on an existing stream; keeping ${String(have[k])} (delete the stream to recreate it with ${String(want[k])})`,
      );
    }
  }
  // The server refuses a max age below the duplicate window (a KV bucket's is its TTL, capped at
  // 2 min): a lowered TTL (e.g. MCPQ_REGISTRY_TTL_MS) brings the window down with it.
  if (
    update.max_age !== undefined &&
    update.max_age > 0 &&
    (have.duplicate_window ?? 0) > update.max_age
  )
    update.duplicate_window = update.max_age;
  if (update.num_replicas !== undefined && update.num_replicas > 1 && clustered === false) {
    log.warn(
      {
        stream: want.name,
        setting: "num_replicas",
        current: have.num_replicas,
        wanted: update.num_replicas,
      },
      `stream ${want.name}: the server is not a JetStream cluster, so it cannot hold ${update.num_replicas} replicas; keeping ${have.num_replicas}`,
    );
    delete update.num_replicas;
  }
  if (Object.keys(update).length === 0) return info;
  try {
    const updated = await jsm.streams.update(want.name, { ...have, ...update });
    log.info({ stream: want.name, changed: Object.keys(update) }, `stream ${want.name} reconciled`);
    return updated;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || update.num_replicas === undefined) throw err;
    // Replicas are the change servers refuse most (too few peers, a version that cannot scale
    // this stream): keep the current count and apply the limits anyway.
    log.warn(
      {
        stream: want.name,
        setting: "num_replicas",
        current: have.num_replicas,
        wanted: update.num_replicas,
        err: err.message,
        code: err.code,
      },
      `stream ${want.name}: the server refused ${update.num_replicas} replicas; keeping ${have.num_replicas}`,
    );
    delete update.num_replicas;
    if (Object.keys(update).length === 0) return info;
    return jsm.streams.update(want.name, { ...have, ...update });
  }
}

/**
 * Creates or updates every stream (see {@link provisionStream}).
 * @throws when a stream can neither be created nor updated (e.g. MCPQ_REPLICAS=3 on one server).
 */
export async function provision(
  jsm: JetStreamManager,
  limits: BusLimits,
  opts: ProvisionOptions = {},
): Promise<void> {
  const log = opts.log ?? silentLogger;
  for (const cfg of streamConfigs(limits))
    await whileTransient(`stream ${cfg.name}`, log, () => provisionStream(jsm, cfg, opts));
}

/**
 * Opens one KV bucket, creating it when missing and reconciling an existing one's replicas,
 * size bound and TTL the way {@link provisionStream} does (a bucket is the stream `KV_<bucket>`).
 * With `create: false` it only binds to the bucket (a read-only client such as replay creates
 * nothing and needs no stream-info permission).
 */
async function provisionBucket(
  js: JetStreamClient,
  jsm: JetStreamManager,
  b: Omit<McpqBucketConfig, "key">,
  opts: ProvisionOptions & { create?: boolean } = {},
): Promise<KV> {
  const kvm = new Kvm(js);
  if (opts.create === false) return kvm.open(b.bucket);
  const stream = `KV_${b.bucket}`;
  let kv: KV;
  try {
    if (opts.clustered === false && b.options.replicas > 1 && !(await exists(jsm, stream)))
      throw replicaError(
        { name: stream, num_replicas: b.options.replicas },
        "the server is not a JetStream cluster",
      );
    kv = await kvm.create(b.bucket, b.options);
  } catch (err) {
    if (err instanceof JetStreamApiError && isReplicaRefusal(err))
      throw replicaError({ name: stream, num_replicas: b.options.replicas }, err.message, err);
    throw err;
  }
  const info = await jsm.streams.info(stream);
  await reconcileStream(
    jsm,
    info,
    {
      name: stream,
      num_replicas: b.options.replicas,
      max_bytes: b.options.max_bytes,
      max_age: ns(b.options.ttl),
      storage: b.options.storage,
      ...(b.maxMsgs === undefined ? {} : { max_msgs: b.maxMsgs }),
      ...(b.options.maxValueSize === undefined ? {} : { max_msg_size: b.options.maxValueSize }),
    },
    opts.log ?? silentLogger,
    opts.clustered,
  );
  return kv;
}

/** Opens (and unless `create` is false, provisions) every bucket; the handles by their `Bus.kv` key. */
export async function provisionBuckets(
  js: JetStreamClient,
  jsm: JetStreamManager,
  limits: BusLimits,
  opts: ProvisionOptions & { create?: boolean } = {},
): Promise<Record<McpqBucketConfig["key"], KV>> {
  const out: Partial<Record<McpqBucketConfig["key"], KV>> = {};
  const log = opts.log ?? silentLogger;
  for (const b of bucketConfigs(limits))
    out[b.key] = await whileTransient(`bucket ${b.bucket}`, log, () =>
      provisionBucket(js, jsm, b, opts),
    );
  return out as Record<McpqBucketConfig["key"], KV>;
}

async function exists(jsm: JetStreamManager, stream: string): Promise<boolean> {
  try {
    await jsm.streams.info(stream);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

// 10074: replicas > 1 not supported in non-clustered mode; 10005: insufficient resources (too few peers).
function isReplicaRefusal(err: JetStreamApiError): boolean {
  return (
    /replicas|insufficient resources|no suitable peers/i.test(err.message) || err.code === 10074
  );
}

function replicaError(
  want: { name: string; num_replicas: number },
  why: string,
  cause?: unknown,
): Error {
  return new Error(
    `cannot create stream ${want.name} with ${want.num_replicas} replicas: ${why} (MCPQ_REPLICAS, or the stream's own *_REPLICAS, must not exceed the JetStream cluster's size; 1 on a single server)`,
    { cause },
  );
}

/** Bounds of the edges' shared response-cache bucket (edge env MCPQ_CACHE_L2_*). */
export interface CacheBucketOptions {
  /** Bytes the bucket may hold; the oldest entries are discarded beyond it. */
  maxBytes: number;
  /** No entry outlives this (ms): the bucket's max_age; shorter per-entry expiry is checked on read. */
  maxAgeMs: number;
  storage: StorageChoice;
  /** Largest single entry (bytes). */
  maxValueBytes: number;
}

/**
 * Creates (or opens, reconciling its bounds and replicas like the other buckets: MCPQ_KV_REPLICAS,
 * else MCPQ_REPLICAS) the `mcpq_cache` KV bucket the edges share as the response cache's L2.
 * One revision per key; keys are digests (see services/edge/src/cache). Edges only.
 */
export async function openCacheBucket(
  bus: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    limits: Readonly<BusLimits>;
    clustered?: boolean;
  },
  o: CacheBucketOptions,
  opts: ProvisionOptions = {},
): Promise<KV> {
  return provisionBucket(
    bus.js,
    bus.jsm,
    {
      bucket: CACHE_BUCKET,
      options: {
        history: 1,
        ttl: o.maxAgeMs,
        max_bytes: o.maxBytes,
        maxValueSize: o.maxValueBytes,
        storage: storage(o.storage),
        replicas: replicasOf(bus.limits.kvReplicas, bus.limits),
      },
    },
    { clustered: bus.clustered, ...opts },
  );
}
